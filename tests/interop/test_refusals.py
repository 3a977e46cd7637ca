"""Honest refusals and opaque layers (issue 23 points 4 and 5): every refused node is listed
with its ONNX node name, op type and the true reason; the hint never suggests --opaque when
--opaque was given and names `cnncalc import` from `summarize`; an opaque layer reads its real
inputs, carries the parameters of the op, and its MACs are unknown in the reports."""
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
h = onnx.helper
F32 = onnx.TensorProto.FLOAT

from cnncalc.interop import InteropError  # noqa: E402
from cnncalc.interop.onnx_import import import_model  # noqa: E402


def _model(nodes, inits=(), out_shape=(1, 4, 8, 8), out="y"):
    g = h.make_graph(nodes, "m", [h.make_tensor_value_info("x", F32, [1, 3, 8, 8])],
                     [h.make_tensor_value_info(out, F32, list(out_shape))],
                     [onnx.numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m


W = ("c.weight", np.ones((4, 3, 3, 3)))
CONV = h.make_node("Conv", ["x", "c.weight"], ["a"], name="/c/Conv", pads=[1, 1, 1, 1])


def test_every_refused_node_is_listed_not_only_the_first_level():
    """Celu → Conv → Celu: the second Celu reads the first; both are listed (today's message
    named only the first and the --opaque import kept both)."""
    m = _model([CONV, h.make_node("Celu", ["a"], ["b"], name="/act1/Celu"),
                h.make_node("Conv", ["b", "d.weight"], ["c"], name="/d/Conv"),
                h.make_node("Celu", ["c"], ["y"], name="/act2/Celu")], [W, ("d.weight", np.ones((4, 4, 1, 1)))])
    with pytest.raises(InteropError) as e:
        import_model(m, source="m.onnx")
    msg = str(e.value)
    assert "2 ONNX node(s) cannot be imported exactly" in msg
    assert "node '/act1/Celu' (Celu): no cnncalc layer type for this op" in msg
    assert "node '/act2/Celu' (Celu): no cnncalc layer type for this op" in msg
    assert "hint: cnncalc import m.onnx --opaque" in msg
    assert "line" not in msg


def test_with_opaque_no_opaque_hint():
    """NonZero's output shape is data-dependent: not even an opaque layer can stand for it."""
    m = _model([CONV, h.make_node("NonZero", ["a"], ["nz"], name="/nz"),
                h.make_node("Cast", ["nz"], ["y"], name="/cast", to=F32)], [W], out_shape=(4, 256))
    with pytest.raises(InteropError) as e:
        import_model(m, source="m.onnx", opaque=True)
    msg = str(e.value)
    assert "node '/nz' (NonZero)" in msg and "--opaque" not in msg
    assert "node '/cast' (Cast): reads 'nz', the output of a refused node whose shape is unknown" in msg


def test_summarize_of_a_refused_onnx_names_the_import_command(cli, tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(_model([CONV, h.make_node("Celu", ["a"], ["y"], name="/act/Celu")], [W]), str(p))
    res = cli("summarize", p)
    assert res.exit_code == 2
    assert f"hint: cnncalc import {p} --opaque" in res.output and "Traceback" not in res.output


def test_opaque_reads_its_real_input_and_carries_the_parameters(cli, tmp_path):
    """conv → zero Pad (pending: a conv would fold it) → Einsum with a weight (no counting
    rule): the opaque layer reads the padding layer (not the network input) and counts the
    weight's 4 x 4 values as parameters; its MACs are unknown in every format."""
    nodes = [CONV,
             h.make_node("Pad", ["a", "pads"], ["p"], name="/pad/Pad"),
             h.make_node("Einsum", ["p", "e.weight"], ["y"], name="/mix/Einsum", equation="bchw,dc->bdhw")]
    m = _model(nodes, [W, ("e.weight", np.arange(16).reshape(4, 4))], out_shape=(1, 4, 10, 10))
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"))
    imp = import_model(m, source="m.onnx", opaque=True)
    path = tmp_path / "m.yaml"
    path.write_text(imp.text)
    res = cli("summarize", path, "--format", "json")
    rows = {r["name"]: r for r in json.loads(res.stdout)["layers"]}
    op = next(r for r in rows.values() if r["type"] == "opaque")
    assert op["inputs"] == ["pad"] and rows["pad"]["inputs"] == ["c"]
    assert op["params"] == 16 and op["shape"] == [10, 10, 4]
    totals = json.loads(res.stdout)["totals"]
    assert totals["params"] == 4 * 27 + 16
    assert totals["macs_unknown"] == [op["name"]]
    table = cli("summarize", path).output
    assert "have unknown MACs: the MAC and FLOP totals are lower bounds" in table
    assert imp.params[op["name"]]["p0"].shape == (4, 4)
