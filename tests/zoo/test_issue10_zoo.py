"""The issue-10 zoo specs load, are listed by `cnncalc zoo`, have receptive fields, and their
by-hand landmarks hold (independent of torch)."""
import json

import pytest

import cnncalc
from cnncalc.analysis.rf import receptive_fields
from tests.conftest import run_module

NEW = ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "mobilenet_v3_large", "mobilenet_v3_small", "convnext_tiny", "inception_v3",
       "inception_v3_aux", "densenet201", "regnet_x_400mf", "unet", "deeplabv3_head", "c3d"]


def test_zoo_lists_them():
    res = run_module("zoo", "--format", "json")
    assert res.returncode == 0, res.stderr
    names = {s["name"] for s in json.loads(res.stdout)["specs"]}
    assert set(NEW) <= names
    assert res.stderr == ""  # no unconsumed-output warnings: aux heads are marked output: true


@pytest.mark.parametrize("name", NEW)
def test_receptive_fields_follow_every_new_layer(name):
    rep = receptive_fields(name)
    assert len(rep.layers) == len(cnncalc.analyze(name).layers) + 1


def test_landmarks_by_hand():
    # U-Net: 572 − 4 = 568, /2 = 284 − 4 = 280, /2 = 140 − 4 = 136, /2 = 68 − 4 = 64, /2 = 32 − 4 = 28;
    # up: 56 − 4 = 52, 104 − 4 = 100, 200 − 4 = 196, 392 − 4 = 388
    u = cnncalc.analyze("unet")
    names = [f"{n}/conv2" for n in ("enc1", "enc2", "enc3", "enc4", "bottom")] + \
        [f"{n}/double/conv2" for n in ("up4", "up3", "up2", "up1")]
    assert [u[n].shape[0] for n in names] == \
        [568, 280, 136, 64, 28, 52, 100, 196, 388]
    # DeepLab ASPP: 5 x 256 = 1,280 channels at 28x28; the pooled branch upsampled from 1x1
    d = cnncalc.analyze("deeplabv3_head")
    assert d["aspp_concat"].shape == (28, 28, 1280) and d["image_upsample"].shape == (28, 28, 256)
    # C3D: conv1a 3x3x3x3 x 64 + 64 = 5,248; fc6 8,192 x 4,096 + 4,096 = 33,558,528
    c = cnncalc.analyze("c3d")
    assert c["conv1a"].params == 5248 and c["fc6"].params == 33_558_528
    # ConvNeXt-T layer scale: one γ per channel, no MACs
    x = cnncalc.analyze("convnext_tiny")
    assert x["stage1/block1/layer_scale"].params == 96 and x["stage1/block1/layer_scale"].macs == 0
    # the SE receptive field follows the data path and is flagged as gated
    rf = receptive_fields("efficientnet_b0")
    se = rf["stage2/block1/se"]
    assert se.gated and not se.is_global and rf.aligned


def test_the_scaled_efficientnet_spec_at_w_d_1_is_b0(tmp_path):
    from importlib import resources
    text = (resources.files("cnncalc") / "zoo" / "efficientnet_b1.yaml").read_text()
    text = text.replace("vars: {w: 1.0, d: 1.1, dropout: 0.2}", "vars: {w: 1.0, d: 1.0, dropout: 0.2}")
    text = text.replace("input: 240x240x3", "input: 224x224x3")
    p = tmp_path / "b0.yaml"
    p.write_text(text)
    a, b = cnncalc.analyze(str(p)).totals, cnncalc.analyze("efficientnet_b0").totals
    assert (a["params"], a["macs"]) == (b["params"], b["macs"])
