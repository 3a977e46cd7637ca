"""`cnncalc erf`: the support of the gradient map is the theoretical field on every conv algorithm."""
from __future__ import annotations

import numpy as np
import pytest

import cnncalc
from cnncalc.runtime.erf import effective_field

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("algo", ["auto", "direct", "im2col", "fft"])
def test_lenet5_c3_support_is_the_theoretical_field(algo):
    # LeNet-5's C3 by hand (Araujo et al.): C1 5x5/1 -> r = 5, S = 1; S2 2x2/2 -> r = 5 + 1*1 = 6,
    # S = 2; C3 5x5/1 -> r = 6 + 4*2 = 14, S = 2, P = 0. The centre unit 5 of C3's 10-wide map
    # starts at 5*S - P = 10 and ends at 10 + 14 - 1 = 23, so the support is 14 * 14 = 196
    # pixels of the 32 * 32 = 1024 input (FFT round-off used to make it 1024).
    res = effective_field(cnncalc.load("lenet5"), "C3", samples=2, conv_algo=algo)
    assert res["field"] == [[10, 23], [10, 23]]
    assert res["field_area"] == 196
    assert res["support_area"] == 196, f"{algo}: round-off counted as support"
    m = res["map"]
    inside = np.zeros_like(m, dtype=bool)
    inside[10:24, 10:24] = True
    assert np.all(m[~inside] == 0), f"{algo}: pixels outside the field are shaded"
    assert np.all(m[inside] > 0)
