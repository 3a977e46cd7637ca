"""Memory lines and tensor liveness, checked by hand on small graphs."""
from cnncalc import analyze
from cnncalc.spec import load_spec_text


def test_chain_liveness_by_hand():
    # input 4x4x1 (16) → conv 4x4x8 (128) → relu in place → pool 2x2x8 (32) → flatten (view) → fc 10
    r = analyze(load_spec_text("""
input: 4x4x1
layers:
  - {conv: 8, kernel: 3, pad: 1, activation: relu}
  - {maxpool: 2}
  - flatten
  - {fc: 10}
"""))
    m, t = r.memory, r.totals
    assert t["input"] == 16 and t["activations"] == 128 + 32 + 10     # flatten is a view
    # step conv: input 16 + conv 128 live = 144; step pool: 128 + 32 = 160; step fc: 32 + 10 = 42
    assert m["inference_peak_activation_bytes"] == 160 * 4
    assert r.peak_at == "maxpool1"
    # gradients never include the input's: peak 128 + 32 = 160
    assert m["activation_gradient_peak_bytes"] == 160 * 4
    # saved for backward, as torch keeps them: conv its input (16 × 4 B), the fused relu its
    # output (128 × 4), maxpool its input (relu's output: counted already) and int64 indices
    # (32 × 8), fc its input (a view of the pool's output, 32 × 4)
    assert m["autograd_saved_bytes"] == 16 * 4 + 128 * 4 + 32 * 8 + 32 * 4 == 960
    assert m["backward_saved_bytes"] == (16 + 170) * 4  # what cnncalc's runtime keeps: every output
    assert [r.saved_bytes for r in r.layers] == [16 * 4 + 128 * 4, 32 * 8, 0, 32 * 4]
    trainable = (9 * 8 + 8) + (32 * 10 + 10)
    assert t["trainable"] == trainable
    assert m["training_total_bytes"] == (3 * trainable + 16 + 170 + 160) * 4


def test_branches_keep_their_input_alive():
    # the shortcut keeps x (8x8x4 = 256) alive while the residual branch runs
    r = analyze(load_spec_text("""
input: 8x8x4
layers:
  - add:
      - [{conv: 4, kernel: 3, pad: 1, name: a}, {conv: 4, kernel: 3, pad: 1, name: b}]
      - []
    name: sum
"""))
    # step b: input 256 (needed by sum) + a 256 + b 256 = 768
    assert r.memory["inference_peak_activation_bytes"] == 768 * 4


def _peak_by_steps(intervals, n_steps, skip=(), inside=()):
    """The peak walked step by step: at each step, the sum of every interval covering it (the
    definition, without running sums), and what the layer of that step writes inside itself
    (``inside``: one per step; attention's scores)."""
    best, where = 0, 0
    for step in range(n_steps):
        live = sum(size for name, (lo, hi, size) in intervals.items() if lo <= step <= hi and name not in skip)
        live += inside[step] if inside else 0
        if live > best:
            best, where = live, step
    return best, where


def test_peaks_agree_with_the_step_by_step_definition_on_every_zoo_spec():
    """``peaks`` (one running sum, the gradient's derived from it) against the sum over the
    intervals covering each step, for every shipped spec, at batch 1 and 3."""
    from cnncalc.analysis.memory import peaks, tensor_intervals
    from cnncalc.graph import INPUT
    from cnncalc.spec import load_spec
    from cnncalc.spec.loader import zoo_names

    for name in zoo_names():
        graph = load_spec(name)
        for batch in (1, 3):
            r = analyze(graph, batch=batch)
            sizes = {INPUT: r.totals["input"], **{row.name: 0 if row.view else row.activations for row in r.layers}}
            iv = tensor_intervals(graph, sizes)
            n = len(graph.nodes)
            internal = {row.name: row.internal for row in r.layers if row.internal}
            inside = [internal.get(name, 0) for name in graph.nodes]
            best, where = _peak_by_steps(iv, n, inside=inside)
            grad, _ = _peak_by_steps(iv, n, skip={INPUT}, inside=inside)
            assert peaks(graph, sizes, iv, internal) == (best, list(graph.nodes)[where], grad), name
            nb = r.memory["bytes_per_element"]
            assert r.memory["inference_peak_activation_bytes"] == best * nb, name
            assert r.memory["activation_gradient_peak_bytes"] == grad * nb, name
            assert r.peak_at == list(graph.nodes)[where], name
