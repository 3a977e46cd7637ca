"""Merging branches: concat along channels, elementwise add (residual), elementwise product
(squeeze-excitation gate, with broadcasting); identity."""
from __future__ import annotations

from cnncalc.errors import SpecError
from cnncalc.layers.base import Layer
from cnncalc.layers.tensor import TensorOp, as_axis, broadcast_dims, channel_axis, concat_rule, joined
from cnncalc.shapes import Tensor, fmt_shape, numel


class Concat(TensorOp):
    """Concatenation along the channels of images (the Inception merge), or along ``axis`` (PyTorch
    order) of any operands, constants included (a class token before the patch tokens)."""

    kind = "concat"
    family = "merge"
    takes_activation = True
    n_consts = 4
    n_operands = (1, 99)
    doc = "concatenate branches along the channels (or `axis`, PyTorch order); other sizes must match"
    fields = {"axis": (as_axis, None)}

    def _infer(self, in_shapes, rounding):
        if self.args["axis"] is not None or self.args["const"] or any(s.__class__ is Tensor for s in in_shapes):
            return super()._infer(in_shapes, rounding)
        self.ops_, self.effects, self.gate_inputs = (), {}, []
        first = in_shapes[0]
        for s in in_shapes[1:]:
            if len(s) != len(first) or s[:-1] != first[:-1]:
                raise SpecError("concat needs the same spatial size on every branch, got "
                                + ", ".join(fmt_shape(x) for x in in_shapes),
                                hint="give the branches matching strides and 'same' padding")
        c = sum(s[-1] for s in in_shapes)
        self._notes.append(" + ".join(str(s[-1]) for s in in_shapes) + f" = {c} channels")
        return (*first[:-1], c)

    def rule(self, ops):
        a = self.args["axis"]
        return concat_rule(self, ops, channel_axis(self.in_shapes[0], "concat") if a is None else a)


def _image_of(t: Tensor):
    """The image shape a tensor C x H x W (x D) is when each spatial axis is that input axis
    whole, in order; None otherwise."""
    if t.nsp < 1 or len(t) != t.nsp + 1 or not t.roles:
        return None
    if any(t.roles[1 + k] != ((k, t[1 + k]),) for k in range(t.nsp)):
        return None
    return (*t[1:], t[0])


class Add(Layer):
    kind = "add"
    family = "merge"
    n_inputs = None
    tensors = True  # equal shapes of any kind (residual adds of tokens); broadcasting: binary
    doc = "elementwise sum of branches (residual connection); shapes must match"

    def _infer(self, in_shapes, rounding):
        self.effects = None
        imgs = [s for s in in_shapes if s.__class__ is not Tensor]
        if imgs and len(imgs) < len(in_shapes) and all(
                s.__class__ is not Tensor or _image_of(s) == imgs[0] for s in in_shapes):
            # an image plus a tensor laid out as that image (C then each spatial axis whole, in
            # order; its channel axis' role lost, as an elementwise gate at a 1x1 map leaves it)
            in_shapes = [imgs[0]] * len(in_shapes)
        first = in_shapes[0]
        if first.__class__ is Tensor:  # tokens, tensors: equal sizes and kind; a new dense tensor
            if any(s.__class__ is not Tensor or tuple(s) != tuple(first) for s in in_shapes[1:]):
                raise SpecError("add needs equal shapes on every branch, got "
                                + " and ".join(fmt_shape(x) for x in in_shapes),
                                hint="broadcasting adds are {binary: add} layers")
            out, self.effects = joined(in_shapes)
            return out
        if any(s != first for s in in_shapes[1:]):
            what = "channels" if all(s[:-1] == first[:-1] for s in in_shapes) else "shapes"
            raise SpecError(f"add needs equal {what} on every branch, got "
                            + " and ".join(fmt_shape(x) for x in in_shapes),
                            hint="project the shortcut with a 1x1 conv (and the same stride) so the "
                                 "shapes agree")
        return first

    def rf_windows(self):
        return self.effects or None  # tensors whose axes hold different positions: unknown there

    def _ops(self):
        return {"add": numel(self.out_shape) * (len(self.in_shapes) - 1)}


class Identity(Layer):
    kind = "identity"
    family = "reshape"
    tensors = True
    view = True
    takes_activation = False
    doc = "passes its input on unchanged"


class Mul(Layer):
    """Elementwise product of branches, a branch of 1x1xC (or [C]) broadcast over HxWxC:
    squeeze-and-excitation's gate (Hu et al. 2018). Its products are counted as the op
    class ``mul``, not as MACs (PyTorch's profilers and the papers' MAdds leave them out)."""

    kind = "mul"
    family = "merge"
    n_inputs = None
    doc = ("elementwise product of branches; a 1x1xC or [C] branch is broadcast over HxWxC "
           "(the squeeze-excitation gate); counted as `mul` ops, not MACs")

    def _infer(self, in_shapes, rounding):
        if len(in_shapes) < 2:
            raise SpecError("mul multiplies two or more branches, got one",
                            hint="write {mul: [[...gate layers...], []]} or {mul: null, inputs: [a, b]}")
        out = broadcast_dims(in_shapes)
        if out is None:
            raise SpecError("mul branches do not broadcast: "
                            + " and ".join(fmt_shape(x) for x in in_shapes),
                            hint="each axis must be equal or 1 (channels last); an SE gate is "
                                 "1x1xC (global pool, then 1x1 convs back to C channels)")
        if len(set(in_shapes)) > 1:
            self._notes.append(" * ".join(fmt_shape(x) for x in in_shapes) + f" → {fmt_shape(out)} "
                               "(size-1 axes broadcast)")
        return out

    def _ops(self):
        return {"mul": numel(self.out_shape) * (len(self.in_shapes) - 1)}

    def rf_inputs(self):
        """The full-size branches carry the field; a broadcast gate (squeeze-excitation's
        1x1xC) makes every unit depend on the whole gate input as well, which the receptive
        field report flags as ``gated`` instead of widening every later field to the image."""
        full = [i for i, s in enumerate(self.in_shapes) if s == self.out_shape]
        return full or list(range(len(self.in_shapes)))

    @property
    def gated(self) -> bool:
        return len(self.rf_inputs()) < len(self.in_shapes)
