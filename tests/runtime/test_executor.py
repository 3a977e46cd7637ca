"""The executor: gradients of every layer type (float64 centred differences), allocation =
analysis counts, and an optional PyTorch cross-check of a whole small network."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnncalc
from cnncalc.runtime.executor import Net
from cnncalc.runtime.gradcheck import TOL, gradcheck

SPECS = Path(__file__).parent / "specs"
ALL = ["all2d", "all1d", "acts", "channels", "channels1d", "new2d", "new1d", "new3d", "tensor", "tokens"]


@pytest.mark.parametrize("name", ALL)
def test_gradcheck_every_layer_type(name):
    graph = cnncalc.load(SPECS / f"{name}.yaml")
    checks = gradcheck(graph, conv_algo="direct", entries=12)
    bad = [c.to_dict() for c in checks if not c.ok]
    assert not bad, bad
    assert max(c.rel_error for c in checks) <= TOL
    # every layer (and every parameter tensor) was checked
    assert {c.layer for c in checks} == {n.name for n in graph.layers} | {"network"}


@pytest.mark.parametrize("name", ["new1d", "new3d"])
def test_1d_3d_specs_cover_the_issue10_activations(name):
    # gradcheck in 1-D and 3-D as well as 2-D (issue 10): each as a layer of its own, prelu in
    # both forms, and (3-D) fused on a conv
    graph = cnncalc.load(SPECS / f"{name}.yaml").infer()
    kinds = {n.kind for n in graph.layers}
    assert {"elu", "selu", "softplus", "hardsigmoid", "prelu"} <= kinds
    assert {n.layer.args["slopes"] for n in graph.layers if n.kind == "prelu"} == {"channel", "shared"}
    assert {"elu", "selu", "softplus"} <= {n.layer.activation for n in graph.layers if n.kind == "conv"}
    assert len(graph.input_shape) == (2 if name == "new1d" else 4)


def test_specs_cover_every_layer_type():
    from cnncalc.layers import REGISTRY
    kinds = {n.kind for s in ALL for n in cnncalc.load(SPECS / f"{s}.yaml").infer().layers}
    # identity has no spec form of its own to exercise (it is the runtime's no-op op);
    # opaque (an imported op cnncalc cannot count) has no computation the runtime could run
    not_yet = {"identity", "opaque"}
    assert set(REGISTRY) - kinds <= not_yet, set(REGISTRY) - kinds


@pytest.mark.parametrize("algo", ["im2col", "fft"])
def test_gradcheck_other_conv_algorithms(algo):
    checks = gradcheck(cnncalc.load(SPECS / "all2d.yaml"), conv_algo=algo, entries=8, network=False)
    assert all(c.ok for c in checks), [c.to_dict() for c in checks if not c.ok]


@pytest.mark.parametrize("spec", ["lenet5", str(SPECS / "all2d.yaml"), str(SPECS / "all1d.yaml")])
def test_allocation_equals_analysis(spec):
    graph = cnncalc.load(spec)
    rep = cnncalc.analyze(graph)
    net = Net(graph)
    assert net.param_count() == rep.totals["params"]
    assert net.state_count() == rep.totals["nontrainable"]
    for node in graph.layers:
        assert net.param_count(node.name) == rep[node.name].params


def test_lenet5_count_by_hand():
    # LeNet-5 (dense C3): C1 (5*5*1+1)*6=156, C3 (5*5*6+1)*16=2416, C5 (5*5*16+1)*120=48120,
    # F6 (120+1)*84=10164, output (84+1)*10=850 → 61,706
    net = Net(cnncalc.load("lenet5"))
    assert net.param_count() == 156 + 2416 + 48120 + 10164 + 850 == 61706


def test_fanout_gradients_are_summed():
    # y = x + x through an add of two identity branches: dy/dx = 2
    g = cnncalc.load(SPECS / "all2d.yaml")  # ensure compiled
    from cnncalc.spec.loader import load_spec_text
    g = load_spec_text("name: t\ninput: 3x3x2\nlayers:\n  - {add: [[], []]}\n", file="t.yaml")
    net = Net(g, dtype="float64")
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 3))
    y = net.forward(x)
    (name, out), = y.items()
    np.testing.assert_allclose(out, 2 * x)
    dx = net.backward({name: np.ones_like(out)})
    np.testing.assert_allclose(dx, 2.0)


def test_flatten_is_c_major_like_pytorch():
    from cnncalc.spec.loader import load_spec_text
    g = load_spec_text("name: t\ninput: 2x3x4\nlayers:\n  - flatten\n", file="t.yaml")
    x = np.arange(24, dtype=np.float32).reshape(1, 4, 2, 3)
    (out,) = Net(g).forward(x).values()
    np.testing.assert_array_equal(out[0], np.arange(24))


def test_analysis_never_imports_numba():
    code = ("import sys, runpy; sys.argv = ['cnncalc', 'summarize', 'vgg16', '--format', 'json'];\n"
            "try:\n    runpy.run_module('cnncalc', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('numba', 'numpy') if m in sys.modules]\n"
            "sys.stderr.write('IMPORTED:' + ','.join(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).parents[2])
    assert "IMPORTED:" in r.stderr and r.stderr.rsplit("IMPORTED:", 1)[1].strip() == "", r.stderr


# ----------------------------------------------------------------------------- PyTorch
def _torch_net(torch, net, graph):
    """The same small conv/pool/bn/fc chain built in torch with the runtime's weights."""
    import torch.nn as nn
    mods = []
    for node in graph.layers:
        L, p = node.layer, net.params[node.name]
        if L.kind == "conv":
            m = nn.Conv2d(L.in_channels, L.filters, L.kernel, L.stride, [w.pad_lo for w in L.windows],
                          dilation=L.dilation, groups=L.groups)
            m.weight.data = torch.tensor(p["weight"]); m.bias.data = torch.tensor(p["bias"])
        elif L.kind == "maxpool":
            m = nn.MaxPool2d(L.kernel, L.stride, [w.pad_lo for w in L.windows])
        elif L.kind == "batchnorm":
            m = nn.BatchNorm2d(L.out_shape[-1]); m.weight.data = torch.tensor(p["gamma"])
            m.bias.data = torch.tensor(p["beta"])
        elif L.kind == "flatten":
            m = nn.Flatten()
        elif L.kind == "fc":
            m = nn.Linear(L.in_features, L.units)
            m.weight.data = torch.tensor(p["weight"]); m.bias.data = torch.tensor(p["bias"])
        else:
            raise AssertionError(L.kind)
        mods.append(m)
        if L.activation == "relu":
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pytorch_cross_check(seed):
    torch = pytest.importorskip("torch")
    from cnncalc.spec.loader import load_spec_text
    rng = np.random.default_rng(seed)
    c1, c2, k, g = int(rng.integers(2, 6)), int(rng.integers(1, 4)) * 2, int(rng.choice([1, 3, 5])), 2
    text = (f"name: r\nrounding: floor\ninput: 12x12x{2 * c1}\nlayers:\n"
            f"  - {{conv: {2 * c2}, kernel: {k}, pad: {k // 2}, groups: {g}, activation: relu, bn: true}}\n"
            f"  - {{maxpool: 2}}\n  - {{conv: 4, kernel: 3, stride: 2, pad: 1, activation: relu}}\n"
            f"  - flatten\n  - {{fc: 5}}\n")
    graph = load_spec_text(text, file="r.yaml")
    net = Net(graph, dtype="float32", seed=seed)
    tnet = _torch_net(torch, net, graph.infer())
    tnet.train()
    x = rng.standard_normal((3, 2 * c1, 12, 12)).astype(np.float32)
    labels = rng.integers(0, 5, 3)
    loss, dx = net.loss(x, labels, train=True)
    tx = torch.tensor(x, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tnet(tx), torch.tensor(labels))
    tloss.backward()
    assert abs(loss - tloss.item()) <= 1e-4 * abs(tloss.item())
    rel = np.linalg.norm(dx - tx.grad.numpy()) / np.linalg.norm(tx.grad.numpy())
    assert rel <= 1e-4
    convs = [n.name for n in graph.layers if n.kind == "conv"]
    tconvs = [m for m in tnet if isinstance(m, torch.nn.Conv2d)]
    for name, m in zip(convs, tconvs):
        gw = m.weight.grad.numpy()
        assert np.linalg.norm(net.grads[name]["weight"] - gw) <= 1e-4 * np.linalg.norm(gw)


