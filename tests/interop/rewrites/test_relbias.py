"""The relbias family's rewrites (cnncalc/interop/onnx/rewrites/relbias.py): a learned table read
by query-key offsets and added to attention logits, as torch.onnx.export writes LeViT's and
EfficientViT-M's attention biases (a Gather of the table by a constant index; one head's row
of it) or as constant folding leaves it (the gathered values as one initializer): one relbias
layer holding the table (its parameters), the outputs those of onnxruntime."""
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop import InteropError  # noqa: E402
from cnncalc.interop.onnx import import_model  # noqa: E402
from cnncalc.runtime.kernels.tensor import relbias_index  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402
from tests.interop.rewrites.graphs import covers, lifted, model, node, w  # noqa: E402


def _i(*v):
    return np.array(v, np.int64)


# LeViT's AttentionDownsample on a 4 x 4 grid of 8 channels: keys at every position, queries
# at every 2nd ((0, 0), (0, 2), (2, 0), (2, 2)), 2 heads of 4: logits (1, 2, 4, 16)
IDX = relbias_index((4, 4), (2, 2), "abs")


def _logits():
    nodes = [node("Transpose", ["x"], ["t"], "/tok/Transpose", perm=[0, 2, 1]),            # (1, 16, 8)
             node("MatMul", ["t", "attn.k.weight"], ["kp"], "/attn/k/MatMul"),
             node("Reshape", ["kp", "s_k"], ["k4"], "/attn/Reshape"),                     # (1, 16, 2, 4)
             node("Transpose", ["k4"], ["k"], "/attn/Transpose", perm=[0, 2, 3, 1]),      # (1, 2, 4, 16)
             node("Reshape", ["t", "s_grid"], ["g"], "/attn/q/Reshape"),                  # (1, 4, 4, 8)
             node("Slice", ["g", "z2", "e2", "a12", "st2"], ["gs"], "/attn/q/Slice"),     # (1, 2, 2, 8)
             node("Reshape", ["gs", "s_q"], ["qt"], "/attn/q/Reshape_1"),                 # (1, 4, 8)
             node("MatMul", ["qt", "attn.q.weight"], ["qp"], "/attn/q/MatMul"),
             node("Reshape", ["qp", "s_qh"], ["q4"], "/attn/Reshape_1"),                  # (1, 4, 2, 4)
             node("Transpose", ["q4"], ["q"], "/attn/Transpose_1", perm=[0, 2, 1, 3]),    # (1, 2, 4, 4)
             node("MatMul", ["q", "k"], ["sc"], "/attn/MatMul")]                          # (1, 2, 4, 16)
    inits = {"attn.k.weight": w(8, 8), "attn.q.weight": w(8, 8), "s_k": _i(1, 16, 2, 4),
             "s_grid": _i(1, 4, 4, 8), "z2": _i(0, 0), "e2": _i(4, 4), "a12": _i(1, 2), "st2": _i(2, 2),
             "s_q": _i(1, 4, 8), "s_qh": _i(1, 4, 2, 4)}
    return nodes, inits


def _import(m):
    imp = import_model(m, source="m.onnx")
    g = load_spec_text(imp.text)
    g.infer()
    return g, imp


@covers("relbias_table", "relbias_add")
def test_levit_table_gathered_by_a_strided_abs_index_is_one_relbias_layer():
    nodes, inits = _logits()
    table = w(2, 16)
    nodes += [node("Gather", ["attn.attention_biases", "attn.idx"], ["b"], "/attn/Gather", axis=1),
              node("Add", ["sc", "b"], ["biased"], "/attn/Add"),
              node("Softmax", ["biased"], ["y"], "/attn/Softmax", axis=-1)]
    m = model(nodes, {**inits, "attn.attention_biases": table, "attn.idx": IDX}, x=(1, 8, 16))
    kinds = lifted(m)  # (outputs = onnxruntime's)
    assert kinds.count("relbias") == 1
    g, imp = _import(m)
    rb = next(n for n in g.layers if n.kind == "relbias").layer
    assert (rb.grid, rb.stride, rb.args["offsets"], rb.table) == ((4, 4), (2, 2), "abs", (2, 16))
    # the table's 32 values, not the 2·4·16 = 128 it is read at; and the two 8 x 8 projections
    assert analyze_graph(g).totals["params"] == 2 * 16 + 2 * 64
    held = next(v for v in imp.params.values() if "table" in v)["table"]
    assert np.array_equal(held, table)


@covers("relbias_table", "relbias_add")
def test_efficientvit_one_row_per_head():
    """EfficientViT-M's cascaded heads: the table read once, then one head's row per head
    (Gather axis 0 of a scalar), each added to that head's logits: a relbias of one head each,
    holding its row (the two rows together are the table)."""
    nodes, inits = _logits()
    table = w(2, 16)
    nodes += [node("Gather", ["attn.attention_biases", "attn.idx"], ["b"], "/attn/Gather", axis=1),
              node("Gather", ["sc", "zero"], ["sc0"], "/attn/Gather_1", axis=1),           # head 0's logits
              node("Gather", ["sc", "one"], ["sc1"], "/attn/Gather_2", axis=1),
              node("Gather", ["b", "zero"], ["b0"], "/attn/Gather_3", axis=0),
              node("Gather", ["b", "one"], ["b1"], "/attn/Gather_4", axis=0),
              node("Add", ["sc0", "b0"], ["a0"], "/attn/Add"),
              node("Add", ["b1", "sc1"], ["a1"], "/attn/Add_1"),
              node("Softmax", ["a0"], ["y0"], "/attn/Softmax", axis=-1),
              node("Softmax", ["a1"], ["y1"], "/attn/Softmax_1", axis=-1),
              node("Add", ["y0", "y1"], ["y"], "/attn/Add_2")]
    m = model(nodes, {**inits, "attn.attention_biases": table, "attn.idx": IDX, "zero": _i(0).reshape(()),
                      "one": _i(1).reshape(())}, x=(1, 8, 16))
    assert lifted(m).count("relbias") == 2
    g, imp = _import(m)
    assert analyze_graph(g).totals["params"] == 2 * 16 + 2 * 64
    rows = [v["table"] for v in imp.params.values() if "table" in v]
    assert [r.shape for r in rows] == [(1, 16), (1, 16)]
    assert np.array_equal(np.concatenate(rows), table)


