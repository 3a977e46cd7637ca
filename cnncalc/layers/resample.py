"""Resampling: upsample, crop, pad, adaptive pooling. No parameters, no MACs.

Each works on any number of spatial axes (LxC, HxWxC, DxHxWxC). For the receptive field
they report an ``AxisMap`` per axis (which input units output unit o reads, periodic in o),
so that upsampling divides the effective stride exactly (a Fraction) and adaptive pooling's
uneven windows are followed unit by unit.

* ``upsample``: ``factor`` (an int per axis) or ``size``; ``mode: nearest`` (PyTorch's
  ``nearest``: o reads floor(o·In/Out)) or ``bilinear`` (linear along each axis; ``align_corners``
  as PyTorch: source coordinate o·(In − 1)/(Out − 1), else (o + ½)·In/Out − ½, clamped at 0).
  Ops: ``interp`` = 2^d weighted terms per output value for (bi/tri)linear, 0 for nearest.
* ``crop``: ``to: LAYER`` crops the centre to that layer's spatial size (lo = ⌊(In − T)/2⌋, the
  U-Net skip crop; LAYER is a shape-only second input), or explicit per-side amounts
  (``crop: 4``, ``[4, 4]``, ``[[lo, hi], [lo, hi]]``). A crop is a view (a slice): no new memory.
* ``padding``: explicit padding (a layer; ``pad:`` stays the conv/pool argument), ``mode: zero | reflect | replicate``
  (or ``constant`` with ``value``); ``axes`` (PyTorch order) pads other axes, channels included,
  and any kind of tensor (ONNX Pad).
* ``adaptive_avgpool`` / ``adaptive_maxpool``: ``size`` (per axis); PyTorch's windows
  start = ⌊i·In/Out⌋, end = ⌈(i + 1)·In/Out⌉. Ops ``pool``: window size − 1 per value.
"""
from __future__ import annotations

from math import floor, gcd

from cnncalc.errors import SpecError
from cnncalc.layers.base import (AxisMap, Layer, as_bool, as_float, axis_map, fmt_int,
                                 pads_per_axis, per_axis, raw)
from cnncalc.layers.tensor import Operand, as_ints, norm_axis, pad_rule
from cnncalc.shapes import Tensor, fmt_shape, numel, settle, torch_order


def _sizes_field(v, name):
    if isinstance(v, str):
        from cnncalc.shapes import parse_shape
        try:
            return parse_shape(v)
        except ValueError as e:
            raise SpecError(f"'{name}': {e}") from None
    return v


def _mode(options):
    def read(v, name):
        if v not in options:
            raise SpecError(f"'{name}' must be one of {', '.join(options)}, got {v!r}")
        return v
    return read


def _per_axis_sizes(v, nd, name):
    if isinstance(v, tuple):
        v = list(v)
    return per_axis(v, nd, name)


class _Resample(Layer):
    family = "resample"
    takes_activation = False

    def rf_windows(self):
        return list(self.maps)

    def _axes_note(self, parts: list[str]):
        if len(set(parts)) == 1:
            self._notes.append(parts[0])
        else:
            names = "DHW"[-len(parts):] if len(parts) <= 3 else None
            self._notes.extend(f"{names[i] if names else i}: {p}" for i, p in enumerate(parts))


