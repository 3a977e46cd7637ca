"""The libyaml fast path (cnncalc.spec.yamlsafe) is taken only by text that cannot hold an
anchor or alias: libyaml composes outside the alias-expansion bound. A '*' in an expression,
a quoted scalar or a comment is no alias, so the shipped specs with arithmetic take it."""
from pathlib import Path

import pytest

from cnncalc.spec import yamlsafe as Y
from cnncalc.spec.loader import load_spec_text

ZOO = Path(Y.__file__).resolve().parent.parent / "zoo"


@pytest.mark.parametrize("text", [
    "a: *x\n", "a: &x 1\nb: *x\n", "[*a, *b]", "[1,*b]", "{k: *a}", "- *a\n", "*a : 1\n", "a:\t*x",
    "a: b#c *x", 'k: [a, "q", *x]', 'a: "x" \n b: *c',
    "a: 'open\n  *x'\n", 'a: "open\n *x"',            # a quoted scalar over two lines: not read, so refused
])
def test_possible_anchors_and_aliases_are_seen(text):
    assert Y._may_alias(text) and not Y._fast_ok(text)


@pytest.mark.parametrize("text", [
    "a: '${4*w}'\n", 'a: "${4 * w}"\n', "a: ${4*w}\n", "# 3 * 3 & x\n", "a: 1  # x * y\n",
    'a: "x\\" *b"\n', "a: 'it''s *x'\n",
])
def test_arithmetic_quotes_and_comments_are_not_aliases(text):
    assert not Y._may_alias(text) and Y._fast_ok(text)


def test_every_shipped_spec_takes_the_fast_path():
    slow = [p.name for p in sorted(ZOO.glob("*.yaml")) if not Y._fast_ok(p.read_text())]
    assert not slow


def test_an_alias_bomb_is_still_stopped():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\ninput: 8x8x3\nlayers: [{conv: 4, kernel: *a8}]\n"
    with pytest.raises(Exception, match="yaml_nodes"):
        load_spec_text(text, file="<bomb>")
