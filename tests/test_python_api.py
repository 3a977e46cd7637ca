"""The Python API for notebooks: cnncalc.summary (specs and live torch modules), the results'
``_repr_html_`` and ``to_pandas``, and examples/python_api.ipynb executed.

Golden values are hand arithmetic on the small networks written here (conv MACs =
H_out * W_out * C_out * k*k*C_in) and PyTorch's own ``sum(p.numel() for p in
model.parameters())``; HTML is read back with html.parser and the SVG with ElementTree.
"""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

import cnncalc

ROOT = Path(__file__).resolve().parent.parent


class Cells(HTMLParser):
    """Rows of <td>/<th> text of every table in an HTML fragment, and the <svg> fragments."""

    def __init__(self, html):
        super().__init__()
        self.rows, self.row, self.cell, self.svg_depth, self.svgs = [], None, None, 0, 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "svg":
            self.svgs += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr":
            self.rows.append(self.row)

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_import_stays_light():
    code = ("import sys, cnncalc\ncnncalc.summary\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'numba', 'numpy', "
            "'pandas', 'click') or m in ('cnncalc.results', 'cnncalc.diff')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_summary_of_a_spec_prints_and_renders_html():
    s = cnncalc.summary("lenet5")
    assert s.totals == cnncalc.analyze("lenet5").totals
    assert s["C1"].shape == (28, 28, 6) and s["C1"].params == 5 * 5 * 1 * 6 + 6
    text = str(s)
    assert text.splitlines()[0].startswith("LeNet-5") and "C1" in text and "Total" in text
    cells = Cells(s._repr_html_())
    body = [r for r in cells.rows if r and r[0] in [x.name for x in s.layers]]
    assert [r[0] for r in body] == [x.name for x in s.layers]  # one row per layer, in order
    c1 = next(r for r in body if r[0] == "C1")
    assert "156" in c1 and "28x28x6" in c1
    total = next(r for r in cells.rows if r and r[0] == "Total")
    assert f"{s.totals['params']:,}" in total
    assert cells.svgs == 1
    # the graph is well-formed SVG with a box per layer
    svg = s.svg()
    root = ET.fromstring(svg)
    names = {g.get("data-name") for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("data-name")}
    assert names == {"input"} | {x.name for x in s.layers}


def test_graph_and_report_display_too():
    g = cnncalc.load("lenet5")
    assert Cells(g._repr_html_()).svgs == 1
    r = cnncalc.analyze("lenet5", batch=4)
    cells = Cells(r._repr_html_())
    assert cells.svgs == 0 and any(row and row[0] == "C3" for row in cells.rows)


def test_names_are_escaped_in_html(spec_file):
    p = spec_file("name: 'a <b> & c'\ninput: 8x8x1\nlayers:\n  - {conv: 2, kernel: 3, name: '<script>x'}\n")
    html = cnncalc.summary(str(p))._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;x" in html
    assert any(row and row[0] == "<script>x" for row in Cells(html).rows)


def test_to_pandas():
    pd = pytest.importorskip("pandas")
    s = cnncalc.summary("lenet5", batch=2)
    df = s.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.index) == [x.name for x in s.layers]
    assert int(df["params"].sum()) == s.totals["params"] and int(df["macs"].sum()) == s.totals["macs"]
    assert df.loc["C1", "shape"] == "28x28x6" and df.loc["C1", "macs"] == 2 * 28 * 28 * 6 * 25


def test_input_size_errors():
    with pytest.raises(ValueError, match="batch first"):
        cnncalc.summary("lenet5", input_size=(32,))
    with pytest.raises(ValueError, match="one input"):
        cnncalc.summary("lenet5", input_size=[(1, 1, 32, 32), (1, 10)])
    with pytest.raises(TypeError, match="input_size"):
        cnncalc.summary(object())


@pytest.mark.torch
def test_live_module_counts_and_modes():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(8 * 8 * 8, 5)

        def forward(self, x):
            x = self.pool(torch.relu(self.bn(self.conv(x))))
            return self.fc(torch.flatten(x, 1))

    net = Net()
    net.train()
    net.bn.eval()  # a mix of modes must survive the tracing
    s = cnncalc.summary(net, input_size=(2, 3, 16, 16))
    assert net.training and net.conv.training and not net.bn.training
    assert s.framework_params == sum(p.numel() for p in net.parameters()) == s.totals["params"]
    assert s.totals["nontrainable"] == 2 * 8  # BN running mean and variance
    macs = 2 * (16 * 16 * 8 * 3 * 3 * 3 + 8 * 8 * 8 * 5)  # batch 2: conv, then fc
    assert s.totals["macs"] == macs
    assert s.report.input_shape == (16, 16, 3) and s.report.batch == 2
    assert "fc" in s.spec and s.layers[-1].shape == (5,)
    # the same numbers as the spec it was converted to
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "converted.yaml"
        path.write_text(s.spec)
        g = cnncalc.load(path)
    assert cnncalc.analyze(g, batch=2).totals == s.totals


@pytest.mark.slow
def test_notebook_executes_and_reproduces_its_outputs():
    """examples/python_api.ipynb runs top to bottom without an error, shows HTML, and the cells
    tagged check-output (the numbers) print what is stored in the notebook."""
    pytest.importorskip("torch")
    pytest.importorskip("pandas")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    path = ROOT / "examples" / "python_api.ipynb"
    stored = nbformat.read(path, as_version=4)
    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("PYTHONPATH", "")
    old = os.environ["PYTHONPATH"]
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + old
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(ROOT / "examples")}}).execute()
    finally:
        os.environ["PYTHONPATH"] = old
    htmls = checked = 0
    for want, got in zip(stored.cells, nb.cells):
        if got.cell_type != "code":
            continue
        assert not [o for o in got.outputs if o.output_type == "error"]
        texts = lambda c: [o.get("data", {}).get("text/plain", o.get("text")) for o in c.outputs  # noqa: E731
                           if o.output_type in ("execute_result", "stream")]
        if "check-output" in want.metadata.get("tags", []):
            checked += 1
            assert texts(got) == texts(want), got.source
        htmls += sum("text/html" in o.get("data", {}) for o in got.outputs)
    assert htmls >= 4 and checked == 3  # two summaries, a DataFrame, a diff; three cells of numbers
