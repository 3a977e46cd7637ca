"""Real timm CNNs import exactly by both paths (issue 23): `import --torch` and an ONNX file from a
default `torch.onnx.export`, compared on OUTPUTS (the spec on the runtime with the model's weights
vs the torch module / onnxruntime), parameters = sum(p.numel()) and conv/linear MACs = a
forward-hook count (tests/interop/zoocheck.py, which benchmarks/import_coverage.py uses too).

The slow group (what CI runs) takes the models of the patterns issue 23 names, at 32 px (SAMPLE);
every other model of the benchmark's list is marked `zoo_full` (`python -m pytest -q -m zoo_full`,
hours on two cores). A model the importer refuses is listed in REFUSED with the reason: its test expects
the refusal (strict), so a fix shows as a failure to update the list, and a wrong number never
passes."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.torch

from tests.interop.zoocheck import both_paths  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "import_coverage", Path(__file__).resolve().parents[2] / "benchmarks" / "import_coverage.py")
_cov = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cov)

# the slow group (CI, whose budget is minutes: docs/contributing.md) imports the models of the
# patterns issue 23 names, at 32 px: ResNeSt's radix softmax, SKNet's branch attention, TF "same"
# padding (Cast/Ceil arithmetic), ConvNeXt-V2's channels-last block with GRN, RexNet's unequal
# channel slices, NFNet's weight standardisation and gains (conv `standardize:`); the plain families run in CI through
# torchvision (test_roundtrip.py), x + 0 and the one-input concat as fast hand-built graphs
# (test_patterns.py), and every model of the list as `zoo_full`
SAMPLE = {"resnest14d": 32, "skresnet18": 32, "tf_efficientnet_b0": 32, "convnextv2_atto": 32, "rexnet_100": 32,
          "nf_resnet26": 32}

# refused by the importer, with the reason it prints (each an honest refusal, never accepted).
# None now: the three NFNets (ScaledStdConv2d's weight standardisation with a gain) import as
# conv `standardize:` since issue 23's weight-standardisation work (nf_resnet26 in SAMPLE).
REFUSED: dict[str, str] = {}

# models outside the benchmark's 60 that a feature was written for: BiT's StdConv2d (weight
# standardisation without a gain, eps 1e-8), every one `zoo_full`
EXTRA = {"resnetv2_50x1_bit": 32}


def _params():
    out = []
    for name in _cov.TIMM:
        if name in SAMPLE:
            out.append(pytest.param(name, SAMPLE[name], id=name))
        else:
            out.append(pytest.param(name, _cov.SIZES.get(name, 64), id=name, marks=pytest.mark.zoo_full))
    out += [pytest.param(name, size, id=name, marks=pytest.mark.zoo_full) for name, size in EXTRA.items()]
    return out


@pytest.mark.parametrize("name,size", _params())
def test_timm_model_imports_exactly_by_both_paths(name, size):
    torch.manual_seed(0)
    res = both_paths(timm.create_model(name, pretrained=False), name, size)
    for path in ("torch", "onnx"):
        r = res[path]
        assert r["status"] != "wrong", f"{name} {path}: accepted with a wrong {r['wrong']}: {r}"
        assert r["status"] != "crash", f"{name} {path}: {r['why']}"
        if name in REFUSED:
            assert r["status"] == "refused", f"{name} {path} now imports: take it off REFUSED ({r})"
            assert REFUSED[name] in r["why"], r["why"]
        else:
            assert r["status"] == "exact", f"{name} {path}: {r}"


def test_the_list_covers_every_family_of_issue_23():
    families = ("resnet", "resnext", "resnest", "skresnet", "res2net", "regnet", "efficientnet", "tf_efficientnet",
                "mobilenetv2", "mobilenetv3", "mobilenetv4", "mnasnet", "ghostnet", "rexnet", "lcnet", "hardcorenas",
                "convnext_", "convnextv2", "densenet", "inception_v3", "inception_v4", "xception", "dla", "dpn",
                "hrnet", "selecsls", "vovnet", "csp", "darknet", "vgg", "repvgg", "mobileone", "gernet", "nfnet")
    for f in families:
        assert any(f in n for n in _cov.TIMM), f
    assert set(SAMPLE) <= set(_cov.TIMM)
