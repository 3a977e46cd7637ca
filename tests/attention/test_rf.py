"""Receptive fields through token layers, by hand: a patch embedding is a window of its patch,
window attention a window of its (shifted) window partition, global attention makes the field
global and the table names the layer where it became so."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cnncalc.analysis.rf import receptive_fields, unit_field
from cnncalc.cli import main
from cnncalc.spec.loader import load_spec_text

SWIN = """
name: windows
input: 16x16x3
layers:
  - {patch_embed: 8, patch: 2, name: embed}              # 8x8 tokens, each a 2x2 patch
  - {attention: 2, window: 4, name: w}                   # windows of 4x4 tokens
  - {attention: 2, window: 4, shift: 2, name: sw}        # shifted by 2
  - {patch_merging: , name: merge}
"""

VIT = """
name: vit
input: 32x32x3
layers:
  - {patch_embed: 16, patch: 8, name: embed}
  - {cls_token: , name: cls}
  - {pos_embed: , name: pos}
  - {attention: 2, name: attn}
  - {mlp: 32, name: mlp}
  - {gather: 0, axis: 0, name: pick}
  - {fc: 10, name: head}
"""


def test_window_attention_has_a_bounded_field():
    rep = receptive_fields(load_spec_text(SWIN))
    assert rep["embed"].r == (2, 2) and rep["embed"].S == (2, 2)
    # token t reads the 4 tokens of its window [4*(t//4), +4): 8 pixels
    assert rep["w"].r == (8, 8) and not rep["w"].is_global
    assert unit_field(rep, "w", (5, 5)).to_dict()["clipped"] == [[8, 15], [8, 15]]  # window [4, 8)
    # shifted: token 2..5 form a window, which reads the unshifted windows [0, 4) and [4, 8): 16 pixels
    assert rep["sw"].r == (16, 16) and not rep["sw"].is_global
    assert unit_field(rep, "sw", (3, 3)).to_dict()["clipped"] == [[0, 15], [0, 15]]
    # tokens 0, 1 share a rolled window with 6, 7, which the mask keeps apart: they read [0, 2) only
    assert unit_field(rep, "sw", (0, 0)).to_dict()["clipped"] == [[0, 7], [0, 7]]
    # merging 2x2 tokens of the shifted windows: still bounded (a window can straddle two)
    assert not rep["merge"].is_global and rep["merge"].S == (4, 4)


def test_global_attention_names_the_layer():
    rep = receptive_fields(load_spec_text(VIT))
    assert rep["pos"].r == (8, 8) and not rep["pos"].is_global   # the patch tokens' field
    assert rep["attn"].is_global and rep["attn"].r == (32, 32) and rep["attn"].global_since == "attn"
    assert rep["head"].is_global and rep["head"].global_since == "attn"


def test_receptive_field_table_and_json_say_since_where(tmp_path):
    p = tmp_path / "vit.yaml"
    p.write_text(VIT)
    r = CliRunner().invoke(main, ["receptive-field", str(p), "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {x["name"]: x for x in json.loads(r.output)["layers"]}
    assert rows["mlp"]["global"] and rows["mlp"]["global_since"] == "attn"
    assert "global_since" not in rows["pos"]
    r = CliRunner().invoke(main, ["receptive-field", str(p)], env={"NO_COLOR": "1"})
    line = next(x for x in r.output.splitlines() if x.startswith("mlp "))
    assert "global since attn: sees the whole input" in line
