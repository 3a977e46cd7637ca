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


# ----------------------------------------------------------------------------- hostile ONNX (issue 25 item 11)
def _conv_model(**attrs):
    return _model([h.make_node("Conv", ["x", "c.weight"], ["y"], name="/c/Conv", **attrs)], [W],
                  out_shape=(1, 4, 6, 6))


@pytest.mark.parametrize("attrs,why", [({"strides": [0, 0]}, "an invalid window"),
                                       ({"dilations": [0, 1]}, "an invalid window"),
                                       ({"kernel_shape": [5, 5]}, "kernel_shape [5, 5] contradicts the weight's")])
def test_invalid_conv_attributes_are_refused_not_a_crash(attrs, why):
    m = _conv_model(**attrs)
    with pytest.raises(InteropError) as e:
        import_model(m, source="m.onnx")
    assert why in str(e.value) and "--opaque" not in str(e.value)


def test_string_initializer_and_string_input_are_refused(cli, tmp_path):
    m = _conv_model()
    m.graph.initializer[0].CopyFrom(h.make_tensor("c.weight", onnx.TensorProto.STRING, [1], [b"x"]))
    with pytest.raises(InteropError, match="initializer 'c.weight' holds STRING values"):
        import_model(m, source="m.onnx")
    m = _conv_model()
    m.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.STRING
    with pytest.raises(InteropError, match="the input 'x' is STRING; cnncalc imports networks of a float input"):
        import_model(m, source="m.onnx")


def test_reshape_to_a_different_number_of_values_is_refused():
    """[1, 2**62] of 64 x 4 values was a silent flatten."""
    m = _model([CONV, h.make_node("Reshape", ["a", "t"], ["y"], name="/r")], [W], out_shape=(1, 2**62))
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 2**62], np.int64), "t"))
    with pytest.raises(InteropError, match=r"node '/r' \(Reshape\): a reshape of \[1, 4, 8, 8\] \(256 values\) to "
                                           r"\[1, 4611686018427387904\]"):
        import_model(m, source="m.onnx")


def _chain(n):
    ops = ["Relu", "Neg", "Sigmoid", "Tanh"]
    nodes = [h.make_node("Conv", ["x", "c.weight"], ["t0"], name="/c/Conv", pads=[1, 1, 1, 1])]
    nodes += [h.make_node(ops[i % 4], [f"t{i}"], [f"t{i + 1}"], name=f"n{i}") for i in range(n)]
    return _model(nodes, [W], out=f"t{n}")


def test_a_long_elementwise_chain_imports_and_the_node_count_is_bounded(monkeypatch):
    """Linear region search (each node evaluated once per start, a bounded look-ahead): a chain
    of 600 elementwise nodes imports, every node a layer; over the bound: a message."""
    imp = import_model(_chain(600), source="chain.onnx")
    assert imp.text.count("\n  - ") == 600  # the conv (the first Relu fused into it) and 599 more
    from cnncalc import limits
    monkeypatch.setenv("CNNCALC_LIMIT_ONNX_NODES", "500")
    limits.reload()
    try:
        with pytest.raises(InteropError, match="601 ONNX nodes is over the limit on nodes of an ONNX graph"
                                               r".*\(500; limit onnx_nodes = 500; raise it with CNNCALC_LIMIT_ONNX_NODES=N"):
            import_model(_chain(600), source="chain.onnx")
    finally:
        monkeypatch.delenv("CNNCALC_LIMIT_ONNX_NODES")
        limits.reload()


