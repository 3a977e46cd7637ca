"""cnncalc: exact shapes, parameters, memory, MACs and receptive fields of CNNs.

``load(spec)`` gives the layer graph, ``analyze(spec)`` the report, ``summary(model,
input_size)`` the summary of a live ``torch.nn.Module`` (see cnncalc.api). In Jupyter each
shows the table and the graph; ``.to_pandas()`` gives a DataFrame.
"""
from cnncalc._gc import paused_gc

with paused_gc():  # imports build thousands of lasting objects and no garbage: nothing to collect
    from cnncalc.api import analyze, load, summary
    from cnncalc.errors import CnnCalcError, SpecError

__version__ = "0.1.0"
__all__ = ["analyze", "load", "summary", "CnnCalcError", "SpecError", "__version__"]
