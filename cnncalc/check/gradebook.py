"""Grading submissions against a question sheet, and the class gradebook.

For each submission: who handed it in (its ``id:``, or the Gradescope metadata; matched to
the roster when there is one), the variant *assigned* to that student (the roster's, else
their id — drawn with the sheet's secret seed), each question's outcome (the expected value
comes from the sheet's definition, looked up in the sheet's cache, so each distinct question
is analysed once for the whole class), points with partial credit per answer key, the
question definitions a combined-format file changed, unknown ids and missing answers. A
submission that cannot be used (unreadable, for another sheet, no student id when the sheet
has variants) is an ``error`` row with file:line; the run then exits 2 after grading the
others.

Across the class (:func:`grade_all`): roster students without a submission (``absent``
rows, 0 points), submissions not on the roster, a ``variant:`` that is not the one
assigned, one id handed in twice, and possible copies — submissions with identical answers
(as written) that share a wrong one — are flagged; :meth:`Gradebook.question_stats` gives
each question's share of right answers and its most common wrong answer.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path

from cnncalc.check.answers import AnswerFile, Question, item_labels
from cnncalc.check.grade import Outcome
from cnncalc.check.roster import Roster, Student, name_key
from cnncalc.check.sheet import (Item, SharedGrader, Sheet, SheetVariant, definition, fmt_points, plain,
                                 resolved_spec)
from cnncalc.check.submission import Submission, load_submission, lookup
from cnncalc.errors import SpecError

SUFFIXES = (".yaml", ".yml")
# what a flag means, in the order the gradebook lists them
FLAGS = {
    "copy": "identical answers to another submission, a wrong one among them",
    "variant": "the 'variant:' written is not the one assigned (graded with the assigned one)",
    "dup": "the same student id handed in more than once",
    "id": "not on the roster, under another name than the roster's, or another id than Gradescope's",
    "changed": "question definitions changed (graded with the sheet's)",
    "extra": "answers to ids the sheet does not ask",
}


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
    variant: str | None = None        # the variant graded: the one assigned to the student
    results: list[QuestionResult] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)
    unknown: list[tuple[str, int | None]] = field(default_factory=list)
    error: SpecError | None = None
    pass_mark: Fraction = Fraction(1)
    sid: str | None = None            # the student id (the file's 'id:', Gradescope's, or the roster's)
    declared: str | None = None       # the 'variant:' the file writes
    flags: list[tuple[str, str]] = field(default_factory=list)   # (kind of FLAGS, what)
    absent: bool = False              # on the roster, no submission
    answered: dict[str, str] = field(default_factory=dict)       # question id → answer as written
    roster: Student | None = None

    @property
    def name(self) -> str:
        """The student's name as the gradebook shows it: the roster's (when the roster has the
        student), else the one the file writes, else the file's name."""
        if self.roster is not None and self.roster.name:
            return self.roster.name
        if self.student:
            return self.student
        return Path(self.file).stem if self.file else (self.sid or "")

    # (score and points are read many times by every view: summed once, after grading)
    @cached_property
    def score(self) -> Fraction:
        return sum((r.earned for r in self.results), Fraction(0))

    @cached_property
    def points(self) -> Fraction:
        return sum((r.possible for r in self.results), Fraction(0))

    @property
    def missing(self) -> list[str]:
        return [r.outcome.question.id for r in self.results if r.missing]

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        if self.absent:
            return "missing"
        if self.points == 0:
            return "pass"
        return "pass" if self.score >= self.pass_mark * self.points else "fail"

    @property
    def fraction(self) -> float | None:
        if self.error is not None or not self.points:
            return None
        return float(self.score / self.points)

    @property
    def percent(self) -> str:
        f = self.fraction
        return "" if f is None else f"{f * 100:.1f}"

    def flag(self, kind: str, text: str) -> None:
        if (kind, text) not in self.flags:
            self.flags.append((kind, text))

    @property
    def flag_kinds(self) -> list[str]:
        kinds = {k for k, _ in self.flags}
        return [k for k in FLAGS if k in kinds]

    def to_dict(self, hide_expected: bool = False) -> dict:
        d = {"file": self.file, "student": self.student, "id": self.sid, "variant": self.variant,
             "declared_variant": self.declared, "status": self.status,
             "flags": [{"kind": k, "text": t} for k, t in self.flags]}
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
class QuestionStat:
    """How the class did on one question: right answers, and the wrong answers given."""
    id: str
    label: str                        # its number on the quiz: 1, 7a, 7b, …
    points: Fraction
    graded: int = 0                   # submissions graded
    right: int = 0
    blank: int = 0
    wrong: Counter = field(default_factory=Counter)    # answer as written → how many gave it

    @property
    def percent(self) -> str:
        return f"{self.right / self.graded * 100:.0f}" if self.graded else ""

    def common_wrong(self) -> tuple[str, int] | None:
        """The wrong answer most students gave (ties: the first given) — when two or more gave
        it, or it is the only wrong answer given."""
        if not self.wrong:
            return None
        text, n = self.wrong.most_common(1)[0]
        return (text, n) if n >= 2 or len(self.wrong) == 1 else None


