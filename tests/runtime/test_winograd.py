"""Winograd F(m x m, 3 x 3) convolution (``cnncalc/runtime/kernels/winograd.py``, ``algo="winograd"``):
the transforms are the published matrices, the forward, dX and dW (all three Winograd) agree with the direct loops
and a float64 reference on awkward shapes, and ``auto`` picks it only where it was measured faster.

Error bounds (float32 inputs N(0, 1), ``max |y - ref| / max |ref|`` against float64):
F(2x2,3x3) <= 2e-6 and F(4x4,3x3) <= 5e-5 (measured up to ~8e-6 at 64 channels; im2col's
float32 GEMM is ~3e-7 on the same data); in float64 both agree with ``direct`` to 1e-10."""
import numpy as np
import pytest

from cnncalc.analysis.workspace import winograd_chunk
from cnncalc.runtime import _numba
from cnncalc.runtime.kernels import conv, norm, winograd as wg

TOL32 = {2: 2e-6, 4: 5e-5}

# (N, C, K, H, W, pads): odd sizes, 1x1 and 2x2 maps, one channel / filter, batch 1,
# pads 0, 1, 2 and uneven, partial edge tiles in both directions
SHAPES = [
    pytest.param(2, 3, 5, 7, 9, ((1, 1), (1, 1)), id="odd-7x9"),
    pytest.param(1, 1, 1, 1, 1, ((1, 1), (1, 1)), id="1x1-map"),
    pytest.param(3, 1, 4, 2, 3, ((1, 1), (1, 1)), id="C1-2x3"),
    pytest.param(2, 4, 1, 6, 5, ((1, 1), (1, 1)), id="K1"),
    pytest.param(1, 4, 3, 5, 6, ((0, 0), (0, 0)), id="pad0-N1"),
    pytest.param(2, 3, 3, 3, 3, ((0, 0), (0, 0)), id="pad0-one-output"),
    pytest.param(2, 6, 4, 11, 10, ((2, 2), (2, 2)), id="pad2"),
    pytest.param(2, 5, 7, 10, 11, ((2, 1), (0, 2)), id="uneven-pads"),
    pytest.param(3, 16, 16, 13, 17, ((1, 1), (1, 1)), id="16ch-13x17"),
    pytest.param(2, 64, 48, 16, 16, ((1, 1), (1, 1)), id="64to48-16x16"),
]


def _data(N, C, K, H, W, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, C, H, W)).astype(dtype), rng.standard_normal((K, C, 3, 3)).astype(dtype)


def _ref(x, w, pads):
    """float64 direct conv (the lectures' loops)."""
    return conv.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None, 1, pads, algo="direct")[0]


def _rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


@pytest.mark.parametrize("m", [2, 4])
def test_one_d_kernels_are_the_published_matrices(m):
    BT, G, AT = wg.transforms(m)
    for kind, mat in (("BT", BT), ("AT", AT)):
        cols = np.array([wg.apply_1d(m, kind, e) for e in np.eye(m + 2)]).T
        np.testing.assert_array_equal(cols, mat)


@pytest.mark.parametrize("m", [2, 4])
def test_matrices_compute_the_correlation(m):
    """The 1-D minimal filtering identity ``A^T [(G g) * (B^T d)] = corr(d, g)``, exactly in
    float64 up to rounding; a changed entry of any matrix breaks it."""
    BT, G, AT = wg.transforms(m)
    rng = np.random.default_rng(1)
    d, g = rng.standard_normal(m + 2), rng.standard_normal(3)
    want = np.array([d[i:i + 3] @ g for i in range(m)])
    np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), want, atol=1e-12)
    for mat in (BT, G, AT):
        bad = mat.copy()
        bad[1, 1] += 0.5
        B2, G2, A2 = [bad if v is mat else v for v in (BT, G, AT)]
        assert np.abs(A2 @ ((G2 @ g) * (B2 @ d)) - want).max() > 1e-3


