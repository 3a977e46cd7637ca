"""`summarize model.onnx` builds the graph from the imported spec's mapping (issue 25 item 14):
the same analysis as writing the spec's YAML text and reading it back, without the text (a
50,000-layer model's spec is megabytes: over the spec_bytes limit, ~100 KB/s to parse)."""
import json

import pytest

onnx = pytest.importorskip("onnx")

from conftest import run_module  # noqa: E402

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.analysis.rf import receptive_fields  # noqa: E402
from cnncalc.interop.onnx_export import export_onnx, unsupported_layers  # noqa: E402
from cnncalc.interop.onnx_import import import_model  # noqa: E402
from cnncalc.spec.loader import build_graph, load_spec, load_spec_text  # noqa: E402
from cnncalc.spec.yamlsafe import unlined  # noqa: E402


def _without_lines(report) -> dict:
    d = report.to_dict()
    for row in d["layers"]:
        row.pop("line", None)
    return d


@pytest.mark.parametrize("name", ["lenet5", "googlenet", "resnet18", "mobilenet_v2", "efficientnet_b0",
                                  "shufflenet_v2", "unet", "convnext_tiny", "inception_v3"])
def test_doc_reads_as_the_text_does(name):
    g = load_spec(name)
    g.infer()
    assert not unsupported_layers(g)
    model = export_onnx(g, seed=None)
    from_text = load_spec_text(import_model(model, source=f"{name}.onnx").text, file="m.onnx")
    imp = import_model(model, source=f"{name}.onnx", as_doc=True)
    assert imp.text == "" and imp.doc["layers"]
    from_doc = build_graph(unlined(imp.doc), file="m.onnx")
    assert _without_lines(analyze_graph(from_doc, explain=True)) == _without_lines(
        analyze_graph(from_text, explain=True))
    assert receptive_fields(from_doc).to_dict() == receptive_fields(from_text).to_dict()


def _chain_round_trip(tmp_path, n: int, input: str, channels: int):
    """A chain of n 3x3 convs exported to ONNX and summarized back: (its spec, the JSON read back)."""
    spec = tmp_path / "chain.yaml"
    spec.write_text(f"name: chain\ninput: {input}\nlayers:\n"
                    f"  - {{conv: {channels}, kernel: 3, pad: 1, repeat: {n}}}\n")
    out = tmp_path / "chain.onnx"
    res = run_module("export", spec, "--to", "onnx", "-o", out)
    assert res.returncode == 0, res.stderr
    res = run_module("summarize", out, "--format", "json")
    assert res.returncode == 0, res.stderr
    return spec, json.loads(res.stdout)


def test_a_deep_exported_chain_summarizes_back(tmp_path):
    """3,000 layers: its spec text (~150 KB) is near the limit; the model reads back either way."""
    n = 3000
    spec, got = _chain_round_trip(tmp_path, n, "8x8x2", 2)
    want = analyze_graph(load_spec(spec)).to_dict()
    assert len(got["layers"]) == n
    assert got["totals"]["macs"] == want["totals"]["macs"] == n * 8 * 8 * 2 * 2 * 9
    assert got["totals"]["params"] == want["totals"]["params"]


@pytest.mark.slow
def test_a_50k_layer_export_summarizes_back(tmp_path):
    n = 49_990
    _, got = _chain_round_trip(tmp_path, n, "4x4x1", 1)
    assert len(got["layers"]) == n and got["totals"]["macs"] == n * 16 * 9
