"""The Python API: ``load`` a spec into a graph, ``analyze`` it into a report.

>>> from cnncalc import analyze
>>> r = analyze("alexnet")
>>> r["conv1"].shape
(55, 55, 96)
"""
from __future__ import annotations

from pathlib import Path

from cnncalc.analysis.report import Report, analyze_graph
from cnncalc.graph import Graph
from cnncalc.shapes import Shape, parse_shape
from cnncalc.spec.loader import load_spec


def load(spec: str | Path) -> Graph:
    """Load a spec file (or a zoo name such as ``"vgg16"``) into a layer graph."""
    return load_spec(spec)


def analyze(spec: str | Path | Graph, *, batch: int = 1, dtype: str = "float32", bias: bool = True,
            input: str | Shape | None = None, explain: bool = False) -> Report:
    """Analyze a spec path, zoo name or Graph; the same numbers as ``cnncalc summarize``."""
    graph = spec if isinstance(spec, Graph) else load_spec(spec)
    shape = parse_shape(input) if input is not None else None
    return analyze_graph(graph, batch=batch, dtype=dtype, bias=bias, input_shape=shape, explain=explain)
