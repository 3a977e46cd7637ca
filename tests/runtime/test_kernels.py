"""Kernel tests: numerical gradients, conv algorithm agreement, hand-computed golden values.

Gradient checks use a scalar probe loss ``L = sum(f(theta) * R)`` with a fixed random
``R``; the analytic gradient is ``backward(R)`` and the numerical one centred differences
in float64 over *every* element.  The error measure is the norm-wise relative error
``||a - n|| / (||a|| + ||n||)``, required <= 1e-7.  Inputs avoid ReLU kinks (|x| >= 0.1)
and max ties (values a permutation of a grid with spacing >> h).
"""
from __future__ import annotations

import numpy as np
import pytest

from cnncalc.runtime import _numba
from cnncalc.runtime.kernels import activation as act
from cnncalc.runtime.kernels import conv, dense, loss, norm, pool

H_STEP = 1e-5
TOL = 1e-7


# ----------------------------------------------------------------------------- helpers
def rel_error(a, n):
    a = np.asarray(a, np.float64).ravel()
    n = np.asarray(n, np.float64).ravel()
    den = np.linalg.norm(a) + np.linalg.norm(n)
    return 0.0 if den == 0 else float(np.linalg.norm(a - n) / den)


def num_grad(f, arr, h=H_STEP):
    """Centred differences of the scalar ``f()`` w.r.t. every element of ``arr`` (in place).

    Runs numba single-threaded: thousands of tiny parallel-region launches are slow on a
    loaded 2-core box.  The analytic side still runs with all threads."""
    g = np.zeros_like(arr)
    flat, gflat = arr.reshape(-1), g.reshape(-1)
    threads = _numba.get_threads()
    _numba.numba.set_num_threads(1)
    try:
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            fp = f()
            flat[i] = old - h
            fm = f()
            flat[i] = old
            gflat[i] = (fp - fm) / (2 * h)
    finally:
        _numba.numba.set_num_threads(threads)
    return g


def check_layer(fwd, bwd, arrays, probe_seed=0):
    """``fwd(*arrays) -> (y, cache)``, ``bwd(dy, cache) -> grad or tuple of grads``
    (matching ``arrays``, None entries skipped).  Returns the worst relative error."""
    y, cache = fwd(*arrays)
    R = np.random.default_rng(probe_seed).standard_normal(y.shape)
    grads = bwd(R, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    worst = 0.0
    for arr, ga in zip(arrays, grads):
        if ga is None:
            continue
        assert ga.shape == arr.shape
        gn = num_grad(lambda: float(np.sum(fwd(*arrays)[0] * R)), arr)
        worst = max(worst, rel_error(ga, gn))
    return worst


def rng(seed=0):
    return np.random.default_rng(seed)


def away_from_zero(r, shape, lo=0.1):
    return np.sign(r.standard_normal(shape)) * (lo + np.abs(r.standard_normal(shape)))


def distinct(r, shape, scale=4.0):
    n = int(np.prod(shape))
    return (r.permutation(n).reshape(shape) / n - 0.5) * scale


# (N, C, H, W, F, groups, kernel, stride, pad, dilation)
CONV_CASES = [
    pytest.param(2, 1, 12, 12, 3, 1, (5, 5), (1, 1), 0, (1, 1), id="lenet-like"),
    pytest.param(2, 3, 10, 9, 4, 1, (3, 3), (2, 2), ((1, 0), (0, 1)), (1, 1), id="stride2-floor-asympad"),
    pytest.param(1, 4, 11, 10, 6, 2, (3, 2), (3, 2), ((2, 1), (0, 2)), (2, 3), id="groups-dilation-asym"),
    pytest.param(2, 4, 8, 8, 4, 4, (3, 3), (1, 1), 1, (1, 1), id="depthwise"),
    pytest.param(2, 3, 7, 7, 6, 3, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), id="depthwise-mult2-stride2"),
    pytest.param(2, 5, 6, 6, 3, 1, (1, 1), (1, 1), 0, (1, 1), id="pointwise"),
    pytest.param(1, 2, 14, 13, 3, 1, (7, 7), (1, 1), 3, (1, 1), id="large-kernel"),
    pytest.param(1, 2, 5, 5, 2, 1, (5, 5), (1, 1), 0, (1, 1), id="kernel-covers-input"),
    pytest.param(1, 2, 9, 10, 2, 1, (2, 2), (3, 3), 0, (1, 1), id="stride-gt-kernel"),
    pytest.param(2, 2, 9, 8, 4, 2, (3, 3), (2, 3), ((0, 2), (1, 0)), (2, 1), id="all-at-once"),
    # im2col's data gradient as the flipped-kernel conv of dY (asymmetric pads, dilation) ...
    pytest.param(2, 3, 9, 8, 3, 1, (3, 3), (1, 1), ((2, 1), (0, 2)), (1, 2), id="flip-dx-asym-dilated"),
    # ... and the fold, when a padding is wider than the kernel's reach (rows never read)
    pytest.param(2, 3, 6, 6, 3, 1, (3, 3), (1, 1), ((3, 0), (1, 1)), (1, 1), id="pad-wider-than-kernel"),
    # im2col's row unfold (stride 1, kw >= 5, C*kh >= 64): forward, flipped dX and dW, with
    # dilation along the width (the shifted sum) and the height (the row offsets)
    pytest.param(1, 13, 9, 8, 3, 1, (5, 5), (1, 1), ((2, 1), (0, 2)), (1, 2), id="rows-asym-dilated"),
    pytest.param(2, 16, 8, 9, 2, 1, (5, 7), (1, 1), 3, (2, 1), id="rows-7-wide-hdilated"),
]


