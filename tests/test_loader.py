"""The spec language: repeats, modules, branches, expressions, and its safety."""
import pytest

from cnncalc import analyze
from cnncalc.errors import SpecError
from cnncalc.spec import load_spec_text
from cnncalc.spec.expr import ExprError, evaluate

INCEPTION = """
name: inception toy
input: 28x28x256
defaults:
  conv: {activation: relu}
modules:
  inception:
    args: [c1, c3r, c3, c5r, c5, pp]
    layers:
      - concat:
          - [{conv: $c1, kernel: 1, name: 1x1}]
          - [{conv: $c3r, kernel: 1, name: 3x3_reduce}, {conv: $c3, kernel: 3, pad: 1, name: 3x3}]
          - [{conv: $c5r, kernel: 1, name: 5x5_reduce}, {conv: $c5, kernel: 5, pad: 2, name: 5x5}]
          - [{maxpool: 3, stride: 1, pad: 1, name: pool}, {conv: $pp, kernel: 1, name: pool_proj}]
        name: output
layers:
  - {inception: [64, 96, 128, 16, 32, 32], name: inception_3a}
  - {inception: [128, 128, 192, 32, 96, 64], name: inception_3b}
"""


def test_module_instances_and_concat():
    r = analyze(load_spec_text(INCEPTION))
    assert r["inception_3a/output"].shape == (28, 28, 64 + 128 + 32 + 32)
    assert r["inception_3b/output"].shape == (28, 28, 128 + 192 + 96 + 64)
    assert r["inception_3a/3x3"].weights == 3 * 3 * 96 * 128
    assert r["inception_3b/1x1"].inputs == ["inception_3a/output"]


def test_residual_module_with_when_and_expressions():
    # A 1x1 stride-2 conv on 56 does not fit exactly ((56 - 1)/2 + 1 = 28.5): ResNet relies on
    # PyTorch's floor, which a spec states with `rounding: floor`.
    text = """
input: 56x56x64
rounding: floor
defaults:
  conv: {bias: false}
modules:
  bottleneck:
    args: {w: null, stride: 1, proj: false}
    layers:
      - add:
          - - {conv: $w, kernel: 1, stride: $stride, bn: true, activation: relu}
            - {conv: $w, kernel: 3, pad: 1, bn: true, activation: relu}
            - {conv: "${4*w}", kernel: 1, bn: true}
          - - {conv: "${4*w}", kernel: 1, stride: $stride, bn: true, when: $proj, name: proj}
        activation: relu
        name: out
layers:
  - {bottleneck: {w: 64, proj: "${n == 1}"}, repeat: 3, name: conv2}
  - {bottleneck: {w: 128, stride: "${2 if n == 1 else 1}", proj: "${n == 1}"}, repeat: 2, name: conv3}
"""
    r = analyze(load_spec_text(text))
    assert r["conv2_1/out"].shape == (56, 56, 256)
    assert "conv2_1/proj" in r and "conv2_2/proj" not in r
    assert r["conv2_2/out"].inputs == ["conv2_2/conv3_bn", "conv2_1/out"]  # identity shortcut
    assert r["conv3_1/out"].shape == (28, 28, 512)
    assert r["conv3_1/conv1"].shape == (28, 28, 128)   # the paper's stride on the first 1x1


def test_explicit_inputs_make_a_dag():
    r = analyze(load_spec_text("""
input: 8x8x3
layers:
  - {conv: 4, kernel: 3, pad: 1, name: a}
  - {conv: 4, kernel: 3, pad: 1, name: b}
  - {conv: 4, kernel: 1, inputs: a, name: c}
  - {add: , inputs: [b, c], name: sum}
"""))
    assert r["sum"].inputs == ["b", "c"] and r["sum"].shape == (8, 8, 4)


def test_auto_names_and_repeat_names():
    r = analyze(load_spec_text("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 1, repeat: 3}\n  - relu\n"))
    assert [x.name for x in r] == ["conv1", "conv2", "conv3", "relu1"]
    r = analyze(load_spec_text("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 1, repeat: 2, name: c}\n"))
    assert [x.name for x in r] == ["c_1", "c_2"]


def test_spec_rounding_default_and_layer_override():
    text = "input: 7x7x1\nrounding: floor\nlayers:\n  - {maxpool: 2}\n  - {maxpool: 2, rounding: ceil}\n"
    r = analyze(load_spec_text(text))
    assert r["maxpool1"].shape == (3, 3, 1) and r["maxpool2"].shape == (2, 2, 1)


@pytest.mark.parametrize("src", ["__import__('os')", "().__class__", "open('x')", "[x for x in y]",
                                 "lambda: 1", "a.b", "2**1000"])
def test_expressions_cannot_run_code(src):
    with pytest.raises(ExprError):
        evaluate(src, {"a": 1, "y": [1]})


def test_expressions_arithmetic():
    assert evaluate("4*w + 1", {"w": 16}) == 65
    assert evaluate("2 if n == 1 else 1", {"n": 1}) == 2
    assert evaluate("max(1, c // 4)", {"c": 6}) == 1


@pytest.mark.parametrize("text,line,fragment", [
    ("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3, kernal: 3}\n", 3, "did you mean 'kernel'"),
    ("input: 8x8x3\nlayers:\n  - {conv: 4}\n", 3, "needs 'kernel'"),
    ("input: 8x8x3\nlayers:\n  - {cnov: 4}\n", 3, "did you mean 'conv'"),
    ("input: 8x8x3\nlayers:\n  - relu\n  - {relu: , name: relu1}\n", 4, "used twice"),
    ("input: 8x8x3\nmodules:\n  m: {args: [a], layers: [{conv: $a, kernel: 1}]}\nlayers:\n  - {m: [1, 2]}\n",
     5, "takes 1 arguments"),
    ("input: 8x8x3\nlayers:\n  - {conv: '${w*2}', kernel: 1}\n", 3, "unknown name 'w'"),
    ("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 1, inputs: nothere}\n", 3, "not a layer defined"),
    ("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3, pad: 1}\n  - {conv: 4, kernel: 3, pad: 1}\n  - {conv: 4, kernel: 3, pad: 1}\n"
     "  - {conv: 4, kernel: 3, pad: 1}\n  - {conv: 5, kernel: 9}\n", 7, "larger than the padded input"),
])
def test_errors_name_line_and_fix(text, line, fragment):
    with pytest.raises(SpecError) as exc:
        analyze(load_spec_text(text, file="t.yaml"))
    e = exc.value
    assert e.line == line, str(e)
    assert fragment in str(e)
    assert str(e).startswith(f"t.yaml:{line}:")
