"""The depthwise conv kernel (``cnncalc/runtime/kernels/depthwise.py``, ``algo="depthwise"``,
what ``auto`` picks for depthwise-like convs).

Checked three independent ways: against the lectures' reference ``direct`` loops (float64,
1e-12 relative: the same sums in another order), against PyTorch's ``conv2d`` with
``groups`` and autograd (float64 and float32), and by centred differences through the
executor's gradient checker; plus bit-identical results for 1 and 2 numba threads.
"""
from __future__ import annotations

import numpy as np
import pytest

from cnncalc.runtime import _numba
from cnncalc.runtime.kernels import conv

# (N, C, H, W, multiplier or (Cg, Fg), kernel, stride, pad, dilation)
CASES = [
    pytest.param(2, 4, 8, 8, 1, (3, 3), (1, 1), 1, (1, 1), id="3x3-s1-p1"),
    pytest.param(1, 3, 9, 7, 1, (3, 3), (2, 2), 1, (1, 1), id="s2-odd-N1"),
    pytest.param(2, 3, 10, 9, 1, (3, 3), (2, 2), ((0, 1), (0, 1)), (1, 1), id="s2-asym-pad-same"),
    pytest.param(2, 3, 11, 10, 2, (3, 3), (1, 1), ((2, 0), (1, 3)), (1, 1), id="mult2-asym-pad"),
    pytest.param(1, 2, 13, 12, 2, (3, 3), (2, 2), 1, (1, 1), id="mult2-s2"),
    pytest.param(2, 3, 12, 11, 1, (3, 3), (1, 1), 2, (2, 2), id="dilation2"),
    pytest.param(1, 2, 15, 14, 1, (5, 5), (2, 2), 4, (2, 3), id="5x5-s2-dilated"),
    pytest.param(1, 2, 9, 9, 1, (7, 7), (1, 1), 3, (1, 1), id="7x7-convnext"),
    pytest.param(2, 2, 7, 6, 1, (5, 4), (1, 3), ((1, 2), (0, 3)), (1, 1), id="non-square-mixed-stride"),
    pytest.param(1, 2, 5, 5, 1, (1, 1), (1, 1), 2, (1, 1), id="1x1-pad-beyond-kernel"),
    pytest.param(1, 2, 3, 4, 1, (5, 5), (1, 1), 2, (1, 1), id="kernel-larger-than-input"),
    pytest.param(2, 2, 10, 9, 1, (2, 2), (3, 3), 0, (1, 1), id="stride-gt-kernel-unread-rows"),
    pytest.param(1, 1, 1, 1, 1, (3, 3), (1, 1), 1, (1, 1), id="1x1-input"),
    pytest.param(2, 4, 9, 8, (2, 2), (3, 3), (1, 1), 1, (1, 1), id="groups-Cg2-Fg2"),
    pytest.param(1, 4, 8, 9, (4, 1), (3, 2), (2, 1), ((1, 0), (0, 1)), (1, 2), id="groups-Cg4-Fg1"),
    # one output column: the stride is never applied (its scratch was 10^9 x the row: exit 70 in
    # the ONNX fuzz, seed 521)
    pytest.param(1, 2, 5, 6, 1, (3, 3), (2, 10**9), 1, (1, 1), id="stride-far-past-the-input"),
]


def make(N, C, H, W, mult, kernel, seed=0, dtype=np.float64):
    Cg, Fg = (1, mult) if np.isscalar(mult) else mult
    groups = C // Cg
    r = np.random.default_rng(seed)
    x = r.standard_normal((N, C, H, W)).astype(dtype)
    w = r.standard_normal((Fg * groups, Cg) + tuple(kernel)).astype(dtype)
    b = r.standard_normal(Fg * groups).astype(dtype)
    return x, w, b, groups


def run(x, w, b, stride, pad, dilation, groups, algo, dy_seed=1):
    y, cache = conv.conv2d_forward(x, w, b, stride, pad, dilation, groups, algo)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(y.dtype)
    dx, dw, db = conv.conv2d_backward(dy, cache)
    return y, dx, dw, db, dy


