"""``cnncalc bench`` (issue 27, item 6): every format parses, the per-layer MACs are the
analyzer's (and LeNet's C1 by hand), the roofline arithmetic is consistent."""
import csv
import io
import json

import pytest


@pytest.fixture(scope="module")
def lenet_json():
    from click.testing import CliRunner

    from cnncalc.cli import main

    r = CliRunner().invoke(main, ["bench", "lenet5", "--batch", "2", "--rounds", "1", "--threads", "1",
                                  "--format", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_bench_json_numbers(lenet_json):
    r = lenet_json
    assert r["batch"] == 2 and r["threads"] == 1 and r["input"] == [32, 32, 1]
    names = [L["name"] for L in r["layers"]]
    assert names == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    c1 = r["layers"][0]
    assert c1["macs"] == 28 * 28 * 6 * 5 * 5 * 2        # by hand: outputs x taps x batch
    import cnncalc

    rep = cnncalc.analyze("lenet5", batch=2)
    assert [L["macs"] for L in r["layers"]] == [row.macs for row in rep.layers]
    assert r["forward"]["macs"] == rep.totals["macs"] and r["training_step"]["macs"] == rep.totals["training_macs"]
    m = r["machine"]
    assert m["gemm_gflops"] > 0 and m["bandwidth_gbs"] > 0
    assert r["ridge_flop_per_byte"] == pytest.approx(m["gemm_gflops"] / m["bandwidth_gbs"])
    for L in r["layers"]:
        assert L["forward_ms"] > 0 and L["backward_ms"] >= 0
        if L["macs"]:
            assert L["forward_gflops"] == pytest.approx(2 * L["macs"] / L["forward_ms"] / 1e6)
            roof = min(m["gemm_gflops"], L["intensity"] * m["bandwidth_gbs"])
            assert L["roofline_gflops"] == pytest.approx(roof)
            assert L["bound"] == ("compute" if L["intensity"] >= r["ridge_flop_per_byte"] else "memory")
        else:
            assert L["forward_gflops"] is None and L["roofline_gflops"] is None
    # C1 moves its input (2x32x32x1), output (2x28x28x6) and 6x25 weights + 6 biases, float32
    assert c1["bytes"] == 4 * (2 * 32 * 32 + 2 * 28 * 28 * 6 + 6 * 25 + 6)
    assert sum(L["share"] for L in r["layers"]) == pytest.approx(1.0)
    f = r["forward"]
    assert f["images_per_second"] == pytest.approx(2 / f["seconds"]["median"])
    assert f["seconds"]["min"] <= f["seconds"]["median"]


def test_bench_table_csv_markdown(cli, lenet_json, monkeypatch):
    # the measurement of the json run, rendered in the other formats (measuring once keeps it fast)
    from cnncalc.runtime import bench as B

    monkeypatch.setattr(B, "bench", lambda graph, **kw: lenet_json)
    args = ("bench", "lenet5", "--batch", "2", "--rounds", "1", "--threads", "1")
    out = cli(*args).output
    assert "GEMM ceiling" in out and "training step" in out and "Fwd GFLOP/s" in out
    rows = list(csv.DictReader(io.StringIO(cli(*args, "--format", "csv").stdout)))
    assert [r["name"] for r in rows][:2] == ["C1", "S2"] and int(rows[0]["macs"]) == 235200
    md = cli(*args, "--format", "markdown").stdout
    assert any(line.startswith("| C1 ") for line in md.splitlines()) and "GEMM ceiling" in md


def test_bench_bad_spec(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninput: 8x8x1\nlayers:\n  - {conv: 4, kernel: 9}\n")
    r = cli("bench", str(bad))
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_bench_bytes_of_a_shared_layer_count_the_weights_it_reads():
    # tests/runtime/specs/shared.yaml: c2 runs c1's 3x3 4 -> 4 conv again on a 6x6x4 map, so it
    # moves what c1 moves (batch 2: input and output 2*6*6*4, weights 3*3*4*4 + 4, float32)
    from click.testing import CliRunner

    from cnncalc.cli import main

    r = CliRunner().invoke(main, ["bench", "tests/runtime/specs/shared.yaml", "--batch", "2", "--rounds", "1",
                                  "--threads", "1", "--format", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    by = {L["name"]: L for L in json.loads(r.stdout)["layers"]}
    assert by["c1"]["bytes"] == by["c2"]["bytes"] == 4 * (2 * 2 * 6 * 6 * 4 + 3 * 3 * 4 * 4 + 4)
    assert by["d2"]["bytes"] == by["d1"]["bytes"] == 4 * (2 * 2 * 6 * 6 * 4 + 3 * 3 * 4 + 4)
