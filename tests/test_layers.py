"""Shape and counting rules of each layer type, from first principles and by brute force."""
import pytest
from hypothesis import given, settings, strategies as st

from cnncalc import analyze
from cnncalc.errors import SpecError
from cnncalc.layers import REGISTRY
from cnncalc.layers.base import Window, slide
from cnncalc.spec import load_spec_text


def net(layers: str, input="32x32x3", extra=""):
    return analyze(load_spec_text(f"input: {input}\n{extra}layers:\n{layers}"))


def brute_positions(w, k, s, lo, hi, d=1):
    """Count window positions by sliding one: start at -lo, step s, the window's last tap
    must stay inside the padded input."""
    n, start = 0, -lo
    while start + d * (k - 1) <= w - 1 + hi:
        n += 1
        start += s
    return n


@given(w=st.integers(1, 60), k=st.integers(1, 9), s=st.integers(1, 5), lo=st.integers(0, 4),
       hi=st.integers(0, 4), d=st.integers(1, 3))
def test_slide_matches_brute_force(w, k, s, lo, hi, d):
    win = Window(k, s, lo, hi, d)
    expect = brute_positions(w, k, s, lo, hi, d)
    num = w + lo + hi - d * (k - 1) - 1
    if num < 0:
        with pytest.raises(SpecError):
            slide(w, win, "floor")
        return
    out, _ = slide(w, win, "floor")
    assert out == expect
    if num % s == 0:
        assert slide(w, win, "exact")[0] == expect
    else:
        with pytest.raises(SpecError, match="does not fit"):
            slide(w, win, "exact")


def test_ceil_drops_a_window_that_starts_in_the_padding():
    # PyTorch/Caffe ceil_mode: 5 with k=2, s=2, pad 1: ceil((5+2-2)/2)+1 = 4, but the 4th
    # window would start at 6-1 = 5 ≥ 5 + 1 (inside the right padding only) → 3
    assert slide(5, Window(2, 2, 1, 1), "ceil")[0] == 3
    # GoogLeNet: 112 → 3x3/2 max pool, ceil((112-3)/2)+1 = 56
    assert slide(112, Window(3, 2, 0, 0), "ceil")[0] == 56


def test_conv_first_principles():
    r = net("  - {conv: 10, kernel: 5, stride: 1, pad: 2}")
    row = r["conv1"]
    assert row.shape == (32, 32, 10)           # (32 + 2*2 - 5)/1 + 1 = 32
    assert row.weights == 5 * 5 * 3 * 10       # 75 per filter
    assert row.params == 760                   # 76 per filter
    assert row.macs == 32 * 32 * 10 * 75


def test_dilation_and_asymmetric_pad():
    r = net("  - {conv: 4, kernel: 3, dilation: 2, pad: [[0, 1], [2, 2]]}", input="10x10x1")
    # H: (10 + 0 + 1 - (2*2 + 1))/1 + 1 = 7; W: (10 + 4 - 5)/1 + 1 = 10
    assert r["conv1"].shape == (7, 10, 4)


def test_same_padding_tensorflow_rule():
    r = net("  - {conv: 4, kernel: 3, stride: 2, pad: same}", input="7x8x1")
    assert r["conv1"].shape == (4, 4, 4)       # ceil(7/2) = 4, ceil(8/2) = 4


def test_grouped_and_depthwise():
    r = net("  - {conv: 64, kernel: 3, pad: 1, groups: 4}\n  - {dwconv: 3, pad: 1}", input="8x8x32")
    assert r["conv1"].weights == 64 * (32 // 4) * 9
    assert r["dwconv1"].shape == (8, 8, 64)
    assert r["dwconv1"].weights == 64 * 9 and r["dwconv1"].macs == 8 * 8 * 64 * 9
    assert r["dwconv1"].type_key == "conv dw 3x3"


def test_untied_bias_alphago():
    r = net("  - {conv: 1, kernel: 1, bias: untied}", input="19x19x192")
    assert r["conv1"].weights == 192 and r["conv1"].biases == 19 * 19  # one bias per position


def test_transposed_conv_inverts_conv_shape():
    r = net("  - {conv: 8, kernel: 4, stride: 2, pad: 1}\n  - {deconv: 3, kernel: 4, stride: 2, pad: 1}",
            input="16x16x3")
    assert r["conv1"].shape == (8, 8, 8)       # (16 + 2 - 4)/2 + 1 = 8
    assert r["deconv1"].shape == (16, 16, 3)   # (8 - 1)*2 - 2*1 + 4 = 16
    assert r["deconv1"].weights == 8 * 3 * 16
    assert r["deconv1"].macs == 8 * 8 * 8 * 16 * 3


def test_locally_connected_untied_weights():
    r = net("  - {local: 2, kernel: 3}", input="5x5x1")
    assert r["local1"].shape == (3, 3, 2)
    assert r["local1"].weights == 3 * 3 * 2 * (3 * 3 * 1)  # a filter bank per output position
    assert r["local1"].biases == 3 * 3 * 2


def test_fc_pool_flatten_and_1x1_vectors():
    r = net("  - {maxpool: 2}\n  - flatten\n  - {fc: 10}\n", input="4x4x2")
    assert r["flatten1"].shape == (8,) and r["flatten1"].view
    assert r["fc1"].weights == 80 and r["fc1"].biases == 10
    r = net("  - global_avgpool\n  - {fc: 10}", input="7x7x64")   # 1x1x64 is a vector
    assert r["global_avgpool1"].shape == (1, 1, 64)
    assert r["fc1"].weights == 640


def test_batchnorm_counts_trainable_and_state_apart():
    r = net("  - {conv: 16, kernel: 3, pad: 1, bias: false, bn: true, activation: relu}")
    assert r["conv1"].biases == 0
    bn = r["conv1_bn"]
    assert (bn.weights, bn.biases, bn.nontrainable) == (16, 16, 32)
    assert r.totals["trainable"] == 3 * 9 * 16 + 32
    assert r.totals["params_with_state"] == r.totals["trainable"] + 32   # what Keras prints


def test_maxout_and_one_dimensional_layers():
    r = net("  - {conv: 100, kernel: 3}\n  - {maxout: 4}\n  - global_maxpool", input="56x300")
    assert r["conv1"].shape == (54, 100)       # 1-D: (56 - 3)/1 + 1 = 54
    assert r["conv1"].weights == 3 * 300 * 100
    assert r["maxout1"].shape == (54, 25)
    assert r["global_maxpool1"].shape == (1, 25)


def test_other_ops_are_counted_apart_from_macs():
    r = net("  - {conv: 2, kernel: 1, activation: relu}\n  - {maxpool: 2}", input="4x4x1")
    ops = r.totals["ops"]
    assert ops["bias"] == 4 * 4 * 2 and ops["activation"] == 4 * 4 * 2
    assert ops["pool"] == 2 * 2 * 2 * (4 - 1)   # 3 comparisons per 2x2 window
    assert r.totals["macs"] == 4 * 4 * 2


def test_registry_layers_document_themselves():
    for kind, cls in REGISTRY.items():
        assert cls.kind == kind and cls.doc, kind
