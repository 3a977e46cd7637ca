"""``cnncalc quiz QUESTIONS.yaml --variant ID``: one student's questions, with their numbers."""
from __future__ import annotations

import click

from cnncalc.cli.check import sheet_variant, write_report, per_student
from cnncalc.cli.common import make_rounding_option, rounding_override


@click.command()
@click.argument("sheet", metavar="QUESTIONS.yaml")
@click.option("--variant", metavar="ID", default=None,
              help="The student's variant (their id, unless the roster assigns another; needed when the "
                   "sheet draws per-student numbers).")
@click.option("--roster", metavar="ROSTER.csv", default=None, type=click.Path(dir_okay=False),
              help="Without --variant: every student of the class list gets their own questions, one file "
                   "each (named by their id) in the folder -o DIR.")
@click.option("--format", "-F", "fmt", type=click.Choice(("plain", "markdown", "json")), default="plain",
              show_default=True, help="plain text, markdown (to hand out), or json.")
@click.option("--output", "-o", type=click.Path(writable=True), default=None,
              help="Write to this file (a folder with --roster) instead of standard output (an existing file "
                   "is not overwritten).")
@make_rounding_option(
    "Build the sheet's networks with this rounding rule (floor, ceil or strict; a layer's own "
    "'rounding:' still wins): it can decide which per-student values fit, so give the same "
    "--rounding as to 'cnncalc check --key' when grading.")
def quiz(sheet, variant, roster, fmt, output):
    """Render the questions of a question sheet as one student sees them.

    A sheet with `{choose: [...]}` or `{range: [lo, hi]}` values draws each student's numbers
    from their variant (their id, or the roster's variant; a stable hash with the sheet's
    secret `seed:` — the same id always gets the same questions, on any machine);
    `cnncalc check --key QUESTIONS.yaml` grades each submission with the variant assigned to
    its student. The blank answer file: `cnncalc check --key QUESTIONS.yaml --template
    --variant ID` (or `--roster roster.csv -o DIR` for the whole class).

    \b
    Examples:
      cnncalc quiz examples/homework/QUESTIONS.yaml --variant s1001
      cnncalc quiz QUESTIONS.yaml --variant s1234 --format markdown -o s1234.md
      cnncalc quiz QUESTIONS.yaml --roster roster.csv --format markdown -o handouts/
    """
    from cnncalc.check.quiz import render_quiz
    from cnncalc.check.sheet import Sheet

    questions = Sheet(sheet, rounding=rounding_override())
    if roster is not None and variant is None:
        from cnncalc.check.roster import load_roster

        ext = {"json": ".json", "markdown": ".md"}.get(fmt, ".txt")
        per_student(questions, load_roster(roster), lambda sv: render_quiz(sv, fmt), output, ext, False)
        return
    write_report(render_quiz(sheet_variant(questions, variant), fmt), output, overwrite=False)
