"""Compatibility module: the low-level lowering lives in :mod:`cnncalc.interop.onnx.lower`."""
from __future__ import annotations

from cnncalc.interop.onnx.lower import LITERAL_MAX, LOWERINGS, Lowered, Operand, SpecItem, Unlowered, lower

__all__ = ["LITERAL_MAX", "LOWERINGS", "Lowered", "Operand", "SpecItem", "Unlowered", "lower"]
