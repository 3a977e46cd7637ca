"""The spec language: safe YAML with line numbers, validation, expansion of repeats and modules."""
from cnncalc.spec.loader import load_spec, load_spec_text, resolve_spec

__all__ = ["load_spec", "load_spec_text", "resolve_spec"]
