"""Renderers shared by every command: a TableView drawn as a rich table, plain text, CSV,
Markdown; JSON goes through ``emit_json``."""
from cnncalc.report.render import Column, TableView, emit_json, render

__all__ = ["Column", "TableView", "emit_json", "render"]
