import math

import numpy as np
import pytest

from cnncalc.runtime.init import fans, init_batchnorm, init_bias, init_weight, weight_std


@pytest.mark.parametrize("kind,shape,groups,stride,expect", [
    ("fc", (120, 400), 1, 1, (400, 120)),
    ("conv", (6, 1, 5, 5), 1, 1, (1 * 25, 6 * 25)),
    ("conv", (96, 3, 11, 11), 1, 1, (3 * 121, 96 * 121)),
    # AlexNet conv2 with 2 groups: 256 filters over 96 channels → (256, 48, 5, 5)
    ("conv", (256, 48, 5, 5), 2, 1, (48 * 25, 128 * 25)),
    # depthwise 3x3 over 32 channels: each output sees 9 inputs, each input feeds 9 outputs
    ("conv", (32, 1, 3, 3), 32, 1, (9, 9)),
    # ConvTranspose 64→32, 4x4 kernel, stride 2: output pixel gets 64 ch × 16/4 taps
    ("conv_transpose", (64, 32, 4, 4), 1, 2, (64 * 4, 32 * 16)),
    ("conv_transpose", (64, 16, 3, 3), 2, 1, (32 * 9, 16 * 9)),
    ("local", (6, 6, 16, 8, 3, 3), 1, 1, (8 * 9, 16 * 9)),
])
def test_fans(kind, shape, groups, stride, expect):
    assert fans(kind, shape, groups, stride) == expect


def test_fan_errors():
    with pytest.raises(ValueError, match="cannot have 4 groups"):
        fans("conv", (6, 1, 5, 5), groups=4)
    with pytest.raises(ValueError, match="must be \\(out, in\\)"):
        fans("fc", (3, 4, 5))
    with pytest.raises(ValueError, match="unknown weight kind"):
        fans("dense", (3, 4))
    with pytest.raises(ValueError, match="unknown init scheme"):
        weight_std("orthogonal", 1, 1)


@pytest.mark.parametrize("scheme,kind,shape,groups,std", [
    ("he", "fc", (500, 2000), 1, math.sqrt(2 / 2000)),
    ("he", "conv", (256, 48, 5, 5), 2, math.sqrt(2 / 1200)),
    ("lecun", "conv", (128, 64, 3, 3), 1, math.sqrt(1 / 576)),
    ("xavier", "fc", (1000, 1000), 1, math.sqrt(2 / 2000)),
    ("xavier", "local", (8, 8, 32, 16, 3, 3), 1, math.sqrt(2 / (144 + 288))),
    ("he", "conv_transpose", (64, 128, 4, 4), 1, math.sqrt(2 / (64 * 16))),
])
def test_empirical_std_matches_formula(scheme, kind, shape, groups, std):
    w = init_weight(np.random.default_rng(0), kind, shape, scheme, groups=groups)
    assert w.shape == shape and w.dtype == np.float32
    assert w.size >= 70_000
    # sample std of n iid draws has relative standard error 1/sqrt(2n) <= 0.27 %; allow 1.5 %
    assert abs(w.std() / std - 1) < 0.015
    assert abs(w.mean()) < 5 * std / math.sqrt(w.size)


def test_xavier_is_uniform_on_the_glorot_interval():
    w = init_weight(np.random.default_rng(1), "fc", (600, 400), "xavier")
    a = math.sqrt(6 / (400 + 600))
    assert np.abs(w).max() <= a * (1 + 1e-6)
    assert np.abs(w).max() > 0.999 * a
    # uniform: a quarter of the mass in each quarter interval
    hist, _ = np.histogram(w, bins=4, range=(-a, a))
    assert np.allclose(hist / w.size, 0.25, atol=0.005)


def test_he_is_normal_not_uniform():
    w = init_weight(np.random.default_rng(2), "fc", (1000, 1000), "he").astype(np.float64)
    z = w / math.sqrt(2 / 1000)
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005     # N(0,1) mass within 1 sigma
    assert abs(np.mean(z ** 4) - 3) < 0.05                   # kurtosis of a normal


def test_deterministic_by_seed():
    a = init_weight(np.random.default_rng(7), "conv", (16, 3, 3, 3), "he")
    b = init_weight(np.random.default_rng(7), "conv", (16, 3, 3, 3), "he")
    c = init_weight(np.random.default_rng(8), "conv", (16, 3, 3, 3), "he")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    rng = np.random.default_rng(7)
    first = init_weight(rng, "conv", (16, 3, 3, 3), "he")
    second = init_weight(rng, "conv", (16, 3, 3, 3), "he")   # consumes the stream
    assert np.array_equal(first, a) and not np.array_equal(second, a)


def test_bias_and_batchnorm():
    assert init_bias(5).tolist() == [0.0] * 5 and init_bias(5).dtype == np.float32
    bn = init_batchnorm(3)
    assert bn["gamma"].tolist() == [1, 1, 1] and bn["beta"].tolist() == [0, 0, 0]
    assert bn["running_mean"].tolist() == [0, 0, 0] and bn["running_var"].tolist() == [1, 1, 1]
