"""Convolutions: conv (incl. grouped and depthwise), dwconv, transposed conv, locally connected.

Works on any number of spatial axes: HxWxC images and LxC signals (1-D convolutions).
Weight layouts (what the runtime allocates): conv ``(F, C/g, k...)``, transposed conv
``(C, F/g, k...)``, locally connected ``(OH, OW, F, C, k...)`` — as PyTorch writes them.
"""
from __future__ import annotations

from cnncalc.errors import SpecError, short
from cnncalc.layers.base import (REQUIRED, Layer, Window, as_bool, as_float, as_int, fmt_int, join_mul,
                                 largest_common_divisors,
                                 pads_per_axis, per_axis, raw, slide)
from cnncalc.shapes import numel


def as_bias(v, name):
    if v is True or v is False:
        return v
    if v in ("untied", "position", "per-position"):
        return "untied"
    raise SpecError(f"'{name}' must be true, false or untied (one bias per output position), got {short(v)}")


def as_shares(v, name):
    """``shares: <layer>``: the name of an earlier layer of the same kind and weight shapes whose
    parameters this layer uses (Keras' shared layer, a PyTorch module called twice)."""
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise SpecError(f"'{name}' names the layer whose parameters this one uses, got {short(v)}",
                        hint="e.g. shares: conv1")
    return v


def as_groups(v, name):
    if v == "depthwise":
        return v
    return as_int(v, name)


def as_connections(v, name):
    if not isinstance(v, list) or not v or not all(isinstance(r, list) and r for r in v):
        raise SpecError(f"'{name}' is a list with one list of input channels per output map")
    return [tuple(as_int(c, name, 0) for c in row) for row in v]


STANDARDIZE_KEYS = ("eps", "gain", "scale", "gamma")


def as_standardize(v, name):
    """Weight standardisation (BiT's StdConv2d, NFNet's ScaledStdConv2d): ``true`` or
    ``{eps, gain, scale, gamma}``; each filter's weights w become
    ``(w - mean) / sqrt(var + eps) * gain * scale * gamma`` (mean and biased variance over the
    filter's fan-in values), computed on the weights once per forward pass."""
    if v is False:
        return None
    if v is True:
        v = {}
    if not isinstance(v, dict):
        raise SpecError(f"'{name}' must be true, false or a mapping with eps, gain, scale, gamma; got {short(v)}")
    for k in v:
        if k not in STANDARDIZE_KEYS:
            raise SpecError(f"unknown key {short(k)} in '{name}'", hint=f"use {', '.join(STANDARDIZE_KEYS)}")
    eps = as_float(v.get("eps", 1e-6), f"{name}.eps")
    if eps <= 0:
        raise SpecError(f"'{name}.eps' must be greater than 0, got {eps}")
    gain = as_bool(v.get("gain", False), f"{name}.gain")
    scale = v.get("scale", 1.0)
    if scale != "fan_in":
        scale = as_float(scale, f"{name}.scale")
        if scale <= 0:
            raise SpecError(f"'{name}.scale' must be a positive number or fan_in (1/sqrt(fan-in)), got {scale}")
    gamma = as_float(v.get("gamma", 1.0), f"{name}.gamma")
    if gamma <= 0:
        raise SpecError(f"'{name}.gamma' must be greater than 0, got {gamma}")
    return {"eps": eps, "gain": gain, "scale": scale, "gamma": gamma}


class _Windowed(Layer):
    """Shared by every layer that slides a window: kernel, stride, pad, dilation per axis."""

    def _windows(self, in_sp: tuple[int, ...], default_stride=1) -> list[Window]:
        nd = len(in_sp)
        k = per_axis(self.args["kernel"], nd, "kernel")
        stride = self.args.get("stride")
        s = per_axis(default_stride if stride is None else stride, nd, "stride")
        d = per_axis(self.args.get("dilation", 1) or 1, nd, "dilation")
        ext = [di * (ki - 1) + 1 for ki, di in zip(k, d)]
        pads = self._pads(self.args.get("pad", 0), in_sp, ext, s)
        return [Window(ki, si, lo, hi, di) for ki, si, (lo, hi), di in zip(k, s, pads, d)]

    def _pads(self, pad, in_sp, ext, strides):
        return pads_per_axis(pad, len(in_sp), in_sp, ext, strides)

    def _slide_all(self, in_sp, windows, rounding) -> tuple[int, ...]:
        outs, notes = [], []
        for axis, (w, win) in enumerate(zip(in_sp, windows)):
            o, note = slide(w, win, rounding)
            outs.append(o)
            notes.append(note)
        if len(set(notes)) == 1:
            self._notes.append(notes[0])
        else:
            axes = {1: "L", 2: "HW", 3: "DHW"}.get(len(notes)) or [str(i) for i in range(len(notes))]
            self._notes.extend(f"{a}: {n}" for a, n in zip(axes, notes))
        return tuple(outs)

    def rf_windows(self):
        return list(self.windows)

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(w.kernel for w in self.windows)

    @property
    def stride(self) -> tuple[int, ...]:
        return tuple(w.stride for w in self.windows)

    @property
    def pad(self) -> tuple[tuple[int, int], ...]:
        return tuple((w.pad_lo, w.pad_hi) for w in self.windows)

    @property
    def dilation(self) -> tuple[int, ...]:
        return tuple(w.dilation for w in self.windows)