def test_wrong_filter_matrix_gives_wrong_convs():
    x, w = _data(2, 4, 3, 9, 9, np.float64)
    pads = ((1, 1), (1, 1))
    G = wg.transforms(4)[1].copy()
    assert _rel(wg.Winograd(4, G).forward(x, w, pads, 9, 9), _ref(x, w, pads)) < 1e-12
    G[2, 0] *= -1
    assert _rel(wg.Winograd(4, G).forward(x, w, pads, 9, 9), _ref(x, w, pads)) > 1e-2


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("N,C,K,H,W,pads", SHAPES)
def test_forward_against_float64(m, N, C, K, H, W, pads):
    x, w = _data(N, C, K, H, W, np.float32)
    ref = _ref(x, w, pads)
    OH, OW = ref.shape[2:]
    y = wg.forward(x, w, pads, OH, OW, m=m)
    assert y.dtype == np.float32 and y.shape == ref.shape
    assert _rel(y, ref) <= TOL32[m]
    y64 = wg.forward(x.astype(np.float64), w.astype(np.float64), pads, OH, OW, m=m)
    assert y64.dtype == np.float64 and _rel(y64, ref) <= 1e-12


@pytest.mark.parametrize("N,C,K,H,W,pads", SHAPES)
def test_backward_matches_direct_float64(N, C, K, H, W, pads):
    x, w = _data(N, C, K, H, W, np.float64, seed=2)
    b = np.random.default_rng(3).standard_normal(K)
    y, cache = conv.conv2d_forward(x, w, b, 1, pads, algo="winograd")
    assert cache.algo == "winograd"
    y0, cache0 = conv.conv2d_forward(x, w, b, 1, pads, algo="direct")
    np.testing.assert_allclose(y, y0, atol=1e-10)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    for got, want in zip(conv.conv2d_backward(dy, cache), conv.conv2d_backward(dy, cache0)):
        np.testing.assert_allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("N,C,K,H,W,pads", SHAPES[::3])
def test_backward_float32_against_float64(N, C, K, H, W, pads):
    x, w = _data(N, C, K, H, W, np.float32, seed=5)
    y, cache = conv.conv2d_forward(x, w, None, 1, pads, algo="winograd")
    dy = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
    dx, dw, _ = conv.conv2d_backward(dy, cache)
    dx0 = conv.conv2d_data_grad(dy.astype(np.float64), w.astype(np.float64), x.shape, 1, pads, algo="direct")
    dw0 = conv.conv2d_weight_grad(dy.astype(np.float64), x.astype(np.float64), w.shape, 1, pads, algo="direct")
    assert dx.dtype == dw.dtype == np.float32
    assert _rel(dx, dx0) <= TOL32[wg.M] and _rel(dw, dw0) <= TOL32[wg.M]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("N,C,K,H,W,pads", SHAPES[::2])
def test_weight_grad_against_float64(m, N, C, K, H, W, pads):
    x, w = _data(N, C, K, H, W, np.float32, seed=13)
    OH, OW = H + sum(pads[0]) - 2, W + sum(pads[1]) - 2
    dy = np.random.default_rng(14).standard_normal((N, K, OH, OW)).astype(np.float32)
    ref = conv.conv2d_weight_grad(dy.astype(np.float64), x.astype(np.float64), w.shape, 1, pads, algo="direct")
    dw = wg.weight_grad(dy, x, pads, m=m)
    assert dw.dtype == np.float32 and dw.shape == w.shape
    assert _rel(dw, ref) <= TOL32[m]
    assert _rel(wg.weight_grad(dy.astype(np.float64), x.astype(np.float64), pads, m=m), ref) <= 1e-12


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("N,C,K,H,W,pads", SHAPES[::2] + [pytest.param(40, 16, 16, 32, 32, ((1, 1), (1, 1)),
                                                                       id="chunks-40x16ch")])
