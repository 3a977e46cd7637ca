"""The low-level tensor vocabulary: the ops any float graph of the standard ONNX opset is made
of, with exact shape rules and counts (docs/tensors.md).

Every op reads its inputs in PyTorch's per-sample order (an image HxWxC as C, H, W; tokens as
N, C; a flat vector as F), numbers axes that way (negative axes count from the end), and
writes a :class:`~cnncalc.shapes.Tensor`, an image or a flat vector (:func:`~cnncalc.shapes.settle`).

An op's operands are its activation inputs with *constants* put in between: ``const:`` is one
constant or a list, each ``{index, shape, learned, init}`` (a tensor: learned counts as
parameters, else it is a buffer, non-trainable state) or ``{index, value}`` (a number or a
small nested list written in the spec, counted nowhere). ``index`` is the constant's operand
position (default: after the activations); the tensor is named ``const<index>``.

The receptive field is followed through the *roles* of the axes (:class:`~cnncalc.shapes.Tensor`):
:meth:`TensorOp.rf_windows` returns ``{spatial axis: effect}`` where the effect is ``GLOBAL``
(the op reads every unit along it), ``UNKNOWN`` (it scrambles the positions) or an
``AxisMap`` (a slice, a pick, a pad); axes it does not name pass through pointwise.

Counting (per sample): MACs only for ``matmul`` (output elements × contracted length); other
ops by class — ``add`` (add, sub), ``bias`` (adding a learned constant), ``mul`` (mul, div),
``activation`` (unary functions, pow, max, min, where, softmax), ``pool`` (reductions: n − 1
per output). Reshape, transpose, slice, split, gather of one index, expand and flatten are
views (no new memory); concat, stack, tile, pad and the rest write new tensors.
"""
from __future__ import annotations

from cnncalc.errors import SpecError, short
from cnncalc.layers.base import GLOBAL, Layer, as_bool, as_float, axis_map
from cnncalc.shapes import (C, MAX_RANK, Tensor, contiguous, fmt_int, fmt_shape, is_channels, numel,
                            reshape_strides, settle, torch_order)

UNKNOWN = "unknown"  # an rf effect: the op scrambles the positions along a spatial axis


# ----------------------------------------------------------------------------- field readers
def _int(v, name):
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise SpecError(f"'{name}' must be a whole number, got {short(v)}")
    return v


def as_ints(v, name):
    """A list of whole numbers (one number is a list of one)."""
    if isinstance(v, (list, tuple)):
        if len(v) > 64:
            raise SpecError(f"'{name}' has {len(v)} entries; at most 64")
        return tuple(_int(x, name) for x in v)
    return (_int(v, name),)


def as_axis(v, name):
    return _int(v, name)


def _nested_shape(v, name, depth=0):
    """The shape of a rectangular nested list of numbers (a literal constant)."""
    if isinstance(v, bool) or depth > MAX_RANK:
        raise SpecError(f"'{name}' must be a number or a nested list of numbers, got {short(v)}")
    if isinstance(v, (int, float)):
        as_float(v, name)
        return ()
    if not isinstance(v, list) or not v:
        raise SpecError(f"'{name}' must be a number or a nested list of numbers, got {short(v)}")
    inner = [_nested_shape(x, name, depth + 1) for x in v]
    if any(s != inner[0] for s in inner):
        raise SpecError(f"'{name}' is not rectangular: its rows have different lengths")
    return (len(v), *inner[0])


class Const:
    """One constant operand: a tensor (``learned`` or a buffer) or a literal ``value``."""
    __slots__ = ("index", "shape", "learned", "init", "value")

    def __init__(self, index, shape, learned, init, value):
        self.index, self.shape, self.learned, self.init, self.value = index, shape, learned, init, value

    @property
    def tensor(self) -> bool:
        """True for a learned tensor or a buffer (a runtime array), False for a literal."""
        return self.value is None


def as_consts(v, name):
    """``const:`` — one constant or a list of them (see the module docstring)."""
    items = v if isinstance(v, list) and v and all(isinstance(x, dict) for x in v) else [v]
    out = []
    for it in items:
        if not isinstance(it, dict):
            it = {"value": it}
        unknown = set(it) - {"index", "shape", "learned", "init", "value"}
        if unknown:
            raise SpecError(f"unknown field {short(sorted(map(str, unknown))[0])} in '{name}'",
                            hint="a constant is {value: 0.5} or {shape: [96], learned: true, init: 1.0}, "
                                 "with an optional index (its operand position)")
        index = it.get("index")
        index = None if index is None else _int(index, f"{name}.index")
        if index is not None and not 0 <= index < 16:
            raise SpecError(f"'{name}.index' must be between 0 and 15, got {index}")
        if ("value" in it) == ("shape" in it):
            raise SpecError(f"'{name}' needs exactly one of 'value' (a number or nested list written "
                            f"here) and 'shape' (a tensor the weights file holds)")
        if "value" in it:
            if "learned" in it or "init" in it:
                raise SpecError(f"'{name}': a written value is fixed; 'learned' and 'init' go with 'shape'")
            out.append(Const(index, _nested_shape(it["value"], f"{name}.value"), False, None, it["value"]))
            continue
        shape = it["shape"]
        if not isinstance(shape, list) or len(shape) > MAX_RANK:
            raise SpecError(f"'{name}.shape' is a list of up to {MAX_RANK} sizes ([] for a scalar), "
                            f"got {short(shape)}")
        shape = tuple(_int(d, f"{name}.shape") for d in shape)
        if any(d < 1 for d in shape):
            raise SpecError(f"'{name}.shape': every size must be positive, got {list(shape)}")
        learned = as_bool(it.get("learned", True), f"{name}.learned")
        init = it.get("init")
        init = None if init is None else as_float(init, f"{name}.init")
        out.append(Const(index, shape, learned, init, None))
    if len({c.index for c in out if c.index is not None}) < sum(c.index is not None for c in out):
        raise SpecError(f"'{name}': two constants at the same index")
    return tuple(out)


def norm_axis(a: int, rank: int, name: str = "axis") -> int:
    """An axis in 0..rank−1 from one that may count from the end (−1 is the last)."""
    if not -rank <= a < rank:
        raise SpecError(f"'{name}' {a} is out of range for a tensor of {rank} ax{'e' if rank != 1 else 'i'}s "
                        f"(use 0..{rank - 1} or −{rank}..−1)")
    return a % rank


# ----------------------------------------------------------------------------- roles
def canon(role):
    """A role with adjacent channel components merged (``None`` stays ``None``)."""
    if role is None:
        return None
    out = []
    for what, n in role:
        if what == C and out and out[-1][0] == C:
            out[-1] = (C, out[-1][1] * n)
        elif n != 1 or what != C:
            out.append((what, n))
    return tuple(out) or ((C, 1),)


def chan(n: int):
    return ((C, n),)


def spatial_of(role) -> list[int]:
    """The spatial axes a role enumerates (with more than one unit)."""
    return [w for w, n in role or () if w != C and n > 1]


