"""A student's submission: answers by question id, nothing else counts.

The minimal format (what ``cnncalc check --key QUESTIONS.yaml --template`` writes)::

    sheet: cnn-homework-2      # the sheet it answers (checked when given)
    id: s1234567               # the student's id (on the roster): it decides their variant
    student: Ada Lovelace      # optional, shown in the gradebook
    variant: s1234567          # optional: the variant the student was given (a 'variant:' that
                               # is not the one assigned to the id is flagged; older files that
                               # carry only 'variant:' are read with it as the id)
    answers:
      conv1-shape: 55x55x96
      conv1.params: 35K        # an item asking several quantities: id.quantity …
      my-conv:                 # … or a mapping under the item's id
        shape: 32x32x8
        params: 608
      design: my_net.yaml      # a design question: the network (a path next to this file,
                               # a zoo name, or an inline spec mapping)

The combined format of ``cnncalc check ANSWERS.yaml`` (questions and answers together) is
read too; its question definitions are kept only to report where they differ from the
sheet's — the grade always uses the sheet.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncalc.check.answers import ALIASES, AnswerFile, answers_from_doc, raw_text
from cnncalc.errors import SpecError
from cnncalc.spec.yamlsafe import LineDict, load_yaml

MINIMAL_KEYS = ("sheet", "id", "variant", "student", "answers", "title")
EXTRA_KEYS = ("sheet", "id", "variant", "student")      # allowed on top of the combined format


@dataclass
class Answer:
    value: Any
    text: str
    line: int | None


@dataclass
class Submission:
    path: str
    base_dir: Path
    student: str | None = None
    id: str | None = None
    variant: str | None = None
    sheet: str | None = None
    sheet_line: int | None = None
    answers: dict[str, Answer] = field(default_factory=dict)     # by id, as written
    answers_line: int | None = None
    combined: AnswerFile | None = None                          # the combined format's questions
    lines: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.student or Path(self.path).stem


def load_submission(path: str | Path) -> Submission:
    """Read a submission as answer files are read (a regular UTF-8 file within the size limit:
    a 1 GB file, a device or a FIFO is an error, never a hang); a file that cannot be used is a
    SpecError with file:line."""
    from cnncalc.spec.yamlsafe import read_text_file

    p = Path(path)
    text = read_text_file(p, "submission")
    return parse_submission(text, str(path), p.parent)


def parse_submission(text: str, file: str = "<submission>", base_dir: Path | str = ".") -> Submission:
    doc = load_yaml(text, file)
    lines = text.splitlines()
    if not isinstance(doc, dict):
        raise SpecError("a submission is a mapping with 'answers:' (id: answer, one per line)", file=file,
                        line=getattr(doc, "line", 1), hint="start from cnncalc check --key SHEET --template")
    sub = Submission(path=file, base_dir=Path(base_dir), lines=lines)
    for key in EXTRA_KEYS:
        v = doc.get(key)
        if v is not None and not isinstance(v, (str, int, float)):
            raise SpecError(f"'{key}' is a single value, got {v!r}", file=file, line=doc.line_of(key))
    sub.student = None if doc.get("student") is None else str(doc["student"])
    sub.id = _as_written(doc, "id", lines)
    sub.variant = _as_written(doc, "variant", lines)
    sub.sheet = None if doc.get("sheet") is None else str(doc["sheet"])
    sub.sheet_line = doc.line_of("sheet") if "sheet" in doc else None
    if "questions" in doc or "require" in doc:        # the combined format
        from cnncalc.check.sheet import SHEET_ONLY_ITEM, SHEET_ONLY_TOP
        from cnncalc.check.variants import substitute

        # a copy of the sheet: its sheet-only keys (points) are the sheet's business, not hers
        rest = substitute(doc, {}, drop=lambda path, k: (path == () and k in EXTRA_KEYS + SHEET_ONLY_TOP) or
                          (len(path) == 2 and path[0] == "questions" and k in SHEET_ONLY_ITEM))
        af = answers_from_doc(rest, lines, file=file, base_dir=base_dir)
        sub.combined = af
        for q in af.questions:
            sub.answers[q.id] = Answer(q.answer, q.answer_text, q.line)
        sub.answers_line = doc.line_of("questions")
        return sub
    for key in doc:
        if key not in MINIMAL_KEYS:
            raise SpecError(f"unknown top-level field {key!r} in a submission", file=file, line=doc.line_of(key),
                            hint=_close(key, MINIMAL_KEYS) or "a submission has 'answers:' (and 'variant:', "
                                 "'student:', 'sheet:')")
    ans = doc.get("answers")
    if not isinstance(ans, dict):
        raise SpecError("the submission has no 'answers:' mapping (id: answer, one per line)", file=file,
                        line=doc.line_of("answers") if "answers" in doc else 1,
                        hint="start from cnncalc check --key SHEET --template")
    sub.answers_line = doc.line_of("answers")
    for k, v in ans.items():
        line = ans.line_of(k)
        if isinstance(k, int) and v is None:
            raise SpecError(f"{k!r} is read as a key of its own: a comma inside {{...}} separates fields", file=file,
                            line=line, hint="quote numbers written with commas, e.g. '34,848'")
        sub.answers[str(k)] = Answer(v, raw_text(ans, k, v, lines), line)
    return sub


def _close(word, options) -> str | None:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _as_written(doc, key, lines) -> str | None:
    """A scalar id as written: YAML reads ``variant: 007`` as the number 7, the student wrote 007."""
    v = doc.get(key)
    if v is None or isinstance(v, str):
        return v
    ln = doc.line_of(key)
    if ln and 0 < ln <= len(lines):
        m = re.match(rf"\s*{key}\s*:\s*([^#\s]+)", lines[ln - 1])
        if m:
            return m.group(1)
    return str(v)


def lookup(sub: Submission, qid: str, item_id: str) -> tuple[Answer | None, set[str]]:
    """The answer to question ``qid`` (of item ``item_id``), and the submission ids it used."""
    if qid in sub.answers:
        return sub.answers[qid], {qid}
    if qid.startswith(item_id + "."):
        want = qid[len(item_id) + 1:]
        for k, a in sub.answers.items():        # 'item.output' for 'item.shape'
            if k.startswith(item_id + ".") and ALIASES.get(k[len(item_id) + 1:], k[len(item_id) + 1:]) == want:
                return a, {k}
        group = sub.answers.get(item_id)
        if group is not None and isinstance(group.value, dict):
            for k, v in group.value.items():
                if ALIASES.get(k, k) == want:
                    line = group.value.line_of(k) if isinstance(group.value, LineDict) else group.line
                    return Answer(v, raw_text(group.value, k, v, sub.lines), line), {item_id}
            return None, {item_id}
    return None, set()


__all__ = ["Answer", "Submission", "load_submission", "parse_submission", "lookup"]
