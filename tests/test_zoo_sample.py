"""The zoo sample that tests over every shipped spec run in the fast run (tests/conftest.py):
it must keep every layer type of the zoo, and 1-D and 3-D inputs, or the fast run would
lose a feature that only the slow group then checks."""
from conftest import ZOO_SAMPLE, zoo_params

from cnncalc.spec.loader import load_spec, zoo_names


def _kinds(name):
    g = load_spec(name)
    return {n.kind for n in g.layers} | {f"{len(g.input_shape) - 1}-D input"}


def test_the_sample_has_every_layer_type_and_input_rank_of_the_zoo():
    assert set(ZOO_SAMPLE) <= set(zoo_names())
    every = set().union(*(_kinds(n) for n in zoo_names()))
    sample = set().union(*(_kinds(n) for n in ZOO_SAMPLE))
    assert every - sample == set(), "add a shipped spec with these to ZOO_SAMPLE in tests/conftest.py"
    assert {"1-D input", "2-D input", "3-D input"} <= sample


def test_zoo_params_marks_the_rest_slow():
    params = zoo_params(["kim-cnn", "vgg16"], slow=["kim-cnn"])
    assert [p.values[0] for p in params] == ["kim-cnn", "vgg16"]
    assert all(m.name == "slow" for p in params for m in p.marks)
    assert zoo_params(["unet"]) == ["unet"]
