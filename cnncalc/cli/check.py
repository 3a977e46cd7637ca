"""``cnncalc check ANSWERS.yaml``: grade homework answers (exit 0 all pass, 1 any fails, 2 bad file)."""
from __future__ import annotations

import io
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction

import click

from cnncalc.check.grade import CheckRun, run_check
from cnncalc.cli.common import fail, make_rounding_option, rounding_override
from cnncalc.report.render import Column, TableView, emit_json, render

FORMATS = ("table", "plain", "json", "junit", "csv", "markdown")


@click.command()
@click.argument("files", nargs=-1, metavar="[ANSWERS.yaml | SUBMISSION.yaml… | DIR…]")
@click.option("--key", "key", metavar="QUESTIONS.yaml", default=None,
              help="The instructor's question sheet: questions, specs and points come only from it; "
                   "FILES are submissions (files or directories of them) with answers by question id.")
@click.option("--template", is_flag=True,
              help="With --key: write the blank answer file for students (each question's text as a "
                   "comment). With --solutions too: the solution key as an answer file.")
@click.option("--solutions", is_flag=True,
              help="With --key: every expected answer with its arithmetic (for instructors).")
@click.option("--variant", metavar="ID", default=None,
              help="With --key: the student whose variant to show (quiz, template or solutions).")
@click.option("--format", "-F", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table for people, json for scripts, junit (XML) for CI dashboards; csv/markdown for "
                   "a gradebook.")
@click.option("--hide-expected", is_flag=True,
              help="Graded runs: show only pass/fail, never the expected values or their arithmetic.")
@click.option("--pass-mark", type=click.FloatRange(0, 100), default=100, show_default=True,
              help="With --key: the percentage of the points a submission needs to pass.")
@click.option("--details", is_flag=True,
              help="With --key and several submissions: each submission's questions before the gradebook.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to this file instead of standard output (e.g. report.xml); "
                   "--template never overwrites an existing file.")
@click.option("--allow-spec-outside", "allow_outside", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False, exists=True),
              help="Let 'spec:' name files under DIR too (by default only zoo names and files under "
                   "the answer file's folder: students cannot make the grader read other files).")
@make_rounding_option(
    "Build every network the answer file or sheet names (zoo names, paths, inline specs, one-layer "
    "questions, and the submissions' own networks of design questions) with this rounding rule: floor "
    "(PyTorch), ceil (Caffe pooling) or strict (a window that does not fit is an error); a layer's own "
    "'rounding:' still wins. With --key it also decides which per-student values fit, so give the same "
    "--rounding to --template/--variant/quiz as when grading.")
def check(files, key, template, solutions, variant, fmt, hide_expected, pass_mark, details, output,
          allow_outside):
    """Check homework answers against the exact numbers.

    Without --key, ANSWERS.yaml holds questions and answers together (the format is
    described in `cnncalc.check`: python -c "import cnncalc.check; help(cnncalc.check)").

    With --key QUESTIONS.yaml, the instructor's sheet is the authority: each submission
    supplies only answers by question id (`answers: {conv1.shape: 55x55x96, ...}`; the
    combined format is accepted too, its question definitions ignored and any that differ
    from the sheet's reported). Several files or directories give a class gradebook.
    Sheets may draw per-student numbers ({choose: [...]}, {range: [lo, hi]}); a submission
    names its `variant:`. See `cnncalc.check.sheet` and examples/homework/.

    Exit status: 0 every answer (every submission) passes, 1 some answer is wrong or
    missing, 2 a file cannot be used (with file:line; the other submissions are still graded).

    \b
    Examples:
      cnncalc check examples/homework/ANSWERS.yaml
      cnncalc check ANSWERS.yaml --hide-expected --format junit -o report.xml
      cnncalc check --key examples/homework/QUESTIONS.yaml examples/homework/submissions/
      cnncalc check --key QUESTIONS.yaml submissions/ --format csv -o gradebook.csv
      cnncalc check --key QUESTIONS.yaml --template --variant s1234 > answers.yaml
      cnncalc check --key QUESTIONS.yaml --variant s1234          # that student's questions
      cnncalc check --key QUESTIONS.yaml --solutions --variant s1234
      cnncalc check student/ANSWERS.yaml --allow-spec-outside course/specs
      cnncalc check ANSWERS.yaml --rounding floor   # expected values as PyTorch rounds
    """
    if key is None:
        if template or solutions or variant is not None:
            fail("--template, --solutions and --variant need the question sheet: --key QUESTIONS.yaml")
        if len(files) != 1:
            fail("give one answer file (ANSWERS.yaml), or grade submissions with --key QUESTIONS.yaml"
                 if files else "no answer file given: cnncalc check ANSWERS.yaml (or --key QUESTIONS.yaml "
                               "SUBMISSION...)")
        run = run_check(files[0], allow_outside, rounding_override())
        if fmt == "json":
            text = _json(run.to_dict(hide_expected))
        elif fmt == "junit":
            text = to_junit(run, hide_expected)
        else:
            text = view(run, hide_expected)
        _write(text, output, fmt=fmt)
        sys.exit(run.exit_code)
    keyed(files, key, template, solutions, variant, fmt, hide_expected, pass_mark, details, output)


