"""``cnncalc check ANSWERS.yaml``: grade homework answers (exit 0 all pass, 1 any fails, 2 bad file)."""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import click

from cnncalc.check.grade import CheckRun, run_check
from cnncalc.report.render import Column, TableView, emit_json, render

FORMATS = ("table", "json", "junit", "csv", "markdown")


@click.command()
@click.argument("answers", metavar="ANSWERS.yaml")
@click.option("--format", "-F", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table for people, json for scripts, junit (XML) for CI dashboards.")
@click.option("--hide-expected", is_flag=True,
              help="Graded runs: show only pass/fail, never the expected values or their arithmetic.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to this file instead of standard output (e.g. report.xml).")
@click.option("--allow-spec-outside", "allow_outside", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False, exists=True),
              help="Let 'spec:' name files under DIR too (by default only zoo names and files under "
                   "the answer file's folder: students cannot make the grader read other files).")
def check(answers, fmt, hide_expected, output, allow_outside):
    """Check the answers in ANSWERS.yaml against the exact numbers.

    Exit status: 0 every answer is right, 1 some answer is wrong (or missing), 2 the file
    cannot be used (with file:line). The file format is described in `cnncalc.check`
    (python -c "import cnncalc.check; help(cnncalc.check)") and examples/homework/.

    \b
    Examples:
      cnncalc check examples/homework/ANSWERS.yaml
      cnncalc check ANSWERS.yaml --hide-expected --format junit -o report.xml
      cnncalc check student/ANSWERS.yaml --allow-spec-outside course/specs
    """
    run = run_check(answers, allow_outside)
    stream = open(output, "w", encoding="utf-8") if output else sys.stdout
    try:
        if fmt == "json":
            emit_json(run.to_dict(hide_expected), stream)
        elif fmt == "junit":
            stream.write(to_junit(run, hide_expected))
        else:
            render(view(run, hide_expected), fmt, stream)
    finally:
        if output:
            stream.close()
    sys.exit(run.exit_code)


def view(run: CheckRun, hide_expected: bool) -> TableView:
    rows = []
    for o in run.outcomes:
        d = o.to_dict(hide_expected)
        d["status"] = "PASS" if o.passed else "FAIL"
        if o.note:
            d["answer"] = f"{d['answer']} ({o.note})" if d["answer"] else f"({o.note})"
        rows.append(d)
    cols = [Column("status", "", "left"), Column("id", "Question", "left"),
            Column("question", "Asked", "left"), Column("answer", "Answer", "left")]
    if not hide_expected:
        cols += [Column("expected", "Expected", "left"), Column("arithmetic", "Arithmetic", "left")]
    title = run.title or run.file
    summary = f"{run.passed} of {len(run.outcomes)} passed" + (f", {run.failed} failed" if run.failed else "")
    notes = [summary]
    if hide_expected:
        notes.append("expected values are hidden (--hide-expected)")
    return TableView(title=title, columns=cols, rows=rows, notes=notes)


def to_junit(run: CheckRun, hide_expected: bool = False) -> str:
    """JUnit XML (the schema Jenkins, GitLab and GitHub test reporters read); ElementTree
    escapes every text and attribute."""
    suite_name = run.title or run.file
    root = ET.Element("testsuites", name="cnncalc check", tests=str(len(run.outcomes)),
                      failures=str(run.failed), errors="0")
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(run.outcomes)),
                          failures=str(run.failed), errors="0", skipped="0", time="0")
    for o in run.outcomes:
        q = o.question
        case = ET.SubElement(suite, "testcase", classname=_classname(run.file), name=f"{q.id}: {q.label}",
                             time="0")
        if q.line:
            case.set("file", run.file)
            case.set("line", str(q.line))
        if not o.passed:
            answered = q.answer_text or "(nothing)"
            msg = f"wrong answer: {answered}" if not o.note else f"{o.note}: {answered}"
            fail = ET.SubElement(case, "failure", message=msg, type="WrongAnswer")
            body = [f"{run.file}:{q.line}: {q.label}", f"answered: {answered}"]
            if o.note:
                body.append(o.note)
            if not hide_expected:
                body.append(f"expected: {o.expected}")
                if o.arithmetic:
                    body.append(f"arithmetic: {o.arithmetic}")
            fail.text = "\n".join(body)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _classname(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return "cnncalc.check." + (name[:-5] if name.endswith(".yaml") else name).replace(".", "_")
