"""Issue 13: limits in one place, confined `check`, bounded hints, short messages, and the
receptive field of a dilated kernel whose taps fall in the padding."""
import itertools
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncalc import limits
from cnncalc.analysis.rf import unit_field
from cnncalc.cli import main
from cnncalc.errors import SpecError
from cnncalc.layers.base import Window, fit_suggestions, largest_common_divisors
from cnncalc.spec.loader import load_spec_text

ROOT = Path(__file__).resolve().parent.parent


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


# ------------------------------------------------------------------------------ limits
def test_docs_list_every_limit_with_its_value_and_variable():
    section = (ROOT / "docs" / "limits.md").read_text()
    for lim in limits.LIMITS.values():
        assert f"`{lim.name}`" in section and lim.env in section, lim.name
        assert f"{lim.default:,}" in section, (lim.name, lim.default)


def test_a_limit_names_itself_and_can_be_raised(monkeypatch):
    spec = "input: 8x8x4\nlayers:\n  - {conv: 4, kernel: 3, pad: 1, repeat: 300}\n"
    monkeypatch.setenv("CNNCALC_LIMIT_LAYERS", "200")
    limits.reload()
    try:
        with pytest.raises(SpecError) as e:
            load_spec_text(spec)
        assert "CNNCALC_LIMIT_LAYERS" in str(e.value) and "200" in str(e.value)
        monkeypatch.setenv("CNNCALC_LIMIT_LAYERS", "400")
        limits.reload()
        assert len(load_spec_text(spec).layers) == 300
    finally:
        monkeypatch.delenv("CNNCALC_LIMIT_LAYERS")
        limits.reload()


def test_repeat_is_refused_before_expanding():
    t = time.perf_counter()
    # a `when` on the item's own counter is decided per repetition, so the repeat is counted
    # (and refused) before a single repetition is expanded
    with pytest.raises(SpecError, match="expansion steps"):
        load_spec_text("input: 8x8x3\nlayers:\n  - {relu: , repeat: 1000000000000, when: '${n < 0}'}\n")
    assert time.perf_counter() - t < 1.0  # nothing was expanded
    # `when: false` skips the item without looking further (issue 10): valid, and immediate
    t = time.perf_counter()
    g = load_spec_text("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3}\n"
                       "  - {relu: , repeat: 1000000000000, when: false}\n")
    assert [n.kind for n in g.layers] == ["conv"]
    assert time.perf_counter() - t < 1.0


def test_messages_are_cut_short(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: \"${'a'*9000}\"}\n")
    r = run("summarize", f)
    assert r.exit_code == 2 and "'kernel' must be a whole number" in r.output
    assert len(r.output) < 1000, r.output


def test_verify_refuses_a_network_that_cannot_fit_before_allocating(tmp_path):
    f = tmp_path / "huge.yaml"
    f.write_text("input: 8x8x3\nlayers:\n  - flatten\n  - {fc: 1000000000000}\n")
    for cmd in ("verify", "gradcheck"):
        t = time.perf_counter()
        r = run(cmd, f)
        assert r.exit_code == 2, r.output
        assert "runtime_bytes" in r.output and "GiB" in r.output
        assert time.perf_counter() - t < 5


# ------------------------------------------------------------------------------ hints
def _fit_by_search(w, win):
    """The hint by exhaustive search (the rule fit_suggestions computes arithmetically)."""
    tips = []
    sym = [p for p in range(0, win.extent + 1)
           if (w + 2 * p - win.extent) >= 0 and (w + 2 * p - win.extent) % win.stride == 0]
    if sym:
        tips.append(f"use pad {sym[0]}")
    total = win.pad_lo + win.pad_hi
    for extra in range(1, win.stride):
        if (w + total + extra - win.extent) % win.stride == 0:
            tips.append(f"pad [{win.pad_lo}, {win.pad_hi + extra}] (one-sided)")
            break
    strides = [s for s in range(1, win.extent + 1)
               if s != win.stride and (w + total - win.extent) >= 0 and (w + total - win.extent) % s == 0]
    if strides:
        tips.append(f"stride {' or '.join(str(s) for s in strides[:3])}")
    num = w + total - win.extent
    tips.append(f"or rounding: floor (→ {num // win.stride + 1}) / ceil (→ {-(-num // win.stride) + 1})")
    return ", ".join(tips)


def test_fit_hints_match_exhaustive_search_and_are_instant_for_huge_strides():
    for w, k, s, pl, ph, d in itertools.product(range(1, 12), range(1, 5), range(1, 7), range(3), range(3), (1, 2)):
        win = Window(k, s, pl, ph, d)
        if w + pl + ph - win.extent >= 0:
            assert fit_suggestions(w, win) == _fit_by_search(w, win), (w, win)
    t = time.perf_counter()
    fit_suggestions(10 ** 6, Window(3, 10 ** 20, 0, 0, 1))
    assert largest_common_divisors(10 ** 12, 10 ** 12 + 10 ** 6) == [100000, 125000, 200000, 250000, 500000, 1000000]
    assert time.perf_counter() - t < 0.5
    # 96 and 48: common divisors 1,2,3,4,6,8,12,16,24,48 → the six largest
    assert largest_common_divisors(96, 48) == [6, 8, 12, 16, 24, 48]