def make_conv(N, C, H, W, F, groups, kernel, seed=0, dtype=np.float64):
    r = rng(seed)
    x = r.standard_normal((N, C, H, W)).astype(dtype)
    w = r.standard_normal((F, C // groups) + tuple(kernel)).astype(dtype)
    b = r.standard_normal(F).astype(dtype)
    return x, w, b


# ----------------------------------------------------------------------------- conv
@pytest.mark.parametrize("algo", conv.ALGOS)
@pytest.mark.parametrize("N,C,H,W,F,groups,kernel,stride,pad,dilation", CONV_CASES)
def test_conv2d_numerical_gradient(algo, N, C, H, W, F, groups, kernel, stride, pad, dilation):
    x, w, b = make_conv(N, C, H, W, F, groups, kernel)
    err = check_layer(
        lambda x, w, b: conv.conv2d_forward(x, w, b, stride, pad, dilation, groups, algo),
        conv.conv2d_backward, [x, w, b])
    assert err <= TOL


@pytest.mark.parametrize("algo", conv.ALGOS)
def test_conv2d_untied_bias_gradient(algo):
    x, w, _ = make_conv(2, 3, 7, 6, 4, 1, (3, 3))
    OH, OW = conv.conv2d_output_size(7, 6, 3, 2, ((1, 0), (0, 1)), 1)
    b = rng(5).standard_normal((4, OH, OW))
    err = check_layer(lambda x, w, b: conv.conv2d_forward(x, w, b, 2, ((1, 0), (0, 1)), 1, 1, algo),
                      conv.conv2d_backward, [x, w, b])
    assert err <= TOL
    y, _ = conv.conv2d_forward(x, w, b, 2, ((1, 0), (0, 1)), 1, 1, algo)
    y0, _ = conv.conv2d_forward(x, w, None, 2, ((1, 0), (0, 1)), 1, 1, algo)
    np.testing.assert_allclose(y - y0, np.broadcast_to(b, y.shape), atol=1e-12)


@pytest.mark.parametrize("N,C,H,W,F,groups,kernel,stride,pad,dilation", CONV_CASES)
@pytest.mark.parametrize("dtype,rtol", [
    (np.float64, 1e-10),
    # float32 compiles every algorithm a second time (~25 CPU-seconds cold): the slow group;
    # the fast run's training and verify tests run the float32 kernels they pick
    pytest.param(np.float32, 1e-5, marks=pytest.mark.slow),
])
def test_conv2d_algorithms_agree(dtype, rtol, N, C, H, W, F, groups, kernel, stride, pad, dilation):
    x, w, b = make_conv(N, C, H, W, F, groups, kernel, seed=3, dtype=dtype)
    results = {}
    for algo in conv.ALGOS:
        y, cache = conv.conv2d_forward(x, w, b, stride, pad, dilation, groups, algo)
        assert y.dtype == dtype
        dy = np.cos(np.arange(y.size, dtype=np.float64)).reshape(y.shape).astype(dtype)
        dx, dw, db = conv.conv2d_backward(dy, cache)
        assert dx.dtype == dw.dtype == dtype
        results[algo] = (y, dx, dw, db)
    ref = results["direct"]
    for algo in ("im2col", "fft"):
        for name, a, r in zip(("y", "dx", "dw", "db"), results[algo], ref):
            scale = max(1.0, float(np.abs(r).max()))
            np.testing.assert_allclose(a, r, rtol=rtol, atol=rtol * scale, err_msg=f"{algo} {name}")


@pytest.mark.parametrize("keep_bytes", [0, 64 << 20])
@pytest.mark.parametrize("N,C,H,W,F,kernel,pad", [
    (5, 3, 18, 18, 4, 3, 1),   # one tile holds the batch
    (9, 4, 32, 32, 6, 5, 0),   # LeNet's C1 shape with 4 channels: several tiles of one image
])
def test_tiled_im2col_weight_grad_kept_or_unfolded_again(monkeypatch, keep_bytes, N, C, H, W, F, kernel, pad):
    """The tiled im2col's weight gradient from the columns the training forward kept (up to
    TILE_KEEP_BYTES) or unfolded again tile by tile, each a batched product summed over the
    images: the direct conv's gradients."""
    monkeypatch.setattr(conv, "TILE_KEEP_BYTES", keep_bytes)
    x, w, b = make_conv(N, C, H, W, F, 1, (kernel, kernel), seed=5, dtype=np.float64)
    y, cache = conv.conv2d_forward(x, w, b, 1, pad, 1, 1, "im2col", keep_cols=True)
    assert conv._tiles(*y.shape[2:], w.shape)
    assert (cache.cols is not None) == (keep_bytes > 0)
    dy = np.sin(np.arange(y.size, dtype=np.float64)).reshape(y.shape)
    got = conv.conv2d_backward(dy, cache)
    yr, cr = conv.conv2d_forward(x, w, b, 1, pad, 1, 1, "direct")
    ref = conv.conv2d_backward(dy, cr)
    np.testing.assert_allclose(y, yr, rtol=1e-10, atol=1e-10)
    for name, a, r in zip(("dx", "dw", "db"), got, ref):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10 * max(1.0, float(np.abs(r).max())), err_msg=name)


def test_im2col_data_grad_path_choice():
    """The two CONV_CASES above exercise the two data-gradient paths of im2col they name."""
    def flip(H, W, F, C, k, pads, dil):
        OH, OW = conv.conv2d_output_size(H, W, k, 1, pads, dil)
        fp = conv._flip_pads((F, C) + k, pads, dil)
        return conv._flip_pays((1, F, OH, OW), (F, C) + k, (1, 1), 1, (H, W), fp)

    # OH = 9 + 3 - 1*2 = 10, OW = 8 + 2 - 2*2 = 6; unfolded dY 3*9*8 = 216 <= 1.5 * 3*10*6 = 270
    assert flip(9, 8, 3, 3, (3, 3), ((2, 1), (0, 2)), (1, 2))
    assert conv._flip_pads((3, 3, 3, 3), ((2, 1), (0, 2)), (1, 2)) == ((0, 1), (4, 2))
    # top pad 3 > the kernel's reach 2: dY would need a negative pad -> the fold
    assert conv._flip_pads((3, 3, 3, 3), ((3, 0), (1, 1)), (1, 1)) is None
    assert not flip(6, 6, 3, 3, (3, 3), ((3, 0), (1, 1)), (1, 1))
    # LeNet's C3 (6->16 5x5 on 14x14): unfolded dY 16*14*14 = 3136 > 1.5 * 6*10*10 = 900 -> the fold
    assert not flip(14, 14, 16, 6, (5, 5), ((0, 0), (0, 0)), (1, 1))


def test_im2col_row_unfold_path_choice():
    """The two "rows-" CONV_CASES take the row unfold (and its flipped dX); LeNet's convs,
    3x3 kernels and strided convs keep im2col's column unfold."""
    assert conv._rows_pays((3, 13, 5, 5), (1, 1), 1)  # 13 channels * 5 rows = 65 >= 64
    assert conv._rows_pays((2, 16, 5, 7), (1, 1), 1)
    assert conv._flip_pays((1, 3, 8, 2), (3, 13, 5, 5), (1, 1), 1, (9, 8),
                           conv._flip_pads((3, 13, 5, 5), ((2, 1), (0, 2)), (1, 2)))
    assert not conv._rows_pays((16, 6, 5, 5), (1, 1), 1)  # LeNet C3: 6 * 5 = 30 rows
    assert not conv._rows_pays((6, 1, 5, 5), (1, 1), 1)  # LeNet C1
    assert not conv._rows_pays((64, 64, 3, 3), (1, 1), 1)  # 3x3: kept on the column unfold
    assert not conv._rows_pays((64, 3, 7, 7), (2, 2), 1)  # strided
    assert not conv._rows_pays((16, 16, 7, 7), (1, 1), 2)  # grouped


def test_conv2d_output_size_floor():
    assert conv.conv2d_output_size(10, 9, 3, 2, ((1, 0), (0, 1)), 1) == (5, 4)
    assert conv.conv2d_output_size(224, 224, 11, 4, 2, 1) == (55, 55)
    # (11 + 3 - 2*2 - 1) // 3 + 1 = 4 ; (10 + 2 - 3*1 - 1) // 2 + 1 = 5
    assert conv.conv2d_output_size(11, 10, (3, 2), (3, 2), ((2, 1), (0, 2)), (2, 3)) == (4, 5)


def test_conv2d_golden_hand_computed():
    # x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]], b = 1, valid, stride 1:
    # y00 = 1*1 + 2*2 + 3*4 + 4*5 + 1 = 38      y01 = 1*2 + 2*3 + 3*5 + 4*6 + 1 = 48
    # y10 = 1*4 + 2*5 + 3*7 + 4*8 + 1 = 68      y11 = 1*5 + 2*6 + 3*8 + 4*9 + 1 = 78
    x = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    b = np.array([1.0])
    # dY = ones: dX = full correlation of dY with the flipped kernel = sum of the taps
    # that touch each pixel: [[1, 1+2, 2], [1+3, 1+2+3+4, 2+4], [3, 3+4, 4]];
    # dW[i,j] = sum of the window it multiplies: [[1+2+4+5, 2+3+5+6], [4+5+7+8, 5+6+8+9]]
    for algo in conv.ALGOS:
        y, cache = conv.conv2d_forward(x, w, b, algo=algo)
        np.testing.assert_allclose(y[0, 0], [[38, 48], [68, 78]], atol=1e-12)
        dx, dw, db = conv.conv2d_backward(np.ones_like(y), cache)
        np.testing.assert_allclose(dx[0, 0], [[1, 3, 2], [4, 10, 6], [3, 7, 4]], atol=1e-12)
        np.testing.assert_allclose(dw[0, 0], [[12, 16], [24, 28]], atol=1e-12)
        np.testing.assert_allclose(db, [4.0])
    # 3x3 ones kernel, stride 2, pad 1 on the same x: window sums of the 2x2 corners
    # (0,0): 1+2+4+5 = 12, (0,1): 2+3+5+6 = 16, (1,0): 4+5+7+8 = 24, (1,1): 5+6+8+9 = 28
    for algo in conv.ALGOS:
        y, _ = conv.conv2d_forward(x, np.ones((1, 1, 3, 3)), None, 2, 1, algo=algo)
        np.testing.assert_allclose(y[0, 0], [[12, 16], [24, 28]], atol=1e-12)


def test_gradient_checker_can_fail():
    # a plausible bug -- forgetting to flip, i.e. returning dW rotated by 180 degrees --
    # must be caught by the same measure the tests use
    x, w, b = make_conv(1, 2, 6, 6, 2, 1, (3, 3))

    def bad_bwd(dy, cache):
        dx, dw, db = conv.conv2d_backward(dy, cache)
        return dx, dw[:, :, ::-1, ::-1], db

    err = check_layer(lambda x, w, b: conv.conv2d_forward(x, w, b, 1, 1, algo="direct"),
                      bad_bwd, [x, w, b])
    assert err > 1e-2


@pytest.mark.parametrize("algo", conv.ALGOS)
def test_conv1d_gradient_and_matches_2d(algo):
    r = rng(7)
    x = r.standard_normal((2, 4, 13))
    w = r.standard_normal((6, 2, 3))
    b = r.standard_normal(6)
    fwd = lambda x, w, b: conv.conv1d_forward(x, w, b, 2, (2, 1), 2, 2, algo)  # noqa: E731
    y, _ = fwd(x, w, b)
    y2, _ = conv.conv2d_forward(x[:, :, None], w[:, :, None], b, (1, 2), ((0, 0), (2, 1)), (1, 2), 2, algo)
    np.testing.assert_allclose(y, y2[:, :, 0], atol=1e-12)
    assert check_layer(fwd, conv.conv1d_backward, [x, w, b]) <= TOL


@pytest.mark.parametrize("algo", conv.ALGOS)
@pytest.mark.parametrize(
    "Cin,F,groups,kernel,stride,pad,dilation,opad",
    [
        (3, 2, 1, (3, 3), (2, 2), 1, (1, 1), (1, 1)),
        (4, 6, 2, (3, 2), (2, 3), ((1, 0), (0, 2)), (1, 2), (1, 2)),
        (2, 2, 2, (4, 4), (2, 2), 1, (1, 1), 0),
    ],
)
def test_conv_transpose2d_gradient(algo, Cin, F, groups, kernel, stride, pad, dilation, opad):
    r = rng(11)
    x = r.standard_normal((2, Cin, 4, 5))
    w = r.standard_normal((Cin, F // groups) + kernel)
    b = r.standard_normal(F)
    fwd = lambda x, w, b: conv.conv_transpose2d_forward(x, w, b, stride, pad, dilation, groups, opad, algo)  # noqa: E731
    y, _ = fwd(x, w, b)
    assert y.shape[2:] == conv.conv_transpose2d_output_size(4, 5, kernel, stride, pad, dilation, opad)
    assert check_layer(fwd, conv.conv_transpose2d_backward, [x, w, b]) <= TOL


def test_conv_transpose2d_golden():
    # one input pixel of value 2 stamps 2*kernel; stride 2 with a 2x2 ones kernel
    # replicates every pixel into a 2x2 block (nearest-neighbour upsampling)
    k = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    for algo in conv.ALGOS:
        y, _ = conv.conv_transpose2d_forward(np.full((1, 1, 1, 1), 2.0), k, algo=algo)
        np.testing.assert_allclose(y[0, 0], [[2, 4], [6, 8]], atol=1e-12)
        x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
        y, _ = conv.conv_transpose2d_forward(x, np.ones((1, 1, 2, 2)), None, 2, algo=algo)
        np.testing.assert_allclose(y[0, 0], np.kron(x[0, 0], np.ones((2, 2))), atol=1e-12)


def test_locally_connected_gradient_and_tied_equals_conv():
    r = rng(13)
    x = r.standard_normal((2, 3, 7, 6))
    stride, pad, dil = (2, 1), ((1, 0), (0, 1)), (1, 2)
    OH, OW = conv.conv2d_output_size(7, 6, (3, 2), stride, pad, dil)
    w = r.standard_normal((OH, OW, 4, 3, 3, 2))
    b = r.standard_normal((OH, OW, 4))
    fwd = lambda x, w, b: conv.locally_connected2d_forward(x, w, b, stride, pad, dil)  # noqa: E731
    assert check_layer(fwd, conv.locally_connected2d_backward, [x, w, b]) <= TOL
    # with the same filter at every position it is an ordinary conv (untied bias)
    wc = r.standard_normal((4, 3, 3, 2))
    y_lc, _ = conv.locally_connected2d_forward(x, np.broadcast_to(wc, (OH, OW) + wc.shape), b, stride, pad, dil)
    y_c, _ = conv.conv2d_forward(x, wc, b.transpose(2, 0, 1), stride, pad, dil, algo="direct")
    np.testing.assert_allclose(y_lc, y_c, atol=1e-12)


def test_conv_float32_default_dtype():
    x = np.ones((1, 1, 4, 4), dtype=np.int64)
    y, cache = conv.conv2d_forward(x, np.ones((1, 1, 3, 3)), np.zeros(1))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 9.0)
    dx, dw, db = conv.conv2d_backward(np.ones_like(y), cache)
    assert dx.dtype == dw.dtype == db.dtype == np.float32


def test_conv_bad_args():
    with pytest.raises(ValueError):
        conv.conv2d_forward(np.ones((1, 3, 5, 5)), np.ones((4, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError):
        conv.conv2d_forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), algo="gemm")
    with pytest.raises(ValueError):
        conv.conv2d_forward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)))


