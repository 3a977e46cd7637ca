"""ONNX → spec (issue 23's layout): the driver (:mod:`.importer`), the low-level vocabulary
every node no rewrite lifts falls back on (:mod:`.lower`), and the registry of rewrites that
lift readable layers, one module per family (:mod:`.rewrites`)."""
from __future__ import annotations

from cnncalc.interop.onnx.importer import (Imported, MAX_ONNX_BYTES, folded_batchnorms, import_model,
                                           import_onnx, load_onnx_graph, read_model)

__all__ = ["Imported", "MAX_ONNX_BYTES", "folded_batchnorms", "import_model", "import_onnx", "load_onnx_graph",
           "read_model"]
