"""Numbers as people write them, matched at the precision they were written.

``35K`` means 35,000 ± 500 (the last digit written is thousands), so it matches 34,848 and
``36K`` does not; ``138M`` is 138,000,000 ± 500,000; ``3.8e9`` and ``3.8×10^9`` are
3.8·10⁹ ± 0.05·10⁹; ``34,848`` is exact; ``94.86%`` is 94.86 ± 0.005 percent.
K/M/G are powers of 1000 unless ``binary=True`` (K = 1024, as some tables use).
All arithmetic is in exact fractions: no float rounding can decide a match.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from cnncalc.errors import short

_SUFFIX = {"": 0, "k": 1, "m": 2, "g": 3, "b": 3, "t": 4}
_RE = re.compile(
    r"""^\s*~?\s*(?P<sign>[-+])?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
        \s*(?:(?:e|E)(?P<exp>[-+]?\d+)|\s*(?:[x×*]|\\times)\s*10\s*(?:\^|\*\*)\s*\{?(?P<exp2>[-+]?\d+)\}?)?
        \s*(?P<suffix>[kKmMgGbBtT]|%)?\s*$""", re.VERBOSE)


@dataclass(frozen=True)
class Quantity:
    text: str
    value: Fraction
    tolerance: Fraction  # half a unit of the last digit written; 0 for exact integers
    percent: bool = False

    def matches(self, exact) -> bool:
        return abs(Fraction(exact) - self.value) <= self.tolerance

    @property
    def exact(self) -> bool:
        return self.tolerance == 0


# The forms, with N for a digit: no example number that could be (or be taken for) an expected
# answer, so the hint reveals nothing under --hide-expected.
NUMBER_FORMS = ("write it as digits (NNNNN), with thousands commas (NN,NNN), with a suffix "
                "(NNK, N.NM, NNG), in scientific notation (N.Ne9) or as a percentage (NN.NN%)")


def parse_quantity(text, binary: bool = False) -> Quantity:
    """Parse ``34848``, ``34,848``, ``35K``, ``138M``, ``1.8e9``, ``3.8×10^9``, ``94.86%``.

    Raises ValueError for anything else.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a number")
    if isinstance(text, int):
        return Quantity(str(text), Fraction(text), Fraction(0))
    if isinstance(text, float):
        text = repr(text)
    s = str(text).strip()
    m = _RE.match(s)
    if not m:
        raise ValueError(f"{short(text)} is not a number; {NUMBER_FORMS}")
    num = m.group("num").replace(",", "")
    decimals = len(num.split(".")[1]) if "." in num else 0
    value = Fraction(num)
    if m.group("sign") == "-":
        value = -value
    exp = m.group("exp") or m.group("exp2")
    scale = Fraction(10) ** int(exp) if exp else Fraction(1)
    suffix = m.group("suffix") or ""
    percent = suffix == "%"
    if suffix and not percent:
        base = 1024 if binary else 1000
        scale *= Fraction(base) ** _SUFFIX[suffix.lower()]
    # tolerance: half of the last written digit, in the scaled unit; an integer with no
    # suffix/exponent is exact
    if decimals == 0 and scale == 1 and not percent:
        tol = Fraction(0)
    else:
        tol = Fraction(1, 2) * Fraction(1, 10 ** decimals) * scale
    return Quantity(s, value * scale, tol, percent)


def round_as(exact, like: Quantity, binary: bool = False) -> str:
    """Write ``exact`` with the digits and unit of ``like``: round_as(34848, <35K>) → '35K',
    round_as(138357544, <138M>) → '138M'; what a table would have printed for the exact value."""
    m = _RE.match(like.text)
    if m is None:  # pragma: no cover - like was produced by parse_quantity
        return str(exact)
    num = m.group("num").replace(",", "")
    decimals = len(num.split(".")[1]) if "." in num else 0
    exp = m.group("exp") or m.group("exp2")
    suffix = m.group("suffix") or ""
    scale = Fraction(10) ** int(exp) if exp else Fraction(1)
    if suffix and suffix != "%":
        scale *= Fraction(1024 if binary else 1000) ** _SUFFIX[suffix.lower()]
    v = Fraction(exact) / scale
    q = round(v * 10 ** decimals)
    body = f"{q / 10 ** decimals:.{decimals}f}" if decimals else f"{q:,}" if "," in m.group("num") else str(q)
    if exp:
        sep = "e" if m.group("exp") else "×10^"
        return f"{body}{sep}{exp}{suffix}"
    return body + suffix