class Conv(_Windowed):
    kind = "conv"
    family = "conv"
    primary = "filters"
    doc = "convolution: filters F, kernel, stride, pad (int/pair/same/valid/[lo,hi]), dilation, groups"
    fields = {
        "filters": (lambda v, n: as_int(v, n), REQUIRED),
        "kernel": (raw, REQUIRED),
        "stride": (raw, 1),
        "pad": (raw, 0),
        "dilation": (raw, 1),
        "groups": (as_groups, 1),
        "bias": (as_bias, True),
        "connections": (as_connections, None),
        "standardize": (as_standardize, None),
        "shares": (as_shares, None),
    }

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        in_sp = self._need_spatial(x)
        c = x[-1]
        self.in_channels = c
        self.filters = self._filters(c)
        g = self.args["groups"]
        self.groups = c if g == "depthwise" else g
        if c % self.groups or self.filters % self.groups:
            bad = c if c % self.groups else self.filters
            what = "input channels" if c % self.groups else "filters"
            divisors = largest_common_divisors(c, self.filters, 6)
            raise SpecError(f"groups = {self.groups} does not divide the {bad} {what}",
                            hint=f"groups must divide both {c} input channels and {self.filters} "
                                 f"filters: {', '.join(map(str, divisors[-6:]))}")
        self.connections = self.args.get("connections")
        if self.connections is not None:
            if self.groups != 1:
                raise SpecError("a connection table and groups cannot be combined")
            if len(self.connections) != self.filters:
                raise SpecError(f"the connection table has {len(self.connections)} rows for "
                                f"{self.filters} filters", hint="give one row per output map")
            for row in self.connections:
                if max(row) >= c:
                    raise SpecError(f"the connection table names input channel {max(row)}, but the "
                                    f"input has channels 0..{c - 1}")
        if self.args.get("standardize") and self.connections is not None:
            raise SpecError("weight standardisation works on whole filters: not with a connection table")
        self.windows = self._windows(in_sp)
        out_sp = self._slide_all(in_sp, self.windows, rounding)
        return (*out_sp, self.filters)

    def _filters(self, c: int) -> int:
        return self.args["filters"]

    @property
    def fan_in(self) -> int:
        """Weights of one filter: k·k·C/g (the slides' '5*5*3 = 75')."""
        if self.connections is not None:
            raise ValueError("fan_in varies per filter with a connection table")
        return numel(self.kernel) * (self.in_channels // self.groups)

    @property
    def standardize(self) -> dict | None:
        """The weight standardisation's eps, gain (bool), scale (a number: ``fan_in`` resolved
        to fan_in**-0.5, times gamma), or None."""
        st = self.args.get("standardize")
        if not st:
            return None
        scale = self.fan_in ** -0.5 if st["scale"] == "fan_in" else st["scale"]
        return {"eps": st["eps"], "gain": st["gain"], "scale": scale * st["gamma"]}

    def _weight_count(self) -> int:
        if self.connections is not None:
            return sum(len(r) for r in self.connections) * numel(self.kernel)
        return self.filters * self.fan_in

    def param_shapes(self):
        out = {}
        if self.connections is not None:
            out["weight"] = ((self._weight_count(),), "weight")
        else:
            out["weight"] = ((self.filters, self.in_channels // self.groups, *self.kernel), "weight")
        if self.args["bias"] == "untied":
            out["bias"] = ((self.filters, *self.out_shape[:-1]), "bias")
        elif self.args["bias"]:
            out["bias"] = ((self.filters,), "bias")
        st = self.args.get("standardize")
        if st and st["gain"]:
            out["gain"] = ((self.filters,), "weight")
        return out

    def const_init(self, name):
        """The standardisation's gain starts at 1 (timm's gain_init)."""
        return 1.0 if name == "gain" else None

    def _n_gain(self) -> int:
        st = self.args.get("standardize")
        return self.filters if st and st["gain"] else 0

    def _n_bias(self) -> int:
        b = self.args["bias"]
        return numel(self.out_shape) if b == "untied" else (self.filters if b else 0)

    def macs(self):
        positions = numel(self.out_shape[:-1])
        return positions * self._weight_count()

    def _ops(self):
        return {"bias": numel(self.out_shape) if self.args["bias"] else 0}

    def explain_params(self, with_bias=True):
        nb = self._n_bias() if with_bias else 0
        total = self._weight_count() + nb
        if self.connections is not None:
            sizes = "+".join(str(len(r)) for r in self.connections)
            text = f"({sizes})*{join_mul(*self.kernel)}"
        else:
            per = [*self.kernel, self.in_channels // self.groups]
            text = f"({join_mul(*per)})*{self.filters}"
        ng = self._n_gain()
        if ng:
            text += f" + {fmt_int(ng)} gains"
            total += ng
        if nb:
            text += f" + {fmt_int(nb)}"
        if self.args.get("shares"):
            return f"0: uses {self.args['shares']}'s, {text} = {fmt_int(total)}, counted there"
        return f"{text} = {fmt_int(total)}"

    def explain_ops(self):
        if not self.args.get("standardize"):
            return None
        return (f"weight standardisation of {self.filters} filters x {fmt_int(self.fan_in)} weights, once "
                f"per forward pass on the weights (not per image): counted neither as MACs nor as ops")

    def explain_macs(self):
        if self.connections is not None:
            per = f"({'+'.join(str(len(r)) for r in self.connections)})*{join_mul(*self.kernel)}"
            return f"{join_mul(*self.out_shape[:-1])} * {per} = {fmt_int(self.macs())}"
        per = [*self.kernel, self.in_channels // self.groups]
        return f"{join_mul(*self.out_shape)} * ({join_mul(*per)}) = {fmt_int(self.macs())}"

    def describe(self):
        k = "x".join(map(str, self.kernel)) if self.out_shape else str(self.args["kernel"])
        tag = "dw" if self.args["groups"] == "depthwise" else ""
        g = f"/g{self.groups}" if self.out_shape and self.groups > 1 and not tag else ""
        s = f"/s{max(self.stride)}" if self.out_shape and max(self.stride) > 1 else ""
        return f"conv{tag}{k}{s}{g}-{self.filters if self.out_shape else self.args.get('filters', '')}"


class DepthwiseConv(Conv):
    """``{dwconv: 3}``: one k×k filter per input channel (times ``multiplier``)."""

    kind = "dwconv"
    primary = "kernel"
    doc = "depthwise convolution: kernel, stride, pad, multiplier (filters = C·multiplier, groups = C)"
    fields = {k: v for k, v in Conv.fields.items() if k not in ("filters", "groups", "connections")}
    fields["multiplier"] = (lambda v, n: as_int(v, n), 1)

    def __init__(self, name, args=None):
        super().__init__(name, args)
        self.args["groups"] = "depthwise"
        self.args["connections"] = None

    def _filters(self, c):
        return c * self.args["multiplier"]


class ConvTranspose(_Windowed):
    """Transposed ('fractionally strided', 'deconvolution') convolution."""

    kind = "deconv"
    family = "conv"
    primary = "filters"
    doc = "transposed convolution: filters, kernel, stride, pad, output_padding, dilation, groups"
    fields = {
        "filters": (lambda v, n: as_int(v, n), REQUIRED),
        "kernel": (raw, REQUIRED),
        "stride": (raw, 1),
        "pad": (raw, 0),
        "output_padding": (raw, 0),
        "dilation": (raw, 1),
        "groups": (lambda v, n: as_int(v, n), 1),
        "bias": (lambda v, n: as_bool(v, n), True),
    }

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        in_sp = self._need_spatial(x)
        nd = len(in_sp)
        self.in_channels, self.filters, self.groups = x[-1], self.args["filters"], self.args["groups"]
        if self.in_channels % self.groups or self.filters % self.groups:
            raise SpecError(f"groups = {self.groups} must divide {self.in_channels} input channels "
                            f"and {self.filters} filters")
        op = per_axis(self.args["output_padding"], nd, "output_padding", 0)
        self.output_padding = op
        self.windows = self._windows(in_sp)
        outs, notes = [], []
        for w, win, o in zip(in_sp, self.windows, op):
            if o >= max(win.stride, win.dilation):
                raise SpecError(f"output_padding {o} must be smaller than the stride or the dilation")
            size = (w - 1) * win.stride - win.pad_lo - win.pad_hi + win.extent + o
            pad = (f" {'−'} 2*{win.pad_lo}" if win.pad_lo == win.pad_hi and win.pad_lo else
                   (f" − {win.pad_lo} − {win.pad_hi}" if win.pad_lo or win.pad_hi else ""))
            note = f"({w} − 1)*{win.stride}{pad} + {win.extent}{f' + {o}' if o else ''} = {size}"
            if size < 1:
                raise SpecError(f"{note} leaves no output", hint="use less padding")
            outs.append(size)
            notes.append(note)
        self._notes.extend(dict.fromkeys(notes))
        return (*outs, self.filters)

    def _pads(self, pad, in_sp, ext, strides):
        if pad != "same":
            return super()._pads(pad, in_sp, ext, strides)
        # transposed 'same': output = input * stride, so crop extent − stride in total
        return tuple(((e - s) // 2, (e - s) - (e - s) // 2) if e > s else (0, 0)
                     for e, s in zip(ext, strides))

    def param_shapes(self):
        out = {"weight": ((self.in_channels, self.filters // self.groups, *self.kernel), "weight")}
        if self.args["bias"]:
            out["bias"] = ((self.filters,), "bias")
        return out

    def macs(self):
        # every input value is multiplied into a k×k×(F/g) patch of the output
        return numel(self.in_shapes[0]) * numel(self.kernel) * (self.filters // self.groups)

    def _ops(self):
        return {"bias": numel(self.out_shape) if self.args["bias"] else 0}

    def explain_params(self, with_bias=True):
        nb = self.filters if (with_bias and self.args["bias"]) else 0
        w = self.in_channels * (self.filters // self.groups) * numel(self.kernel)
        text = f"({join_mul(*self.kernel, self.filters // self.groups)})*{self.in_channels}"
        return text + (f" + {nb}" if nb else "") + f" = {fmt_int(w + nb)}"

    def explain_macs(self):
        return (f"{join_mul(*self.in_shapes[0])} * ({join_mul(*self.kernel, self.filters // self.groups)})"
                f" = {fmt_int(self.macs())}")

    def describe(self):
        return f"deconv{'x'.join(map(str, self.kernel))}/s{max(self.stride)}-{self.filters}"


class LocallyConnected(Conv):
    """Untied weights: a different filter bank at every output position (the lecture's 'Idea 1')."""

    kind = "local"
    doc = "locally connected layer (convolution with untied weights): filters, kernel, stride, pad"
    fields = {k: v for k, v in Conv.fields.items() if k not in ("groups", "dilation", "connections", "shares",
                                                                "standardize")}
    fields["bias"] = (lambda v, n: as_bool(v, n), True)

    def __init__(self, name, args=None):
        super().__init__(name, args)
        self.args["groups"] = 1
        self.args["connections"] = None
        self.args["dilation"] = 1
        self.args["standardize"] = None

    @property
    def positions(self) -> int:
        return numel(self.out_shape[:-1])

    def _weight_count(self):
        return self.positions * self.filters * self.fan_in

    def param_shapes(self):
        out = {"weight": ((*self.out_shape[:-1], self.filters, self.in_channels, *self.kernel), "weight")}
        if self.args["bias"]:
            out["bias"] = ((*self.out_shape[:-1], self.filters), "bias")
        return out

    def _n_bias(self):
        return numel(self.out_shape) if self.args["bias"] else 0

    def macs(self):
        return self.positions * self.filters * self.fan_in

    def explain_params(self, with_bias=True):
        nb = self._n_bias() if with_bias else 0
        text = f"{join_mul(*self.out_shape[:-1])} positions * ({join_mul(*self.kernel, self.in_channels)})*{self.filters}"
        if nb:
            text += f" + {fmt_int(nb)}"
        return f"{text} = {fmt_int(self._weight_count() + nb)}"

    def describe(self):
        return f"local{'x'.join(map(str, self.kernel))}-{self.filters}"