def regroup(in_dims, in_roles, out_dims):
    """The roles of a reshape's output: the axes are grouped into runs of equal products and
    each group's components (row-major) are cut into the output sizes; a cut inside a spatial
    component scrambles the group (None). Size-1 axes keep their roles in order."""
    if tuple(in_dims) == tuple(out_dims):
        return list(in_roles), set()
    ones_in = [r for d, r in zip(in_dims, in_roles) if d == 1]
    n_ones = sum(d == 1 for d in out_dims)
    if n_ones > len(ones_in):  # one axis of 1 x 1 positions (a 1 x 1 map flattened) viewed as
        parts = [c for r in ones_in for c in ([((w, n),) for w, n in r] if r and len(r) > 1 else [r])]
        if len(parts) <= n_ones:  # H x W again: one position each
            ones_in = parts
    elif 0 < n_ones < len(ones_in) and all(r is not None for r in ones_in):  # 1 x 1 positions
        ones_in = [*ones_in[:n_ones - 1], canon(tuple(c for r in ones_in[n_ones - 1:] for c in r))]  # flattened
    a = [(d, r) for d, r in zip(in_dims, in_roles) if d != 1]
    b = [j for j, d in enumerate(out_dims) if d != 1]
    out = [None] * len(out_dims)
    for j, d in enumerate(out_dims):
        if d == 1:
            out[j] = ones_in.pop(0) if ones_in else chan(1)
    scrambled: set[int] = set()
    i = k = 0
    while i < len(a):
        gi, gk = [i], [b[k]]
        pa, pb = a[i][0], out_dims[b[k]]
        i, k = i + 1, k + 1
        while pa != pb:
            if pa < pb:
                gi.append(i)
                pa *= a[i][0]
                i += 1
            else:
                gk.append(b[k])
                pb *= out_dims[b[k]]
                k += 1
        comps = []
        for idx in gi:
            r = a[idx][1]
            comps = None if comps is None or r is None else comps + list(r)
        roles = _cut(comps, [out_dims[j] for j in gk]) if comps is not None else None
        if roles is None:
            for idx in gi:
                scrambled.update(spatial_of(a[idx][1]))
            roles = [None] * len(gk)
        for j, r in zip(gk, roles):
            out[j] = r
    return out, scrambled


