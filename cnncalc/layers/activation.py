"""Elementwise activations as their own layers, softmax, and maxout."""
from __future__ import annotations

from cnncalc.errors import SpecError
from cnncalc.layers.base import REQUIRED, Layer, as_float, as_int, fmt_int
from cnncalc.layers.tensor import dense
from cnncalc.shapes import numel


class _Elementwise(Layer):
    family = "activation"
    takes_activation = False
    tensors = True  # elementwise: any kind, in its own order

    def _infer(self, in_shapes, rounding):
        return dense(in_shapes[0])

    def _ops(self):
        return {"activation": numel(self.out_shape)}


def _make(kind_: str, doc_: str, extra: dict | None = None):
    cls = type(kind_.capitalize(), (_Elementwise,), {"kind": kind_, "doc": doc_, "fields": extra or {}})
    return cls


ReLU = _make("relu", "max(0, x)")
ReLU6 = _make("relu6", "min(max(0, x), 6) (MobileNet)")
Tanh = _make("tanh", "tanh(x)")
Sigmoid = _make("sigmoid", "1 / (1 + e^−x)")
LeakyReLU = _make("leakyrelu", "max(αx, x)", {"alpha": (lambda v, n: as_float(v, n, 0, 1), 0.01)})
LeakyReLU.primary = "alpha"
SiLU = _make("silu", "x·sigmoid(x) (swish; EfficientNet)")
Hardswish = _make("hardswish", "x·relu6(x + 3)/6 (MobileNetV3)")
Hardsigmoid = _make("hardsigmoid", "relu6(x + 3)/6 (MobileNetV3's SE gate)")
Mish = _make("mish", "x·tanh(softplus(x))")
SELU = _make("selu", "λ·(x if x > 0 else α(e^x − 1)), λ ≈ 1.0507, α ≈ 1.6733")
ELU = _make("elu", "x if x > 0 else α(e^x − 1)", {"alpha": (lambda v, n: as_float(v, n, 0), 1.0)})
ELU.primary = "alpha"
Softplus = _make("softplus", "log(1 + e^(βx))/β (x above threshold/β passes unchanged)",
                 {"beta": (lambda v, n: as_float(v, n, 1e-12), 1.0),
                  "threshold": (lambda v, n: as_float(v, n), 20.0)})
Softplus.primary = "beta"


def _as_approximate(v, name):
    if v not in ("none", "tanh"):
        raise SpecError(f"'{name}' must be none (the exact erf form) or tanh, got {v!r}",
                        hint="as PyTorch's nn.GELU(approximate='none' | 'tanh')")
    return v


GELU = _make("gelu", "x·Φ(x) (exact, erf) or its tanh approximation (`approximate: tanh`)",
             {"approximate": (_as_approximate, "none")})


def _as_slopes(v, name):
    if v in ("channel", "channels", "per-channel"):
        return "channel"
    if v in ("shared", "one", 1):
        return "shared"
    raise SpecError(f"'{name}' must be channel (one slope per channel) or shared (one slope), got {v!r}")


class PReLU(_Elementwise):
    """Parametric ReLU: max(0, x) + a·min(0, x) with learned slopes a (He et al. 2015).

    ``slopes: channel`` (the default) learns one slope per channel — PyTorch's
    ``nn.PReLU(num_parameters=C)``; ``slopes: shared`` learns one — ``nn.PReLU()``.
    """

    kind = "prelu"
    primary = "slopes"
    tensors = False  # one slope per channel: images and flat vectors
    doc = "max(0, x) + a·min(0, x), learned a: one per channel (slopes: channel) or one (shared)"
    fields = {"slopes": (_as_slopes, "channel"), "init": (lambda v, n: as_float(v, n), 0.25)}

    def _n_slopes(self) -> int:
        return 1 if self.args["slopes"] == "shared" or len(self.out_shape) < 1 else self.out_shape[-1]

    def param_shapes(self):
        return {"weight": ((self._n_slopes(),), "weight")}

    def explain_params(self, with_bias=True):
        n = self._n_slopes()
        return (f"one slope shared by all {self.out_shape[-1]} channels = 1" if n == 1 else
                f"one slope per channel = {fmt_int(n)}")


class Maxout(Layer):
    """Maxout with k pieces: the max over groups of k consecutive channels (C → C/k)."""

    kind = "maxout"
    family = "activation"
    primary = "k"
    takes_activation = False
    doc = "maxout with k pieces: C channels → C/k"
    fields = {"k": (lambda v, n: as_int(v, n, 2), REQUIRED)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        k = self.args["k"]
        if x[-1] % k:
            raise SpecError(f"maxout with k = {k} needs channels divisible by {k}, got {x[-1]}",
                            hint=f"make the layer before produce {x[-1] // k * k or k} or "
                                 f"{(x[-1] // k + 1) * k} channels")
        self._notes.append(f"{x[-1]}/{k} = {x[-1] // k} channels")
        return (*x[:-1], x[-1] // k)

    def _ops(self):
        return {"activation": numel(self.out_shape) * (self.args["k"] - 1)}
