"""Fuzz generators for what cnncalc writes (issue 25): hostile names through every output
format, and hostile submission folders through the gradebook. Each output is read back with its
own parser, and a case is ``unsafe`` when a parser fails or disagrees with the names:

* names: a spec whose network and layer names are drawn from hostile fragments (control
  characters, quotes, backslashes, markdown/HTML/XML/YAML/mermaid syntax, bidi controls,
  formulas) → ``summarize`` as json (``json``: the names, exactly), csv (``csv``: same cells,
  no formula), markdown (a GitHub table parser: same columns, the names), plain and rich
  (no raw control character; rich only colour codes), ``graph`` svg (``xml.etree``), mermaid
  (front matter by ``yaml.safe_load``; one statement a line), dot (one statement a line),
  ``report`` (its JSON by ``json``, no name ends a script), ``export --to torch`` (``ast``:
  only the expected statements and calls; nothing a name wrote), and with onnx installed
  ``export --to onnx`` → ``import`` → ``yaml.safe_load`` (a comment line, the expected keys) →
  ``summarize`` of the imported spec.
* folders: a submission folder of hostile file names, students and ids, symlinks out of the
  folder (to a file holding TOPSECRET), a FIFO, a folder named ``x.yaml``, binary junk, an
  oversized file → ``check --key`` as csv, markdown, junit (``xml.etree``), json, plain: every
  output parses, nothing from outside the folder appears, no run hangs or fails inside.

Used by ``python -m tests.fuzz --name-cases N --folder-cases M`` and by tests/test_fuzz.py.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import os
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from cnncalc.escape import CSV_TRIGGERS, csv_cell, md_text, term_text
from tests.security.hostile import NAMES

ROOT = Path(__file__).resolve().parent.parent
SHEET = ROOT / "examples" / "homework" / "QUESTIONS.yaml"

FRAGMENTS = [n for n in NAMES if "/" not in n] + [
    "\n", "\r", "\r\n", "\t", "\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1b[2J", "\x1b]0;t\x07", "\x7f",
    "\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u2066", "\u200b", "\ufeff", '"', "'", '"""', "'''", "\\",
    "\\n", "\\x1b", "|", "||", "<", ">", "&", "&amp;", "<b>", "<!--", "-->", "<script>", "]]>", "#", "%%",
    "%s", "{", "}", "[", "]", "`", "```", "*", "_", "~", "---", "...", ": ", "- ", "? ", "!!python", "!!binary", "*a",
    "&a", "=", "+", "-", "@", "=1+1", "é", "名", "🙂", "\U0001f600", " ", "  ", "x", "conv", "0", "-1", "1e9",
]
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
SGR = re.compile(r"\x1b\[[0-9;]*m")


def hostile_name(rnd: random.Random, k: int) -> str:
    """A name of 1-4 hostile fragments, made unique with ``k`` (layer names must differ)."""
    parts = [rnd.choice(FRAGMENTS) for _ in range(rnd.randint(1, 4))]
    return "".join(parts)[:200] + f"~{k}"


def name_spec(seed: int) -> str:
    rnd = random.Random(seed)
    names = [hostile_name(rnd, k) for k in range(rnd.randint(2, 5))]
    layers = [{"conv": 2, "kernel": 3, "pad": 1, "name": names[0]}]
    if rnd.random() < 0.5:  # a branch: names reach edges, inputs, concat
        layers += [{"relu": None, "name": names[1]},
                   {"conv": 2, "kernel": 1, "inputs": names[0], "name": names[1] + "b"},
                   {"concat": None, "inputs": [names[1], names[1] + "b"], "name": "cat"}]
    else:
        layers += [{"relu": None, "name": names[1]}]
    layers += [{"maxpool": 2, "name": n} for n in names[2:3]]
    layers += [{"flatten": None, "name": "flat"}, {"fc": 3, "name": names[-1] if len(names) > 3 else "out"}]
    graph_name = "".join(rnd.choice(FRAGMENTS) for _ in range(rnd.randint(1, 5)))[:300]
    return yaml.safe_dump({"name": graph_name, "input": "8x8x1", "layers": layers}, sort_keys=False,
                          allow_unicode=True)


# ------------------------------------------------------------------------------ parsers
def md_rows(text: str) -> list[list[str]]:
    """Cells of GitHub-flavoured markdown tables: a row is a line starting with '|', split on
    '|' not escaped by a backslash."""
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            for line in text.splitlines() if line.startswith("|")]


def md_unescape(cell: str) -> str:
    return re.sub(r"\\(.)", r"\1", cell)


def _torch_problems(src: str) -> list[str]:
    try:
        tree = ast.parse(src)
    except SyntaxError as e:
        return [f"torch source does not parse: {e}"]
    out = []
    kinds = [type(s).__name__ for s in tree.body]
    if kinds[:1] != ["Expr"] or not set(kinds[1:]) <= {"Import", "ImportFrom", "ClassDef"}:
        out.append(f"torch source top level: {kinds}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in {
                "getattr", "super", "float", "tuple", "range", "Net", "LayerScale", "ChannelsLastLayerNorm", "Constants"}:
            out.append(f"torch source calls {node.func.id}")
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not (
                getattr(node, "module", None) in ("torch",) or all(a.name.startswith("torch") for a in node.names)):
            out.append(f"torch source imports {ast.unparse(node)}")
    if any(c in src for c in "\x00\r\u2028\u2029\u202e"):
        out.append("torch source holds a raw control character")
    return out