def test_kept_transform_gives_the_same_weight_grad(m, N, C, K, H, W, pads):
    """forward(keep=True)'s V (several chunks in the last case) fed to weight_grad: the same y and
    dW, bit for bit, as recomputing the transform; a V of the wrong size is refused."""
    x, w = _data(N, C, K, H, W, np.float32, seed=21)
    OH, OW = H + sum(pads[0]) - 2, W + sum(pads[1]) - 2
    y, V = wg.forward(x, w, pads, OH, OW, m=m, keep=True)
    assert V.nbytes == wg.kept_bytes(x.shape, OH, OW, x.itemsize, m=m)
    assert np.array_equal(y, wg.forward(x, w, pads, OH, OW, m=m))
    dy = np.random.default_rng(22).standard_normal(y.shape).astype(np.float32)
    dw = wg.weight_grad(dy, x, pads, m=m, v=V)
    assert np.array_equal(dw, wg.weight_grad(dy, x, pads, m=m))
    with pytest.raises(ValueError, match="kept transform"):
        wg.weight_grad(dy, x, pads, m=m, v=V[:-1])


@pytest.mark.parametrize("N,C,K,H,W,pads", [
    pytest.param(7, 24, 40, 21, 27, ((1, 1), (1, 1)), id="4-chunks-24to40-21x27"),
    pytest.param(5, 40, 17, 29, 30, ((2, 1), (0, 2)), id="chunks-40to17-uneven-pads"),
    pytest.param(9, 16, 16, 32, 32, ((1, 1), (1, 1)), id="resnet20-stage1-3-chunks"),
])
def test_channels_last_chunks_against_direct(N, C, K, H, W, pads):
    """The channels-last kernels (transposing copy, transforms over contiguous channels, the
    output's transpose through an offset table) over several chunks, the last one partial,
    channel counts that are not whole vectors, partial edge tiles: forward, kept-V weight
    gradient and data gradient against the direct loops, float64 to 1e-10 and float32 within
    F(4x4)'s bound."""
    OH, OW = H + sum(pads[0]) - 2, W + sum(pads[1]) - 2
    assert winograd_chunk(N, C, K, -(-OH // 4) * -(-OW // 4), 4) < N  # more than one chunk
    for dtype, tol in ((np.float64, 1e-10), (np.float32, TOL32[4])):
        x, w = _data(N, C, K, H, W, dtype, seed=31)
        dy = np.random.default_rng(32).standard_normal((N, K, OH, OW)).astype(dtype)
        x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
        y, V = wg.forward(x, w, pads, OH, OW, keep=True)
        assert _rel(y, _ref(x, w, pads)) <= tol
        dw0 = conv.conv2d_weight_grad(dy64, x64, w.shape, 1, pads, algo="direct")
        assert _rel(wg.weight_grad(dy, x, pads, v=V), dw0) <= tol
        assert _rel(wg.weight_grad(dy, x, pads), dw0) <= tol
        dx0 = conv.conv2d_data_grad(dy64, w64, x.shape, 1, pads, algo="direct")
        assert _rel(wg.data_grad(dy, w, pads, H, W), dx0) <= tol


@pytest.mark.parametrize("N,C,K,H,W,pads", SHAPES + [
    pytest.param(7, 24, 40, 21, 27, ((1, 1), (1, 1)), id="4-chunks-24to40-21x27"),
    pytest.param(5, 17, 16, 29, 30, ((1, 1), (1, 1)), id="chunks-17to16-29x30"),
])
def test_backward_in_one_pass_is_both_gradients(N, C, K, H, W, pads):
    """backward (dX and dW over the chunks in one pass, dY's padded copy shared where the
    tilings agree, else the two calls): bit for bit the separate data_grad and weight_grad,
    with and without the kept V, float64 and float32; and what conv2d_backward returns."""
    OH, OW = H + sum(pads[0]) - 2, W + sum(pads[1]) - 2
    for dtype in (np.float64, np.float32):
        x, w = _data(N, C, K, H, W, dtype, seed=41)
        dy = np.random.default_rng(42).standard_normal((N, K, OH, OW)).astype(dtype)
        y, V = wg.forward(x, w, pads, OH, OW, keep=True)
        for v in (V, None):
            if not wg.data_grad_supported(pads):
                continue
            dx, dw = wg.backward(dy, w, x, pads, v=v)
            assert np.array_equal(dx, wg.data_grad(dy, w, pads, H, W))
            assert np.array_equal(dw, wg.weight_grad(dy, x, pads, v=v))
    x, w = _data(N, C, K, H, W, np.float64, seed=43)
    y, cache = conv.conv2d_forward(x, w, None, 1, pads, algo="winograd", keep_cols=True)
    dy = np.random.default_rng(44).standard_normal(y.shape)
    dx, dw, _ = conv.conv2d_backward(dy, cache)
    np.testing.assert_allclose(dx, conv.conv2d_data_grad(dy, w, x.shape, 1, pads, algo="direct"), atol=1e-10)
    np.testing.assert_allclose(dw, conv.conv2d_weight_grad(dy, x, w.shape, 1, pads, algo="direct"), atol=1e-10)


def test_conv_cache_keeps_the_transform_when_training():
    """conv2d_forward(keep_cols=True) keeps V in the cache (cols) and the backward uses it: the
    same gradients as without it; a stale V (other x) would change dW, so it is really read."""
    x, w = _data(4, 8, 8, 12, 12, np.float32, seed=23)
    y, cache = conv.conv2d_forward(x, w, None, 1, 1, algo="winograd", keep_cols=True)
    y0, cache0 = conv.conv2d_forward(x, w, None, 1, 1, algo="winograd")
    assert cache.cols is not None and cache0.cols is None and cache.speed_arrays() == [cache.cols]
    dy = np.random.default_rng(24).standard_normal(y.shape).astype(np.float32)
    for got, want in zip(conv.conv2d_backward(dy, cache), conv.conv2d_backward(dy, cache0)):
        assert (got is None and want is None) or np.array_equal(got, want)
    cache.cols = wg.forward(x + 1, w, ((1, 1), (1, 1)), 12, 12, keep=True)[1]
    assert not np.allclose(conv.conv2d_backward(dy, cache)[1], conv.conv2d_backward(dy, cache0)[1])


def test_data_grad_is_a_gradient():
    """Finite differences of the Winograd forward (float64) against its data gradient."""
    x, w = _data(2, 3, 4, 6, 7, np.float64, seed=7)
    pads = ((1, 2), (2, 0))
    y = conv.conv2d_forward(x, w, None, 1, pads, algo="winograd")[0]
    dy = np.random.default_rng(8).standard_normal(y.shape)
    dx = conv.conv2d_data_grad(dy, w, x.shape, 1, pads, algo="winograd")
    rng = np.random.default_rng(9)
    eps = 1e-6
    for _ in range(10):
        i = tuple(rng.integers(0, s) for s in x.shape)
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num = ((conv.conv2d_forward(xp, w, None, 1, pads, algo="winograd")[0]
                - conv.conv2d_forward(xm, w, None, 1, pads, algo="winograd")[0]) * dy).sum() / (2 * eps)
        assert abs(num - dx[i]) <= 1e-6 * max(1.0, abs(num))


def test_large_pads_fall_back_for_the_data_gradient():
    x, w = _data(2, 3, 4, 5, 5, np.float64, seed=10)
    pads = ((3, 3), (1, 1))  # 3 > 2: dY would have to be cropped
    assert not wg.data_grad_supported(pads)
    y, cache = conv.conv2d_forward(x, w, None, 1, pads, algo="winograd")
    dy = np.ones_like(y)
    dx = conv.conv2d_backward(dy, cache)[0]
    np.testing.assert_allclose(dx, conv.conv2d_data_grad(dy, w, x.shape, 1, pads, algo="direct"), atol=1e-10)
    with pytest.raises(ValueError):
        wg.data_grad(dy, w, pads, 5, 5)


@pytest.mark.parametrize("w_shape,stride,dilation,groups", [
    ((4, 4, 3, 3), 2, 1, 1), ((4, 4, 3, 3), 1, 2, 1), ((4, 2, 3, 3), 1, 1, 2), ((4, 4, 5, 5), 1, 1, 1),
])
def test_unsupported_convs_run_im2col(w_shape, stride, dilation, groups):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 9, 9))
    w = rng.standard_normal(w_shape)
    y, cache = conv.conv2d_forward(x, w, None, stride, 2, dilation, groups, algo="winograd")
    assert cache.algo == "im2col"
    np.testing.assert_allclose(y, conv.conv2d_forward(x, w, None, stride, 2, dilation, groups, algo="direct")[0],
                               atol=1e-10)