@pytest.mark.parametrize("N,C,H,W,mult,kernel,stride,pad,dilation", CASES)
@pytest.mark.parametrize("dtype,rtol", [
    (np.float64, 1e-12),
    # float32 compiles both kernels a second time (~25 CPU-seconds cold): the slow group
    pytest.param(np.float32, 2e-6, marks=pytest.mark.slow),
])
def test_matches_the_reference_direct_loops(dtype, rtol, N, C, H, W, mult, kernel, stride, pad, dilation):
    x, w, b, groups = make(N, C, H, W, mult, kernel, dtype=dtype)
    ref = run(x, w, b, stride, pad, dilation, groups, "direct")
    new = run(x, w, b, stride, pad, dilation, groups, "depthwise")
    for name, a, r in zip(("y", "dx", "dw", "db"), new, ref):
        assert a.dtype == dtype and a.shape == r.shape, name
        scale = max(1.0, float(np.abs(r).max()))
        np.testing.assert_allclose(a, r, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.mark.torch
@pytest.mark.parametrize("N,C,H,W,mult,kernel,stride,pad,dilation", CASES)
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_matches_pytorch_autograd(dtype, rtol, N, C, H, W, mult, kernel, stride, pad, dilation):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, groups = make(N, C, H, W, mult, kernel, seed=2, dtype=dtype)
    y, dx, dw, db, dy = run(x, w, b, stride, pad, dilation, groups, "auto")
    (t, bo), (l, r) = ((pad, pad), (pad, pad)) if np.isscalar(pad) else pad
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = F.conv2d(F.pad(xt, (l, r, t, bo)), wt, bt, stride, 0, dilation, groups)
    yt.backward(torch.tensor(dy))
    for name, a, tt in (("y", y, yt), ("dx", dx, xt.grad), ("dw", dw, wt.grad), ("db", db, bt.grad)):
        tt = tt.detach().numpy()
        assert a.shape == tt.shape, name
        scale = max(1.0, float(np.abs(tt).max()))
        np.testing.assert_allclose(a, tt, rtol=rtol, atol=rtol * scale, err_msg=name)


def test_auto_routes_depthwise_like_convs_to_it_and_direct_stays_the_reference():
    x, w, b, groups = make(2, 6, 8, 8, 2, (3, 3))
    assert conv.choose_algo(x.shape, w.shape, 1, 1, groups) == "depthwise"
    assert conv.conv2d_forward(x, w, b, 1, 1, 1, groups)[1].algo == "depthwise"
    assert conv.conv2d_forward(x, w, b, 1, 1, 1, groups, "direct")[1].algo == "direct"
    # thin groups too (ResNeXt-50's 4x4 first stage), up to 32 filter x channel pairs per
    # group; wider groups stay on im2col (measured: 64 pairs are faster there)
    assert conv.choose_algo((2, 128, 56, 56), (128, 4, 3, 3), 1, 1, 32) == "depthwise"
    assert conv.choose_algo((2, 64, 8, 8), (32, 8, 3, 3), 1, 1, 8) == "depthwise"  # 8 x 4 = 32
    assert conv.choose_algo((2, 64, 8, 8), (64, 8, 3, 3), 1, 1, 8) == "im2col"  # 8 x 8 = 64
    assert "depthwise" not in conv.ALGOS  # the CLI's --conv-algo lists the lectures' three
    with pytest.raises(ValueError, match="unknown conv algorithm"):
        conv.conv2d_forward(x, w, b, 1, 1, 1, groups, "depthwise2")


def test_transposed_and_1d_depthwise_use_it_too():
    # a depthwise transposed conv runs as the data gradient of the depthwise conv (auto)
    r = np.random.default_rng(4)
    x = r.standard_normal((2, 3, 5, 6))
    w = r.standard_normal((3, 1, 3, 3))
    outs = {}
    for algo in ("direct", "auto"):
        y, cache = conv.conv_transpose2d_forward(x, w, None, 2, 1, 1, 3, 1, algo)
        dy = np.cos(np.arange(y.size)).reshape(y.shape)
        outs[algo] = (y, *conv.conv_transpose2d_backward(dy, cache)[:2])
        assert cache.algo == {"direct": "direct", "auto": "depthwise"}[algo]
    for a, ref in zip(outs["auto"], outs["direct"]):
        np.testing.assert_allclose(a, ref, rtol=1e-12, atol=1e-12)
    x1 = r.standard_normal((2, 4, 11))
    w1 = r.standard_normal((4, 1, 3))
    y_auto, c = conv.conv1d_forward(x1, w1, None, 2, (1, 2), 1, 4)
    y_ref, _ = conv.conv1d_forward(x1, w1, None, 2, (1, 2), 1, 4, "direct")
    assert c.algo == "depthwise"
    np.testing.assert_allclose(y_auto, y_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.slow  # compiles the threaded kernels (24 CPU-seconds cold); the executor's sub-batch test covers threads fast
def test_bit_identical_for_any_thread_count():
    # parallel over independent output planes, each summed by one thread in a fixed order
    x, w, b, groups = make(3, 8, 17, 15, 2, (3, 3), dtype=np.float32)
    res = {}
    try:
        for threads in (1, 2):
            _numba.set_threads(threads)
            res[threads] = [run(x, w, b, s, 1, 1, groups, "depthwise")[:4] for s in (1, 2)]
    finally:
        _numba.set_threads(None)
    for a, b_ in zip(res[1], res[2]):
        for u, v in zip(a, b_):
            assert np.array_equal(u, v)


def test_hand_computed_values():
    # x = 1..9 on a 3x3 grid, w = all ones 3x3, pad 1: y[0,0] = 1+2+4+5 = 12, the centre is
    # the sum 45; dW for dy = 1 everywhere: the corner tap w[0,0] reads x[r-1, c-1] over the 9
    # outputs, i.e. the top-left 2x2 block 1+2+4+5 = 12; the centre tap reads all of x: 45.
    # dX for dy = 1: every x pixel is read by as many outputs as its 3x3 neighbourhood holds
    # in-grid cells: 4 at a corner, 6 at an edge, 9 at the centre.
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 3, 3), np.float32)
    y, cache = conv.conv2d_forward(x, w, None, 1, 1, 1, 1, "depthwise")
    assert y[0, 0, 0, 0] == 12 and y[0, 0, 1, 1] == 45
    dx, dw, _ = conv.conv2d_backward(np.ones_like(y), cache)
    assert dw[0, 0, 0, 0] == 12 and dw[0, 0, 1, 1] == 45
    np.testing.assert_array_equal(dx[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


GRADCHECK_SPEC = """
name: dw-gradcheck
input: 9x10x3
layers:
  - {dwconv: 3, pad: 1, name: dw1}
  - {dwconv: 3, stride: 2, pad: same, multiplier: 2, activation: tanh, name: dw2}
  - {dwconv: 3, pad: 2, dilation: 2, name: dw3}
  - {conv: 6, kernel: 3, groups: 3, pad: 1, name: grouped}
  - flatten
  - {fc: 4, name: fc}
"""


def test_gradcheck_through_the_executor():
    # centred differences (float64) of every parameter and the input, per layer and through
    # the whole network, with auto (so the depthwise kernel) for every conv above
    from cnncalc.spec.loader import load_spec_text
    from cnncalc.runtime.gradcheck import gradcheck

    graph = load_spec_text(GRADCHECK_SPEC, file="dw.yaml")
    checks = gradcheck(graph, conv_algo="auto", entries=30)
    layers = {c.layer for c in checks}
    assert {"dw1", "dw2", "dw3", "grouped"} <= layers
    assert all(c.ok for c in checks), [c.to_dict() for c in checks if not c.ok]
