"""How many real CNNs import exactly (issue 23): torchvision and timm models through both
paths, `import --torch` and an ONNX file written by `torch.onnx.export` (TorchScript
exporter, `dynamo=False`, opset 17, eval mode: batch norm folded into the convs).

For each model (one fresh interpreter each, so one model's memory or crash does not touch the
next), in eval mode with random weights and random batch-norm statistics, judged by
tests/interop/zoocheck.py (which tests/interop/test_zoo_import.py uses too):

* `--torch`: parameters = sum(p.numel()), conv/linear MACs = a forward-hook count, and the
  check of `cnncalc import` (the spec on the runtime with the module's weights vs the module);
* `onnx`: the file imported and checked against onnxruntime.

A model is *exact* on a path when it imports and every comparison holds; *refused* when the
importer lists what it cannot map (an honest refusal); *wrong* when it imports but a number
or an output differs (must be 0). Not a timed test: run it by hand.

    python benchmarks/import_coverage.py --set timm [--size 64] [--only resnet18,...] [--out cov.jsonl]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TIMM = [  # a broad CNN set: at least one model of every family issue 23 names
    "resnet18", "resnet50", "resnet50d", "resnext50_32x4d", "resnest14d", "resnest26d", "skresnet18",
    "skresnext50_32x4d", "res2net50_26w_4s", "res2next50", "regnetx_002", "regnety_002", "regnetz_b16",
    "efficientnet_b0", "efficientnet_lite0", "tf_efficientnet_b0", "tf_efficientnetv2_b0", "efficientnetv2_rw_t",
    "mobilenetv2_100", "mobilenetv3_small_100", "mobilenetv3_large_100", "tf_mobilenetv3_small_100",
    "mobilenetv4_conv_small", "mnasnet_100", "ghostnet_100", "rexnet_100", "lcnet_050", "hardcorenas_a",
    "convnext_atto", "convnext_tiny", "convnextv2_atto", "densenet121", "inception_v3", "inception_v4",
    "xception41", "legacy_xception", "dla34", "dpn68", "hrnet_w18_small", "selecsls42b", "vovnet39a",
    "ese_vovnet19b_dw", "cspresnet50", "cspdarknet53", "darknet53", "vgg11", "vgg11_bn", "repvgg_a0",
    "mobileone_s0", "gernet_s", "nf_resnet26", "dm_nfnet_f0", "eca_nfnet_l0", "poolformer_s12",
    "fbnetc_100", "spnasnet_100", "semnasnet_100", "tinynet_a", "mixnet_s", "tf_mixnet_s",
]
# VoVNet at 32 px meets a 3x3/2 ceil-mode pool over a 2x2 map, which the spec's rule refuses;
# VGG's adaptive pool to 7x7 must divide the map for torch.onnx.export itself
SIZES = {"inception_v3": 96, "inception_v4": 96, "xception41": 96, "legacy_xception": 96, "dm_nfnet_f0": 96,
         "eca_nfnet_l0": 96, "hrnet_w18_small": 64, "efficientnetv2_rw_t": 96, "vovnet39a": 64,
         "ese_vovnet19b_dw": 64, "vgg11": 224, "vgg11_bn": 224}

CHILD = r'''
import json, sys, os, warnings
warnings.simplefilter("ignore")
import torch
kind, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import zoocheck
torch.manual_seed(0)
if kind == "timm":
    import timm
    model = timm.create_model(name, pretrained=False)
else:
    import tvnets
    model = tvnets.build(name)
print(json.dumps(zoocheck.both_paths(model, name, size)))
'''.replace("ROOT", repr(str(ROOT)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=["timm", "torchvision"], default="timm")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--timeout", type=int, default=900)
    a = ap.parse_args()
    if a.only:
        names = a.only.split(",")
    elif a.set == "timm":
        names = TIMM
    else:
        import torchvision
        names = sorted(torchvision.models.list_models(module=torchvision.models)) + [
            "fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    counts = {}
    sink = open(a.out, "a") if a.out else None
    for name in names:
        size = SIZES.get(name, a.size)
        if a.set == "torchvision" and name.startswith(("vit_", "swin_", "maxvit_", "alexnet", "vgg")):
            size = 224  # fixed sizes (position embeddings, windows) or adaptive pools that must divide
        elif a.set == "torchvision" and name == "inception_v3":
            size = max(size, 80)
        t = time.time()
        try:
            p = subprocess.run([sys.executable, "-c", CHILD, a.set, name, str(size), str(ROOT)], capture_output=True,
                               text=True, env=env, timeout=a.timeout)
            line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else json.dumps(
                {"model": name, "torch": {"status": "crash", "why": p.stderr[-800:]}, "onnx": {"status": "crash"}})
        except subprocess.TimeoutExpired:
            line = json.dumps({"model": name, "torch": {"status": "timeout"}, "onnx": {"status": "timeout"}})
        rec = json.loads(line)
        for k in ("torch", "onnx"):
            st = rec[k]["status"]
            counts.setdefault(k, {}).setdefault(st, 0)
            counts[k][st] += 1
        print(f"{name:28s} torch={rec['torch']['status']:9s} onnx={rec['onnx']['status']:9s} "
              f"{time.time() - t:6.1f}s", flush=True)
        if sink:
            sink.write(line + "\n")
            sink.flush()
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