def test_forward_checks_the_output_size():
    x, w = _data(1, 2, 2, 6, 6, np.float32)
    with pytest.raises(ValueError):
        wg.forward(x, w, ((1, 1), (1, 1)), 5, 6)


def test_auto_picks_winograd_where_measured_faster():
    # ResNet-20 and VGG-11 at 32x32 (the measured wins) ...
    assert conv.choose_algo((32, 16, 32, 32), (16, 16, 3, 3)) == "winograd"
    assert conv.choose_algo((32, 128, 16, 16), (128, 128, 3, 3)) == "winograd"
    assert conv.choose_algo((32, 256, 8, 8), (256, 256, 3, 3)) == "winograd"
    # ... and not where im2col was as fast or faster
    assert conv.choose_algo((32, 3, 32, 32), (16, 3, 3, 3)) == "im2col"  # 3 input channels
    assert conv.choose_algo((32, 64, 8, 8), (64, 64, 3, 3)) == "winograd"
    assert conv.choose_algo((32, 32, 8, 8), (32, 32, 3, 3)) == "im2col"
    assert conv.choose_algo((32, 512, 4, 4), (512, 512, 3, 3)) == "im2col"
    assert conv.choose_algo((32, 8, 32, 32), (8, 8, 3, 3)) == "im2col"
    assert conv.choose_algo((32, 64, 32, 32), (64, 64, 3, 3), stride=2) == "im2col"
    x, w = _data(2, 16, 16, 16, 16, np.float32)
    assert conv.conv2d_forward(x, w, None, 1, 1)[1].algo == "winograd"


