"""export --to onnx carries cnncalc's numbers where Netron shows them (node doc_string, model
metadata_props) and --metrics writes them keyed by ONNX node name (issue 29).

Checked against ``analyze`` and ``receptive_fields`` of the same spec (and LeNet-5's C1 by hand:
5*5*1*6 + 6 = 156 params, 28*28*6*25 = 117,600 MACs, r = 5); the annotated model computes
what the plain export computes (onnxruntime, the same weights)."""
from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import cnncalc  # noqa: E402
from cnncalc.interop.onnx_metrics import owner  # noqa: E402


def test_lenet5_numbers_in_the_model_and_the_side_file(cli, tmp_path):
    out, side = tmp_path / "l.onnx", tmp_path / "l.json"
    r = cli("export", "lenet5", "--to", "onnx", "-o", out, "--metrics", side)
    assert r.exit_code == 0, r.output
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    data = json.loads(side.read_text())
    assert set(data["nodes"]) == {n.name for n in model.graph.node}
    c1 = data["nodes"]["C1"]
    assert (c1["op_type"], c1["params"], c1["macs"], c1["shape"]) == ("Conv", 5 * 5 * 6 + 6, 28 * 28 * 6 * 25, [28, 28, 6])
    assert c1["receptive_field"]["r"] == 5
    doc = next(n.doc_string for n in model.graph.node if n.name == "C1")
    assert "MACs 117,600" in doc and "params 156 (weights 150 + biases 6)" in doc and "receptive field r 5" in doc
    c1_props = {p.key: p.value for p in next(n for n in model.graph.node if n.name == "C1").metadata_props}
    assert c1_props["cnncalc.macs"] == "117,600" and c1_props["cnncalc.receptive_field"] == "r 5, S 1, P 0"
    rep = cnncalc.analyze("lenet5")
    props = {p.key: p.value for p in model.metadata_props}
    assert int(props["cnncalc.params"].replace(",", "")) == rep.totals["params"] == data["totals"]["params"]
    assert int(props["cnncalc.macs"].replace(",", "")) == rep.totals["macs"]
    # the layers' numbers sit on one node each: summed over the nodes they give the totals
    mains = [v for v in data["nodes"].values() if "numbers_on" not in v]
    assert sum(v["params"] for v in mains) == rep.totals["params"]
    assert sum(v["macs"] for v in mains) == rep.totals["macs"]
    assert sorted(v["layer"] for v in mains) == sorted(x.name for x in rep.layers)


def test_module_paths_and_helper_nodes(cli, tmp_path):
    out, side = tmp_path / "r.onnx", tmp_path / "r.json"
    assert cli("export", "cifar_resnet20", "--to", "onnx", "-o", out, "--metrics", side, "--no-rf").exit_code == 0
    data = json.loads(side.read_text())
    rep = cnncalc.analyze("cifar_resnet20")
    by_layer = {x.name: x for x in rep.layers}
    for name, v in data["nodes"].items():
        assert v["layer"] in by_layer
        if "numbers_on" in v:  # an activation or helper node: points at its layer's node
            assert name.startswith(v["layer"] + "/") and v["numbers_on"] in data["nodes"]
        else:
            assert name == v["layer"] and v["macs"] == by_layer[name].macs and "receptive_field" not in v
    assert data["nodes"]["stage1/block1/conv1_bn/relu"]["numbers_on"] == "stage1/block1/conv1_bn"


def test_annotation_changes_no_output(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from cnncalc.interop.onnx_export import export_onnx
    from cnncalc.interop.onnx_metrics import annotate

    g = cnncalc.load("lenet5").infer()
    plain = export_onnx(g, seed=3)
    marked = export_onnx(g, seed=3)
    annotate(marked, cnncalc.analyze(g))
    assert plain.SerializeToString() != marked.SerializeToString()
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    run = lambda m: ort.InferenceSession(m.SerializeToString()).run(None, {"input": x})[0]  # noqa: E731
    np.testing.assert_array_equal(run(plain), run(marked))


def test_owner_takes_the_longest_layer_name():
    layers = {"a", "a/b", "a/b_bn", "c"}
    assert owner("a/b/relu", layers) == "a/b" and owner("a/b_bn", layers) == "a/b_bn"
    assert owner("a/x", layers) == "a" and owner("z/relu", layers) is None


def test_metrics_needs_onnx_target(cli, tmp_path):
    r = cli("export", "lenet5", "--to", "torch", "--metrics", tmp_path / "m.json")
    assert r.exit_code == 2 and "--to onnx" in r.output
