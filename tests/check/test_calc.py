"""cnncalc conv / pool / fc. Golden values are hand arithmetic from the lecture's exercises."""
import json

from click.testing import CliRunner

from cnncalc.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_conv_32x32x3_lecture_example():
    r = run("conv", "32x32x3", "--filters", "10", "--kernel", "5", "--stride", "1", "--pad", "2")
    assert r.exit_code == 0, r.output
    assert "32x32x10" in r.output
    assert "(32 + 2*2 − 5)/1 + 1 = 32" in r.output
    assert "5*5*3 + 1 = 76" in r.output


def test_conv_json_keys_and_values():
    r = run("conv", "32x32x3", "-f", "10", "-k", "5", "-s", "1", "-p", "2", "--format", "json")
    d = json.loads(r.output)
    assert d["shape"] == [32, 32, 10]
    assert d["weights"] == 5 * 5 * 3 * 10 and d["biases"] == 10 and d["params"] == 760
    assert d["macs"] == 32 * 32 * 10 * 5 * 5 * 3          # one 75-term dot product per output value
    assert d["arithmetic"]["shape"] == "(32 + 2*2 − 5)/1 + 1 = 32"


def test_conv_that_does_not_fit_exits_2_with_the_arithmetic():
    r = run("conv", "7x7x1", "--filters", "1", "--kernel", "3", "--stride", "3")
    assert r.exit_code == 2
    assert "(7 − 3)/3 + 1 = 2.333 does not fit" in r.output
    assert "pad 1" in r.output and "--rounding" in r.output
    assert "Traceback" not in r.output


def test_conv_rounding_floor_makes_it_fit():
    d = json.loads(run("conv", "7x7x1", "-f", "1", "-k", "3", "-s", "3", "--rounding", "floor", "-F", "json").output)
    assert d["shape"] == [2, 2, 1]                          # floor((7 − 3)/3) + 1


def test_conv_groups_and_dilation():
    d = json.loads(run("conv", "56x56x128", "-f", "128", "-k", "3", "-p", "1", "--groups", "32", "-F", "json").output)
    assert d["weights"] == 128 * (128 // 32) * 9          # each filter sees 4 channels
    d = json.loads(run("conv", "32x32x3", "-f", "8", "-k", "3", "--dilation", "2", "-p", "2", "-F", "json").output)
    assert d["shape"] == [32, 32, 8]                        # extent 2*(3 − 1) + 1 = 5, pad 2


def test_pool_alexnet_pool1():
    r = run("pool", "55x55x96", "--kernel", "3", "--stride", "2", "-F", "json")
    d = json.loads(r.output)
    assert d["shape"] == [27, 27, 96] and d["params"] == 0   # (55 − 3)/2 + 1 = 27


def test_pool_stride_defaults_to_kernel():
    d = json.loads(run("pool", "224x224x64", "-k", "2", "-F", "json").output)
    assert d["shape"] == [112, 112, 64]


def test_fc_vgg_fc6():
    r = run("fc", "7x7x512", "--units", "4096", "-F", "json")
    d = json.loads(r.output)
    assert d["weights"] == 102_760_448 == 7 * 7 * 512 * 4096
    assert d["biases"] == 4096


def test_csv_and_markdown_have_one_row_per_quantity():
    csv = run("conv", "32x32x3", "-f", "10", "-k", "5", "-p", "2", "-F", "csv").output
    assert csv.splitlines()[0] == "quantity,value,arithmetic"
    assert any(line.startswith("parameters,760,") for line in csv.splitlines())
    md = run("pool", "55x55x96", "-k", "3", "-s", "2", "-F", "markdown").output
    assert "| output shape | 27x27x96 |" in md


def test_bad_options_exit_2():
    assert run("conv", "32x32", "-f", "1", "-k", "x").exit_code == 2
    assert run("conv", "banana", "-f", "1", "-k", "3").exit_code == 2
    assert run("conv", "32x32x3", "-f", "10", "-k", "5", "-g", "4").exit_code == 2   # 4 does not divide 3