@dataclass
class Gradebook:
    sheet: Sheet
    graded: list[Graded]
    question_ids: list[str]
    points: dict[str, Fraction]
    labels: dict[str, str] = field(default_factory=dict)        # question id → 1, 7a, …
    items: list[Item] = field(default_factory=list)
    roster: Roster | None = None
    absent: list[Graded] = field(default_factory=list)
    copies: list[list[Graded]] = field(default_factory=list)   # groups of identical answer sets
    shared: list[tuple[str, list[Graded]]] = field(default_factory=list)   # variant written by several

    @property
    def rows(self) -> list[Graded]:
        """Every row: the submissions (in roster order when there is a roster) and the absent."""
        if self.roster is None:
            return self.graded + self.absent
        order = {s.id: n for n, s in enumerate(self.roster.students)}
        everyone = self.graded + self.absent
        on = sorted((g for g in everyone if g.sid in order), key=lambda g: order[g.sid])
        return on + [g for g in everyone if g.sid not in order]

    @property
    def total(self) -> Fraction:
        return sum(self.points.values(), Fraction(0))

    @property
    def exit_code(self) -> int:
        if any(g.error is not None for g in self.graded):
            return 2
        return 1 if any(g.status != "pass" for g in self.rows) else 0

    def ok(self) -> list[Graded]:
        """The submissions that were graded (not errors, not absent)."""
        return [g for g in self.graded if g.error is None]

    def summary(self) -> dict:
        ok = self.ok()
        pct = [g.fraction * 100 for g in ok if g.fraction is not None]
        return {"submissions": len(self.graded), "passed": sum(g.status == "pass" for g in ok),
                "failed": sum(g.status == "fail" for g in ok), "errors": len(self.graded) - len(ok),
                "missing": len(self.absent), "roster": len(self.roster.students) if self.roster else None,
                "mean": f"{statistics.fmean(pct):.1f}" if pct else "",
                "median": f"{statistics.median(pct):.1f}" if pct else "",
                "flagged": sum(bool(g.flags) for g in self.graded)}

    def summary_text(self) -> str:
        d = self.summary()
        parts = [f"{d['submissions']} submitted"]
        if d["roster"] is not None:
            on = d["roster"] - d["missing"]
            parts[0] += f" ({on} of the {d['roster']} on the roster)"
            parts.append(f"{d['missing']} missing")
        parts.append(f"{d['passed']} pass, {d['failed']} fail")
        if d["errors"]:
            parts.append(f"{d['errors']} cannot be graded")
        if d["mean"]:
            parts.append(f"mean {d['mean']}%, median {d['median']}%")
        if d["flagged"]:
            parts.append(f"{d['flagged']} flagged")
        return " · ".join(parts)

    def failed_short(self, g: Graded) -> str:
        """The failed (or unanswered) questions of ``g`` by their quiz numbers: an item whose
        answers all failed is its number alone (7), else its letters (7a 7c)."""
        bad = {r.outcome.question.id for r in g.results if not r.outcome.passed}
        if bad and len(bad) == len(g.results):
            return "all"
        out = []
        for n, it in enumerate(self.items, 1):
            ids = [q.id for q in it.questions]
            if all(i in bad for i in ids):
                out.append(str(n))
            else:
                out += [self.labels[i] for i in ids if i in bad]
        return " ".join(out)

    def question_stats(self) -> list[QuestionStat]:
        stats = {i: QuestionStat(i, self.labels.get(i, i), self.points[i]) for i in self.question_ids}
        for g in self.ok():
            for r in g.results:
                st = stats.get(r.outcome.question.id)
                if st is None:
                    continue
                st.graded += 1
                if r.outcome.passed:
                    st.right += 1
                elif r.missing:
                    st.blank += 1
                else:
                    st.wrong[" ".join(r.outcome.question.answer_text.split())] += 1
        return list(stats.values())

    def to_dict(self, hide_expected: bool = False) -> dict:
        stats = {s.id: s for s in self.question_stats()}
        d = {"sheet": self.sheet.id, "title": self.sheet.title, "file": self.sheet.path,
             "expected_hidden": hide_expected,
             "questions": [{"id": i, "number": self.labels.get(i, ""), "points": fmt_points(self.points[i]),
                            "graded": stats[i].graded, "right": stats[i].right,
                            "percent_right": stats[i].percent,
                            "common_wrong": dict(zip(("answer", "count"), stats[i].common_wrong() or ()))
                            or None}
                           for i in self.question_ids],
             "submissions": [g.to_dict(hide_expected) for g in self.graded],
             "absent": [{"id": g.sid, "student": g.name, "variant": g.variant} for g in self.absent],
             "copies": [[{"file": g.file, "id": g.sid, "student": g.student} for g in grp] for grp in self.copies],
             "summary": self.summary()}
        return d


