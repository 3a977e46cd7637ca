"""Every command's table drawn by rich at 60, 80, 120 and 200 terminal columns: no number of the
plain output is ever cut. Columns may be left out on a narrow terminal (the chart first, then the
least important ones) — then a line under the table names them — but every number of every
column that is shown, and of the key/value sections under the table, appears whole.

The views are captured from real command runs (in-process, plain output), then each one is drawn
through ``render_rich`` at each width; two commands are also run end to end with FORCE_COLOR and
COLUMNS, as a terminal would run them."""
import io
import re
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

import importlib

R = importlib.import_module("cnncalc.report.render")
from cnncalc.cli import main

WIDTHS = (60, 80, 120, 200)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# a number: digits with thousands separators, decimals, exponents, percentages, and shapes such
# as 224x224x64 or ranges -42..153; it must not be glued to a letter (conv5_3 is a name)
NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?:(?:x|\.\.)[-−]?\d+)*%?(?![\w])")


def numbers(text: str) -> Counter:
    return Counter(m.group().rstrip(",") for m in NUMBER.finditer(ANSI.sub("", text)))


def capture(cli, monkeypatch, *args):
    """Run a command with plain output and return the TableViews it rendered."""
    views = []
    orig = R.plain_lines  # (what to_plain and write_plain draw with)

    def spy(view):
        views.append(view)
        return orig(view)

    monkeypatch.setattr(R, "plain_lines", spy)
    res = cli(*args, env={"NO_COLOR": "1"})
    monkeypatch.setattr(R, "plain_lines", orig)
    assert res.exit_code in (0, 1), res.output
    assert views, f"{args} rendered no table"
    return list(views)


def assert_fits(view, width):
    buf = io.StringIO()
    R.render_rich(view, buf, width=width)
    out = ANSI.sub("", buf.getvalue())
    lay = R.layout(view, width)
    assert max(len(line.rstrip()) for line in out.splitlines()) <= width
    if lay.dropped:  # the line under the table says what is missing and how to see it
        assert f"not shown at {width} columns" in " ".join(out.split())
        assert "--format plain" in " ".join(out.split())
        assert not any(c.kind == "chart" for c in lay.columns), "the chart goes first"
    else:
        assert "not shown" not in out
    shown = R.to_plain(replace(view, columns=lay.columns))
    want, got = numbers(shown), numbers(out)
    missing = {n: k - got[n] for n, k in want.items() if got[n] < k}
    assert not missing, f"{view.title} at {width} columns: numbers cut or lost: {missing}\n{out}"
    return lay


ANALYSIS = [
    ("summarize", "vgg16"),
    ("summarize", "resnet50"),
    ("summarize", "resnet50", "--depth", "1"),
    ("summarize", "vgg16", "--no-bias", "--batch", "64"),
    ("summarize", "mobilenet_v1_nobn", "--by", "type"),
    ("receptive-field", "resnet50"),
    ("receptive-field", "vgg16", "--explain"),
    ("receptive-field", "--chain", "7x7s2,7x7s1", "--explain"),
    ("receptive-field", "vgg16", "--layer", "conv5_3", "--unit", "3,4"),
    ("zoo",),
    ("compare", "vgg-table2"),
    ("compare", "googlenet-table1"),
    ("conv", "32x32x3", "-f", "10", "-k", "5", "-p", "2"),
    ("pool", "55x55x96", "-k", "3", "-s", "2"),
    ("fc", "7x7x512", "-u", "4096"),
    ("check", "examples/homework/ANSWERS.yaml"),
    ("check", "examples/homework/WRONG.yaml"),
    ("check", "examples/homework/WRONG.yaml", "--hide-expected"),
]


@pytest.mark.parametrize("args", ANALYSIS, ids=" ".join)
def test_analysis_tables_keep_every_number(cli, monkeypatch, args):
    for view in capture(cli, monkeypatch, *args):
        for w in WIDTHS:
            lay = assert_fits(view, w)
            if w == 200 and args[0] in ("summarize", "check") and "--depth" not in args:
                assert not lay.dropped, f"{args} drops {[c.header for c in lay.dropped]} at 200"
            if args[0] == "check":  # the verdict of every question at every width
                assert lay.columns[0].key == "status"


@pytest.mark.slow
def test_runtime_tables_keep_every_number(cli, monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 10
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 255, (120, 28, 28), dtype=np.uint8), labels=labels)
    views = capture(cli, monkeypatch, "gradcheck", "lenet5")
    views += capture(cli, monkeypatch, "verify", "lenet5", "--all-rows")
    views += capture(cli, monkeypatch, "train", "lenet5", "--epochs", "1", "--data", tmp_path / "d.npz",
                     "-o", tmp_path / "run", "--threads", "1")
    views += capture(cli, monkeypatch, "evaluate", "--checkpoint", tmp_path / "run" / "latest.npz")
    for view in views:
        for w in WIDTHS:
            assert_fits(view, w)


def test_end_to_end_on_a_terminal(cli):
    """FORCE_COLOR + COLUMNS as a terminal: every PASS at 80 columns, no number cut in vgg16."""
    res = cli("check", "examples/homework/ANSWERS.yaml", env={"FORCE_COLOR": "1", "COLUMNS": "80"})
    out = ANSI.sub("", res.output)
    assert res.exit_code == 0
    assert sum(line.lstrip().startswith("PASS") for line in out.splitlines()) == 21
    assert "\x1b[" in res.output  # rich, not plain
    res = cli("summarize", "vgg16", env={"FORCE_COLOR": "1", "COLUMNS": "80"})
    out = ANSI.sub("", res.output)
    for n in ("1,849,688,064", "138,357,544", "15,470,264,320", "102,764,544"):
        assert n in out
    assert "…" not in out
    assert "not shown at 80 columns: chart" in " ".join(out.split())


def test_chart_bars_have_two_colours(cli):
    res = cli("summarize", "vgg16", env={"FORCE_COLOR": "1", "COLUMNS": "200"})
    line = next(x for x in res.output.splitlines() if "fc6" in x)
    assert R.CHART_MEMORY != R.CHART_PARAMS
    # rich writes the two bars with two different colour codes (cyan 36, magenta 35)
    assert "\x1b[36m" in res.output and "\x1b[35m" in line


def test_plain_when_piped_or_no_color(cli):
    for env in ({"NO_COLOR": "1"}, {}):
        res = cli("summarize", "vgg16", env=env)
        assert "\x1b[" not in res.output
    res = cli("summarize", "vgg16", "--format", "plain", env={"FORCE_COLOR": "1"})
    assert "\x1b[" not in res.output and "not shown" not in res.output
