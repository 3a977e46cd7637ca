"""VGG-16 against the CS231n lecture slide "VGGNet" (memory / params per layer, not counting
biases) and Simonyan & Zisserman 2015, Table 2 (138M parameters). Every golden number below is
written as the slide's own arithmetic."""
import pytest

from cnncalc import analyze

# (layer, shape, memory = H*W*C, weights not counting biases) — the slide's rows
SLIDE = [
    ("conv1_1", (224, 224, 64), 224 * 224 * 64, (3 * 3 * 3) * 64),
    ("conv1_2", (224, 224, 64), 224 * 224 * 64, (3 * 3 * 64) * 64),
    ("pool1", (112, 112, 64), 112 * 112 * 64, 0),
    ("conv2_1", (112, 112, 128), 112 * 112 * 128, (3 * 3 * 64) * 128),
    ("conv2_2", (112, 112, 128), 112 * 112 * 128, (3 * 3 * 128) * 128),
    ("pool2", (56, 56, 128), 56 * 56 * 128, 0),
    ("conv3_1", (56, 56, 256), 56 * 56 * 256, (3 * 3 * 128) * 256),
    ("conv3_2", (56, 56, 256), 56 * 56 * 256, (3 * 3 * 256) * 256),
    ("conv3_3", (56, 56, 256), 56 * 56 * 256, (3 * 3 * 256) * 256),
    ("pool3", (28, 28, 256), 28 * 28 * 256, 0),
    ("conv4_1", (28, 28, 512), 28 * 28 * 512, (3 * 3 * 256) * 512),
    ("conv4_2", (28, 28, 512), 28 * 28 * 512, (3 * 3 * 512) * 512),
    ("conv4_3", (28, 28, 512), 28 * 28 * 512, (3 * 3 * 512) * 512),
    ("pool4", (14, 14, 512), 14 * 14 * 512, 0),
    ("conv5_1", (14, 14, 512), 14 * 14 * 512, (3 * 3 * 512) * 512),
    ("conv5_2", (14, 14, 512), 14 * 14 * 512, (3 * 3 * 512) * 512),
    ("conv5_3", (14, 14, 512), 14 * 14 * 512, (3 * 3 * 512) * 512),
    ("pool5", (7, 7, 512), 7 * 7 * 512, 0),
    ("fc6", (4096,), 4096, 7 * 7 * 512 * 4096),
    ("fc7", (4096,), 4096, 4096 * 4096),
    ("fc8", (1000,), 1000, 4096 * 1000),
]


@pytest.fixture(scope="module")
def vgg():
    return analyze("specs/vgg16.yaml")


@pytest.mark.parametrize("name,shape,memory,weights", SLIDE)
def test_every_slide_row(vgg, name, shape, memory, weights):
    row = vgg[name]
    assert row.shape == shape
    assert row.activations == memory
    assert row.weights == weights


def test_slide_examples_spelled_out(vgg):
    assert vgg["conv1_1"].weights == 1_728
    assert vgg["conv1_1"].activations == 3_211_264  # "224*224*64 = 3.2M"
    assert vgg["fc6"].weights == 102_760_448


def test_totals(vgg):
    t = vgg.totals
    weights = sum(w for *_, w in SLIDE)
    biases = 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512 + 4096 + 4096 + 1000
    assert t["weights"] == weights == 138_344_128
    assert t["biases"] == biases == 13_416
    assert t["params"] == weights + biases == 138_357_544  # Table 2: 138M
    # MACs: every conv output value costs 3*3*C_in multiply-adds; fc layers in*out
    macs = sum(r.activations * 9 * vgg[r.inputs[0]].shape[-1] if r.type == "conv" else 0 for r in vgg)
    macs += 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert t["macs"] == macs == 15_470_264_320
    assert t["flops"] == 2 * macs


def test_slide_total_memory_is_not_the_sum_of_its_rows(vgg):
    # The slide says "TOTAL memory: 24M * 4 bytes ~= 93MB / image"; its own rows add up to
    # 15,237,608 values (input 224*224*3 included) = 60,950,432 bytes in float32.
    rows = 224 * 224 * 3 + sum(m for _, _, m, _ in SLIDE)
    assert rows == 15_237_608
    assert vgg.totals["input"] + vgg.totals["activations"] == rows
    assert vgg.memory["input_bytes"] + vgg.memory["forward_bytes"] == rows * 4
    assert rows < 24_000_000 * 0.7


def test_batch_and_dtype_scale_memory_and_macs():
    r = analyze("vgg16", batch=8, dtype="float16")
    assert r["conv1_1"].activations == 8 * 224 * 224 * 64
    assert r["conv1_1"].activation_bytes == 2 * 8 * 224 * 224 * 64
    assert r.totals["macs"] == 8 * 15_470_264_320
    assert r.totals["params"] == 138_357_544  # parameters do not scale with the batch


def test_no_bias_counts_weights_only():
    r = analyze("vgg16", bias=False)
    assert r.totals["params"] == 138_344_128
    assert r.to_dict()["layers"][0]["params"] == 1_728
