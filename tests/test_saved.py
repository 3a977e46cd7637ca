"""What autograd keeps for backward (cnncalc.analysis.saved) and the training step's liveness
walk (cnncalc.analysis.memory.training_step), by hand on small graphs. The totals against
PyTorch's own are in tests/interop/test_saved_torch.py."""
from pathlib import Path

import pytest

from cnncalc import analyze
from cnncalc.analysis.memory import matcher, saved_tensors, segments, training_step
from cnncalc.analysis.saved import RULES, layer_saves
from cnncalc.layers import REGISTRY
from cnncalc.spec import load_spec_text


def test_every_registered_layer_type_has_a_rule():
    assert set(RULES) == set(REGISTRY)


SPECS = Path(__file__).parent / "runtime" / "specs"
# the runtime's specs hold every layer type but these two (tests/runtime/test_executor.py)
EXTRA = {"identity": "input: 4x4x2\nlayers:\n  - {conv: 2, kernel: 1}\n  - identity\n",
         "opaque": "input: 4x4x2\nlayers:\n  - {conv: 2, kernel: 1}\n  - {opaque: custom_op, shape: 4x4x2}\n"}


def _examples():
    from cnncalc.spec import load_spec

    out = {}
    for s in ("all2d", "all1d", "acts", "channels", "channels1d", "new2d", "new1d", "new3d", "tensor", "tokens"):
        for node in load_spec(str(SPECS / f"{s}.yaml")).infer().layers:
            out.setdefault(node.layer.kind, node)
    for kind, text in EXTRA.items():
        for node in load_spec_text(text).infer().layers:
            out.setdefault(node.layer.kind, node)
    return out


def test_every_layer_type_gives_its_saves():
    """Each rule runs on a real inferred layer of its type, whichever inputs require a gradient
    and whether its parameters train, and names only inputs the layer has."""
    examples = _examples()
    assert set(REGISTRY) <= set(examples), set(REGISTRY) - set(examples)
    for kind, node in examples.items():
        n_in = len(node.inputs)
        for rg in ([True] * n_in, [False] * n_in):
            for w in (True, False):
                saves = layer_saves(node.layer, rg, w)
                if not any(rg) and not w:
                    assert saves == []  # autograd records nothing
                for e in saves:
                    assert e[0] in ("in", "out", "pre", "new"), (kind, e)
                    if e[0] == "in":
                        assert 0 <= e[1] < n_in
                    if e[0] == "new":
                        assert e[1] >= 0 and e[2] >= 0 and e[1] + e[2] > 0 and e[3] in ("act", "in", "int64", "float32", "bool")


BLOCK = """
input: 8x8x3
layers:
  - {conv: 4, kernel: 3, pad: 1, bias: false, name: c1}
  - {batchnorm, activation: relu, name: bn1}
  - {maxpool: 2, name: p1}
  - {conv: 4, kernel: 3, pad: 1, activation: silu, name: c2}
  - {dropout: 0.5, name: d}
  - flatten
  - {fc: 10, name: fc}
"""


def test_saved_by_hand():
    r = analyze(load_spec_text(BLOCK), batch=2)
    rows = {x.name: x.saved_bytes for x in r.layers}
    # c1 keeps the input (2·8·8·3 · 4 B); bn1 keeps c1's output (2·8·8·4 · 4) and mean, 1/std
    # (4 + 4 floats), its relu keeps its output (2·8·8·4 · 4); p1 keeps bn1's output (kept
    # already) and int64 indices (2·4·4·4 · 8); c2 keeps p1's output (2·4·4·4 · 4), its silu the
    # conv output before the activation (2·4·4·4 · 4); dropout its mask (2·4·4·4 · 4); fc its
    # input (a flatten view of the dropout's output, 2·64 · 4)
    assert rows == {"c1": 1536, "bn1": 2048 + 32 + 2048, "p1": 1024, "c2": 512 + 512, "d": 512,
                    "flatten1": 0, "fc": 512}
    assert r.memory["autograd_saved_bytes"] == sum(rows.values())


TOKENS = """
input: 4x4x2
layers:
  - {patch_embed: 8, patch: 2, name: embed}
  - {attention: 2, name: attn}
  - {mlp: 16, name: mlp}
"""