class Upsample(_Resample):
    kind = "upsample"
    primary = "factor"
    doc = "upsample by `factor` (int per axis) or to `size`; mode nearest | bilinear, align_corners"
    fields = {"factor": (raw, None), "size": (_sizes_field, None),
              "mode": (_mode(("nearest", "bilinear", "linear", "trilinear")), "nearest"),
              "align_corners": (as_bool, False)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        sp = self._need_spatial(x)
        nd = len(sp)
        f, size = self.args["factor"], self.args["size"]
        if (f is None) == (size is None):
            raise SpecError("an upsample layer needs exactly one of 'factor' and 'size'",
                            hint="e.g. {upsample: 2} or {upsample: {size: 28x28}}")
        mode = self.args["mode"]
        self.linear = mode != "nearest"
        if self.args["align_corners"] and not self.linear:
            raise SpecError("align_corners applies to bilinear upsampling only",
                            hint="remove it, or use mode: bilinear")
        if size is not None:
            out = _per_axis_sizes(size, nd, "size")
            parts = [f"{w} → {o}" for w, o in zip(sp, out)]
        else:
            fs = per_axis(f, nd, "factor")
            out = tuple(w * k for w, k in zip(sp, fs))
            parts = [f"{w}*{k} = {o}" for w, k, o in zip(sp, fs, out)]
        self._axes_note(parts)
        self.maps = [self._map(w, o) for w, o in zip(sp, out)]
        return (*out, x[-1])

    def _map(self, n_in: int, n_out: int) -> AxisMap:
        from fractions import Fraction  # receptive fields only: summarize does not pay for it

        if not self.linear:
            g = gcd(n_in, n_out)
            a, b = n_out // g, n_in // g
            return axis_map(a, b, lambda o: (o * n_in // n_out, o * n_in // n_out + 1),
                            f"nearest ×{Fraction(n_out, n_in)}")
        if self.args["align_corners"]:
            if n_out == 1:
                return axis_map(1, 0, lambda o: (0, 1), "align_corners to 1")
            num, den = n_in - 1, n_out - 1
            g = gcd(num, den) or 1
            a, b = den // g, num // g
            if b == 0:  # one input pixel: every output reads it
                return axis_map(1, 0, lambda o: (0, 1), "bilinear from 1")

            def fn(o):
                src = Fraction(o * num, den)
                lo = floor(src)
                return (lo, lo + 1) if src == lo else (lo, lo + 2)
            return axis_map(a, b, fn, f"bilinear align_corners ×{Fraction(n_out, n_in)}")
        g = gcd(n_in, n_out)
        a, b = n_out // g, n_in // g

        def fn(o):
            src = Fraction((2 * o + 1) * n_in, 2 * n_out) - Fraction(1, 2)
            lo = floor(src)
            return (lo, lo + 1) if src == lo else (lo, lo + 2)
        return axis_map(a, b, fn, f"bilinear ×{Fraction(n_out, n_in)}")

    def _ops(self):
        nd = len(self.out_shape) - 1
        return {"interp": numel(self.out_shape) * 2 ** nd if self.linear else 0}

    def describe(self):
        if not self.out_shape:
            return "upsample"
        return f"upsample {self.args['mode']} → {'x'.join(map(str, self.out_shape[:-1]))}"


def _as_crop(v, name):
    return v


class Crop(_Resample):
    """Cropping: ``{crop: {to: conv_up4}}`` (centre crop to that layer's spatial size) or
    ``{crop: 4}`` / ``{crop: [[lo, hi], [lo, hi]]}`` (explicit amounts per side)."""

    kind = "crop"
    primary = "amount"
    n_inputs = None
    view = True  # a slice of its input, as PyTorch's x[..., a:b, c:d]: no new memory
    doc = ("crop: `to: LAYER` (centre crop to that layer's spatial size, ⌊(In − T)/2⌋ before) "
           "or `amount` per side (int, per axis, or [lo, hi] per axis)")
    fields = {"amount": (raw, None), "to": (raw, None)}
    ref_fields = ("to",)

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        sp = self._need_spatial(x)
        nd = len(sp)
        amount, to = self.args["amount"], self.args["to"]
        if (amount is None) == (to is None):
            raise SpecError("a crop layer needs exactly one of 'to' (a layer name) and 'amount'",
                            hint="e.g. {crop: {to: up4}} or {crop: 4}")
        if to is not None:
            if len(in_shapes) != 2:
                raise SpecError("crop 'to' must name one layer")
            target = in_shapes[1]
            tsp = target[:-1] if len(target) > 1 else ()
            if len(tsp) != nd:
                raise SpecError(f"crop to {self.args['to']!r}: its shape {fmt_shape(target)} does not "
                                f"have the {nd} spatial axes of the input {fmt_shape(x)}")
            for w, t in zip(sp, tsp):
                if t > w:
                    raise SpecError(f"cannot crop {fmt_shape(x)} to the larger {fmt_shape(target)} "
                                    f"of {self.args['to']!r}",
                                    hint="crop the larger tensor to the smaller one, or pad instead")
            pads = tuple(((w - t) // 2, (w - t) - (w - t) // 2) for w, t in zip(sp, tsp))
        else:
            if len(in_shapes) != 1:
                raise SpecError("a crop layer takes one input")
            pads = pads_per_axis(amount, nd, sp, (1,) * nd, (1,) * nd, "amount")
            for w, (lo, hi) in zip(sp, pads):
                if lo + hi >= w:
                    raise SpecError(f"cropping {lo} + {hi} from {w} leaves nothing of {fmt_shape(x)}",
                                    hint=f"crop at most {w - 1} in total per axis")
        self.crops = pads
        out = tuple(w - lo - hi for w, (lo, hi) in zip(sp, pads))
        self._axes_note([f"{w} − {lo} − {hi} = {o}" for w, (lo, hi), o in zip(sp, pads, out)])
        self.maps = [axis_map(1, 1, lambda o, lo=lo: (o + lo, o + lo + 1), f"crop {lo} before")
                     for lo, _ in pads]
        return (*out, x[-1])

    def rf_inputs(self):
        return [0]

    def describe(self):
        return f"crop → {'x'.join(map(str, self.out_shape[:-1]))}" if self.out_shape else "crop"


class Pad(_Resample):
    kind = "padding"
    primary = "amount"
    tensors = True
    doc = ("explicit padding: amount (int, per axis, or [lo, hi] per axis), mode zero | reflect | replicate "
           "| constant (value); `axes` (PyTorch order) pads other axes (ONNX Pad)")
    fields = {"amount": (raw, None), "mode": (_mode(("zero", "constant", "reflect", "replicate")), "zero"),
              "value": (lambda v, n: as_float(v, n), 0.0), "axes": (as_ints, None)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        if self.args["amount"] is None:
            raise SpecError("a pad layer needs 'amount'", hint="e.g. {padding: 1} or {padding: [[0, 1], [0, 1]]}")
        if self.args["value"] and self.args["mode"] != "constant":
            raise SpecError("'value' is the fill of mode: constant", hint="write mode: constant")
        self.generic = self.args["axes"] is not None or self.args["mode"] == "constant" or x.__class__ is Tensor
        if self.generic:
            t = torch_order(x)
            axes = self.args["axes"]
            axes = tuple(range(1 if t.nsp and len(x) == t.nsp + 1 and x.__class__ is not Tensor else 0, len(t))) \
                if axes is None else tuple(norm_axis(a, len(t), "axes") for a in axes)
            if len(set(axes)) < len(axes):
                raise SpecError("'axes' names an axis twice")
            self.pad_axes = axes
            self.ops_ = [Operand(t, input=0)]  # what the tensor kernels read
            self.pads = pads_per_axis(self.args["amount"], len(axes), [t[a] for a in axes], (1,) * len(axes),
                                      (1,) * len(axes), "amount")
            dims, roles, effects = pad_rule(self, t, self.pads, axes, self.args["mode"])
            self.effects = {k: e for k, e in effects.items() if e is not None}
            return settle(dims, roles, t.nsp)
        sp = self._need_spatial(x)
        pads = pads_per_axis(self.args["amount"], len(sp), sp, (1,) * len(sp), (1,) * len(sp), "amount")
        if self.args["mode"] == "reflect":
            for w, (lo, hi) in zip(sp, pads):
                if max(lo, hi) >= w:
                    raise SpecError(f"reflect padding of {max(lo, hi)} needs an input longer than that, "
                                    f"got {w}", hint="pad less, or use mode: zero / replicate")
        self.pads = pads
        out = tuple(w + lo + hi for w, (lo, hi) in zip(sp, pads))
        self._axes_note([f"{w} + {lo} + {hi} = {o}" for w, (lo, hi), o in zip(sp, pads, out)])
        self.maps = [axis_map(1, 1, lambda o, lo=lo: (o - lo, o - lo + 1), f"pad {lo} before")
                     for lo, _ in pads]
        return (*out, x[-1])

    def rf_windows(self):
        return (dict(self.effects) or None) if self.generic else list(self.maps)

    def describe(self):
        return f"pad {self.args['mode']}"


class AdaptiveAvgPool(_Resample):
    kind = "adaptive_avgpool"
    family = "pool"
    primary = "size"
    doc = "adaptive average pooling to `size` (per axis); PyTorch's windows ⌊i·In/Out⌋..⌈(i+1)·In/Out⌉"
    fields = {"size": (_sizes_field, 1)}
    op_name = "avg"

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        sp = self._need_spatial(x)
        out = _per_axis_sizes(self.args["size"], len(sp), "size")
        self.windows_per_axis = []
        parts = []
        for w, o in zip(sp, out):
            if o > w:
                raise SpecError(f"adaptive pooling to {o} from {w}: the output is larger than the input",
                                hint="this would repeat input values; use upsample instead")
            # end ⌈(i+1)·w/o⌉ − start ⌊i·w/o⌋, in integers
            windows = [-(-(i + 1) * w // o) - (i * w // o) for i in range(o)]
            sizes = sorted(set(windows))
            self.windows_per_axis.append(windows)
            parts.append(f"{w} → {o}, windows of {' or '.join(map(str, sizes))} "
                         f"(start ⌊i*{w}/{o}⌋, end ⌈(i+1)*{w}/{o}⌉)")
        self._axes_note(parts)
        self.maps = []
        for w, o in zip(sp, out):
            g = gcd(w, o)
            self.maps.append(axis_map(o // g, w // g, lambda i, w=w, o=o: (i * w // o, -(-(i + 1) * w // o)),
                                      f"adaptive {w}→{o}"))
        return (*out, x[-1])

    def _ops(self):
        # per output value: window size − 1 additions (avg) or comparisons (max); summed over
        # the windows that is Π(Σ window sizes per axis) − Π(output sizes), per channel
        sums = positions = 1
        for wins in self.windows_per_axis:
            sums *= sum(wins)
            positions *= len(wins)
        return {"pool": (sums - positions) * self.out_shape[-1]}

    def describe(self):
        return f"adaptive {self.op_name}pool → {'x'.join(map(str, self.out_shape[:-1]))}"


class AdaptiveMaxPool(AdaptiveAvgPool):
    kind = "adaptive_maxpool"
    doc = "adaptive max pooling to `size` (per axis); PyTorch's windows"
    op_name = "max"


__all__ = ["Upsample", "Crop", "Pad", "AdaptiveAvgPool", "AdaptiveMaxPool", "fmt_int"]