def test_channel_layers_match_their_docstring_formulas(tmp_path):
    # independent of the executor's slicing: index formulas from cnncalc/layers/channels.py
    spec = tmp_path / "c.yaml"
    spec.write_text("input: 5x5x6\nlayers:\n"
                    "  - {pad_channels: 10, stride: 2, place: both, name: pa}\n"
                    "  - {channel_shuffle: 2, name: sh}\n"
                    "  - {split: 5, part: 3, name: sp}\n")
    net = Net(cnncalc.load(spec), dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 5))
    net.forward(x, keep=True)
    v = net.outputs_seen
    pa = v["pa"]
    assert pa.shape == (2, 10, 3, 3)                       # ceil(5/2) = 3, 6 + 4 channels
    for h in range(3):
        for w in range(3):
            assert np.array_equal(pa[:, 2:8, h, w], x[:, :, 2 * h, 2 * w])  # (10-6)//2 = 2 before
    assert not pa[:, :2].any() and not pa[:, 8:].any()
    sh = v["sh"]                                           # y[k*g + j] = x[j*(C/g) + k], g=2, C/g=5
    for j in range(2):
        for k in range(5):
            assert np.array_equal(sh[:, k * 2 + j], pa[:, j * 5 + k])
    assert np.array_equal(v["sp"], sh[:, 6:8])              # part 3 of 5 slices of 2: 6..7
    assert np.shares_memory(v["sp"], sh)                    # a view, as the analyzer claims (0 bytes)


