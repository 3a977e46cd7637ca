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
        name, typ, shape, act, params, macs = raw
        assert cells[0] == name and cells[1] == typ
        assert cells[2] == fmt_shape(row["shape"]) and "x".join(map(str, row["shape"])) == shape
        assert [c.replace(",", "") for c in cells[3:]] == [act, params, macs]


def test_equal_values_of_different_types_keep_their_own_format():
    # 1 == True and 0 == False: a cell formatted for one must not stand in for the other
    view = TableView(title="", columns=[Column("k", "K", "left"), Column("v", "V")],
                     rows=[{"k": "a", "v": True}, {"k": "b", "v": 1}, {"k": "c", "v": False},
                           {"k": "d", "v": 0}, {"k": "e", "v": 1000}, {"k": "f", "v": 1000.0}])
    assert _plain_rows(to_plain(view), 2) == [["a", "yes"], ["b", "1"], ["c", "no"], ["d", "0"],
                                                ["e", "1,000"], ["f", "1000.0"]]
