"""`summarize model.onnx` of a ResNet-50 against its floor, `onnx.load` + ONNX shape inference
(issue 23: within 1.5x). Each round runs both in fresh interpreters, alternating which goes
first; min and median over the rounds, wall time.

    python benchmarks/bench_onnx_summarize.py [--rounds 3] [--model resnet50.onnx]

Without --model, torchvision's resnet50 (random weights) is exported once with
torch.onnx.export(dynamo=False, opset 17) to a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = ("import onnx, sys; m = onnx.load(sys.argv[1]); "
         "onnx.shape_inference.infer_shapes(m, data_prop=True)")


def _export(path):
    import torch
    import torchvision
    m = torchvision.models.resnet50().eval()
    torch.onnx.export(m, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17)


def _run(args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model")
    a = ap.parse_args()
    path = Path(a.model) if a.model else Path(tempfile.mkdtemp()) / "resnet50.onnx"
    if not a.model:
        _export(path)
    ours, floor = [], []
    for r in range(a.rounds):
        pair = [("ours", [sys.executable, "-m", "cnncalc", "summarize", str(path)]),
                ("floor", [sys.executable, "-c", FLOOR, str(path)])]
        for name, cmd in (pair if r % 2 == 0 else pair[::-1]):
            (ours if name == "ours" else floor).append(_run(cmd))
    print(f"summarize resnet50.onnx: min {min(ours):.2f} s, median {statistics.median(ours):.2f} s")
    print(f"onnx.load + shape inference: min {min(floor):.2f} s, median {statistics.median(floor):.2f} s")
    print(f"ratio: min {min(ours) / min(floor):.2f}x, median {statistics.median(ours) / statistics.median(floor):.2f}x")


if __name__ == "__main__":
    main()
