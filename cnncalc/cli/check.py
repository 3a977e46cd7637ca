"""``cnncalc check ANSWERS.yaml``: grade homework answers (exit 0 all pass, 1 any fails, 2 bad file);
``cnncalc check --key QUESTIONS.yaml SUBMISSIONS…``: grade a class."""
from __future__ import annotations

import io
import json
import sys
from fractions import Fraction
from pathlib import Path

import click

from cnncalc.check.grade import run_check
from cnncalc.cli.common import fail, make_rounding_option, rounding_override
from cnncalc.report.render import TableView, emit_json, render

FORMATS = ("table", "plain", "json", "junit", "csv", "markdown", "lms")
FEEDBACK_MARK = ".cnncalc-feedback"


@click.command()
@click.argument("files", nargs=-1, metavar="[ANSWERS.yaml | SUBMISSION.yaml… | DIR…]")
@click.option("--key", "key", metavar="QUESTIONS.yaml", default=None,
              help="The instructor's question sheet: questions, specs and points come only from it; "
                   "FILES are submissions (files or directories of them) with answers by question id.")
@click.option("--roster", metavar="ROSTER.csv", default=None, type=click.Path(dir_okay=False),
              help="With --key: the class list (columns id, name, optional variant; a Canvas gradebook export "
                   "works). Submissions are matched to it, students who handed nothing in are listed (0 in "
                   "the exports), submissions not on it are flagged; with --template/quiz and no --variant, "
                   "one file per student into -o DIR.")
@click.option("--template", is_flag=True,
              help="With --key: write the blank answer file for students (each question's text as a "
                   "comment). With --solutions too: the solution key as an answer file.")
@click.option("--solutions", is_flag=True,
              help="With --key: every expected answer with its arithmetic (for instructors).")
@click.option("--variant", metavar="ID", default=None,
              help="With --key: the variant (a student's id, unless the roster assigns another) whose "
                   "questions to show (quiz, template or solutions).")
@click.option("--format", "-F", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table for people, json for scripts, junit (XML) for CI dashboards; csv/markdown for "
                   "the full gradebook (a column per question); lms: each student's total, for Canvas "
                   "or Moodle's grade import.")
@click.option("--matrix", is_flag=True,
              help="With --key: the table shows every question of every student (as csv and markdown do), "
                   "not one row per student with the failed questions.")
@click.option("--gradescope", is_flag=True,
              help="With --key and one submission (a file, or Gradescope's /autograder/submission folder): "
                   "write Gradescope's results.json (the student id comes from submission_metadata.json "
                   "next to that folder). See examples/homework/gradescope/run_autograder.")
@click.option("--hide-expected", is_flag=True,
              help="Graded runs: show only pass/fail, never the expected values or their arithmetic.")
@click.option("--feedback", "feedback_dir", metavar="DIR", default=None, type=click.Path(file_okay=False),
              help="With --key: write each student's feedback (markdown: their answers, and the expected "
                   "value and arithmetic of every question they missed) into DIR. Releases the answers: "
                   "--hide-expected does not apply to it.")
@click.option("--pass-mark", type=click.FloatRange(0, 100), default=100, show_default=True,
              help="With --key: the percentage of the points a submission needs to pass.")
@click.option("--details", is_flag=True,
              help="With --key and several submissions: each submission's questions before the gradebook.")