def test_sub_batches_give_the_whole_batch_sums_for_any_thread_count():
    # lenet5 (no batch norm, no dropout) at batch 70 runs as sub-batches 32 + 32 + 6: the same
    # loss, input and parameter gradients and logits as one whole batch (float64: to rounding),
    # and bit-identical results with 1 and 2 threads (the sub-batch gradients are summed in
    # sub-batch order, not per thread)
    from cnncalc.runtime import _numba

    graph = cnncalc.load("lenet5")
    rng = np.random.default_rng(1)
    x = rng.random((70, 1, 32, 32))
    y = rng.integers(0, 10, 70)
    runs = {}
    try:
        for sub, threads in ((0, 1), (32, 1), (32, 2)):
            _numba.set_threads(threads)
            net = Net(graph, dtype="float64", conv_algo="im2col")
            net.sub_batch = sub
            assert net.sub_batched(70) == bool(sub)
            loss, dx = net.loss(x, y)
            runs[sub, threads] = (loss, dx, net.logits("output"),
                                  {(n, p): g for n, d in net.grads.items() for p, g in d.items()})
    finally:
        _numba.set_threads(None)
    whole, sub1, sub2 = runs[0, 1], runs[32, 1], runs[32, 2]
    assert sub1[0] == pytest.approx(whole[0], rel=1e-12)
    np.testing.assert_allclose(sub1[1], whole[1], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(sub1[2], whole[2], rtol=1e-10)
    assert sub1[3].keys() == whole[3].keys() == {(n.name, p) for n in graph.layers
                                                  for p in n.layer.param_shapes()}
    for k in whole[3]:
        np.testing.assert_allclose(sub1[3][k], whole[3][k], rtol=1e-10, atol=1e-14, err_msg=str(k))
    assert sub1[0] == sub2[0] and np.array_equal(sub1[1], sub2[1]) and np.array_equal(sub1[2], sub2[2])
    assert all(np.array_equal(sub1[3][k], sub2[3][k]) for k in whole[3])


def test_batch_norm_and_dropout_keep_whole_batches():
    # their training forward couples the samples (batch statistics, one mask per batch)
    net = Net(cnncalc.load(SPECS / "all2d.yaml"))
    assert any(n.layer.kind in ("batchnorm", "dropout") for n in net.graph.layers)
    assert not net.sub_batched(1000)