def test_choose_algo_returns_known():
    assert conv.choose_algo((8, 64, 56, 56), (64, 64, 3, 3)) == "winograd"
    assert conv.choose_algo((8, 32, 56, 56), (32, 1, 3, 3), groups=32) == "depthwise"
    assert conv.choose_algo((8, 32, 16, 16), (32, 32, 5, 5)) == "im2col"
    assert conv.choose_algo((4, 16, 32, 32), (16, 16, 9, 9)) == "fft"
    assert conv.choose_algo((4, 16, 32, 32), (16, 16, 9, 9), stride=2) == "im2col"
    assert conv.choose_algo((4, 16, 9, 9), (16, 16, 9, 9)) == "im2col"  # a 1x1 output: a GEMM
    assert conv.choose_algo((8, 64, 32, 32), (64, 64, 3, 3)) == "winograd"
    assert conv.choose_algo((8, 64, 4, 4), (64, 64, 3, 3)) == "im2col"  # winograd_pays: too small
    assert conv.choose_algo((8, 64, 32, 32), (64, 64, 3, 3), stride=2) == "im2col"
    # auto dispatch gives the same numbers as the explicit algorithm
    x, w, b = make_conv(2, 3, 9, 9, 4, 1, (5, 5))
    np.testing.assert_allclose(conv.conv2d_forward(x, w, b, 1, 2)[0],
                               conv.conv2d_forward(x, w, b, 1, 2, algo="direct")[0], atol=1e-10)