def check_name_outputs(run, spec: Path, work: Path, *, rich: bool, onnx: bool) -> tuple[str, list[str]]:
    """Run every output of ``spec`` through ``run(args, env=None) -> (exit code, stdout)`` and
    parse it. Returns ("ok" | "refused", problems)."""
    problems: list[str] = []
    code, out = run(["summarize", str(spec), "--format", "json"])
    if code == 2:
        return "refused", []
    if code != 0:
        return "ok", [f"summarize json exit {code}: {out[-300:]}"]
    data = json.loads(out)
    names = [r["name"] for r in data["layers"]]
    graph_name = data["name"]

    code, out = run(["summarize", str(spec), "--format", "csv"])
    rows = list(csv.reader(io.StringIO(out)))
    if len({len(r) for r in rows}) != 1:
        problems.append("csv: rows of different lengths")
    if [r[0] for r in rows[2:len(names) + 2]] != [csv_cell(n) for n in names]:  # (after the header and input)
        problems.append("csv: the name column is not the names")
    for cell in (c for r in rows for c in r):
        if cell.startswith(CSV_TRIGGERS) and not re.fullmatch(r"[-+]?\d+(\.\d+)?", cell):
            problems.append(f"csv: a cell starts a formula: {cell[:40]!r}")

    code, out = run(["summarize", str(spec), "--format", "markdown"])
    rows = md_rows(out)
    if len({len(r) for r in rows}) != 1:
        problems.append("markdown: rows with different numbers of cells")
    # (a table cell's outer spaces are not part of it in GitHub markdown)
    if [md_unescape(r[0]) if r else None for r in rows[3:len(names) + 3]] != [term_text(n).strip() for n in names]:
        problems.append("markdown: the name column is not the names")
    if re.search(r"(?<!\\)<", out) or "\x1b" in out:
        problems.append("markdown: a raw '<' or ESC")

    code, out = run(["summarize", str(spec), "--format", "plain"])
    if RAW.search(out):
        problems.append(f"plain: raw control character {RAW.search(out).group()!r}")
    if rich:
        code, out = run(["summarize", str(spec)], env={"FORCE_COLOR": "1", "COLUMNS": "200", "NO_COLOR": None})
        if "\x1b" in SGR.sub("", out) or RAW.search(SGR.sub("", out)):
            problems.append("rich: an escape sequence that is not a colour")

    code, out = run(["graph", str(spec), "-F", "svg"])
    try:
        ET.fromstring(out)
    except ET.ParseError as e:
        problems.append(f"svg: {e}")
    code, out = run(["graph", str(spec), "-F", "mermaid"])
    lines = out.splitlines()
    try:
        front = yaml.safe_load(lines[1])
        if lines[0] != "---" or lines[2] != "---" or list(front) != ["title"]:
            problems.append("mermaid: front matter")
    except (yaml.YAMLError, IndexError, TypeError) as e:
        problems.append(f"mermaid: front matter {e}")
    if lines[3:4] != ["flowchart TB"] or not all(
            re.fullmatch(r"  n\d+\[\"[^\"\n]*\"\]|  n\d+ -->\|\"[^\"\n]*\"\| n\d+", ln) for ln in lines[4:]):
        problems.append("mermaid: a line that is not one statement")
    code, out = run(["graph", str(spec), "-F", "dot"])
    if RAW.search(out) or not all(re.fullmatch(r'digraph ".*" \{|  .*;|\}', ln) for ln in out.splitlines()):
        problems.append("dot: a line that is not one statement")

    html = work / "r.html"
    code, out = run(["report", str(spec), "-o", str(html), "--force"])
    page = html.read_text() if html.exists() else ""
    m = re.search(r'<script type="application/json" id="cnncalc-data">(.*?)</script>', page, re.S)
    try:
        blob = json.loads(m.group(1))
        if blob["summary"]["name"] != graph_name or [r["name"] for r in blob["summary"]["layers"]] != names:
            problems.append("html: the page's JSON lost a name")
    except (AttributeError, ValueError, KeyError) as e:
        problems.append(f"html: the page's JSON does not parse: {e}")
    if page.count("</script") != 2:
        problems.append("html: a name ended a script")

    code, out = run(["export", str(spec), "--to", "torch"])
    if code != 0:
        problems.append(f"export --to torch exit {code}: {out[-200:]}")
    else:
        problems += _torch_problems(out)

    if onnx:
        model, imported = work / "m.onnx", work / "imported.yaml"
        code, out = run(["export", str(spec), "--to", "onnx", "-o", str(model), "--force"])
        if code == 0:
            code, out = run(["import", str(model), "-o", str(imported), "--force"])
            if code == 0:
                text = imported.read_text()
                try:
                    doc = yaml.safe_load(text)
                    if not text.startswith("# imported by cnncalc from ") or not set(doc) <= {
                            "name", "source", "input", "defaults", "layers"}:
                        problems.append(f"import: unexpected YAML keys {sorted(doc)}")
                except yaml.YAMLError as e:
                    problems.append(f"import: the spec is not YAML: {e}")
                code, out = run(["summarize", str(imported), "--format", "json"])
                if code != 0:
                    problems.append(f"import: the imported spec does not load: {out[-200:]}")
            elif code != 2:
                problems.append(f"import exit {code}: {out[-200:]}")
        elif code != 2:
            problems.append(f"export --to onnx exit {code}: {out[-200:]}")
    return "ok", problems


