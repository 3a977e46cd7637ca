"""The plain table formats each distinct cell value once and joins each distinct run of cells
after the first column once (cnncalc.report.render.to_plain): every row must still show its
own values. Checked against the CSV of the same view, cell by cell."""
import csv
import io

import pytest

from cnncalc import analyze
from cnncalc.cli.summarize import layer_view
from cnncalc.report.render import Column, TableView, to_csv, to_plain
from cnncalc.shapes import fmt_shape


def _plain_rows(text: str, n_cols: int) -> list[list[str]]:
    """Cut the table body of ``to_plain`` output into cells using the dashed rule's widths."""
    lines = text.splitlines()
    i = next(k for k, l in enumerate(lines) if l and set(l) <= {"-", " "})
    widths = [len(w) for w in lines[i].split("  ")]
    assert len(widths) == n_cols
    rows = []
    for line in lines[i + 1:]:
        if not line or set(line) <= {"-", " "}:
            break
        cells, pos = [], 0
        for w in widths:
            cells.append(line[pos:pos + w].strip())
            pos += w + 2
        rows.append(cells)
    return rows


@pytest.mark.parametrize("spec", ["cifar_resnet110", "googlenet", "densenet121"])
def test_every_plain_row_shows_its_own_values(spec):
    # replayed module instances: thousands of rows sharing a few distinct value combinations
    view = layer_view(analyze(spec), chart=False)
    body = _plain_rows(to_plain(view), len(view.columns))
    table = list(csv.reader(io.StringIO(to_csv(view))))
    assert table[0] == [c.key for c in view.columns]
    assert len(body) == len(view.rows) == len(table) - 2           # header and the total row
    for cells, raw, row in zip(body, table[1:], view.rows):
        name, typ, shape, act, params, macs, saved = raw
        assert cells[0] == name and cells[1] == typ
        assert cells[2] == fmt_shape(row["shape"]) and "x".join(map(str, row["shape"])) == shape
        assert [c.replace(",", "") for c in cells[3:]] == [act, params, macs, saved]


def test_equal_values_of_different_types_keep_their_own_format():
    # 1 == True and 0 == False: a cell formatted for one must not stand in for the other
    view = TableView(title="", columns=[Column("k", "K", "left"), Column("v", "V")],
                     rows=[{"k": "a", "v": True}, {"k": "b", "v": 1}, {"k": "c", "v": False},
                           {"k": "d", "v": 0}, {"k": "e", "v": 1000}, {"k": "f", "v": 1000.0}])
    assert _plain_rows(to_plain(view), 2) == [["a", "yes"], ["b", "1"], ["c", "no"], ["d", "0"],
                                                ["e", "1,000"], ["f", "1000.0"]]


@pytest.mark.parametrize("spec,kw", [("cifar_resnet110", {}), ("googlenet", {"bias": False}),
                                     ("densenet121", {"batch": 8}), ("lenet5", {})])
@pytest.mark.parametrize("depth", [None, 2])
def test_rows_sharing_cells_draw_as_the_same_rows_written_out(spec, kw, depth):
    # summarize's view keeps a row as its name and its kind (the cells the rows of a replayed
    # block share): every rendering must equal that of the same rows as plain dicts
    from cnncalc.report.render import ColumnRows, to_markdown
    view = layer_view(analyze(spec, **kw), depth=depth, chart=True)
    assert isinstance(view.rows, ColumnRows) and view.rows.kinds is not None
    if depth is None and spec != "lenet5":
        assert len(set(view.rows.kinds)) < len(view.rows)  # rows do share cells
    written = TableView(title=view.title, columns=view.columns, rows=[dict(r) for r in view.rows],
                        footer=view.footer, sections=view.sections, notes=view.notes, caption=view.caption)
    assert to_plain(view) == to_plain(written)
    assert to_csv(view) == to_csv(written) and to_markdown(view) == to_markdown(written)
    assert view == written and view.rows == written.rows


def test_column_rows_reads_like_a_list_of_dicts():
    from cnncalc.report.render import ColumnRows
    rows = ColumnRows({"name": ["a", "b", "c"]}, kinds=[0, 1, 0], shared={"v": [10, 20], "w": ["x", "y"]})
    assert len(rows) == 3 and rows[1] == {"name": "b", "v": 20, "w": "y"} and rows[-1]["v"] == 10
    assert list(rows) == [{"name": "a", "v": 10, "w": "x"}, {"name": "b", "v": 20, "w": "y"},
                          {"name": "c", "v": 10, "w": "x"}]
    assert rows[1:] == list(rows)[1:] and rows + [{"name": "t"}] == list(rows) + [{"name": "t"}]
    assert rows.column("v") == [10, 20, 10] and rows.column("name") == ["a", "b", "c"]
    assert rows.column("nope") is None and rows.shared("v") == [10, 20] and rows.shared("name") is None
    with pytest.raises(IndexError):
        rows[3]
    with pytest.raises(ValueError):  # a kind without a row
        ColumnRows({"name": ["a"]}, kinds=[1], shared={"v": [1, 2]})
    with pytest.raises(ValueError):  # columns of different lengths
        ColumnRows({"name": ["a", "b"], "v": [1]})
    plain = ColumnRows({"name": ["a", "b"], "v": [1, 2]})
    assert plain.kinds is None and list(plain) == [{"name": "a", "v": 1}, {"name": "b", "v": 2}]


@pytest.mark.parametrize("spec", ["cifar_resnet110", "lenet5"])
def test_write_plain_writes_to_plain(spec):
    # summarize writes its table a block of lines at a time: the same text as to_plain
    from cnncalc.report.render import write_plain
    for view in (layer_view(analyze(spec)), TableView(title="", columns=[], rows=[]),
                 TableView(title="t", columns=[Column("k", "K")], rows=[{"k": i} for i in range(600)])):
        buf = io.StringIO()
        write_plain(view, buf)
        assert buf.getvalue() == to_plain(view)


def test_equal_tuples_of_different_types_keep_their_own_format():
    # (True, 1) == (1, 1) == (1.0, 1): the plain table formats each distinct value once, and
    # must not let one stand in for another; tuples of ints and strs (shapes, chart bars) share
    view = TableView(title="", columns=[Column("k", "K", "left"), Column("v", "V", fmt=str)],
                     rows=[{"k": "a", "v": (True, 1)}, {"k": "b", "v": (1, 1)}, {"k": "c", "v": (1.0, 1)},
                           {"k": "d", "v": ((1,), 1)}, {"k": "e", "v": ((True,), 1)}, {"k": "f", "v": (1, 1)}])
    assert _plain_rows(to_plain(view), 2) == [["a", "(True, 1)"], ["b", "(1, 1)"], ["c", "(1.0, 1)"],
                                                ["d", "((1,), 1)"], ["e", "((True,), 1)"], ["f", "(1, 1)"]]
