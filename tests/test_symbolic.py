"""``summarize --symbolic``: formulas in H and W, checked against the numeric analysis.

The second, independent method is the numeric analysis itself (cnncalc.analyze at one input
size: the shape rules on numbers). Every zoo spec's formulas are evaluated at random accepted
sizes and must give exactly its params, MACs, activations and input; sizes just outside the
accepted set must be refused by the numeric analysis (so the accepted set is exact both ways).
"""
from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc.analysis.qaffine import Expr, eval_py
from cnncalc.analysis.report import analyze_graph
from cnncalc.analysis.symbolic import symbolic
from cnncalc.cli import main
from cnncalc.errors import CnnCalcError

ZOO = sorted(p.stem for p in (Path(cnncalc.__file__).parent / "zoo").glob("*.yaml"))
BIG = {"cifar_resnet1202", "densenet201", "densenet169", "resnet152", "resnet152_tv", "resnet101",
       "resnet101_tv", "inception_v3_aux", "efficientnet_b3", "googlenet-aux"}


def _sizes(rep, n, seed):
    """n input sizes (tuples) drawn from the accepted sizes of every axis (up to 3× the spec's)."""
    rng = random.Random(seed)
    upto = 3 * max(rep.input_shape[:-1])
    per_axis = [d.sample(rng, n, upto) for d in rep.domains]
    assert all(per_axis), f"{rep.name}: no accepted size up to {upto}"
    return [tuple(rng.choice(vals) for vals in per_axis) for _ in range(n)]


TOKENS = "makes a token sequence or tensor"  # --symbolic refuses these layers, with file:line


def _check(name, n, seed=0):
    graph = cnncalc.load(name)
    try:
        rep = symbolic(graph)
    except CnnCalcError as e:  # a transformer: its tokens have no formula in H and W (said, with the line)
        assert TOKENS in str(e) and f"{name}.yaml:" in str(e), str(e)
        pytest.skip(f"{name}: {str(e).splitlines()[0]}")
    nominal = tuple(rep.input_shape[:-1])
    assert rep.accepts(nominal), f"{name}: the spec's own input {nominal} is not accepted"
    sizes = [nominal] + _sizes(rep, n, seed)
    for sz in sizes:
        shape = (*sz, rep.input_shape[-1])
        num = analyze_graph(graph, input_shape=shape)
        got = rep.evaluate(sz)
        want = {"params": num.totals["params"], "macs": num.totals["macs"],
                "activations": num.totals["activations"], "input": num.totals["input"],
                "memory_bytes": num.memory["input_bytes"] + num.memory["forward_bytes"]}
        assert got == want, (name, shape)
        # the machine-checkable form (integer Python) gives the same numbers
        env = rep.env(sz)
        for k, p in rep.totals.items():
            assert eval_py(p.py(), env) == got[k], (name, shape, k)
    return rep, graph