# ------------------------------------------------------------------------------ folders
SECRET = "TOPSECRET-cnncalc-fuzz"


def hostile_folder(seed: int, base: Path) -> Path:
    """A submission folder for seed ``seed`` under ``base`` (plus a secret file outside it)."""
    rnd = random.Random(seed)
    secret = base / "secret.yaml"
    secret.write_text(f"id: {SECRET}\nstudent: {SECRET}\nanswers:\n  {SECRET}: 1\n")
    d = base / f"subs{seed}"
    d.mkdir()
    good = "answers:\n  alexnet-conv1: {shape: 55x55x96, weights_per_filter: 363}\n"
    for k in range(rnd.randint(3, 8)):
        fname = "".join(rnd.choice(["=", "+", "@", "-", "\n", " ", "\t", "é", "\x1b", "a", "b", "'", '"', "|", "<"])
                        for _ in range(rnd.randint(1, 4))) + f"{k}.yaml"
        kind = rnd.choice(["ok", "names", "names", "names", "binary", "big", "symlink", "fifo", "dir", "nested", "empty", "broken"])
        p = d / fname
        try:
            if kind in ("ok", "names"):
                student = hostile_name(rnd, k) if kind == "names" else f"Student {k}"
                sid = hostile_name(rnd, k) if kind == "names" and rnd.random() < 0.5 else f"s{seed}{k}"
                p.write_text(f"sheet: cnn-homework-2\nid: {json.dumps(sid)}\nstudent: {json.dumps(student)}\n{good}")
            elif kind == "binary":
                p.write_bytes(bytes(rnd.randrange(256) for _ in range(200)))
            elif kind == "big":
                p.write_text("answers:\n" + "".join(f"  q{i}: {i}\n" for i in range(30000)))
            elif kind == "symlink":
                p.symlink_to(rnd.choice([secret, base, Path("/etc/passwd"), d / "missing.yaml"]))
            elif kind == "fifo":
                os.mkfifo(p)
            elif kind == "dir":
                p.mkdir()
            elif kind == "nested":
                (d / f"deep{k}" / "deeper").mkdir(parents=True, exist_ok=True)
                (d / f"deep{k}" / "deeper" / f"n{k}.yaml").write_text(f"id: n{k}\n{good}")
            elif kind == "empty":
                p.write_text("")
            else:
                p.write_text("answers: [\n  - {\n" + "\x00" * rnd.randint(0, 2))
        except OSError:
            pass
    return d


def check_folder_outputs(run, folder: Path) -> tuple[str, list[str]]:
    problems = []
    for fmt in ("csv", "markdown", "junit", "json", "plain"):
        code, out = run(["check", "--key", str(SHEET), str(folder), "--format", fmt])
        if code not in (0, 1, 2):
            problems.append(f"{fmt}: exit {code}: {out[-300:]}")
            continue
        if SECRET in out:
            problems.append(f"{fmt}: content from outside the folder")
        if code == 2:
            continue
        try:
            if fmt == "csv":
                rows = list(csv.reader(io.StringIO(out)))
                if len({len(r) for r in rows}) != 1:
                    problems.append("csv: rows of different lengths")
                for cell in (c for r in rows for c in r):
                    if cell.startswith(CSV_TRIGGERS) and not re.fullmatch(r"[-+]?\d+(\.\d+)?", cell):
                        problems.append(f"csv: a formula {cell[:30]!r}")
            elif fmt == "markdown":
                for table in re.split(r"\n(?!\|)", out):
                    rows = md_rows(table)
                    if len({len(r) for r in rows}) > 1:
                        problems.append("markdown: a row with another number of cells")
                if "\x1b" in out or re.search(r"(?<!\\)<(?!br>)", out):
                    problems.append("markdown: raw ESC or '<'")
            elif fmt == "junit":
                ET.fromstring(out)
            elif fmt == "json":
                json.loads(out)
            elif RAW.search(out):
                problems.append(f"plain: raw control character {RAW.search(out).group()!r}")
        except (ET.ParseError, ValueError) as e:
            problems.append(f"{fmt}: does not parse: {e}")
    return "ok", problems


__all__ = ["name_spec", "check_name_outputs", "hostile_folder", "check_folder_outputs", "md_rows", "md_text"]