# ----------------------------------------------------------------------------- pooling
POOL_CASES = [
    pytest.param((3, 3), (2, 2), 1, None, id="k3s2p1"),
    pytest.param((2, 3), (2, 1), ((0, 1), (1, 1)), None, id="asym"),
    pytest.param((3, 3), (2, 2), 0, "ceil", id="ceil-clipped"),
    pytest.param((2, 2), (3, 3), 0, None, id="stride-gt-kernel"),
]


@pytest.mark.parametrize("kernel,stride,pad,mode", POOL_CASES)
def test_maxpool_gradient(kernel, stride, pad, mode):
    x = distinct(rng(1), (2, 3, 8, 7))
    out = pool.pool_output_size(8, 7, kernel, stride, pad, ceil_mode=mode == "ceil")
    fwd = lambda x: pool.maxpool2d_forward(x, kernel, stride, pad, out)  # noqa: E731
    assert check_layer(fwd, pool.pool2d_backward, [x]) <= TOL


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("kernel,stride,pad,mode", POOL_CASES)
def test_avgpool_gradient(kernel, stride, pad, mode, include_pad):
    x = rng(2).standard_normal((2, 3, 8, 7))
    out = pool.pool_output_size(8, 7, kernel, stride, pad, ceil_mode=mode == "ceil")
    fwd = lambda x: pool.avgpool2d_forward(x, kernel, stride, pad, out, include_pad)  # noqa: E731
    assert check_layer(fwd, pool.pool2d_backward, [x]) <= TOL



