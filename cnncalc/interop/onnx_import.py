"""Compatibility module: the ONNX importer lives in :mod:`cnncalc.interop.onnx` (the driver in
:mod:`cnncalc.interop.onnx.importer`, the rewrites in :mod:`cnncalc.interop.onnx.rewrites`).
The public names stay importable from here."""
from __future__ import annotations

from cnncalc.interop.onnx.common import Item, spec_shape
from cnncalc.interop.onnx.importer import (Imported, MAX_ONNX_BYTES, folded_batchnorms, import_model,
                                           import_onnx, load_onnx_graph, read_model)

__all__ = ["Imported", "Item", "MAX_ONNX_BYTES", "folded_batchnorms", "import_model", "import_onnx",
           "load_onnx_graph", "read_model", "spec_shape"]
