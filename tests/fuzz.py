"""Fuzzing the spec loader and `check`: mutated zoo specs, mutated answer files, hostile inputs.

Every case runs the CLI and is classified by its outcome:

    ok          exit 0
    fail        exit 1 (a `check` whose answers are wrong: allowed for answer files only)
    bad-input   exit 2 with a message (the promise for every bad input)
    internal    exit 70 / "internal error" in the output           (a bug)
    traceback   a Python traceback reached the user                (a bug)
    crash       any other exit status, or an exception escaping     (a bug)
    slow        over the time bound (10 CPU seconds)                (a bug)
    unsafe      an output its own parser rejects, or one that shows   (a bug)
                a name unescaped or content from outside the folder
                (names and folders: tests/fuzz_outputs.py), a file
                written outside the case's folder, or a byte read from
                outside it in an output (ONNX graphs: tests/fuzz_onnx.py)

Cases run in-process (click's CliRunner, fast) under a CPU-time alarm and an address-space
rlimit; the CI slice runs the hostile classes in a child process with its own timeout.

The long run (numbers reported in the README)::

    python -m tests.fuzz --cases 20000 --answer-cases 2000 --jobs 2

(``--jobs N`` splits the seeds over N worker processes; the cases and counts are the same as
with one process.)

The fast CI slice is tests/test_fuzz.py.
"""
from __future__ import annotations

import argparse
import collections
import copy
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ZOO = sorted((ROOT / "cnncalc" / "zoo").glob("*.yaml"))
HOMEWORK = ROOT / "examples" / "homework"
ANSWER_FILES = sorted(p for p in HOMEWORK.glob("*.yaml") if "questions" in p.read_text() or "require" in p.read_text())
TIME_LIMIT = 10.0  # CPU seconds per case
WALL_FACTOR = 12  # wall-clock guard (a blocked read uses no CPU)
MEMORY_LIMIT = 2 * 1024 ** 3
BUGS = ("internal", "traceback", "crash", "slow", "unsafe")  # unsafe: an output its own parser rejects


class _Timeout(BaseException):
    """Raised by the alarm: a BaseException, so the CLI's `except Exception` cannot swallow it."""


# --------------------------------------------------------------------------- running the CLI
def classify(code: int | None, out: str, *, answers: bool = False) -> str:
    if "Traceback (most recent call last)" in out:
        return "traceback"
    if "internal error" in out or code == 70:
        return "internal"
    if code == 0:
        return "ok"
    if code == 1 and answers:
        return "fail"
    if code == 2:
        return "bad-input"
    return "crash"


def run_inprocess(args: list[str], *, answers: bool = False, time_limit: float = TIME_LIMIT, env=None,
                  stdout: list | None = None):
    """Run `cnncalc ARGS` in this process; returns (outcome, seconds, output). With ``stdout``
    (a list), the exit code and what went to stdout alone are appended to it."""
    from click.testing import CliRunner

    from cnncalc.cli import main

    def on_alarm(signum, frame):
        raise _Timeout()

    # the bound is on CPU time (SIGPROF): on a shared, overloaded machine wall time measures the
    # neighbours; a wall-clock guard of WALL_FACTOR x the limit catches a blocked read
    old = signal.signal(signal.SIGALRM, on_alarm), signal.signal(signal.SIGPROF, on_alarm)
    signal.setitimer(signal.ITIMER_PROF, time_limit)
    signal.setitimer(signal.ITIMER_REAL, time_limit * WALL_FACTOR)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        result = CliRunner().invoke(main, args, catch_exceptions=True, env=env)
    except _Timeout:
        return "slow", time.process_time() - c0, (f"timed out: {time.process_time() - c0:.1f} s CPU, "
                                                  f"{time.perf_counter() - t0:.1f} s wall: {' '.join(args)}")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old[0])
        signal.signal(signal.SIGPROF, old[1])
    dt = time.process_time() - c0  # CPU seconds
    out = (result.stdout or "") + (result.stderr or "")
    if stdout is not None:
        stdout.append((result.exit_code, result.stdout or ""))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "crash", dt, f"{type(result.exception).__name__}: {result.exception}"[:2000]
    outcome = classify(result.exit_code, out, answers=answers)
    if dt > time_limit:
        outcome = "slow"
    return outcome, dt, out