def _avgpool_bwd_cell_walk(dout, xshape, kernel, stride, pads, count_include_pad):
    """The reference: walk the pooled cells in row-major order, each adding its share
    (dout x its reciprocal divisor, in dout's dtype) to every input cell of its clipped window."""
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = kernel, stride, pads
    H, W = xshape[2:]
    dx = np.zeros(xshape, dout.dtype)
    for oh in range(dout.shape[2]):
        for ow in range(dout.shape[3]):
            r0, c0 = oh * sh - pt, ow * sw - pl
            r1, c1 = min(r0 + kh, H + pb), min(c0 + kw, W + pr)
            a, b, c, d = max(r0, 0), min(r1, H), max(c0, 0), min(c1, W)
            cnt = (r1 - r0) * (c1 - c0) if count_include_pad else max(b - a, 0) * max(d - c, 0)
            if cnt <= 0:
                continue
            share = dout[:, :, oh, ow] * dout.dtype.type(1.0 / cnt)
            for r in range(a, b):
                for q in range(c, d):
                    dx[:, :, r, q] += share
    return dx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("kernel,stride,pad,ceil", [
    ((3, 3), (1, 1), ((1, 1), (1, 1)), False),   # GoogLeNet's branch pool (the linear copy's)
    ((3, 3), (2, 2), ((0, 0), (0, 0)), True),    # ceil mode: the last window clipped
    ((3, 2), (1, 2), ((1, 0), (0, 1)), True),    # asymmetric kernel, stride and padding
    ((5, 4), (2, 1), ((2, 2), (1, 2)), False),   # wide, padded on every side
    ((3, 3), (1, 1), ((0, 0), (0, 0)), False),   # overlapping, inside the input (strided numpy ops)
    ((2, 2), (3, 3), ((1, 1), (0, 0)), True),    # stride > kernel: uncovered cells
    ((4, 4), (2, 2), ((2, 2), (2, 2)), True),    # windows mostly padding at the corners
])
def test_avgpool_backward_is_the_cell_walk_bit_for_bit(kernel, stride, pad, ceil, include_pad, dtype):
    # the backward sums each input cell's shares in row-major order of the pooled cells, so
    # its bits are the plain cell walk's at borders, strides, paddings and ceil-mode edges;
    # the windowed form (verify's) agrees with the whole map on every window
    x = rng(5).random((2, 3, 10, 11)).astype(dtype)
    out = pool.pool_output_size(10, 11, kernel, stride, pad, ceil_mode=ceil)
    y, cache = pool.avgpool2d_forward(x, kernel, stride, pad, out, include_pad)
    g = (rng(6).random(y.shape) + 0.1).astype(dtype)
    got = pool.pool2d_backward(g, cache)
    want = _avgpool_bwd_cell_walk(g, x.shape, kernel, stride, pad, include_pad)
    assert got.dtype == want.dtype
    tol = 1e-6 if dtype == np.float32 else 1e-13
    if cache[0] == "avg":  # the cell loops; windows inside the input take strided numpy ops
        assert np.array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=tol, atol=0)
    OH, OW = y.shape[2:]
    for a, b, c, d in ((0, 0, 0, 0), (0, OH - 1, 0, OW - 1), (OH - 1, OH - 1, OW - 2, OW - 1), (1, OH - 2, 0, 2)):
        got = pool.avgpool2d_backward_window(np.ascontiguousarray(g[:, :, a:b + 1, c:d + 1]), cache, (a, b), (c, d))
        if got is None:
            continue
        dxv, (r0, c0) = got
        whole = np.zeros_like(x)
        whole[:, :, r0:r0 + dxv.shape[2], c0:c0 + dxv.shape[3]] = dxv
        gw = np.zeros_like(g)
        gw[:, :, a:b + 1, c:d + 1] = g[:, :, a:b + 1, c:d + 1]
        np.testing.assert_allclose(whole, _avgpool_bwd_cell_walk(gw, x.shape, kernel, stride, pad, include_pad),
                                   rtol=tol, atol=0)


def test_maxpool_golden_argmax_routing():
    x = np.array([[1, 3, 2, 0],
                  [4, 2, 9, 9],
                  [0, 0, 5, 6],
                  [7, 7, 6, 8]], dtype=np.float64).reshape(1, 1, 4, 4)
    y, cache = pool.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(y[0, 0], [[4, 9], [7, 8]])
    dx = pool.pool2d_backward(np.array([[10.0, 20.0], [30.0, 40.0]]).reshape(1, 1, 2, 2), cache)
    # ties 9/9 and 7/7: the first in row-major order gets the whole gradient
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0, 0],
                                             [10, 0, 20, 0],
                                             [0, 0, 0, 0],
                                             [30, 0, 0, 40]])
    # overlapping windows accumulate: 3x3 stride 1 on a 3x4 with the max at (1,1)
    x2 = np.zeros((1, 1, 3, 4))
    x2[0, 0, 1, 1] = 5.0
    x2[0, 0, 1, 3] = 1.0
    y2, c2 = pool.maxpool2d_forward(x2, 3, 1)
    np.testing.assert_array_equal(y2[0, 0], [[5, 5]])
    np.testing.assert_array_equal(pool.pool2d_backward(np.ones((1, 1, 1, 2)), c2)[0, 0, 1, 1], 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 2, 5, 7), (1, 4, 2, 3)])