def _cut(comps, sizes):
    """Cut row-major components into axes of ``sizes``; None if a spatial component is cut."""
    q = list(canon(comps) or ())
    out = []
    for m in sizes:
        role, need = [], m
        while need > 1:
            what, n = q.pop(0)
            if n <= need and need % n == 0:
                role.append((what, n))
                need //= n
            elif what == C and n % need == 0:
                role.append((C, need))
                q.insert(0, (C, n // need))
                need = 1
            else:
                return None
        out.append(canon(role))
    return out


def broadcast_dims(shapes) -> tuple[int, ...] | None:
    """NumPy's rule, right-aligned: each axis equal or 1 (for images, channels last: a flat [C]
    lines up with the channels; the mul merge's gate). None when the shapes do not broadcast."""
    n = max(len(s) for s in shapes)
    out = []
    for ax in range(n):
        dims = {s[len(s) - n + ax] for s in shapes if len(s) - n + ax >= 0}
        big = dims - {1}
        if len(big) > 1:
            return None
        out.append(big.pop() if big else 1)
    return tuple(out)


def broadcast(shapes, what="operands"):
    """ONNX/NumPy multidirectional broadcasting of per-sample shapes (PyTorch order)."""
    out = broadcast_dims(shapes)
    if out is None:
        raise SpecError(f"the {what} do not broadcast: " + " and ".join(_shape_text(s) for s in shapes),
                        hint="each axis (counted from the right) must be equal or 1")
    return out


def _shape_text(s) -> str:
    """A Tensor as it prints; a plain tuple of sizes in PyTorch's form (2, 3)."""
    if s.__class__ is Tensor:
        return fmt_shape(s)
    return "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"


def dense(shape):
    """A new tensor written by an elementwise layer: the input's dims and roles, dense (not a
    view of the input's storage)."""
    if shape.__class__ is Tensor and shape.strides is not None:
        return Tensor(tuple(shape), shape.roles, shape.nsp)
    return shape


def of_constants(shape) -> bool:
    """A value computed from constants only (a layer without input, ``inputs: []``, and the ops
    after it): no axis of it holds a position of the input (``nsp`` 0) and every axis is
    channel-like (a flat vector of the input has an axis of unknown positions instead)."""
    return shape.__class__ is Tensor and not shape.nsp and all(is_channels(r) for r in shape.roles)


def joined(shapes):
    """The result of an elementwise op of equal-sized tensors (residual adds of tokens): dense,
    with each axis' role where the inputs agree (None where they hold different positions,
    whose fields then cannot be joined: the rf effects say UNKNOWN there)."""
    first = shapes[0]
    roles, bad = [], set()
    # a value of constants only (EdgeNeXt's position encoding) holds no position of the input:
    # the others' roles stand
    voters = [s for s in shapes if not of_constants(s)] or shapes
    for k in range(len(first)):
        rs = {s.roles[k] for s in voters}
        roles.append(next(iter(rs)) if len(rs) == 1 else None)
        if len(rs) > 1:
            for r in rs:
                bad.update(spatial_of(r))
    return Tensor(tuple(first), roles, max(s.nsp for s in shapes)), {s: UNKNOWN for s in bad}


def strides_of(shape) -> tuple[int, ...]:
    """Runtime strides (batch first) of a value in PyTorch's order: images and flat vectors are
    dense; a Tensor says (a view of another's storage keeps that storage's strides)."""
    if shape.__class__ is Tensor and shape.strides is not None:
        return shape.strides
    return contiguous(torch_order(shape))


class Operand:
    """One operand of an op: a per-sample shape (a Tensor, PyTorch order) and either the index
    of the activation input it is, or the constant it is and its operand position ``index``
    (its tensor is named ``const<index>``)."""
    __slots__ = ("shape", "input", "const", "index")

    def __init__(self, shape, input=None, const=None, index=None):
        self.shape, self.input, self.const, self.index = shape, input, const, index

    @property
    def roles(self):
        return self.shape.roles

    @property
    def cname(self) -> str:
        return f"const{self.index}"


# ----------------------------------------------------------------------------- the base class
class TensorOp(Layer):
    """An op of the low-level vocabulary (see the module docstring). Subclasses implement
    ``rule(operands) -> (dims, roles, effects)`` with ``effects`` {spatial axis: GLOBAL |
    UNKNOWN | AxisMap}; ``n_consts`` is how many constant operands the op may take."""

    family = "tensor"
    tensors = True
    takes_activation = False
    n_inputs = None
    n_consts = 0
    n_operands: tuple[int, int] = (1, 1)  # (min, max) operands, constants included

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.n_consts and "const" not in cls.fields:  # an op that takes constants reads 'const:'
            cls.fields = {**cls.fields, "const": (as_consts, ())}

    def __init__(self, name, args=None):
        super().__init__(name, args)
        consts = self.args.get("const", ())
        if len(consts) > self.n_consts:
            raise SpecError(f"a {self.kind} layer takes at most {self.n_consts} constant(s), got {len(consts)}",
                            layer=name)

    # -- operands -----------------------------------------------------------------------
    def operands(self, in_shapes) -> list[Operand]:
        consts = self.args.get("const", ())
        lo, hi = self.n_operands
        total = len(in_shapes) + len(consts)
        if not lo <= total <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi < 99 else f"at least {lo}"
            raise SpecError(f"a {self.kind} layer takes {want} operand(s) (inputs and constants), got {total}",
                            hint="name the inputs with 'inputs: [a, b]', or give a 'const:'")
        slots: list[Operand | None] = [None] * total
        for c in consts:
            if c.index is not None:
                if c.index >= total:
                    raise SpecError(f"constant index {c.index} is past the {total} operands")
                slots[c.index] = Operand(Tensor(c.shape), const=c, index=c.index)
        free = iter([c for c in consts if c.index is None])
        acts = iter(range(len(in_shapes)))
        for k in range(total):
            if slots[k] is None:
                i = next(acts, None)
                slots[k] = (Operand(torch_order(in_shapes[i]), input=i) if i is not None else
                            Operand(Tensor(c.shape), const=(c := next(free)), index=k))
        return slots

    def _infer(self, in_shapes, rounding):
        self.__dict__.pop("view", None)  # (the class's: a rule decides again for these inputs)
        ops = self.operands(in_shapes)
        self.ops_ = ops
        self.nsp = max((o.shape.nsp for o in ops), default=0)
        self.gate_inputs = []  # inputs broadcast along a spatial axis (set by the rule)
        self.out_strides = None  # a view's strides (set by the rule; None: a new, dense tensor)
        dims, roles, effects = self.rule(ops)
        if not 1 <= len(dims) <= MAX_RANK:
            raise SpecError(f"the result would have {len(dims)} axes per sample; tensors have 1 to {MAX_RANK}",
                            hint="keep one axis (keepdims: true), or reshape")
        roles = [canon(r) for r in roles]
        self.effects = {s: e for s, e in effects.items() if e is not None}
        out = settle(dims, roles, self.nsp, self.out_strides)
        if self.view and self.out_strides is not None and out.__class__ is not Tensor \
                and tuple(self.out_strides) != contiguous(dims):
            self.view = False  # an image or a flat vector is dense: this view is written as a copy
        return out

    def view_of(self, x, strides):
        """Mark the result a view with these strides (batch axis first), or — None: the
        storage cannot be viewed that way — a copy."""
        if strides is None:
            self.view = False
        else:
            self.out_strides = tuple(strides)

    # -- counting -----------------------------------------------------------------------
    def _consts(self) -> list[Operand]:
        """The constant operands (after infer)."""
        return [o for o in getattr(self, "ops_", ()) if o.const is not None]

    def const_role(self, c: Const) -> str:
        return "weight"

    def const_init(self, name: str) -> float | None:
        """The 'init:' value of the constant tensor ``name`` (None: the runtime's default)."""
        return next((o.const.init for o in self._consts() if o.cname == name), None)

    def param_shapes(self):
        return {o.cname: (o.const.shape, self.const_role(o.const)) for o in self._consts()
                if o.const.tensor and o.const.learned}

    def state_shapes(self):
        return {o.cname: o.const.shape for o in self._consts() if o.const.tensor and not o.const.learned}

    def explain_params(self, with_bias=True):
        parts = []
        for o in self._consts():
            c = o.const
            if c.tensor:
                what = "learned" if c.learned else "buffer, not trainable"
                parts.append(f"{o.cname} {_shape_text(c.shape)} = {fmt_int(numel(c.shape))} ({what})")
        return "; ".join(parts) or None

    # -- receptive field ----------------------------------------------------------------
    def rf_windows(self):
        return dict(self.effects) or None

    def rf_inputs(self):
        return [i for i in range(len(self.in_shapes)) if i not in self.gate_inputs]

    @property
    def gated(self) -> bool:
        return bool(getattr(self, "gate_inputs", ()))

    # -- text -----------------------------------------------------------------------------
    def operand_text(self) -> str:
        return ", ".join(_shape_text(o.shape) if o.const is None else
                         short(o.const.value, 24) if not o.const.tensor else f"const {_shape_text(o.shape)}"
                         for o in self.ops_)

    def explain_ops(self) -> str | None:
        """The other ops' arithmetic: one per output value unless the op says otherwise (the
        image forms of softmax, concat and split explain nothing more than they always did)."""
        ops = self.ops() if self.ops_ else None
        if not ops:
            return None
        n = numel(self.out_shape)
        return ", ".join(f"{fmt_int(n)} {k}" for k, v in ops.items() if v == n) or None

    def describe(self):
        return self.kind


def effects_of(pairs, nsp=None) -> dict:
    """{spatial axis: effect} from (role, effect) pairs: an effect applies to the spatial
    components of the role; a role met with two different effects, or an AxisMap on a role
    of several spatial components, is UNKNOWN."""
    out: dict = {}
    for role, eff in pairs:
        sps = spatial_of(role)
        for s in sps:
            e = eff if not (hasattr(eff, "a") and len(sps) > 1) else UNKNOWN
            out[s] = e if s not in out or out[s] == e else UNKNOWN
    return out


def twice(roles) -> set[int]:
    """Spatial axes that two axes of one tensor enumerate (a product of positions: QKᵀ)."""
    seen, out = set(), set()
    for r in roles:
        for s in set(spatial_of(r)):
            (out if s in seen else seen).add(s)
    return out


# ----------------------------------------------------------------------------- views
class Reshape(TensorOp):
    """ONNX Reshape / ``torch.reshape`` of one sample: 0 copies the input's size on that axis,
    −1 is inferred (one at most). A view."""

    kind = "reshape"
    primary = "shape"
    view = True
    doc = "reshape one sample to `shape` (PyTorch order; 0 copies that axis, −1 is inferred); a view"
    fields = {"shape": (as_ints, None)}

    def rule(self, ops):
        x = ops[0].shape
        want = self.args["shape"]
        if want is None:
            raise SpecError("a reshape layer needs 'shape'", hint="e.g. {reshape: [8, -1, 32]}")
        dims = []
        for k, d in enumerate(want):
            if d == 0:
                if k >= len(x):
                    raise SpecError(f"'shape' has 0 at axis {k}, but the input {_shape_text(x)} has no axis {k}")
                dims.append(x[k])
            elif d < -1:
                raise SpecError(f"'shape' has {d}; sizes are positive, 0 (copy) or −1 (inferred)")
            else:
                dims.append(d)
        total = numel(x)
        if dims.count(-1) > 1:
            raise SpecError("'shape' has more than one −1")
        if -1 in dims:
            rest = numel([d for d in dims if d != -1])
            if rest == 0 or total % rest:
                raise SpecError(f"cannot infer the −1 of {list(want)}: {fmt_int(total)} values are not a "
                                f"multiple of {fmt_int(rest)}")
            dims[dims.index(-1)] = total // rest
        if numel(dims) != total:
            raise SpecError(f"cannot reshape {_shape_text(x)} ({fmt_int(total)} values) to {list(want)} "
                            f"({fmt_int(numel(dims))} values)")
        roles, scrambled = regroup(x, x.roles, dims)
        self.dims = tuple(dims)
        self.view_of(x, reshape_strides(x, strides_of(x), dims))
        self._notes.append(f"{_shape_text(x)} → {_shape_text(tuple(dims))}")
        return dims, roles, {s: UNKNOWN for s in scrambled}

    def describe(self):
        return f"reshape {_shape_text(self.dims)}" if self.out_shape else "reshape"


class Transpose(TensorOp):
    """ONNX Transpose / ``torch.permute`` of one sample's axes. A view."""

    kind = "transpose"
    primary = "perm"
    view = True
    doc = "permute one sample's axes: output axis k is input axis perm[k] (PyTorch order); a view"
    fields = {"perm": (as_ints, None)}

    def rule(self, ops):
        x = ops[0].shape
        perm = self.args["perm"]
        if perm is None:
            perm = tuple(range(len(x)))[::-1]
        perm = tuple(norm_axis(p, len(x), "perm") for p in perm)
        if sorted(perm) != list(range(len(x))):
            raise SpecError(f"'perm' {list(self.args['perm'])} is not a permutation of the {len(x)} axes "
                            f"of {_shape_text(x)}")
        self.perm = perm
        st = strides_of(x)
        self.view_of(x, (st[0], *(st[1 + p] for p in perm)))
        self._notes.append(f"{_shape_text(x)} → {_shape_text(tuple(x[p] for p in perm))}")
        return [x[p] for p in perm], [x.roles[p] for p in perm], {}

    def describe(self):
        return f"transpose {tuple(self.perm)}" if self.out_shape else "transpose"


def slice_range(n: int, start, end, step) -> range:
    """The indices ONNX Slice takes from an axis of n: negative start/end count from the end,
    both clamped (to [0, n] for a positive step, [−1, n − 1] for a negative one)."""
    if step == 0:
        raise SpecError("a slice step cannot be 0")
    start = n if start is None and step < 0 else start
    if start is None:
        start = 0
    if end is None:
        end = -n - 1 if step < 0 else n
    start = start + n if start < 0 else start
    end = end + n if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), n), min(max(end, 0), n)
    else:
        start, end = min(max(start, -1), n - 1), min(max(end, -1), n - 1)
    return range(start, end, step)