def _check_refused(rep, graph, count=3):
    """Sizes that the formulas' domain excludes: the numeric analysis refuses them too (exit
    2), so the domain is not too small. With an fc after a flatten (``rep.fixed``) the numeric
    analysis may instead resize that fc's weights: then the parameters differ from the spec's,
    which is why the weights fix the size."""
    ch = rep.input_shape[-1]
    nominal = list(rep.input_shape[:-1])
    params = rep.evaluate(tuple(nominal))["params"]
    for i, d in enumerate(rep.domains):
        outside = [v for v in range(1, 2 * nominal[i]) if v not in d][:: 7][:count]
        for v in outside:
            sz = list(nominal)
            sz[i] = v
            try:
                num = analyze_graph(graph, input_shape=(*sz, ch))
            except CnnCalcError:
                continue
            assert rep.fixed and num.totals["params"] != params, (rep.name, sz)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_formulas_match_the_numeric_analysis(name):
    rep, graph = _check(name, 1 if name in BIG else 3)
    _check_refused(rep, graph, 1 if name in BIG else 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_formulas_at_50_sizes(name):
    rep, graph = _check(name, 50, seed=1)
    _check_refused(rep, graph, 10)


# ------------------------------------------------------------------------- known answers
def test_resnet50_formulas_by_hand():
    """ResNet-50 with PyTorch's floor rule: conv1 7x7/s2/p3 gives floor((H + 6 − 7)/2) + 1 =
    ceil(H/2); the 3x3/s2/p1 max pool ceil(ceil(H/2)/2) = ceil(H/4); every stage halves."""
    rep = symbolic(cnncalc.load("resnet50"))
    conv1 = next(r for r in rep.layers if r.name == "conv1")
    assert [s.text() for s in conv1.sizes] == ["ceil(H/2)", "ceil(W/2)"]
    assert conv1.macs.text() == "9,408*ceil(H/2)*ceil(W/2)"  # 7*7*3*64 = 9,408 per position
    assert [d.text() for d in rep.domains] == ["H >= 1", "W >= 1"]
    assert rep.totals["params"].is_constant
    # the paper's stride on the first 1x1 (tests/zoo/test_modern.py holds the numeric total);
    # torchvision's stride on the 3x3 gives its published 4.09 GMACs at 224x224
    assert rep.evaluate((224, 224))["macs"] == 3_857_973_248
    tv = symbolic(cnncalc.load("resnet50_tv"))
    assert tv.evaluate((224, 224))["macs"] == 4_089_184_256


def test_vgg16_accepts_only_224():
    """Exact rounding (the slides' 'it does not fit!') and fc6 fixed at 7*7*512 inputs."""
    rep = symbolic(cnncalc.load("vgg16"))
    assert [d.text() for d in rep.domains] == ["H = 224", "W = 224"]
    assert rep.fixed == ["fc6"]
    conv2 = next(r for r in rep.layers if r.name == "conv2_1")
    assert [s.text() for s in conv2.sizes] == ["H/2", "W/2"]  # exact: (H − 2)/2 + 1


def test_floor_canonical_forms_match_brute_force():
    H = Expr.var("H")
    rng = random.Random(3)
    for _ in range(150):
        e, chain = H, []
        for _ in range(rng.randint(1, 5)):
            op = rng.choice(["floor", "ceil", "up", "crop", "exact"])
            if op == "floor":
                k, s, p = rng.randint(1, 7), rng.randint(1, 4), rng.randint(0, 3)
                e = (e + (2 * p - k)).floor_div(s) + 1
                chain.append(lambda v, k=k, s=s, p=p: (v + 2 * p - k) // s + 1)
            elif op == "ceil":
                s = rng.randint(1, 4)
                e = e.ceil_div(s)
                chain.append(lambda v, s=s: -(-v // s))
            elif op == "up":
                f = rng.randint(2, 3)
                e = e * f
                chain.append(lambda v, f=f: v * f)
            elif op == "crop":
                c = rng.randint(0, 3)
                e = e - c
                chain.append(lambda v, c=c: v - c)
            else:  # x/2 on even values only: tested where it is whole
                e = e * 2
                e = e.exact_div(2)
                chain.append(lambda v: v)
        for v in range(-5, 60):
            want = v
            for f in chain:
                want = f(want)
            assert e.value({"H": v}) == want, (e.text(), v)
            assert eval_py(e.py(), {"H": v}) == want
            p = e.period()
            assert e.value({"H": v + p}) == want + e.slope() * p


def test_ceil_rounding_matches_caffe_rule():
    """GoogLeNet's ceil pooling (Caffe): the formulas hold at every accepted size."""
    rep = symbolic(cnncalc.load("googlenet"))
    assert rep.fixed == ["linear"]  # its fc after a 7x7 average pool fixes the sizes before it
    assert rep.domains[0].finite and 224 in rep.domains[0]


# -------------------------------------------------------------------------------- the CLI
def _run(*args):
    return CliRunner().invoke(main, ["summarize", *args])


def test_cli_symbolic_table_and_formats():
    r = _run("resnet18", "--symbolic")
    assert r.exit_code == 0, r.output
    assert "9,408*ceil(H/2)*ceil(W/2)" in r.output
    assert "H >= 1" in r.output and "1,814,073,344" in r.output
    r = _run("resnet18", "--symbolic", "--format", "json")
    obj = json.loads(r.output)
    assert obj["variables"] == ["H", "W"]
    macs = obj["totals"]["macs"]["python"]
    assert eval_py(macs, {"H": 224, "W": 224}) == 1_814_073_344
    assert eval_py(macs, {"H": 300, "W": 171}) == analyze_graph(cnncalc.load("resnet18"), input_shape=(300, 171, 3)).totals["macs"]
    conv1 = next(x for x in obj["layers"] if x["name"] == "conv1")
    assert conv1["shape"] == ["ceil(H/2)", "ceil(W/2)", 64]
    r = _run("resnet18", "--symbolic", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert rows[1]["name"] == "conv1" and rows[1]["macs"] == "9,408*ceil(H/2)*ceil(W/2)"
    r = _run("resnet18", "--symbolic", "--format", "markdown")
    assert r.exit_code == 0 and "| conv1 |" in r.output
    # parsed as markdown: the formulas are code, their '*' never emphasis
    from markdown_it import MarkdownIt  # (a dependency of rich)

    html = MarkdownIt("commonmark").enable("table").render(r.output)
    assert "<em>" not in html
    assert "<code>9,408*ceil(H/2)*ceil(W/2)</code>" in html


def test_cli_symbolic_explain_and_fixed_sizes():
    r = _run("vgg16", "--symbolic", "--explain")
    assert r.exit_code == 0, r.output
    assert "H = 224" in r.output and "fixed by" in r.output
    assert "H: (H + 2 - 3)/1 + 1 = H" in r.output  # conv1_1's rule, on the variable
    assert "fc6: its 25,088 weights per unit read a 7x7x512 input" in r.output
    r = _run("vgg16", "--symbolic", "--explain", "--format", "json")
    assert json.loads(r.output)["layers"][0]["explain"]


def test_cli_symbolic_refuses_tokens_with_a_message(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text("name: t\ninput: 8x8x3\nlayers:\n  - {conv: 4, kernel: 1, name: c}\n"
                    "  - {reshape: [4, 64], name: r}\n")
    r = _run(str(spec), "--symbolic")
    assert r.exit_code == 2
    assert "r: --symbolic: reshape layer has no formula in the input size" in r.output
    assert "Traceback" not in r.output
    spec.write_text("name: t\ninput: 196x64 tokens\nlayers:\n  - {fc: 8, name: f}\n")
    r = _run(str(spec), "--symbolic")
    assert r.exit_code == 2 and "token sequence" in r.output


def test_symbolic_refuses_combinations():
    r = _run("resnet18", "--symbolic", "--depth", "1")
    assert r.exit_code == 2 and "--depth" in r.output


def test_symbolic_batch_and_dtype_scale():
    one = symbolic(cnncalc.load("resnet18"))
    four = symbolic(cnncalc.load("resnet18"), batch=4, nbytes=2, dtype="float16")
    a, b = one.evaluate((96, 128)), four.evaluate((96, 128))
    assert b["macs"] == 4 * a["macs"] and b["params"] == a["params"]
    assert b["memory_bytes"] == 4 * 2 * (a["input"] + a["activations"])


def _random_signal_spec(rng, n_layers):
    """A random chain of windows (every rounding, 'same' padding, dilation), resamplings and
    a two-branch merge, on a signal L x 2."""
    lines = []
    for i in range(n_layers):
        t = rng.choice(["conv", "conv", "maxpool", "avgpool", "upsample", "crop", "padding", "same"])
        r = rng.choice(["", ", rounding: floor", ", rounding: ceil"])
        if t == "conv":
            lines.append(f"{{conv: 2, kernel: {rng.randint(1, 5)}, stride: {rng.randint(1, 3)}, "
                         f"pad: {rng.randint(0, 2)}, dilation: {rng.randint(1, 2)}{r}, name: l{i}}}")
        elif t in ("maxpool", "avgpool"):
            k = rng.randint(1, 4)
            lines.append(f"{{{t}: {k}, stride: {rng.randint(1, 3)}, pad: {rng.randint(0, k // 2)}{r}, name: l{i}}}")
        elif t == "upsample":
            lines.append(f"{{upsample: {rng.randint(2, 3)}, name: l{i}}}")
        elif t in ("crop", "padding"):
            lines.append(f"{{{t}: {rng.randint(0, 2)}, name: l{i}}}")
        else:
            lines.append(f"{{conv: 2, kernel: {rng.randint(1, 3)}, stride: {rng.randint(1, 3)}, pad: same{r}, "
                         f"name: l{i}}}")
    if rng.random() < 0.5:  # branches that agree only at some sizes
        last = f"l{n_layers - 1}"
        lines += [f"{{conv: 2, kernel: 3, stride: 2, pad: 1, rounding: floor, inputs: [{last}], name: a}}",
                  f"{{maxpool: 2, stride: 2, rounding: {rng.choice(['floor', 'ceil'])}, inputs: [{last}], name: b}}",
                  "{concat: null, inputs: [a, b], name: m}"]
    return lines


@pytest.mark.parametrize("seed,specs", [(0, 25), pytest.param(1, 300, marks=pytest.mark.slow)])
def test_random_specs_domain_and_values_exact(tmp_path, seed, specs):
    """Random specs: at every L in 1..100 the numeric analysis accepts L exactly when the
    symbolic domain does, and then the formulas give its numbers."""
    rng = random.Random(seed)
    done = 0
    for trial in range(specs):
        p = tmp_path / f"s{trial}.yaml"
        body = "".join(f"  - {line}\n" for line in _random_signal_spec(rng, rng.randint(1, 5)))
        p.write_text(f"name: s\ninput: {rng.randint(20, 60)}x2\nlayers:\n{body}")
        graph = cnncalc.load(str(p))
        try:
            graph.infer(None)
        except CnnCalcError:
            continue  # (the spec's own size does not fit: draw another)
        rep = symbolic(graph)
        for L in range(1, 101):
            try:
                num = analyze_graph(graph, input_shape=(L, 2))
            except CnnCalcError:
                assert L not in rep.domains[0], (p.read_text(), L)
                continue
            assert L in rep.domains[0], (p.read_text(), L)
            got = rep.evaluate((L,))
            assert (got["params"], got["macs"], got["activations"]) == \
                (num.totals["params"], num.totals["macs"], num.totals["activations"]), (p.read_text(), L)
        done += 1
    assert done >= specs // 3


@pytest.mark.parametrize("flag", ["--symbolic", "--workspace"])
def test_symbolic_and_workspace_never_import_numba_or_numpy(flag):
    """The analysis path stays light: formulas and workspaces restate the runtime's rules
    instead of importing it."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    code = ("import sys; from cnncalc.cli import main\n"
            f"try:\n    main(['summarize', 'vgg16', '{flag}', '--format', 'json'], standalone_mode=False)\n"
            "finally:\n    print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numba', 'numpy', 'torch', 'onnx')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)}, cwd=root)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "MODULES []"


def test_random_images_with_different_rules_per_axis(tmp_path):
    """Kernels, strides and pads that differ between H and W, 'same' depthwise convs and
    upsampling by [2, 3]: each axis gets its own formula and accepted sizes, and the numeric
    analysis agrees on a grid of (H, W)."""
    rng = random.Random(7)
    done = 0
    for trial in range(20):
        lines = []
        for i in range(rng.randint(1, 4)):
            t = rng.choice(["conv", "maxpool", "dw", "up"])
            r = rng.choice(["", ", rounding: floor", ", rounding: ceil"])
            if t == "conv":
                lines.append(f"{{conv: 3, kernel: [{rng.randint(1, 4)}, {rng.randint(1, 4)}], "
                             f"stride: [{rng.randint(1, 3)}, {rng.randint(1, 3)}], pad: [[{rng.randint(0, 2)}, "
                             f"{rng.randint(0, 2)}], [{rng.randint(0, 1)}, {rng.randint(0, 2)}]]{r}, name: l{i}}}")
            elif t == "maxpool":
                lines.append(f"{{maxpool: [2, 3], stride: [{rng.randint(1, 3)}, {rng.randint(1, 2)}]{r}, name: l{i}}}")
            elif t == "dw":
                lines.append(f"{{dwconv: 3, stride: 2, pad: same{r}, name: l{i}}}")
            else:
                lines.append(f"{{upsample: [2, 3], name: l{i}}}")
        lines += ["{global_avgpool: null, name: g}", "{fc: 4, name: f}"]
        p = tmp_path / f"s{trial}.yaml"
        p.write_text(f"name: s\ninput: {rng.randint(15, 40)}x{rng.randint(15, 40)}x3\nlayers:\n"
                     + "".join(f"  - {line}\n" for line in lines))
        graph = cnncalc.load(str(p))
        try:
            graph.infer(None)
        except CnnCalcError:
            continue
        rep = symbolic(graph)
        for H in range(1, 45, 3):
            for W in range(1, 45, 4):
                try:
                    num = analyze_graph(graph, input_shape=(H, W, 3))
                except CnnCalcError:
                    assert not rep.accepts((H, W)), (p.read_text(), H, W)
                    continue
                assert rep.accepts((H, W)), (p.read_text(), H, W)
                got = rep.evaluate((H, W))
                assert (got["macs"], got["activations"], got["params"]) == \
                    (num.totals["macs"], num.totals["activations"], num.totals["params"]), (p.read_text(), H, W)
        done += 1
    assert done >= 10