def test_token_layers_saved_by_hand():
    """2x2 patches of a 4x4x2 image: 4 tokens of 8; attention of 2 heads of 4; an MLP 8-16-8
    with GELU; fp32. Batch 2: embed keeps its input (2·32 values); attn keeps x (2·4·8), q·scale
    and a copy of kᵀ (2·2·4·4 each), the probabilities (2·2·4·4), a copy of v (2·2·4·4) and
    proj's input (2·4·8); mlp keeps its input (2·4·8), GELU's input and fc2's (2·4·16 each).
    Batch 1: one sequence, so kᵀ and v are views of qkv (4·24), kept whole instead of the copies."""
    g = load_spec_text(TOKENS)
    g.infer()
    two = saved_tensors(g, 2, 4)
    assert two.per_layer == {"embed": 4 * 64, "attn": 4 * 6 * 64, "mlp": 4 * (64 + 2 * 128)}
    one = saved_tensors(g, 1, 4)
    assert one.per_layer == {"embed": 4 * 32, "attn": 4 * (32 + 32 + 96 + 32 + 32), "mlp": 4 * (32 + 2 * 64)}
    # attention frozen (its input still requires a gradient): its linears keep no inputs, the
    # products still keep their operands (q·scale, kᵀ, probabilities, v); an MLP frozen keeps
    # GELU's input only
    frozen = saved_tensors(g, 2, 4, trainable=matcher(trainable=("embed",)))
    assert frozen.per_layer == {"embed": 4 * 64, "attn": 4 * 4 * 64, "mlp": 4 * 128}
    # the summary runs on token specs (it raised KeyError 'patch_embed')
    r = analyze(g, batch=2)
    assert r.memory["autograd_saved_bytes"] == two.total


def test_nothing_upstream_of_the_first_parameter_is_kept():
    r = analyze(load_spec_text("""
input: 4x4x2
layers:
  - {maxpool: 2, name: p}
  - {relu, name: a}
  - {conv: 2, kernel: 1, name: c}
"""))
    assert [x.saved_bytes for x in r.layers] == [0, 0, 2 * 2 * 2 * 4]


def test_frozen_layers_keep_less_and_backward_stops_at_the_first_trained():
    g = load_spec_text(BLOCK)
    g.infer()
    full = saved_tensors(g, 2, 4)
    fc_only = saved_tensors(g, 2, 4, trainable=matcher(trainable=("fc",)))
    assert fc_only.total == 512 and fc_only.per_layer["fc"] == 512  # only fc's input
    assert full.total > fc_only.total
    t = training_step(g, 2, trainable=("fc",), optimizer="adam", macs={"c1": 10, "c2": 20, "fc": 30})
    assert t.frozen_params and t.trainable_params == 64 * 10 + 10
    # no input gradient anywhere, fc's weight gradient only: forward 60 + 30
    assert t.training_macs == 60 + 30


def test_prefixes_match_names_and_modules():
    m = matcher(freeze=("layer1",))
    assert not m("layer1") and not m("layer1/conv1") and m("layer10/conv1")
    assert not matcher(freeze=("layer1*",))("layer10")
    assert matcher() is None


def test_segments_as_checkpoint_sequential_cuts_them():
    assert segments(10, every=4) == [(0, 3), (4, 7)]  # the last (8, 9) runs normally
    assert segments(10, count=3) == [(0, 2), (3, 5)]
    assert segments(10) == []


CHAIN = """
input: 16
layers:
  - {fc: 16, activation: relu, name: a}
  - {fc: 16, activation: relu, name: b}
  - {fc: 16, activation: relu, name: c}
  - {fc: 16, activation: relu, name: d}
"""


def test_chain_peak_by_hand():
    """Four fc+relu layers on a vector of 16, batch 1, SGD, fp32 (bytes = 4 × elements).
    Steps 0-3 forward, 4-7 backward (d, c, b, a). Kept: input x (16, the whole step), a, b, c
    (relu outputs, kept by the next fc and their relu) until the backward of a, b, c (steps 7,
    6, 5), d's output (kept by its relu) until step 4. Activation gradients: d's from step 4 to 4,
    c's 4..5, b's 5..6, a's 6..7; parameter gradients (272 each) from their layer's backward on.
    Step 4 (backward of d): x a b c d = 80, gradients of d and c = 32, fc d's parameter gradient 272."""
    g = load_spec_text(CHAIN)
    g.infer()
    t = training_step(g, 1, optimizer="sgd")
    params = 4 * 272 * 4
    live = [v - params for v in t.timeline]
    assert live[:4] == [4 * 32, 4 * 48, 4 * 64, 4 * 80]
    assert live[4] == 4 * (80 + 32 + 272)
    assert live[7] == 4 * (16 + 16 + 16 + 4 * 272)  # x, a, a's gradient; four parameter gradients
    assert t.peak == max(t.timeline) == params + 4 * (16 + 16 + 16 + 4 * 272)
    assert t.peak_parts == {"parameters, buffers, optimizer state": params, "activations and kept tensors": 4 * 32,
                            "activation gradients": 4 * 16, "parameter gradients so far": 4 * 4 * 272}


