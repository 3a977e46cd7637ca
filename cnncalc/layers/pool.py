"""Pooling: max / avg with kernel, stride, pad and rounding; global max / avg."""
from __future__ import annotations

from cnncalc.layers.base import GLOBAL, REQUIRED, Layer, as_bool, raw
from cnncalc.layers.conv import _Windowed
from cnncalc.shapes import numel, spatial


class MaxPool(_Windowed):
    kind = "maxpool"
    family = "pool"
    primary = "kernel"
    takes_activation = False
    doc = "max pooling: kernel, stride (default = kernel), pad, dilation, rounding"
    fields = {"kernel": (raw, REQUIRED), "stride": (raw, None), "pad": (raw, 0), "dilation": (raw, 1)}
    op_name = "max"

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        in_sp = self._need_spatial(x)
        self.windows = self._windows(in_sp, default_stride=self.args["kernel"])
        out_sp = self._slide_all(in_sp, self.windows, rounding)
        return (*out_sp, x[-1])

    def _ops(self):
        # comparisons (max) or additions (avg): window size − 1 per output value
        return {"pool": numel(self.out_shape) * (numel(self.kernel) - 1)}

    def explain_macs(self):
        return None

    def describe(self):
        k = "x".join(map(str, self.kernel))
        return f"{self.op_name}pool{k}/s{max(self.stride)}"


class AvgPool(MaxPool):
    kind = "avgpool"
    doc = "average pooling: kernel, stride (default = kernel), pad, rounding, count_include_pad"
    fields = {**{k: v for k, v in MaxPool.fields.items() if k != "dilation"},
              "count_include_pad": (as_bool, True)}
    op_name = "avg"


class GlobalMaxPool(Layer):
    kind = "global_maxpool"
    family = "pool"
    takes_activation = False
    doc = "global max pooling: HxWxC → 1x1xC (LxC → 1xC, max-over-time)"
    op_name = "max"

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        sp = self._need_spatial(x)
        self._notes.append(f"{'x'.join(map(str, sp))} → {'x'.join('1' for _ in sp)} per channel")
        return (*(1 for _ in sp), x[-1])

    def rf_windows(self):
        return GLOBAL

    def _ops(self):
        return {"pool": numel(self.out_shape) * (numel(spatial(self.in_shapes[0])) - 1)}

    def describe(self):
        return f"global {self.op_name}pool"


class GlobalAvgPool(GlobalMaxPool):
    kind = "global_avgpool"
    doc = "global average pooling: HxWxC → 1x1xC"
    op_name = "avg"


__all__ = ["MaxPool", "AvgPool", "GlobalMaxPool", "GlobalAvgPool"]
