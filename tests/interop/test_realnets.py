"""Real models in the default run, without torch (issue 23: "a handful in the default suite"):
torchvision's resnet18, mobilenet_v3_small and convnext_tiny and timm's ViT and Swin, as a
default `torch.onnx.export` wrote them (tests/data/realnets/make.py; batch norm folded), their
weights zeroed for the repository and drawn here at random. Each imports, its MACs equal
PyTorch's dispatcher count recorded when the file was written (a second method), its parameters
equal the module's (where the export folded each batch norm into its conv: the module's less
num_features per batch norm), and the spec on the runtime equals onnxruntime on outputs (the
import's check).
The same models through torch itself are the slow group's (test_zoo_import, test_roundtrip)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("numba")

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.interop.check import check_import  # noqa: E402
from cnncalc.interop.onnx_import import import_model  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "realnets"
NUMBERS = json.loads((DATA / "numbers.json").read_text())["models"]
# (layer kinds each must come back with: the readable form, not only the right numbers)
KINDS = {"resnet18": {"conv": 20, "add": 8}, "mobilenet_v3_small": {"dwconv": 11},
         "convnext_tiny": {"dwconv": 18}, "vit_tiny_2": {"attention": 2}, "swin_mini": {"attention": 4}}
BN_FOLDED = {"resnet18", "mobilenet_v3_small"}  # (their file's parameters are the folded convs')
# (torch.onnx.export keeps one copy of equal initializers — an untrained net's folded biases are
# all zero, so several convs read one — and the spec counts one per conv: the module's numbers
# are the reference, not the file's)


def _model(name):
    from onnx import numpy_helper

    m = onnx.load_from_string(gzip.decompress((DATA / f"{name}.onnx.gz").read_bytes()))
    rng = np.random.default_rng(7)
    for t in m.graph.initializer:  # (random values into the tensors make.py zeroed)
        if t.data_type == onnx.TensorProto.FLOAT and not numpy_helper.to_array(t).any():
            a = numpy_helper.to_array(t)
            fan = max(1, int(np.prod(a.shape[1:]))) if a.ndim > 1 else 1
            t.CopyFrom(numpy_helper.from_array((rng.standard_normal(a.shape) / np.sqrt(fan)).astype(np.float32),
                                               t.name))
    return m


@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_real_model_imports_exactly_and_computes_the_same(name):
    want = NUMBERS[name]
    m = _model(name)
    size = want["input"]
    imp = import_model(m, source=f"{name}.onnx", input_shape=(size, size, 3))
    g = load_spec_text(imp.text)
    g.infer()
    tot = analyze_graph(g).totals
    assert tot["macs"] == want["macs"]
    if name in BN_FOLDED:
        assert tot["params"] == want["params_bn_folded"] < want["params"]
    else:
        assert tot["params"] == want["params"]
    kinds: dict = {}
    for n in g.layers:
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    for k, v in KINDS[name].items():
        assert kinds.get(k, 0) == v, (k, kinds)
    res = check_import(g, imp)
    assert res.ran and res.ok, res.line()