def test_maxpool_2x2_fast_path(shape, dtype):
    """The unrolled 2x2/2 pool (every window inside x, odd sizes floor): the maximum and the
    first row-major argmax of each window as a numpy reference computes them (many ties: small
    integers), NaN / -inf windows as the general loop treats them, and a gradient check."""
    N, C, H, W = shape
    OH, OW = H // 2, W // 2
    x = rng(7).integers(0, 3, shape).astype(dtype)
    y, cache = pool.maxpool2d_forward(x, 2)
    win = x[:, :, :2 * OH, :2 * OW].reshape(N, C, OH, 2, OW, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, OH, OW, 4)
    np.testing.assert_array_equal(y, win.max(axis=-1))
    first = win.argmax(axis=-1)  # numpy: the first maximum
    dy = rng(8).standard_normal(y.shape).astype(dtype)
    dx = pool.pool2d_backward(dy, cache)
    want = np.zeros_like(x)
    for n, c, i, j in np.ndindex(N, C, OH, OW):
        want[n, c, 2 * i + first[n, c, i, j] // 2, 2 * j + first[n, c, i, j] % 2] += dy[n, c, i, j]
    np.testing.assert_array_equal(dx, want)
    assert check_layer(lambda v: pool.maxpool2d_forward(v, 2), pool.pool2d_backward,
                       [distinct(rng(9), shape)]) <= TOL
    # NaN only wins first (v > best is False for NaN); an all -inf window keeps its first element
    z = np.array([[1, np.nan, np.nan, 2], [0, 0, 0, 0]], dtype=dtype).reshape(1, 1, 2, 4)
    z2 = np.full((1, 1, 2, 2), -np.inf, dtype=dtype)
    yz, cz = pool.maxpool2d_forward(z, 2)
    assert yz[0, 0, 0, 0] == 1 and np.isnan(yz[0, 0, 0, 1])
    assert pool.maxpool2d_forward(z2, 2)[0][0, 0, 0, 0] == -np.inf
    np.testing.assert_array_equal(pool.pool2d_backward(np.ones((1, 1, 1, 2), dtype), cz)[0, 0],
                                  [[1, 0, 1, 0], [0, 0, 0, 0]])


def test_avgpool_golden_divisor():
    x = np.ones((1, 1, 2, 2))
    # kernel 2, stride 1, pad 1 -> 3x3; the corner windows hold 1 real element of 4
    y, _ = pool.avgpool2d_forward(x, 2, 1, 1, count_include_pad=True)
    np.testing.assert_allclose(y[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    y, _ = pool.avgpool2d_forward(x, 2, 1, 1, count_include_pad=False)
    np.testing.assert_allclose(y[0, 0], np.ones((3, 3)))
    # ceil mode window running past the padded input: divisor is the clipped area
    # (x 1x3 of ones, kernel 2, stride 2, no pad, ceil -> 2 columns; the last covers 1)
    y, _ = pool.avgpool2d_forward(np.ones((1, 1, 1, 3)), (1, 2), (1, 2), 0, (1, 2))
    np.testing.assert_allclose(y[0, 0], [[1.0, 1.0]])


def test_global_pools():
    x = distinct(rng(3), (2, 3, 5, 4))
    y, c = pool.global_avgpool_forward(x)
    np.testing.assert_allclose(y[:, :, 0, 0], x.mean(axis=(2, 3)), atol=1e-14)
    assert check_layer(pool.global_avgpool_forward, pool.pool2d_backward, [x]) <= TOL
    y, c = pool.global_maxpool_forward(x)
    np.testing.assert_array_equal(y[:, :, 0, 0], x.max(axis=(2, 3)))
    assert check_layer(pool.global_maxpool_forward, pool.pool2d_backward, [x]) <= TOL


def test_pool1d():
    x = distinct(rng(4), (2, 3, 11))
    y, _ = pool.maxpool1d_forward(x, 3, 2, (1, 0))
    assert y.shape == (2, 3, 5)
    np.testing.assert_array_equal(y[..., 1], x[..., 1:4].max(axis=-1))
    assert check_layer(lambda x: pool.maxpool1d_forward(x, 3, 2, (1, 0)), pool.pool1d_backward, [x]) <= TOL
    assert check_layer(lambda x: pool.avgpool1d_forward(x, 3, 2, 1), pool.pool1d_backward, [x]) <= TOL


def test_pool_output_size_ceil_rule():
    assert pool.pool_output_size(8, 7, 3, 2, 0, ceil_mode=False) == (3, 3)
    assert pool.pool_output_size(8, 7, 3, 2, 0, ceil_mode=True) == (4, 3)
    # last window would start in the right padding only -> dropped (PyTorch rule)
    assert pool.pool_output_size(5, 5, 2, 2, 1, ceil_mode=True) == (3, 3)


# ----------------------------------------------------------------------------- activations
@pytest.mark.parametrize(
    "name,kw",
    [("relu", {}), ("relu6", {}), ("leaky_relu", {"alpha": 0.1}), ("tanh", {}), ("sigmoid", {}),
     ("softmax", {}), ("identity", {})],
)
def test_activation_gradients(name, kw):
    x = away_from_zero(rng(5), (4, 6))
    if name == "relu6":
        x[0, :3] = [6.5, 7.0, 5.5]  # both clip regions, away from the kinks at 0 and 6
    err = check_layer(lambda x: act.activation_forward(name, x, **kw),
                      lambda d, c: act.activation_backward(name, d, c), [x])
    assert err <= TOL


def test_activation_golden():
    x = np.array([-2.0, -0.5, 0.5, 3.0, 7.0])
    np.testing.assert_allclose(act.relu_forward(x)[0], [0, 0, 0.5, 3, 7])
    np.testing.assert_allclose(act.relu6_forward(x)[0], [0, 0, 0.5, 3, 6])
    np.testing.assert_allclose(act.leaky_relu_forward(x, 0.1)[0], [-0.2, -0.05, 0.5, 3, 7])
    np.testing.assert_allclose(act.sigmoid_forward(np.array([0.0, -1000.0, 1000.0]))[0], [0.5, 0, 1])
    y, _ = act.softmax_forward(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]]))
    np.testing.assert_allclose(y, [[0.25, 0.75], [0.5, 0.5]])


def test_float32_tanh_is_within_7_ulp_of_the_exact_tanh():
    # float32 tanh runs a rational approximation (activation._tanh1); the exact value is
    # float64 np.tanh. Over every float32 in [0, 10) the worst case was measured at 6.4 ulp
    # (3.9e-7 absolute); here a dense sample of 2**21 values in [0, 10) plus the edges
    # (the clamp at 7.9053, the |x| < 4e-4 shortcut, denormals), both signs.
    r = np.random.default_rng(3)
    pos = np.concatenate([r.uniform(0, 10, 1 << 20), np.geomspace(1e-40, 10, 1 << 20),
                          [0.0, 4e-4, 3.99e-4, 7.9053111, 7.9053, 7.906, 9.0, 1e30]]).astype(np.float32)
    x = np.concatenate([pos, -pos])
    y, cache = act.tanh_forward(x)
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert y.dtype == np.float32 and cache is y
    assert np.max(np.abs(y - exact) / ulp) <= 7
    assert np.max(np.abs(y - exact)) <= 4e-7
    assert np.array_equal(y[pos.size:], -y[:pos.size])  # odd, exactly
    # in place (the executor's fused activation) gives the same bits; odd layouts fall back
    z = x.copy()
    assert act.activation_forward_inplace("tanh", z)[0] is z and np.array_equal(z, y)
    strided = x.reshape(2, -1)[:, ::2]
    np.testing.assert_allclose(act.tanh_forward(strided)[0], np.tanh(strided), rtol=1e-6, atol=1e-7)
    special = act.tanh_forward(np.array([np.nan, np.inf, -np.inf, -0.0], np.float32))[0]
    assert np.isnan(special[0]) and list(special[1:3]) == [1.0, -1.0] and np.signbit(special[3])
    # the backward (one numba pass for contiguous arrays) gives the numpy form's bits
    dy = np.cos(np.arange(x.size, dtype=np.float32))
    t = np.multiply(y, y)
    np.subtract(1, t, out=t)
    assert np.array_equal(act.tanh_backward(dy, y), np.multiply(t, dy))
    assert np.array_equal(act.tanh_backward(dy[::-1], y[::-1]), np.multiply(t, dy)[::-1])  # strided: numpy
    # float64 keeps numpy's tanh (gradient checks need it)
    x64 = x[::997].astype(np.float64)
    assert np.array_equal(act.tanh_forward(x64)[0], np.tanh(x64))