def test_external_data_is_read_from_the_models_folder_only(cli, tmp_path, monkeypatch):
    """Issue 25 item 2: data next to the model is read; a location outside its folder (.., an
    absolute path, a symlink) is refused, and nothing is read from the working directory."""
    from onnx.external_data_helper import convert_model_to_external_data

    folder = tmp_path / "models"
    folder.mkdir()
    m = _conv_model()
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location="w.bin", size_threshold=0)
    onnx.save(m, str(folder / "m.onnx"))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = cli("import", folder / "m.onnx", "-o", tmp_path / "m.yaml", "--weights", tmp_path / "m.npz")
    assert res.exit_code == 0, res.output
    from cnncalc.runtime.checkpoint import load_checkpoint
    assert np.array_equal(load_checkpoint(tmp_path / "m.npz").params["c/weight"], np.ones((4, 3, 3, 3)))
    (tmp_path / "secret.bin").write_bytes(b"\x01" * 4096)
    for location in ("../secret.bin", str(tmp_path / "secret.bin"), "link.bin"):
        if location == "link.bin":
            (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
        mm = onnx.load(str(folder / "m.onnx"), load_external_data=False)
        for e in mm.graph.initializer[0].external_data:
            if e.key == "location":
                e.value = location
        onnx.save(mm, str(folder / "bad.onnx"))
        res = cli("import", folder / "bad.onnx", "-o", tmp_path / "bad.yaml", "--force")
        assert res.exit_code == 2, (location, res.output)
        assert "cannot be read from the model's folder" in res.output and not (tmp_path / "bad.yaml").exists()


def test_weights_that_contradict_the_spec_write_nothing(cli, tmp_path, monkeypatch):
    """Issue 25 item 13: the check of every weight happens before anything is written."""
    from cnncalc.interop import onnx_import
    p = tmp_path / "m.onnx"
    onnx.save(_conv_model(), str(p))
    real = onnx_import.import_onnx

    def broken(*a, **k):
        imp = real(*a, **k)
        imp.params["c"]["weight"] = imp.params["c"]["weight"][:, :, :2]
        return imp
    monkeypatch.setattr(onnx_import, "import_onnx", broken)
    res = cli("import", p, "-o", tmp_path / "m.yaml", "--weights", tmp_path / "m.npz")
    assert res.exit_code == 2 and "c/weight: the model's weights do not fit the spec" in res.output
    assert not (tmp_path / "m.yaml").exists() and not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("perm", [[0, 1], [0, 2, 3, 1, 4], [0, 0, 1, 2], [0, 5, 1, 2], []])
def test_a_transpose_perm_that_is_no_permutation_is_refused(perm):
    """Found by `python -m tests.fuzz --onnx-cases`: perms of the wrong length or with a repeated
    axis imported silently as some other network (an empty one as the default reversal, which
    onnxruntime refuses), and on a rank-0 operand the `% rank` divided by zero (exit 70)."""
    t = h.make_node("Transpose", ["a"], ["t"], name="/t", perm=perm or [0])
    del t.attribute[0].ints[len(perm):]  # (onnx.helper cannot make an empty list attribute)
    m = _model([CONV, t, h.make_node("Relu", ["t"], ["y"], name="/r")], [W])
    with pytest.raises(InteropError, match=r"node '/t' \(Transpose\): .*its perm \[[-0-9, ]*\] is not a "
                                           r"permutation of the input's 4 axes"):
        import_model(m, source="m.onnx")


def test_the_check_of_a_model_too_big_to_run_is_skipped_not_a_crash(cli, tmp_path):
    """Found by the ONNX fuzz: a 10^12-pixel input analyses fine, but `import --weights`
    allocated its random check input (116 TiB: exit 70). Now the check says why it is not run,
    under the runtime_bytes limit, and the spec and weights are written."""
    m = _model([h.make_node("Conv", ["x", "c.weight"], ["y"], name="/c/Conv", pads=[1, 1, 1, 1])], [W],
               out_shape=(1, 4, 10 ** 6, 10 ** 6))
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 10 ** 6
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 10 ** 6
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    r = cli("import", p, "-o", tmp_path / "m.yaml", "--weights", tmp_path / "m.npz")
    assert r.exit_code == 0, r.output
    assert "check: not run (running it needs at least" in r.output and "runtime_bytes limit" in r.output
    assert (tmp_path / "m.yaml").exists() and (tmp_path / "m.npz").exists()


def test_a_data_type_onnx_does_not_have_is_refused_by_its_number():
    """Found by the ONNX fuzz: data_type 999 (no TensorProto.DataType name) was exit 70 while the
    refusal message was being written."""
    m = _conv_model()
    m.graph.initializer[0].data_type = 999
    with pytest.raises(InteropError, match=r"initializer 'c.weight' holds data type 999 \(not an ONNX type\) values"):
        import_model(m, source="m.onnx")
    m = _conv_model()
    m.graph.input[0].type.tensor_type.elem_type = 999
    with pytest.raises(InteropError, match=r"the input 'x' is data type 999 \(not an ONNX type\)"):
        import_model(m, source="m.onnx")


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
@pytest.mark.parametrize("shape", [(), (4,), (4, 3)])
def test_a_conv_weight_of_rank_below_3_is_refused(cli, tmp_path, op, shape):
    """Found by the ONNX fuzz (seed 330): a scalar Conv weight was exit 70 (`F, cg, *k = W.shape`)."""
    m = _model([h.make_node(op, ["x", "c.weight"], ["y"], name="/c/Conv")], [("c.weight", np.ones(shape))])
    with pytest.raises(InteropError, match=rf"node '/c/Conv' \({op}\): a weight of shape \[{', '.join(map(str, shape))}\] "
                                           rf"\(rank {len(shape)}\); a convolution's weight has rank 3 or more"):
        import_model(m, source="m.onnx")
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    r = cli("import", p, "-o", tmp_path / "m.yaml")
    assert r.exit_code == 2 and "a convolution's weight has rank 3 or more" in r.output, r.output


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
@pytest.mark.parametrize("shape", [(4, 3, 3), (4, 3, 3, 3, 3)])
def test_a_conv_kernel_of_another_rank_than_the_input_is_refused(op, shape):
    """A 1-D or 3-D kernel on an image imported silently as some other window."""
    m = _model([h.make_node(op, ["x", "c.weight"], ["y"], name="/c/Conv")], [("c.weight", np.ones(shape))])
    with pytest.raises(InteropError, match=rf"node '/c/Conv' \({op}\): a weight of shape .* \(rank {len(shape)}\) "
                                           r"on an input of rank 4"):
        import_model(m, source="m.onnx")