def pick_map(idx: range | list[int], label: str):
    """An AxisMap for output unit o reading input unit idx[o], when idx is an arithmetic
    progression with a positive step (or a single index); else None. A range is read from its
    start and step (never listed: a slice of an axis of 10^12 is as cheap as one of 10)."""
    if isinstance(idx, range):
        if len(idx) == 0 or (len(idx) > 1 and idx.step <= 0):
            return None
        first, step = idx.start, idx.step if len(idx) > 1 else 0
        if step == 0:
            return axis_map(1, 0, lambda o: (first, first + 1), label)
        return axis_map(1, step, lambda o: (first + o * step, first + o * step + 1), label)
    idx = list(idx)
    if len(idx) == 1:
        i = idx[0]
        return axis_map(1, 0, lambda o: (i, i + 1), label)
    step = idx[1] - idx[0]
    if step <= 0 or any(b - a != step for a, b in zip(idx, idx[1:])):
        return None
    first = idx[0]
    return axis_map(1, step, lambda o: (first + o * step, first + o * step + 1), label)


def _index_effect(role, n, idx, label):
    """The rf effect of reading ``idx`` of an axis with ``role``: pointwise for the whole
    axis, an AxisMap for one spatial component, else UNKNOWN (a merged or scrambled axis)."""
    if (idx == range(n) if isinstance(idx, range) else len(idx) == n and list(idx) == list(range(n))):
        return None
    if len(spatial_of(role)) == 1 and len(role) == 1:
        return pick_map(idx, label) or UNKNOWN
    return UNKNOWN


class Slice(TensorOp):
    """ONNX Slice: ``starts``, ``ends``, ``axes`` (default all), ``steps`` (default 1), with
    negative indices and clamping as ONNX. A view."""

    kind = "slice"
    view = True
    doc = "ONNX Slice: starts, ends, axes, steps (negative counts from the end; clamped); a view"
    fields = {"starts": (as_ints, None), "ends": (as_ints, None), "axes": (as_ints, None),
              "steps": (as_ints, None)}

    def rule(self, ops):
        x = ops[0].shape
        a = self.args
        if a["starts"] is None or a["ends"] is None:
            raise SpecError("a slice layer needs 'starts' and 'ends'", hint="e.g. {slice: , starts: [0], ends: [16], axes: [0]}")
        axes = a["axes"] if a["axes"] is not None else tuple(range(len(a["starts"])))
        steps = a["steps"] if a["steps"] is not None else (1,) * len(axes)
        if not len(a["starts"]) == len(a["ends"]) == len(axes) == len(steps):
            raise SpecError("'starts', 'ends', 'axes' and 'steps' need one entry per sliced axis")
        axes = tuple(norm_axis(ax, len(x), "axes") for ax in axes)
        if len(set(axes)) < len(axes):
            raise SpecError("'axes' names an axis twice")
        ranges = {}
        for ax, st, en, step in zip(axes, a["starts"], a["ends"], steps):
            r = slice_range(x[ax], st, en, step)
            if len(r) == 0:
                raise SpecError(f"the slice {st}:{en}:{step} of axis {ax} (size {x[ax]}) is empty")
            ranges[ax] = r
        return slice_rule(self, x, ranges)

    def describe(self):
        return "slice"


def slice_rule(layer, x: Tensor, ranges: dict):
    """Take ``ranges`` {axis: range} of ``x``: dims, roles and rf effects (a spatial axis
    sliced with a positive step keeps an exact field; a merged one becomes unknown)."""
    dims, roles, pairs = list(x), list(x.roles), []
    layer.ranges = ranges
    st = list(strides_of(x))
    for ax, r in ranges.items():
        st[1 + ax] *= r.step
    layer.view_of(x, st)
    for ax, r in ranges.items():
        dims[ax] = len(r)
        eff = _index_effect(x.roles[ax], x[ax], r, f"slice {r.start}:{r.stop}:{r.step}")
        roles[ax] = _picked_role(x.roles[ax], len(r), eff)
        pairs.append((x.roles[ax], eff))
        stop = r.stop if r.stop >= 0 else ""
        layer._notes.append(f"axis {ax}: {r.start}:{stop}:{r.step} of {x[ax]} → {len(r)}")
    return dims, roles, effects_of(pairs)


def _picked_role(role, n, eff):
    """The role of an axis after taking n of its units (effect ``eff``)."""
    if eff is None:
        return role
    if is_channels(role):
        return chan(n)
    if eff == UNKNOWN:
        return None
    return ((spatial_of(role)[0], n),)


def relative_index(grid) -> list[int]:
    """Swin's relative position index on a key grid (1 to 3 sizes), flattened over (query, key):
    per axis the offset q − k shifted by g − 1 to start at 0, the digits joined in mixed radix of
    2g − 1 (the first axis most significant) — the index of a relbias layer with signed
    offsets, as torchvision's ``relative_position_index`` holds it."""
    pos = [()]
    for g in grid:
        pos = [p + (i,) for p in pos for i in range(g)]
    out = []
    for q in pos:
        for k in pos:
            v = 0
            for a, b, g in zip(q, k, grid):
                v = v * (2 * g - 1) + a - b + g - 1
            out.append(v)
    return out


