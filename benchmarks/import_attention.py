"""How many transformer and hybrid models import exactly (issue 24 point 4): timm's ViT, DeiT,
Swin, Swin V2, MobileViT, LeViT, EfficientViT, CoaT-Lite, PoolFormer, EdgeNeXt, FastViT and
torchvision's vit_b_16, swin_t, maxvit_t and swin_v2_t, through `import --torch` and an ONNX file written by
`torch.onnx.export` (TorchScript exporter, `dynamo=False`, opset 17, eval mode).

For each model (one fresh interpreter each), with random weights:

* parameters = sum(p.numel()) (by `--torch`; the ONNX file's count is printed beside its status
  as `[params +N]` when it differs: an exporter that folds batch norm into convs writes fewer,
  anything else is a count to look at);
* MACs = every multiply-add of the matrix products and convolutions that run, counted at the
  dispatcher (tests/interop/zoocheck.dispatch_macs: aten mm/addmm/bmm/baddbmm/convolution,
  scaled_dot_product_attention forced onto its unfused math path — the same count as timm with
  `set_fused_attn(False)`), with grad enabled (under no_grad torchvision's MultiheadAttention runs
  one fused aten op whose products the dispatcher does not see: 0.67 of vit_b_16's MACs);
* Linear weights drawn with std 1/√in (timm's 0.02 leaves q·kᵀ so small that the softmax is
  near uniform and the check cannot see a wrong attention scale) and parameters that are all
  zeros (torchvision's ViT head) drawn at random, or the check compares constants;
* the check of `cnncalc import` (the spec on the runtime with the module's weights vs the module,
  and for the ONNX file vs onnxruntime).

The model is exported as built (timm's fused attention on: torch exports
`scaled_dot_product_attention`); `--unfused` builds it with `timm.layers.set_fused_attn(False)`
instead (explicit q @ kᵀ, softmax, @ v). Not a timed test: run it by hand, under `nice`.

    nice python benchmarks/import_attention.py [--only vit_tiny_patch16_224,...] [--unfused] [--out a.jsonl]
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

# name → (source, input size, create kwargs): small sizes where the model takes them
MODELS = {
    "vit_tiny_patch16_224": ("timm", 64, {"img_size": 64}),
    "deit_tiny_patch16_224": ("timm", 64, {"img_size": 64}),
    "swin_tiny_patch4_window7_224": ("timm", 64, {"img_size": 64, "window_size": 4}),
    "mobilevit_xxs": ("timm", 64, {}),
    "levit_128s": ("timm", 64, {"img_size": 64}),
    "efficientvit_b0": ("timm", 64, {}),
    "efficientvit_m0": ("timm", 64, {"img_size": 64}),
    "coat_lite_tiny": ("timm", 64, {"img_size": 64}),
    "poolformer_s12": ("timm", 64, {}),
    "edgenext_xx_small": ("timm", 64, {}),
    "fastvit_t8": ("timm", 64, {}),
    # (Swin V2's q and v biases around a zero k bias: cosine_attention_qv_bias; windows of 4 at 64 px.
    # Its post-norm γ start at 0, which the draw below leaves (1-D): tests/attention/test_import_timm.py
    # checks its outputs with them drawn at random)
    "swinv2_tiny_window8_256": ("timm", 64, {"img_size": 64, "window_size": 4}),
    # (BEiT: its relative position bias, a class token then 4 x 4 patches at 64 px, as attention with
    # bias_window: 4, cls_bias: true; its tables start at zero and are drawn below (2-D); its q and v
    # biases (1-D) stay zero here: tests/attention/test_import_timm.py draws them)
    "beit_base_patch16_224": ("timm", 64, {"img_size": 64}),
    "vit_b_16": ("torchvision", 64, {"image_size": 64}),
    "swin_t": ("torchvision", 64, {}),
    "maxvit_t": ("torchvision", 224, {}),  # (its partitions of 7 x 7 need 224 px)
    "swin_v2_t": ("torchvision", 256, {}),  # (its native size: whole 8 x 8 windows at every stage)
}

CHILD = r'''
import json, sys, time, warnings, tempfile, os
warnings.simplefilter("ignore")
import numpy as np, torch
src, name, size, kw, unfused = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5] == "1"
out = {"model": name, "size": size, "kwargs": kw, "unfused": unfused}
torch.manual_seed(0)
if src == "timm":
    import timm
    if unfused:
        timm.layers.set_fused_attn(False)
    model = timm.create_model(name, pretrained=False, **kw)
else:
    import torchvision
    model = getattr(torchvision.models, name)(**kw)
g = torch.Generator().manual_seed(1)
for m in model.modules():  # random statistics, so that a dropped norm shows on outputs
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
        m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
        m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
for mod in model.modules():  # Linear weights of std 1/√in: timm's 0.02 makes q·kᵀ tiny, the softmax
    if isinstance(mod, torch.nn.Linear):  # near uniform, and the check blind to the attention's scale
        mod.weight.data.normal_(0, mod.in_features ** -0.5, generator=g)
for n_, p in model.named_parameters():  # zero-initialised parameters (torchvision's ViT head) would make the check vacuous
    if n_.endswith("attention_biases"):  # LeViT's, EfficientViT-M's tables: of the logits' size
        p.data.normal_(0, 1, generator=g)
    elif p.dim() > 1 and not p.detach().abs().sum():
        p.data.normal_(0, 0.02, generator=g)
model.eval()
out["params"] = sum(p.numel() for p in model.parameters())
sys.path.insert(0, ROOT)
from tests.interop.zoocheck import dispatch_macs, one_path
# (grad enabled: under no_grad torchvision's MultiheadAttention takes its fused fast path,
# one aten op whose products the dispatcher does not see)
out["macs"] = dispatch_macs(model, torch.zeros(1, 3, size, size), grad=True)
def one(path_kind):
    r = one_path(model, name, size, path_kind, want_params=out["params"], want_macs=out["macs"],
                 export_no_grad=False)
    if path_kind == "onnx" and r.get("macs") not in (None, out["macs"]):  # (one_path checks the torch path's)
        r["status"] = "wrong"
        r["wrong"] = r.get("wrong", []) + ["macs"]
    if path_kind == "onnx" and r.get("params") not in (None, out["params"]):
        # (not "wrong" by itself: torch.onnx.export folds eval-mode batch norm into the convs, and
        # the file then holds fewer parameters; printed beside the status, never hidden by it)
        r["params_diff"] = r["params"] - out["params"]
    return r
for p in PATHS:
    out[p] = one(p)
print(json.dumps(out))
'''.replace("ROOT", repr(str(ROOT)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated model names (default: all)")
    ap.add_argument("--unfused", action="store_true", help="timm models built with set_fused_attn(False)")
    ap.add_argument("--paths", default="torch,onnx")
    ap.add_argument("--out", default="")
    ap.add_argument("--timeout", type=int, default=900)
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(MODELS)
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    sink = open(a.out, "a") if a.out else None
    paths = a.paths.split(",")
    child = CHILD.replace("PATHS", repr(paths))
    for name in names:
        src, size, kw = MODELS[name]
        t = time.time()
        try:
            p = subprocess.run([sys.executable, "-c", child, src, name, str(size), json.dumps(kw),
                                "1" if a.unfused else "0"], capture_output=True, text=True, env=env,
                               timeout=a.timeout)
            line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else json.dumps(
                {"model": name, **{k: {"status": "crash", "why": p.stderr[-800:]} for k in paths}})
        except subprocess.TimeoutExpired:
            line = json.dumps({"model": name, **{k: {"status": "timeout"} for k in paths}})
        rec = json.loads(line)
        cells = []
        for k in paths:
            r = rec[k]
            cells.append(f"{k}={r['status']}" + (f"({','.join(r['wrong'])})" if r.get("wrong") else "")
                         + (f"[params {r['params_diff']:+,}]" if r.get("params_diff") else ""))
        kinds = rec[paths[0]].get("kinds", {})
        if kinds:  # how the attention came in: lifted layers, or matmuls of two activations left low-level
            cells.append(f"attention={kinds.get('attention', 0)} matmul={kinds.get('matmul', 0)} "
                         f"softmax={kinds.get('softmax', 0)} layers={sum(kinds.values())}")
        print(f"{name:30s} {' '.join(cells)}  {time.time() - t:6.1f}s", flush=True)
        if sink:
            sink.write(line + "\n")
            sink.flush()


if __name__ == "__main__":
    main()