def keyed(files, key, template, solutions, variant, fmt, hide_expected, pass_mark, details, output):
    from cnncalc.check.sheet import Sheet

    sheet = Sheet(key, rounding=rounding_override())
    if template or solutions or (variant is not None and not files):
        if files:
            fail("--template, --solutions and a quiz (--variant) take no submissions")
        sv = _variant(sheet, variant)
        from cnncalc.check.quiz import render_quiz, render_template

        if template:
            if hide_expected and solutions:
                fail("--hide-expected and --solutions contradict each other")
            _write(render_template(sv, filled=solutions), output, overwrite=False)
        elif solutions:
            if hide_expected:
                fail("--hide-expected and --solutions contradict each other")
            _write(_solutions_report(sv, fmt), output, fmt=fmt)
        else:
            if fmt in ("csv", "junit"):
                fail(f"a student's questions are rendered as table (plain), markdown or json, not {fmt}")
            _write(render_quiz(sv, {"table": "plain"}.get(fmt, fmt)), output)
        sys.exit(0)
    if not files:
        fail("no submissions given: cnncalc check --key QUESTIONS.yaml SUBMISSION.yaml… (or a directory); "
             "--template writes the blank answer file")
    if variant is not None:
        fail("--variant is for showing one student's questions; a submission names its own 'variant:'")
    from cnncalc.check.gradebook import collect, grade_all

    paths = collect(list(files), exclude=key)
    book = grade_all(sheet, paths, Fraction(pass_mark) / 100 if pass_mark != 100 else Fraction(1))
    for g in book.graded:
        if g.error is not None:
            click.echo(f"error: {g.error}", err=True)
    if fmt == "json":
        text = _json(book.to_dict(hide_expected))
    elif fmt == "junit":
        text = book_junit(book, hide_expected)
    elif fmt == "csv":
        text = gradebook_view(book, hide_expected)
    elif len(book.graded) == 1 and not details:
        text = submission_view(book, book.graded[0], hide_expected)
    else:
        parts = [submission_view(book, g, hide_expected) for g in book.graded] if details else []
        text = parts + [gradebook_view(book, hide_expected)]
    _write(text, output, fmt=fmt)
    sys.exit(book.exit_code)


def _variant(sheet, variant):
    from cnncalc.errors import SpecError

    try:
        return sheet.variant(variant)
    except SpecError as e:
        if e.file is None:
            e.file = sheet.path
        raise


def _json(obj) -> str:
    buf = io.StringIO()
    emit_json(obj, buf)
    return buf.getvalue()


def _write(text, output: str | None, overwrite: bool = True, fmt: str = "table") -> None:
    """Write text (or a TableView, or a list of both) to stdout or, atomically, to ``output``."""
    chunks = text if isinstance(text, list) else [text]
    if output is None:
        for n, c in enumerate(chunks):
            if n:
                sys.stdout.write("\n")
            if isinstance(c, TableView):
                render(c, fmt, sys.stdout)   # rich on a terminal, plain when piped
            else:
                sys.stdout.write(c)
        sys.stdout.flush()
        return
    buf = io.StringIO()
    for n, c in enumerate(chunks):
        if n:
            buf.write("\n")
        if isinstance(c, TableView):
            render(c, fmt, buf)              # a file is never a terminal: plain text
        else:
            buf.write(c)
    from cnncalc.fsutil import atomic_write_text

    try:
        atomic_write_text(output, buf.getvalue(), overwrite=overwrite)
    except FileExistsError:
        fail(f"{output} already exists: not overwriting it (choose another name, or remove it first)")
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror or e}")


