"""The ERF figure: SVG and PNG, with and without matplotlib, on a synthetic map and on LeNet-5."""
from __future__ import annotations

import base64
import re
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cnncalc.report import erf_figure as F
from tests.report.test_html import png_pixels

SVG = "{http://www.w3.org/2000/svg}"


def synthetic():
    # a 16x16 map: field rows/cols 4..11 (8x8 = 64 px), a bump in the middle
    m = np.zeros((16, 16))
    yy, xx = np.mgrid[4:12, 4:12]
    m[4:12, 4:12] = np.exp(-((yy - 7.5) ** 2 + (xx - 7.5) ** 2) / 8)
    return {"layer": "conv9", "unit": [3, 3], "field": [[4, 11], [4, 11]], "field_area": 64, "mass": 0.95,
            "mass_area": 36, "fraction": 36 / 64, "support_area": 64, "samples": 4, "conv_algo": "direct", "map": m}


def test_viridis_ends_and_mask_edges():
    assert F.viridis(np.array([0.0, 1.0])).tolist() == [[68, 1, 84], [253, 231, 37]]
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:3, 1:4] = True  # a 2x3 block: perimeter 2 * (2 + 3) = 10 unit edges
    assert len(F.mask_edges(mask)) == 10
    m = np.arange(9.0).reshape(3, 3)
    assert F.mass_mask(m, 2).sum() == 2 and F.mass_mask(m, 2)[2, 2] and F.mass_mask(m, 2)[2, 1]


def test_svg_figure():
    res = synthetic()
    svg = F.to_svg(res, "Toy")
    root = ET.fromstring(svg.split("\n", 1)[1])
    texts = " ".join(t.text or "" for t in root.iter(SVG + "text"))
    assert "Toy: effective receptive field of conv9, unit (3, 3)" in texts
    assert "theoretical field 8x8 = 64 px" in texts and "95% of the mass on 36 px = 56.2% of it" in texts
    # the field outline: scale 448 // 16 = 28 px per input pixel, field starts at 24 + 4 * 28
    rects = [r for r in root.iter(SVG + "rect") if r.get("stroke-dasharray")]
    assert [(r.get("x"), r.get("y"), r.get("width")) for r in rects] == [(str(24 + 4 * 28), str(86 + 4 * 28), str(8 * 28))]
    (img,) = root.iter(SVG + "image")
    png = base64.b64decode(img.get("href").split(",", 1)[1])
    w, h, rows = png_pixels(png)
    assert (w, h) == (16 * 28, 16 * 28)
    assert rows[0][:3] == bytes((68, 1, 84))  # zero gradient: the bottom of the colour map
    assert root.find(f".//{SVG}path") is not None  # the mass contour
    assert len(re.findall("<stop ", svg)) == 17  # the colour bar


def test_png_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    data, labelled = F.to_png(synthetic(), "Toy")
    assert not labelled
    w, h, rows = png_pixels(data)
    assert h == 16 * 28 and w > 16 * 28  # the map and a colour bar beside it
    # the dashed field outline crosses the top-left corner of the field
    y, x = 4 * 28, 4 * 28
    assert rows[y][3 * x:3 * x + 3] in (bytes(F.FIELD_COLOUR), bytes(F.MASS_COLOUR))
    colours = {rows[r][i:i + 3] for r in range(0, h, 8) for i in range(0, 3 * 16 * 28, 24)}
    assert len(colours) > 10  # a colour map, not grey


def test_png_with_matplotlib():
    pytest.importorskip("matplotlib")
    data, labelled = F.to_png(synthetic(), "Toy")
    assert labelled
    w, h, _ = png_pixels(data)
    assert (w, h) == (820, 740)


@pytest.mark.slow
def test_cli_writes_figures(cli, tmp_path):
    for suffix in (".png", ".svg"):
        out = tmp_path / f"c3{suffix}"
        r = cli("erf", "lenet5", "--layer", "C3", "-o", out)
        assert r.exit_code == 0, r.output
        assert "gradient is non-zero on 196 pixels" in r.output
    assert (tmp_path / "c3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "effective receptive field of C3" in (tmp_path / "c3.svg").read_text()
    r = cli("erf", "lenet5", "--layer", "C3", "-o", tmp_path / "c3.svg")
    assert r.exit_code == 2 and "--force" in r.output
