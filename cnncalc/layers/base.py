"""The Layer base class: every layer type knows, in one place, how to read its arguments,
its output shape, its parameter tensors, its MACs and other operations, its window for the
receptive field, and how to explain each of those numbers.

Layers are built by the spec loader from plain arguments, then ``infer(in_shapes)`` is called
in topological order (as Keras' ``build``); everything else is read off the inferred layer.
All numbers are Python ints: exact, never rounded.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

from cnncalc._record import FrozenRecord
from cnncalc.errors import SpecError, short
from cnncalc.shapes import Shape, Tensor, fmt_int, fmt_shape, image_view, numel, spatial

REQUIRED = object()
MINUS = "−"  # the slides' minus sign in explanations

ACTIVATIONS = ("relu", "relu6", "leakyrelu", "tanh", "sigmoid", "softmax", "silu", "hardswish",
               "hardsigmoid", "gelu", "mish", "elu", "selu", "softplus", "prelu", "linear")
_ACT_ALIASES = {"leaky_relu": "leakyrelu", "leaky": "leakyrelu", "none": "linear", "identity": "linear",
                "swish": "silu", "hard_swish": "hardswish", "h_swish": "hardswish",
                "hard_sigmoid": "hardsigmoid", "h_sigmoid": "hardsigmoid"}
ROUNDINGS = ("exact", "floor", "ceil")
_ROUNDING_ALIASES = {"strict": "exact"}


# ----------------------------------------------------------------------------- field readers
def as_int(v, name, minimum=1):
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise SpecError(f"'{name}' must be a whole number, got {short(v)}")
    if v < minimum:
        raise SpecError(f"'{name}' must be at least {minimum}, got {v}")
    return v


def as_float(v, name, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"'{name}' must be a number, got {short(v)}")
    try:
        v = float(v)
    except OverflowError:
        raise SpecError(f"'{name}' is too large, got {short(v)}") from None
    if not math.isfinite(v):
        raise SpecError(f"'{name}' must be a finite number, got {v}",
                        hint="NaN and infinity are not values a layer can have")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise SpecError(f"'{name}' must be between {lo} and {hi}, got {v}")
    return v


def as_bool(v, name):
    if not isinstance(v, bool):
        raise SpecError(f"'{name}' must be true or false, got {short(v)}")
    return v


def as_activation(v, name="activation"):
    if v is None:
        return None
    if not isinstance(v, str):
        raise SpecError(f"'{name}' must be one of {', '.join(ACTIVATIONS)}, got {short(v)}")
    key = _ACT_ALIASES.get(v.lower(), v.lower())
    if key not in ACTIVATIONS:
        raise SpecError(f"unknown activation {short(v)}", hint=suggest(v, ACTIVATIONS, "activation"))
    return None if key == "linear" else key


def as_rounding(v, name="rounding"):
    if v is None:
        return None
    v = _ROUNDING_ALIASES.get(v, v) if isinstance(v, str) else v
    if not isinstance(v, str) or v not in ROUNDINGS:
        raise SpecError(f"'{name}' must be one of {', '.join(ROUNDINGS)} (strict = exact), got {short(v)}",
                        hint="exact (the default) refuses a window that does not fit; floor is "
                             "PyTorch's rule; ceil is Caffe's pooling rule")
    return v


def raw(v, name):
    return v


def suggest(word, options, what="field") -> str | None:
    """'did you mean …?' or the list of known names; keys of any type (YAML allows 1, null)."""
    names = sorted({str(o)[:80] for o in options})
    word = str(word)[:80]
    import difflib

    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6) if len(names) <= 1000 else []
    if close:
        return f"did you mean '{close[0]}'?"
    shown = ", ".join(names[:40]) + (f", … ({len(names) - 40} more)" if len(names) > 40 else "")
    return f"known {what}s: {shown}"


def per_axis(value, ndim: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """An int applies to every spatial axis; a list gives one value per axis."""
    if isinstance(value, (list, tuple)):
        if len(value) != ndim:
            raise SpecError(f"'{name}' has {len(value)} values but the input has {ndim} spatial "
                            f"ax{'e' if ndim != 1 else 'i'}s",
                            hint=f"give one number, or exactly {ndim}")
        return tuple(as_int(v, name, minimum) for v in value)
    return (as_int(value, name, minimum),) * ndim


def pads_per_axis(value, ndim: int, in_sp, k_eff, strides, name="pad") -> tuple[tuple[int, int], ...]:
    """Padding as (lo, hi) per spatial axis.

    Accepts an int, ``same``, ``valid``, a list with one int per axis (symmetric), a list of
    ``[lo, hi]`` pairs per axis, or ``{top, bottom, left, right}`` for 2-D.
    ``same`` follows TensorFlow: output = ceil(W / S), the extra pixel goes at the end.
    """
    if value == "valid":
        return ((0, 0),) * ndim
    if value == "same":
        out = []
        for w, k, s in zip(in_sp, k_eff, strides):
            o = -(-w // s)
            total = max((o - 1) * s + k - w, 0)
            out.append((total // 2, total - total // 2))
        return tuple(out)
    if isinstance(value, dict):
        if ndim != 2:
            raise SpecError("padding as {top, bottom, left, right} is for 2-D inputs")
        unknown = set(value) - {"top", "bottom", "left", "right"}
        if unknown:
            raise SpecError(f"unknown padding side {short(sorted(map(str, unknown))[0])}",
                            hint="use top, bottom, left, right")
        g = {k: as_int(value.get(k, 0), f"{name}.{k}", 0) for k in ("top", "bottom", "left", "right")}
        return ((g["top"], g["bottom"]), (g["left"], g["right"]))
    if isinstance(value, (list, tuple)):
        if len(value) != ndim:
            raise SpecError(f"'{name}' has {len(value)} entries but the input has {ndim} spatial "
                            f"ax{'e' if ndim != 1 else 'i'}s",
                            hint="give one number, one per axis, or one [lo, hi] pair per axis")
        out = []
        for v in value:
            if isinstance(v, (list, tuple)):
                if len(v) != 2:
                    raise SpecError(f"'{name}': an asymmetric padding is a pair [lo, hi], got {short(list(v))}")
                out.append((as_int(v[0], name, 0), as_int(v[1], name, 0)))
            else:
                p = as_int(v, name, 0)
                out.append((p, p))
        return tuple(out)
    if isinstance(value, str):
        raise SpecError(f"'{name}' must be a number, a list, 'same' or 'valid', got {short(value)}")
    p = as_int(value, name, 0)
    return ((p, p),) * ndim


# ----------------------------------------------------------------------------- windows
class Window(FrozenRecord):
    """A sliding window along one axis: what shape inference and receptive fields share.
    (Frozen, with a dataclass's repr and equality; see cnncalc._record.)"""
    _fields = ("kernel", "stride", "pad_lo", "pad_hi", "dilation")
    __match_args__ = _fields

    def __init__(self, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1):
        setattr_ = object.__setattr__
        setattr_(self, "kernel", kernel)
        setattr_(self, "stride", stride)
        setattr_(self, "pad_lo", pad_lo)
        setattr_(self, "pad_hi", pad_hi)
        setattr_(self, "dilation", dilation)

    @property
    def extent(self) -> int:
        """Effective kernel size d·(k − 1) + 1."""
        return self.dilation * (self.kernel - 1) + 1


GLOBAL = "global"  # the layer sees its whole input (fc, global pooling)


class AxisMap(FrozenRecord):
    """Which input units an output unit reads along one axis, for layers that are not a plain
    sliding window (upsampling, cropping, padding, adaptive pooling): ``reads(o)`` lists the
    input unit indices (indices outside 0..n−1 lie in padding) and the map is periodic:
    ``reads(o + a) = reads(o) + b``. The effective stride is multiplied by b/a (a Fraction
    when a ∤ b: an upsampling by 2 halves it). ``label`` names the rule in explanations.
    (Frozen, with a dataclass's repr and equality; see cnncalc._record.)"""
    _fields = ("a", "b", "starts", "ends", "label")
    __match_args__ = _fields

    def __init__(self, a: int, b: int, starts: tuple[int, ...], ends: tuple[int, ...], label: str = ""):
        setattr_ = object.__setattr__
        setattr_(self, "a", a)
        setattr_(self, "b", b)
        setattr_(self, "starts", starts)  # reads(o) for o in 0..a−1 is range(starts[o], ends[o])
        setattr_(self, "ends", ends)
        setattr_(self, "label", label)

    def span(self, o: int) -> tuple[int, int]:
        """reads(o) as the half-open range (start, end)."""
        m, ph = divmod(o, self.a)
        return self.starts[ph] + m * self.b, self.ends[ph] + m * self.b

    def reads(self, o: int) -> list[int]:
        return list(range(*self.span(o)))


def axis_map(a: int, b: int, fn, label: str = "") -> AxisMap:
    """An AxisMap from ``fn(o) -> (start, end)`` for one period of output units."""
    se = [fn(o) for o in range(a)]
    return AxisMap(a, b, tuple(s for s, _ in se), tuple(e for _, e in se), label)


def _fmt_num(x) -> str:
    if isinstance(x, float):
        return f"{x:.4g}" if not x.is_integer() else str(int(x))
    return str(x)


def window_expr(w: int, win: Window) -> str:
    """The numerator of the output-size rule written like the slides: 227 − 11, 32 + 2*2 − 5."""
    s = str(w)
    if win.pad_lo == win.pad_hi and win.pad_lo:
        s += f" + 2*{win.pad_lo}"
    elif win.pad_lo or win.pad_hi:
        s += f" + {win.pad_lo} + {win.pad_hi}"
    if win.dilation > 1:
        s += f" {MINUS} ({win.dilation}*({win.kernel} {MINUS} 1) + 1)"
    else:
        s += f" {MINUS} {win.kernel}"
    return s


def slide(w: int, win: Window, rounding: str, *, ceil_mode_clip: bool = True) -> tuple[int, str]:
    """Output length of a window sliding over length ``w``; returns (length, arithmetic).

    (W + P_lo + P_hi − (d(k − 1) + 1)) / S + 1 must be a whole number unless ``rounding`` is
    floor (PyTorch) or ceil (Caffe pooling; a last window starting in the right padding is
    dropped, as both frameworks do).
    """
    num = w + win.pad_lo + win.pad_hi - win.extent
    expr = f"({window_expr(w, win)})/{win.stride} + 1"
    if num < 0:
        raise SpecError(
            f"the window ({win.extent}) is larger than the padded input "
            f"({w} + {win.pad_lo + win.pad_hi} = {w + win.pad_lo + win.pad_hi}): {expr} < 1",
            hint="use a smaller kernel, more padding, or check the layers before this one")
    if num % win.stride == 0:
        out = num // win.stride + 1
        return out, f"{expr} = {out}"
    exact = num / win.stride + 1
    if rounding == "floor":
        out = num // win.stride + 1
        return out, f"floor({expr}) = floor({_fmt_num(exact)}) = {out}"
    if rounding == "ceil":
        out = -(-num // win.stride) + 1
        if ceil_mode_clip and (out - 1) * win.stride >= w + win.pad_lo:
            out -= 1
        return out, f"ceil({expr}) = ceil({_fmt_num(exact)}) = {out}"
    raise SpecError(f"{expr} = {_fmt_num(exact)} does not fit; {fit_suggestions(w, win)}")


HINT_SEARCH = 100_000  # trial divisions a hint may spend (hints never loop to a stride or channel count)


def small_divisors(n: int, upto: int, count: int, skip=()) -> list[int]:
    """The ``count`` smallest divisors d ≤ ``upto`` of n ≥ 0 (not in ``skip``), by trial
    division bounded by HINT_SEARCH."""
    out = []
    for d in range(1, min(upto, HINT_SEARCH) + 1):
        if (n == 0 or n % d == 0) and d not in skip:
            out.append(d)
            if len(out) == count:
                break
    return out


def largest_common_divisors(a: int, b: int, count: int = 6) -> list[int]:
    """The ``count`` largest common divisors of a and b, ascending: gcd/d for the smallest
    divisors d of the gcd (found by bounded trial division, so 10^12 channels are instant)."""
    g = math.gcd(a, b)
    if g == 0:
        return []
    smalls = small_divisors(g, math.isqrt(g), count)
    return sorted({g // d for d in smalls} | set(smalls))[-count:]


def fit_suggestions(w: int, win: Window) -> str:
    """What would fit: symmetric pads, asymmetric pads, strides, or an explicit rounding.

    Computed arithmetically (modular inverse, bounded divisor search): a stride of 10^20
    costs no more than a stride of 2."""
    tips = []
    E, S = win.extent, win.stride
    # smallest symmetric pad p in [0, E] with w + 2p − E ≥ 0 and ≡ 0 (mod S)
    r = (E - w) % S
    p_min = max(0, -(-(E - w) // 2))
    p = None
    if S % 2:
        base = (r * pow(2, -1, S)) % S if S > 1 else 0
        p = p_min + (base - p_min) % S
    elif r % 2 == 0:
        half = S // 2
        base = (r // 2) % half
        p = p_min + (base - p_min) % half
    if p is not None and p <= E:
        tips.append(f"use pad {p}")
    total = win.pad_lo + win.pad_hi
    extra = (-(w + total - E)) % S
    if 1 <= extra < S:
        tips.append(f"pad [{win.pad_lo}, {win.pad_hi + extra}] (one-sided)")
    num = w + total - E
    if num >= 0:
        strides = small_divisors(num, E, 3, skip=(S,))
        if strides:
            tips.append(f"stride {' or '.join(str(s) for s in strides)}")
    fl, ce = num // S + 1, -(-num // S) + 1
    tips.append(f"or rounding: floor (→ {fl}) / ceil (→ {ce})")
    return ", ".join(tips)


# ----------------------------------------------------------------------------- the base class
class Layer:
    """One layer instance of a graph.

    Subclasses declare ``kind`` (the spec keyword), ``family``, ``fields`` (argument name →
    (reader, default)), ``primary`` (the argument a scalar form sets: ``{conv: 64}``) and
    implement ``_infer``; they override the counting hooks that apply to them.
    """

    kind: ClassVar[str] = ""
    family: ClassVar[str] = ""
    fields: ClassVar[dict[str, tuple[Any, Any]]] = {}
    primary: ClassVar[str | None] = None
    n_inputs: ClassVar[int | None] = 1  # None: any number ≥ 1
    view: ClassVar[bool] = False  # output aliases the input: no new activation memory
    takes_activation: ClassVar[bool] = True
    doc: ClassVar[str] = ""
    # reads token sequences and tensors in their own (PyTorch) order; a layer without it
    # reads images: a tensor of 3 or 4 axes as C x H x W (x D), anything else is an error
    tensors: ClassVar[bool] = False
    # may read no input at all (``inputs: []``): an op of constants only, its output the same for
    # every sample (EdgeNeXt's learned projection of a fixed Fourier grid: a matmul of two constants)
    sourceless: ClassVar[bool] = False

    # Fields every layer accepts.
    common_fields: ClassVar[dict[str, tuple[Any, Any]]] = {
        "activation": (as_activation, None),
        "rounding": (as_rounding, None),
    }

    def __init__(self, name: str, args: dict | None = None):
        self.name = name
        args = dict(args or {})
        allowed = {**self.common_fields, **self.fields}
        for key in args:
            if key not in allowed:
                raise SpecError(f"unknown field {short(key)} for a {self.kind} layer",
                                layer=name, hint=suggest(key, allowed))
        self.args: dict[str, Any] = {}
        for key, (reader, default) in allowed.items():
            if key in args and args[key] is not None:
                try:
                    self.args[key] = reader(args[key], key)
                except SpecError as e:
                    raise e.located(layer=name)
            elif default is REQUIRED:
                raise SpecError(f"a {self.kind} layer needs '{key}'", layer=name,
                                hint=f"add '{key}: ...' to the layer" +
                                     (f" or write it as {{{self.kind}: <{key}>}}" if key == self.primary else ""))
            else:
                self.args[key] = default
        self.activation = self.args.pop("activation")
        if self.activation == "prelu":  # the spec loader turns it into its own layer
            raise SpecError("a fused prelu would hide its learned slopes", layer=name,
                            hint="add a prelu layer after this one")
        if self.activation and not self.takes_activation:
            raise SpecError(f"a {self.kind} layer cannot carry an activation", layer=name,
                            hint="put the activation on its own line after this layer")
        self.rounding = self.args.pop("rounding")
        self.in_shapes: list[Shape] = []
        self.out_shape: Shape = ()
        self._notes: list[str] = []  # arithmetic of the shape rule, filled by infer

    # -- building -------------------------------------------------------------------------
    def infer(self, in_shapes: list[Shape], rounding: str = "exact") -> Shape:
        """Check the inputs and compute the output shape (Keras' build + compute_output_shape)."""
        if not in_shapes and not self.sourceless:
            raise SpecError(f"a {self.kind} layer reads an input: 'inputs: []' is for an op of constants "
                            f"only (a matmul of two constants)", layer=self.name,
                            hint="name its input, or leave 'inputs' out to read the previous layer")
        if self.n_inputs is not None and len(in_shapes) != self.n_inputs:
            raise SpecError(f"a {self.kind} layer takes {self.n_inputs} input(s), got {len(in_shapes)}",
                            layer=self.name)
        if not self.tensors:
            for s in in_shapes:
                if s.__class__ is Tensor:
                    try:
                        in_shapes = [image_view(x, self.kind) for x in in_shapes]
                    except ValueError as e:
                        raise SpecError(str(e), layer=self.name,
                                        hint="transpose and reshape it to channels-first (C, H, W) first, "
                                             "or use a layer that reads tensors (docs/tensors.md)") from None
                    break
        self.in_shapes = list(in_shapes)
        self._notes = []
        try:
            out = self._infer(self.in_shapes, self.rounding or rounding)
            self.out_shape = out if isinstance(out, tuple) else tuple(out)  # (a Tensor stays one)
        except SpecError as e:
            raise e.located(layer=self.name)
        return self.out_shape

    def _infer(self, in_shapes: list[Shape], rounding: str) -> Shape:
        return in_shapes[0]

    # -- counting hooks (read after infer) ------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Trainable tensors: name → (shape, role) with role 'weight' or 'bias'.

        The runtime allocates exactly these tensors: the code that counts is the code that
        allocates.
        """
        return {}

    def owned_param_shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """The tensors this layer holds: ``param_shapes()``, or none when it uses another's
        (``shares:``). Storage (parameter counts, gradients and optimizer state, checkpoints,
        exports' tensors) counts these; the layer's arithmetic (weight-gradient MACs, what it
        saves for backward) is still that of its ``param_shapes()``, once per use."""
        return {} if self.args.get("shares") else self.param_shapes()

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Non-trainable tensors (BN running statistics)."""
        return {}

    def macs(self) -> int:
        """Multiply-accumulates of conv / fc / locally-connected layers."""
        return 0

    # MACs of the input gradients in training, given which inputs need one (None: as many
    # as the forward's, once: every forward MAC multiplies one input value by one weight)
    input_grad_macs = None
    # MACs of the weight gradients (None: the forward's, when the layer has weights)
    weight_grad_macs = None
    # MACs split over keys of summarize --by type (None: all under the layer's type key)
    mac_parts = None

    def internal_activations(self) -> int:
        """Values a layer writes inside itself besides its output (attention's q, k, v, scores
        and probabilities): counted in the forward and saved-for-backward memory."""
        return 0

    def explain_memory(self) -> str | None:
        """The arithmetic of :meth:`internal_activations`."""
        return None

    def ops(self) -> dict[str, int]:
        """Operations other than MACs, by kind: bias, activation, pool, add, norm."""
        out = self._ops()
        if self.activation:
            out["activation"] = out.get("activation", 0) + numel(self.out_shape)
        return {k: v for k, v in out.items() if v}

    def _ops(self) -> dict[str, int]:
        return {}

    def rf_windows(self):
        """None: pointwise; GLOBAL: sees the whole input; else a Window (or AxisMap) per
        spatial axis."""
        return None

    def rf_inputs(self) -> list[int]:
        """Which inputs carry the receptive field (indices into the inputs): all by default;
        a crop's shape-only 'to:' input and a mul's broadcast gate do not."""
        return list(range(len(self.in_shapes)))

    # -- explanations ---------------------------------------------------------------------
    def explain_shape(self) -> list[str]:
        return list(self._notes)

    def explain_params(self, with_bias: bool = True) -> str | None:
        return None

    def explain_macs(self) -> str | None:
        return None

    def explain_ops(self) -> str | None:
        """The arithmetic of the other ops, where a layer writes it (the tensor ops)."""
        return None

    def describe(self) -> str:
        """A short text like the slides' 'CONV3-64' column."""
        return self.kind

    # -- helpers --------------------------------------------------------------------------
    def _one(self, in_shapes) -> Shape:
        return in_shapes[0]

    def _need_spatial(self, shape: Shape) -> tuple[int, ...]:
        sp = spatial(shape)
        if not sp:
            raise SpecError(f"a {self.kind} layer needs a spatial input (HxWxC or LxC), "
                            f"got the flat vector {fmt_shape(shape)}",
                            hint="move this layer before the flatten / fc layers")
        return sp

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {fmt_shape(self.out_shape) if self.out_shape else '?'}>"


def join_mul(*factors) -> str:
    return "*".join(str(f) for f in factors)


def params_text(weight_factors, n_filters, bias: int, with_bias: bool, total: int) -> str:
    """``(3*3*3)*64 + 64 = 1,792`` — the slide's arithmetic of a parameter count."""
    inner = join_mul(*weight_factors)
    text = f"({inner})*{n_filters}" if len(weight_factors) > 1 else f"{inner}*{n_filters}"
    if with_bias and bias:
        text += f" + {fmt_int(bias) if bias > 9999 else bias}"
    return f"{text} = {fmt_int(total)}"
