"""Batch normalisation, local response normalisation, dropout."""
from __future__ import annotations

from cnncalc.layers.base import Layer, as_float, as_int, fmt_int
from cnncalc.shapes import numel


class BatchNorm(Layer):
    kind = "batchnorm"
    family = "norm"
    doc = "batch normalisation: γ, β trainable (2C); running mean and variance non-trainable (2C)"
    fields = {"eps": (lambda v, n: as_float(v, n, 0), 1e-5), "momentum": (lambda v, n: as_float(v, n, 0, 1), 0.1)}

    def param_shapes(self):
        c = self.out_shape[-1]
        return {"gamma": ((c,), "weight"), "beta": ((c,), "bias")}

    def state_shapes(self):
        c = self.out_shape[-1]
        return {"running_mean": (c,), "running_var": (c,)}

    def _ops(self):
        return {"norm": 2 * numel(self.out_shape)}  # inference: one scale, one shift per value

    def explain_params(self, with_bias=True):
        c = self.out_shape[-1]
        return f"γ {c} + β {c} = {fmt_int(2 * c)} (+ {fmt_int(2 * c)} running statistics, not trainable)"


class LRN(Layer):
    kind = "lrn"
    family = "norm"
    primary = "size"
    doc = "local response normalisation across channels (AlexNet): size n, alpha, beta, k"
    fields = {"size": (lambda v, n: as_int(v, n), 5), "alpha": (lambda v, n: as_float(v, n), 1e-4),
              "beta": (lambda v, n: as_float(v, n), 0.75), "k": (lambda v, n: as_float(v, n), 2.0)}

    def _ops(self):
        return {"norm": numel(self.out_shape) * self.args["size"]}  # sum of n squares per value


class Dropout(Layer):
    kind = "dropout"
    family = "regularization"
    primary = "p"
    view = True  # identity at inference
    takes_activation = False
    doc = "dropout with drop probability p (identity at inference, so no memory is counted)"
    fields = {"p": (lambda v, n: as_float(v, n, 0, 0.999), 0.5)}


__all__ = ["BatchNorm", "LRN", "Dropout"]
