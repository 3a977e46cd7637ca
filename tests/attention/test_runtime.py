"""The runtime's token layers (runtime/kernels/attention.py): float64 gradcheck of every layer and
the network, and the outputs of timm's ViT and Swin (window attention, shifted windows with their
mask, relative position bias, patch merging) with the same weights."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import cnncalc
from cnncalc.runtime.executor import Net
from cnncalc.spec.loader import load_spec_text

TOKENS = Path(__file__).parents[1] / "runtime" / "specs" / "tokens.yaml"  # (gradchecked by tests/runtime)
ALL = TOKENS.read_text()

TINY_VIT = """
name: tiny vit
input: 16x16x3
defaults:
  layernorm: {eps: 1.0e-6}
modules:
  block:
    layers:
      - add: [[{layernorm: , name: norm1}, {attention: 2, name: attn}], []]
        name: res1
      - add: [[{layernorm: , name: norm2}, {mlp: 32, name: mlp}], []]
        name: res2
layers:
  - {patch_embed: 16, patch: 4, name: patch_embed}
  - {cls_token: , name: cls_token}
  - {pos_embed: , name: pos_embed}
  - {block: , repeat: 2, name: "block$n"}
  - {layernorm: , name: norm}
  - {gather: 0, axis: 0, name: cls}
  - {fc: 5, name: head}
"""

TINY_SWIN = """
name: tiny swin
input: 16x16x3
modules:
  block:
    args: [shift, hidden]
    layers:
      - add: [[{layernorm: , name: norm1}, {attention: 2, window: 4, shift: $shift, name: attn}], []]
        name: res1
      - add: [[{layernorm: , name: norm2}, {mlp: $hidden, name: mlp}], []]
        name: res2
layers:
  - {patch_embed: 8, patch: 2, name: patch_embed}
  - {layernorm: , name: patch_norm}
  - {block: [0, 32], name: s1b0}
  - {block: [2, 32], name: s1b1}                  # shifted windows
  - {patch_merging: , name: merge}
  - {block: [0, 64], name: s2b0}                  # 4x4 tokens: one window, no shift (as timm)
  - {block: [0, 64], name: s2b1}
  - {layernorm: , name: norm}
  - {mean: , name: pool}
  - {fc: 3, name: head}
