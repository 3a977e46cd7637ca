"""`cnncalc graph`: layout invariants on real networks, the SVG/DOT/Mermaid/PNG writers, the CLI."""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import cnncalc
from cnncalc.graph import INPUT
from cnncalc.report.graph import group_key, layout_graph, overlaps, to_dot, to_mermaid
from cnncalc.report.svg import to_svg
from cnncalc.shapes import fmt_shape
from tests.conftest import ROOT

SVG = "{http://www.w3.org/2000/svg}"

SMALL = """
name: residual + inception
input: 16x16x3
rounding: floor
layers:
  - {conv: 8, kernel: 3, pad: 1, activation: relu, bn: true}
  - {add: [[{conv: 8, kernel: 3, pad: 1, activation: relu}, {conv: 8, kernel: 3, pad: 1}], []], activation: relu}
  - {maxpool: 3, stride: 2, pad: 1, rounding: floor}
  - {concat: [[{conv: 4, kernel: 1}], [{conv: 4, kernel: 1}, {conv: 6, kernel: 3, pad: 1}],
              [{conv: 2, kernel: 1}, {conv: 3, kernel: 5, pad: 2}], [{maxpool: 3, stride: 1, pad: 1}, {conv: 3, kernel: 1}]]}
  - global_avgpool
  - flatten
  - {fc: 10}
"""


def expected_edges(graph, depth=None) -> dict[tuple[str, str], set[str]]:
    """The edges a picture must show, straight from the graph (independent of the layout code)."""
    out: dict[tuple[str, str], set[str]] = {}
    for n in graph.layers:
        dst = group_key(n.name, depth)
        for s in n.inputs:
            src = s if s == INPUT else group_key(s, depth)
            if src != dst:
                out.setdefault((src, dst), set()).add(fmt_shape(graph[s].shape))
    return out


def check_invariants(graph, depth=None):
    lay = layout_graph(graph, depth)
    assert overlaps(lay) == []
    want = expected_edges(graph, depth)
    got = {(e.src, e.dst): set(e.label.split(" | ")) for e in lay.edges}
    assert got == want
    for e in lay.edges:  # each route starts under its source box and ends on top of its target
        a, b = lay.nodes[e.src], lay.nodes[e.dst]
        assert e.points[0] == (a.x, a.y + a.h) and e.points[-1] == (b.x, b.y)
        assert all(y1 <= y2 for (_, y1), (_, y2) in zip(e.points, e.points[1:]))  # top to bottom
    svg = to_svg(lay)
    root = ET.fromstring(svg.split("\n", 1)[1])  # parses as XML
    paths = {(p.get("data-src"), p.get("data-dst")) for p in root.iter(SVG + "path") if p.get("data-src")}
    assert paths == set(want)
    texts = [t.text for t in root.iter(SVG + "text")]
    for n in graph.layers if depth is None else []:
        i = texts.index(n.name)  # name, then type (kernel/stride), then output shape
        assert texts[i + 1:i + 3] == [n.layer.describe(), fmt_shape(n.shape)]
    # the shape written under each box overlaps no box
    from cnncalc.report.graph import LABEL_PX, STEM, text_width
    for n in lay.real_nodes:
        if not n.out_label:
            continue
        lx0, ly1 = n.x + 6, n.y + n.h + STEM
        lx1, ly0 = lx0 + text_width(n.out_label, LABEL_PX), ly1 - 2 - LABEL_PX
        for b in lay.real_nodes:
            bx0, by0, bx1, by1 = b.box
            assert not (lx0 < bx1 and bx0 < lx1 and ly0 < by1 and by0 < ly1), (n.id, b.id)
    # every node's box lies inside the picture
    for n in lay.real_nodes:
        x0, y0, x1, y1 = n.box
        assert 0 <= x0 and x1 <= lay.width and 0 <= y0 and y1 <= lay.height
    return lay, root


@pytest.mark.parametrize("spec", ["googlenet", "resnet50", "densenet121", "small"])
def test_layout_invariants(spec, tmp_path):
    if spec == "small":
        p = tmp_path / "small.yaml"
        p.write_text(SMALL)
        spec = str(p)
    check_invariants(cnncalc.load(spec))


@pytest.mark.parametrize("spec,depth", [("googlenet", 1), ("resnet50", 1), ("resnet50", 2), ("densenet121", 2)])
def test_layout_invariants_collapsed(spec, depth):
    check_invariants(cnncalc.load(spec), depth)


