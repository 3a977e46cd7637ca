"""The fast fuzz slice (the long run is `python -m tests.fuzz`; see tests/fuzz.py).

Every bad spec or answer file must end in exit 2 with a message — never an internal error,
a traceback, a hang or unbounded memory; answer files may also exit 1 (a wrong answer).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import fuzz

def fast(n):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@fast(60)
@given(seed=st.integers(min_value=0, max_value=2 ** 32))
def test_mutated_zoo_specs(seed, tmp_path_factory):
    outcome, dt, out, name, text = fuzz.run_spec_case(seed, tmp_path_factory.mktemp("spec"))
    assert outcome in ("ok", "bad-input"), f"{outcome} on a mutation of {name}:\n{text[:2000]}\n{out[-1500:]}"


@fast(40)
@given(seed=st.integers(min_value=0, max_value=2 ** 32))
def test_mutated_answer_files(seed, tmp_path_factory):
    outcome, dt, out, name, text = fuzz.run_answer_case(seed, tmp_path_factory.mktemp("answers"))
    assert outcome in ("ok", "fail", "bad-input"), f"{outcome} on a mutation of {name}:\n{text[:2000]}\n{out[-1500:]}"


def test_every_zoo_spec_and_answer_file_is_a_seed():
    assert len(fuzz.ZOO) >= 40 and {p.name for p in fuzz.ANSWER_FILES} >= {"ANSWERS.yaml", "WRONG.yaml"}


N_ANSWER_FIXTURES = 13  # tests/fuzz.py: hostile_answer_files


@pytest.fixture(scope="module")
def hostile():
    """All hostile classes, run in one child process with a 2 GB address-space limit and a
    timeout (each case also has its own 10 s alarm inside the child)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (fuzz.MEMORY_LIMIT, fuzz.MEMORY_LIMIT))

    env = dict(os.environ, PYTHONPATH=str(fuzz.ROOT))
    p = subprocess.run([sys.executable, "-m", "tests.fuzz", "--hostile-json"], capture_output=True,
                       text=True, timeout=300, cwd=fuzz.ROOT, env=env, preexec_fn=limit)
    assert p.returncode == 0, p.stderr[-3000:]
    return {r["name"]: r for r in map(json.loads, p.stdout.splitlines())}


def test_hostile_classes_all_ran(hostile):
    assert len(hostile) == len(fuzz.HOSTILE_SPECS) + 4 + N_ANSWER_FIXTURES


@pytest.mark.parametrize("name", sorted(fuzz.HOSTILE_SPECS) + ["dev-zero", "dev-urandom", "fifo", "folder"])
def test_hostile_spec(hostile, name):
    r = hostile[name]
    assert r["outcome"] == r["expected"], r
    assert r["seconds"] < fuzz.TIME_LIMIT, r


def test_hostile_answer_files(hostile):
    answers = {n: r for n, r in hostile.items() if n not in fuzz.HOSTILE_SPECS
               and n not in ("dev-zero", "dev-urandom", "fifo", "folder")}
    assert len(answers) == N_ANSWER_FIXTURES
    for n, r in answers.items():
        assert r["outcome"] == r["expected"], r
        assert not r["leak"], r
        assert r["seconds"] < fuzz.TIME_LIMIT, r


# ------------------------------------------------------------------- what cnncalc writes (issue 25)
def test_hostile_names_through_every_output_format(tmp_path):
    """8 specs of hostile names, each output parsed back with its own parser (csv, a markdown
    table parser, json, xml.etree, yaml.safe_load, ast): tests/fuzz_outputs.py. Most specs are
    accepted by the loader (else the formats would go untested). The long run: --name-cases."""
    results = [fuzz.run_name_case(seed, tmp_path) for seed in range(8)]
    bugs = [(seed, r[0], r[4][:500], r[2][-800:]) for seed, r in enumerate(results) if r[0] not in ("ok", "bad-input")]
    assert not bugs, bugs
    assert [r[0] for r in results].count("ok") >= 5, [r[0] for r in results]


@pytest.mark.parametrize("seed", range(2))
def test_hostile_submission_folders(seed, tmp_path):
    outcome, dt, out, name, text = fuzz.run_folder_case(seed, tmp_path)
    assert outcome == "ok", f"{outcome}: {text}\n{out[-1500:]}"


@pytest.mark.parametrize("seed", range(6))
def test_hostile_onnx_graphs(seed, tmp_path):
    """A mutated ONNX graph (tests/fuzz_onnx.py) through import, summarize and export: exit 0 or 2
    with a message, nothing written outside its folder, no byte from outside it in the
    checkpoint. The long run: --onnx-cases."""
    pytest.importorskip("onnx")
    outcome, dt, out, name, text = fuzz.run_onnx_case(seed, tmp_path)
    assert outcome in ("ok", "bad-input"), f"{outcome}: {text}\n{out[-1500:]}"


def test_onnx_generator_builds_valid_models(tmp_path):
    """The unmutated models are valid ONNX (else the mutations would test nothing)."""
    onnx = pytest.importorskip("onnx")
    import random

    from tests import fuzz_onnx

    for seed in range(10):
        model = fuzz_onnx.build_model(random.Random(seed))
        onnx.checker.check_model(model, full_check=True)
