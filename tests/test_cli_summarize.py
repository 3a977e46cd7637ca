"""`cnncalc summarize` from the outside: formats, exit codes, messages, import hygiene."""
import csv
import io
import json

import pytest

from conftest import run_module


def test_json_contract(cli):
    res = cli("summarize", "specs/vgg16.yaml", "--format", "json")
    assert res.exit_code == 0
    obj = json.loads(res.output)
    assert obj["name"] == "VGG-16" and obj["input"] == [224, 224, 3]
    first = obj["layers"][0]
    assert first == {**first, "name": "conv1_1", "type": "conv", "inputs": ["input"],
                     "shape": [224, 224, 64], "params": 1792, "weights": 1728, "biases": 64,
                     "trainable": 1792, "activations": 3211264, "macs": 86704128}
    for key in ("params", "trainable", "weights", "biases", "activations", "macs", "flops"):
        assert key in obj["totals"]
    assert obj["totals"]["params"] == 138_357_544


def test_csv_and_markdown(cli):
    res = cli("summarize", "vgg16", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert rows[0]["name"] == "input" and rows[1]["name"] == "conv1_1"
    assert rows[1]["shape"] == "224x224x64" and rows[1]["params"] == "1792"
    assert rows[-1]["params"] == "138357544"
    md = cli("summarize", "vgg16", "--format", "markdown").output
    assert "| conv1_1 |" in md and "|---" in md


def test_table_plain_when_piped(cli):
    out = cli("summarize", "vgg16").output
    assert "\x1b[" not in out                      # no colour codes when not a terminal
    assert "138,357,544" in out and "15,470,264,320" in out
    assert "MB = 10^6 B, MiB = 2^20 B" in out


def test_explain_shows_the_arithmetic(cli):
    out = cli("summarize", "alexnet", "--explain").output
    assert "(227 − 11)/4 + 1 = 55" in out
    assert "(11*11*3)*96 + 96 = 34,944" in out
    assert "55*55*96 * (11*11*3) = 105,415,200" in out
    out = cli("summarize", "vgg16", "--explain", "--no-bias").output
    assert "(3*3*64)*64 = 36,864" in out
    assert "7*7*512*4096 = 102,760,448" in out


def test_depth_collapses_modules(cli, spec_file):
    from test_loader import INCEPTION
    p = spec_file(INCEPTION)
    obj = cli("summarize", p, "--depth", "1", "--format", "csv").output
    names = [r["name"] for r in csv.DictReader(io.StringIO(obj))]
    assert names == ["input", "inception_3a", "inception_3b", "Total"]


def test_by_type_percentages(cli):
    obj = json.loads(cli("summarize", "vgg16", "--by", "type", "--format", "json").output)
    rows = {r["type"]: r for r in obj["by_type"]}
    assert rows["conv 3x3"]["layers"] == 13
    assert rows["fc"]["params"] == 102_764_544 + 16_781_312 + 4_097_000
    assert abs(sum(r["params_percent"] for r in rows.values()) - 100) < 0.05


def test_input_override_that_does_not_fit_exits_2():
    res = run_module("summarize", "specs/vgg16.yaml", "--input", "7x7x3")
    assert res.returncode == 2
    assert "(7 − 2)/2 + 1 = 3.5 does not fit" in res.stderr
    assert "pool1" in res.stderr and "vgg16.yaml:12" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


@pytest.mark.parametrize("text,fragment", [
    ("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3\n", ":4: this is not valid YAML"),
    ("input: 8x8x3\nlayers:\n  - {convv: 4}\n", ":3: unknown layer type 'convv'"),
    ("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3, strid: 2}\n", ":3: conv1: unknown field 'strid'"),
    ("input: 8x8x3\nlayers:\n  - {conv: 4}\n", ":3: conv1: a conv layer needs 'kernel'"),
    ("layers: [relu]\n", ":1: the spec has no 'input'"),
    ("input: 8x8x3\nlayers:\n  - add:\n    - [{conv: 4, kernel: 1}]\n    - []\n", ":3: add1: add needs equal channels"),
    ("input: 8x8x3\nlayers:\n  - concat:\n    - [{conv: 4, kernel: 3}]\n    - []\n", ":3: concat1: concat needs the same spatial size"),
    ("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3, groups: 2}\n", ":3: conv1: groups = 2 does not divide"),
    ("input: 8x8x3\nlayers:\n  - {fc: 10}\n", ":3: fc1: an fc layer needs a flat vector"),
    ("!!python/object/apply:os.system ['echo pwned']\n", ":1: YAML tags like"),
])
def test_bad_specs_exit_2_with_file_and_line(tmp_path, text, fragment):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    res = run_module("summarize", p)
    assert res.returncode == 2, res.stderr
    assert f"bad.yaml{fragment}" in res.stderr
    assert "Traceback" not in res.stderr and "pwned" not in res.stdout


def test_unknown_spec_name_suggests(cli):
    res = run_module("summarize", "vgg61")
    assert res.returncode == 2 and "no spec file 'vgg61'" in res.stderr


def test_bad_option_exits_2():
    res = run_module("summarize", "vgg16", "--input", "7x7x")
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_python_m_and_help():
    res = run_module("summarize", "--help")
    assert res.returncode == 0 and "Examples:" in res.stdout and "--format" in res.stdout
    res = run_module("--help")
    assert "summarize" in res.stdout


def test_analysis_never_imports_numba_or_numpy():
    code = ("import sys; from cnncalc.cli import main\n"
            "try:\n    main(['summarize', 'vgg16', '--format', 'json'], standalone_mode=False)\n"
            "finally:\n    print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'numpy')))")
    import subprocess, sys, os
    from conftest import ROOT
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "MODULES []"


def test_script_entry_freezes_before_exit_and_keeps_exit_codes():
    """`cnncalc` / `python -m cnncalc` run cnncalc.cli:run, which freezes the live objects
    before the interpreter exits (so its exit scans none of the graph) and keeps click's exit
    code; an in-process main() (the library, CliRunner) freezes nothing."""
    import os
    import subprocess
    import sys
    from conftest import ROOT
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('FROZEN', gc.get_freeze_count() > 0))\n"
            "from cnncalc.cli import run, main\n"
            "sys.argv = ['cnncalc'] + sys.argv[1:]\n"
            "run()\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-c", code, "summarize", "lenet5"], capture_output=True,
                        text=True, env=env, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "LeNet-5" in ok.stdout and ok.stdout.rstrip().endswith("FROZEN True")
    bad = subprocess.run([sys.executable, "-c", code, "summarize", "no-such-spec"], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    assert bad.returncode == 2 and "no spec file 'no-such-spec'" in bad.stderr
    lib = subprocess.run([sys.executable, "-c", "import gc; from cnncalc.cli import main\n"
                          "main(['summarize', 'lenet5'], standalone_mode=False)\n"
                          "print('FROZEN', gc.get_freeze_count() > 0)"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert lib.returncode == 0 and lib.stdout.rstrip().endswith("FROZEN False"), lib.stderr