class Gather(TensorOp):
    """ONNX Gather with a constant index: ``indices`` (a number removes the axis; a list keeps
    it with one entry per index; nested lists give their shape), negative from the end, or
    ``relative: grid`` (Swin's relative position index on that key grid, flattened: N·N
    indices into the (2g − 1)·… offsets; Swin V2's position-bias MLP output read by it). A
    view for one index (``torch.select``), a copy otherwise."""

    kind = "gather"
    primary = "indices"
    view = True  # one index (torch.select); a list of indices copies
    doc = ("take `indices` (a number, list or nested list; negative from the end), or `relative: grid` "
           "(Swin's relative position index), along `axis`")
    fields = {"indices": (lambda v, n: v, None), "axis": (as_axis, 0), "relative": (as_ints, None)}

    def rule(self, ops):
        x = ops[0].shape
        idx = self.args["indices"]
        rel = self.args["relative"]
        if rel is not None:
            if idx is not None:
                raise SpecError("a gather layer takes 'indices' or 'relative', not both")
            if not 1 <= len(rel) <= 3 or any(g < 1 for g in rel) or numel(tuple(rel)) > 1024:
                raise SpecError("'relative' is the key grid of Swin's relative position index: 1 to 3 sizes ≥ 1, "
                                "at most 1,024 positions", hint="e.g. {gather: , relative: [8, 8]}")
            idx = relative_index(rel)
        if idx is None:
            raise SpecError("a gather layer needs 'indices'", hint="e.g. {gather: 0, axis: 0} (the first token)")
        ax = norm_axis(self.args["axis"], len(x))
        ishape = _nested_shape(idx, "indices")
        self.ishape = ishape
        flat = _flatten(idx)
        n = x[ax]
        for i in flat:
            if isinstance(i, float) and not i.is_integer() or not -n <= i < n:
                raise SpecError(f"index {i} is out of range for axis {ax} of size {n}")
        flat = [int(i) % n for i in flat]
        self.axis, self.flat = ax, flat
        st = strides_of(x)
        self.view_of(x, (*st[:1 + ax], *st[2 + ax:]) if not ishape else None)  # one index: torch.select
        eff = _index_effect(x.roles[ax], n, flat, f"gather {flat[0]}" if len(flat) == 1 else "gather")
        if ishape and len(ishape) == 1:
            new_roles = [_picked_role(x.roles[ax], len(flat), eff)]
        else:  # a number removes the axis; nested indices scramble it unless they name no position
            new_roles = [chan(d) if is_channels(x.roles[ax]) else None for d in ishape]
            if ishape and not is_channels(x.roles[ax]):
                eff = UNKNOWN
        dims = (*x[:ax], *ishape, *x[ax + 1:])
        roles = (*x.roles[:ax], *new_roles, *x.roles[ax + 1:])
        shown = f"Swin's relative index on {'x'.join(map(str, rel))}" if rel is not None else short(idx, 40)
        self._notes.append(f"axis {ax} of {n}: indices {shown} → {_shape_text(dims)}")
        return dims, roles, effects_of([(x.roles[ax], eff)])

    def describe(self):
        rel = self.args["relative"]
        return f"gather axis {self.args['axis']}" + (f" relative {'x'.join(map(str, rel))}" if rel else "")


def _flatten(v):
    return [v] if not isinstance(v, list) else [y for x in v for y in _flatten(x)]


class Expand(TensorOp):
    """ONNX Expand / ``torch.expand``: broadcast one sample to ``shape`` (bidirectional, as
    ONNX). A view: nothing is copied."""

    kind = "expand"
    primary = "shape"
    view = True
    doc = "broadcast one sample to `shape` (ONNX Expand, right-aligned); a view"
    fields = {"shape": (as_ints, None)}

    def rule(self, ops):
        x = ops[0].shape
        want = self.args["shape"]
        if want is None or any(d < 1 for d in want):
            raise SpecError("an expand layer needs 'shape', sizes ≥ 1", hint="e.g. {expand: [4, 196, 768]}")
        dims = broadcast([x, want], "input and 'shape'")
        r = len(dims)
        roles = [x.roles[k - (r - len(x))] if k >= r - len(x) and x[k - (r - len(x))] == dims[k] else chan(dims[k])
                 for k in range(r)]
        self._notes.append(f"{_shape_text(x)} → {_shape_text(dims)} (size-1 axes repeated, not copied)")
        self.out_shape_t = dims
        st = strides_of(x)
        self.view_of(x, (st[0], *(st[1 + k - (r - len(x))] if k >= r - len(x) and x[k - (r - len(x))] == dims[k]
                                  else 0 for k in range(r))))
        return dims, roles, {}


class Tile(TensorOp):
    """ONNX Tile / ``torch.tile``: ``repeats`` copies along each axis. A new tensor."""

    kind = "tile"
    primary = "repeats"
    doc = "repeat one sample `repeats` times along each axis (ONNX Tile)"
    fields = {"repeats": (as_ints, None)}

    def rule(self, ops):
        x = ops[0].shape
        reps = self.args["repeats"]
        if reps is None or len(reps) != len(x) or any(k < 1 for k in reps):
            raise SpecError(f"'repeats' needs one whole number ≥ 1 per axis of {_shape_text(x)}")
        dims = [d * k for d, k in zip(x, reps)]
        roles = [r if k == 1 else canon(((C, k), *(r or ()))) if r is not None else None
                 for r, k in zip(x.roles, reps)]
        self._notes.append(" * ".join(f"{d}*{k}" for d, k in zip(x, reps)) + f" → {_shape_text(tuple(dims))}")
        return dims, roles, {}


# ----------------------------------------------------------------------------- elementwise
def _broadcast_roles(ops, dims):
    """Each output axis takes the role of the activation operands that have its full size
    (None if they disagree); axes only constants fill are channel-like. Also returns the
    activation inputs broadcast along a spatial axis of the output (gates, as a
    squeeze-excitation's: the receptive field follows the others and flags the gate)."""
    r = len(dims)
    roles = []
    # (an input of constants only holds no position of the input: a constant here)
    acts = [o for o in ops if o.const is None and not of_constants(o.shape)] or [o for o in ops if o.const is None]
    for k in range(r):
        n = dims[k]
        found = []
        for o in acts:
            j = k - (r - len(o.shape))
            if j >= 0 and (o.shape[j] == n or n == 1):
                found.append(o.roles[j])
        if not found:
            roles.append(chan(n))
        elif n == 1 or all(f == found[0] for f in found):
            roles.append(found[0])
        else:
            roles.append(None)
    out_sp = {s for role in roles for s in spatial_of(role)}
    gates = [o.input for o in acts if out_sp - {s for role in o.roles for s in spatial_of(role)}]
    return roles, gates


def elementwise_rule(layer, ops):
    """Broadcast operands: the result's dims, roles and rf effects; sets the layer's gates."""
    if all(o.const is not None for o in ops):
        raise SpecError(f"a {layer.kind} layer needs at least one input that is not a constant")
    dims = broadcast([o.shape for o in ops])
    roles, gates = _broadcast_roles(ops, dims)
    if any(tuple(o.shape) != dims for o in ops):
        layer._notes.append(f"{layer.operand_text()} → {_shape_text(dims)} (size-1 axes broadcast)")
    if len(gates) == sum(o.const is None for o in ops):  # every input broadcast: an outer op
        return dims, roles, {s: UNKNOWN for s in range(layer.nsp)}
    layer.gate_inputs = gates
    return dims, roles, {s: UNKNOWN for s in twice(roles)}


BINARY = {  # op: (op class of the count, what it computes)
    "add": ("add", "a + b"), "sub": ("add", "a − b"), "mul": ("mul", "a·b"), "div": ("mul", "a / b"),
    "pow": ("activation", "a^b"), "max": ("activation", "max(a, b)"), "min": ("activation", "min(a, b)"),
}


def _choice(options, what):
    def read(v, name):
        if v not in options:
            raise SpecError(f"unknown {what} {short(v)}", hint="one of " + ", ".join(options))
        return v
    return read