def test_checkpointed_chain_by_hand():
    """CHAIN with --checkpoint-every 2: layers a, b form a checkpointed segment, c, d run
    normally. Forward: a's output is dropped after b reads it (nothing in the segment is kept);
    b's is kept by c. Backward of b (step 6) runs a and b again: their outputs live from then
    to their own backward. Live (elements; parameters and their 4 · 272 gradients aside):
    steps 0-3: x a | x a b | x b c | x b c d; step 4: x b c d + gradients of d, c; step 5: x b c
    + gradients of c, b; step 6: x, a and b remade + gradients of b, a; step 7: x a + a's gradient."""
    g = load_spec_text(CHAIN)
    g.infer()
    t = training_step(g, 1, optimizer="sgd", checkpoint_every=2, macs={"a": 256, "b": 256, "c": 256, "d": 256})
    params = 4 * 272 * 4
    pgrads = [0, 0, 0, 0, 272, 544, 816, 1088]
    acts = [32, 48, 48, 64, 64 + 32, 48 + 32, 48 + 32, 32 + 16]
    assert [v - params for v in t.timeline] == [4 * (a + p) for a, p in zip(acts, pgrads)]
    assert t.recompute_macs == 512 and t.checkpointed == 1
    # kept through the forward: x (it enters the segment) and b, c, d
    assert t.saved == 4 * 4 * 16


