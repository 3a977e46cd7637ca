"""Shared layers (`shares:` on conv and dwconv; docs/spec-language.md): tests/runtime/specs/shared.yaml
uses a 3x3 conv of 4 → 4 channels twice and a 3x3 depthwise conv twice. Counted by hand: the
parameters once (conv 3·3·4·4 + 4 = 148, dwconv 3·3·4 + 4 = 40, the 1x1 head 4·3 + 3 = 15: 203),
the MACs per use (6·6·4·36 = 5,184 twice, 6·6·4·9 = 1,296 twice, 6·6·3·4 = 432: 13,392), and a
weight gradient per use in training; the runtime's gradient of the shared tensor is the sum of
both uses' (against PyTorch calling one module twice)."""
from __future__ import annotations

import numpy as np
import pytest

import cnncalc
from cnncalc.analysis.report import analyze_graph
from cnncalc.errors import SpecError
from cnncalc.runtime.executor import Net, random_input
from cnncalc.spec.loader import load_spec_text

SPEC = "tests/runtime/specs/shared.yaml"


def test_parameters_once_macs_and_weight_gradients_per_use():
    g = cnncalc.load(SPEC).infer()
    r = analyze_graph(g)
    t = r.totals
    assert (t["params"], t["macs"]) == (148 + 40 + 15, 2 * 5184 + 2 * 1296 + 432)
    assert t["weight_grad_macs"] == t["macs"]  # (every use forms its weight gradient)
    assert [r[n].params for n in ("c1", "c2", "d1", "d2")] == [148, 0, 40, 0]
    assert r.memory["params_bytes"] == r.memory["gradients_bytes"] == 203 * 4
    net = Net(g)
    assert net.param_count() == 203 and "c2" not in net.params and net.params["c2"] is net.params["c1"]


def test_freezing_a_shared_tensor_freezes_every_use():
    """--freeze names parameters; a shared tensor is one (PyTorch names it at its owner). By hand,
    batch 1, MACs fwd 13,392 (docstring): all trained, input gradients c2 5,184 + d1 1,296 + d2
    1,296 + head 432 = 8,208 and weight gradients 13,392 → 34,992. c1 frozen: c1 and c2 form no
    weight gradient and no gradient flows into c2 or d1 (nothing trained upstream): input
    gradients d2 1,296 + head 432 = 1,728, weight gradients d1, d2, head 1,296·2 + 432 = 3,024 →
    18,144 (c2 counted as trained before: 24,624)."""
    from cnncalc.analysis.memory import training_step

    g = cnncalc.load(SPEC).infer()
    macs = {r.name: r.macs for r in analyze_graph(g).layers if r.macs}

    def step(*freeze):
        t = training_step(g, 1, macs=macs, freeze=freeze)
        return t.training_macs, t.trainable_params, t.frozen_params, t.peak, t.saved, t.timeline

    full = step()
    assert full[:3] == (34_992, 203, 0)
    assert step("c1")[:3] == (18_144, 55, 148)
    assert step("c1") == step("c1", "c2")  # every use of the owner's tensor frozen: memory too
    assert step("c2") == full  # a sharer holds nothing of its own
    assert step("d1") == step("d1", "d2") != full


def _spec(lines):
    return load_spec_text("name: s\ninput: 6x6x4\nlayers:\n" + "".join(f"  - {l}\n" for l in lines)).infer()


@pytest.mark.parametrize("lines, match", [
    (["{conv: 4, kernel: 3, pad: 1, name: c1, shares: c9}"], "not a layer defined before"),
    (["{conv: 4, kernel: 3, pad: 1, name: c1, shares: c2}", "{conv: 4, kernel: 3, pad: 1, name: c2}"],
     "not a layer defined before"),
    (["{conv: 4, kernel: 3, pad: 1, name: c1}", "{dwconv: 3, pad: 1, shares: c1}"], "a conv layer; this is a dwconv"),
    (["{conv: 4, kernel: 3, pad: 1, name: c1}", "{conv: 4, kernel: 5, pad: 2, shares: c1}"], "other shapes"),
    (["{conv: 4, kernel: 3, pad: 1, name: c1}", "{conv: 4, kernel: 3, pad: 1, name: c2, shares: c1}",
      "{conv: 4, kernel: 3, pad: 1, shares: c2}"], "itself shares 'c1'"),
    (["{conv: 4, kernel: 3, pad: 1, name: c1, shares: 3}"], "names the layer whose parameters"),
    (["{local: 4, kernel: 3, name: c1}", "{local: 4, kernel: 3, shares: c1}"], "shares"),
])
def test_a_wrong_shares_is_an_error(lines, match):
    with pytest.raises(SpecError, match=match):
        _spec(lines)


@pytest.mark.slow
def test_gradients_of_a_shared_tensor_sum_its_uses_as_pytorch_does():
    """The exported module (one nn.Conv2d, called again through F.conv2d) and the runtime: the same
    outputs and the same parameter gradients at batch 3 (float64)."""
    torch = pytest.importorskip("torch")
    from cnncalc.interop.torch_export import torch_source, torch_state_dict

    g = cnncalc.load(SPEC).infer()
    net = Net(g, dtype="float64", seed=4)
    for d in net.params.values():  # (values a float32 state_dict holds exactly)
        for a in d.values():
            a[...] = a.astype(np.float32)
    rng = np.random.default_rng(1)
    x = random_input(g.input_shape, 3, rng)
    y = net.forward(x, train=True)["head"]
    dy = rng.standard_normal(y.shape)
    net.backward({"head": dy})
    ns = {}
    exec(compile(torch_source(g), "net.py", "exec"), ns)
    m = ns["Net"]().double()
    m.load_state_dict({k: v.double() for k, v in torch_state_dict(g, net.params, net.state).items()})
    assert sum(p.numel() for p in m.parameters()) == 203
    yt = m(torch.from_numpy(x))
    np.testing.assert_allclose(yt.detach().numpy(), y, rtol=1e-10, atol=1e-12)
    (yt * torch.from_numpy(dy)).sum().backward()
    got = dict(m.named_parameters())
    assert set(got) == {"c1.weight", "c1.bias", "d1.weight", "d1.bias", "head.weight", "head.bias"}
    for layer in ("c1", "d1", "head"):
        for t in ("weight", "bias"):
            np.testing.assert_allclose(net.grads[layer][t], got[f"{layer}.{t}"].grad.numpy(), rtol=1e-9, atol=1e-12)
    assert "c2" not in net.grads or not net.grads["c2"]


def test_autocast_copies_a_shared_weight_once():
    """Under bf16 autocast PyTorch casts a parameter once per forward and gives every use that copy
    (its cast cache): the half copies kept for backward are c1's 3·3·4·4, d1's 3·3·4 and the head's
    4·3 weights, 2 bytes each, once."""
    from cnncalc.analysis.memory import saved_tensors

    g = cnncalc.load(SPEC).infer()
    s = saved_tensors(g, 1, 2, mixed=True)
    assert s.weight_copies == (144 + 36 + 12) * 2