class Binary(TensorOp):
    """A broadcasting elementwise op of two operands (activations or a constant): add, sub,
    mul, div, pow, max, min (ONNX broadcasting, per sample). Counts one op per output value in
    the op's class; adding a learned constant is a ``bias``."""

    kind = "binary"
    primary = "op"
    n_consts = 2
    n_operands = (2, 2)
    sourceless = True
    doc = ("a (op) b with broadcasting, op one of " + ", ".join(BINARY) + "; b (or a, index 0) may be a const, "
           "or both with inputs: [] (one learned: the same for every sample)")
    fields = {"op": (_choice(tuple(BINARY), "binary op"), None)}

    def rule(self, ops):
        if self.args["op"] is None:
            raise SpecError("a binary layer needs 'op'", hint="e.g. {binary: sub, inputs: [x, mean]}")
        if all(o.const is not None for o in ops):  # a layer of constants only (inputs: [])
            if not any(o.const.tensor and o.const.learned for o in ops):
                raise SpecError("a binary op of two constants needs a learned one (of fixed values only, it "
                                "is a constant: write its result as one)")
            dims = broadcast([o.shape for o in ops])
            if any(tuple(o.shape) != dims for o in ops):
                self._notes.append(f"{self.operand_text()} → {_shape_text(dims)} (size-1 axes broadcast)")
            return dims, [chan(d) for d in dims], {}
        return elementwise_rule(self, ops)

    def const_role(self, c):
        return "bias" if self.args["op"] in ("add", "sub") else "weight"

    def _ops(self):
        cls = BINARY[self.args["op"]][0]
        if cls == "add" and any(o.const.tensor and o.const.learned for o in self._consts()):
            cls = "bias"
        return {cls: numel(self.out_shape)}

    def describe(self):
        c = [o for o in getattr(self, "ops_", ()) if o.const is not None]
        if c and c[0].const.value is not None and not c[0].shape:
            v = c[0].const.value
            return f"{self.args['op']} {v}" if c[0].index else f"{v} {self.args['op']}"
        return f"{self.args['op']}" + (" const" if c else "")


class Where(TensorOp):
    """ONNX Where with a constant condition: ``cond ? a : b`` with broadcasting; the condition
    is the constant at index 0 (a buffer or a written value; nonzero is true). Counts one op
    (``activation``) per output value, as a masked fill."""

    kind = "where"
    n_consts = 2
    n_operands = (3, 3)
    doc = "cond ? a : b with broadcasting; cond is a constant (index 0), a or b may be one too"

    def rule(self, ops):
        if ops[0].const is None:
            raise SpecError("where's condition (operand 0) must be a constant",
                            hint="give it as const: {index: 0, shape: [...], learned: false} or {index: 0, value: ...}")
        if ops[0].const.tensor and ops[0].const.learned:
            raise SpecError("where's condition is a mask, not a learned tensor", hint="write learned: false")
        return elementwise_rule(self, ops)

    def _ops(self):
        return {"activation": numel(self.out_shape)}


UNARY = {  # what each computes (one op per value, class activation)
    "neg": "−x", "abs": "|x|", "sqrt": "√x", "exp": "eˣ", "log": "ln x", "reciprocal": "1/x",
    "erf": "erf(x)", "sin": "sin x", "cos": "cos x", "floor": "⌊x⌋", "ceil": "⌈x⌉", "round": "round(x) (half to even)",
    "sign": "sign(x)",
}


class Unary(TensorOp):
    """A unary elementwise function (``op``: neg, abs, sqrt, exp, log, reciprocal, erf, sin,
    cos, floor, ceil, round, sign); one ``activation`` op per value. (tanh, sigmoid, relu and
    the other activations are their own layers and read tensors as well.)"""

    kind = "unary"
    primary = "op"
    doc = "f(x) elementwise, op one of " + ", ".join(UNARY)
    fields = {"op": (_choice(tuple(UNARY), "unary op"), None)}

    def rule(self, ops):
        if self.args["op"] is None:
            raise SpecError("a unary layer needs 'op'", hint="e.g. {unary: sqrt}")
        x = ops[0].shape
        return x, x.roles, {}

    def _ops(self):
        return {"activation": numel(self.out_shape)}

    def describe(self):
        return self.args["op"]


# ----------------------------------------------------------------------------- reductions
REDUCE = {  # op: (ops per output over n reduced values, as (class, count) pairs), formula
    "sum": lambda n: {"pool": n - 1}, "mean": lambda n: {"pool": n - 1},
    "max": lambda n: {"pool": n - 1}, "min": lambda n: {"pool": n - 1}, "prod": lambda n: {"pool": n - 1},
    "l1": lambda n: {"activation": n, "pool": n - 1}, "sumsquare": lambda n: {"mul": n, "pool": n - 1},
    "l2": lambda n: {"mul": n, "pool": n - 1, "activation": 1},
    "logsumexp": lambda n: {"activation": n + 1, "pool": n - 1},
}


def _axes_of(v, rank, name="axes"):
    if v is None:
        return tuple(range(rank))
    out = tuple(sorted({norm_axis(a, rank, name) for a in v}))
    if len(out) < len(v):
        raise SpecError(f"'{name}' names an axis twice")
    return out


class Reduce(TensorOp):
    """ONNX Reduce*: ``op`` over ``axes`` (default all), ``keepdims`` (default true, as ONNX).
    Counts per output value n − 1 combines (class ``pool``, as pooling windows: a mean over
    H and W counts as a global average pool), plus the elementwise steps of l1 (|x|), l2 and
    sumsquare (x², and √ for l2) and logsumexp (eˣ, and ln)."""

    kind = "reduce"
    primary = "op"
    doc = "reduce over `axes` (PyTorch order, default all), keepdims; op one of " + ", ".join(REDUCE)
    fields = {"op": (_choice(tuple(REDUCE), "reduce op"), None), "axes": (as_ints, None),
              "keepdims": (as_bool, True)}

    def rule(self, ops):
        x = ops[0].shape
        if self.args["op"] is None:
            raise SpecError("a reduce layer needs 'op'", hint="e.g. {reduce: mean, axes: [-1]}")
        axes = _axes_of(self.args["axes"], len(x))
        self.axes = axes
        self.n = numel([x[a] for a in axes])
        keep = self.args["keepdims"]
        dims, roles = [], []
        for k, (d, r) in enumerate(zip(x, x.roles)):
            if k not in axes:
                dims.append(d)
                roles.append(r)
            elif keep:
                dims.append(1)
                roles.append(tuple((w, 1) for w, _ in r) if r is not None else chan(1))
        if not dims:
            raise SpecError(f"reducing every axis of {_shape_text(x)} without keepdims leaves no axis per sample",
                            hint="write keepdims: true (then reshape to [1] if needed)")
        self._notes.append(f"{self.args['op']} over axes {list(axes)}: {fmt_int(self.n)} values per output")
        return dims, roles, effects_of([(x.roles[a], GLOBAL) for a in axes])

    def _ops(self):
        per = REDUCE[self.args["op"]](self.n)
        return {k: v * numel(self.out_shape) for k, v in per.items()}

    def explain_ops(self):
        out, n = numel(self.out_shape), self.n
        return ", ".join(f"{expr}*{fmt_int(out)} = {fmt_int(v * out)} {k}" for k, v, expr in (
            (k, v, f"({fmt_int(n)} − 1)" if k == "pool" else f"{fmt_int(v)}")
            for k, v in REDUCE[self.args["op"]](n).items()))

    def describe(self):
        return f"reduce {self.args['op']}"


def channel_axis(shape, what: str) -> int:
    """The channel axis of an input in PyTorch order: 0 of an image (C, H, W) or a flat vector,
    1 of tokens (N, C); a generic tensor has none."""
    if shape.__class__ is not Tensor:
        return 0
    if shape.kind == "tokens":
        return 1
    raise SpecError(f"a {what} layer on the tensor {_shape_text(shape)} needs 'axis' (which axis, PyTorch order)")