"""


def test_the_gradchecked_spec_has_every_token_layer():
    kinds = {n.kind for n in cnncalc.load(TOKENS).infer().layers}
    assert {"patch_embed", "attention", "patch_merging", "to_image", "tokens", "cls_token", "pos_embed", "mlp",
            "mean", "fc"} <= kinds


def test_gradient_at_the_zero_start_of_cls_and_pos_is_exact():
    """gradcheck moves the class token and the position embedding off their zero start (the cls
    row then meets ln2 with zero variance, where plain centred differences are off by ~(h²/ε)).
    At the start itself the analytic gradient still matches differences whose h² error is
    cancelled (Richardson), while plain ones show the h² truncation — so the move hides nothing."""
    from cnncalc.runtime.executor import random_input
    from cnncalc.runtime.gradcheck import rel_error
    from cnncalc.runtime.kernels.loss import softmax_cross_entropy

    graph = cnncalc.load(TOKENS)
    net = Net(graph, dtype="float64", conv_algo="direct", seed=0)
    x = random_input(graph.input_shape, 2, np.random.default_rng(0))
    labels = np.array([1, 3])
    net.loss(x, labels)
    cls, pos = net.params["cls"]["cls"], net.params["pos"]["pos"]
    assert not cls.any() and not pos.any()  # (the zero start)

    def f():
        net.forward(x, train=True)
        return softmax_cross_entropy(net.logits("head"), labels)[0]

    def diff(arr, idx, h):
        flat, out = arr.reshape(-1), []
        for i in idx:
            flat[i] = h
            fp = f()
            flat[i] = -h
            fm = f()
            flat[i] = 0.0
            out.append((fp - fm) / (2 * h))
        return np.array(out)

    for arr, g in ((cls, net.grads["cls"]["cls"]), (pos, net.grads["pos"]["pos"])):
        idx = np.arange(4)  # (the cls row of both)
        a = g.reshape(-1)[idx]
        d1, d2 = diff(arr, idx, 2e-5), diff(arr, idx, 1e-5)
        assert rel_error(d2, a) > 1e-6  # plain centred differences: h² truncation at a zero-variance row
        assert rel_error(d1, a) > 3.5 * rel_error(d2, a)  # ... that scales as h²
        assert rel_error((4 * d2 - d1) / 3, a) < 1e-8  # Richardson: the analytic gradient is exact


def test_memory_of_attention_is_what_the_runtime_keeps():
    # the scores' probabilities (heads x N x N) are among what the forward keeps for backward
    net = Net(load_spec_text(ALL), dtype="float64")
    net.forward(np.random.default_rng(0).standard_normal((1, 3, 16, 16)), train=True)
    sizes = [a.size for a in net.cache_arrays()]
    assert 2 * 17 * 17 in sizes  # attn: 2 heads x (16 tokens + cls)²


def _net_with(graph, state, mapping):
    net = Net(graph, dtype="float64")
    for key, value in state.items():
        name, tensor = mapping(key)
        if name is None:
            continue
        want = net.params[name][tensor].shape
        net.params[name][tensor] = value.detach().double().numpy().reshape(want)
    return net


def _vit_name(key):
    key = key.replace("patch_embed.proj.", "patch_embed.")
    m = re.match(r"blocks\.(\d+)\.(norm1|norm2|attn|mlp)\.(\w+)\.?(\w*)", key)
    if m:
        i, part, a, b = m.groups()
        layer = f"block{int(i) + 1}/{part}"
        if part.startswith("norm"):
            return layer, {"weight": "gamma", "bias": "beta"}[a]
        return layer, f"{a}_{b}"
    fixed = {"cls_token": ("cls_token", "cls"), "pos_embed": ("pos_embed", "pos"),
             "norm.weight": ("norm", "gamma"), "norm.bias": ("norm", "beta")}
    if key in fixed:
        return fixed[key]
    layer, tensor = key.rsplit(".", 1)
    return layer, tensor


def _swin_name(key):
    key = key.replace("head.fc.", "head.")
    if key.startswith("patch_embed.norm."):
        return "patch_norm", {"weight": "gamma", "bias": "beta"}[key.rsplit(".", 1)[1]]
    if key.startswith("patch_embed.proj."):
        return "patch_embed", key.rsplit(".", 1)[1]
    m = re.match(r"layers\.(\d)\.downsample\.(norm|reduction)\.(\w+)", key)
    if m:
        return "merge", {"norm.weight": "norm_gamma", "norm.bias": "norm_beta",
                         "reduction.weight": "weight"}[f"{m.group(2)}.{m.group(3)}"]
    m = re.match(r"layers\.(\d)\.blocks\.(\d)\.(norm1|norm2|attn|mlp)\.(\w+)\.?(\w*)", key)
    if m:
        s, b, part, a, t = m.groups()
        layer = f"s{int(s) + 1}b{b}/{part}"
        if part.startswith("norm"):
            return layer, {"weight": "gamma", "bias": "beta"}[a]
        if a == "relative_position_bias_table":
            return layer, "rel_pos_table"
        return layer, f"{a}_{t}"
    if key.startswith("norm."):
        return "norm", {"weight": "gamma", "bias": "beta"}[key.rsplit(".", 1)[1]]
    if "relative_position_index" in key or "attn_mask" in key:
        return None, None
    layer, tensor = key.rsplit(".", 1)
    return layer, tensor


@pytest.mark.parametrize("which", ["vit", "swin"])
def test_outputs_equal_timm(which):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    if which == "vit":
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=4, embed_dim=16,
                                  depth=2, num_heads=2, mlp_ratio=2.0, num_classes=5)
        graph, mapping = load_spec_text(TINY_VIT), _vit_name
    else:
        model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=16, patch_size=2,
                                  embed_dim=8, depths=(2, 2), num_heads=(2, 2), window_size=4, num_classes=3)
        graph, mapping = load_spec_text(TINY_SWIN), _swin_name
    model = model.double().eval()
    for p in model.parameters():  # (timm initialises the tables and some biases to zero: make them count)
        torch.nn.init.normal_(p, std=0.3)
    state = {k: v for k, v in model.state_dict().items()}
    net = _net_with(graph, state, mapping)
    assert net.param_count() == sum(p.numel() for p in model.parameters())
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16))  # (the runtime's layout: N, C, H, W)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = next(iter(net.forward(x).values()))
    assert np.allclose(got.reshape(want.shape), want, rtol=1e-9, atol=1e-9)


QV = """
name: qv biases
input: 8x8x4
layers:
  - {patch_embed: 8, patch: 2, name: embed}
  - {attention: 2, window: 2, shift: 1, qkv_bias: qv, name: sw}
  - {attention: 2, head_dim: 3, value_dim: 5, qkv_bias: qv, name: g}
  - {mean: , name: pool}
  - {fc: 3, name: head}