# ------------------------------------------------------------------------------ collecting
@dataclass(frozen=True)
class Entry:
    """A submission file found in a folder; ``refused`` says why it is not read (a link out of
    the folder), and the gradebook shows it as an error row without any of its content."""
    path: Path
    refused: str | None = None

    def __str__(self) -> str:
        return str(self.path)


def collect(paths: list[str], exclude: str | None = None) -> list[Entry]:
    """Submission files: the files given, and every *.yaml/*.yml under the directories given
    (sorted; the sheet itself, and network specs a student keeps next to the answers, are
    skipped). Links are not followed out of a directory: a linked file that resolves outside
    it is an entry refused without being read, and linked directories are not entered. Files
    that are not regular (a FIFO, a device) are kept, to become error rows when read."""
    skip = Path(exclude).resolve() if exclude else None
    out: list[Entry] = []
    for p in map(Path, paths):
        if p.is_dir():
            root = p.resolve()
            found: list[Entry] = []
            for dirpath, dirnames, filenames in os.walk(p, followlinks=False):
                dirnames.sort()
                for fn in filenames:
                    f = Path(dirpath) / fn
                    if f.suffix not in SUFFIXES:
                        continue
                    try:
                        real = f.resolve()
                    except (OSError, RuntimeError):
                        found.append(Entry(f, "a link that cannot be resolved: not read"))
                        continue
                    if real == skip:
                        continue
                    if f.is_symlink() and real != root and root not in real.parents:
                        found.append(Entry(f, f"a link to a file outside {p}: not read"))
                        continue
                    if not _is_spec(f):
                        found.append(Entry(f))
            if not found:
                raise SpecError(f"the directory {str(p)!r} has no submissions (*.yaml, *.yml)")
            out += sorted(found, key=lambda e: e.path)
        elif p.exists() or p.is_symlink():
            out.append(Entry(p))
        else:
            raise SpecError(f"no submission {str(p)!r}")
    return out


_TOP = re.compile(r"^(layers|answers|questions)\s*:", re.M)


