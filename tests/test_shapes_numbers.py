"""Shape strings and numbers as people write them."""
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from cnncalc.numbers import parse_quantity, round_as
from cnncalc.shapes import fmt_shape, parse_shape


@pytest.mark.parametrize("text,shape", [
    ("224x224x3", (224, 224, 3)), ("224×224×3", (224, 224, 3)), ("[55, 55, 96]", (55, 55, 96)),
    ("56x300", (56, 300)), ("4096", (4096,)), ([7, 7, 512], (7, 7, 512)), (10, (10,)),
    ("16x112x112x3", (16, 112, 112, 3)),  # DxHxWxC: a video clip (C3D)
])
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("bad", ["224x224x", "abc", "0x3", "1x2x3x4x5", True, [1.5, 2]])
def test_parse_shape_rejects(bad):
    with pytest.raises(ValueError):
        parse_shape(bad)


def test_fmt_shape_like_the_slides():
    assert fmt_shape((224, 224, 64)) == "224x224x64"
    assert fmt_shape((4096,)) == "[4096]"


@given(st.tuples(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 5000)))
def test_shape_round_trip(shape):
    assert parse_shape(fmt_shape(shape)) == shape


@pytest.mark.parametrize("text,exact,ok", [
    ("35K", 34_848, True),          # AlexNet CONV1: (11*11*3)*96 = 34,848 ≈ 35K (CS231n slide)
    ("36K", 34_848, False),
    ("34,848", 34_848, True), ("34848", 34_849, False),
    ("138M", 138_357_544, True),    # VGG-16 total (Simonyan & Zisserman, Table 2)
    ("3.8x10^9", 3_860_000_000, False), ("3.8×10^9", 3_840_000_000, True),
    ("1.8e9", 1_814_073_344, True), ("94.86%", Fraction(9486, 100), True),
    ("3.2M", 3_211_264, True),      # 224*224*64 = 3,211,264 ≈ 3.2M (VGG slide memory)
])
def test_quantity_precision_as_written(text, exact, ok):
    assert parse_quantity(text).matches(exact) is ok


def test_binary_k():
    # 159K with K = 1024 is 162,816 ± 512
    q = parse_quantity("159K", binary=True)
    assert q.matches(159 * 1024) and not q.matches(159_000)


@given(st.integers(1, 10**12), st.sampled_from(["K", "M", "G"]), st.integers(0, 3))
def test_quantity_matches_iff_within_half_a_unit(n, suffix, decimals):
    unit = 1000 ** ("KMG".index(suffix) + 1)
    written = f"{n / unit:.{decimals}f}{suffix}"
    q = parse_quantity(written)
    half = Fraction(unit, 2 * 10 ** decimals)
    assert q.matches(n) == (abs(Fraction(n) - Fraction(written[:-1]) * unit) <= half)
    assert q.matches(n)  # Python's own rounding to that precision is within half a unit
    assert parse_quantity(round_as(n, q)).matches(n)


@pytest.mark.parametrize("bad", ["abc", "1.2.3", "", "12Q", True])
def test_quantity_rejects(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)
