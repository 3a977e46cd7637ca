"""A generated 10,000-layer spec loads and is analyzed (timing lives in benchmarks/)."""
from cnncalc import analyze
from cnncalc.spec import load_spec_text


def test_ten_thousand_layers():
    r = analyze(load_spec_text("input: 8x8x4\nlayers:\n  - {conv: 4, kernel: 3, pad: 1, repeat: 10000}\n"))
    assert len(r.layers) == 10_000
    assert r.totals["params"] == 10_000 * (9 * 4 * 4 + 4)
    assert r.memory["inference_peak_activation_bytes"] == 2 * 256 * 4
