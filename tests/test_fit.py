"""`cnncalc fit`: the answers bracket the budget (the step at the answer fits, one more does not),
every format parses, and bad options are refused with exit 2."""
import csv
import io
import json

import pytest
from click.testing import CliRunner

from cnncalc.analysis.memory import training_step
from cnncalc.cli import main
from cnncalc.spec import load_spec


def _run(*args):
    res = CliRunner().invoke(main, ["fit", *args], env={"NO_COLOR": "1", "COLUMNS": "120"})
    return res.exit_code, res.output


def _peak(name, batch, shape=None, **kw):
    g = load_spec(name)
    g.infer(shape)
    return training_step(g, batch, **kw).peak


def test_largest_batch_brackets_the_budget():
    code, out = _run("cifar_resnet20", "--memory", "100MB", "--overhead", "0", "--optimizer", "adam",
                     "--format", "json")
    assert code == 0, out
    obj = json.loads(out)
    b = obj["answer"]["batch"]
    assert b > 1
    assert _peak("cifar_resnet20", b, optimizer="adam") <= 100 * 10**6 < _peak("cifar_resnet20", b + 1, optimizer="adam")
    assert [r["batch"] for r in obj["rows"]] == [b, b + 1]
    assert [r["fits"] for r in obj["rows"]] == ["yes", "no"]


def test_overhead_and_units():
    _, out = _run("cifar_resnet20", "--memory", "1.5GiB", "--format", "json")  # default overhead 1 GiB
    _, out0 = _run("cifar_resnet20", "--memory", "0.5GiB", "--overhead", "0", "--format", "json")
    a, b = json.loads(out), json.loads(out0)
    assert a["overhead_bytes"] == 2**30 and a["memory_bytes"] == 3 * 2**29
    assert b["overhead_bytes"] == 0 and b["memory_bytes"] == 2**29
    assert a["answer"] == b["answer"]  # the same 512 MiB for the tensors
    assert a["rows"][0]["total_bytes"] == a["rows"][0]["peak_bytes"] + 2**30


def test_max_input_brackets_the_budget():
    code, out = _run("cifar_resnet20", "--memory", "50MB", "--overhead", "0", "--batch", "4", "--max-input",
                     "--format", "json")
    assert code == 0, out
    obj = json.loads(out)
    s = obj["answer"]["input_side"]
    assert _peak("cifar_resnet20", 4, (s, s, 3)) <= 50 * 10**6 < _peak("cifar_resnet20", 4, (s + 1, s + 1, 3))


def test_sweep_in_every_format():
    args = ["vgg11", "--memory", "8GiB", "--sweep", "batch=1,16", "input=32,64"]
    code, out = _run(*args, "--format", "json")
    assert code == 0, out
    rows = json.loads(out)["rows"]
    assert [(r["batch"], r["input"]) for r in rows] == [(1, "32x32x3"), (16, "32x32x3"), (1, "64x64x3"), (16, "64x64x3")]
    assert rows[1]["total_bytes"] == _peak("vgg11", 16, (32, 32, 3)) + 2**30
    _, out = _run(*args, "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert len(parsed) == 4 and parsed[0]["fits"] == "yes"
    _, out = _run(*args, "--format", "markdown")
    assert out.count("| 16 |") + out.count("|    16 |") >= 1 or "16" in out
    assert sum(1 for line in out.splitlines() if line.startswith("|")) == 6  # header, rule, 4 rows


def test_sweep_marks_inputs_the_network_refuses():
    code, out = _run("vgg16", "--memory", "24GiB", "--sweep", "batch=1", "input=100,224", "--format", "json")
    assert code == 0, out
    rows = json.loads(out)["rows"]
    assert rows[0]["fits"].startswith("no: the network does not accept") and rows[1]["fits"] == "yes"


@pytest.mark.parametrize("args,msg", [
    (["--memory", "lots"], "cannot read"),
    (["--memory", "1GiB", "--batch", "4"], "--max-input"),
    (["--memory", "1GiB", "--max-input"], "--batch"),
    (["--memory", "8GiB", "--sweep", "batch=x"], "whole numbers"),
    (["--memory", "8GiB", "--sweep", "depth=3"], "cannot read"),
    (["--memory", "8GiB", "batch=3"], "after --sweep"),
    (["--memory", "8GiB", "--freeze", "*"], "no layer with trainable"),
    (["--memory", "8GiB", "--checkpoint-every", "2", "--checkpoint-segments", "3"], "give one"),
    (["--memory", "1GiB", "--overhead", "2GiB"], "leaves nothing"),
])
def test_bad_options_exit_2(args, msg):
    code, out = _run("cifar_resnet20", *args)
    assert code == 2 and msg in out, out
