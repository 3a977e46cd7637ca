"""The HTML report's memory timeline of one training step: an SVG whose columns are the walk's
live bytes (forward, then backward), its peak marked with the walk's peak."""
import re
import xml.etree.ElementTree as ET

from cnncalc.analysis.memory import training_step
from cnncalc.cli.report import build_report
from cnncalc.report.timeline import timeline_svg
from cnncalc.spec import load_spec

SVG = "{http://www.w3.org/2000/svg}"


def _section(page: str) -> str:
    a = page.index('<section id="timeline">')
    return page[a:page.index("</section>", a)]


def test_timeline_columns_are_the_walk():
    g = load_spec("cifar_resnet20")
    g.infer()
    step = training_step(g, 8)
    names = [n.name for n in g.layers]
    svg = ET.fromstring(timeline_svg(step, names, 12345, "t"))
    cols = [r for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title").text.endswith(" live")]
    assert len(cols) == 2 * len(names) == len(step.timeline)
    for r, v, i in zip(cols, step.timeline, range(len(cols))):
        text = r.find(f"{SVG}title").text
        assert text.startswith(("forward " + names[i]) if i < len(names) else ("backward " + names[-1 - (i - len(names))]))
        assert f"{v:,} B" in text
    peak = svg.find(f"{SVG}circle").find(f"{SVG}title").text
    assert f"{step.peak:,} B" in peak and step.peak == max(step.timeline)


def test_long_walks_are_bucketed_by_their_maximum():
    g = load_spec("cifar_resnet1202")
    g.infer()
    step = training_step(g, 1, optimizer="sgd")
    svg = ET.fromstring(timeline_svg(step, [n.name for n in g.layers], 0, "t"))
    vals = [int(re.search(r": ([\d,]+) B", r.find(f"{SVG}title").text).group(1).replace(",", ""))
            for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title").text.endswith(" live")]
    assert len(vals) <= 600 and max(vals) == step.peak


def test_report_has_the_timeline_with_the_chosen_setup():
    page = build_report("cifar_resnet20", batch=4, with_rf=False,
                        training={"optimizer": "adam", "checkpoint_segments": 3})
    sec = _section(page)
    g = load_spec("cifar_resnet20")
    g.infer()
    peak = training_step(g, 4, optimizer="adam", checkpoint_segments=3).peak
    assert "adam" in sec and "2 checkpointed segments" in sec and f"{peak:,} B" in sec
    ET.fromstring(sec[sec.index("<svg"):sec.index("</svg>") + 6])  # well-formed