class _AxisSoftmax(TensorOp):
    """Softmax / log-softmax over one axis: each output reads the whole axis (the receptive
    field is global along a spatial axis it runs over). One ``activation`` op per value (as
    the softmax layer)."""

    doc = "log-softmax over `axis` (PyTorch order; default the channels)"
    fields = {"axis": (as_axis, None)}

    def _infer(self, in_shapes, rounding):
        if self.args["axis"] is None and in_shapes[0].__class__ is not Tensor:
            self.ops_, self.effects, self.gate_inputs, self.axis = (), {}, [], None
            return in_shapes[0]  # over the channels of an image or a flat vector: pointwise
        return super()._infer(in_shapes, rounding)

    def rule(self, ops):
        x = ops[0].shape
        a = self.args["axis"]
        ax = norm_axis(a, len(x)) if a is not None else channel_axis(self.in_shapes[0], self.kind)
        self.axis = ax
        self._notes.append(f"over axis {ax} ({x[ax]} values)")
        return x, x.roles, effects_of([(x.roles[ax], GLOBAL)])

    def _ops(self):
        return {"activation": numel(self.out_shape)}


class Softmax(_AxisSoftmax):
    """Softmax over the channels (``axis`` absent) or over ``axis`` (PyTorch order: attention's
    softmax over the keys is axis −1)."""

    kind = "softmax"
    family = "activation"
    doc = "softmax over the channels, or over `axis` (PyTorch order)"

    def describe(self):
        return "softmax" if self.args["axis"] is None else f"softmax axis {self.args['axis']}"


class LogSoftmax(_AxisSoftmax):
    kind = "logsoftmax"

    def describe(self):
        return "logsoftmax" if self.args["axis"] is None else f"logsoftmax axis {self.args['axis']}"


# ----------------------------------------------------------------------------- matmul
class MatMul(TensorOp):
    """ONNX MatMul / ``torch.matmul`` of two operands (two activations, or an activation and a
    constant), per sample: (…, M, K) @ (…, K, N) → (…, M, N) with broadcast batch axes and
    1-D operands promoted as NumPy. MACs = output values × K. A constant is a ``weight``."""

    kind = "matmul"
    n_consts = 2
    n_operands = (2, 2)
    sourceless = True
    doc = ("a @ b (torch.matmul: batched, broadcast, 1-D promoted); b (or a) may be a const, or both "
           "with inputs: [] (the same for every sample); MACs = out × K")

    def rule(self, ops):
        a, b = ops[0].shape, ops[1].shape
        if all(o.const is not None for o in ops) and not any(o.const.tensor and o.const.learned for o in ops):
            raise SpecError("a matmul of two constants needs a learned one (of fixed values only, it is a "
                            "constant: write its result as one)")
        if not a or not b:
            raise SpecError("a matmul's operands have at least one axis (a scalar factor is {binary: mul})")
        ad, ar = (list(a), list(a.roles)) if len(a) > 1 else ([1, a[0]], [chan(1), a.roles[0]])
        bd, br = (list(b), list(b.roles)) if len(b) > 1 else ([b[0], 1], [b.roles[0], chan(1)])
        if ad[-1] != bd[-2]:
            raise SpecError(f"matmul needs a's last axis = b's second to last: {_shape_text(a)} @ {_shape_text(b)} "
                            f"({ad[-1]} ≠ {bd[-2]})")
        batch = broadcast([ad[:-2], bd[:-2]], "batch axes of the operands") if len(ad) > 2 or len(bd) > 2 else ()
        self.k = ad[-1]
        parts = [Operand(Tensor(d[:-2], r[:-2]), o.input, o.const) for o, d, r in ((ops[0], ad, ar), (ops[1], bd, br))]
        broles = _broadcast_roles(parts, batch)[0] if batch else []
        dims = [*batch, ad[-2], bd[-1]]
        roles = [*broles, ar[-2] if ops[0].const is None else chan(ad[-2]),
                 br[-1] if ops[1].const is None else chan(bd[-1])]
        if len(a) == 1:
            del dims[-2], roles[-2]
        if len(b) == 1:
            del dims[-1], roles[-1]
        if not dims:
            dims, roles = [1], [chan(1)]
        pairs = [(ar[-1], GLOBAL)] if ops[0].const is None else []
        pairs += [(br[-2], GLOBAL)] if ops[1].const is None else []
        pairs += [(r, None) for r in roles]
        eff = effects_of(pairs)
        for s in twice(roles):
            eff[s] = UNKNOWN
        self._notes.append(f"{self.operand_text()} → {_shape_text(tuple(dims))}")
        return dims, roles, eff

    def macs(self):
        return numel(self.out_shape) * self.k

    def input_grad_macs(self, flows):
        """Backward: dA = dY·Bᵀ and dB = Aᵀ·dY, the forward's MACs each, for every activation
        operand whose gradient flows (a constant's is the weight gradient)."""
        return self.macs() * sum(flows[o.input] for o in self.ops_ if o.const is None)

    def explain_macs(self):
        return f"{fmt_int(numel(self.out_shape))} outputs * {fmt_int(self.k)} (contracted) = {fmt_int(self.macs())}"

    def describe(self):
        c = [o for o in getattr(self, "ops_", ()) if o.const is not None]
        return "matmul" + (f" const {_shape_text(c[0].shape)}" if c else "")


# ----------------------------------------------------------------------------- a learned table read by offsets
OFFSETS = ("abs", "signed")