def test_maxout():
    x = distinct(rng(6), (2, 6, 3, 2))
    y, _ = act.maxout_forward(x, 3)
    assert y.shape == (2, 2, 3, 2)
    np.testing.assert_array_equal(y[:, 1], x[:, 3:6].max(axis=1))
    assert check_layer(lambda x: act.maxout_forward(x, 3), act.maxout_backward, [x]) <= TOL
    x2 = distinct(rng(6), (3, 8))
    assert check_layer(lambda x: act.maxout_forward(x, 2), act.maxout_backward, [x2]) <= TOL
    # ties: first channel of the group wins
    y, c = act.maxout_forward(np.array([[1.0, 1.0]]), 2)
    np.testing.assert_array_equal(act.maxout_backward(np.array([[5.0]]), c), [[5.0, 0.0]])


def test_dropout():
    x = rng(7).standard_normal((50, 40))
    y1, m1 = act.dropout_forward(x, 0.3, True, np.random.default_rng(42))
    y2, _ = act.dropout_forward(x, 0.3, True, np.random.default_rng(42))
    np.testing.assert_array_equal(y1, y2)  # reproducible with the same generator
    kept = m1 != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(y1[kept], x[kept] / 0.7)
    ye, ce = act.dropout_forward(x, 0.3, False)
    np.testing.assert_array_equal(ye, x)
    np.testing.assert_array_equal(act.dropout_backward(np.ones_like(x), ce), 1.0)
    err = check_layer(lambda x: act.dropout_forward(x, 0.5, True, np.random.default_rng(1)),
                      act.dropout_backward, [x[:4, :5].copy()])
    assert err <= TOL
    assert act.dropout_forward(x.astype(np.float32), 0.5, True, np.random.default_rng(1))[0].dtype == np.float32


# ----------------------------------------------------------------------------- dense / loss
def test_dense_gradient_and_golden():
    r = rng(8)
    x, w, b = r.standard_normal((3, 5)), r.standard_normal((4, 5)), r.standard_normal(4)
    assert check_layer(dense.dense_forward, dense.dense_backward, [x, w, b]) <= TOL
    y, _ = dense.dense_forward(np.array([[1.0, 2.0]]), np.array([[3.0, 4.0], [5.0, 6.0]]), np.array([0.5, -1.0]))
    np.testing.assert_allclose(y, [[1 * 3 + 2 * 4 + 0.5, 1 * 5 + 2 * 6 - 1]])
    x4 = r.standard_normal((2, 2, 2, 3))
    assert check_layer(dense.dense_forward, dense.dense_backward, [x4, r.standard_normal((3, 12)), None]) <= TOL


def test_softmax_cross_entropy():
    r = rng(9)
    z = r.standard_normal((5, 7))
    labels = np.array([0, 6, 3, 3, 1])
    L, dz = loss.softmax_cross_entropy(z, labels)
    assert rel_error(dz, num_grad(lambda: loss.softmax_cross_entropy(z, labels)[0], z)) <= TOL
    # golden: equal logits over K=4 classes -> loss log 4, dlogits (1/4 - onehot)/N
    L, dz = loss.softmax_cross_entropy(np.zeros((2, 4)), [1, 3])
    assert L == pytest.approx(np.log(4.0), abs=1e-15)
    np.testing.assert_allclose(dz, [[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]])
    L, dz = loss.softmax_cross_entropy(np.array([[1000.0, 0.0]], dtype=np.float32), [1])
    assert L == pytest.approx(1000.0) and np.isfinite(dz).all() and dz.dtype == np.float32


# ----------------------------------------------------------------------------- norm
@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (6, 5)])
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_gradient(shape, train):
    r = rng(10)
    x = r.standard_normal(shape) * 2 + 1
    C = shape[1]
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    rm, rv = r.standard_normal(C), 0.5 + r.random(C)
    fwd = lambda x, g, b: norm.batchnorm_forward(x, g, b, rm.copy(), rv.copy(), train)  # noqa: E731
    assert check_layer(fwd, norm.batchnorm_backward, [x, gamma, beta]) <= TOL


@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (6, 5), (2, 3, 2, 2, 3), (3, 2, 5, 9)])
@pytest.mark.parametrize("relu", [False, True])
def test_batchnorm_train_fused_gradient(shape, relu):
    """The numba training batch norm (issue 27), with and without its fused ReLU: centred
    differences, and the same numbers as the numpy kernels (then the ReLU) in float64 and float32."""
    r = rng(10)
    x = away_from_zero(r, shape) * 2 + 0.5
    C = shape[1]
    gamma, beta = r.standard_normal(C), r.standard_normal(C)
    fwd = lambda x, g, b: norm.batchnorm_train_forward(x, g, b, None, None, relu=relu)  # noqa: E731
    assert check_layer(fwd, norm.batchnorm_train_backward, [x, gamma, beta]) <= TOL
    for dt, tol in ((np.float64, 1e-12), (np.float32, 3e-5)):
        xd, gd, bd = x.astype(dt), gamma.astype(dt), beta.astype(dt)
        rm1, rv1 = np.zeros(C, dt), np.ones(C, dt)
        rm2, rv2 = rm1.copy(), rv1.copy()
        y1, c1 = norm.batchnorm_forward(xd, gd, bd, rm1, rv1, train=True)
        y2, c2 = norm.batchnorm_train_forward(xd, gd, bd, rm2, rv2, relu=relu)
        dy = r.standard_normal(shape).astype(dt)
        d = dy
        if relu:
            y1, mask = act.relu_forward(y1)
            d = act.relu_backward(dy, mask)
        want = (y1, rm1, rv1, *norm.batchnorm_backward(d, c1))
        got = (y2, rm2, rv2, *norm.batchnorm_train_backward(dy, c2))
        assert y2.dtype == dt and got[3].dtype == dt
        for a, b in zip(want, got):
            np.testing.assert_allclose(b, a, rtol=tol, atol=tol * np.abs(a).max())


