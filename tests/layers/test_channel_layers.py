"""pad_channels, channel_shuffle, split: parameter-free channel plumbing (hand arithmetic)."""
import pytest
from hypothesis import given, strategies as st

import cnncalc
from cnncalc.errors import SpecError
from cnncalc.spec.loader import load_spec_text


def _an(body, inp="32x32x16"):
    return cnncalc.analyze(load_spec_text(f"input: {inp}\nlayers:\n{body}"))


def test_pad_channels_option_a_shortcut():
    # He et al. 2016 Sec. 4.2 option A: 32x32x16 → subsample by 2 → 16x16x16 → pad to 32 channels
    r = _an("  - {pad_channels: 32, stride: 2, name: sc}\n")
    assert r["sc"].shape == (16, 16, 32)
    assert r["sc"].params == 0 and r["sc"].macs == 0
    assert r["sc"].activations == 16 * 16 * 32


def test_pad_channels_inside_a_residual_add():
    r = _an("  - add:\n"
            "      - - {conv: 32, kernel: 3, stride: 2, pad: 1, rounding: floor, bias: false}\n"
            "      - - {pad_channels: 32, stride: 2}\n")
    assert r.totals["params"] == 3 * 3 * 16 * 32
    assert r.layers[-1].shape == (16, 16, 32)


def test_pad_channels_odd_size_takes_ceil():
    r = _an("  - {pad_channels: 8, stride: 2, name: sc}\n", inp="7x7x3")
    assert r["sc"].shape == (4, 4, 8)  # positions 0, 2, 4, 6


def test_pad_channels_cannot_shrink():
    with pytest.raises(SpecError, match="only add channels"):
        _an("  - {pad_channels: 8}\n")


def test_pad_channels_receptive_field_window():
    g = load_spec_text("input: 8x8x4\nlayers:\n  - {pad_channels: 8, stride: 2, name: sc}\n").infer()
    (wh, ww) = g["sc"].layer.rf_windows()
    assert (wh.kernel, wh.stride, wh.pad_lo, wh.pad_hi) == (1, 2, 0, 0)


def test_channel_shuffle_is_free_and_keeps_shape():
    r = _an("  - {channel_shuffle: 4, name: s}\n")
    assert r["s"].shape == (32, 32, 16) and r["s"].params == 0 and r["s"].macs == 0
    with pytest.raises(SpecError, match="divisible"):
        _an("  - {channel_shuffle: 3}\n")


def test_split_halves_are_views_and_concat_back():
    r = _an("  - concat:\n"
            "      - - {split: 2, part: 0, name: a}\n"
            "      - - {split: 2, part: 1, name: b}\n"
            "        - {conv: 8, kernel: 1, name: c}\n"
            "    name: cat\n")
    assert r["a"].shape == (32, 32, 8) and r["a"].view
    assert r["c"].params == 8 * 8 + 8
    assert r["cat"].shape == (32, 32, 16)
    with pytest.raises(SpecError, match="part 2 does not exist"):
        _an("  - {split: 2, part: 2}\n")


@given(c=st.integers(1, 64), extra=st.integers(0, 64), s=st.integers(1, 4), w=st.integers(1, 40))
def test_pad_channels_shape_rule(c, extra, s, w):
    r = _an(f"  - {{pad_channels: {c + extra}, stride: {s}, name: sc}}\n", inp=f"{w}x{w}x{c}")
    assert r["sc"].shape == (len(range(0, w, s)), len(range(0, w, s)), c + extra)
