"""Analysis passes over an inferred graph: counts, memory, receptive fields; the Report."""
from cnncalc.analysis.report import DTYPES, LayerStats, Report, analyze_graph

__all__ = ["DTYPES", "LayerStats", "Report", "analyze_graph"]
