"""What ``cnncalc check`` shows: tables for people, and the formats other tools read.

Tables (``TableView``) are built from raw values; each output encodes them for its reader
(``cnncalc.check.encode``: the terminal, CSV, markdown, XML). A table may come wrapped in a
:class:`Fitted`, which tells the terminal which columns must show every cell whole on one
line (a student's name, a question id) and which columns may be left out, in order, until
they do.

* one answer file, one submission: :func:`run_view`, :func:`submission_view`;
* the class: :func:`gradebook_view` (one row per student), :func:`questions_view` (how the
  class did on each question), :func:`matrix_view` (every question of every student: CSV,
  markdown, ``--matrix``);
* :func:`lms_csv` (Canvas/Moodle import), :func:`gradescope_results` (``results.json``),
  :func:`run_junit` / :func:`book_junit`, :func:`feedback` (a student's markdown feedback).
"""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from cnncalc.check.answers import item_labels
from cnncalc.check.encode import csv_cell, md_cell, xml_text
from cnncalc.check.gradebook import FLAGS, Gradebook, Graded, names
from cnncalc.check.grade import CheckRun
from cnncalc.check.sheet import fmt_points
from cnncalc.report.render import Column, TableView

MARK = {"pass": "PASS", "fail": "FAIL", "missing": "MISSING", "error": "ERROR"}


@dataclass
class Fitted:
    """A table and how a terminal may narrow it: ``whole`` columns keep every cell on one line;
    ``optional`` columns are left out, first to last, until they can (a note says which)."""
    view: TableView
    whole: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    hint: str = "--format plain or a wider terminal"
    texts: str | None = None      # a column whose cells, once left out, become notes (of failed rows)
    mark: tuple[str, str] | None = None   # (column, marker): once that column is left out, rows with a
                                          # cell in it get the marker after their first whole cell's text
    comfort: int = 20             # a text column narrower than this (or its widest cell) wraps too much


def fit(f: Fitted, width: int) -> TableView:
    """``f.view`` with the optional columns a terminal of ``width`` columns cannot show whole
    left out (and named in a note)."""
    from cnncalc.report.render import layout

    view, left_out = f.view, []
    for key in (None,) + tuple(f.optional):
        if key is not None:
            left_out += [c for c in view.columns if c.key == key]
            view = TableView(view.title, [c for c in view.columns if c.key != key], view.rows, view.footer,
                             view.sections, list(f.view.notes), view.caption)
        lay = layout(view, width)
        widths = dict(zip((c.key for c in lay.columns), lay.widths))
        fits = sum(lay.widths) + 3 * len(lay.widths) + 1 <= width and not lay.dropped   # (rich's SIMPLE_HEAD)
        whole = all(k in widths and widths[k] >= _natural(view, k) for k in f.whole if _has(view, k))
        words = all(widths[c.key] >= min(max(_longest_word(view, c), 0 if c.key in f.whole else f.comfort),
                                          _natural(view, c.key, header=True), WORD_MAX) for c in lay.columns)
        if fits and whole and words:
            break
    if left_out:
        headers = ", ".join(c.header or c.key for c in left_out)
        view.notes.insert(0, f"not shown at {width} columns: {headers}; see {f.hint}")
        keys = {c.key for c in left_out}
        if f.texts in keys:
            view.notes += [f"{(r.get('n') or '') + ' '}{r['id']}: {r[f.texts]}".lstrip() for r in view.rows
                           if r.get("status") not in ("PASS", "") and r.get(f.texts)]
        if f.mark is not None and f.mark[0] in keys:
            key, marker = f.mark
            at = next(k for k in f.whole if _has(view, k) and k != key)
            view.rows = [dict(r, **{at: f"{r.get(at, '')}{marker}"}) if r.get(key) else r for r in view.rows]
            header = next(c.header for c in left_out if c.key == key)
            view.notes.insert(1, f"{marker.strip()} = see the {header.lower()} in the notes below")
    return view


# a column narrower than its longest word folds words, and a text column narrower than COMFORT
# (or its widest cell) wraps into a tall row: leave optional columns out instead
WORD_MAX = 20


def _longest_word(view: TableView, col) -> int:
    from cnncalc.check.encode import cell_text

    texts = [col.header] + [cell_text(col, r.get(col.key, "")) for r in view.rows]
    return max((len(w) for t in texts for w in t.split()), default=0)