@click.option("--output", "-o", type=click.Path(writable=True), default=None,
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
def check(files, key, roster, template, solutions, variant, fmt, matrix, gradescope, hide_expected, feedback_dir,
          pass_mark, details, output, allow_outside):
    """Check homework answers against the exact numbers.

    Without --key, ANSWERS.yaml holds questions and answers together (the format is
    described in `cnncalc.check`: python -c "import cnncalc.check; help(cnncalc.check)").

    With --key QUESTIONS.yaml, the instructor's sheet is the authority: each submission
    supplies only answers by question id (`answers: {conv1.shape: 55x55x96, ...}`; the
    combined format is accepted too, its question definitions ignored and any that differ
    from the sheet's reported). Several files or directories give a class gradebook: a row
    per student (the failed questions by their quiz numbers), a summary, and how the class
    did on each question. Sheets may draw per-student numbers ({choose: [...]},
    {range: [lo, hi]}): each student is graded with the variant assigned to their `id:`
    (the roster's, else their id, drawn with the sheet's secret `seed:`); a `variant:` that
    disagrees is flagged, and so are identical answer sets. See docs/instructors.md.

    Exit status: 0 every answer (every submission) passes, 1 some answer is wrong or
    missing, 2 a file cannot be used (with file:line; the other submissions are still graded).

    \b
    Examples:
      cnncalc check examples/homework/ANSWERS.yaml
      cnncalc check ANSWERS.yaml --hide-expected --format junit -o report.xml
      cnncalc check --key examples/homework/QUESTIONS.yaml examples/homework/submissions/
      cnncalc check --key QUESTIONS.yaml submissions/ --roster roster.csv --format csv -o gradebook.csv
      cnncalc check --key QUESTIONS.yaml submissions/ --roster roster.csv --format lms -o canvas.csv
      cnncalc check --key QUESTIONS.yaml submissions/ --feedback feedback/
      cnncalc check --key QUESTIONS.yaml /autograder/submission --gradescope -o results.json
      cnncalc check --key QUESTIONS.yaml --template --variant s1234 > answers.yaml
      cnncalc check --key QUESTIONS.yaml --template --roster roster.csv -o handouts/
      cnncalc check --key QUESTIONS.yaml --variant s1234          # that student's questions
      cnncalc check --key QUESTIONS.yaml --solutions --variant s1234
      cnncalc check student/ANSWERS.yaml --allow-spec-outside course/specs
      cnncalc check ANSWERS.yaml --rounding floor   # expected values as PyTorch rounds
    """
    if key is None:
        if template or solutions or variant is not None or roster or matrix or gradescope or feedback_dir:
            fail("--template, --solutions, --variant, --roster, --matrix, --gradescope and --feedback need the "
                 "question sheet: --key QUESTIONS.yaml")
        if fmt == "lms":
            fail("--format lms is a class's totals: grade submissions with --key QUESTIONS.yaml")
        if len(files) != 1:
            fail("give one answer file (ANSWERS.yaml), or grade submissions with --key QUESTIONS.yaml"
                 if files else "no answer file given: cnncalc check ANSWERS.yaml (or --key QUESTIONS.yaml "
                               "SUBMISSION...)")
        run = run_check(files[0], allow_outside, rounding_override())
        from cnncalc.check import views

        if fmt == "json":
            text = _json(run.to_dict(hide_expected))
        elif fmt == "junit":
            text = views.run_junit(run, hide_expected)
        else:
            text = views.run_view(run, hide_expected)
        write_report(text, output, fmt=fmt)
        sys.exit(run.exit_code)
    keyed(files, key, roster, template, solutions, variant, fmt, matrix, gradescope, hide_expected, feedback_dir,
          pass_mark, details, output)


def keyed(files, key, roster, template, solutions, variant, fmt, matrix, gradescope, hide_expected, feedback_dir,
          pass_mark, details, output):
    from cnncalc.check import views
    from cnncalc.check.roster import load_roster
    from cnncalc.check.sheet import Sheet

    sheet = Sheet(key, rounding=rounding_override())
    class_list = load_roster(roster) if roster else None
    if template or solutions or (variant is not None and not files) or (class_list is not None and not files):
        if files:
            fail("--template, --solutions and a quiz (--variant) take no submissions")
        if hide_expected and solutions:
            fail("--hide-expected and --solutions contradict each other")
        from cnncalc.check.quiz import render_quiz, render_template

        if template:
            make = (lambda sv: render_template(sv, filled=solutions))
        elif solutions:
            make = (lambda sv: _solutions_report(sv, fmt))
        else:
            if fmt in ("csv", "junit", "lms"):
                fail(f"a student's questions are rendered as table (plain), markdown or json, not {fmt}")
            make = (lambda sv: render_quiz(sv, {"table": "plain"}.get(fmt, fmt)))
        if class_list is not None and variant is None:
            ext = ".yaml" if template else {"json": ".json", "markdown": ".md"}.get(fmt, ".txt")
            per_student(sheet, class_list, make, output, ext, template)
        else:
            write_report(make(sheet_variant(sheet, variant)), output, overwrite=not template, fmt=fmt)
        sys.exit(0)
    if not files:
        fail("no submissions given: cnncalc check --key QUESTIONS.yaml SUBMISSION.yaml… (or a directory); "
             "--template writes the blank answer file")
    if variant is not None:
        fail("--variant is for showing one student's questions; a submission is graded with its student's variant")
    if gradescope:
        return _gradescope(sheet, files, class_list, pass_mark, hide_expected, output, fmt)
    from cnncalc.check.gradebook import collect, grade_all

    entries = collect(list(files), exclude=key)
    book = grade_all(sheet, entries, _pass_mark(pass_mark), class_list)
    from cnncalc.check.encode import error_text

    for g in book.graded:
        if g.error is not None:
            click.echo(f"error: {error_text(g.error)}", err=True)
    if feedback_dir is not None:
        write_feedback(book, Path(feedback_dir))
    if fmt == "json":
        text = _json(book.to_dict(hide_expected))
    elif fmt == "junit":
        text = views.book_junit(book, hide_expected)
    elif fmt == "lms":
        text = views.lms_csv(book)
    elif fmt == "csv":
        text = views.matrix_view(book)
    elif fmt == "markdown":
        text = [views.matrix_view(book), views.questions_view(book).view]
    elif len(book.graded) == 1 and not book.absent and not details and not matrix:
        text = views.submission_view(book, book.graded[0], hide_expected)
    else:
        parts = [views.submission_view(book, g, hide_expected) for g in book.graded] if details else []
        if matrix:
            text = parts + [Matrix(views.matrix_terminal(book)), views.questions_view(book)]
        else:
            text = parts + [views.gradebook_view(book), views.questions_view(book)]
    write_report(text, output, fmt=fmt)
    sys.exit(book.exit_code)


def _pass_mark(pass_mark: float) -> Fraction:
    return Fraction(pass_mark) / 100 if pass_mark != 100 else Fraction(1)


def _gradescope(sheet, files, class_list, pass_mark, hide_expected, output, fmt):
    """One Gradescope submission → results.json. The student's id and name come from
    ``submission_metadata.json`` beside the submission folder (Gradescope writes it there):
    it wins over the file's own ``id:``. A submission that cannot be graded still gets a
    results.json (0 points, and what to fix); exit status 2 then."""
    from cnncalc.check import views
    from cnncalc.check.gradebook import Gradebook, Graded, collect, grade_all
    from cnncalc.errors import SpecError

    if fmt != "table":
        fail("--gradescope writes Gradescope's results.json; leave out --format")
    if len(files) != 1:
        fail("--gradescope grades one submission: a file, or Gradescope's /autograder/submission folder")
    identity = _gradescope_identity(Path(files[0]))
    problem, entries = None, []
    try:
        entries = collect(list(files), exclude=sheet.path)
    except SpecError as e:
        problem = f"no answer file found: {e.message}"
    if len(entries) > 1:
        problem = ("upload one answer file (.yaml); found " +
                   ", ".join(Path(str(e)).name for e in entries[:5]) + ("…" if len(entries) > 5 else ""))
    if problem is None:
        book = grade_all(sheet, entries, _pass_mark(pass_mark), class_list, identity)
        g, code = book.graded[0], book.exit_code
    else:
        book, g, code = Gradebook(sheet, [], [], {}), Graded(file=str(files[0])), 2
    results = views.gradescope_results(book, g, hide_expected, problem)
    from cnncalc.escape import json_dumps

    write_report(json_dumps(results, indent=2) + "\n", output, fmt="json")
    sys.exit(code)


def _gradescope_identity(submission: Path):
    """(id, name) of the (first) student of a Gradescope submission, or None: their student id
    ('sid') when Gradescope has one, else their email."""
    folder = submission if submission.is_dir() else submission.parent
    meta = folder.parent / "submission_metadata.json"
    if not meta.is_file():
        return None
    from cnncalc.spec.yamlsafe import read_text_file

    try:
        users = json.loads(read_text_file(meta, "Gradescope metadata")).get("users") or []
        user = users[0]
        sid = user.get("sid") or user.get("email") or user.get("id")
        return (None if sid is None else str(sid), user.get("name"))
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        fail(f"{meta} is not Gradescope's submission metadata (a JSON object with 'users')")


def write_feedback(book, folder: Path) -> None:
    """Every graded student's feedback file, ``folder/<id or file name>.md``. The folder is
    created, or must be empty or one cnncalc wrote before (so no file of the user's is
    overwritten); each file is written atomically."""
    from cnncalc.check.views import feedback
    from cnncalc.fsutil import atomic_write_text

    if folder.exists() and any(folder.iterdir()) and not (folder / FEEDBACK_MARK).exists():
        fail(f"{folder} holds other files: not writing feedback there (name an empty or new folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FEEDBACK_MARK).write_text("feedback files written by cnncalc check --feedback\n")
        used: set[str] = set()
        for g in book.ok():
            stem = safe_stem(g.sid or Path(g.file).stem)
            name, n = stem, 1
            while name.casefold() in used:
                n += 1
                name = f"{stem}-{n}"
            used.add(name.casefold())
            atomic_write_text(folder / f"{name}.md", feedback(book, g))
    except OSError as e:
        fail(f"cannot write the feedback into {folder}: {e.strerror or e}")


def safe_stem(name: str) -> str:
    """A file name made of a student id: letters, digits, '_' and '-' only (never a path)."""
    import re

    return re.sub(r"[^\w-]", "_", name, flags=re.ASCII)[:80] or "student"


def per_student(sheet, class_list, make, output, ext: str, template: bool) -> None:
    """One file per roster student (their variant's quiz, template or solutions) into the
    folder ``output``; an existing file is not overwritten."""
    from cnncalc.fsutil import atomic_write_text

    if output is None:
        fail("with --roster and no --variant, name the folder for the students' files: -o DIR")
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot create {folder}: {e.strerror or e}")
    for s in class_list.students:
        v = s.variant or s.id
        sv = sheet_variant(sheet, v if sheet.has_variants else None)
        text = make(sv)
        if not isinstance(text, str):
            buf = io.StringIO()
            render(text, "plain", buf)
            text = buf.getvalue()
        if template:
            text = _personal(text, s, sheet)
        stem = safe_stem(s.id)
        try:
            atomic_write_text(folder / f"{stem}{ext}", text, overwrite=False)
        except FileExistsError:
            fail(f"{folder / (stem + ext)} already exists: not overwriting it")
        except OSError as e:
            fail(f"cannot write {folder / (stem + ext)}: {e.strerror or e}")
    click.echo(f"wrote {len(class_list.students)} files into {folder}", err=True)


def _personal(text: str, student, sheet) -> str:
    """A template with the student's id and name (and an assigned variant) filled in."""
    from cnncalc.check.quiz import yaml_value

    out = []
    for line in text.splitlines():
        if line.startswith("id:"):
            line = f"id: {yaml_value(student.id, exact=True)}"
        elif line == "student:":
            line = f"student: {yaml_value(student.name, exact=True)}" if student.name else line
        elif line.startswith("variant:"):          # only a variant the roster assigns (else: the id)
            if not student.variant:
                continue
            line = f"variant: {yaml_value(student.variant, exact=True)}"
        out.append(line)
    return "\n".join(out) + "\n"


def sheet_variant(sheet, variant):
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


class Matrix:
    """A table of a column per question: split into several on a terminal too narrow for it."""

    def __init__(self, view):
        self.view = view


def _chunk(c, fmt: str, stream) -> None:
    """One table (or text) on ``stream`` in ``fmt``: every name is encoded for where it goes."""
    from cnncalc.check import encode, views
    from cnncalc.report.render import use_rich

    if isinstance(c, str):
        stream.write(c)
        return
    if isinstance(c, Matrix):        # on a terminal: as many tables as its width needs
        if fmt == "table" and use_rich(stream):
            from rich.console import Console

            width = Console(file=stream).width
            for n, part in enumerate(views.split_columns(c.view, 1, width, named_from=4)):
                if n:
                    stream.write("\n")
                render(encode.terminal_view(part), fmt, stream)
        else:
            render(encode.terminal_view(c.view), fmt, stream)
        return
    fitted = c if isinstance(c, views.Fitted) else None
    view = c.view if fitted is not None else c
    if fmt == "csv":
        stream.write(encode.to_csv(view))
    elif fmt == "markdown":
        stream.write(encode.to_markdown(view))
    else:
        rich = fmt == "table" and use_rich(stream)
        if rich and fitted is not None:
            from rich.console import Console

            view = views.fit(fitted, Console(file=stream).width)
        render(encode.terminal_view(view), fmt, stream)  # rich on a terminal, plain when piped


def write_report(text, output: str | None, overwrite: bool = True, fmt: str = "table") -> None:
    """Write text (or tables, or a list of both) to stdout or, atomically, to ``output``."""
    chunks = text if isinstance(text, list) else [text]
    stream = sys.stdout if output is None else io.StringIO()
    for n, c in enumerate(chunks):
        if n:
            stream.write("\n")
        _chunk(c, fmt, stream)
    if output is None:
        sys.stdout.flush()
        return
    from cnncalc.fsutil import atomic_write_text

    if Path(output).is_dir():
        fail(f"{output} is a folder: name the file to write (e.g. {Path(output) / 'report.txt'})")
    try:
        atomic_write_text(output, stream.getvalue(), overwrite=overwrite)
    except FileExistsError:
        fail(f"{output} already exists: not overwriting it (choose another name, or remove it first)")
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror or e}")


def _solutions_report(sv, fmt: str):
    """Every expected answer of a variant with its arithmetic (the solution key)."""
    from cnncalc.check.sheet import fmt_points, solutions

    sols = solutions(sv)
    if fmt in ("junit", "lms"):
        fail(f"--solutions is a table, json, csv or markdown report, not {fmt}")
    rows = [{"id": s.question.id, "question": s.question.label, "expected": s.expected,
             "arithmetic": s.arithmetic, "points": fmt_points(s.item.share()),
             "answer": s.answer if not isinstance(s.answer, (list, dict)) else json.dumps(s.answer)}
            for s in sols]
    if fmt == "json":
        return _json({"sheet": sv.sheet.id, "title": sv.sheet.title, "variant": sv.variant, "solutions": rows})
    title = f"Solutions — {sv.sheet.title or sv.sheet.id}" + (f", variant {sv.variant}" if sv.variant else "")
    from cnncalc.report.render import Column

    cols = [Column("id", "Question", "left"), Column("question", "Asked", "left"),
            Column("expected", "Expected", "left"), Column("arithmetic", "Arithmetic", "left"),
            Column("points", "Points", "right")]
    return TableView(title=title, columns=cols, rows=rows)
