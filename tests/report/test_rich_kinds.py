"""A big table on a terminal: rich draws one row per kind of row (the cells a replayed block's
rows share) and every row is then its own name and its kind's line (render._rows_by_kind,
_expand_kinds). The text must be byte for byte what rich draws row by row, colours included."""
import importlib
import io

import pytest

from cnncalc import analyze
from cnncalc.cli.summarize import layer_view

R = importlib.import_module("cnncalc.report.render")


def _draw(view, width, monkeypatch, by_kind=True):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    if not by_kind:
        monkeypatch.setattr(R, "_rows_by_kind", lambda view, lay: None)
    buf = io.StringIO()
    R.render_rich(view, buf, width=width)
    monkeypatch.undo()
    return buf.getvalue()


@pytest.mark.parametrize("spec,kw,depth", [("cifar_resnet110", {}, None),
                                           ("cifar_resnet56", {"bias": False, "batch": 8}, None),
                                           ("resnet50", {}, None), ("resnet152", {}, 2),
                                           ("mobilenet_v2", {}, None)])
@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_rows_by_kind_draw_what_rich_draws_row_by_row(spec, kw, depth, width, monkeypatch):
    view = layer_view(analyze(spec, **kw), depth=depth)
    fast = _draw(view, width, monkeypatch)
    assert "\x1b[" in fast  # (colours on)
    assert fast == _draw(view, width, monkeypatch, by_kind=False)


def test_the_big_tables_take_the_kinds_path(monkeypatch):
    # (a table of 330 rows drawn as 17 kinds, at every width: no fallback to row by row)
    view = layer_view(analyze("cifar_resnet110"))
    expanded = []
    orig = R._expand_kinds
    monkeypatch.setattr(R, "_expand_kinds", lambda *a: expanded.append(orig(*a)) or expanded[-1])
    for width in (60, 80, 120, 200):
        kinds = R._rows_by_kind(view, R.layout(view, width))
        assert kinds is not None and len(kinds[0]) < len(view.rows) / 10
        R.render_rich(view, io.StringIO(), width=width)
    assert len(expanded) == 4 and all(e is not None for e in expanded)


def test_names_that_need_care_are_drawn_row_by_row(monkeypatch):
    # a name that is not printable ASCII (its width on a terminal is not its length) or that
    # does not fit its column: rich draws every row
    view = layer_view(analyze("cifar_resnet56"))
    names = view.rows.column("name")
    names[5] = "stage1/bloc\u00e9/conv1"
    assert R._rows_by_kind(view, R.layout(view, 120)) is None
    assert _draw(view, 120, monkeypatch) == _draw(view, 120, monkeypatch, by_kind=False)


def test_a_kind_drawn_on_two_lines_falls_back(monkeypatch):
    # a shared text cell that wraps at this width: the kinds' rows are not one line each
    long = "a long description that wraps " * 3
    rows = R.ColumnRows({"name": [f"n{i}" for i in range(30)]}, kinds=[i % 2 for i in range(30)],
                        shared={"type": ["conv", long], "v": [1, 2]})
    view = R.TableView(title="t", columns=[R.Column("name", "Layer", "left"),
                                           R.Column("type", "Type", "left"), R.Column("v", "V")], rows=rows)
    assert R._rows_by_kind(view, R.layout(view, 60)) is not None
    out = _draw(view, 60, monkeypatch)
    assert out == _draw(view, 60, monkeypatch, by_kind=False) and out.count("n29") == 1


def test_placeholders():
    assert R._placeholder(0, 5) == "@@@@0" and R._placeholder(36 + 10, 5) == "@@@1a"
    assert R._placeholder(36, 2) is None  # '@' + two digits do not fit in 2
