"""Tensor kinds: how a spec declares them, how they print (a tensor is never mistaken for an
image), what summarize's JSON says about them, which layers read them, the errors a wrong
spec gets, and the tables at every terminal width."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from cnncalc.errors import SpecError
from cnncalc.shapes import Tensor, fmt_shape, kind, parse_shape, settle, torch_order
from cnncalc.spec.loader import load_spec_text

ATT = "examples/tensors/attention.yaml"
BLOCK = "examples/tensors/convnext_block.yaml"


def test_parse_and_print_every_kind():
    assert parse_shape("224x224x3") == (224, 224, 3) and kind((224, 224, 3)) == "image"
    assert parse_shape("4096") == (4096,) and kind((4096,)) == "flat"
    tok = parse_shape("196x768 tokens")
    assert (list(tok), tok.kind, fmt_shape(tok)) == ([196, 768], "tokens", "196x768 tokens")
    ten = parse_shape("(8, 16, 32)")
    assert (list(ten), ten.kind, fmt_shape(ten)) == ([8, 16, 32], "tensor", "(8, 16, 32)")
    assert parse_shape(fmt_shape(tok)) == tok and parse_shape(fmt_shape(ten)) == ten  # printed = input
    assert ten != (8, 16, 32) and fmt_shape((8, 16, 32)) == "8x16x32"  # never equal to an image
    assert parse_shape("(7,)") == (7,)
    for bad in ("(1, 2, 3, 4, 5, 6, 7, 8, 9)", "(0, 3)", "0x5 tokens"):
        with pytest.raises(ValueError):
            parse_shape(bad)


def test_images_come_back_from_pytorch_order():
    t = torch_order((56, 56, 96))
    assert list(t) == [96, 56, 56] and settle(t, t.roles, t.nsp) == (56, 56, 96)
    last = settle((56, 56, 96), (t.roles[1], t.roles[2], t.roles[0]), 2)
    assert isinstance(last, Tensor) and last.kind == "tensor"  # channels last: not an image


def test_summarize_json_says_the_kind_of_new_kinds_only(cli):
    obj = json.loads(cli("summarize", ATT, "--format", "json").output)
    assert obj["input"] == [196, 64] and obj["input_kind"] == "tokens"
    rows = {r["name"]: r for r in obj["layers"]}
    assert rows["qkv"]["kind"] == "tokens" and rows["qk"]["kind"] == "tensor"
    assert rows["qk"]["shape"] == [4, 196, 196] and rows["qk"]["macs"] == 4 * 196 * 196 * 16
    obj = json.loads(cli("summarize", BLOCK, "--format", "json").output)
    rows = {r["name"]: r for r in obj["layers"]}
    assert "kind" not in rows["dwconv"] and "input_kind" not in obj  # images: the JSON as it was
    assert rows["to_last"]["kind"] == "tensor" and rows["to_last"]["shape"] == [14, 14, 96]


def test_csv_and_markdown_hold_the_shapes_whole(cli):
    out = cli("summarize", ATT, "--format", "csv").output
    rows = list(csv.DictReader(io.StringIO(out)))
    shapes = {r["name"]: r["shape"] for r in rows}
    assert shapes["qk"] == "(4, 196, 196)" and shapes["norm"] == "196x64 tokens"
    md = cli("summarize", ATT, "--format", "markdown").output
    assert "(4, 196, 196)" in md and "196x64 tokens" in md


@pytest.mark.parametrize("args", [("summarize", ATT), ("summarize", BLOCK, "--explain"),
                                  ("receptive-field", ATT), ("summarize", ATT, "--by", "type")])
def test_tables_keep_every_number_at_every_width(cli, monkeypatch, args):
    from test_widths import WIDTHS, assert_fits, capture
    for view in capture(cli, monkeypatch, *args):
        for w in WIDTHS:
            assert_fits(view, w)


def test_summarize_of_a_tensor_spec_stays_light():
    code = ("import sys; from cnncalc.cli import main\n"
            f"main(['summarize', {ATT!r}, '--format', 'json'], standalone_mode=False)\n"
            "main(['receptive-field', 'examples/tensors/convnext_block.yaml', '--format', 'json'], standalone_mode=False)\n"
            "print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'numpy', 'torch', 'onnx')))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": root})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "MODULES []"


# ----------------------------------------------------------------------------- errors
def spec(layers, input_="7x8 tokens"):
    return "name: t\ninput: " + input_ + "\nlayers:\n" + "".join(f"  - {l}\n" for l in layers)


@pytest.mark.parametrize("layers,input_,message", [
    (["{conv: 4, kernel: 3}"], "7x8 tokens", "a conv layer reads images (HxWxC) or flat vectors, not the token sequence 7x8 tokens"),
    (["{batchnorm: }"], "(2, 3)", "not the tensor (2, 3)"),
    (["{reshape: [5, 10]}"], "7x8 tokens", "cannot reshape 7x8 tokens (56 values) to [5, 10] (50 values)"),
    (["{reshape: [-1, -1]}"], "7x8 tokens", "more than one −1"),
    (["{matmul: , const: {shape: [7, 3]}}"], "7x8 tokens", "a's last axis = b's second to last"),
    (["{binary: add, const: {shape: [3]}}"], "7x8 tokens", "do not broadcast"),
    (["{binary: pow}"], "7x8 tokens", "takes 2 operand"),
    (["{matmul: , const: {shape: []}}"], "7x8 tokens", "at least one axis"),  # (found by fuzzing)
    (["{binary: modulo, const: 2.0}"], "7x8 tokens", "unknown binary op 'modulo'"),
    (["{transpose: [0, 0]}"], "7x8 tokens", "is not a permutation"),
    (["{softmax: , axis: 2}"], "7x8 tokens", "'axis' 2 is out of range for a tensor of 2 axes"),
    (["{slice: , starts: [5], ends: [2], axes: [0]}"], "7x8 tokens", "is empty"),
    (["{gather: 9, axis: 0}"], "7x8 tokens", "index 9 is out of range for axis 0 of size 7"),
    (["{reduce: sum, axes: [0, 1], keepdims: false}"], "7x8 tokens", "leaves no axis per sample"),
    (["{binary: mul, const: {value: [[1, 2], [3]]}}"], "7x8 tokens", "not rectangular"),
    (["{binary: mul, const: {shape: [8], value: 2}}"], "7x8 tokens", "exactly one of 'value'"),
    (["{where: , const: {index: 0, shape: [8]}}"], "7x8 tokens", "takes 3 operand"),
    (["{softmax: }"], "(2, 3)", "needs 'axis'"),
    (["{padding: [[1, 1]], axes: [1], mode: reflect}"], "(2, 1)", "reflect padding of 1 needs an axis longer"),
])
def test_bad_specs_get_a_clear_error(layers, input_, message):
    with pytest.raises(SpecError) as e:
        load_spec_text(spec(layers, input_)).infer()
    assert message in str(e.value) and e.value.line is not None


def test_the_cli_says_file_line_and_exits_2(cli, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(spec(["{layernorm: }", "{conv: 4, kernel: 3, name: c}"]))
    res = cli("summarize", p)
    assert res.exit_code == 2
    assert "bad.yaml:5" in res.output and "c:" in res.output and "tokens" in res.output


def test_a_tensor_input_reads_as_pytorch_and_a_conv_reads_a_3_axis_tensor():
    g = load_spec_text(spec(["{reshape: [1, 28, 28], name: img}", "{conv: 6, kernel: 5, name: c1}"], "784"))
    g.infer()
    assert g["img"].shape.kind == "tensor" and g["c1"].shape == (24, 24, 6)  # C x H x W, as torch reads it


def test_views_cost_nothing_and_a_reshape_across_a_transpose_is_a_copy():
    """PyTorch's and NumPy's rule: a reshape is a view unless it merges axes a transpose
    separated; the runtime's memory (verify) agrees with every claim."""
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.runtime.verify import check_counts_and_memory
    g = load_spec_text(open(ATT).read())
    rep = analyze_graph(g)
    views = {r.name: r.view for r in rep.layers}
    assert views["heads"] and views["qkv_heads"] and views["q"] and views["merge"]  # views
    assert not views["merged"]  # (196, 4, 16) transposed, merged to (196, 64): a copy
    assert rep.totals["activations"] == sum(r.activations for r in rep.layers if not r.view)
    items, _ = check_counts_and_memory(g, batch=2)
    assert all(i.ok for i in items), [(i.layer, i.check, i.claimed, i.measured) for i in items if not i.ok]