def test_threads_give_the_same_result():
    x, w = _data(4, 16, 24, 20, 18, np.float32, seed=12)
    pads = ((1, 1), (1, 1))
    old = _numba.numba.get_num_threads()
    try:
        _numba.set_threads(1)
        y1 = wg.forward(x, w, pads, 20, 18)
        _numba.set_threads(2)
        y2 = wg.forward(x, w, pads, 20, 18)
    finally:
        _numba.set_threads(old)
    np.testing.assert_array_equal(y1, y2)  # each thread owns whole channels: same sums, same order


SMALL_NET = """name: wino-small
input: 16x16x2
layers:
  - {conv: 16, kernel: 3, pad: 1, activation: relu, name: c1}
  - {conv: 16, kernel: 3, pad: 1, activation: relu, name: c2}
  - {maxpool: 2, stride: 2}
  - {flatten: , name: flat}
  - {fc: 10, activation: softmax, name: output}
"""


def _train(path, algo, steps=12):
    import cnncalc
    from cnncalc.runtime.optim import SGD
    from cnncalc.runtime.trainer import TrainNet, flat, initialize

    g = cnncalc.load(path)
    net = TrainNet(g, conv_algo=algo)
    initialize(net, "he", 0)
    params = flat(net.params)
    opt = SGD(0.05, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 2, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    losses = []
    for i in range(steps):
        sl = slice(8 * (i % 4), 8 * (i % 4) + 8)
        losses.append(net.loss(x[sl], y[sl], input_grad=False)[0])
        opt.step(params, flat(net.grads))
    return np.array(losses), params


def test_training_curve_same_as_im2col(tmp_path):
    """Same seed, same data: a few SGD steps with ``auto`` (c2, 16 -> 16 on 16x16, runs
    Winograd) follow im2col's losses and weights to float32 rounding."""
    p = tmp_path / "small.yaml"
    p.write_text(SMALL_NET)
    assert conv.choose_algo((8, 16, 16, 16), (16, 16, 3, 3)) == "winograd"
    la, pa = _train(p, "auto")
    lb, pb = _train(p, "im2col")
    assert np.all(np.isfinite(la)) and la[-4:].mean() < la[:4].mean()  # it learns
    np.testing.assert_allclose(la, lb, rtol=1e-4)
    for k in pb:
        np.testing.assert_allclose(pa[k], pb[k], rtol=1e-3, atol=1e-4 * np.abs(pb[k]).max())


TANH_NET = """name: wino-tanh
input: 8x8x2
layers:
  - {conv: 3, kernel: 3, pad: 1, activation: tanh, name: c1}
  - {conv: 2, kernel: 3, pad: 1, activation: tanh, name: c2}
  - {flatten: , name: flat}
  - {fc: 3, activation: softmax, name: output}
"""


@pytest.mark.parametrize("cmd", ["gradcheck", "train", "bench", "verify", "erf"])
def test_cli_offers_winograd_with_one_spelling(cmd):
    """Every runtime command takes ``--conv-algo winograd`` (the same choices everywhere)."""
    from click.testing import CliRunner

    from cnncalc.cli import main

    r = CliRunner().invoke(main, [cmd, "--help"], terminal_width=200)
    assert r.exit_code == 0
    assert "--conv-algo [auto|direct|im2col|fft|winograd]" in r.output


def test_gradcheck_with_winograd_asked_for(tmp_path):
    """``cnncalc gradcheck --conv-algo winograd`` runs the Winograd kernels (forward, dX, dW) in
    float64 and every tensor's analytic gradient matches the centred differences."""
    import json

    from click.testing import CliRunner

    from cnncalc.cli import main

    p = tmp_path / "tanh.yaml"
    p.write_text(TANH_NET)
    r = CliRunner().invoke(main, ["gradcheck", str(p), "--conv-algo", "winograd", "--format", "json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["conv_algo"] == "winograd"
    assert out["ok"] and len(out["checks"]) >= 6 and all(c["ok"] for c in out["checks"]), out["checks"]


# -- batch-norm statistics summed by the Winograd forward (kernels/winograd.py _chunk_sums) ----
@pytest.mark.parametrize("N,C,K,H,W,pads", SHAPES[::2] + [pytest.param(40, 16, 16, 32, 32, ((1, 1), (1, 1)),
                                                                       id="chunks-40x16ch")])
def test_forward_sums_are_the_outputs_statistics(N, C, K, H, W, pads):
    """forward(sums=S): y unchanged; S's shift is y[0, :, 0, 0] and the shifted sums give y's
    per-filter mean and variance (float64 of the float32 y) to float64 rounding, over chunks
    and cropped edge tiles alike; inputs with a large mean (x + 50) lose nothing to cancellation."""
    for shift in (0.0, 50.0):
        x, w = _data(N, C, K, H, W, np.float32, seed=31)
        x += np.float32(shift)
        OH, OW = H + sum(pads[0]) - 2, W + sum(pads[1]) - 2
        S = wg.output_sums(K)
        y = wg.forward(x, w, pads, OH, OW, sums=S)
        assert np.array_equal(y, wg.forward(x, w, pads, OH, OW))
        np.testing.assert_array_equal(S[0], y[0, :, 0, 0])
        mean, var = norm.stats_from_sums(S, N * OH * OW)
        y64 = y.astype(np.float64)
        scale = np.abs(y64).max()
        assert np.abs(mean - y64.mean(axis=(0, 2, 3))).max() <= 1e-12 * scale
        assert np.abs(var - y64.var(axis=(0, 2, 3))).max() <= 1e-12 * max(y64.var(axis=(0, 2, 3)).max(), 1e-30)
    with pytest.raises(ValueError, match="sums"):
        wg.forward(x, w, pads, OH, OW, sums=np.zeros((3, K + 1)))


def test_stats_from_sums_and_batchnorm_given_them():
    """stats_from_sums: the shifted one-pass mean and variance; batchnorm_train_forward given a
    conv's sums matches its own statistics pass (y, the cache and the running statistics)."""
    x, w = _data(6, 8, 12, 10, 10, np.float32, seed=32)
    S = wg.output_sums(12)
    y = wg.forward(x, w, ((1, 1), (1, 1)), 10, 10, sums=S)
    g = np.random.default_rng(33).standard_normal(12).astype(np.float32)
    b = np.random.default_rng(34).standard_normal(12).astype(np.float32)
    runs = []
    for sums in (None, S):
        rm, rv = np.zeros(12, np.float32), np.ones(12, np.float32)
        out, cache = norm.batchnorm_train_forward(y, g, b, rm, rv, relu=True, sums=sums)
        runs.append((out, cache.xhat, cache.invstd, rm, rv))
    for got, want in zip(runs[1], runs[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        norm.batchnorm_train_forward(y, g, b, rm, rv, sums=S[:, :5])
    with pytest.raises(ValueError, match=r"\(3, C\)"):
        norm.stats_from_sums(S[:2], 10)


BN_NET = """name: wino-bn
input: 16x16x3
defaults:
  conv: {kernel: 3, pad: 1, bias: false, bn: true, activation: relu}
layers:
  - {conv: 16, name: c1}
  - add:
      - - {conv: 16, name: c2}
        - {conv: 16, activation: linear, name: c3}
      - []
    activation: relu
    name: add
  - {conv: 16, bias: true, name: c4}
  - {global_avgpool: , name: pool}
  - {fc: 10, activation: softmax, name: output}
"""


def test_training_with_conv_sums_matches_the_statistics_pass(tmp_path):
    """A net of Winograd conv -> batch norm (+ReLU, and without): the forward hands the convs'
    sums to the batch norms that read them (not the conv with a bias, not the 3-channel first
    conv: im2col), and 8 SGD steps follow the same losses and weights as with every batch norm
    running its own statistics pass (the executor's _bn_fed emptied), to float32 rounding."""
    import cnncalc
    from cnncalc.runtime.optim import SGD
    from cnncalc.runtime.trainer import TrainNet, flat, initialize

    p = tmp_path / "bn.yaml"
    p.write_text(BN_NET)
    rng = np.random.default_rng(35)
    x = rng.standard_normal((16, 3, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    runs = []
    for fused in (True, False):
        net = TrainNet(cnncalc.load(p), conv_algo="auto")
        initialize(net, "he", 0)
        if not fused:
            net._bn_fed = set()
        taken = []
        orig = norm.batchnorm_train_forward

        def spy(*a, **k):
            taken.append(k.get("sums") is not None)
            return orig(*a, **k)

        norm.batchnorm_train_forward = spy
        try:
            params = flat(net.params)
            opt = SGD(0.05, momentum=0.9)
            losses = []
            for _ in range(8):
                losses.append(net.loss(x, labels, input_grad=False)[0])
                opt.step(params, flat(net.grads))
        finally:
            norm.batchnorm_train_forward = orig
        runs.append((losses, {n: {k: v.copy() for k, v in d.items()} for n, d in net.params.items()}))
        assert sum(taken) == (16 if fused else 0)  # c2 and c3, 8 steps each
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    for n, d in runs[1][1].items():
        for k, v in d.items():
            np.testing.assert_allclose(runs[0][1][n][k], v, rtol=1e-4, atol=1e-5)
