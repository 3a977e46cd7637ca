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


def summary(model, input_size=None, *, batch: int | None = None, dtype: str = "float32", bias: bool = True,
            depth: int | None = None, opaque: bool = False):
    """torchinfo's ``summary(model, input_size)`` for cnncalc: the exact shapes, parameters,
    memory and MACs of a live ``torch.nn.Module`` (or of a spec path, zoo name or Graph).

    ``input_size`` is PyTorch's shape with the batch first — ``(1, 3, 224, 224)`` (N, C, H, W),
    ``(N, C, L)`` for 1-D, ``(N, C, D, H, W)`` for 3-D, ``(N, F)`` for a vector — or a spec
    shape string ``"224x224x3"`` (batch from ``batch``, default 1). A module is traced to ONNX
    in memory and converted by the same importer as ``cnncalc import --torch`` (no file is
    written); its train/eval modes are left as they were. Returns a
    :class:`cnncalc.results.Summary`: ``print()`` it for the table, display it in Jupyter for
    the table and the graph, ``.to_pandas()`` for a DataFrame, ``.spec`` for the YAML.
    """
    from cnncalc.results import Summary

    if isinstance(model, (str, Path, Graph)):
        graph = model if isinstance(model, Graph) else load_spec(model)
        shape = None
        if input_size is not None:
            shape, n = _spec_input(input_size)
            batch = batch or n
        report = analyze_graph(graph, batch=batch or 1, dtype=dtype, bias=bias, input_shape=shape)
        return Summary(report, graph, depth=depth)
    if input_size is None:
        raise TypeError("summary(model, input_size=(N, C, H, W)): a module needs the size to trace it at")
    shape, n = _spec_input(input_size)
    graph, text, count = _import_module(model, shape, opaque=opaque)
    report = analyze_graph(graph, batch=batch or n, dtype=dtype, bias=bias)
    if count is not None and count != report.totals["trainable"]:
        import warnings

        warnings.warn(f"the converted network has {report.totals['trainable']:,} parameters but "
                      f"sum(p.numel() for p in model.parameters()) is {count:,}: parameters the forward "
                      f"pass never uses (or an op mapped unfaithfully) make the difference", stacklevel=2)
    return Summary(report, graph, spec=text, framework_params=count, depth=depth)


def _spec_input(size) -> tuple[Shape, int]:
    """(spec shape H x W x C, batch) of a torch-style size (N, C, *spatial) or a spec string."""
    if isinstance(size, str):
        return parse_shape(size), 1
    dims = tuple(int(d) for d in size)
    if len(dims) < 2 or any(d < 1 for d in dims):
        raise ValueError(f"input_size {tuple(size)}: give PyTorch's shape with the batch first, "
                         "e.g. (1, 3, 224, 224) for N, C, H, W, or a spec shape such as '224x224x3'")
    n, c, spatial = dims[0], dims[1], dims[2:]
    return (tuple(spatial) + (c,) if spatial else (c,)), n


def _import_module(model, shape, *, opaque: bool = False):
    """(Graph, spec text, framework parameter count) of a live module, through the importer."""
    from cnncalc.interop import require
    from cnncalc.interop.onnx_import import import_model
    from cnncalc.interop.torch_import import torch_to_onnx
    from cnncalc.spec.loader import load_spec_text

    torch = require("torch")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"summary() takes a torch.nn.Module, a spec path, a zoo name or a Graph, "
                        f"not {type(model).__name__}")
    modes = [(m, m.training) for m in model.modules()]  # tracing switches to eval mode
    try:
        proto = torch_to_onnx(model, shape)
    finally:
        for m, training in modes:
            m.training = training
    name = type(model).__name__
    imp = import_model(proto, source=f"{name} (a live torch.nn.Module)", input_shape=shape, opaque=opaque,
                       name=name)
    graph = load_spec_text(imp.text, file=f"<{name}>")
    graph.source = f"a live torch.nn.Module ({name}), traced at input {'x'.join(map(str, shape))} through ONNX"
    return graph, imp.text, sum(p.numel() for p in model.parameters())
