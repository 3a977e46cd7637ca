"""Issue 25 items 8 and 9: every name (spec, layer) reaches every output encoded for it, and
each output is read back with its own parser: the terminal (rich and plain) shows control
characters escaped; CSV cells never start a formula; markdown rows keep their columns; the
HTML report's JSON parses and cannot end its script; mermaid's front matter stays YAML."""
import csv
import io
import json
import re
import xml.etree.ElementTree as ET

import pytest
import yaml

from cnncalc.escape import CSV_TRIGGERS, csv_cell, json_script, md_text, one_line, term_text
from tests.security.hostile import NAMES, layer_names

# what a terminal must never receive from a name: C0 but LF, DEL, C1, line/paragraph
# separators, bidi controls (ESC is allowed only as the start of rich's colour codes)
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
SGR = re.compile(r"\x1b\[[0-9;]*m")


def hostile_spec(graph_name=NAMES[0]) -> str:
    names = layer_names()
    layers = [{"conv": 2, "kernel": 3, "pad": 1, "name": names[0]}]
    layers += [{"relu": None, "name": n} for n in names[1:]]
    layers += [{"flatten": None, "name": "flat"}, {"fc": 3, "name": "out"}]
    return yaml.safe_dump({"name": graph_name, "input": "8x8x1", "layers": layers}, sort_keys=False,
                          allow_unicode=True)


@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "net.yaml"
    p.write_text(hostile_spec("</script><!--\x1b]52;c;aGk=\x07\nend\n---\ntitle: x"))
    return p


def test_plain_table_shows_every_control_escaped(cli, spec):
    res = cli("summarize", spec, "--format", "plain")
    assert res.exit_code == 0, res.output
    assert not RAW.search(res.output), RAW.search(res.output)
    for n in layer_names():
        assert term_text(n) in res.output


def test_rich_table_sends_only_colour_codes(cli, spec, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("NO_COLOR", raising=False)
    res = cli("summarize", spec)
    assert res.exit_code == 0
    text = SGR.sub("", res.output)
    assert "\x1b" not in text and not RAW.search(text)
    assert "\\x1b]52;c;aGk=\\x07osc" in text


def test_errors_show_names_escaped(cli, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({"name": "n", "input": "8x8x1", "layers": [
        {"relu": None, "name": "\x1b[2Jx"}, {"relu": None, "name": "\x1b[2Jx"}]}))
    from conftest import run_module

    res = run_module("summarize", p)
    assert res.returncode == 2
    assert "\x1b" not in res.stderr and "Traceback" not in res.stderr


def test_csv_cells_parse_and_never_start_a_formula(cli, spec):
    res = cli("summarize", spec, "--format", "csv")
    rows = list(csv.reader(io.StringIO(res.output)))
    assert len({len(r) for r in rows}) == 1
    names = [r[0] for r in rows[1:]]
    for cell in (c for r in rows for c in r):
        assert not cell.startswith(CSV_TRIGGERS) or re.fullmatch(r"-?\d+(\.\d+)?", cell), cell
    assert [csv_cell(n) for n in layer_names()] == names[1:len(layer_names()) + 1]
    assert "'-2+3" in names


def test_csv_cell_keeps_numbers():
    assert csv_cell("-42") == "-42" and csv_cell("-0.5") == "-0.5" and csv_cell(-3) == -3
    assert csv_cell("-2+3") == "'-2+3" and csv_cell("-42..153") == "'-42..153"


def md_rows(text: str) -> list[list[str]]:
    """The cells of a GitHub markdown table: a row is a line starting with '|', split on the
    '|' not preceded by a backslash."""
    out = []
    for line in text.splitlines():
        if line.startswith("|"):
            out.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return out


def test_markdown_rows_keep_their_columns(cli, spec):
    res = cli("summarize", spec, "--format", "markdown")
    rows = md_rows(res.output)
    assert len({len(r) for r in rows}) == 1, rows
    body = [r[0] for r in rows[2:]]
    for n in layer_names():
        assert md_text(n) in body
    assert "<script>" not in res.output and "\x1b" not in res.output


def test_json_round_trips_every_name(cli, spec):
    res = cli("summarize", spec, "--format", "json")
    names = [r["name"] for r in json.loads(res.output)["layers"]]
    assert set(layer_names()) <= set(names)


def test_html_report_json_parses_and_cannot_end_its_script(cli, spec, tmp_path):
    out = tmp_path / "r.html"
    res = cli("report", spec, "-o", out)
    assert res.exit_code == 0, res.output
    page = out.read_text()
    m = re.search(r'<script type="application/json" id="cnncalc-data">(.*?)</script>', page, re.S)
    blob = m.group(1)
    assert "<" not in blob and "\u2028" not in blob
    data = json.loads(blob)  # valid JSON (no "<\!--")
    assert data["summary"]["name"].startswith("</script><!--")
    assert set(layer_names()) <= {r["name"] for r in data["summary"]["layers"]}
    assert page.count("</script") == 2  # the data's and the page script's: no name ended one


def test_json_script_is_the_same_json():
    s = json.dumps({"a": "<!--</script>\u2028&"})
    assert json.loads(json_script(s)) == json.loads(s) and "<" not in json_script(s)


def test_mermaid_front_matter_stays_yaml(cli, spec):
    res = cli("graph", spec, "-F", "mermaid")
    lines = res.output.splitlines()
    assert lines[0] == "---" and lines[2] == "---", lines[:4]
    front = yaml.safe_load(lines[1])
    assert list(front) == ["title"] and front["title"].startswith("</script><!--\\x1b]52")
    assert lines[3] == "flowchart TB"
    assert all(re.match(r"  n\d+(\[\"[^\"]*\"\]| -->\|\"[^\"]*\"\| n\d+)$", ln) for ln in lines[4:]), lines[4:]


def test_svg_and_dot_parse(cli, spec):
    svg = cli("graph", spec, "-F", "svg").output
    ET.fromstring(svg)
    dot = cli("graph", spec, "-F", "dot").output
    assert not RAW.search(dot)
    # every line is a statement: no name broke one
    assert all(re.match(r'(digraph "|  |})', ln) for ln in dot.splitlines()), dot


def test_one_line_is_unambiguous():
    assert one_line("a\nb") != one_line("a\\nb") and "\n" not in one_line("a\nb")
