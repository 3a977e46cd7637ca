"""Parameter-free channel plumbing: zero-padding channels, channel shuffle, channel split.

These carry no weights and no MACs; they exist so that the zoo can write

* ResNet's option A shortcut (He et al. 2016, Sec. 4.2): subsample by a stride and append
  zero channels — ``{pad_channels: 32, stride: 2}``;
* ShuffleNet's channel shuffle — ``{channel_shuffle: 2}`` (a permutation of the channels);
* ShuffleNet v2's channel split — ``{split: 2, part: 0}`` (the first half of the channels).

Runtime semantics (what a kernel must do, channels last):

* ``pad_channels`` (C → F, stride s): ``y[h, w, :C] = x[h·s, w·s, :]``, ``y[..., C:] = 0``
  (``x[::s, ::s]`` then zeros; with ``place: both`` the zeros are split (F − C)//2 before
  and the rest after, as in the common CIFAR code ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))``).
  Output spatial size ceil(W / s). Gradient: slice the first channels back, scatter to the
  strided positions.
* ``channel_shuffle`` (groups g): reshape C into (g, C/g), transpose, flatten:
  ``y[..., k·g + j] = x[..., j·(C/g) + k]``. Gradient: the inverse permutation.
* ``split`` (parts p, part i): ``y = x[..., i·C/p : (i+1)·C/p]`` (a view, like ``torch.chunk``).
"""
from __future__ import annotations

from cnncalc.errors import SpecError, short
from cnncalc.layers.base import Layer, Window, as_int, per_axis
from cnncalc.layers.tensor import TensorOp, as_axis, channel_axis, norm_axis, slice_rule
from cnncalc.shapes import Tensor, numel


def _as_place(v, name):
    if v not in ("end", "both"):
        raise SpecError(f"'{name}' must be 'end' (zeros after the channels) or 'both' "
                        f"(half before, half after), got {short(v)}")
    return v


class PadChannels(Layer):
    """Option A shortcut: subsample by ``stride`` and zero-pad the channels up to ``channels``."""

    kind = "pad_channels"
    family = "reshape"
    primary = "channels"
    takes_activation = False
    doc = ("zero-pad the channels to `channels` (after subsampling by `stride`); no parameters "
           "(ResNet option A shortcut)")
    fields = {"channels": (lambda v, n: as_int(v, n), None), "stride": (lambda v, n: v, 1),
              "place": (_as_place, "end")}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        sp = self._need_spatial(x)
        c = x[-1]
        f = self.args["channels"] if self.args["channels"] is not None else c
        if f < c:
            raise SpecError(f"pad_channels can only add channels: {c} → {f}",
                            hint=f"give channels ≥ {c}, or use a 1x1 conv to reduce them")
        self.strides = per_axis(self.args["stride"], len(sp), "stride")
        out_sp = tuple(-(-w // s) for w, s in zip(sp, self.strides))
        if any(s > 1 for s in self.strides):
            self._notes.append(", ".join(f"ceil({w}/{s}) = {o}" for w, s, o in
                                          zip(sp, self.strides, out_sp)) + " (every s-th position)")
        self._notes.append(f"{c} + {f - c} zero channels = {f}")
        self.added = f - c
        return (*out_sp, f)

    def rf_windows(self):
        return [Window(1, s, 0, 0) for s in self.strides]

    def describe(self):
        s = max(self.strides) if self.out_shape else 1
        return f"zeropad+{self.added if self.out_shape else '?'}" + (f"/s{s}" if s > 1 else "")


class ChannelShuffle(Layer):
    """ShuffleNet's channel shuffle: a fixed permutation of the channels (no parameters, no MACs)."""

    kind = "channel_shuffle"
    family = "reshape"
    primary = "groups"
    takes_activation = False
    doc = "channel shuffle with g groups: a permutation of the channels (ShuffleNet)"
    fields = {"groups": (lambda v, n: as_int(v, n), 2)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        g = self.args["groups"]
        if x[-1] % g:
            raise SpecError(f"channel_shuffle with {g} groups needs channels divisible by {g}, got {x[-1]}")
        self._notes.append(f"{x[-1]} channels = {g} groups x {x[-1] // g}, transposed")
        return x

    def describe(self):
        return f"shuffle/g{self.args['groups']}"


def _as_parts(v, name):
    """A number of equal parts, or a list of part sizes (unequal parts, as ONNX Split)."""
    if isinstance(v, list):
        return tuple(as_int(x, name) for x in v)
    return as_int(v, name)


class Split(TensorOp):
    """ShuffleNet v2's channel split: one of ``parts`` equal slices of the channels (a view).
    ``parts`` may list unequal sizes and ``axis`` (PyTorch order) split another axis, of any
    kind of tensor (ONNX Split: one split layer per output)."""

    kind = "split"
    family = "reshape"
    primary = "parts"
    view = True
    doc = ("take slice `part` (0-based) of the channels (or `axis`, PyTorch order) cut into `parts` "
           "equal slices, or slices of the sizes `parts` lists (a view)")
    fields = {"parts": (_as_parts, 2), "part": (lambda v, n: as_int(v, n, 0), 0), "axis": (as_axis, None)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        p, i = self.args["parts"], self.args["part"]
        if isinstance(p, tuple) or self.args["axis"] is not None or x.__class__ is Tensor:
            return super()._infer(in_shapes, rounding)
        self.ops_, self.effects, self.gate_inputs = (), {}, []
        if i >= p:
            raise SpecError(f"part {i} does not exist: parts are numbered 0..{p - 1}")
        if x[-1] % p:
            raise SpecError(f"cannot split {x[-1]} channels into {p} equal parts",
                            hint=f"the channels must be divisible by {p}")
        w = x[-1] // p
        self._notes.append(f"channels {i * w}..{(i + 1) * w - 1} of {x[-1]}")
        return (*x[:-1], w)

    def rule(self, ops):
        x = ops[0].shape
        a = self.args["axis"]
        ax = channel_axis(self.in_shapes[0], "split") if a is None else norm_axis(a, len(x))
        n = x[ax]
        p, i = self.args["parts"], self.args["part"]
        sizes = p if isinstance(p, tuple) else None
        if sizes is None:
            if n % p:
                raise SpecError(f"cannot split {n} into {p} equal parts", hint=f"the size must be divisible by {p}")
            sizes = (n // p,) * p
        if sum(sizes) != n:
            raise SpecError(f"the parts {list(sizes)} add up to {sum(sizes)}, not the {n} of axis {ax}")
        if i >= len(sizes):
            raise SpecError(f"part {i} does not exist: parts are numbered 0..{len(sizes) - 1}")
        lo = sum(sizes[:i])
        self.range = (ax, lo, lo + sizes[i])
        return slice_rule(self, x, {ax: range(lo, lo + sizes[i])})

    def describe(self):
        p = self.args["parts"]
        return f"split {self.args['part'] + 1}/{p if isinstance(p, int) else len(p)}"


__all__ = ["PadChannels", "ChannelShuffle", "Split", "numel"]
