"""The HTML report's charts (layer names on the axis and on hover, y ticks), its totals against
its table, and no status line for the reader (issue 29). The SVG of each chart is parsed with
ElementTree; the page is run in headless chromium."""
from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import cnncalc
from cnncalc.cli.report import build_report
from tests.report.test_html import chromium, needs_chromium

SVG = "{http://www.w3.org/2000/svg}"


def charts(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r'<svg class="chart".*?</svg>', page, re.S)]


def test_every_column_named_on_hover_and_on_the_axis():
    page = build_report("resnet50", with_rf=False)
    r = cnncalc.analyze("resnet50")
    names = [x.name for x in r.layers]
    mem, params, macs = charts(page)
    for chart, values in ((mem, [0 if x.view else x.activations for x in r.layers]),
                          (params, [x.params for x in r.layers]), (macs, [x.macs for x in r.layers])):
        bars = [e for e in chart.iter(SVG + "rect") if e.get("class") == "bar"]
        assert [b.get("data-name") for b in bars] == names
        tips = [b.find(SVG + "title").text for b in bars]
        for i, (t, n, v) in enumerate(zip(tips, names, values)):  # "3. conv1_bn (batchnorm): 802,816 elements"
            assert re.fullmatch(rf"{i + 1}\. {re.escape(n)} \(.+\): {v:,} \w+", t), t
        labels = [e for e in chart.iter(SVG + "text") if e.get("class") == "xl"]
        full = [e.find(SVG + "title").text for e in labels]
        step = names.index(full[1])  # every step-th layer named, in order, from the first
        assert full == names[::step] and step * int(chart.get("width")) // len(names) >= 6
        for e, n in zip(labels, full):  # a long name keeps its end: "…/block3/conv2_bn"
            assert e.text == n or (e.text.startswith("…") and n.endswith(e.text[1:]))
        ticks = [e.text for e in chart.iter(SVG + "text") if e.get("text-anchor") == "end" and e.get("class") is None]
        assert ticks[0] == "0" and len(ticks) == 3


def test_totals_say_what_the_table_counts():
    page = build_report("lenet5", with_rf=False)
    n = len(cnncalc.analyze("lenet5").layers)
    assert f"layers (the table&#x27;s rows 1 to {n}; row 0 is the input)" in page or \
        f"layers (the table's rows 1 to {n}; row 0 is the input)" in page
    assert re.search(r'<p class="muted" id="cnncalc-status-line" hidden>', page)


@needs_chromium
def test_no_status_line_and_table_rows_agree_in_the_browser(tmp_path):
    out = tmp_path / "lenet5.html"
    out.write_text(build_report("lenet5"))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", out.as_uri()).stdout
    assert 'id="cnncalc-status">ok<' in dom
    line = re.search(r'<p[^>]*id="cnncalc-status-line"[^>]*>', dom).group(0)
    assert "hidden" in line  # the script ran without error: the reader sees no status line
    tbody = re.search(r'<table id="layers">.*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", tbody, re.S)
    first = [html.unescape(re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", r)[0])) for r in rows]
    layers = int(re.search(r'id="t-layers">([\d,]+)<', dom).group(1).replace(",", ""))
    assert first == [str(i) for i in range(layers + 1)]  # row 0 the input, rows 1..layers
