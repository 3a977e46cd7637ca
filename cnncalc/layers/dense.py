"""Fully connected layers and flatten."""
from __future__ import annotations

from cnncalc.errors import SpecError
from cnncalc.layers.base import GLOBAL, REQUIRED, Layer, as_bool, as_int, fmt_int
from cnncalc.layers.tensor import chan, effects_of
from cnncalc.shapes import Tensor, fmt_shape, numel, reshape_strides, spatial


class Flatten(Layer):
    kind = "flatten"
    family = "reshape"
    view = True
    takes_activation = False
    tensors = True  # a token sequence or a tensor flattens in its own (PyTorch) order
    doc = "flatten: HxWxC → [H·W·C] (C-major, as PyTorch; a tensor in its own order); a view"

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        n = numel(x)
        self._notes.append(f"{'*'.join(map(str, x))} = {fmt_int(n)}")
        if x.__class__ is Tensor and x.strides is not None and reshape_strides(x, x.strides, (n,)) is None:
            self.view = False  # a view that cannot be flattened in place (a transposed tensor): a copy
        return (n,)


class Dense(Layer):
    kind = "fc"
    family = "dense"
    primary = "units"
    tensors = True  # tokens (N x C) and tensors: applied to the last axis, per token (nn.Linear)
    doc = ("fully connected: units, bias; its input must be flat (or 1x1xC); on tokens (N x C) and "
           "tensors, applied to every token (the last axis), as nn.Linear")
    fields = {"units": (lambda v, n: as_int(v, n), REQUIRED), "bias": (as_bool, True)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        self.rows = 1  # tokens it is applied to
        self.effects = None
        if x.__class__ is Tensor:
            self.rows, self.in_features, self.units = numel(x[:-1]), x[-1], self.args["units"]
            self._notes.append(f"{fmt_int(self.rows)} tokens x {self.in_features} → {self.units}")
            self.effects = effects_of([(x.roles[-1], GLOBAL)])  # a last axis that holds positions
            return Tensor((*x[:-1], self.units), (*x.roles[:-1], chan(self.units)), x.nsp)
        sp = spatial(x)
        if sp and numel(sp) != 1:
            raise SpecError(f"an fc layer needs a flat vector but gets {fmt_shape(x)}",
                            hint=f"add '- flatten' before it ({'*'.join(map(str, x))} = "
                                 f"{fmt_int(numel(x))} inputs), or pool to 1x1 first")
        self.in_features = numel(x)
        self.units = self.args["units"]
        return (self.units,)

    def param_shapes(self):
        out = {"weight": ((self.units, self.in_features), "weight")}
        if self.args["bias"]:
            out["bias"] = ((self.units,), "bias")
        return out

    def macs(self):
        return self.rows * self.in_features * self.units

    def _ops(self):
        return {"bias": self.rows * self.units if self.args["bias"] else 0}

    def rf_windows(self):
        if self.rows > 1 or self.in_shapes[0].__class__ is Tensor:
            return self.effects or None
        return GLOBAL

    def explain_params(self, with_bias=True):
        x = getattr(self, "in_factors", None) or self.in_shapes[0]
        if self.in_shapes[0].__class__ is Tensor:
            x = (self.in_features,)
        factors = "*".join(map(str, x)) if len(x) > 1 else str(self.in_features)
        text = f"{factors}*{self.units}"
        nb = self.units if (with_bias and self.args["bias"]) else 0
        if nb:
            text += f" + {fmt_int(nb)}"
        return f"{text} = {fmt_int(self.in_features * self.units + nb)}"

    def explain_macs(self):
        per = "" if self.in_shapes[0].__class__ is not Tensor else f"{fmt_int(self.rows)} tokens * "
        return f"{per}{fmt_int(self.in_features)}*{fmt_int(self.units)} = {fmt_int(self.macs())}"

    def describe(self):
        return f"fc-{self.args['units']}"