def test_inception_branches_side_by_side():
    lay = layout_graph(cnncalc.load("googlenet"))
    n = lay.nodes
    first = [n[f"inception_3a/{b}"] for b in ("1x1", "3x3_reduce", "5x5_reduce", "pool")]
    second = [n[f"inception_3a/{b}"] for b in ("3x3", "5x5", "pool_proj")]
    for row in (first, second):
        assert len({b.y for b in row}) == 1  # one row
        xs = sorted(b.box for b in row)
        assert all(a[2] < b[0] for a, b in zip(xs, xs[1:]))  # disjoint, left to right
    assert first[0].y > n["pool2"].y and second[0].y > first[0].y and n["inception_3a/output"].y > second[0].y
    # the naive inception module draws without a single crossing
    assert layout_graph(cnncalc.load("inception-naive")).crossings == 0


def test_chain_is_one_column():
    lay = layout_graph(cnncalc.load("vgg16"))
    assert len({n.x for n in lay.real_nodes}) == 1 and lay.crossings == 0


def test_depth_collapses_modules_like_summarize():
    lay = layout_graph(cnncalc.load("googlenet"), depth=1)
    # summarize googlenet --depth 1 shows input + 22 rows (9 inception modules, 7 stem layers,
    # pool3/pool4/pool5, dropout, linear, softmax)
    assert len(lay.real_nodes) == 23
    m = lay.nodes["inception_4a"]
    # with its parameters: the sum of its rows in summarize --depth 1
    params = sum(r.params for r in cnncalc.analyze("googlenet").layers if r.name.startswith("inception_4a/"))
    assert params == 1 * 1 * 480 * (192 + 96 + 16 + 64) + 3 * 3 * 96 * 208 + 5 * 5 * 16 * 48 + (192 + 96 + 208 + 16 + 48 + 64)
    assert m.kind == "module" and m.lines == ["inception_4a", "module, 8 layers", f"{params:,} params", "14x14x512"]


def test_dot_and_mermaid_list_every_node_and_edge():
    g = cnncalc.load("inception-naive")
    lay = layout_graph(g)
    dot = to_dot(lay)
    for e in expected_edges(g):
        assert f'"{e[0]}" -> "{e[1]}"' in dot
    assert '"conv3x3" [label="conv3x3\\nconv3x3-192\\n28x28x192"];' in dot
    mmd = to_mermaid(lay).splitlines()
    assert mmd[3] == "flowchart TB"
    assert sum("-->" in line for line in mmd) == len(expected_edges(g)) == 8
    assert '  n2["conv3x3<br/>conv3x3-192<br/>28x28x192"]' in mmd


# ------------------------------------------------------------------------------------------ CLI
def test_cli_formats_by_suffix(cli, tmp_path):
    for suffix, head in [(".svg", "<?xml"), (".dot", "digraph"), (".mmd", "---")]:
        out = tmp_path / f"n{suffix}"
        r = cli("graph", "lenet5", "-o", out)
        assert r.exit_code == 0, r.output
        assert out.read_text().startswith(head)
    r = cli("graph", "lenet5", "--format", "mermaid")
    assert r.exit_code == 0 and "flowchart TB" in r.output


def test_cli_refuses_to_overwrite_and_unknown_suffix(cli, tmp_path):
    out = tmp_path / "n.svg"
    out.write_text("mine")
    r = cli("graph", "lenet5", "-o", out)
    assert r.exit_code == 2 and "--force" in r.output and out.read_text() == "mine"
    assert cli("graph", "lenet5", "-o", out, "--force").exit_code == 0
    assert out.read_text().startswith("<?xml")
    r = cli("graph", "lenet5", "-o", tmp_path / "n.jpeg")
    assert r.exit_code == 2 and ".svg" in r.output


def test_cli_png(cli, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "n.png"
    r = cli("graph", "inception-naive", "-o", out)
    assert r.exit_code == 0, r.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # the PNG has the layout's size (100 dpi, 1 px per layout unit): width/height in IHDR
    lay = layout_graph(cnncalc.load("inception-naive"))
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (lay.width, lay.height)


def test_cli_png_without_matplotlib_says_what_to_install(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    r = cli("graph", "lenet5", "-o", tmp_path / "n.png")
    assert r.exit_code == 2 and "pip install 'cnncalc[plot]'" in r.output


def test_graph_never_imports_the_runtime():
    code = ("import sys, cnncalc\nfrom cnncalc.report.graph import layout_graph\nfrom cnncalc.report.svg import to_svg\n"
            "to_svg(layout_graph(cnncalc.load('googlenet')))\n"
            "bad = [m for m in ('numba', 'numpy', 'torch', 'onnx', 'matplotlib') if m in sys.modules]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
