"""cnncalc: exact shapes, parameters, memory, MACs and receptive fields of CNNs."""
__version__ = "0.1.0"
