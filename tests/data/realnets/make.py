"""Writes the real models of tests/interop/test_realnets.py: torchvision and timm networks
exported by a default `torch.onnx.export` (eval mode, batch norm folded, opset 17), every float
initializer of 2,048 values or more zeroed so that the file gzips to a few kB (the test draws
seeded random values into the zeroed ones before importing; the small ones — Swin's folded
relative-position bias and its shift mask among them — stay as exported, their structure is
what the import reads), and beside each its numbers from PyTorch, a second method: the
multiply-adds of every conv/linear/matmul counted at the dispatcher as they run
(tests/interop/zoocheck.dispatch_macs, attention unfused), sum(p.numel()), and that sum with
each batch norm folded into the bias-free conv before it (γ and β become the conv's one bias:
num_features fewer).

Needs torch 2.14.1, torchvision 0.29.1, timm 1.0.31 (the versions CI installs)::

    python tests/data/realnets/make.py
"""
from __future__ import annotations

import gzip
import json
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

# name -> (source, constructor name, input size, kwargs)
MODELS = {
    "resnet18": ("torchvision", "resnet18", 32, {}),
    "mobilenet_v3_small": ("torchvision", "mobilenet_v3_small", 32, {}),
    "convnext_tiny": ("torchvision", "convnext_tiny", 32, {}),
    "vit_tiny_2": ("timm", "vit_tiny_patch16_224", 32, {"img_size": 32, "depth": 2}),
    "swin_mini": ("timm", "swin_tiny_patch4_window7_224", 32,
                  {"img_size": 32, "window_size": 4, "depths": (2, 2), "num_heads": (3, 6), "embed_dim": 48}),
}


def main() -> None:
    import onnx
    import torch

    from tests.interop.zoocheck import dispatch_macs

    warnings.simplefilter("ignore")
    numbers = {}
    for name, (src, ctor, size, kw) in MODELS.items():
        torch.manual_seed(0)
        if src == "torchvision":
            import torchvision
            model = getattr(torchvision.models, ctor)(**kw)
        else:
            import timm
            model = timm.create_model(ctor, pretrained=False, **kw)
        model.eval()
        x = torch.zeros(1, 3, size, size)
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "m.onnx"
            with torch.no_grad():
                torch.onnx.export(model, (x,), str(f), dynamo=False, opset_version=17)
            m = onnx.load(str(f))
        floats = 0
        for t in m.graph.initializer:
            if t.data_type == onnx.TensorProto.FLOAT:
                n = 1
                for dim in t.dims:
                    n *= dim
                floats += n
                if n >= 2048:
                    t.ClearField("float_data")
                    t.raw_data = bytes(4 * n)
        (HERE / f"{name}.onnx.gz").write_bytes(gzip.compress(m.SerializeToString(), 9, mtime=0))
        numbers[name] = {"source": f"{src} {ctor} {kw}", "input": size,
                         "macs": dispatch_macs(model, torch.zeros(1, 3, size, size), grad=True),
                         "params": sum(p.numel() for p in model.parameters()),
                         "params_bn_folded": sum(p.numel() for p in model.parameters()) - sum(
                             mod.num_features for mod in model.modules()
                             if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)),
                         "float_initializer_values": floats}
        print(name, numbers[name], flush=True)
    versions = {"torch": torch.__version__}
    (HERE / "numbers.json").write_text(json.dumps({"versions": versions, "models": numbers}, indent=1) + "\n")


if __name__ == "__main__":
    main()
