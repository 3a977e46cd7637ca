"""graph --direction LR, --dpi/--scale, and the exported module's docstring (issue 29)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import cnncalc
from cnncalc.report.graph import layout_graph, overlaps, to_dot, to_mermaid
from cnncalc.report.svg import to_svg

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("spec,depth", [("googlenet", None), ("resnet18", 1), ("inception-naive", None)])
def test_left_to_right_layout(spec, depth):
    g = cnncalc.load(spec)
    tb = layout_graph(g, depth)
    lr = layout_graph(g, depth, "LR")
    assert overlaps(lr) == [] and lr.direction == "LR"
    assert {(e.src, e.dst) for e in lr.edges} == {(e.src, e.dst) for e in tb.edges}
    assert lr.crossings == tb.crossings  # the same ordering, placed in columns
    for e in lr.edges:  # from the middle of the source's right side to the target's left side, rightwards
        a, b = lr.nodes[e.src], lr.nodes[e.dst]
        assert e.points[0] == (a.x + a.w / 2, a.y + a.h / 2) and e.points[-1] == (b.x - b.w / 2, b.y + b.h / 2)
        assert all(x1 <= x2 for (x1, _), (x2, _) in zip(e.points, e.points[1:]))
        assert a.x < b.x
    for n in lr.real_nodes:  # inside the picture, below the title
        x0, y0, x1, y1 = n.box
        assert 0 <= x0 and x1 <= lr.width and 40 <= y0 and y1 <= lr.height
    root = ET.fromstring(to_svg(lr).split("\n", 1)[1])
    assert len([p for p in root.iter(SVG + "path") if p.get("data-src")]) == len(lr.edges)
    assert "rankdir=LR;" in to_dot(lr) and "flowchart LR" in to_mermaid(lr)


def test_svg_scale_keeps_the_drawing():
    lay = layout_graph(cnncalc.load("lenet5"))
    root = ET.fromstring(to_svg(lay, scale=2).split("\n", 1)[1])
    assert (float(root.get("width")), float(root.get("height"))) == (2 * lay.width, 2 * lay.height)
    assert root.get("viewBox") == f"0 0 {lay.width} {lay.height}"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_cli_dpi_scale_direction(cli, tmp_path):
    pytest.importorskip("matplotlib")
    lay = layout_graph(cnncalc.load("lenet5"))
    r = cli("graph", "lenet5", "-o", tmp_path / "a.png", "--dpi", "200")
    assert r.exit_code == 0 and f"{2 * lay.width}x{2 * lay.height} px" in r.output
    assert _png_size(tmp_path / "a.png") == (2 * lay.width, 2 * lay.height)
    cli("graph", "lenet5", "-o", tmp_path / "b.png", "--scale", "1.5")
    assert _png_size(tmp_path / "b.png") == (round(1.5 * lay.width), round(1.5 * lay.height))
    lr = layout_graph(cnncalc.load("lenet5"), direction="LR")
    cli("graph", "lenet5", "-o", tmp_path / "c.png", "--direction", "LR")
    assert _png_size(tmp_path / "c.png") == (lr.width, lr.height) and lr.width > lr.height
    r = cli("graph", "lenet5", "-o", tmp_path / "d.svg", "--scale", "2", "--direction", "lr")
    root = ET.parse(tmp_path / "d.svg").getroot()
    assert float(root.get("width")) == 2 * lr.width


@pytest.mark.parametrize("args,msg", [(["--dpi", "200"], "--scale"), (["--dpi", "150", "--scale", "2"], "not both"),
                                      (["--format", "dot", "--scale", "2"], "no size")])
def test_cli_size_options_refused_where_meaningless(cli, tmp_path, args, msg):
    r = cli("graph", "lenet5", *args)
    assert r.exit_code == 2 and msg in r.output


def test_png_too_large_at_this_dpi(cli, tmp_path):
    pytest.importorskip("matplotlib")
    r = cli("graph", "vgg16", "-o", tmp_path / "v.png", "--dpi", "1200")
    assert r.exit_code == 2 and "lower --dpi/--scale" in r.output and not (tmp_path / "v.png").exists()


def test_exported_module_docstring_names_the_axes(cli):
    out = cli("export", "lenet5", "--to", "torch").output
    assert ("Input: a float tensor of shape (N, 1, 32, 32): N x C x H x W with C = 1, H = 32, W = 32 "
            "(spec input 32x32x1).") in out
    assert "per item" not in out
    out = cli("export", "kim-cnn", "--to", "torch").output
    assert "of shape (N, 300, 56): N x C x L with C = 300, L = 56" in out
