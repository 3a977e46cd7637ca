"""A merge of the previous layer and a constant, written without branches (what the ONNX
importer writes for timm's class token): {concat: null, axis: 0, const: …}."""
from cnncalc.analysis.report import analyze_graph
from cnncalc.spec.loader import load_spec_text


def test_concat_of_the_previous_layer_and_a_learned_constant():
    g = load_spec_text("""
name: cls
input: 4x8 tokens
layers:
  - {linear: 8, bias: false}
  - {concat: null, axis: 0, const: {index: 0, shape: [1, 8], learned: true}}
""")
    g.infer()
    r = analyze_graph(g)
    assert r.totals["params"] == 8 * 8 + 8
    assert tuple(g.layers[-1].shape) == (5, 8)