"""


def test_gradcheck_qv_bias():
    """qkv_bias: qv — q_bias and v_bias are gradchecked as every parameter is; there is no k bias."""
    from cnncalc.runtime.gradcheck import TOL, gradcheck

    g = load_spec_text(QV)
    checks = gradcheck(g, entries=12)
    assert all(c.ok for c in checks), [c.to_dict() for c in checks if not c.ok]
    assert max(c.rel_error for c in checks) <= TOL
    assert {(c.layer, c.tensor) for c in checks if "bias" in c.tensor and c.layer in ("sw", "g")} >= {
        ("sw", "q_bias"), ("sw", "v_bias"), ("g", "q_bias"), ("g", "v_bias")}
    assert not any(c.tensor == "qkv_bias" for c in checks)


def test_qv_is_the_qkv_bias_with_a_zero_k_part_that_gets_no_gradient():
    """A qv layer computes what a qkv_bias layer computes with the bias cat(q_bias, 0, v_bias), to
    the bit; its q_bias and v_bias gradients are that layer's q and v thirds, and the k third —
    which the qv layer does not have, so no step can move it — is the one the full layer would
    learn (zero up to rounding: softmax is unchanged by adding q·b_k to a whole row of scores)."""
    from cnncalc.runtime.executor import random_input

    def run(text):
        g = load_spec_text(text)
        g.infer()
        return g, Net(g, dtype="float64", seed=1)
    gq, nq = run(QV)
    gf, nf = run(QV.replace("qkv_bias: qv", "qkv_bias: true"))
    rng = np.random.default_rng(5)
    for name in nq.params:
        for t, a in nq.params[name].items():
            a[...] = rng.standard_normal(a.shape)
        if "q_bias" in nq.params[name]:
            p, lay = nq.params[name], gq[name].layer
            k = np.zeros(lay.h * lay.dk)
            nf.params[name].update({t: a.copy() for t, a in p.items() if t not in ("q_bias", "v_bias")})
            nf.params[name]["qkv_bias"] = np.concatenate([p["q_bias"], k, p["v_bias"]])
        else:
            nf.params[name] = {t: a.copy() for t, a in nq.params[name].items()}
    assert nf.param_count() - nq.param_count() == 2 * 4 + 2 * 3  # (the k biases: sw's h·dk, g's)
    x = random_input(gq.input_shape, 3, rng)
    y = np.array([0, 2, 1])
    losses = []
    for net in (nq, nf):
        net.zero_grad()
        losses.append(net.loss(x, y)[0])
    assert losses[0] == losses[1]
    for name, hd in (("sw", 8), ("g", 6)):
        gf_b = nf.grads[name]["qkv_bias"]
        assert set(nq.grads[name]) == {"qkv_weight", "q_bias", "v_bias", "proj_weight", "proj_bias"} | (
            {"rel_pos_table"} if name == "sw" else set())
        np.testing.assert_allclose(nq.grads[name]["q_bias"], gf_b[:hd], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(nq.grads[name]["v_bias"], gf_b[2 * hd:], rtol=1e-12, atol=1e-15)
        assert np.abs(gf_b[hd:2 * hd]).max() <= 1e-12 * np.abs(gf_b).max()


def test_qv_weights_round_trip_through_a_checkpoint(tmp_path):
    """A qv layer's tensors in a weights file (.npz, keys ``layer/tensor``): ``sw/q_bias`` (h·dk)
    and ``sw/v_bias`` (h·dv), no k bias; loading checks every name and shape against the spec."""
    from cnncalc.runtime import checkpoint as C

    g = load_spec_text(QV)
    g.infer()
    net = Net(g, seed=2)
    flat = {f"{n}/{t}": a for n, ps in net.params.items() for t, a in ps.items()}
    assert {k: a.shape for k, a in flat.items() if k.startswith("g/")} == {
        "g/qkv_weight": (22, 8), "g/q_bias": (6,), "g/v_bias": (10,), "g/proj_weight": (8, 10), "g/proj_bias": (8,)}
    path = C.save_checkpoint(tmp_path / "w.npz", C.Checkpoint(g.name, "hash", 1, flat))
    shapes = {f"{n.name}/{k}": s for n in g.layers for k, (s, _) in n.layer.owned_param_shapes().items()}
    back = C.load_checkpoint(path, param_shapes=shapes)
    assert set(back.params) == set(flat) and all(np.array_equal(back.params[k], a) for k, a in flat.items())


BEIT = """
name: a class token and 4x4 patches with BEiT's relative position bias, small
input: 8x8x3
layers:
  - {patch_embed: 8, patch: 2, name: embed}
  - {cls_token: , name: cls}
  - {attention: 2, bias_window: 4, cls_bias: true, qkv_bias: qv, name: attn}
  - {mean: , name: pool}
  - {fc: 3, name: head}