def offset_table_size(grid, stride, offsets: str) -> tuple[int, ...]:
    """The sizes of the digits of a relbias table per grid axis: ``abs`` numbers |q·s − k| in
    0..g−1 (g values); ``signed`` numbers q·s − k from −(g − 1) to (⌈g/s⌉ − 1)·s, that is
    (⌈g/s⌉ − 1)·s + g values (2g − 1 for stride 1: Swin's)."""
    if offsets == "abs":
        return tuple(grid)
    return tuple((-(-g // s) - 1) * s + g for g, s in zip(grid, stride))


def query_grid(grid, stride) -> tuple[int, ...]:
    """The query positions: every ``stride``-th of the key grid from 0 (⌈g/s⌉ per axis)."""
    return tuple(-(-g // s) for g, s in zip(grid, stride))


class RelBias(Layer):
    """A learned table read by position offsets and added to attention logits (LeViT's and
    EfficientViT's ``attention_biases[:, attention_bias_idxs]``, Swin's relative position
    bias): the input is (…, heads, Nq, Nk) (or (…, Nq, Nk) for one head) with the keys on a
    ``grid`` (Nk = ∏ grid, row-major) and the queries at every ``stride``-th key position
    (Nq = ∏ ⌈g/s⌉); entry (h, q, k) adds ``table[h, index(q, k)]``, where the index is the
    offset q·s − k per axis (``offsets: abs`` its absolute value, ``signed`` shifted to start at
    0) written in mixed radix, the first axis most significant. The table (heads x T) is the
    layer's parameters; one ``bias`` op per output value."""

    kind = "relbias"
    family = "tensor"
    primary = "grid"
    tensors = True
    takes_activation = False
    doc = ("add table[h, index(q, k)]: a learned heads x T table read by the offset of query q "
           "(every `stride`-th key position) from key k on `grid`; `offsets` abs or signed")
    fields = {"grid": (as_ints, None), "heads": (lambda v, n: _positive(v, n), 1),
              "stride": (as_ints, None), "offsets": (_choice(OFFSETS, "offsets"), "abs")}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        a = self.args
        grid = a["grid"]
        if grid is None or not 1 <= len(grid) <= 3 or any(g < 1 for g in grid):
            raise SpecError("a relbias layer needs 'grid': the key positions' grid, 1 to 3 sizes ≥ 1",
                            hint="e.g. {relbias: [7, 7], heads: 4}")
        stride = a["stride"] or (1,) * len(grid)
        if len(stride) == 1 and len(grid) > 1:
            stride = stride * len(grid)
        if len(stride) != len(grid) or any(s < 1 for s in stride):
            raise SpecError(f"'stride' needs one whole number ≥ 1 per grid axis ({len(grid)}), got {list(stride)}")
        self.grid, self.stride = tuple(grid), tuple(stride)
        self.qgrid = query_grid(grid, stride)
        self.digits = offset_table_size(grid, stride, a["offsets"])
        nq, nk, h = numel(self.qgrid), numel(grid), a["heads"]
        self.table = (h, numel(self.digits))
        want = (h, nq, nk) if h > 1 else (nq, nk)
        if x.__class__ is not Tensor or len(x) < len(want) or tuple(x[len(x) - len(want):]) != want:
            raise SpecError(f"a relbias layer of {h} head(s) on the grid {list(grid)} (stride {list(stride)}: "
                            f"{nq} queries, {nk} keys) reads a tensor ending in {_shape_text(want)}, got "
                            f"{_shape_text(x) if x.__class__ is Tensor else fmt_shape(x)}",
                            hint="the attention logits q·kᵀ, heads before queries before keys")
        self._notes.append(f"table {h} x {'*'.join(map(str, self.digits))} = {fmt_int(numel(self.table))} "
                           f"({a['offsets']} offsets), read at {nq} x {nk} query-key pairs")
        return Tensor(tuple(x), x.roles, x.nsp)

    def param_shapes(self):
        return {"table": (self.table, "bias")}

    def const_init(self, name):
        return 0.0  # (timm starts the table at zero)

    def _ops(self):
        return {"bias": numel(self.out_shape)}

    def explain_ops(self):
        return f"{fmt_int(numel(self.out_shape))} bias"

    def explain_params(self, with_bias=True):
        return f"{self.table[0]} heads * {numel(self.digits)} offsets = {fmt_int(numel(self.table))}"

    def describe(self):
        st = getattr(self, "stride", ())
        return (f"relbias {'x'.join(map(str, self.args['grid'] or ()))}" +
                (f" /{'x'.join(map(str, st))}" if any(s != 1 for s in st) else "") +
                (" signed" if self.args["offsets"] == "signed" else ""))


def _positive(v, name):
    v = _int(v, name)
    if v < 1:
        raise SpecError(f"'{name}' must be at least 1, got {v}")
    return v


# ----------------------------------------------------------------------------- joining
def join_roles(ops, axis, dims):
    """Roles of a concat/stack result off the joining axis: the activation operands' (None
    where they disagree), channel-like where only constants are."""
    roles = []
    for k in range(len(dims)):
        rs = [o.roles[k] for o in ops if o.const is None]
        roles.append(chan(dims[k]) if not rs else rs[0] if all(r == rs[0] for r in rs) else None)
    return roles


def concat_rule(layer, ops, axis):
    """Concat along ``axis`` (PyTorch order) of operands of equal rank and equal sizes elsewhere."""
    first = ops[0].shape
    ax = norm_axis(axis, len(first))
    for o in ops[1:]:
        s = o.shape
        if len(s) != len(first) or any(s[k] != first[k] for k in range(len(first)) if k != ax):
            raise SpecError("concat needs equal sizes off the joined axis, got "
                            + ", ".join(_shape_text(o.shape) for o in ops),
                            hint=f"axis {ax} is joined (PyTorch order); every other axis must match")
    layer.axis = ax
    dims = list(first)
    dims[ax] = sum(o.shape[ax] for o in ops)
    roles = join_roles(ops, ax, dims)
    along = [o.roles[ax] for o in ops]
    roles[ax] = chan(dims[ax]) if all(is_channels(r) for r in along) else None
    layer._notes.append(" + ".join(str(o.shape[ax]) for o in ops) + f" = {dims[ax]} along axis {ax}")
    eff = {} if roles[ax] is not None else effects_of([(r, UNKNOWN) for r in along if r is not None])
    if roles[ax] is None and any(r is None for r in along):
        eff = {s: UNKNOWN for s in range(layer.nsp)}
    return dims, roles, eff


class Stack(TensorOp):
    """``torch.stack``: operands of equal shape joined along a new axis ``axis``."""

    kind = "stack"
    n_consts = 4
    n_operands = (1, 99)
    doc = "join equal-shaped operands along a new axis `axis` (PyTorch order)"
    fields = {"axis": (as_axis, 0)}

    def rule(self, ops):
        first = ops[0].shape
        for o in ops[1:]:
            if tuple(o.shape) != tuple(first):
                raise SpecError("stack needs operands of equal shape, got " + ", ".join(_shape_text(o.shape) for o in ops))
        ax = self.axis = norm_axis(self.args["axis"], len(first) + 1)
        dims = [*first[:ax], len(ops), *first[ax:]]
        base = join_roles(ops, None, first)
        self._notes.append(f"{len(ops)} x {_shape_text(first)} → {_shape_text(tuple(dims))}")
        return dims, [*base[:ax], chan(len(ops)), *base[ax:]], {}


# ----------------------------------------------------------------------------- padding
PAD_MODES = ("zero", "constant", "reflect", "replicate")


def pad_rule(layer, x, pads, axes, mode):
    """Pad per axis (lo, hi) along ``axes`` (PyTorch order) of a Tensor ``x``."""
    dims, roles, pairs = list(x), list(x.roles), []
    for ax, (lo, hi) in zip(axes, pads):
        n = x[ax]
        if mode == "reflect" and max(lo, hi) >= n:
            raise SpecError(f"reflect padding of {max(lo, hi)} needs an axis longer than that, got {n}",
                            hint="pad less, or use mode: zero / replicate")
        dims[ax] = n + lo + hi
        r = x.roles[ax]
        if is_channels(r):
            roles[ax] = chan(dims[ax])
        elif len(r or ()) == 1 and not (lo == hi == 0):
            roles[ax] = ((r[0][0], dims[ax]),)
            pairs.append((r, axis_map(1, 1, lambda o, lo=lo: (o - lo, o - lo + 1), f"pad {lo} before")))
        elif lo or hi:
            roles[ax] = None
            pairs.append((r, UNKNOWN))
        layer._notes.append(f"axis {ax}: {n} + {lo} + {hi} = {dims[ax]}")
    return dims, roles, effects_of(pairs)


def pad_source(n: int, lo: int, hi: int, mode: str) -> list[int]:
    """Which unit of an axis of n each unit of the padded axis copies: reflect mirrors without
    the edge (ONNX and PyTorch reflect), replicate clamps (ONNX edge)."""
    out = []
    for o in range(-lo, n + hi):
        if mode == "replicate":
            out.append(min(max(o, 0), n - 1))
        else:
            period = 2 * (n - 1)
            m = abs(o) % period if n > 1 else 0
            out.append(period - m if m >= n else m)
    return out


__all__ = ["TensorOp", "RelBias", "offset_table_size", "query_grid", "OFFSETS", "Reshape", "Transpose", "Slice", "Gather", "Expand", "Tile", "Binary", "Where",
           "Unary", "Reduce", "Softmax", "LogSoftmax", "channel_axis", "MatMul", "Stack", "UNKNOWN", "BINARY", "UNARY", "REDUCE",
           "Const", "as_consts", "concat_rule", "slice_rule", "pad_rule", "slice_range", "norm_axis", "effects_of",
           "PAD_MODES", "pad_source", "dense", "joined"]
