"""One spelling per meaning across commands (README, Conventions); old spellings still work but
are not listed in --help."""
import re

import pytest

from cnncalc.cli import COMMANDS

FORMATS = {"table", "plain", "json", "csv", "markdown"}


# Commands that write an artefact, not a report: a model (export --to torch|onnx, import → spec),
# a picture (graph --format svg|png|dot|mermaid), a page (report → .html), a student's question
# sheet (quiz --format plain|markdown|json).
ARTEFACTS = {"export", "import", "graph", "report", "quiz"}


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - ARTEFACTS))
def test_every_command_takes_every_format(cli, name):
    out = cli(name, "--help").output
    m = re.search(r"--format\s*\[([^\]]+)\]", " ".join(out.split()))
    assert m, out
    assert FORMATS <= set(m.group(1).replace(" ", "").split("|")), name


@pytest.mark.parametrize("name,listed,hidden", [
    ("train", ["--batch", "-o, --output", "[SPEC]"], ["--batch-size", "--out "]),
    ("evaluate", ["--batch"], ["--batch-size"]),
    ("erf", ["-o, --output"], ["--out "]),
    ("verify", ["--batch", "--all-rows"], ["--all "]),
    ("gradcheck", ["--batch", "--all-rows"], ["--all "]),
    ("receptive-field", ["--chain", "-l, --layer"], ["--layers"]),
    ("compare", ["--all "], []),
])
def test_help_lists_one_spelling(cli, name, listed, hidden):
    out = cli(name, "--help").output + " "
    for flag in listed:
        assert flag in out, (name, flag)
    for flag in hidden:
        assert flag not in out, (name, flag)


def test_old_spellings_still_work(cli):
    new = cli("receptive-field", "--chain", "3x3*3", env={"NO_COLOR": "1"})
    old = cli("receptive-field", "--layers", "3x3*3", env={"NO_COLOR": "1"})
    assert new.exit_code == old.exit_code == 0 and new.output == old.output


def test_train_spec_argument_or_option(cli):
    r = cli("train", "lenet5", "--spec", "vgg16")
    assert r.exit_code == 2 and "two specs given" in r.output
    r = cli("train")
    assert r.exit_code == 2 and "give a SPEC" in r.output


# Every command that reads a spec (or a sheet/answer file/checkpoint naming one) takes
# --rounding floor|ceil|strict; conv/pool take a layer on the command line and the same
# spellings (default strict; the old 'exact' still accepted).
SPEC_READERS = ["summarize", "fit", "receptive-field", "graph", "report", "export", "verify", "gradcheck", "erf",
                "diff", "train", "evaluate", "check", "quiz", "conv", "pool", "bench"]


@pytest.mark.parametrize("name", SPEC_READERS)
def test_every_spec_reading_command_takes_rounding(cli, name):
    out = " ".join(cli(name, "--help").output.split())
    assert "--rounding [floor|ceil|strict]" in out or (name in ("conv", "pool") and
                                                         "--rounding [strict|floor|ceil]" in out), name


@pytest.mark.parametrize("name", ["conv", "pool"])
def test_calculators_spell_rounding_as_the_spec_commands_do(cli, name):
    args = [name, "7x7x1", "--kernel", "3", "--stride", "3"] + (["--filters", "1"] if name == "conv" else [])
    default, strict, old = (cli(*args, *extra, env={"NO_COLOR": "1"})
                            for extra in ((), ("--rounding", "strict"), ("--rounding", "exact")))
    assert default.exit_code == strict.exit_code == old.exit_code == 2  # (7 − 3)/3 + 1 = 2.33
    assert default.output == strict.output == old.output
    assert cli(*args, "--rounding", "floor").exit_code == 0


def test_spec_reading_commands_are_all_listed():
    # a new command that loads a spec must join SPEC_READERS (and take --rounding)
    import inspect
    import importlib

    readers = set()
    for name, target in COMMANDS.items():
        module, attr = target.split(":")
        src = inspect.getsource(importlib.import_module(module))
        if any(s in src for s in ("load_graph(", "load_spec(", "load_spec_text(", "Sheet(", "run_check(")):
            readers.add(name)
    # import writes a spec (from an ONNX or torch model), it reads none
    assert "summarize" in readers and "check" in readers
    assert readers - {"import"} <= set(SPEC_READERS), readers - set(SPEC_READERS)
