"""cnncalc compare: published tables as CSV, matched at the precision they were printed.

Golden values are first-principles arithmetic on VGG-16 (Simonyan & Zisserman 2015, Table 1,
configuration D) and AlexNet (the CS231n single-tower version), written out in each test.
"""
from __future__ import annotations

import json
from fractions import Fraction

import pytest
from click.testing import CliRunner

from cnncalc.cli import main
from cnncalc.compare import (KNOWN, MATCH, MISMATCH, STALE, TableError, compare_table, load_table,
                             parse_table, table_ids)

VGG16_PARAMS = 138_357_544  # Σ over 13 convs and 3 fcs, see test_vgg16_total_params_by_hand


def run(*args):
    return CliRunner().invoke(main, list(args))


def write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_vgg16_total_params_by_hand():
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    fcs = [(7 * 7 * 512, 4096), (4096, 4096), (4096, 1000)]
    total = sum(9 * c * f + f for c, f in convs) + sum(i * o + o for i, o in fcs)
    assert total == VGG16_PARAMS
    res = compare_table(parse_table("# spec: vgg16\nlayer,quantity,published,note\nTOTAL,params,138357544,\n"))
    assert res.results[0].exact == VGG16_PARAMS and res.results[0].status == MATCH


def test_wrong_published_value_fails_with_exit_1(tmp_path):
    # VGG-16 has 138,357,544 parameters: "139M" (138.5M..139.5M) must not match.
    p = write(tmp_path, "# spec: vgg16\nlayer,quantity,published,note\nTOTAL,params,139M,\n")
    r = run("compare", p)
    assert r.exit_code == 1, r.output
    assert "MISMATCH" in r.output and "138M" in r.output and "138,357,544" in r.output
    p2 = write(tmp_path, "# spec: vgg16\nlayer,quantity,published,note\nTOTAL,params,138M,\n", "ok.csv")
    assert run("compare", p2).exit_code == 0


def test_precision_as_written():
    t = parse_table("# spec: vgg16\nlayer,quantity,published,note\n"
                    "TOTAL,params,138.4M,\nTOTAL,params,138.3M,\nTOTAL,params,\"138,357,544\",\n"
                    "TOTAL,params,\"138,357,545\",\n")
    assert [r.status for r in compare_table(t).results] == [MATCH, MISMATCH, MATCH, MISMATCH]
    assert compare_table(t).results[1].printed == "138.4M"


def test_known_discrepancy_is_shown_but_does_not_fail(tmp_path):
    # conv1_1 has (3*3*3)*64 = 1,728 weights + 64 biases = 1,792 parameters.
    text = ("# spec: vgg16\nlayer,quantity,published,note\n"
            "conv1_1,params,1728,discrepancy: the slide forgets the 64 biases\n")
    res = compare_table(parse_table(text))
    row = res.results[0]
    assert row.status == KNOWN and row.exact == 1792 and res.ok
    assert any("(3*3*3)*64 + 64 = 1,792" in a for a in row.arithmetic)
    r = run("compare", write(tmp_path, text))
    assert r.exit_code == 0, r.output
    assert "known discrepancy" in r.output and "disagrees with its own layers" in r.output


def test_stale_discrepancy_fails(tmp_path):
    text = ("# spec: vgg16\nlayer,quantity,published,note\n"
            "conv1_1,params,1792,discrepancy: not really\n")
    assert compare_table(parse_table(text)).results[0].status == STALE
    assert run("compare", write(tmp_path, text)).exit_code == 1


def test_selectors_prefix_type_key_glob_and_sum():
    t = parse_table("# spec: vgg16\nlayer,quantity,published,note\n"
                    "conv1,params,\"38,720\",\n"          # conv1_1 + conv1_2 = 1,792 + 36,928
                    "conv 3x3,params,\"14,714,688\",\n"   # all 13 convs
                    "conv5_*,weights,\"7,077,888\",\n"    # 3 * 9*512*512
                    "fc7 + fc8,params,\"20,878,312\",\n"  # 4096*4096+4096 + 4096*1000+1000
                    "fc8,shape,1x1x1000,\n"               # the papers' way to write [1000]
                    "pool5,shape,7x7x512,\n"
                    "TOTAL,layers,37,\n")                 # 13 conv + 5 pool + flatten + 3 fc + 2 dropout... (see below)
    res = compare_table(t)
    assert [r.status for r in res.results[:6]] == [MATCH] * 6, [(r.row.layer, r.exact) for r in res.results]
    assert res.results[0].layers == ["conv1_1", "conv1_2"]
    assert 1792 + 36928 == 38720 and 9 * 512 * 512 * 3 == 7077888
    assert 4096 * 4096 + 4096 + 4096 * 1000 + 1000 == 20878312
    # 13 convs + 5 pools + flatten + 3 fcs + 2 dropouts = 24 layers, so "37" is wrong:
    assert res.results[6].exact == 24 and res.results[6].status == MISMATCH


