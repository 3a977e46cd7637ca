"""``cnncalc quiz QUESTIONS.yaml --variant ID``: one student's questions, with their numbers."""
from __future__ import annotations

import click

from cnncalc.cli.check import _variant, _write
from cnncalc.cli.common import make_rounding_option, rounding_override


@click.command()
@click.argument("sheet", metavar="QUESTIONS.yaml")
@click.option("--variant", metavar="ID", default=None,
              help="The student's variant id (needed when the sheet draws per-student numbers).")
@click.option("--format", "-F", "fmt", type=click.Choice(("plain", "markdown", "json")), default="plain",
              show_default=True, help="plain text, markdown (to hand out), or json.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output (an existing file is not overwritten).")
@make_rounding_option(
    "Build the sheet's networks with this rounding rule (floor, ceil or strict; a layer's own "
    "'rounding:' still wins): it can decide which per-student values fit, so give the same "
    "--rounding as to 'cnncalc check --key' when grading.")
def quiz(sheet, variant, fmt, output):
    """Render the questions of a question sheet as one student sees them.

    A sheet with `{choose: [...]}` or `{range: [lo, hi]}` values draws each student's numbers
    from the variant id (a stable hash: the same id always gets the same questions, on any
    machine); `cnncalc check --key QUESTIONS.yaml` grades a submission with the draw of the
    `variant:` it names. The blank answer file: `cnncalc check --key QUESTIONS.yaml --template
    --variant ID`.

    \b
    Examples:
      cnncalc quiz examples/homework/QUESTIONS.yaml --variant s1001
      cnncalc quiz QUESTIONS.yaml --variant s1234 --format markdown -o s1234.md
    """
    from cnncalc.check.quiz import render_quiz
    from cnncalc.check.sheet import Sheet

    sv = _variant(Sheet(sheet, rounding=rounding_override()), variant)
    _write(render_quiz(sv, fmt), output, overwrite=False)
