"""AlexNet as the CS231n lecture lists it, and LeNet-5 with a dense C3."""
import pytest

from cnncalc import analyze

# The lecture's "Full (simplified) AlexNet architecture" list
ALEXNET_SHAPES = {
    "conv1": (55, 55, 96),    # (227 - 11)/4 + 1 = 55
    "pool1": (27, 27, 96),    # (55 - 3)/2 + 1 = 27
    "norm1": (27, 27, 96),
    "conv2": (27, 27, 256),   # (27 + 2*2 - 5)/1 + 1 = 27
    "pool2": (13, 13, 256),   # (27 - 3)/2 + 1 = 13
    "norm2": (13, 13, 256),
    "conv3": (13, 13, 384), "conv4": (13, 13, 384), "conv5": (13, 13, 256),
    "pool5": (6, 6, 256),     # (13 - 3)/2 + 1 = 6 (the slide's MAX POOL3)
    "fc6": (4096,), "fc7": (4096,), "fc8": (1000,),
}


@pytest.fixture(scope="module")
def alex():
    return analyze("alexnet", explain=True)


@pytest.mark.parametrize("name,shape", ALEXNET_SHAPES.items())
def test_alexnet_shapes(alex, name, shape):
    assert alex[name].shape == shape


def test_alexnet_conv1_and_pool1(alex):
    assert alex["conv1"].weights == (11 * 11 * 3) * 96 == 34_848  # slide: "35K"
    assert alex["conv1"].params == 34_848 + 96
    assert alex["pool1"].params == 0
    assert "shape: (227 − 11)/4 + 1 = 55" in alex["conv1"].explain
    assert "params: (11*11*3)*96 + 96 = 34,944" in alex["conv1"].explain


def test_alexnet_explain_weights_only():
    r = analyze("alexnet", explain=True, bias=False)
    assert "params: (11*11*3)*96 = 34,848" in r["conv1"].explain


def test_lenet5_dense_counts():
    r = analyze("lenet5")
    # C1: (5*5*1)*6 + 6; C3 dense: (5*5*6)*16 + 16; C5: (5*5*16)*120 + 120; F6: 120*84 + 84; out: 84*10 + 10
    expected = {"C1": 156, "S2": 0, "C3": 2_416, "S4": 0, "C5": 48_120, "F6": 10_164, "output": 850}
    for name, p in expected.items():
        assert r[name].params == p, name
    assert r.totals["params"] == sum(expected.values()) == 61_706
    assert r["C5"].shape == (1, 1, 120)
    assert r["C1"].macs == 28 * 28 * 6 * 25


def test_analyze_results_stay_dataclasses():
    """``analyze()``'s results are public: users serialise them with ``dataclasses.asdict``.
    (The internal records — Node, Graph, Column… — are plain classes to save start-up time;
    these two must not follow.) LeNet-5's params, by hand: 156 + 2,416 + 48,120 + 10,164 + 850
    = 61,706 (C3 dense)."""
    import dataclasses

    import cnncalc

    r = cnncalc.analyze("lenet5")
    d = dataclasses.asdict(r)
    assert sum(row["weights"] + row["biases"] for row in d["layers"]) == 61706
    assert dataclasses.asdict(r.layers[0])["name"] == r.layers[0].name
