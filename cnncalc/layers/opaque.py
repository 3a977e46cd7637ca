"""An opaque layer: an operation cnncalc has no rule for, kept so that an imported model
(``cnncalc import --opaque``) still forms a graph.

Its output shape is given (ONNX shape inference found it); ``params:`` lists the shapes of
the learned tensors the original op reads (counted as parameters, so the total equals the
model's); its MACs are unknown (counted as 0, and every report says the MAC totals are a lower
bound). The runtime cannot execute it.
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


def _as_shapes(v, name):
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(s, list) and s and all(
            isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 2**40 for d in s) for s in v):
        raise SpecError(f"'{name}' must be a list of tensor shapes such as [[64, 3, 3, 3], [64]], got {v!r}")
    return [tuple(s) for s in v]


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
    doc = ("an operation cnncalc cannot count (kept from an imported model): given output shape, the "
           "shapes of its learned tensors (params), MACs unknown")
    fields = {"op": (_as_text, REQUIRED), "shape": (_as_shape, REQUIRED), "params": (_as_shapes, None)}

    def _infer(self, in_shapes, rounding):
        self._notes.append(f"output shape given by the imported model ({self.args['op']}); not computed")
        return self.args["shape"]

    def param_shapes(self):
        return {f"p{i}": (s, "weight") for i, s in enumerate(self.args["params"] or [])}

    def describe(self):
        return f"OPAQUE {self.args['op']} (MACs unknown)"


def opaque_layers(graph) -> list[str]:
    """Names of the opaque layers of a graph (for the reports' warning line)."""
    return [n.name for n in graph.layers if n.kind == Opaque.kind]


__all__ = ["Opaque", "opaque_layers"]