# --------------------------------------------------------------------------- mutations
HOSTILE_VALUES = [
    None, "", " ", 0, -1, 1, 2, 3, 7, 10 ** 12, 10 ** 40, 1.5, -0.0, float("nan"), float("inf"),
    True, False, [], {}, [1, 2], [[1]], {"a": 1}, {None: 1}, {1: 2}, "a", "relu", "same", "valid",
    "floor", "ceil", "${x}", "${1/0}", "${2**'a'}", "${1 > 'a'}", "${int('x')}", "${abs('a')}",
    "${max()}", "${(2.0**64)**64}", "${ceil(1e400)}", "${(((10**64)**64)**64)**64}",
    "${'a'*10**9}", "${n}", "${i - 1}", "${blocks - 1}", "$n", "conv${n}", "x" * 5000, "a/b",
    "224x224x3", "0x0x0", "7x7", "1e999", "10**20", "${10**20}", "${10**12}", "${2**64}",
    "?" * 3, "\u2212", "\x00", "${" + "1*" * 1000 + "1}", "depthwise", "global",
]
TYPES = ["conv", "maxpool", "avgpool", "fc", "relu", "batchnorm", "dropout", "lrn", "concat", "add",
         "flatten", "layers", "softmax", "global_avgpool", "zeropad", "bogus"]
KEYS = ["kernel", "stride", "pad", "dilation", "groups", "repeat", "when", "name", "inputs", "bn",
        "activation", "rounding", "eps", "alpha", "beta", "p", "bias", "vars", "defaults", "modules",
        "args", "layers", "input", "spec", "specs", "layer", "batch", "dtype", "shape", "params",
        "macs", "rf", "fits", "require", "questions", None, 1]