def view(run: CheckRun, hide_expected: bool) -> TableView:
    rows = []
    for o in run.outcomes:
        d = o.to_dict(hide_expected)
        d["status"] = "PASS" if o.passed else "FAIL"
        if o.note:
            d["answer"] = f"{d['answer']} ({o.note})" if d["answer"] else f"({o.note})"
        rows.append(d)
    cols = [Column("status", "", "left"), Column("id", "Question", "left"),
            Column("question", "Asked", "left", drop=2), Column("answer", "Answer", "left")]
    if not hide_expected:  # on a narrow terminal the arithmetic goes first, then the question text
        cols += [Column("expected", "Expected", "left"), Column("arithmetic", "Arithmetic", "left", drop=3)]
    title = run.title or run.file
    summary = f"{run.passed} of {len(run.outcomes)} passed" + (f", {run.failed} failed" if run.failed else "")
    notes = [summary]
    if hide_expected:
        notes.append("expected values are hidden (--hide-expected)")
    return TableView(title=title, columns=cols, rows=rows, notes=notes)


def _failure_text(where: str, answered: str, o, hide_expected: bool) -> str:
    """The body of a JUnit <failure>: where, what was answered, the note, and — unless answers
    are hidden — the expected value and its arithmetic."""
    body = [where, f"answered: {answered}"]
    if o.note:
        body.append(o.note)
    if not hide_expected:
        body.append(f"expected: {o.expected}")
        if o.arithmetic:
            body.append(f"arithmetic: {o.arithmetic}")
    return "\n".join(body)


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
            fail.text = _failure_text(f"{run.file}:{q.line}: {q.label}", answered, o, hide_expected)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _classname(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return "cnncalc.check." + (name[:-5] if name.endswith(".yaml") else name).replace(".", "_")


# ------------------------------------------------------------------------------ --key views
_MARK = {"pass": "PASS", "fail": "FAIL", "missing": "MISSING", "error": "ERROR"}


def _name(path: str) -> str:
    from pathlib import Path

    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def submission_view(book, g, hide_expected: bool) -> TableView:
    """One submission's questions: verdict, answer, points (and the expected value, unless hidden)."""
    from cnncalc.check.sheet import fmt_points

    title = f"{book.sheet.title or book.sheet.id} — {g.student + ' (' + _name(g.file) + ')' if g.student else _name(g.file)}"
    if g.variant is not None:
        title += f", variant {g.variant}"
    cols = [Column("status", "", "left"), Column("id", "Question", "left"), Column("question", "Asked", "left"),
            Column("answer", "Answer", "left"), Column("score", "Points", "right")]
    if g.error is not None:
        return TableView(title=title, columns=cols, rows=[], notes=[f"cannot be graded: {g.error}"])
    rows = []
    for r in g.results:
        d = r.to_dict(hide_expected)
        d["status"] = _MARK[r.status]
        if r.outcome.note:
            d["answer"] = f"{d['answer']} ({r.outcome.note})" if d["answer"] else f"({r.outcome.note})"
        d["score"] = f"{d['earned']}/{d['points']}"
        rows.append(d)
    if not hide_expected:
        cols += [Column("expected", "Expected", "left"), Column("arithmetic", "Arithmetic", "left")]
    passed = sum(r.outcome.passed for r in g.results)
    notes = [f"{fmt_points(g.score)} of {fmt_points(g.points)} points ({g.percent}%): {g.status}; "
             f"{passed} of {len(g.results)} answers right"]
    notes += [f"{_name(g.file)}:{c.line}: {c.text()} — graded with the sheet's" for c in g.changed]
    notes += [f"{_name(g.file)}:{ln}: unknown question id {i!r} (not on the sheet; ignored)" for i, ln in g.unknown]
    if g.missing:
        notes.append(f"not answered: {', '.join(g.missing)}")
    if hide_expected:
        notes.append("expected values are hidden (--hide-expected)")
    return TableView(title=title, columns=cols, rows=rows, notes=notes)


def gradebook_view(book, hide_expected: bool = False) -> TableView:
    """The class gradebook: one row per submission, one column per question."""
    from cnncalc.check.sheet import fmt_points

    mark = (lambda v: _MARK.get(v, v) if v != "pass" else "pass")
    cols = [Column("submission", "Submission", "left"), Column("student", "Student", "left")]
    if book.sheet.has_variants:
        cols.append(Column("variant", "Variant", "left"))
    cols += [Column("score", "Score", "right"), Column("points", "Points", "right"),
             Column("percent", "%", "right"), Column("status", "Status", "left", fmt=lambda v: _MARK.get(v, v))]
    cols += [Column(q, q, "left", fmt=mark) for q in book.question_ids]
    cols += [Column("changed", "Changed definitions", "left"), Column("unknown", "Unknown ids", "left")]
    rows = []
    notes = []
    for g in book.graded:
        row = {"submission": _name(g.file), "student": g.student or "", "variant": g.variant or "",
               "status": g.status}
        if g.error is None:
            row.update({"score": fmt_points(g.score), "points": fmt_points(g.points), "percent": g.percent,
                        "changed": "; ".join(f"{c.id}: {c.field}" for c in g.changed),
                        "unknown": "; ".join(i for i, _ in g.unknown)})
            row.update({r.outcome.question.id: r.status for r in g.results})
            for c in g.changed:
                notes.append(f"{_name(g.file)}:{c.line}: {c.text()} — graded with the sheet's")
        else:
            notes.append(f"cannot be graded: {g.error}".replace("\n", " "))
        rows.append(row)
    d = book.to_dict()["summary"]
    summary = f"{d['submissions']} submission{'s' if d['submissions'] != 1 else ''}: {d['passed']} pass, " \
              f"{d['failed']} fail" + (f", {d['errors']} cannot be graded" if d["errors"] else "")
    notes.insert(0, summary)
    if hide_expected:
        notes.append("expected values are hidden (--hide-expected)")
    return TableView(title=f"Gradebook — {book.sheet.title or book.sheet.id}", columns=cols, rows=rows,
                     notes=notes)


def book_junit(book, hide_expected: bool = False) -> str:
    """JUnit XML: one <testsuite> per submission, one <testcase> per question; a submission
    that cannot be graded is a suite with one <error>."""
    total = sum(max(len(g.results), 1) for g in book.graded)
    fails = sum(sum(not r.outcome.passed for r in g.results) for g in book.graded)
    errors = sum(g.error is not None for g in book.graded)
    root = ET.Element("testsuites", name=f"cnncalc check --key {book.sheet.id}", tests=str(total),
                      failures=str(fails), errors=str(errors))
    for g in book.graded:
        name = g.student or _name(g.file)
        if g.error is not None:
            suite = ET.SubElement(root, "testsuite", name=name, tests="1", failures="0", errors="1",
                                  skipped="0", time="0")
            case = ET.SubElement(suite, "testcase", classname=_classname(g.file), name="submission", time="0")
            ET.SubElement(case, "error", message=g.error.message, type="BadSubmission").text = str(g.error)
            continue
        nfail = sum(not r.outcome.passed for r in g.results)
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(g.results)), failures=str(nfail),
                              errors="0", skipped="0", time="0")
        props = ET.SubElement(suite, "properties")
        for k, v in (("file", g.file), ("variant", g.variant or ""), ("score", _pts(g.score)),
                     ("points", _pts(g.points)), ("status", g.status)):
            ET.SubElement(props, "property", name=k, value=v)
        changed = {}
        for c in g.changed:
            changed.setdefault(c.id, []).append(c.text())
        for r in g.results:
            q = r.outcome.question
            case = ET.SubElement(suite, "testcase", classname=_classname(g.file), name=f"{q.id}: {q.label}",
                                 time="0")
            if q.line:
                case.set("file", g.file)
                case.set("line", str(q.line))
            o = r.outcome
            if not o.passed:
                answered = q.answer_text or "(nothing)"
                msg = f"wrong answer: {answered}" if not o.note else f"{o.note}: {answered}"
                fail_ = ET.SubElement(case, "failure", message=msg, type="Missing" if r.missing else "WrongAnswer")
                fail_.text = _failure_text(f"{g.file}:{q.line or ''}: {q.label}", answered, o, hide_expected)
            if q.id in changed:
                ET.SubElement(case, "system-out").text = "\n".join(changed[q.id]) + \
                    "\n(the grade uses the sheet's definition)"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _pts(p) -> str:
    from cnncalc.check.sheet import fmt_points

    return fmt_points(p)


def _solutions_report(sv, fmt: str):
    """Every expected answer of a variant with its arithmetic (the solution key)."""
    from cnncalc.check.sheet import solutions

    sols = solutions(sv)
    if fmt == "junit":
        fail("--solutions is a table, json, csv or markdown report, not junit")
    rows = [{"id": s.question.id, "question": s.question.label, "expected": s.expected,
             "arithmetic": s.arithmetic, "points": _pts(s.item.share()),
             "answer": s.answer if not isinstance(s.answer, (list, dict)) else str(s.answer)} for s in sols]
    if fmt == "json":
        return _json({"sheet": sv.sheet.id, "title": sv.sheet.title, "variant": sv.variant, "solutions": rows})
    title = f"Solutions — {sv.sheet.title or sv.sheet.id}" + (f", variant {sv.variant}" if sv.variant else "")
    cols = [Column("id", "Question", "left"), Column("question", "Asked", "left"),
            Column("expected", "Expected", "left"), Column("arithmetic", "Arithmetic", "left"),
            Column("points", "Points", "right")]
    return TableView(title=title, columns=cols, rows=rows)
