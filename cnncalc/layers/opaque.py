"""An opaque layer: an operation cnncalc has no rule for, kept so that an imported model
(``cnncalc import --opaque``) still forms a graph.

Its output shape is given (ONNX shape inference found it); it counts 0 parameters and
0 MACs, and every report flags it, because its real cost is unknown. The runtime cannot
execute it.
"""
from __future__ import annotations

from cnncalc.errors import SpecError
from cnncalc.layers.base import REQUIRED, Layer
from cnncalc.shapes import parse_shape


def _as_shape(v, name):
    try:
        return parse_shape(v)
    except ValueError as e:
        raise SpecError(f"'{name}': {e}") from None


def _as_text(v, name):
    if not isinstance(v, str) or not v:
        raise SpecError(f"'{name}' must be the name of the original operation, got {v!r}")
    return v


class Opaque(Layer):
    kind = "opaque"
    family = "opaque"
    primary = "op"
    n_inputs = None
    takes_activation = False
    doc = "an operation cnncalc cannot count (kept from an imported model): given output shape, 0 params/MACs"
    fields = {"op": (_as_text, REQUIRED), "shape": (_as_shape, REQUIRED)}

    def _infer(self, in_shapes, rounding):
        self._notes.append(f"output shape given by the imported model ({self.args['op']}); not computed")
        return self.args["shape"]

    def describe(self):
        return f"OPAQUE {self.args['op']} (0 params/MACs assumed)"


def opaque_layers(graph) -> list[str]:
    """Names of the opaque layers of a graph (for the reports' warning line)."""
    return [n.name for n in graph.layers if n.kind == Opaque.kind]


__all__ = ["Opaque", "opaque_layers"]
