"""evaluate() keeps the values it computed by source, limits and the values of the names the
expression reads (cnncalc.spec.expr): a kept value must never stand in for a different one."""
import pytest

from cnncalc import limits
from cnncalc.spec.expr import ExprError, evaluate


def test_equal_but_different_values_are_told_apart():
    # True == 1 and hash(True) == hash(1): the value read keeps its own type
    assert evaluate("x", {"x": True}) is True
    assert type(evaluate("x", {"x": 1})) is int          # not the True computed just before
    assert evaluate("x", {"x": False}) is False
    assert type(evaluate("x", {"x": 0})) is int
    assert evaluate("x * 2", {"x": "ab"}) == "abab"       # a str value: its own entry
    assert evaluate("x * 2", {"x": 3}) == 6
    # a name absent from one scope and present in another
    with pytest.raises(ExprError, match="unknown name 'y'"):
        evaluate("y + 1", {})
    assert evaluate("y + 1", {"y": 1}) == 2
    with pytest.raises(ExprError, match="unknown name 'y'"):
        evaluate("y + 1", {"n": 1})


def test_floats_and_lists_are_computed_each_time():
    assert str(evaluate("x * 1", {"x": -0.0})) == "-0.0"   # -0.0 == 0.0: not kept by value
    assert str(evaluate("x * 1", {"x": 0.0})) == "0.0"
    assert evaluate("max(x, 2)", {"x": 5}) == 5


def test_a_lowered_limit_applies_to_an_expression_computed_before(monkeypatch):
    assert evaluate("10 ** 5", {}) == 100000
    monkeypatch.setenv("CNNCALC_LIMIT_INT_DIGITS", "3")   # 10^3: 100000 has too many digits
    limits.reload()
    try:
        with pytest.raises(ExprError, match="more than 3 digits"):
            evaluate("10 ** 5", {})
    finally:
        monkeypatch.delenv("CNNCALC_LIMIT_INT_DIGITS")
        limits.reload()
    assert evaluate("10 ** 5", {}) == 100000