def test_percent_rows_use_summarize_by_type():
    # VGG-16: fc weights+biases = 102,764,544 + 16,781,312 + 4,097,000 = 123,642,856 of 138,357,544
    fc = 7 * 7 * 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    t = parse_table("# spec: vgg16\nlayer,quantity,published,note\nfc,params_percent,89.36%,\n")
    row = compare_table(t).results[0]
    assert row.exact == Fraction(100 * fc, VGG16_PARAMS)
    assert row.status == MATCH and row.printed == "89.36%"


def test_binary_prefixes():
    # conv1_2: (3*3*64)*64 + 64 = 36,928 = 36.06 K with K = 1024, but 36.9 K with K = 1000.
    t = parse_table("# spec: vgg16\n# binary: true\nlayer,quantity,published,note\nconv1_2,params,36K,\n"
                    "conv1_2,params,37K,\n")
    a, b = compare_table(t).results
    assert a.status == MATCH and b.status == MISMATCH and b.printed == "36K"
    dec = parse_table("# spec: vgg16\nlayer,quantity,published,note\nconv1_2,params,37K,\n")
    assert compare_table(dec).results[0].status == MATCH


def test_spec_column_overrides_header():
    t = parse_table("# spec: vgg16\nlayer,quantity,published,note,spec\n"
                    "TOTAL,params,138M,,\nconv1,weights,\"34,848\",,alexnet\n")
    res = compare_table(t)
    assert [r.spec for r in res.results] == ["vgg16", "alexnet"]
    assert res.results[1].exact == 11 * 11 * 3 * 96 == 34848


@pytest.mark.parametrize("text, message", [
    ("# spec: vgg16\nlayer,quantity,published,note\nTOTAL,parms,138M,\n", "unknown quantity"),
    ("# spec: vgg16\nlayer,quantity,published,note\nTOTAL,params,lots,\n", "not a number"),
    ("# spec: vgg16\nlayer,quantity,published,note\nconv9,params,1M,\n", "no layer, type or name prefix"),
    ("layer,quantity,published,note\nTOTAL,params,138M,\n", "names no spec"),
    ("# spec: vgg16\nlayer,published\n", "no 'quantity' column"),
    ("# spec: vgg16\nlayer,quantity,published,note\nfc6,shape,7x7x,\n", "not a shape"),
])
def test_bad_tables_exit_2_with_location(tmp_path, text, message):
    p = write(tmp_path, text)
    r = run("compare", p)
    assert r.exit_code == 2, r.output
    assert message in r.output and "t.csv" in r.output and "Traceback" not in r.output


def test_unknown_table_and_spec_exit_2():
    assert run("compare", "no-such-table").exit_code == 2
    assert run("compare").exit_code == 2


def test_json_output_is_machine_readable(tmp_path):
    p = write(tmp_path, "# spec: vgg16\nlayer,quantity,published,note\nTOTAL,params,139M,\n")
    r = run("compare", p, "--format", "json")
    obj = json.loads(r.output)
    row = obj["tables"][0]["rows"][0]
    assert obj["ok"] is False and row["exact"] == VGG16_PARAMS and row["printed"] == "138M"
    assert row["status"] == "MISMATCH"


def test_every_shipped_table_parses_and_passes():
    ids = table_ids()
    assert ids
    for tid in ids:
        t = load_table(tid)
        assert t.source, f"{tid} cites no source"
        res = compare_table(t)
        bad = [(r.row.layer, r.row.quantity, r.row.published, r.exact_text()) for r in res.results if not r.ok]
        assert not bad, f"{tid}: {bad}"
    assert run("compare", "--all").exit_code == 0


def test_zoo_lists_specs():
    r = run("zoo", "--format", "json")
    assert r.exit_code == 0, r.output
    specs = {s["name"]: s for s in json.loads(r.output)["specs"]}
    assert specs["vgg16"]["params"] == VGG16_PARAMS and specs["vgg16"]["input"] == [224, 224, 3]
    r = run("zoo", "--format", "csv")
    assert r.exit_code == 0 and "vgg16" in r.output
