"""The pytest helper honours hidden answers: a real pytest run of a student's test file, with
--showlocals and full tracebacks, never prints an expected value when hiding is on (by argument
or by CNNCALC_HIDE_EXPECTED in a graded CI run)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRONG = ROOT / "examples" / "homework" / "WRONG.yaml"


def _pytest(tmp_path, body, env=None):
    test = tmp_path / "test_homework.py"
    test.write_text(body)
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    e.pop("CNNCALC_HIDE_EXPECTED", None) if not env else None
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "--showlocals", "--tb=long", "-p",
                           "no:cacheprovider", str(test)], capture_output=True, text=True, env=e,
                          cwd=tmp_path, timeout=300)


SNIPPET = """
import pytest
from cnncalc.check import pytest_cases

@pytest.mark.parametrize("case", pytest_cases({path!r}{extra}))
def test_homework(case):
    case.check()
"""


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_hidden_answers_never_leak_in_pytest_output(tmp_path, how):
    extra, env = (", hide_expected=True", None) if how == "argument" else ("", {"CNNCALC_HIDE_EXPECTED": "1"})
    r = _pytest(tmp_path, SNIPPET.format(path=str(WRONG), extra=extra), env)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "8 failed" in out, out[-2000:]
    assert "217x217x96" in out                       # the student's own answer is shown
    for secret in ("55x55x96", "(227 − 11)/4", "34,944"):   # the right answers are not
        assert secret not in out, secret


def test_expected_values_shown_when_not_hidden(tmp_path):
    r = _pytest(tmp_path, SNIPPET.format(path=str(WRONG), extra=""))
    assert "expected 55x55x96" in r.stdout