def _has(view: TableView, key: str) -> bool:
    return any(c.key == key for c in view.columns)


def _natural(view: TableView, key: str, header: bool = False) -> int:
    from cnncalc.check.encode import cell_text

    col = next(c for c in view.columns if c.key == key)
    return max([len(cell_text(col, r.get(key, ""))) for r in view.rows] + [len(col.header) if header else 1])


# ------------------------------------------------------------------------------ one answer file
def _question_columns(hide_expected: bool, points: bool = False) -> list[Column]:
    """A row per question: verdict, number, id, answer (points), then — unless hidden — the
    expected value; the question's text and the arithmetic go first on a narrow terminal."""
    cols = [Column("status", "", "left", kind="number"), Column("n", "#", "left", kind="number"),
            Column("id", "Question", "left", kind="number", drop=1), Column("answer", "Answer", "left")]
    cols += [Column("score", "Points", "right")] if points else []
    cols += [] if hide_expected else [Column("expected", "Expected", "left")]
    cols.append(Column("question", "Asked", "left", drop=2))
    cols += [] if hide_expected else [Column("arithmetic", "Arithmetic", "left", drop=3)]
    return cols


def run_view(run: CheckRun, hide_expected: bool) -> Fitted:
    """``check ANSWERS.yaml``: a row per question; on a narrow terminal the arithmetic, then the
    question text, are left out (the failed questions' texts then come as notes)."""
    rows = []
    labels = item_labels([o.question for o in run.outcomes])
    for o, label in zip(run.outcomes, labels):
        d = o.to_dict(hide_expected)
        d["status"] = "PASS" if o.passed else "FAIL"
        d["n"] = label
        if o.note:
            d["answer"] = f"{d['answer']} ({o.note})" if d["answer"] else f"({o.note})"
        rows.append(d)
    cols = _question_columns(hide_expected)
    notes = [f"{run.passed} of {len(run.outcomes)} passed" + (f", {run.failed} failed" if run.failed else "")]
    if hide_expected:
        notes.append("expected values are hidden (--hide-expected)")
    view = TableView(title=run.title or run.file, columns=cols, rows=rows, notes=notes)
    return Fitted(view, whole=("status", "n", "id"), optional=("arithmetic", "question", "id"), texts="question",
                  comfort=12)


# ------------------------------------------------------------------------------ one submission
def submission_view(book: Gradebook, g: Graded, hide_expected: bool) -> Fitted:
    """One submission's questions: verdict, answer, points (and the expected value, unless hidden)."""
    who = f"{g.name} ({name_of(g.file)})" if g.file else g.name
    title = f"{book.sheet.title or book.sheet.id} — {who}"
    if g.variant is not None:
        title += f", variant {g.variant}"
    cols = _question_columns(hide_expected, points=True)
    if g.error is not None:
        return Fitted(TableView(title=title, columns=cols, rows=[], notes=[f"cannot be graded: {g.error}"]))
    rows = []
    for r in g.results:
        d = r.to_dict(hide_expected)
        d["status"] = MARK[r.status]
        d["n"] = book.labels.get(d["id"], "")
        if r.outcome.note:
            d["answer"] = f"{d['answer']} ({r.outcome.note})" if d["answer"] else f"({r.outcome.note})"
        d["score"] = f"{d['earned']}/{d['points']}"
        rows.append(d)
    passed = sum(r.outcome.passed for r in g.results)
    notes = [f"{fmt_points(g.score)} of {fmt_points(g.points)} points ({g.percent}%): {g.status}; "
             f"{passed} of {len(g.results)} answers right"]
    notes += [f"{name_of(g.file)}:{c.line}: {c.text()} — graded with the sheet's" for c in g.changed]
    notes += [n for n in flag_notes([g]) if not n.startswith("changed: ")]
    if g.missing and not g.absent:
        notes.append(f"not answered: {', '.join(g.missing)}")
    if hide_expected:
        notes.append("expected values are hidden (--hide-expected)")
    view = TableView(title=title, columns=cols, rows=rows, notes=notes)
    return Fitted(view, whole=("status", "n", "id", "score"), optional=("arithmetic", "question", "id"),
                  texts="question", comfort=12)