def _is_spec(path: Path) -> bool:
    """A network spec (a top-level 'layers:' without 'answers:'/'questions:') is not a
    submission. Read by its top-level keys only, through the same guard as submissions: a
    file that is neither, or cannot be read, is graded, so that its problem is reported."""
    from cnncalc.spec.yamlsafe import read_text_file

    try:
        keys = set(_TOP.findall(read_text_file(path, "submission")))
    except SpecError:
        return False
    return keys == {"layers"}


# ------------------------------------------------------------------------------ grading
def grade_file(sheet: Sheet, path: str | Path | Entry, pass_mark: Fraction = Fraction(1),
               roster: Roster | None = None, identity: tuple[str | None, str | None] | None = None) -> Graded:
    """Grade one submission file; the submission's own problems become an error row, a broken
    sheet raises (the whole run is unusable). ``identity``: (id, name) from a trusted source
    (Gradescope's metadata), which wins over what the file says."""
    entry = path if isinstance(path, Entry) else Entry(Path(path))
    g = Graded(file=str(entry.path), pass_mark=pass_mark)
    if entry.refused is not None:
        g.error = SpecError(entry.refused, file=str(entry.path))
        return g
    try:
        sub = load_submission(entry.path)
        g.student, g.declared = sub.student, sub.variant
        check_target(sheet, sub)
        sid, student, flags = identify(sub, roster, identity)
        g.sid, g.roster = sid, student           # (an error row below keeps who it is)
        variant = assigned_variant(sheet, sub, sid, student)
        g = grade_submission(sheet, sub, pass_mark, variant)
        g.sid, g.roster = sid, student
        if identity is not None and identity[1] and not g.student:
            g.student = identity[1]
        for f in flags:
            g.flag(*f)
        if sheet.has_variants and sub.variant is not None and sub.variant != variant:
            g.flag("variant", f"writes variant {sub.variant}, assigned {variant}: graded as {variant}")
        return g
    except SpecError as e:
        if e.file == sheet.path:
            raise
        if e.file is None:
            e.file = str(entry.path)
        g.error = e
        return g


def identify(sub: Submission, roster: Roster | None, identity=None) -> tuple[str | None, Student | None, list]:
    """Who handed ``sub`` in: (student id, roster entry, flags). The id is the trusted
    ``identity``'s, else the file's ``id:`` (older files: their ``variant:``), else the roster
    student of the file's ``student:`` name."""
    flags = []
    sid = sub.id if sub.id is not None else sub.variant
    if identity is not None and identity[0]:
        if sid is not None and sid != identity[0]:
            flags.append(("id", f"writes the id {sid}; the submission is {identity[0]}'s: graded as theirs"))
        sid = identity[0]
    student = None
    if roster is not None:
        student = roster.get(sid)
        if student is None and sid is None:
            student = roster.by_name(sub.student)
            sid = student.id if student is not None else None
        if student is None:
            flags.append(("id", f"{'id ' + sid if sid else 'a submission without an id'} is not on the roster"))
        elif sub.student and student.name and name_key(sub.student) != name_key(student.name):
            flags.append(("id", f"writes the name {sub.student!r}; the roster has {student.name!r} for {sid}"))
    return sid, student, flags


def assigned_variant(sheet: Sheet, sub: Submission, sid: str | None, student: Student | None) -> str | None:
    """The variant a student is graded with: the roster's, else their id (drawn with the sheet's
    seed); None for a sheet without variants."""
    if not sheet.has_variants:
        return None
    if student is not None and student.variant:
        return student.variant
    if sid is None:
        raise SpecError("no 'id:' in this submission (nor a 'variant:'), and the sheet draws per-student "
                        "variants from the student id", file=sub.path, line=sub.answers_line or 1,
                        hint="add 'id: <your student id>' (the id your questions were drawn for)")
    return sid


