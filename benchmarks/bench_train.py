"""Training benchmarks (run: python benchmarks/bench_train.py [--rounds R] [--cases 1x1,64x2] [--skip-accuracy]).

1. Accuracy: `cnncalc train --spec specs/lenet5.yaml` with default settings (bundled MNIST5k,
   28→32 padding) in a fresh process; the epoch at which test accuracy first reaches 96 %
   and the final test accuracy (target: >= 96 % within 20 epochs).
2. Throughput: images/s of training steps (forward, loss, backward, SGD update) of
   LeNet-5 on the same padded data, for our numba runtime and for PyTorch CPU (same layers:
   conv 6/16/120 5x5 tanh, 2x2 average pooling, fc 84 tanh, fc 10, softmax cross-entropy,
   SGD momentum 0.9, weight decay 5e-4), same thread count: batch 1, 8, 32, 64 and 256 with
   1 thread and batch 64 with 2 threads (``--cases``). Each round runs each framework in its
   own fresh interpreter (numba's and torch's worker pools slow each other down when they
   share a process, see the Kernels section), alternating so background load hits both
   alike; the best (fastest) and median round, and the ratios of each. ``--clock cpu``
   times the steps in CPU time of the worker process (``time.process_time``) instead of
   wall time: on a machine other jobs share, a process waiting for a core is not charged
   for the wait (cache and memory-bandwidth contention still are). With 2 threads, CPU time
   adds up both threads, so read wall time there.
3. Profile: where one of our steps spends its time (cProfile, top functions).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def accuracy_run(threads: int | None) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-train-")) / "run"
    cmd = [sys.executable, "-m", "cnncalc", "train", "--spec", "specs/lenet5.yaml", "--out", str(out),
           "--format", "json"] + (["--threads", str(threads)] if threads else [])
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"train failed ({r.returncode}): {r.stderr}")
    s = json.loads(r.stdout)
    hist = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    first = next((h["epoch"] for h in hist if h["test_accuracy"] >= 0.96), None)
    return {"epochs": s["epochs_completed"], "first_epoch_at_96": first, "final_test_accuracy": s["test_accuracy"],
            "best_test_accuracy": s["best_test_accuracy"], "images_per_second": s["images_per_second"],
            "wall_seconds": round(wall, 1), "curve": [round(h["test_accuracy"], 3) for h in hist]}


def data():
    from cnncalc.runtime.data import load_for_training

    return load_for_training(None, (32, 32, 1), 10)


CLOCK = time.perf_counter  # the worker's clock (--clock)


def ours(ds, threads, steps, conv_algo="auto", batch=64):
    import numpy as np

    import cnncalc
    from cnncalc.runtime import _numba
    from cnncalc.runtime.optim import SGD
    from cnncalc.runtime.trainer import TrainNet, flat, initialize

    _numba.set_threads(threads)
    net = TrainNet(cnncalc.load("lenet5"), conv_algo=conv_algo)
    initialize(net, "he", 0)
    params = flat(net.params)
    opt = SGD(0.01, momentum=0.9, weight_decay=5e-4)
    x, y = ds.train_images, ds.train_labels
    n = len(y) // batch

    def step(i):
        j = i % n
        net.loss(x[j * batch:(j + 1) * batch], y[j * batch:(j + 1) * batch], input_grad=False)
        opt.step(params, flat(net.grads))
    for i in range(5):
        step(i)  # warm up (JIT from cache)
    t = CLOCK()
    for i in range(steps):
        step(i)
    return steps * batch / (CLOCK() - t), (step, np)


def torch_lenet(ds, threads, steps, batch=64):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    lossf = nn.CrossEntropyLoss()
    x = torch.from_numpy(ds.train_images)
    y = torch.from_numpy(ds.train_labels)
    n = len(y) // batch

    def step(i):
        j = i % n
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x[j * batch:(j + 1) * batch]), y[j * batch:(j + 1) * batch])
        loss.backward()
        opt.step()
    for i in range(5):
        step(i)
    t = CLOCK()
    for i in range(steps):
        step(i)
    return steps * batch / (CLOCK() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="threads of the worker (internal)")
    ap.add_argument("--images", type=int, default=4096, help="images per timed round (at least 20 steps)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default="1x1,8x1,32x1,64x1,256x1,64x2",
                    help="batch x threads cases, comma-separated")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=62, help=argparse.SUPPRESS)
    ap.add_argument("--conv-algo", default="auto")
    ap.add_argument("--profile-algo", default="auto")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="time the steps in wall time (default) or in the worker's CPU time")
    a = ap.parse_args()
    if a.worker:
        global CLOCK
        CLOCK = time.process_time if a.clock == "cpu" else time.perf_counter
        ds = data()
        threads = a.threads or 1
        ips = (ours(ds, threads, a.steps, a.conv_algo, a.batch)[0] if a.worker == "ours"
               else torch_lenet(ds, threads, a.steps, a.batch))
        print(f"{ips:.1f}")
        return
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    if not a.skip_accuracy:
        acc = accuracy_run(a.threads)
        print("accuracy:", json.dumps(acc))
    ds = data()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch not installed: throughput of cnncalc only")

    def worker(which, batch, threads, steps):
        r = subprocess.run([sys.executable, __file__, "--worker", which, "--conv-algo", a.conv_algo, "--clock", a.clock,
                            "--threads", str(threads), "--steps", str(steps), "--batch", str(batch)],
                           capture_output=True, text=True, check=True)
        return float(r.stdout.split()[-1])

    print(f"LeNet-5 training images/s ({a.clock} time), conv {a.conv_algo}; {a.rounds} rounds, sides alternating in fresh "
          "processes; ratio = median cnncalc / median PyTorch (and best / best; best = the fastest round)")
    print("| batch | threads | cnncalc best / median | PyTorch best / median | ratio (median) | ratio (best) |")
    print("|---|---|---|---|---|---|")
    for case in a.cases.split(","):
        batch, threads = (int(v) for v in case.split("x"))
        steps = max(20, a.images // batch)
        ours_r, torch_r = [], []
        for _ in range(a.rounds):
            ours_r.append(worker("ours", batch, threads, steps))
            if have_torch:
                torch_r.append(worker("torch", batch, threads, steps))
        mo, lo = statistics.median(ours_r), max(ours_r)  # best = fewest seconds = most img/s
        if have_torch:
            mt, lt = statistics.median(torch_r), max(torch_r)
            print(f"| {batch} | {threads} | {lo:,.0f} / {mo:,.0f} | {lt:,.0f} / {mt:,.0f} | {mo / mt:.2f} | {lo / lt:.2f} |",
                  flush=True)
        else:
            print(f"| {batch} | {threads} | {lo:,.0f} / {mo:,.0f} | - | - | - |", flush=True)
    _, (step, _) = ours(ds, 1, 5, a.profile_algo)
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for i in range(20):
        step(i)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(12)
    print(f"profile of 20 cnncalc steps, batch 64, 1 thread, conv {a.profile_algo} (CPU time, tottime):")
    print("\n".join(s.getvalue().splitlines()[:32]))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