@pytest.mark.parametrize("shape", [(32, 16, 8, 8), (8, 24, 3, 3)])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_batchnorm_relu_mask_recomputed_is_the_outputs(shape, dt):
    """The fused ReLU's backward recomputes its mask as x̂ γ + β > 0 instead of reading the
    output: bit for bit the backward of the ReLU-masked dY without the ReLU (many outputs at
    and near zero: half the channels have β = 0 and γ tiny)."""
    r = rng(12)
    C = shape[1]
    x = r.standard_normal(shape).astype(dt)
    gamma = np.where(np.arange(C) % 2, 1e-3, r.standard_normal(C)).astype(dt)
    beta = np.where(np.arange(C) % 2, 0.0, r.standard_normal(C)).astype(dt)
    y, cache = norm.batchnorm_train_forward(x, gamma, beta, None, None, relu=True)
    assert (y == 0).mean() > 0.3
    dy = r.standard_normal(shape).astype(dt)
    plain = norm.BNCache(cache.xhat, cache.invstd, cache.g, y, False, cache.b)
    for got, want in zip(norm.batchnorm_train_backward(dy, cache),
                         norm.batchnorm_train_backward(np.where(y > 0, dy, 0).astype(dt), plain)):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_relu_in_place_is_numpys(dt):
    """The executor's in-place ReLU (one compiled pass for the mask and the values): the bits of
    numpy's ``x > 0`` and ``maximum(x, 0)`` -- NaN kept, -0.0 made +0.0, -inf 0 -- on a contiguous
    array, and the numpy path on a strided one."""
    r = rng(13)
    x = r.standard_normal((3, 5, 7, 9)).astype(dt)
    x.reshape(-1)[:6] = [np.nan, -0.0, 0.0, -np.inf, np.inf, -1e-45]
    want = np.maximum(x, 0), x > 0
    for z in (x.copy(), x.copy()[:, :, ::2]):
        w = (want[0], want[1]) if z.flags.c_contiguous else (np.maximum(z, 0), z > 0)
        y, mask = act.activation_forward_inplace("relu", z)
        assert y is z and np.array_equal(mask, w[1])
        assert np.array_equal(y, w[0], equal_nan=True) and np.array_equal(np.signbit(y), np.signbit(w[0]))


def test_batchnorm_golden_running_stats():
    # channel 0 values 1,2,3,6 over (N=2, H*W=2): mean 3, biased var 3.5, unbiased 14/3
    x = np.array([[[[1.0, 2.0]]], [[[3.0, 6.0]]]])
    rm, rv = np.zeros(1), np.ones(1)
    y, _ = norm.batchnorm_forward(x, np.ones(1), np.zeros(1), rm, rv, train=True)
    np.testing.assert_allclose(rm, [0.1 * 3.0])
    np.testing.assert_allclose(rv, [0.9 * 1.0 + 0.1 * 14.0 / 3.0])
    np.testing.assert_allclose(y.ravel(), (np.array([1, 2, 3, 6]) - 3) / np.sqrt(3.5 + 1e-5))
    ye, _ = norm.batchnorm_forward(x, np.full(1, 2.0), np.full(1, 1.0), rm, rv, train=False)
    np.testing.assert_allclose(ye.ravel(), 2 * (np.array([1, 2, 3, 6]) - rm) / np.sqrt(rv + 1e-5) + 1)
    np.testing.assert_allclose(rm, [0.3])  # eval leaves the state alone


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn_gradient(size):
    x = rng(12).standard_normal((2, 6, 3, 2))
    fwd = lambda x: norm.lrn_forward(x, size, alpha=0.5, beta=0.75, k=2.0)  # noqa: E731
    assert check_layer(fwd, norm.lrn_backward, [x]) <= TOL
    assert check_layer(lambda x: norm.lrn_forward(x, size, 0.5, 0.75, 2.0), norm.lrn_backward,
                       [rng(1).standard_normal((3, 7))]) <= TOL


def test_lrn_golden():
    # size 3, alpha 0.3, beta 1, k 1: channel c divides by 1 + 0.1 * (x_{c-1}^2 + x_c^2 + x_{c+1}^2)
    x = np.array([[1.0, 2.0, 3.0]])
    y, _ = norm.lrn_forward(x, 3, alpha=0.3, beta=1.0, k=1.0)
    np.testing.assert_allclose(y, [[1 / (1 + 0.1 * 5), 2 / (1 + 0.1 * 14), 3 / (1 + 0.1 * 13)]])


# ----------------------------------------------------------------------------- numba set-up
def _run_py(code, **env):
    import os
    import subprocess
    import sys

    full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    full.update(env)
    full["PYTHONPATH"] = os.getcwd() + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_runtime_package_import_is_free():
    out = _run_py("import sys, cnncalc.runtime; print('numba' in sys.modules, 'numpy' in sys.modules)")
    assert out == "False False"


def test_numba_cache_dir_and_threads(tmp_path):
    code = ("import os, numba; from cnncalc.runtime import _numba as m; "
            "print(os.environ['NUMBA_CACHE_DIR'], numba.config.CACHE_DIR, m.set_threads(1), m.get_threads())")
    out = _run_py(code, XDG_CACHE_HOME=str(tmp_path)).split()
    want = str(tmp_path / "cnncalc" / "numba")
    assert out == [want, want, "1", "1"]
    # a user-set NUMBA_CACHE_DIR wins
    out = _run_py(code, NUMBA_CACHE_DIR=str(tmp_path / "mine")).split()
    assert out[:2] == [str(tmp_path / "mine")] * 2
    # and the kernels really are cached there
    _run_py("import numpy as np; from cnncalc.runtime.kernels import pool; "
            "pool.maxpool2d_forward(np.ones((1, 1, 2, 2)), 2)", XDG_CACHE_HOME=str(tmp_path))
    assert any(p.suffix == ".nbi" for p in (tmp_path / "cnncalc" / "numba").rglob("*"))


def test_blas_env_defaults_before_numpy():
    code = ("import os, sys; from cnncalc.runtime import _numba as m; "
            "print(m.BLAS_ENV_APPLIED, os.environ.get('OPENBLAS_NUM_THREADS'))")
    assert _run_py(code) == "True 1"
    assert _run_py(code, OPENBLAS_NUM_THREADS="2") == "True 2"  # the user's choice stays
    # the executor imports numpy before _numba: the package's __init__ must have set them
    code = ("import os; import cnncalc.runtime.executor; from cnncalc.runtime import _numba as m; "
            "print(m.BLAS_ENV_APPLIED, os.environ.get('OPENBLAS_NUM_THREADS'))")
    assert _run_py(code) == "True 1"