def check_target(sheet: Sheet, sub: Submission) -> None:
    """A submission names the sheet it answers (one that answers none of its questions is
    taken to be for another sheet, by :func:`grade_submission`)."""
    if sub.sheet is not None and sub.sheet != sheet.id:
        raise SpecError(f"this submission is for the sheet {sub.sheet!r}, not {sheet.id!r} ({sheet.path})",
                        file=sub.path, line=sub.sheet_line,
                        hint="grade it with its own sheet, or correct its 'sheet:' line")


def _norm(text) -> str:
    return " ".join(str(text).split())


def grade_submission(sheet: Sheet, sub: Submission, pass_mark: Fraction = Fraction(1),
                     variant: str | None = None) -> Graded:
    """Grade ``sub`` with ``variant`` of the sheet (default: the one its id or 'variant:' names)."""
    check_target(sheet, sub)
    if variant is None and sheet.has_variants:
        variant = assigned_variant(sheet, sub, sub.id if sub.id is not None else sub.variant, None)
    sv = sheet.variant(variant)
    g = Graded(file=sub.path, student=sub.student, variant=variant, pass_mark=pass_mark, sid=sub.id,
               declared=sub.variant)
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
            if ans is not None and ans[0] is not None:
                v = ans[0]
                g.answered[item.id] = json.dumps(plain(v), sort_keys=True, default=str) if isinstance(v, dict) \
                    else _norm(v)
            for q in item.questions:
                g.results.append(_grade_design(design_grader, item, q, ans, sub, share, sheet))
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
            if not blank:
                g.answered[q.id] = _norm(ans.text).casefold()
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
    for c in g.changed:
        g.flag("changed", f"{c.id}: {c.field} changed" + (f" (line {c.line})" if c.line else ""))
    if g.unknown:
        g.flag("extra", "answers ids the sheet does not ask: " + ", ".join(i for i, _ in g.unknown))
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
                  share: Fraction, sheet: Sheet) -> QuestionResult:
    if ans is None or ans[0] is None or (isinstance(ans[0], str) and not ans[0].strip()):
        mine = dataclasses.replace(q, file=sub.path, line=None if ans is None else ans[2])
        out = Outcome(mine, False, note="no network given (the answer is the network: a path, a zoo name "
                                        "or an inline spec)")
        return QuestionResult(item, out, share, missing=True)
    value, text, line = ans
    spec = value
    mine = dataclasses.replace(q, spec=spec, file=sub.path, line=line, layer_line=line)
    try:
        refused = _sheets_file(sheet, sub, grader.answers, value)
        out = Outcome(mine, False, note=refused) if refused else grader.grade(mine)
    except SpecError as e:
        out = Outcome(mine, False, note=f"the network cannot be used: {e.message}")
    out.question.answer_text = f"{text}: {q.answer_text}"
    return QuestionResult(item, out, share)



def _sheets_file(sheet: Sheet, sub: Submission, af: AnswerFile, ref) -> str | None:
    """Why a design answer naming the file ``ref`` is refused, or None. A submission reads only
    files in its own folder (``resolve_spec_ref``), never one the sheet uses (its reference
    solution), and, when it sits in the sheet's folder (or above it), nothing of that folder."""
    from cnncalc.check.answers import resolve_spec_ref

    if not isinstance(ref, str):
        return None
    where = resolve_spec_ref(ref, af, sub.path)          # outside its folder: a SpecError
    if where.path is None:
        return None                                      # a zoo name
    real = where.path.resolve()
    sheet_dir, own = Path(sheet.base_dir).resolve(), Path(sub.base_dir).resolve()
    kept_with_sheet = sheet_dir not in own.parents and (real == sheet_dir or sheet_dir in real.parents)
    if real in sheet.own_files() or kept_with_sheet:
        return ("the network cannot be used: it is a file of the question sheet's folder; a design answer is "
                "a network of your own, in a folder of your own (or inline)")
    return None


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