def name_of(path: str) -> str:
    """A file's name relative to the working directory, when it is under it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):
        return str(p)


def flag_notes(rows: list[Graded]) -> list[str]:
    """A note per student and kind of flag: 'copy: Eve (subs/eve.yaml): identical answers to …'."""
    out = []
    for g in rows:
        for kind in g.flag_kinds:
            texts = "; ".join(t for k, t in g.flags if k == kind)
            out.append(f"{kind}: {g.name}{' (' + name_of(g.file) + ')' if g.file else ''}: {texts}")
    return out


# ------------------------------------------------------------------------------ the class
def gradebook_view(book: Gradebook) -> Fitted:
    """One row per student: name, id, variant (when it is not the id), score, %, status, the
    failed questions by their quiz numbers, flags. The summary is the caption; missing
    students, errors and flags are notes."""
    show_variant = any(g.variant is not None and g.variant != g.sid for g in book.rows)
    cols = [Column("student", "Student", "left", kind="number"), Column("id", "ID", "left", kind="number")]
    if show_variant:
        cols.append(Column("variant", "Variant", "left", kind="number", drop=1))
    cols += [Column("score", "Score", "right", drop=1), Column("percent", "%", "right"),
             Column("status", "Status", "left", kind="number"),
             Column("failed", "Failed", "left", kind="number", drop=2),   # (wraps between numbers, never
             Column("flags", "Flags", "left", kind="number", drop=3)]     # inside one)
    rows, notes = [], []
    for g in book.rows:
        row = {"student": g.name, "id": g.sid or "", "variant": g.variant or "", "status": MARK[g.status],
               "flags": " ".join(g.flag_kinds)}
        if g.error is None:
            row.update({"score": f"{fmt_points(g.score)}/{fmt_points(g.points)}", "percent": g.percent,
                        "failed": "" if g.absent else book.failed_short(g)})
        else:
            notes.append(f"cannot be graded: {g.error}".replace("\n", " "))
        rows.append(row)
    if book.absent:
        notes.append("no submission (0 points in the exports): " +
                     ", ".join(f"{g.name} ({g.sid})" for g in book.absent))
    notes += flag_notes(book.rows)
    for v, grp in book.shared[:20]:
        mine = [g for g in grp if g.variant == v]
        notes.append(f"variant {v} is written by {len(grp)} submissions, assigned to "
                     f"{names(mine) if mine else 'none of them'}")
    if len(book.shared) > 20:
        notes.append(f"… and {len(book.shared) - 20} more variants written by several submissions")
    if any(g.flags for g in book.graded):
        used = {k for g in book.graded for k in g.flag_kinds}
        notes.append("flags: " + "; ".join(f"{k} = {FLAGS[k]}" for k in FLAGS if k in used))
    view = TableView(title=f"Gradebook — {book.sheet.title or book.sheet.id}", columns=cols, rows=rows,
                     notes=notes, caption=book.summary_text())
    return Fitted(view, whole=("status", "student", "id", "variant", "score", "percent"),
                  optional=("flags", "failed", "variant", "score", "id"),
                  hint="the notes below, --matrix or --format csv",
                  mark=("flags", " *"), comfort=10)


def questions_view(book: Gradebook) -> Fitted:
    """How the class did on each question: its quiz number, id, % of the class right, and the
    wrong answer most students gave."""
    rows = []
    for st in book.question_stats():
        cw = st.common_wrong()
        if cw is not None:
            wrong = f"{cw[0]} (×{cw[1]})"
        elif st.wrong:
            wrong = f"({len(st.wrong)} different answers)"
        else:
            wrong = ""
        rows.append({"n": st.label, "id": st.id, "right": f"{st.percent}%" if st.graded else "",
                     "blank": str(st.blank) if st.blank else "", "wrong": wrong})
    cols = [Column("n", "#", "left", kind="number"), Column("id", "Question", "left", kind="number", drop=1),
            Column("right", "Right", "right"), Column("blank", "Blank", "right"),
            Column("wrong", "Most common wrong answer", "left")]
    view = TableView(title="Questions", columns=cols, rows=rows)
    return Fitted(view, whole=("n", "right"), optional=("id",))


def matrix_view(book: Gradebook) -> TableView:
    """Every question of every student (CSV, markdown, --matrix)."""
    mark = (lambda v: MARK.get(v, v) if v != "pass" else "pass")
    cols = [Column("submission", "Submission", "left"), Column("student", "Student", "left"),
            Column("id", "ID", "left")]
    if book.sheet.has_variants:
        cols.append(Column("variant", "Variant", "left"))
    cols += [Column("score", "Score", "right"), Column("points", "Points", "right"),
             Column("percent", "%", "right"), Column("status", "Status", "left", fmt=lambda v: MARK.get(v, v))]
    cols += [Column(q, q, "left", fmt=mark) for q in book.question_ids]
    cols += [Column("changed", "Changed definitions", "left"), Column("unknown", "Unknown ids", "left"),
             Column("flags", "Flags", "left")]
    rows, notes = [], []
    for g in book.rows:
        row = {"submission": name_of(g.file) if g.file else "", "student": g.name if g.absent else g.student or "",
               "id": g.sid or "", "variant": g.variant or "", "status": g.status, "flags": " ".join(g.flag_kinds)}
        if g.error is None:
            row.update({"score": fmt_points(g.score), "points": fmt_points(g.points),
                        "percent": g.percent, "changed": "; ".join(f"{c.id}: {c.field}" for c in g.changed),
                        "unknown": "; ".join(i for i, _ in g.unknown)})
            row.update({r.outcome.question.id: r.status for r in g.results})
        else:
            notes.append(f"cannot be graded: {g.error}".replace("\n", " "))
        rows.append(row)
    notes.insert(0, book.summary_text())
    notes += flag_notes(book.rows)
    return TableView(title=f"Gradebook — {book.sheet.title or book.sheet.id}", columns=cols, rows=rows,
                     notes=notes)


TICK = {"pass": "✓", "fail": "✗", "missing": "–"}


def matrix_terminal(book: Gradebook) -> TableView:
    """``--matrix`` for people: every question of every student, a column per question headed
    by its quiz number (the Questions table says which is which), ✓ right, ✗ wrong, – not
    answered."""
    cols = [Column("student", "Student", "left", kind="number"), Column("id", "ID", "left", kind="number"),
            Column("percent", "%", "right"), Column("status", "Status", "left", kind="number")]
    cols += [Column(q, book.labels.get(q, q), "left", kind="number") for q in book.question_ids]
    rows = []
    for g in book.rows:
        row = {"student": g.name, "id": g.sid or "", "status": MARK[g.status], "percent": g.percent}
        row.update({r.outcome.question.id: TICK[r.status] for r in g.results})
        rows.append(row)
    notes = ["✓ right, ✗ wrong, – not answered; the columns are the questions' numbers (see Questions)"]
    return TableView(title=f"Every answer — {book.sheet.title or book.sheet.id}", columns=cols, rows=rows,
                     notes=notes)


def split_columns(view: TableView, keep: int, width: int, named_from: int = 0) -> list[TableView]:
    """A table too wide for ``width`` columns as several tables, each with the first ``keep``
    columns and as many of the others as fit (as pandas prints a wide frame); each part is
    titled with the headers of its first and last column from index ``named_from`` on."""
    from cnncalc.check.encode import cell_text

    def w(c):
        return max([len(c.header)] + [len(cell_text(c, r.get(c.key, ""))) for r in view.rows])

    head, rest = view.columns[:keep], view.columns[keep:]
    base = sum(w(c) + 3 for c in head) + 1
    parts, cur, used = [], [], base
    for c in rest:
        if cur and used + w(c) + 3 > width:
            parts.append(cur)
            cur, used = [], base
        cur.append(c)
        used += w(c) + 3
    parts.append(cur)
    if len(parts) == 1:
        return [view]
    out, named = [], {id(c) for c in view.columns[named_from:]}
    for n, cols in enumerate(parts):
        heads = [c.header for c in cols if id(c) in named]
        span = heads[0] if len(heads) == 1 else f"{heads[0]}–{heads[-1]}" if heads else ""
        out.append(TableView(f"{view.title} ({span})" if n == 0 else f"({span})", head + cols,
                             view.rows, notes=view.notes if n == len(parts) - 1 else []))
    return out


# ------------------------------------------------------------------------------ LMS and autograders
LMS_HEADER = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


def lms_csv(book: Gradebook) -> str:
    """The total of each student, as Canvas's gradebook import reads it (Student, ID, SIS User
    ID, SIS Login ID, Section, then the assignment; Moodle maps the columns when importing).
    Students on the roster who handed nothing in get 0; a submission that cannot be graded
    gets an empty cell (the LMS keeps what it had: look at it first)."""
    from cnncalc.check.roster import canvas_columns

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([csv_cell(h) for h in LMS_HEADER + (str(book.sheet.title or book.sheet.id),)])
    for g in book.rows:
        score = "" if g.error is not None else fmt_points(g.score)
        w.writerow([csv_cell(c) for c in canvas_columns(g.roster, g.sid, g.name)] + [score])
    return buf.getvalue()


def gradescope_results(book: Gradebook, g: Graded, hide_expected: bool, problem: str | None = None) -> dict:
    """Gradescope's autograder ``results.json`` for one submission: the score, one test per
    answer (its points, status, visibility — the sheet's ``visibility:`` of its item — and what
    was answered; the expected value and arithmetic unless ``hide_expected``)."""
    if problem is not None or g.error is not None:
        why = problem or f"your answer file cannot be graded:\n{g.error}"
        return {"score": 0.0, "output": why, "tests": [], "visibility": "visible",
                "stdout_visibility": "hidden"}
    tests = []
    for r in g.results:
        o, q = r.outcome, r.outcome.question
        lines = [q.label, f"answered: {q.answer_text or '(nothing)'}"]
        if o.note:
            lines.append(o.note)
        if not hide_expected and not o.passed:
            lines.append(f"expected: {o.expected}")
            if o.arithmetic:
                lines.append(f"arithmetic: {o.arithmetic}")
        tests.append({"name": f"{q.id}", "number": book.labels.get(q.id, ""), "score": float(r.earned),
                      "max_score": float(r.possible), "status": "passed" if o.passed else "failed",
                      "visibility": r.item.visibility, "output": "\n".join(lines)})
    head = [f"{fmt_points(g.score)} of {fmt_points(g.points)} points ({g.percent}%)"]
    if g.variant is not None:
        head.append(f"variant {g.variant}")
    out = "; ".join(head)
    if g.flags:
        out += "\n" + "\n".join(f"note: {t}" for _, t in g.flags)
    return {"score": float(g.score), "output": out, "tests": tests, "visibility": "visible",
            "stdout_visibility": "hidden"}


# ------------------------------------------------------------------------------ JUnit
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


def _el(parent, tag: str, text: str | None = None, **attrs) -> ET.Element:
    """A sub-element whose attributes and text are XML 1.0 (ElementTree escapes the rest)."""
    e = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        e.text = xml_text(text)
    return e


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def classname(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return "cnncalc.check." + (name[:-5] if name.endswith(".yaml") else name).replace(".", "_")


def run_junit(run: CheckRun, hide_expected: bool = False) -> str:
    """JUnit XML (the schema Jenkins, GitLab and GitHub test reporters read) of one answer file."""
    root = ET.Element("testsuites", name="cnncalc check", tests=str(len(run.outcomes)),
                      failures=str(run.failed), errors="0")
    suite = _el(root, "testsuite", name=run.title or run.file, tests=str(len(run.outcomes)),
                failures=str(run.failed), errors="0", skipped="0", time="0")
    for o in run.outcomes:
        q = o.question
        case = _el(suite, "testcase", classname=classname(run.file), name=f"{q.id}: {q.label}", time="0")
        if q.line:
            case.set("file", xml_text(run.file))
            case.set("line", str(q.line))
        if not o.passed:
            answered = q.answer_text or "(nothing)"
            msg = f"wrong answer: {answered}" if not o.note else f"{o.note}: {answered}"
            _el(case, "failure", _failure_text(f"{run.file}:{q.line}: {q.label}", answered, o, hide_expected),
                message=msg, type="WrongAnswer")
    return _xml(root)


def book_junit(book: Gradebook, hide_expected: bool = False) -> str:
    """JUnit XML: one <testsuite> per submission, one <testcase> per question; a submission
    that cannot be graded is a suite with one <error>, a roster student who handed nothing in
    a suite with one failing <testcase>."""
    total = sum(max(len(g.results), 1) for g in book.graded) + len(book.absent)
    fails = sum(sum(not r.outcome.passed for r in g.results) for g in book.graded) + len(book.absent)
    errors = sum(g.error is not None for g in book.graded)
    root = ET.Element("testsuites", name=xml_text(f"cnncalc check --key {book.sheet.id}"), tests=str(total),
                      failures=str(fails), errors=str(errors))
    for g in book.rows:
        name = g.name if g.absent else g.student or name_of(g.file)
        if g.absent:
            suite = _el(root, "testsuite", name=name, tests="1", failures="1", errors="0", skipped="0", time="0")
            case = _el(suite, "testcase", classname="cnncalc.check.roster", name=f"submission of {g.sid}", time="0")
            _el(case, "failure", f"{g.name} ({g.sid}) is on the roster and handed nothing in",
                message="no submission", type="NoSubmission")
            continue
        if g.error is not None:
            suite = _el(root, "testsuite", name=name, tests="1", failures="0", errors="1", skipped="0", time="0")
            case = _el(suite, "testcase", classname=classname(g.file), name="submission", time="0")
            _el(case, "error", str(g.error), message=g.error.message, type="BadSubmission")
            continue
        nfail = sum(not r.outcome.passed for r in g.results)
        suite = _el(root, "testsuite", name=name, tests=str(len(g.results)), failures=str(nfail),
                    errors="0", skipped="0", time="0")
        props = _el(suite, "properties")
        for k, v in (("file", g.file), ("id", g.sid or ""), ("variant", g.variant or ""),
                     ("score", fmt_points(g.score)), ("points", fmt_points(g.points)), ("status", g.status),
                     ("flags", " ".join(g.flag_kinds))):
            _el(props, "property", name=k, value=v)
        changed = {}
        for c in g.changed:
            changed.setdefault(c.id, []).append(c.text())
        for r in g.results:
            q = r.outcome.question
            case = _el(suite, "testcase", classname=classname(g.file), name=f"{q.id}: {q.label}", time="0")
            if q.line:
                case.set("file", xml_text(g.file))
                case.set("line", str(q.line))
            o = r.outcome
            if not o.passed:
                answered = q.answer_text or "(nothing)"
                msg = f"wrong answer: {answered}" if not o.note else f"{o.note}: {answered}"
                _el(case, "failure", _failure_text(f"{g.file}:{q.line or ''}: {q.label}", answered, o, hide_expected),
                    message=msg, type="Missing" if r.missing else "WrongAnswer")
            if q.id in changed:
                _el(case, "system-out", "\n".join(changed[q.id]) + "\n(the grade uses the sheet's definition)")
    return _xml(root)


# ------------------------------------------------------------------------------ feedback
def feedback(book: Gradebook, g: Graded) -> str:
    """A student's feedback (markdown): their score, every question's verdict, and for each
    question they missed, the expected answer and its arithmetic (what ``--explain`` shows).
    Written only when the instructor asks for it (``--feedback DIR``)."""
    title = book.sheet.title or book.sheet.id
    who = g.name + (f" ({g.sid})" if g.sid else "")
    out = [f"# {md_cell(title)}: feedback for {md_cell(who)}", ""]
    head = f"**{fmt_points(g.score)} of {fmt_points(g.points)} points ({g.percent}%)**: {g.status}"
    if g.variant is not None:
        head += f" · variant {md_cell(g.variant)}"
    out += [head, "", "| # | Question | Your answer | Points |", "|:---|:---|:---|---:|"]
    for r in g.results:
        q = r.outcome.question
        verdict = "✓" if r.outcome.passed else "✗"
        out.append(f"| {book.labels.get(q.id, '')} | {md_cell(q.id)} | {verdict} {md_cell(q.answer_text or '—')} | "
                   f"{fmt_points(r.earned)}/{fmt_points(r.possible)} |")
    missed = [r for r in g.results if not r.outcome.passed]
    if missed:
        out += ["", "## The questions you missed"]
    for r in missed:
        o, q = r.outcome, r.outcome.question
        out += ["", f"### {book.labels.get(q.id, '')}. {md_cell(q.label)}", "",
                f"- your answer: {md_cell(q.answer_text or '(nothing)')}" + (f" ({md_cell(o.note)})" if o.note else ""),
                f"- expected: {md_cell(o.expected)}"]
        if o.arithmetic:
            out.append(f"- how: {md_cell(o.arithmetic)}")
    flags = [t for k, t in g.flags if k not in ("copy", "dup")]     # suspicions are the instructor's
    if flags:
        out += ["", "## Notes", ""] + [f"- {md_cell(t)}" for t in flags]
    return "\n".join(out) + "\n"


__all__ = ["Fitted", "fit", "run_view", "submission_view", "gradebook_view", "questions_view",
           "matrix_view", "matrix_terminal", "split_columns", "lms_csv", "gradescope_results", "run_junit", "book_junit", "feedback", "flag_notes",
           "name_of", "MARK"]
