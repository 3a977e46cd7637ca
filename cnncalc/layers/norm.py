"""Batch normalisation, local response normalisation, dropout."""
from __future__ import annotations

from cnncalc.errors import SpecError
from cnncalc.layers.base import REQUIRED, Layer, as_bool, as_float, as_int, fmt_int
from cnncalc.layers.tensor import dense
from cnncalc.shapes import Tensor, fmt_shape, numel, spatial, torch_order


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
    tensors = True
    doc = "dropout with drop probability p (identity at inference, so no memory is counted)"
    fields = {"p": (lambda v, n: as_float(v, n, 0, 0.999), 0.5)}


class _StatNorm(Layer):
    """Normalisations that compute their statistics from the sample itself (at inference too):
    no running state. Ops (class ``norm``) per value: 2 for the statistics (Σx, Σx²), 1 to
    normalise ((x − μ)·1/σ), and 2 for the affine γ, β when there is one."""

    family = "norm"
    fields = {"eps": (lambda v, n: as_float(v, n, 0), 1e-5), "affine": (as_bool, True)}

    def _affine_shape(self) -> tuple[int, ...]:
        return (self.out_shape[-1],)

    def param_shapes(self):
        if not self.args["affine"]:
            return {}
        shape = self._affine_shape()
        return {"gamma": (shape, "weight"), "beta": (shape, "bias")}

    def _ops(self):
        return {"norm": numel(self.out_shape) * (5 if self.args["affine"] else 3)}

    def explain_params(self, with_bias=True):
        if not self.args["affine"]:
            return "affine: false, no parameters"
        n = numel(self._affine_shape())
        what = "per channel" if len(self._affine_shape()) == 1 else f"per value of {fmt_shape(self.out_shape)}"
        return f"γ {fmt_int(n)} + β {fmt_int(n)} ({what}) = {fmt_int(2 * n)}, no running statistics"


def _as_over(v, name):
    if v not in ("channels", "all"):
        raise SpecError(f"'{name}' must be channels (each position's C values, ConvNeXt's "
                        f"channels-last LayerNorm) or all (the whole C·H·W sample), got {v!r}")
    return v


class LayerNorm(_StatNorm):
    """Layer normalisation (Ba et al. 2016). ``over: channels`` (default) normalises the C
    values at each position with γ, β of C — ConvNeXt's LayerNorm, PyTorch's
    ``nn.LayerNorm(C)`` on channels-last data (or on a flat [N] vector); ``over: all``
    normalises the whole sample with γ, β of C·H·W — ``nn.LayerNorm([C, H, W])``.

    On tokens and tensors (or with ``axis``) it is ONNX's LayerNormalization: the statistics run
    over the axes from ``axis`` (PyTorch order) to the last, γ and β have their shape; tokens
    default to their channels (axis −1), tensors to the last axis."""

    kind = "layernorm"
    primary = "over"
    tensors = True
    doc = ("layer normalisation over the channels at each position (over: channels) or the whole sample "
           "(over: all); on tensors over the axes from `axis` (PyTorch order) to the last; γ, β")
    fields = {**_StatNorm.fields, "eps": (lambda v, n: as_float(v, n, 0), 1e-5), "over": (_as_over, "channels"),
              "axis": (lambda v, n: as_int(v, n, -64), None)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        self.norm_axis = None
        if self.args["axis"] is not None or x.__class__ is Tensor:
            t = torch_order(x)
            a = self.args["axis"]
            a = (-1 if self.args["over"] == "channels" else 0) if a is None else a
            if not -len(t) <= a < len(t):
                raise SpecError(f"'axis' {a} is out of range for {fmt_shape(x)} ({len(t)} axes, PyTorch order)")
            self.norm_axis = a % len(t)
            self.t_shape = tuple(t)
            axes = f"axis {self.norm_axis}" if self.norm_axis == len(t) - 1 else f"axes {self.norm_axis}..{len(t) - 1}"
            self._notes.append(f"statistics over {axes} (PyTorch order): {fmt_int(numel(t[self.norm_axis:]))} "
                               f"values each")
            return dense(x)
        if self.args["over"] == "all":
            self._notes.append(f"statistics over all {fmt_int(numel(x))} values of the sample")
        else:
            self._notes.append(f"statistics over the {x[-1]} channels at each of "
                               f"{fmt_int(numel(spatial(x)) or 1)} positions")
        return x

    def _affine_shape(self):
        if self.norm_axis is not None:
            return self.t_shape[self.norm_axis:]
        if self.args["over"] == "all" and len(self.out_shape) > 1:
            return (self.out_shape[-1], *self.out_shape[:-1])  # PyTorch's (C, H, W) layout
        return (self.out_shape[-1],)


class GroupNorm(_StatNorm):
    """Group normalisation (Wu & He 2018): channels in ``groups`` groups, statistics per group
    and sample; γ, β per channel — PyTorch's ``nn.GroupNorm(groups, C)``."""

    kind = "groupnorm"
    primary = "groups"
    doc = "group normalisation: groups (must divide the channels); γ, β per channel"
    fields = {**_StatNorm.fields, "groups": (lambda v, n: as_int(v, n), REQUIRED)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        g, c = self.args["groups"], x[-1]
        if c % g:
            divisors = [d for d in range(1, c + 1) if c % d == 0]
            raise SpecError(f"groups = {g} does not divide the {c} channels",
                            hint=f"use a divisor of {c}: {', '.join(map(str, divisors[-8:]))}")
        self._notes.append(f"{c} channels / {g} groups = {c // g} per group; statistics over "
                           f"{'*'.join(map(str, (*spatial(x), c // g)))} = {fmt_int(numel(x) // g)} values")
        return x


class InstanceNorm(_StatNorm):
    """Instance normalisation (Ulyanov et al. 2016): statistics per channel and sample over
    the spatial axes; γ, β per channel. Note: PyTorch's ``nn.InstanceNorm2d`` defaults to
    ``affine=False`` (no parameters); write ``affine: false`` to match it."""

    kind = "instancenorm"
    doc = "instance normalisation: per channel over the spatial axes; γ, β per channel (affine: false for none)"

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        sp = self._need_spatial(x)
        self._notes.append(f"statistics over {'*'.join(map(str, sp))} = {fmt_int(numel(sp))} values per channel")
        return x


class Scale(Layer):
    """A learned per-channel multiplier: ConvNeXt's layer scale (Touvron et al. 2021), γ of C,
    initialised to ``init``. Its products are op class ``mul``, not MACs: PyTorch's MAC
    counters (and the ConvNeXt paper's FLOPs) count conv and linear layers only."""

    kind = "scale"
    family = "norm"
    primary = "init"
    doc = "layer scale: one learned multiplier per channel (C params, `init:` value); `mul` ops, no MACs"
    fields = {"init": (lambda v, n: as_float(v, n), 1.0)}

    def param_shapes(self):
        return {"gamma": ((self.out_shape[-1],), "weight")}

    def _ops(self):
        return {"mul": numel(self.out_shape)}

    def explain_params(self, with_bias=True):
        return f"one multiplier per channel = {fmt_int(self.out_shape[-1])}"


__all__ = ["BatchNorm", "LRN", "Dropout", "LayerNorm", "GroupNorm", "InstanceNorm", "Scale"]