def grade_all(sheet: Sheet, paths: list, pass_mark: Fraction = Fraction(1), roster: Roster | None = None,
              identity: tuple[str | None, str | None] | None = None) -> Gradebook:
    """Grade every submission (paths or :func:`collect` entries) and look across the class:
    the roster's absent students, ids handed in twice, variants written by several students,
    and possible copies. ``identity`` (id, name): a trusted identity for the submissions (one
    Gradescope submission)."""
    graded = [grade_file(sheet, p, pass_mark, roster, identity) for p in paths]
    items = sheet.base.items if sheet.base is not None else sheet.variant("\x00check").items
    ids = [q.id for it in items for q in it.questions]
    pts = {q.id: it.share() for it in items for q in it.questions}
    book = Gradebook(sheet, graded, ids, pts, labels=numbering(items), items=items, roster=roster)
    if roster is not None:
        book.absent = _absent(book, items, pass_mark)
    _across(book)
    return book


def numbering(items: list[Item]) -> dict[str, str]:
    """Each question id's number as the quiz shows it: the item's number, and a letter per
    answer when the item asks several (7a, 7b, 7c)."""
    qs = [dataclasses.replace(q, item=n) for n, it in enumerate(items, 1) for q in it.questions]
    return dict(zip((q.id for q in qs), item_labels(qs)))


def _absent(book: Gradebook, items: list[Item], pass_mark: Fraction) -> list[Graded]:
    """A row for every roster student who handed nothing in: each question missing, 0 points."""
    came = {g.sid for g in book.graded if g.sid is not None}
    out = []
    for s in book.roster.students:
        if s.id in came:
            continue
        g = Graded(file="", student=s.name, sid=s.id, absent=True, roster=s, pass_mark=pass_mark,
                   variant=(s.variant or s.id) if book.sheet.has_variants else None)
        g.results = [QuestionResult(it, Outcome(q, False, note="no submission"), it.share(), missing=True)
                     for it in items for q in it.questions]
        out.append(g)
    return out


def _across(book: Gradebook) -> None:
    """Flags that need the whole class: one id handed in twice, identical answer sets with a
    wrong answer among them (possible copies), a variant written by several students."""
    ok = book.ok()
    by_id: dict[str, list[Graded]] = {}
    for g in book.graded:
        if g.sid is not None:
            by_id.setdefault(g.sid, []).append(g)
    for sid, grp in by_id.items():
        if len(grp) > 1:
            for g in grp:
                g.flag("dup", f"the id {sid} is also handed in by {names(x for x in grp if x is not g)}")
    by_answers: dict[frozenset, list[Graded]] = {}
    for g in ok:
        if len(g.answered) >= 2:
            by_answers.setdefault(frozenset(g.answered.items()), []).append(g)
    for grp in by_answers.values():
        if len(grp) < 2:
            continue
        if not any(not r.outcome.passed and (r.item.id if r.item.design else r.outcome.question.id) in g.answered
                   for g in grp for r in g.results):
            continue      # identical and all right: what right answers look like
        book.copies.append(grp)
        for g in grp:
            g.flag("copy", "identical answers to " + names(x for x in grp if x is not g))
    by_variant: dict[str, list[Graded]] = {}
    for g in book.graded:
        if g.declared is not None and book.sheet.has_variants:
            by_variant.setdefault(g.declared, []).append(g)
    for v, grp in by_variant.items():
        if len(grp) > 1 and any(g.declared != g.variant for g in grp):
            book.shared.append((v, grp))


def names(rows, most: int = 5) -> str:
    """'Ada (a.yaml), Bob (b.yaml)', at most ``most`` of them and how many more."""
    rows = list(rows)
    text = ", ".join(_who(g) for g in rows[:most])
    return text + (f" and {len(rows) - most} more" if len(rows) > most else "")


def _who(g: Graded) -> str:
    name = g.student or (g.roster.name if g.roster is not None else None)
    return f"{name} ({Path(g.file).name})" if name else Path(g.file).name


__all__ = ["names", "QuestionResult", "Changed", "Graded", "Gradebook", "QuestionStat", "Entry", "FLAGS", "collect",
           "grade_file", "grade_submission", "grade_all", "check_target", "identify", "assigned_variant",
           "numbering"]
