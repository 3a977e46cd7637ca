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


# ----------------------------------------------------------------------------- student hints (issue 29)
def test_a_2d_shape_is_1d_and_the_title_says_so():
    r = run("conv", "32x32", "-f", "16", "-k", "5")
    assert r.exit_code == 0, r.output
    title = r.output.splitlines()[0]
    assert title == "conv 5/s1 on 32x32 (1-D: length 32, 32 channels)"   # not "5x5"
    assert "(32 − 5)/1 + 1 = 28" in r.output                               # one spatial axis
    assert "for a 32x32 image write 32x32x1 (grey) or 32x32x3 (H×W×C)" in r.output
    d = json.loads(run("conv", "32x32", "-f", "16", "-k", "5", "-F", "json").output)
    assert d["shape"] == [28, 16] and d["layer"] == title
    assert "32x32x1" in d["notes"][0]
    assert "notes" not in json.loads(run("conv", "32x32x1", "-f", "16", "-k", "5", "-F", "json").output)


def test_a_2d_kernel_on_a_1d_input_is_explained():
    r = run("conv", "32x32", "-f", "16", "-k", "5x5")
    assert r.exit_code == 2
    assert "'kernel' has 2 values but the input has 1 spatial axis" in r.output
    assert "is read as a 1-D signal" in r.output and "-k 5, not -k 5x5" in r.output
    assert "give one number, or exactly 1" not in r.output


def test_pad_takes_lo_hi_as_the_hint_writes_it():
    r = run("conv", "7x7x1", "-f", "1", "-k", "3", "-s", "3")
    assert r.exit_code == 2
    assert "pad [0, 2] (one-sided)" in r.output and "--pad 0,2" in r.output
    for spelling in ("0,2", "[0, 2]", "[0,2]"):
        d = json.loads(run("conv", "7x7x1", "-f", "1", "-k", "3", "-s", "3", "--pad", spelling, "-F", "json").output)
        assert d["shape"] == [3, 3, 1]                      # (7 + 0 + 2 − 3)/3 + 1 = 3 on each axis
        assert d["arithmetic"]["shape"] == "(7 + 0 + 2 − 3)/3 + 1 = 3"
    d = json.loads(run("pool", "7x7x1", "-k", "2", "--pad", "0,1", "-F", "json").output)
    assert d["shape"] == [4, 4, 1]                          # (7 + 0 + 1 − 2)/2 + 1 = 4
    assert run("conv", "7x7x1", "-f", "1", "-k", "3", "--pad", "0,2,3").exit_code == 2


def test_channels_first_gets_a_did_you_mean():
    r = run("conv", "3x32x32", "-f", "16", "-k", "5")       # 3 rows cannot hold a 5x5 window
    assert r.exit_code == 2
    assert "did you mean 32x32x3? shapes are H×W×C" in r.output
    r = run("conv", "3x224x224", "-f", "64", "-k", "3", "-p", "1")   # fits, but is surely not meant
    assert r.exit_code == 0 and "did you mean 224x224x3?" in r.output
    assert "did you mean" not in run("conv", "224x224x3", "-f", "64", "-k", "3", "-p", "1").output


def test_alexnet_224_suggests_227():
    r = run("conv", "224x224x3", "-f", "96", "-k", "11", "-s", "4")
    assert r.exit_code == 2
    assert "(224 − 11)/4 + 1 = 54.25 does not fit" in r.output
    assert "or input 227x227x3: AlexNet's conv1" in r.output
    d = json.loads(run("conv", "227x227x3", "-f", "96", "-k", "11", "-s", "4", "-F", "json").output)
    assert d["shape"] == [55, 55, 96]                       # (227 − 11)/4 + 1 = 55
    r = run("conv", "7x7x1", "-f", "1", "-k", "3", "-s", "3")
    assert "or input 9x9x1" in r.output and "AlexNet" not in r.output   # (9 − 3)/3 + 1 = 3
