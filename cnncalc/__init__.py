"""cnncalc: exact shapes, parameters, memory, MACs and receptive fields of CNNs.

``load(spec)`` gives the layer graph, ``analyze(spec)`` the report (see cnncalc.api).
"""
from cnncalc._gc import paused_gc

with paused_gc():  # imports build thousands of lasting objects and no garbage: nothing to collect
    from cnncalc.api import analyze, load
    from cnncalc.errors import CnnCalcError, SpecError

__version__ = "0.1.0"
__all__ = ["analyze", "load", "CnnCalcError", "SpecError", "__version__"]