def _paths(doc, prefix=()):
    """Every (container, key) position in a parsed YAML document."""
    out = []
    stack = [(doc, prefix)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                out.append((node, k))
                stack.append((v, path + (k,)))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out.append((node, i))
                stack.append((v, path + (i,)))
    return out


def mutate_doc(doc, rnd: random.Random, n: int = 1):
    doc = copy.deepcopy(doc)
    for _ in range(n):
        spots = _paths(doc)
        if not spots:
            return rnd.choice(HOSTILE_VALUES)
        box, key = rnd.choice(spots)
        op = rnd.randrange(10)
        if op <= 3:  # replace a value with a hostile one
            box[key] = copy.deepcopy(rnd.choice(HOSTILE_VALUES))
        elif op == 4:  # numbers nudged
            v = box[key]
            if isinstance(v, int) and not isinstance(v, bool):
                box[key] = rnd.choice([v - 1, v + 1, -v, v * 1000, v // 2, 0, 10 ** rnd.randrange(1, 40)])
            else:
                box[key] = rnd.choice([0, -1, 10 ** rnd.randrange(1, 40)])
        elif op == 5:  # delete
            del box[key]
        elif op == 6 and isinstance(box, dict):  # a key renamed
            v = box.pop(key)
            box[rnd.choice(KEYS + TYPES)] = v
        elif op == 6:  # an item duplicated
            box.insert(key, copy.deepcopy(box[key]))
        elif op == 7:  # a layer type swapped
            if isinstance(box[key], dict) and box[key]:
                k0 = next(iter(box[key]))
                v = box[key].pop(k0)
                box[key][rnd.choice(TYPES)] = v
            else:
                box[key] = rnd.choice(TYPES)
        elif op == 8:  # another part of the document copied here
            _, other_key = rnd.choice(spots)
            other_box = rnd.choice(spots)[0]
            try:
                box[key] = copy.deepcopy(other_box[other_key])
            except (KeyError, IndexError, TypeError):
                pass
        else:  # wrapped: nesting
            box[key] = rnd.choice([[box[key]], {"layers": [box[key]]}, {"concat": [[box[key]], []]},
                                   {rnd.choice(TYPES): box[key], "repeat": rnd.choice([0, 2, "${n}"])}])
    return doc


def mutate_text(text: str, rnd: random.Random) -> str:
    lines = text.splitlines()
    if not lines:
        return text
    i = rnd.randrange(len(lines))
    op = rnd.randrange(6)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[rnd.randrange(len(lines))])
    elif op == 2:
        cut = rnd.randrange(len(text))
        return text[:cut]
    elif op == 3:
        s = lines[i]
        j = rnd.randrange(len(s) + 1)
        lines[i] = s[:j] + rnd.choice(["{", "}", "[", "]", ":", "&a", "*a", "!!python/object:os.system",
                                       "\t", "'", '"', "- ", "${", "<<: *a", "%", "@"]) + s[j:]
    elif op == 4:
        lines[i] = "  " + lines[i]
    else:
        lines[i] = lines[i].lstrip()
    return "\n".join(lines) + "\n"


def _dump(doc) -> str:
    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
    except Exception:  # a value safe_dump cannot write: fall back to its text
        return str(doc)


def _plain(text: str):
    return yaml.safe_load(text)


_SPEC_DOCS: dict = {}


def spec_case(seed: int) -> tuple[str, str]:
    """(zoo spec name, mutated YAML text) for a seed."""
    rnd = random.Random(seed)
    path = ZOO[seed % len(ZOO)]
    if path not in _SPEC_DOCS:
        text = path.read_text()
        _SPEC_DOCS[path] = (text, _plain(text))
    text, doc = _SPEC_DOCS[path]
    if rnd.random() < 0.25:
        return path.stem, mutate_text(text, rnd)
    return path.stem, _dump(mutate_doc(doc, rnd, n=rnd.choice([1, 1, 2, 3])))


def answer_case(seed: int) -> tuple[str, str]:
    rnd = random.Random(seed)
    path = ANSWER_FILES[seed % len(ANSWER_FILES)]
    text = path.read_text()
    if rnd.random() < 0.25:
        return path.name, mutate_text(text, rnd)
    return path.name, _dump(mutate_doc(_plain(text), rnd, n=rnd.choice([1, 1, 2])))


SPEC_COMMANDS = (["summarize", "--format", "json"], ["summarize", "--explain"],
                 ["receptive-field", "--format", "json"])


def run_spec_case(seed: int, workdir: Path):
    name, text = spec_case(seed)
    f = workdir / f"spec_{seed % 7}.yaml"
    f.write_text(text)
    cmd = SPEC_COMMANDS[seed % len(SPEC_COMMANDS)]
    outcome, dt, out = run_inprocess([cmd[0], str(f), *cmd[1:]])
    return outcome, dt, out, name, text


def answer_workdir(base: Path) -> Path:
    """A copy of examples/homework (answer files name specs next to them)."""
    d = base / "homework"
    if not d.exists():
        shutil.copytree(HOMEWORK, d)
    return d


def run_answer_case(seed: int, workdir: Path):
    name, text = answer_case(seed)
    d = answer_workdir(workdir)
    f = d / f"answers_{seed % 7}.yaml"
    f.write_text(text)
    args = ["check", str(f)] + (["--hide-expected"] if seed % 2 else []) + (["--format", "json"] if seed % 3 == 0 else [])
    outcome, dt, out = run_inprocess(args, answers=True)
    return outcome, dt, out, name, text


# --------------------------------------------------------------------------- what cnncalc writes
def _output_runner(outcomes: list):
    """``run(args, env=None) -> (exit code, stdout)`` for tests/fuzz_outputs.py, recording each
    run's outcome (a bug there is a bug of the case)."""
    def run(args, env=None):
        got = []
        outcome, dt, out = run_inprocess(args, env=env, stdout=got, answers=args[0] == "check")
        outcomes.append((outcome, dt, out))
        if not got:  # timed out
            return 124, out
        return got[0][0], got[0][1]
    return run


def _case_result(outcomes, kind, problems):
    dt = sum(o[1] for o in outcomes)
    bugs = [o for o in outcomes if o[0] in BUGS]
    if bugs:
        return bugs[0][0], dt, bugs[0][2]
    if problems:
        return "unsafe", dt, "; ".join(problems)[:2000]
    return kind, dt, ""


def _have_onnx() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


def run_name_case(seed: int, workdir: Path):
    """Hostile names through every output format (tests/fuzz_outputs.py)."""
    from tests import fuzz_outputs as F

    text = F.name_spec(seed)
    work = workdir / f"names{seed % 7}"
    work.mkdir(exist_ok=True)
    spec = work / "net.yaml"
    spec.write_text(text)
    outcomes: list = []
    try:
        kind, problems = F.check_name_outputs(_output_runner(outcomes), spec, work, rich=seed % 3 == 0,
                                              onnx=seed % 4 == 0 and _have_onnx())
    except Exception as e:  # an output so broken that reading it back failed
        kind, problems = "ok", [f"reading the outputs back failed: {type(e).__name__}: {e}"]
    outcome, dt, out = _case_result(outcomes, "bad-input" if kind == "refused" else "ok", problems)
    return outcome, dt, out, "names", text


def run_folder_case(seed: int, workdir: Path):
    """A hostile submission folder through every gradebook format (tests/fuzz_outputs.py)."""
    from tests import fuzz_outputs as F

    base = workdir / f"folder{seed}"
    if base.exists():
        shutil.rmtree(base)
    base.mkdir()
    folder = F.hostile_folder(seed, base)
    outcomes: list = []
    try:
        _, problems = F.check_folder_outputs(_output_runner(outcomes), folder)
    except Exception as e:
        problems = [f"reading the outputs back failed: {type(e).__name__}: {e}"]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    outcome, dt, out = _case_result(outcomes, "ok", problems)
    return outcome, dt, out, "folder", f"seed {seed}"


def _listing(d: Path) -> set:
    try:
        return set(os.listdir(d))
    except OSError:
        return set()


def _onnx_commands(model: Path, folder: Path):
    """import / summarize / export of one model; (outcomes, problems, imported)."""
    import ast

    from tests import fuzz_onnx as FO

    outcomes: list = []
    run = _output_runner(outcomes)
    problems = []
    out_yaml, weights = folder / "out.yaml", folder / "w.npz"
    code, _ = run(["import", str(model), "-o", str(out_yaml), "--weights", str(weights)])
    imported = code == 0
    if imported:
        import numpy as np

        try:
            with np.load(weights) as z:
                if any(np.any(z[k] == FO.SECRET_VALUE) for k in z.files if z[k].dtype.kind == "f"):
                    problems.append("the checkpoint holds the secret from outside the folder")
        except Exception as e:
            problems.append(f"the checkpoint does not load: {type(e).__name__}: {e}")
    code, text = run(["summarize", str(model), "--format", "json"])
    if code == 0:
        import json

        try:
            json.loads(text)
        except ValueError as e:
            problems.append(f"summarize json does not parse: {e}")
    if imported:
        code, src = run(["export", str(out_yaml), "--to", "torch"])
        if code == 0:
            try:
                ast.parse(src)
            except SyntaxError as e:
                problems.append(f"export --to torch is not Python: {e}")
        run(["export", str(out_yaml), "--to", "onnx", "-o", str(folder / "back.onnx")])
    return outcomes, problems, imported


def run_onnx_case(seed: int, workdir: Path):
    """A hostile ONNX graph (tests/fuzz_onnx.py) through `import -o out.yaml --weights w.npz`,
    `summarize --format json` and, when the import worked, `export --to torch` (the source
    parsed by `ast`) and `export --to onnx`. Unsafe: a file written outside the case's folder, or
    the secret next to it (which external data may name) in an output."""
    from tests import fuzz_onnx as FO

    base = workdir / f"onnx{seed % 7}"
    folder = base / "case"
    if folder.exists():
        shutil.rmtree(folder)
    model, what = FO.onnx_case(seed, folder)
    import cnncalc.cli  # noqa: F401  (imported from here, not from the case's working directory)

    cwd = base / "cwd"  # the working directory of the case: a relative write lands here
    cwd.mkdir(exist_ok=True)
    before_base, old_cwd = _listing(base), os.getcwd()
    os.chdir(cwd)
    try:
        outcomes, problems, imported = _onnx_commands(model, folder)
    finally:
        os.chdir(old_cwd)
    new_base = _listing(base) - before_base
    new_cwd = _listing(cwd)
    if new_base or new_cwd:
        problems.append(f"written outside the folder: {sorted(new_base | new_cwd)[:5]}")
    kind = "ok" if imported else "bad-input"
    outcome, dt, out = _case_result(outcomes, kind, problems)
    return outcome, dt, out, "onnx", f"seed {seed}: {what}"


# --------------------------------------------------------------------------- hostile classes
def _bomb(levels: int = 9, width: int = 9) -> tuple[str, str]:
    """YAML anchors that double... nine-fold at every level; returns (anchor lines, last alias)."""
    lines = [f"  - &b0 [{', '.join(['x'] * width)}]"]
    for k in range(1, levels):
        lines.append(f"  - &b{k} [{', '.join([f'*b{k - 1}'] * width)}]")
    return "\n".join(lines), f"*b{levels - 1}"


def _bomb_spec(field_yaml: str) -> str:
    anchors, last = _bomb()
    return "notes:\n" + anchors + "\ninput: 8x8x3\n" + field_yaml.replace("BOMB", last) + "\n"


def _nested_concat(depth: int) -> str:
    item = "{conv: 1, kernel: 1}"
    for _ in range(depth):
        item = "{concat: [[" + item + "], []]}"
    return f"input: 8x8x3\nlayers:\n  - {item}\n"


HOSTILE_SPECS: dict[str, str] = {
    "alias-bomb-name": _bomb_spec("layers:\n  - {conv: 4, name: BOMB}"),
    "alias-bomb-source": _bomb_spec("source: BOMB\nlayers: [{conv: 4}]"),
    "alias-bomb-kernel": _bomb_spec("layers:\n  - {conv: 4, kernel: BOMB}"),
    "alias-bomb-inputs": _bomb_spec("layers:\n  - {conv: 4, name: a}\n  - {add: , inputs: BOMB}"),
    "alias-bomb-module-args": _bomb_spec("modules:\n  m: {args: [a], layers: [{conv: 4, name: '${a}'}]}\n"
                                         "layers:\n  - {m: [BOMB]}"),
    "alias-bomb-vars": _bomb_spec("vars: {v: BOMB}\nlayers:\n  - {conv: 4, name: 'c${v}'}"),
    "alias-bomb-layers": "notes:\n  - &l0 [{relu: }, {relu: }, {relu: }, {relu: }, {relu: }, {relu: }]\n" + "".join(
        f"  - &l{k} [{{layers: *l{k - 1}}}, {{layers: *l{k - 1}}}, {{layers: *l{k - 1}}}, {{layers: *l{k - 1}}}, "
        f"{{layers: *l{k - 1}}}, {{layers: *l{k - 1}}}]\n" for k in range(1, 12)) + "input: 8x8x3\nlayers: *l11\n",
    "recursive-alias": "input: 8x8x3\nnotes: &a [1, *a]\nlayers: [relu]\n",
    "recursive-alias-map": "input: 8x8x3\nlayers:\n  - &l {layers: [*l]}\n",
    "deep-concat-150": _nested_concat(150),
    "deep-concat-30": _nested_concat(30),
    "deep-list-300": "input: 8x8x3\nlayers:\n  - {conv: 1, kernel: " + "[" * 300 + "1" + "]" * 300 + "}\n",
    "deep-map-300": "input: 8x8x3\nlayers:\n  - " + "{a: " * 300 + "1" + "}" * 300 + "\n",
    "huge-power": "input: 8x8x3\nlayers:\n  - {conv: '${(((10**64)**64)**64)**64}'}\n",
    "float-overflow": "input: 8x8x3\nlayers:\n  - {conv: '${(2.0**64)**64}'}\n",
    "ceil-inf": "input: 8x8x3\nlayers:\n  - {conv: '${ceil(1e400)}'}\n",
    "huge-string-kernel": "input: 8x8x3\nlayers:\n  - {conv: 4, kernel: \"${'a'*10**9}\"}\n",
    "huge-string-literal": "input: 8x8x3\nname: " + "n" * 3_000_000 + "\nlayers: [{conv: 4}]\n",
    "expr-2000-factors": "input: 8x8x3\nlayers:\n  - {conv: '${" + "1*" * 2000 + "1}'}\n",
    "int-5000-digits": "input: 8x8x3\nlayers:\n  - {conv: " + "9" * 5000 + "}\n",
    "bn-eps-huge": "input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3}\n  - {batchnorm: {eps: '${10**29}'}}\n",
    "repeat-expr-error": "input: 8x8x3\nlayers:\n  - {relu: , repeat: '${x}'}\n",
    "repeat-1e12-when-false": "input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3}\n  - {relu: , repeat: 1000000000000, when: false}\n",
    "repeat-1e9-when-false": "input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3}\n  - {relu: , repeat: 1000000000, when: false}\n",
    "repeat-1e12": "input: 8x8x3\nlayers:\n  - {relu: , repeat: '${10**12}'}\n",
    "self-recursive-module": ("input: 8x8x3\nmodules:\n  m:\n    args: [d]\n    layers:\n"
                              "      - {m: ['${d + 1}'], when: '${d < 30}'}\n"
                              "      - {m: ['${d + 1}'], when: '${d < 30}'}\n"
                              "      - relu\nlayers:\n  - {m: [0]}\n"),
    "stride-1e20": "input: 1000x1000x3\nlayers:\n  - {conv: 4, kernel: 3, stride: '${10**20}'}\n",
    "groups-1e12-channels": "input: 8x8x1000000000000\nlayers:\n  - {conv: 1000000000001, kernel: 1, groups: 1000}\n",
    "vars-list": "input: 8x8x3\nvars: [a]\nlayers: [relu]\n",
    "vars-int": "input: 8x8x3\nvars: 5\nlayers: [relu]\n",
    "vars-int-key": "input: 8x8x3\nvars: {1: 2}\nlayers: [{conv: '${y}'}]\n",
    "null-key-item": "input: 8x8x3\nlayers:\n  - {null: 3}\n",
    "dropout-nan": "input: 8x8x3\nlayers:\n  - {dropout: .nan}\n",
    "lrn-alpha-nan": "input: 8x8x3\nlayers:\n  - {lrn: {size: 5, alpha: .nan}}\n",
    "lrn-beta-inf": "input: 8x8x3\nlayers:\n  - {lrn: {size: 5, beta: .inf}}\n",
    "name-empty": "input: 8x8x3\nlayers:\n  - {conv: 4, name: ''}\n",
    "name-list": "input: 8x8x3\nlayers:\n  - {conv: 4, name: [a, b]}\n",
    "python-tag": "input: 8x8x3\nlayers: !!python/object/apply:os.system ['echo pwned']\n",
    "expr-attribute": "input: 8x8x3\nlayers:\n  - {conv: '${().__class__}'}\n",
    "expr-mixed": "input: 8x8x3\nlayers:\n  - {conv: \"${1 > 'a'}\"}\n",
    "expr-int-str": "input: 8x8x3\nlayers:\n  - {conv: \"${int('x')}\"}\n",
    "expr-max-empty": "input: 8x8x3\nlayers:\n  - {conv: '${max()}'}\n",
}
# expected: what the hostile specs must do (anything else is a regression)
HOSTILE_EXPECT = {name: "bad-input" for name in HOSTILE_SPECS}
HOSTILE_EXPECT["deep-concat-30"] = "ok"
HOSTILE_EXPECT["bn-eps-huge"] = "ok"  # 1e29 is a float a layer can hold
# issue 10: a `when: false` item is skipped without looking further (its repeat included), so
# these are valid specs that load at once — the hang they once caused is what must not return
HOSTILE_EXPECT["repeat-1e9-when-false"] = "ok"
HOSTILE_EXPECT["repeat-1e12-when-false"] = "ok"
ANSWER_EXPECT = {"fits-stride-1e20": "ok", "groups-hint-1e12": "ok",  # 'fits: no' is the right answer
                 "inline-specs-repeat": "ok"}  # the skipped item leaves a network of 0 parameters


def hostile_special_files(tmp: Path) -> dict[str, str]:
    """Spec paths that are not regular files: devices, a FIFO, a folder."""
    out = {"dev-zero": "/dev/zero", "dev-urandom": "/dev/urandom", "folder": str(tmp)}
    fifo = tmp / "fifo.yaml"
    if not fifo.exists():
        os.mkfifo(fifo)
    out["fifo"] = str(fifo)
    return out


def hostile_answer_files(tmp: Path) -> dict[str, str]:
    """Answer files a student could hand in to tie up or trick the grader."""
    secret = tmp / "secret.yaml"
    secret.write_text("input: 31x31x1\nTOPSECRET_KEY: hunter2\nlayers: [{conv: 1, kernel: 3}]\n")
    sub = tmp / "student"
    sub.mkdir(exist_ok=True)
    fifo = tmp / "afifo.yaml"
    if not fifo.exists():
        os.mkfifo(fifo)
    anchors, last = _bomb()
    q = "questions:\n  - {layer: conv1, shape: 1x1x1}\n"
    return {
        "spec-dotdot": "spec: ../secret.yaml\n" + q,
        "spec-absolute": f"spec: {secret}\n" + q,
        "spec-dev-zero": "spec: /dev/zero\n" + q,
        "spec-fifo": f"spec: {fifo}\n" + q,
        "dtype-list": "spec: alexnet\ndtype: [float32]\n" + q,
        "inline-spec-bomb": "specs:\n  s:\n    notes:\n" + anchors.replace("  - ", "      - ") +
                            f"\n    input: 8x8x3\n    layers: [{{conv: 1, name: {last}}}]\n"
                            "questions:\n  - {spec: s, params: 0}\n",
        "inline-specs-repeat": "specs:\n  s: {input: 8x8x3, layers: [{relu: , repeat: 1000000000000, when: false}]}\n"
                               "questions:\n  - {spec: s, params: 0}\n",
        "inline-specs-recursion": "specs:\n  s:\n    input: 8x8x3\n    modules:\n      m: {args: [d], layers: "
                                  "[{m: ['${d+1}'], when: '${d < 30}'}, {m: ['${d+1}'], when: '${d < 30}'}, relu]}\n"
                                  "    layers: [{m: [0]}]\nquestions:\n  - {spec: s, params: 0}\n",
        "alias-bomb-answer": "description:\n" + anchors + f"\nspec: alexnet\nquestions:\n"
                             f"  - {{layer: conv1, shape: 1x1x1, text: {last}}}\n",
        "alias-bomb-layer": "description:\n" + anchors + f"\nspec: alexnet\nquestions:\n"
                            f"  - {{layer: {last}, shape: 1x1x1}}\n",
        "fits-stride-1e20": "questions:\n  - {layer: {input: 1000x1000x3, conv: 4, kernel: 3, stride: '${10**20}'}, fits: no}\n",
        "groups-hint-1e12": "questions:\n  - {layer: {input: 8x8x1000000000000, conv: 1000000000001, kernel: 1, groups: 1000}, fits: no}\n",
        "huge-number-answer": "spec: alexnet\nquestions:\n  - {layer: conv1, params: " + "9" * 5000 + "}\n",
    }, sub


def hostile_cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(name, CLI arguments, expected outcome) of every hostile class, files written under tmp."""
    cases = [(n, ["summarize", p], "bad-input") for n, p in hostile_special_files(tmp).items()]
    for n, text in HOSTILE_SPECS.items():
        f = tmp / f"hostile-{n}.yaml"
        f.write_text(text)
        cases.append((n, ["summarize", str(f)], HOSTILE_EXPECT[n]))
    answers, sub = hostile_answer_files(tmp)
    for n, text in answers.items():
        f = sub / f"{n}.yaml"
        f.write_text(text)
        cases.append((n, ["check", str(f), "--hide-expected"], ANSWER_EXPECT.get(n, "bad-input")))
    return cases


def run_hostile(tmp: Path) -> list[dict]:
    """Every hostile class in this process (the caller bounds its memory: --hostile-json)."""
    out = []
    for n, cmd, expect in hostile_cases(tmp):
        outcome, dt, text = run_inprocess(cmd, answers=cmd[0] == "check")
        leak = "hunter2" in text or "TOPSECRET" in text
        out.append({"name": n, "outcome": outcome, "expected": expect, "seconds": round(dt, 3),
                    "leak": leak, "output": text[-300:]})
    return out


# --------------------------------------------------------------------------- the long run
def _worker(job):
    """One worker's share of the seeds: (seed, outcome, seconds, output tail, name, text if a bug)."""
    kind, seeds, tmp = job
    runner = {"answer": run_answer_case, "names": run_name_case, "folders": run_folder_case,
              "onnx": run_onnx_case}.get(kind, run_spec_case)
    out = []
    for seed in seeds:
        outcome, dt, text_out, name, text = runner(seed, Path(tmp))
        out.append((seed, outcome, dt, text_out[-400:], name, text if outcome in BUGS else ""))
    return out


def _run_cases(kind: str, seeds: range, tmp: Path, jobs: int):
    """Yield every case's result in seed order; with jobs > 1, chunks run in worker processes
    (forked: each has its own alarm, rlimit and work folder)."""
    if jobs == 1:
        yield from _worker((kind, seeds, str(tmp)))
        return
    import multiprocessing

    chunk = 50
    jobs_list = []
    for i, start in enumerate(range(seeds.start, seeds.stop, chunk)):
        d = tmp / f"{kind}-{i}"  # its own work folder: chunks never share a file
        d.mkdir(exist_ok=True)
        jobs_list.append((kind, range(start, min(start + chunk, seeds.stop)), str(d)))
    with multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=20) as pool:
        for results in pool.imap(_worker, jobs_list):
            yield from results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=20000, help="mutated spec cases")
    ap.add_argument("--answer-cases", type=int, default=2000, help="mutated answer-file cases")
    ap.add_argument("--name-cases", type=int, default=200,
                    help="hostile-name cases (every output format parsed back; tests/fuzz_outputs.py)")
    ap.add_argument("--folder-cases", type=int, default=100,
                    help="hostile submission folders (every gradebook format parsed back)")
    ap.add_argument("--onnx-cases", type=int, default=100,
                    help="hostile ONNX graphs through import / summarize / export (tests/fuzz_onnx.py)")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--save", metavar="DIR", help="write the input of every bug case here")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (seeds are split among them)")
    ap.add_argument("--hostile-json", action="store_true",
                    help="run only the hostile classes, in this process, and print one JSON object per line "
                         "(the CI slice runs this in a subprocess with a memory limit)")
    args = ap.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    if args.hostile_json:
        import json

        with tempfile.TemporaryDirectory() as tmp:
            for r in run_hostile(Path(tmp)):
                print(json.dumps(r), flush=True)
        return 0
    counts: dict[str, collections.Counter] = {k: collections.Counter()
                                              for k in ("spec", "answer", "names", "folders", "onnx", "hostile")}
    slowest = {k: 0.0 for k in counts}
    bugs = []
    t_start = time.time()
    stop = []  # kill -USR1 PID: finish the current case, then print the counts so far
    signal.signal(signal.SIGUSR1, lambda signum, frame: stop.append(True))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in run_hostile(tmp):
            counts["hostile"][r["outcome"]] += 1
            slowest["hostile"] = max(slowest["hostile"], r["seconds"])
            if r["outcome"] in BUGS or r["leak"] or r["outcome"] != r["expected"]:
                bugs.append(("hostile", r["name"], r["outcome"], r["output"], ""))
        print(f"hostile classes: {dict(counts['hostile'])}", flush=True)
        for kind, n_cases in (("answer", args.answer_cases), ("names", args.name_cases),
                              ("folders", args.folder_cases), ("onnx", args.onnx_cases if _have_onnx() else 0),
                              ("spec", args.cases)):
            seeds = range(args.seed, args.seed + n_cases)
            for k, (seed, outcome, dt, out, name, text) in enumerate(
                    _run_cases(kind, seeds, tmp, max(1, args.jobs))):
                counts[kind][outcome] += 1
                slowest[kind] = max(slowest[kind], dt)
                if outcome in BUGS:
                    bugs.append((kind, f"seed {seed} ({name})", outcome, out[-400:], text))
                    print(f"BUG {outcome}: {kind} seed {seed} ({name}): {out[-300:]!r}", flush=True)
                if stop:
                    print(f"stopped (SIGUSR1) after {k + 1} {kind} cases", flush=True)
                    break
                if (k + 1) % 500 == 0:
                    print(f"{kind}: {k + 1}/{n_cases} {dict(counts[kind])} "
                          f"({time.time() - t_start:.0f} s)", flush=True)
    print()
    print(f"fuzz run {time.strftime('%Y-%m-%d')}, {time.time() - t_start:.0f} s")
    print(f"{'cases':<10}{'total':>8}" + "".join(f"{c:>11}" for c in ("ok", "fail", "bad-input", *BUGS))
          + f"{'slowest s':>11}")
    for kind, c in counts.items():
        print(f"{kind:<10}{sum(c.values()):>8}" + "".join(f"{c.get(x, 0):>11}" for x in ("ok", "fail", "bad-input", *BUGS))
              + f"{slowest[kind]:>11.2f}")
    for kind, where, outcome, out, text in bugs[:30]:
        print(f"\n{outcome}: {kind} {where}\n{out}")
    if args.save and bugs:
        d = Path(args.save)
        d.mkdir(parents=True, exist_ok=True)
        for i, (kind, where, outcome, out, text) in enumerate(bugs):
            (d / f"{i:04d}-{kind}-{outcome}.yaml").write_text(f"# {where}\n# {out!r}\n{text}")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