"""


def test_gradcheck_cls_bias_table():
    """cls_bias (BEiT): the (2·4 − 1)² + 3 x 2 table is gradchecked, its 3 class-token rows among
    the entries checked (the gradient of row T − 3 is the class query's scores' at the patch keys,
    T − 2 the patch queries' at the class key, T − 1 cls → cls)."""
    from cnncalc.runtime.gradcheck import TOL, gradcheck

    g = load_spec_text(BEIT)
    checks = gradcheck(g, entries=200)
    assert all(c.ok for c in checks), [c.to_dict() for c in checks if not c.ok]
    assert max(c.rel_error for c in checks) <= TOL
    assert any(c.layer == "attn" and c.tensor == "rel_pos_table" for c in checks)


def test_cls_bias_gradient_reaches_the_class_token_rows():
    """The table gradient by hand: each row collects the score gradients of the pairs that read it
    (summed over the batch), the three class-token rows included."""
    from cnncalc.runtime.executor import random_input
    from cnncalc.runtime.kernels.attention import rel_index

    g = load_spec_text(BEIT)
    g.infer()
    net = Net(g, dtype="float64", seed=4)
    rng = np.random.default_rng(6)
    for ps in net.params.values():
        for a in ps.values():
            a[...] = rng.standard_normal(a.shape) * 0.5
    net.zero_grad()
    net.loss(random_input(g.input_shape, 2, rng), np.array([0, 2]))
    dt = net.grads["attn"]["rel_pos_table"]
    assert dt.shape == (7 * 7 + 3, 2)
    assert np.all(np.abs(dt[-3:]) > 0)  # (the class token's rows learn)
    idx = rel_index(4, cls=True)
    assert idx.shape == (17, 17) and idx[0, 0] == 51 and set(idx[0, 1:]) == {49} and set(idx[1:, 0]) == {50}
    assert idx[1:, 1:].max() == 48 and np.array_equal(idx[1:, 1:], rel_index(4))


def test_cls_bias_equals_timm_beit_attention_and_sees_swapped_rows():
    """The runtime's attention with bias_window: 4, cls_bias: true equals timm's BEiT Attention (its
    q and v biases, its (2·4 − 1)² + 3 table, every parameter random) on 1 + 4x4 tokens; the index
    is timm's gen_relative_position_index; with the class token's rows T − 3 and T − 2 swapped
    (cls → patch read as patch → cls) the output is no longer timm's."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from timm.models.beit import Attention, gen_relative_position_index

    from cnncalc.runtime.kernels import attention as K

    assert np.array_equal(K.rel_index(4, cls=True), gen_relative_position_index((4, 4)).numpy())
    torch.manual_seed(0)
    m = Attention(8, num_heads=2, qkv_bias=True, window_size=(4, 4)).double().eval()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)
    p = {"qkv_weight": m.qkv.weight.detach().numpy(), "q_bias": m.q_bias.detach().numpy(),
         "v_bias": m.v_bias.detach().numpy(), "proj_weight": m.proj.weight.detach().numpy(),
         "proj_bias": m.proj.bias.detach().numpy(), "rel_pos_table": m.relative_position_bias_table.detach().numpy()}
    x = np.random.default_rng(2).standard_normal((3, 17, 8))
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    plan = K.Plan(2, 4, 4, 4 ** -0.5, bias_window=4, cls_bias=True)
    got, _ = K.attention_fwd(x, p, plan)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    t = p["rel_pos_table"].copy()
    t[[49, 50]] = t[[50, 49]]
    swapped, _ = K.attention_fwd(x, {**p, "rel_pos_table": t}, plan)
    assert np.abs(swapped - want).max() > 1e-3