@covers("relbias_add")
def test_folded_read_is_rebuilt_into_its_table():
    """do_constant_folding evaluated the Gather: a learned (2, 4, 16) initializer added to the
    logits before the softmax. Its values agree with one smallest rule only (abs offsets on
    4 x 4, queries every 2nd): the 32-entry table it was read from."""
    nodes, inits = _logits()
    table = w(2, 16)
    nodes += [node("Add", ["sc", "attn.folded_bias"], ["biased"], "/attn/Add"),
              node("Softmax", ["biased"], ["y"], "/attn/Softmax", axis=-1)]
    m = model(nodes, {**inits, "attn.folded_bias": table[:, IDX]}, x=(1, 8, 16))
    assert lifted(m).count("relbias") == 1
    g, imp = _import(m)
    assert analyze_graph(g).totals["params"] == 2 * 16 + 2 * 64
    assert np.array_equal(next(v for v in imp.params.values() if "table" in v)["table"], table)


@pytest.mark.parametrize("values", ["zeros", "random"])
@covers("relbias_add")
def test_folded_values_no_rule_decides_stay_a_learned_add(values):
    """All equal (an untrained table of zeros: every rule agrees) or unstructured: no relbias;
    the initializer stays a learned constant added, counted as the values it holds."""
    nodes, inits = _logits()
    c = np.zeros((2, 4, 16), np.float32) if values == "zeros" else w(2, 4, 16)
    nodes += [node("Add", ["sc", "attn.folded_bias"], ["biased"], "/attn/Add"),
              node("Softmax", ["biased"], ["y"], "/attn/Softmax", axis=-1)]
    m = model(nodes, {**inits, "attn.folded_bias": c}, x=(1, 8, 16))
    assert "relbias" not in lifted(m)
    g, _ = _import(m)
    assert analyze_graph(g).totals["params"] == 2 * 4 * 16 + 2 * 64


@covers("relbias_table")
def test_an_index_no_rule_gives_is_still_refused():
    """A table gathered by a constant index that is no relbias rule's (a permutation): no spec
    layer holds that table, the import refuses it and names the parameter."""
    nodes, inits = _logits()
    idx = np.random.default_rng(1).permutation(IDX.reshape(-1)).reshape(IDX.shape)
    nodes += [node("Gather", ["attn.attention_biases", "attn.idx"], ["b"], "/attn/Gather", axis=1),
              node("Add", ["sc", "b"], ["biased"], "/attn/Add"),
              node("Softmax", ["biased"], ["y"], "/attn/Softmax", axis=-1)]
    m = model(nodes, {**inits, "attn.attention_biases": w(2, 16), "attn.idx": idx}, x=(1, 8, 16))
    with pytest.raises(InteropError, match="attn.attention_biases"):
        import_model(m, source="m.onnx")


@covers("relbias_table")
def test_a_table_read_that_no_add_consumes_is_refused():
    """The read reaches something other than an Add to logits (here the output itself): nothing
    imports it, so the model is refused rather than the table dropped."""
    nodes, inits = _logits()
    nodes += [node("Gather", ["attn.attention_biases", "attn.idx"], ["b"], "/attn/Gather", axis=1),
              node("Mul", ["b", "sc"], ["y"], "/attn/Mul")]
    m = model(nodes, {**inits, "attn.attention_biases": w(2, 16), "attn.idx": IDX}, x=(1, 8, 16))
    with pytest.raises(InteropError):
        import_model(m, source="m.onnx")


@pytest.mark.parametrize("layer, params", [
    ("{relbias: [4, 4], heads: 2, stride: 2, name: rb}", 2 * 16),
    ("{relbias: [4, 4], offsets: signed, stride: 2, name: rb}", 6 * 6)])  # one head; offsets −3..2 per axis
@covers("relbias_table", "relbias_add")
def test_export_of_a_relbias_spec_imports_back_to_it(layer, params):
    """cnncalc's own ONNX export (a Gather of the table by the index, an Add) comes back as the
    same relbias layer with the same table."""
    from cnncalc.interop.onnx_export import export_onnx
    from cnncalc.runtime.executor import Net

    heads = 2 if "heads: 2" in layer else 1
    src = load_spec_text(f"name: rt\ninput: ({heads * 4}, 16)\nlayers:\n  - {{reshape: [{heads}, 4, 16]}}\n"
                         f"  - {layer}\n  - {{softmax: , axis: -1}}\n").infer()
    net = Net(src, dtype="float32", seed=1)
    net.params["rb"]["table"][...] = w(*net.params["rb"]["table"].shape)
    m = export_onnx(src, net.params, net.state)
    assert lifted(m).count("relbias") == 1
    g, imp = _import(m)
    rb = next(n for n in g.layers if n.kind == "relbias").layer
    assert (rb.grid, rb.stride, rb.args["offsets"]) == (src["rb"].layer.grid, src["rb"].layer.stride,
                                                         src["rb"].layer.args["offsets"])
    assert analyze_graph(g).totals["params"] == params
    assert np.array_equal(next(v for v in imp.params.values() if "table" in v)["table"], net.params["rb"]["table"])
