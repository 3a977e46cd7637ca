"""Merging branches: concat along channels, elementwise add (residual); identity."""
from __future__ import annotations

from cnncalc.errors import SpecError
from cnncalc.layers.base import Layer
from cnncalc.shapes import fmt_shape, numel


class Concat(Layer):
    kind = "concat"
    family = "merge"
    n_inputs = None
    doc = "concatenate branches along the channels; spatial sizes must match"

    def _infer(self, in_shapes, rounding):
        first = in_shapes[0]
        for s in in_shapes[1:]:
            if len(s) != len(first) or s[:-1] != first[:-1]:
                raise SpecError("concat needs the same spatial size on every branch, got "
                                + ", ".join(fmt_shape(x) for x in in_shapes),
                                hint="give the branches matching strides and 'same' padding")
        c = sum(s[-1] for s in in_shapes)
        self._notes.append(" + ".join(str(s[-1]) for s in in_shapes) + f" = {c} channels")
        return (*first[:-1], c)


class Add(Layer):
    kind = "add"
    family = "merge"
    n_inputs = None
    doc = "elementwise sum of branches (residual connection); shapes must match"

    def _infer(self, in_shapes, rounding):
        first = in_shapes[0]
        if any(s != first for s in in_shapes[1:]):
            what = "channels" if all(s[:-1] == first[:-1] for s in in_shapes) else "shapes"
            raise SpecError(f"add needs equal {what} on every branch, got "
                            + " and ".join(fmt_shape(x) for x in in_shapes),
                            hint="project the shortcut with a 1x1 conv (and the same stride) so the "
                                 "shapes agree")
        return first

    def _ops(self):
        return {"add": numel(self.out_shape) * (len(self.in_shapes) - 1)}


class Identity(Layer):
    kind = "identity"
    family = "reshape"
    view = True
    takes_activation = False
    doc = "passes its input on unchanged"