# ------------------------------------------------------------------------------ check
@pytest.fixture
def student(tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("input: 31x31x1\nTOPSECRET_KEY: hunter2\nlayers: [{conv: 1, kernel: 3}]\n")
    d = tmp_path / "student"
    d.mkdir()
    return d, secret


@pytest.mark.parametrize("ref", ["../secret.yaml", "SECRET_ABS", "link.yaml"])
def test_check_reveals_nothing_of_a_file_outside_the_answer_folder(student, ref):
    d, secret = student
    (d / "link.yaml").symlink_to(secret)  # a symlink does not get out either
    ref = str(secret) if ref == "SECRET_ABS" else ref
    (d / "A.yaml").write_text(f"spec: {ref}\nquestions:\n  - {{layer: conv1, shape: 29x29x1}}\n")
    for extra in ([], ["--hide-expected"], ["--format", "json"]):
        r = run("check", d / "A.yaml", *extra)
        assert r.exit_code == 2, r.output
        assert "outside the answer file's folder" in r.output
        assert "hunter2" not in r.output and "TOPSECRET" not in r.output and "31x31" not in r.output


def test_allow_spec_outside_lets_the_instructor_name_a_folder(student):
    d, secret = student
    (d / "A.yaml").write_text("spec: ../secret.yaml\nquestions:\n  - {layer: conv1, shape: 29x29x1}\n")
    r = run("check", d / "A.yaml", "--allow-spec-outside", secret.parent)
    assert r.exit_code == 2  # the secret file is not a valid spec: the message hides its content
    assert "details are hidden" in r.output and "hunter2" not in r.output and "TOPSECRET" not in r.output
    secret.write_text("input: 31x31x1\nlayers: [{conv: 1, kernel: 3}]\n")  # (31 − 3)/1 + 1 = 29
    r = run("check", d / "A.yaml", "--allow-spec-outside", secret.parent)
    assert r.exit_code == 0, r.output


def test_zoo_names_and_files_next_to_the_answers_still_work(student):
    d, _ = student
    (d / "net.yaml").write_text("input: 31x31x1\nlayers: [{conv: 1, kernel: 3}]\n")
    (d / "A.yaml").write_text("questions:\n  - {spec: net.yaml, layer: conv1, shape: 29x29x1}\n"
                              "  - {spec: alexnet, layer: conv1, shape: 55x55x96}\n")
    r = run("check", d / "A.yaml")
    assert r.exit_code == 0, r.output


def test_hide_expected_number_hint_has_no_example_number(tmp_path):
    f = tmp_path / "A.yaml"
    f.write_text("spec: alexnet\nquestions:\n  - {layer: conv1, bias: false, params: lots}\n")
    r = run("check", f, "--hide-expected")
    assert r.exit_code == 1  # an answer that is not a number is a wrong answer, with the hint
    hint = r.output.split("is not a number", 1)[1]
    assert not re.search(r"\d{2,}", hint), hint  # only N placeholders, nothing that could be an answer


# ------------------------------------------------------------------------------ dilated RF
def test_dilated_taps_in_the_padding_are_not_in_the_field():
    # 3x3 input, kernel 3, dilation 5, pad 5: unit u's taps sit at u − 5, u, u + 5, so on the
    # 3-pixel input only pixel u is real; the Distill hull is u − 5 .. u + 5 (r = 5*(3 − 1) + 1 = 11)
    g = load_spec_text("input: 3x3x1\nlayers:\n  - {conv: 1, kernel: 3, dilation: 5, pad: 5, name: c}\n")
    for u in range(3):
        uf = unit_field(g, "c", (u, u))
        assert uf.unclipped == ((u - 5, u + 5),) * 2
        assert uf.clipped == ((0, 2),) * 2
        assert uf.support == ((u, u),) * 2


def test_verify_agrees_on_the_dilated_example(tmp_path):
    f = tmp_path / "dil.yaml"
    f.write_text("input: 3x3x1\nlayers:\n  - {conv: 1, kernel: 3, dilation: 5, pad: 5, name: c}\n")
    r = run("verify", f, "--rf-units", "all")
    assert r.exit_code == 0, r.output
    assert re.search(r"receptive field\s+(\d+) of \1 agree", r.output), r.output


# ------------------------------------------------------------------------------ found by the long fuzz run
def test_a_kernel_of_a_billion_taps_has_its_receptive_field_in_milliseconds(tmp_path):
    """Fuzz seed 16523: a 10^9-tap kernel (legal with pad 10^9) made the field walk every tap
    (MemoryError). Shapes: 8 → (8 − 3 + 2)/1 + 1 = 8 → (8 − 10^9 + 2·499,999,996)/1 + 1 = 1 → 1."""
    spec = tmp_path / "wide.yaml"
    spec.write_text("input: 8x8x1\nlayers:\n  - {conv: 2, kernel: 3, pad: 1}\n"
                    "  - {conv: 2, kernel: 1000000000, pad: 499999996}\n"
                    "  - {conv: 2, kernel: 3, dilation: 2, stride: 2, pad: 2}\n")
    r = run("receptive-field", spec, "--format", "json")
    assert r.exit_code == 0, r.output
    import json
    layers = json.loads(r.output)["layers"]
    assert layers[1]["r"] == 3 + (10 ** 9 - 1)  # r = 3 + (k − 1)·S with S = 1
    assert layers[2]["r"] == layers[1]["r"] + (2 * (3 - 1) + 1 - 1) * 1
    uf = unit_field(load_spec_text(spec.read_text()), layers[2]["name"], (0, 0))
    assert uf.support == ((0, 7), (0, 7))


def test_module_argument_names_must_be_words():
    """Fuzz seed 997: `args: {1: 16}` made the arity message fail to join the names."""
    spec = ("input: 8x8x4\nmodules:\n  blk:\n    args: {1: 16}\n    layers: [{conv: 4, kernel: 1}]\n"
            "layers:\n  - {blk: [1, 2]}\n")
    with pytest.raises(SpecError) as e:
        load_spec_text(spec)
    assert "'args' is a list of names" in str(e.value) and ":4" in str(e.value)