def test_a_layer_without_input_is_a_matmul_or_binary_of_constants_one_learned():
    """inputs: [] (a layer of constants only, docs/tensors.md): a matmul or a binary op of a learned
    constant and a buffer or a value is one; of fixed values only it would be a constant, and any
    other layer reads an input."""
    def spec(layer):
        return load_spec_text(f"name: one\ninput: 7x8 tokens\nlayers:\n  - {layer}\n").infer()

    g = spec("{matmul: , inputs: [], const: [{index: 0, shape: [5, 6]}, {index: 1, shape: [6, 4], learned: false}]}")
    assert g.layers[0].inputs == [] and tuple(g.layers[0].shape) == (5, 4) and g.layers[0].layer.macs() == 5 * 4 * 6
    with pytest.raises(SpecError, match="needs a learned one"):
        spec("{matmul: , inputs: [], const: [{index: 0, shape: [5, 6], learned: false}, "
             "{index: 1, shape: [6, 4], learned: false}]}")
    g = spec("{binary: min, inputs: [], const: [{index: 0, shape: [4, 1, 1]}, {index: 1, value: 4.6}]}")
    assert g.layers[0].inputs == [] and tuple(g.layers[0].shape) == (4, 1, 1)
    with pytest.raises(SpecError, match="needs a learned one"):
        spec("{binary: mul, inputs: [], const: [{index: 0, shape: [4], learned: false}, {index: 1, value: 2.0}]}")
    with pytest.raises(SpecError, match="reads an input"):
        spec("{relu: , inputs: []}")
    with pytest.raises(SpecError, match="'inputs' is a layer name"):
        spec("{relu: , inputs: 3}")


def test_a_1x1_map_flattened_and_reshaped_back_is_an_image_again():
    """A 1 x 1 map (EfficientViT-M's last stage at 64 x 64) reshaped to (C, H·W) = (48, 1) and
    back to (48, 1, 1): the size-1 axes keep the positions they hold (H's and W's, one each), so
    the result is the image 1x1x48 again, which an add with the map reads; before, W's role was
    lost in the first reshape and the second gave a tensor (48, 1, 1) the add refused."""
    g = load_spec_text("name: m\ninput: 1x1x48\nlayers:\n  - {reshape: [48, 1], name: flat}\n"
                       "  - {reshape: [48, 1, 1], name: back}\n  - {add: , inputs: [back, input]}\n")
    g.infer()
    assert g["back"].shape == (1, 1, 48) and g["flat"].shape.__class__ is Tensor
    g = load_spec_text("name: m\ninput: 1x1x48\nlayers:\n  - {reshape: [48, 1, 1, 1], name: four}\n"
                       "  - {reshape: [48, 1, 1], name: back}\n")
    g.infer()
    assert g["back"].shape == (1, 1, 48)