def test_optimizer_state_and_mixed_precision_lines():
    g = load_spec_text(CHAIN)
    g.infer()
    lines = {o: dict((k, v) for k, v, _ in training_step(g, 1, optimizer=o).lines)
             for o in ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad")}
    n = 4 * 272
    assert [lines[o]["optimizer state"] for o in lines] == [0, 4 * n, 8 * n + 32, 8 * n + 32, 4 * n + 32, 4 * n + 32]  # + a 4-byte step per tensor (8)
    half = training_step(g, 1, precision="bf16-mixed")
    full = training_step(g, 1)
    h, f = dict((k, v) for k, v, _ in half.lines), dict((k, v) for k, v, _ in full.lines)
    assert h["parameters"] == f["parameters"] and h["parameter gradients"] == f["parameter gradients"]
    # saved: the input's half copy (16 · 2), a b c d relu outputs (4 · 16 · 2) + half weights (4 · 256 · 2)
    assert h["saved for backward"] == 16 * 2 + 4 * 16 * 2 + 4 * 256 * 2


def test_checkpointing_lowers_the_peak_and_recomputes_forward():
    g = load_spec_text("input: 32x32x3\nlayers:\n" + "".join(
        f"  - {{conv: 8, kernel: 3, pad: 1, activation: relu, name: c{i}}}\n" for i in range(8)))
    g.infer()
    macs = {f"c{i}": 1000 for i in range(8)}
    plain = training_step(g, 4, macs=macs)
    ck = training_step(g, 4, checkpoint_segments=4, macs=macs)
    assert ck.peak < plain.peak and ck.saved < plain.saved
    assert ck.recompute_macs == 6 * 1000  # three checkpointed segments of two layers
    assert ck.training_macs == plain.training_macs + 6000


def test_unknown_options_are_refused():
    from cnncalc.errors import CnnCalcError

    g = load_spec_text(CHAIN)
    with pytest.raises(CnnCalcError, match="optimizer"):
        training_step(g, 1, optimizer="lion")
    with pytest.raises(CnnCalcError, match="precision"):
        training_step(g, 1, precision="fp8")


def test_backward_transients_by_hand():
    """A 3x3 conv (8 -> 8) on a 2x2 map runs oneDNN's gemm path in backward; the 2x2 stride-2
    conv on the 4x4 map before it the jit path. Batch 2, fp32, one thread (docs/memory.md):
    - conv b (input 2x2x8, output 2x2x8): W = 8*8*9*4 = 2304 B, im2col of one image 8*9*4 px *4 B
      = 1152 B; scratchpad 4*2304 + 1152 + 256 = 10,624 B; gI + W + scratchpad counted over
      gI + W: 10,624;
    - conv a (input 4x4x8 from the input, no input gradient; output 2x2x8; W = 8*8*4*4 = 1024 B):
      weights phase X + gO + W = 2*512 + 2*128 + 1024 = 2304 (the batch of 2 reordered), the
      buffer and its copy W + W = 2048; over the W counted: 1280."""
    from cnncalc.analysis.memory import backward_transients

    g = load_spec_text("""
input: [4, 4, 8]
layers:
  - {conv: 8, kernel: 2, stride: 2, bias: false, name: a}
  - {conv: 8, kernel: 3, pad: 1, bias: false, name: b}
""")
    g.infer()
    a, b = (n.layer for n in g.layers)
    assert backward_transients(b, 2, 4, 4, True, True, 2 * 32 * 4) == (
        10_624, "convolution backward: gemm path (input 2 wide < kernel 3): scratchpad 4 x 2,304 + im2col 1,152 + 256 B")
    assert backward_transients(a, 2, 4, 4, False, True, 0)[0] == 1280
    t = training_step(g, 2, optimizer="sgd")
    assert t.transients == {"a": (1280, backward_transients(a, 2, 4, 4, False, True, 0)[1]),
                            "b": (10_624, backward_transients(b, 2, 4, 4, True, True, 256)[1])}
    # the peak is at b's backward: its transients are part of it, and --explain names them
    assert t.peak_layer == "b" and t.peak_step == 2 and t.peak_parts["backward transients"] == 10_624
    assert t.transient_note().startswith("backward transients 10,624 B at the backward of b: convolution backward: gemm")
    # a 1x1 unit-stride conv on a batch under 16 runs PyTorch's native kernel (ConvParams::use_mkldnn):
    # nothing beyond its gradients; at 16 oneDNN reorders its input and output gradient (16 * 128 B each)
    one = load_spec_text("input: [4, 4, 8]\nlayers:\n  - {conv: 8, kernel: 1, bias: false, name: p}\n")
    one.infer()
    p = one.layers[0].layer
    assert backward_transients(p, 15, 4, 4, True, True, 15 * 512)[0] == 0
    assert backward_transients(p, 16, 4, 4, True, True, 16 * 512)[0] == 16 * 512 + 16 * 512


BF16_TOKENS = """\
input: 4x4x2
layers:
  - {patch_embed: 8, patch: 2, name: embed}
  - {pos_embed: , name: pos}
  - {add: [[{layernorm: , name: norm}, {attention: 2, name: attn}], []], name: res}
  - {mean: , name: pool}
  - {fc: 3, name: head}
"""


def test_bf16_autocast_token_stream_by_hand():
    """Under bf16 autocast the fp32 position embedding makes the token stream fp32 (type
    promotion), so LayerNorm keeps an fp32 input, attention's qkv linear keeps a half copy of
    the fp32 LayerNorm output, the residual add is fp32 again; the linears' weights are kept
    as half copies. Batch 2, 4 tokens of 8, 2 heads of 4 (tests/interop/test_saved_torch.py
    holds the same rule against torch on DeiT, MobileViT and Swin)."""
    g = load_spec_text(BF16_TOKENS).infer()
    s = saved_tensors(g, 2, 2, input_bytes=4, mixed=True)
    tok = 2 * 4 * 8  # 64 values of the token stream
    assert s.per_layer == {
        "embed": 2 * 32 * 2,                 # a half copy of the fp32 image (2 x 4x4x2)
        "pos": 0,
        "norm": tok * 4 + 2 * (2 * 4 * 4),   # fp32 input + mean, 1/std per token (fp32)
        # half copy of the fp32 LayerNorm output, q·scale, kᵀ, probabilities 2 heads x 4 x 4,
        # v, the heads' output: all half
        "attn": tok * 2 + tok * 2 + tok * 2 + 2 * 2 * 16 * 2 + tok * 2 + tok * 2,
        "res": 0, "pool": 0,
        "head": 2 * 8 * 2,                   # a half copy of the fp32 mean (the stream stayed fp32)
    }
    assert s.total == 128 + 320 + 768 + 32
    # embed 8*2*2*2 + qkv 24*8 + proj 8*8 + head 3*8, 2 bytes each
    assert s.weight_copies == 2 * (64 + 192 + 64 + 24)
    fp32 = saved_tensors(g, 2, 4)  # without autocast: every tensor 4 bytes, no copies
    assert fp32.per_layer["norm"] == tok * 4 + 64 and fp32.per_layer["head"] == 2 * 8 * 4 and fp32.weight_copies == 0
