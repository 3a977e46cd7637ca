"""`cnncalc report`: the self-contained HTML page, for every zoo spec, and in a real headless browser."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib

import pytest

from cnncalc.cli.report import build_report
from cnncalc.shapes import fmt_int
from conftest import zoo_params

CHROMIUM = "/usr/bin/chromium"
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage"]
needs_chromium = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="no /usr/bin/chromium")
browser = pytest.mark.slow  # a browser per test: the slow group (.ci/run installs chromium)


def embedded(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="cnncalc-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def summarize_json(cli, spec, *extra) -> dict:
    r = cli("summarize", spec, "--format", "json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.parametrize("spec", zoo_params())  # the sample fast, the rest in the slow group
def test_every_zoo_spec(spec, cli):
    page = build_report(spec)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<link" not in page and " src=" not in page  # self-contained
    data = embedded(page)
    want = summarize_json(cli, spec)
    got = data["summary"]
    assert got["totals"] == want["totals"] and got["memory"] == want["memory"]
    assert [{k: v for k, v in r.items() if k != "explain"} for r in got["layers"]] == want["layers"]
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    t = want["totals"]
    for key in ("params", "macs", "flops", "activations", "weights", "biases", "nontrainable"):
        assert fmt_int(t[key]) in text, key
    assert f'id="t-params">{fmt_int(t["params"])}<' in page and f'id="t-macs">{fmt_int(t["macs"])}<' in page
    for r in want["layers"]:  # every layer in the graph picture
        assert f'data-name="{html.escape(r["name"])}"' in page


def test_published_tables_are_compared():
    data = embedded(build_report("googlenet"))
    (c,) = [c for c in data["comparisons"] if c["table"] == "googlenet-table1"]
    assert c["rows"] and all(r["spec"] == "googlenet" for r in c["rows"])
    vgg = embedded(build_report("vgg16"))
    # vgg-table2 covers A-E; only the rows about vgg16 belong in its report
    (v,) = [c for c in vgg["comparisons"] if c["table"] == "vgg-table2"]
    assert {r["spec"] for r in v["rows"]} == {"vgg16"}


def test_cli_writes_and_refuses_to_overwrite(cli, tmp_path):
    out = tmp_path / "lenet5.html"
    r = cli("report", "lenet5", "-o", out)
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    r = cli("report", "lenet5", "-o", out)
    assert r.exit_code == 2 and "--force" in r.output
    r = cli("report", "lenet5", "-o", tmp_path / "x.txt")
    assert r.exit_code == 2 and ".html" in r.output


# ------------------------------------------------------------------------------- headless browser
def chromium(*args, timeout=120) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="cnncalc-chromium-")
    try:
        return subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what chromium writes) with zlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows


@browser
@needs_chromium
@pytest.mark.parametrize("spec", ["googlenet", "lenet5"])
def test_page_in_headless_chromium(spec, cli, tmp_path):
    out = tmp_path / f"{spec}.html"
    assert cli("report", spec, "-o", out).exit_code == 0
    r = chromium("--virtual-time-budget=5000", "--dump-dom", out.as_uri() + "#selftest")
    dom = r.stdout
    assert 'id="cnncalc-status">ok<' in dom, (dom[:300], r.stderr[-2000:])
    errors = re.search(r'id="cnncalc-errors"[^>]*>(.*?)</span>', dom, re.S).group(1)
    assert errors == ""
    # the page really ran: sorting, folding and the arithmetic on click
    st = json.loads(html.unescape(re.search(r'id="cnncalc-selftest"[^>]*>(.*?)</pre>', dom, re.S).group(1)))
    want = summarize_json(cli, spec)
    biggest = max(want["layers"], key=lambda r: r["params"])["name"]
    assert st["sorted_first"] == biggest
    assert st["unsorted_first"] == want["layers"][0]["name"]
    last = want["layers"][-1]
    assert st["explain"].startswith(last["name"]) and "memory:" in st["explain"]
    assert st["graph_click"] == st["graph_node"]
    if spec == "googlenet":
        assert st["folded"] == "inception_3a" and st["rows_before"] - st["rows_after"] == 8
    # every total visible in the rendered DOM equals summarize --format json
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    for key in ("params", "macs", "flops", "activations"):
        assert fmt_int(want["totals"][key]) in text
    for key in ("layers", "params", "macs", "flops", "activations"):
        assert re.search(rf'id="t-{key}">{re.escape(fmt_int(want["totals"][key]))}<', dom), key
    # a screenshot is not blank: many distinct colours, not one flat page
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=700,900", out.as_uri())
    w, h, rows = png_pixels(shot.read_bytes())
    assert (w, h) == (700, 900)
    step = 3 if len(rows[0]) == 3 * w else 4
    pixels = {row[i:i + 3] for row in rows[::7] for i in range(0, len(row), step * 5)}
    assert len(pixels) > 50
    lum = [sum(p) / 3 for p in pixels]
    mean = sum(lum) / len(lum)
    assert sum((v - mean) ** 2 for v in lum) / len(lum) > 100  # variance of the distinct colours


@browser
@needs_chromium
def test_graph_svg_renders_in_chromium(cli, tmp_path):
    out = tmp_path / "g.svg"
    assert cli("graph", "inception-naive", "-o", out).exit_code == 0
    shot = tmp_path / "g.png"
    chromium(f"--screenshot={shot}", "--window-size=600,400", out.as_uri())
    w, h, rows = png_pixels(shot.read_bytes())
    dark = sum(1 for row in rows for i in range(0, len(row), 3 if len(row) == 3 * w else 4) if row[i] < 80)
    assert dark > 500  # text and lines were drawn


def test_pictures_of_huge_nets_are_left_out_and_said(monkeypatch, cli):
    """Past MAX_DRAWN layers (boxes) the page leaves the graph picture and the per-layer charts
    out and says so (issue 25 item 14: a 50,000-layer chain); the data and table keep every layer."""
    from cnncalc.report import html as html_mod

    full = build_report("lenet5")
    assert "Not drawn" not in full and "<svg" in full
    monkeypatch.setattr(html_mod, "MAX_DRAWN", 5)
    page = build_report("lenet5")
    assert 'class="cnncalc-graph"' not in page and 'id="graph-left-out"' in page
    assert 'id="charts-left-out"' in page and 'id="receptive-field-left-out"' in page
    assert "--depth N" in page and "Not drawn: graph picture of 8 layers or boxes, over the 5 a page draws" in page
    want = summarize_json(cli, "lenet5")
    assert embedded(page)["summary"]["totals"] == want["totals"]
    assert len(embedded(page)["summary"]["layers"]) == len(want["layers"])
    # collapsed below the cap, the graph is drawn again
    monkeypatch.setattr(html_mod, "MAX_DRAWN", 8)
    assert 'class="cnncalc-graph"' in build_report("lenet5")
