"""Elementwise activations as their own layers, softmax, and maxout."""
from __future__ import annotations

from cnncalc.errors import SpecError
from cnncalc.layers.base import REQUIRED, Layer, as_float, as_int
from cnncalc.shapes import numel


class _Elementwise(Layer):
    family = "activation"
    takes_activation = False

    def _ops(self):
        return {"activation": numel(self.out_shape)}


def _make(kind_: str, doc_: str, extra: dict | None = None):
    cls = type(kind_.capitalize(), (_Elementwise,), {"kind": kind_, "doc": doc_, "fields": extra or {}})
    return cls


ReLU = _make("relu", "max(0, x)")
ReLU6 = _make("relu6", "min(max(0, x), 6) (MobileNet)")
Tanh = _make("tanh", "tanh(x)")
Sigmoid = _make("sigmoid", "1 / (1 + e^−x)")
Softmax = _make("softmax", "softmax over the channels")
LeakyReLU = _make("leakyrelu", "max(αx, x)", {"alpha": (lambda v, n: as_float(v, n, 0, 1), 0.01)})
LeakyReLU.primary = "alpha"


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
