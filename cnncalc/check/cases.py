"""One pytest test per question of an answer file, without any plugin magic::

    import pytest
    from cnncalc.check import pytest_cases

    @pytest.mark.parametrize("case", pytest_cases("ANSWERS.yaml"))
    def test_homework(case):
        case.check()

The file is read (and validated) at collection time; each question is graded when its test
runs. Networks are shared between the cases of one file, so each is analysed once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cnncalc.check.answers import Question, load_answers
from cnncalc.check.grade import Grader, Outcome


@dataclass
class Case:
    question: Question
    grader: Grader
    hide_expected: bool = False

    @property
    def id(self) -> str:
        return self.question.id

    def outcome(self) -> Outcome:
        return self.grader.grade(self.question)

    def check(self) -> Outcome | None:
        """Grade the question; AssertionError with the reason when the answer is wrong. With
        ``hide_expected`` neither the message nor the traceback (pytest hides this frame, even
        with --showlocals) shows the expected value, and nothing is returned."""
        __tracebackhide__ = self.hide_expected  # noqa: F841 (read by pytest)
        msg = self._failure()
        if msg is not None:
            raise AssertionError(msg)
        return None if self.hide_expected else self.outcome()

    def _failure(self) -> str | None:
        o = self.outcome()
        if o.passed:
            return None
        q = self.question
        msg = f"{q.file}:{q.line}: {q.label}: answered {q.answer_text or '(nothing)'!s}"
        if o.note:
            msg += f" ({o.note})"
        if not self.hide_expected:
            msg += f"; expected {o.expected}"
            if o.arithmetic:
                msg += f" [{o.arithmetic}]"
        return msg

    def __repr__(self) -> str:
        return f"<Case {self.id}>"


def pytest_cases(path: str | Path, hide_expected: bool | None = None) -> list:
    """The questions of ``path`` as ``pytest.param(case, id=question id)`` (plain Cases when
    pytest is not installed). ``hide_expected``: failure messages say only what was answered,
    never the expected value or its arithmetic; by default it is on when the environment
    variable CNNCALC_HIDE_EXPECTED is set to anything but "" or "0" (a graded CI run)."""
    if hide_expected is None:
        hide_expected = os.environ.get("CNNCALC_HIDE_EXPECTED", "") not in ("", "0")
    answers = load_answers(path)
    grader = Grader(answers)
    cases = [Case(q, grader, hide_expected) for q in answers.questions]
    try:
        import pytest
    except ImportError:  # pragma: no cover
        return cases
    return [pytest.param(c, id=c.id) for c in cases]
