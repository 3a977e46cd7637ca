"""cnncalc diff: two networks layer by layer, paired by name and by structure.

Golden values are hand arithmetic (conv weights 3*3*C_in*C_out, BN 2*C), written out in each
test; the layer pairing is checked on specs built so that the right pairing is known.
"""
from __future__ import annotations

import csv
import io
import json

from cnncalc.diff import align, diff_specs

ROOT_SPEC = "examples/diff/resnet18_wide3.yaml"  # resnet18 with conv4_x at 384 filters, not 256

SMALL = """
name: small
input: 32x32x3
layers:
  - {conv: 16, kernel: 3, pad: 1, activation: relu, name: c1}
  - {maxpool: 2, name: p1}
  - {conv: 32, kernel: 3, pad: 1, activation: relu, name: c2}
  - {maxpool: 2, name: p2}
  - {flatten: , name: flat}
  - {fc: 10, name: fc}
"""


def test_widening_stage3_by_hand(cli):
    d = diff_specs("resnet18", ROOT_SPEC, rf=False)
    by_name = {r.a.name: r for r in d.layers}
    # conv4_x/block1: conv1 3x3 128→256|384, conv2 3x3 256|384→256|384, 1x1 downsample 128→256|384
    assert by_name["conv4_x/block1/conv2"].delta("params") == 9 * (384 * 384 - 256 * 256)
    assert by_name["conv4_x/block1/conv2"].delta("macs") == 14 * 14 * 9 * (384 * 384 - 256 * 256)
    assert by_name["conv4_x/block1/conv1_bn"].delta("params") == 2 * 128
    # conv5_x/block1 reads 384 channels instead of 256: its first conv and downsample grow
    assert by_name["conv5_x/block1/conv1"].delta("params") == 9 * 128 * 512
    assert by_name["conv5_x/block1/conv2"].status == "same"
    hand = (9 * 128 * 128 + 9 * (384**2 - 256**2) + 128 * 128 + 3 * 2 * 128      # block1
            + 2 * 9 * (384**2 - 256**2) + 2 * 2 * 128                           # block2
            + 9 * 128 * 512 + 128 * 512)                                         # conv5_x/block1
    assert hand == 3_032_320
    assert d.b.totals["params"] - d.a.totals["params"] == hand
    assert sum(r.delta("params") for r in d.layers) == hand
    assert d.count("changed") == 14 and d.count("added") == d.count("removed") == 0
    # the table says it, with the same numbers
    out = cli("diff", "resnet18", ROOT_SPEC, "--no-rf").output
    assert "+3,032,320 (+25.94%)" in out and "conv4_x/block1/conv2" in out
    assert "conv2_x/block1/conv1 " not in out  # unchanged rows are not listed without --all-rows


def test_json_csv_markdown_parse(cli):
    obj = json.loads(cli("diff", "resnet18", ROOT_SPEC, "--format", "json").output)
    assert obj["totals"]["params"]["delta"] == 3_032_320
    assert obj["counts"]["changed"] == 14 and obj["counts"]["by_name"] == 51
    row = next(r for r in obj["layers"] if r["a"] == "conv4_x/block1/conv1")
    assert row["shape"] == {"a": [14, 14, 256], "b": [14, 14, 384]}
    assert row["rf"] == {"a": 115, "b": 115}  # widening changes no window
    assert obj["totals"]["rf"]["a"] == obj["totals"]["rf"]["b"] is not None
    rows = list(csv.DictReader(io.StringIO(cli("diff", "resnet18", ROOT_SPEC, "--format", "csv").output)))
    assert len(rows) == 51  # CSV lists every pair
    r = next(r for r in rows if r["a"] == "conv4_x/block1/conv2")
    assert (int(r["params_a"]), int(r["params_b"]), int(r["params_delta"])) == (589_824, 1_327_104, 737_280)
    md = cli("diff", "resnet18", ROOT_SPEC, "--format", "markdown").output
    table = [line for line in md.splitlines() if line.startswith("| conv4_x/block1/conv2 ")]
    assert len(table) == 1 and "+737,280" in table[0]


def test_pairs_by_structure_when_names_differ(spec_file, cli):
    a = spec_file(SMALL, "a.yaml")
    renamed = SMALL.replace("name: c1", "name: stem").replace("name: c2", "name: body") \
        .replace("name: p1", "name: down1").replace("name: p2", "name: down2").replace("name: fc", "name: head")
    # B also inserts a conv between the two pools: the alignment must leave it alone
    renamed = renamed.replace("  - {maxpool: 2, name: down2}",
                              "  - {conv: 32, kernel: 1, name: extra}\n  - {maxpool: 2, name: down2}")
    b = spec_file(renamed, "b.yaml")
    d = diff_specs(str(a), str(b), rf=False)
    pairs = [(r.a.name if r.a else None, r.b.name if r.b else None, r.matched_by) for r in d.layers]
    assert pairs == [("c1", "stem", "structure"), ("p1", "down1", "structure"), ("c2", "body", "structure"),
                     (None, "extra", None), ("p2", "down2", "structure"), ("flat", "flat", "name"),
                     ("fc", "head", "structure")]
    extra = d.layers[3]
    assert extra.status == "added" and extra.delta("params") == 32 * 32 + 32
    assert extra.delta("macs") == 16 * 16 * 32 * 32
    # by name only: nothing pairs but flat
    d = diff_specs(str(a), str(b), match="name", rf=False)
    assert [r.matched_by for r in d.layers].count("name") == 1 and d.count("removed") == 5


def test_identical_and_exit_code(spec_file, cli):
    a = spec_file(SMALL, "a.yaml")
    res = cli("diff", a, a, "--exit-code")
    assert res.exit_code == 0 and "count the same in every layer" in res.output
    b = spec_file(SMALL.replace("conv: 32", "conv: 48"), "b.yaml")
    assert cli("diff", a, b).exit_code == 0
    res = cli("diff", a, b, "--exit-code")
    assert res.exit_code == 1
    obj = json.loads(cli("diff", a, b, "--format", "json").output)
    fc = next(r for r in obj["layers"] if r["a"] == "fc")
    assert fc["params"]["delta"] == 8 * 8 * (48 - 32) * 10  # the fc reads 8x8x48 instead of 8x8x32


def test_bad_input_exit_2(cli, tmp_path):
    res = cli("diff", "resnet18", tmp_path / "nope.yaml")
    assert res.exit_code == 2 and "no spec file" in res.output and "Traceback" not in res.output


def test_align_keeps_order_and_prefers_same_description():
    class L:
        def __init__(self, name, type, description="", shape=(1,)):
            self.name, self.type, self.description, self.shape = name, type, description, shape

    xs = [L("a", "conv", "3x3"), L("b", "relu"), L("c", "conv", "1x1")]
    ys = [L("x", "conv", "1x1")]
    pairs, exact = align(xs, ys)
    assert exact and pairs == [(0, None, None), (1, None, None), (2, 0, "structure")]
    # a name pair that would cross another is not kept: the longest order-keeping run wins
    xs = [L("p", "conv"), L("q", "conv"), L("r", "conv")]
    ys = [L("q", "conv"), L("r", "conv"), L("p", "conv")]
    pairs, _ = align(xs, ys, "name")
    assert [(i, j) for i, j, how in pairs if how == "name"] == [(1, 0), (2, 1)]
