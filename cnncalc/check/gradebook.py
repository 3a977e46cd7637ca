"""Grading submissions against a question sheet, and the class gradebook.

For each submission: its variant of the sheet (``variant:``), each question's outcome (the
expected value comes from the sheet's definition, looked up in the sheet's cache, so each
distinct question is analysed once for the whole class), points with partial credit per
answer key, the question definitions a combined-format file changed, unknown ids and
missing answers. A submission that cannot be used (unreadable, for another sheet, no
variant id when the sheet has variants) is an ``error`` row with file:line; the run then
exits 2 after grading the others.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from cnncalc.check.answers import AnswerFile, Question
from cnncalc.check.grade import Outcome
from cnncalc.check.sheet import (Item, SharedGrader, Sheet, SheetVariant, definition, fmt_points,
                                 resolved_spec)
from cnncalc.check.submission import Submission, load_submission, lookup
from cnncalc.errors import SpecError

SUFFIXES = (".yaml", ".yml")


@dataclass
class QuestionResult:
    item: Item
    outcome: Outcome
    possible: Fraction
    missing: bool = False

    @property
    def earned(self) -> Fraction:
        return self.possible if self.outcome.passed else Fraction(0)

    @property
    def status(self) -> str:
        return "missing" if self.missing else self.outcome.status

    def to_dict(self, hide_expected: bool) -> dict:
        d = self.outcome.to_dict(hide_expected)
        d["status"] = self.status
        d["points"] = fmt_points(self.possible)
        d["earned"] = fmt_points(self.earned)
        return d


@dataclass
class Changed:
    """A question definition a submission wrote differently from the sheet (the sheet wins)."""
    id: str
    field: str
    sheet: str
    submitted: str
    line: int | None

    def text(self) -> str:
        return f"{self.id}: {self.field} changed from {self.sheet} to {self.submitted}"


@dataclass
class Graded:
    file: str
    student: str | None = None
    variant: str | None = None
    results: list[QuestionResult] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)
    unknown: list[tuple[str, int | None]] = field(default_factory=list)
    error: SpecError | None = None
    pass_mark: Fraction = Fraction(1)

    @property
    def score(self) -> Fraction:
        return sum((r.earned for r in self.results), Fraction(0))

    @property
    def points(self) -> Fraction:
        return sum((r.possible for r in self.results), Fraction(0))

    @property
    def missing(self) -> list[str]:
        return [r.outcome.question.id for r in self.results if r.missing]

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if self.points == 0:
            return "pass"
        return "pass" if self.score >= self.pass_mark * self.points else "fail"

    @property
    def percent(self) -> str:
        if self.error is not None or not self.points:
            return ""
        return f"{float(self.score / self.points * 100):.1f}"

    def to_dict(self, hide_expected: bool = False) -> dict:
        d = {"file": self.file, "student": self.student, "variant": self.variant, "status": self.status}
        if self.error is not None:
            d["error"] = str(self.error)
            return d
        d.update({"score": fmt_points(self.score), "points": fmt_points(self.points), "percent": self.percent,
                  "passed": sum(r.outcome.passed for r in self.results),
                  "failed": sum(not r.outcome.passed for r in self.results),
                  "results": [r.to_dict(hide_expected) for r in self.results],
                  "changed": [dataclasses.asdict(c) for c in self.changed],
                  "unknown": [{"id": i, "line": ln} for i, ln in self.unknown],
                  "missing": self.missing})
        return d


@dataclass
class Gradebook:
    sheet: Sheet
    graded: list[Graded]
    question_ids: list[str]
    points: dict[str, Fraction]

    @property
    def exit_code(self) -> int:
        if any(g.error is not None for g in self.graded):
            return 2
        return 1 if any(g.status != "pass" for g in self.graded) else 0

    def to_dict(self, hide_expected: bool = False) -> dict:
        ok = [g for g in self.graded if g.error is None]
        return {"sheet": self.sheet.id, "title": self.sheet.title, "file": self.sheet.path,
                "expected_hidden": hide_expected,
                "questions": [{"id": i, "points": fmt_points(self.points[i])} for i in self.question_ids],
                "submissions": [g.to_dict(hide_expected) for g in self.graded],
                "summary": {"submissions": len(self.graded), "passed": sum(g.status == "pass" for g in ok),
                            "failed": sum(g.status == "fail" for g in ok),
                            "errors": len(self.graded) - len(ok)}}


# ------------------------------------------------------------------------------ grading
def collect(paths: list[str], exclude: str | None = None) -> list[Path]:
    """Submission files: the files given, and every *.yaml/*.yml under the directories given
    (sorted; the sheet itself, and network specs a student keeps next to the answers, are
    skipped)."""
    skip = Path(exclude).resolve() if exclude else None
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix in SUFFIXES and f.is_file())
            found = [f for f in found if f.resolve() != skip and not _is_spec(f)]
            if not found:
                raise SpecError(f"the directory {str(p)!r} has no submissions (*.yaml, *.yml)")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise SpecError(f"no submission {str(p)!r}")
    return out


_TOP = re.compile(r"^(layers|answers|questions)\s*:", re.M)


def _is_spec(path: Path) -> bool:
    """A network spec (a top-level 'layers:' without 'answers:'/'questions:') is not a
    submission. Read by its top-level keys only: a file that is neither is graded, so that
    its problem is reported."""
    try:
        keys = set(_TOP.findall(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return False
    return keys == {"layers"}


def grade_file(sheet: Sheet, path: str | Path, pass_mark: Fraction = Fraction(1)) -> Graded:
    """Grade one submission file; the submission's own problems become an error row, a broken
    sheet raises (the whole run is unusable)."""
    g = Graded(file=str(path), pass_mark=pass_mark)
    try:
        sub = load_submission(path)
        g.student, g.variant = sub.student, sub.variant
        return grade_submission(sheet, sub, pass_mark)
    except SpecError as e:
        if e.file == sheet.path:
            raise
        if e.file is None:
            e.file = str(path)
        g.error = e
        return g


def check_target(sheet: Sheet, sub: Submission) -> None:
    """A submission names the sheet it answers; one that answers none of its questions is
    taken to be for another sheet; a sheet with variants needs the student's variant id."""
    if sub.sheet is not None and sub.sheet != sheet.id:
        raise SpecError(f"this submission is for the sheet {sub.sheet!r}, not {sheet.id!r} ({sheet.path})",
                        file=sub.path, line=sub.sheet_line,
                        hint="grade it with its own sheet, or correct its 'sheet:' line")
    if sheet.has_variants and sub.variant is None:
        raise SpecError("no 'variant:' in this submission, and the sheet has per-student variants",
                        file=sub.path, line=sub.answers_line or 1,
                        hint="add 'variant: <your student id>' (the id your questions were drawn for)")


def grade_submission(sheet: Sheet, sub: Submission, pass_mark: Fraction = Fraction(1)) -> Graded:
    check_target(sheet, sub)
    sv = sheet.variant(sub.variant)
    g = Graded(file=sub.path, student=sub.student, variant=sub.variant, pass_mark=pass_mark)
    used: set[str] = set()
    design_grader = None
    for item in sv.items:
        share = item.share()
        if item.design:
            ans, keys = _design_answer(sub, item)
            used |= keys
            if design_grader is None:
                af = AnswerFile(path=sub.path, title=None, questions=[], base_dir=sub.base_dir)
                design_grader = SharedGrader(af, sheet.cache, sheet.rounding)
            for q in item.questions:
                g.results.append(_grade_design(design_grader, item, q, ans, sub, share))
            continue
        for q in item.questions:
            ans, keys = lookup(sub, q.id, item.id)
            used |= keys
            mine = dataclasses.replace(q, answer=None if ans is None else ans.value,
                                       answer_text="" if ans is None else ans.text,
                                       line=None if ans is None else ans.line, file=sub.path)
            blank = ans is None or ans.value is None or (isinstance(ans.value, str) and not ans.value.strip())
            out = sv.grader.grade(mine)
            if ans is None:
                out.note = "no answer for this id"
            g.results.append(QuestionResult(item, out, share, missing=blank))
    if sub.answers and not used and sub.sheet is None:
        first = next(iter(sub.answers.values()))
        raise SpecError(f"this submission answers none of the questions of the sheet {sheet.id!r} "
                        f"({', '.join(sorted(sub.answers)[:4])}{', …' if len(sub.answers) > 4 else ''}): "
                        f"is it for another sheet?", file=sub.path, line=first.line,
                        hint=f"the sheet asks {', '.join(q.id for q in sv.questions[:5])}"
                             f"{', …' if len(sv.questions) > 5 else ''}")
    g.unknown = [(k, a.line) for k, a in sub.answers.items() if k not in used]
    if sub.combined is not None:
        g.changed = _changes(sv, sub)
    return g


def _design_answer(sub: Submission, item: Item):
    """The network a submission gives for a design question (minimal format: the item's id;
    combined format: the spec of its question)."""
    if sub.combined is not None:
        af = sub.combined
        for q in af.questions:
            if q.quantity == "require" and (q.id == item.id or q.id.startswith(item.id + ".")):
                ref = resolved_spec(q, af)
                keys = {x.id for x in af.questions if x.id == item.id or x.id.startswith(item.id + ".")}
                return (ref, str(ref) if isinstance(ref, str) else "(inline spec)", q.line), keys
        return None, set()
    a = sub.answers.get(item.id)
    if a is None:
        return None, set()
    text = a.text if not isinstance(a.value, dict) else "(inline spec)"
    return (a.value, text, a.line), {item.id}


def _grade_design(grader: SharedGrader, item: Item, q: Question, ans, sub: Submission,
                  share: Fraction) -> QuestionResult:
    if ans is None or ans[0] is None or (isinstance(ans[0], str) and not ans[0].strip()):
        mine = dataclasses.replace(q, file=sub.path, line=None if ans is None else ans[2])
        out = Outcome(mine, False, note="no network given (the answer is the network: a path, a zoo name "
                                        "or an inline spec)")
        return QuestionResult(item, out, share, missing=True)
    value, text, line = ans
    spec = value
    mine = dataclasses.replace(q, spec=spec, file=sub.path, line=line, layer_line=line)
    try:
        out = grader.grade(mine)
    except SpecError as e:
        out = Outcome(mine, False, note=f"the network cannot be used: {e.message}")
    out.question.answer_text = f"{text}: {q.answer_text}"
    return QuestionResult(item, out, share)


FIELDS = ("spec", "layer", "input", "batch", "dtype", "bias", "quantity", "require")


def _changes(sv: SheetVariant, sub: Submission) -> list[Changed]:
    """Definitions of the combined format that differ from the sheet's, field by field."""
    mine = {q.id: q for q in sub.combined.questions}
    out = []
    for item in sv.items:
        for q in item.questions:
            s = mine.get(q.id)
            if s is None:
                continue
            a, b = definition(q, sv.answers), definition(s, sub.combined)
            for f in FIELDS:
                if item.design and f == "spec":
                    continue          # a design question's network is the answer
                if a.get(f) != b.get(f):
                    out.append(Changed(q.id, f, _show(a.get(f)), _show(b.get(f)), s.line))
    return out


def _show(v) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_show(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


def grade_all(sheet: Sheet, paths: list[str | Path], pass_mark: Fraction = Fraction(1)) -> Gradebook:
    graded = [grade_file(sheet, p, pass_mark) for p in paths]
    items = sheet.base.items if sheet.base is not None else sheet.variant("\x00check").items
    ids = [q.id for it in items for q in it.questions]
    pts = {q.id: it.share() for it in items for q in it.questions}
    return Gradebook(sheet, graded, ids, pts)


__all__ = ["QuestionResult", "Changed", "Graded", "Gradebook", "collect", "grade_file", "grade_submission",
           "grade_all", "check_target"]
