"""The lift stage's API (cnncalc.interop.onnx.common.Lift), which an attention rewrite builds on:
a lift registered for a spec layer type sees each item a node was lowered to, walks back
through its producers and replaces several items by one layer."""
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from cnncalc.interop.onnx import import_model, rewrites  # noqa: E402
from cnncalc.interop.onnx.common import Item  # noqa: E402
from cnncalc.interop.onnx.rewrites import Rewrite  # noqa: E402
from tests.interop.rewrites.graphs import conv, lifted, model, node  # noqa: E402


def _double_negation(lift, item) -> bool:
    """-(-x) → identity: two low-level items (the second this node's) become one layer."""
    first = lift.producer(item)
    if item.args.get("op") != "neg" or first is None or first.kind != "unary" or first.args.get("op") != "neg":
        return False
    if lift.uses(lift.node.input[0]) != 1:
        return False
    lift.replace([first, item], Item("identity", {"identity": None}, first.name, list(first.inputs), lift.node.name))
    return True


@pytest.fixture
def with_lift():
    with rewrites.registered(Rewrite("double_negation", "arith", ("unary",), _double_negation, stage="lift",
                                     lifts="identity")):
        yield
    assert "double_negation" not in {r.name for r in rewrites.registry()}


def test_a_lift_replaces_two_lowered_items_by_one_layer_in_place(with_lift):
    c, i = conv(out="a", c_in=3, c_out=4)
    m = model([c, node("Neg", ["a"], ["n1"]), node("Neg", ["n1"], ["n2"]), node("Relu", ["n2"], ["r"]),
               node("Neg", ["r"], ["y"])], i)
    assert lifted(m) == ["conv", "identity", "relu", "unary"]
    text = import_model(m, source="m.onnx").text
    assert "name: n1, inputs" not in text and "{identity: null, name: n1}" in text  # the first one's name


def test_without_the_lift_the_negations_stay_low_level():
    c, i = conv(out="a", c_in=3, c_out=4)
    m = model([c, node("Neg", ["a"], ["n1"]), node("Neg", ["n1"], ["y"])], i)
    assert lifted(m) == ["conv", "unary", "unary"]


def test_a_lift_that_does_not_check_uses_cannot_rewire_a_second_reader_silently():
    """n1 is read by the second Neg and by the Add: after the replacement nothing holds n1, so
    the Add is refused rather than reading the identity's output."""
    from cnncalc.interop import InteropError

    def careless(lift, item):
        first = lift.producer(item)
        if first is None or first.kind != "unary":
            return False
        lift.replace([first, item], Item("identity", {"identity": None}, first.name, list(first.inputs), ""))
        return True

    m = model([node("Neg", ["x"], ["n1"]), node("Neg", ["n1"], ["n2"]), node("Add", ["n1", "n2"], ["y"])])
    with rewrites.registered(Rewrite("careless", "arith", ("unary",), careless, stage="lift", lifts="identity")):
        with pytest.raises(InteropError, match="not computed by"):
            import_model(m, source="m.onnx")
