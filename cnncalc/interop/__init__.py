"""Bridges to the frameworks (optional extras, imported only by the commands that need them).

* :mod:`cnncalc.interop.onnx` — an ONNX model → a spec (YAML text) and its weights (the driver,
  a registry of rewrites one module per family, the low-level fallback; ``onnx_import`` and
  ``onnx_lower`` are the old names, kept);
* :mod:`cnncalc.interop.onnx_export` — a spec (graph) → an ONNX model;
* :mod:`cnncalc.interop.torch_export` — a spec → a standalone PyTorch module (source code);
* :mod:`cnncalc.interop.torch_import` — a user's ``nn.Module`` factory → ONNX → a spec.

Each direction is a table: registered rewrites from ONNX ops (import) or one entry per spec
layer type (export).
Nothing here is imported by the analysis of a YAML spec.
"""
from __future__ import annotations

import importlib

from cnncalc.errors import CnnCalcError

EXTRAS = {"onnx": "onnx", "onnxruntime": "onnx", "torch": "torch"}


class InteropError(CnnCalcError):
    """Bad input to an importer/exporter (exit 2)."""


def require(module: str):
    """Import an optional dependency or stop with the exact pip command (exit 2)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module, module)
        raise InteropError(f"this command needs the '{module}' package, which is not installed\n"
                           f"  hint: pip install 'cnncalc[{extra}]'") from None


def onnx_safe_name(layer_name: str) -> str:
    """A spec layer name as an imported spec writes it: module paths 'a/b' become 'a.b'."""
    return layer_name.replace("/", ".")
