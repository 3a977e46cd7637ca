"""Reading answers the way students write them."""
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from cnncalc.check import parse_answer, parse_answers, parse_constraint, parse_number
from cnncalc.errors import SpecError


@pytest.mark.parametrize("text", ["55x55x96", "55 x 55 x 96", "[55, 55, 96]", [55, 55, 96], "55×55×96"])
def test_shape_forms(text):
    assert parse_answer("shape", text, str(text)) == (55, 55, 96)


@pytest.mark.parametrize("text,exact,ok", [
    (34848, 34848, True), ("34,848", 34848, True), ("34848", 34849, False),
    ("35K", 34848, True), ("36K", 34848, False), ("34.8K", 34848, True), ("34.9K", 34848, False),
    ("138M", 138_357_544, True), ("139M", 138_357_544, False), ("1.8e9", 1_790_000_000, True),
    ("3.2M", 3_249_999, True), ("3.2M", 3_250_001, False),
])
def test_number_forms(text, exact, ok):
    assert parse_answer("params", text, str(text)).matches(exact) is ok


def test_bytes_units():
    assert parse_number("61 MB", bytes_=True).matches(60_950_432)
    assert parse_number("58.1 MiB", bytes_=True).matches(60_950_432)       # 60,950,432 / 2^20 = 58.13
    assert not parse_number("58.1 MB", bytes_=True).matches(60_950_432)
    assert parse_number("60,950,432 B", bytes_=True).matches(60_950_432)


@given(st.integers(min_value=1, max_value=10**12), st.sampled_from([("K", 10**3), ("M", 10**6), ("G", 10**9)]),
       st.integers(min_value=0, max_value=3), st.integers(min_value=-10**4, max_value=10**4))
def test_rounded_answer_matches_iff_within_half_a_unit(exact, unit, digits, shift):
    """Write exact (plus a shift) as K/M/G with some decimals; it matches iff |exact − written| ≤ half
    a unit of the last digit written."""
    suffix, scale = unit
    written = Fraction(exact + shift * scale // 10**digits, scale)
    text = f"{float(round(written, digits)):.{digits}f}{suffix}"
    value = Fraction(text[:-1]) * scale
    half = Fraction(scale, 2 * 10**digits)
    assert parse_answer("macs", text, text).matches(exact) == (abs(exact - value) <= half)


def test_does_not_fit_and_not_answered():
    assert parse_answer("fits", False, "no") is False
    assert parse_answer("fits", "yes", "yes") is True
    assert parse_answer("shape", "does not fit", "does not fit") is False
    with pytest.raises(ValueError, match="not answered"):
        parse_answer("params", None, "")


def test_constraints():
    assert parse_constraint("params <= 1,000,000")[:2] == ("params", "≤")
    assert parse_constraint("receptive field ≥ 100")[0] == "rf"
    assert parse_constraint("output = 1x1x10") == ("shape", "=", (1, 1, 10))
    with pytest.raises(SpecError):
        parse_constraint("output <= 1x1x10")
    with pytest.raises(SpecError):
        parse_constraint("happiness >= 3")


def test_float_answer_keeps_the_digits_written():
    """YAML reads 1.5e+10 as a float; the precision comes from the text on the line."""
    f = parse_answers("spec: vgg16\nquestions:\n  - macs: 1.5e+10\n")
    assert f.questions[0].answer_text == "1.5e+10"


@pytest.mark.parametrize("text,line,what", [
    ("spec: vgg16\nquestions:\n  - layer: conv1_1\n    paramz: 5\n", 4, "paramz"),
    ("spec: vgg16\nquestions:\n  - {layer: conv1_1, params: 1,792}\n", 3, "comma"),
    ("spec: vgg16\nquestions:\n  - layer: conv1_1\n", 3, "no answer"),
    ("spec: vgg16\nquestions: [\n", 3, "YAML"),
    ("spec: vgg16\nquestionz: []\n", 2, "questionz"),
    ("questions:\n  - {layer: {conv: 3, kernel: 3}, shape: 3x3x3}\n", 2, "input"),
    ("spec: vgg16\nquestions:\n  - {id: a, params: 1}\n  - {id: a, macs: 1}\n", 4, "id"),
])
def test_bad_files_name_the_line(text, line, what):
    with pytest.raises(SpecError) as e:
        parse_answers(text, file="A.yaml")
    assert e.value.line == line and e.value.file == "A.yaml"
    assert what.lower() in str(e.value).lower()
