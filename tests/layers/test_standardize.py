"""Weight standardisation on conv / dwconv (`standardize:`, issue 23: BiT's StdConv2d, NFNet's
ScaledStdConv2d): parameters = weight + bias + gain (hand arithmetic), MACs unchanged, the
runtime's forward against PyTorch's F.batch_norm formula (timm's, written out here) and
its backward against finite differences (gradcheck), bad fields exit 2."""
import numpy as np
import pytest

import cnncalc
from cnncalc.spec.loader import load_spec_text
from tests.conftest import run_module

SPEC = """input: 6x6x3
layers:
  - {conv: 4, kernel: 3, pad: 1, standardize: {eps: 1.0e-5, gain: true, scale: fan_in, gamma: 1.7}, activation: relu, name: a}
  - {dwconv: 3, multiplier: 2, standardize: true, name: b}
  - {conv: 2, kernel: 1, groups: 2, bias: false, standardize: {eps: 1.0e-4, scale: 0.5}, name: c}
  - {flatten: , name: f}
  - {fc: 3, name: fc}
"""


def test_parameters_are_weight_bias_and_gain_and_macs_do_not_change():
    r = cnncalc.analyze(load_spec_text(SPEC))
    # a: 3*3*3*4 = 108 weights + 4 gains + 4 biases = 116; MACs 6*6*4 * 27 = 3,888
    assert (r["a"].weights, r["a"].biases, r["a"].params, r["a"].macs) == (112, 4, 116, 3888)
    # b: depthwise, 8 filters of 3*3 = 72 + 8 biases, no gain; 4*4*8 * 9 = 1,152 MACs
    assert (r["b"].params, r["b"].macs) == (80, 1152)
    # c: groups 2, 2 filters of 1*1*4 = 8, no bias, no gain; 4*4*2 * 4 = 128 MACs
    assert (r["c"].params, r["c"].macs) == (8, 128)
    # the standardisation is no per-image op: the conv's ops are its bias and activation only
    assert r["a"].ops == {"bias": 144, "activation": 144}
    plain = cnncalc.analyze(load_spec_text(SPEC.replace("standardize: {eps: 1.0e-5, gain: true, scale: fan_in, "
                                                          "gamma: 1.7}, ", "")))
    assert plain["a"].params == 112 and plain["a"].macs == 3888


def test_explain_names_the_gain_and_how_the_standardisation_is_counted(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(SPEC)
    res = run_module("summarize", p, "--explain")
    assert res.returncode == 0, res.stderr
    assert "params: (3*3*3)*4 + 4 gains + 4 = 116" in res.stdout
    assert "weight standardisation of 4 filters x 27 weights, once per forward pass" in res.stdout


def _reference(w, eps, s):
    """timm's F.batch_norm(w.reshape(1, F, -1), None, None, weight=s, training=True, eps=eps),
    written out in float64: per filter, mean and biased variance over its fan-in."""
    v = w.reshape(w.shape[0], -1).astype(np.float64)
    mu = v.mean(1, keepdims=True)
    var = ((v - mu) ** 2).mean(1, keepdims=True)
    return ((v - mu) / np.sqrt(var + eps) * np.reshape(s, (-1, 1))).reshape(w.shape)


def test_runtime_forward_is_the_standardised_convolution():
    from cnncalc.runtime.executor import Net

    g = load_spec_text(SPEC)
    net = Net(g, dtype="float64", seed=3)
    rng = np.random.default_rng(0)
    net.params["a"]["gain"][...] = 0.5 + rng.random(4)
    x = rng.standard_normal((2, 3, 6, 6))
    net.forward(x, keep=True)
    seen = net.outputs_seen
    # a: the standardised weight, times gain * 1.7 / sqrt(27), then a plain conv (direct sums)
    pa = net.params["a"]
    wa = _reference(pa["weight"], 1e-5, pa["gain"] * 1.7 / np.sqrt(27))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.einsum("nchwij,fcij->nfhw", np.lib.stride_tricks.sliding_window_view(xp, (3, 3), (2, 3)), wa)
    want = np.maximum(want + pa["bias"][None, :, None, None], 0)
    np.testing.assert_allclose(seen["a"], want, rtol=1e-10, atol=1e-12)
    # each standardised filter has mean 0 and (biased) variance 1 / (1 + eps / var): check the
    # reference itself on c, whose scale is 0.5
    wc = _reference(net.params["c"]["weight"], 1e-4, np.full(2, 0.5))
    assert np.allclose(wc.reshape(2, -1).mean(1), 0)
    want_c = np.einsum("nchw,fc->nfhw", seen["b"][:, :4], wc[:1, :, 0, 0])
    np.testing.assert_allclose(seen["c"][:, :1], want_c, rtol=1e-10, atol=1e-12)


def test_runtime_matches_torch_batch_norm_on_the_weight():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from cnncalc.runtime.executor import standardize_forward

    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    gain = (0.5 + rng.random(5)).astype(np.float32)
    scale = 1.7 * 27 ** -0.5
    ours, _ = standardize_forward(w, 1e-5, scale, gain)
    tw = torch.from_numpy(w)
    theirs = F.batch_norm(tw.reshape(1, 5, -1), None, None, weight=(torch.from_numpy(gain) * scale).view(-1),
                          training=True, momentum=0.0, eps=1e-5).reshape_as(tw)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_gradients_through_the_standardisation_match_finite_differences():
    from cnncalc.runtime.gradcheck import TOL, gradcheck

    checks = gradcheck(load_spec_text(SPEC), batch=2, seed=0)
    names = {c.tensor for c in checks}
    assert {"a.weight", "a.gain", "b.weight", "c.weight"} <= names
    bad = [c for c in checks if not c.rel_error <= TOL]
    assert not bad, bad


@pytest.mark.parametrize("field,msg", [
    ("standardize: 3", "'standardize' must be true, false or a mapping"),
    ("standardize: {eps: 0}", "'standardize.eps' must be greater than 0"),
    ("standardize: {gain: 1}", "'standardize.gain' must be true or false"),
    ("standardize: {scale: -1}", "'standardize.scale' must be a positive number or fan_in"),
    ("standardize: {epsilon: 1}", "unknown key 'epsilon' in 'standardize'"),
])
def test_bad_standardize_fields_exit_2(tmp_path, field, msg):
    p = tmp_path / "s.yaml"
    p.write_text(f"input: 6x6x3\nlayers:\n  - conv: 4\n    kernel: 3\n    {field}\n")
    res = run_module("summarize", p)
    assert res.returncode == 2 and msg in res.stderr and "Traceback" not in res.stderr, res.stderr
