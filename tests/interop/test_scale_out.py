"""The scale-out path: an exported network trains under torchrun (DDP, gloo, CPU), and a
network trained by `cnncalc train` continues in PyTorch with the same test accuracy."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

from conftest import ROOT, run_module  # noqa: E402

SCRIPT = ROOT / "examples" / "torch_ddp_train.py"


def _run(cmd, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_torchrun_ddp_two_processes_reaches_the_one_process_band(tmp_path):
    res = run_module("export", "lenet5", "--to", "torch", "-o", tmp_path / "lenet5_net.py")
    assert res.returncode == 0, res.stderr
    one = _run([sys.executable, str(SCRIPT), "--net", "lenet5_net.py", "--epochs", "1"], tmp_path)
    torchrun = shutil.which("torchrun") or None
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--nproc_per_node=2", "--master_port=29533", str(SCRIPT), "--net", "lenet5_net.py", "--epochs", "1"]
    two = _run(cmd, tmp_path)
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert one["test_accuracy"] > 0.80  # LeNet-5, one epoch on 4,000 digits
    assert two["test_accuracy"] >= one["test_accuracy"] - 0.05, (one, two)


def test_checkpoint_trained_by_cnncalc_continues_in_pytorch(tmp_path):
    run = tmp_path / "run"
    res = run_module("train", "--spec", "lenet5", "--epochs", "2", "--out", run, "--threads", "1")
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_module("evaluate", "--checkpoint", run / "best.npz", "--format", "json")
    assert res.returncode == 0, res.stderr
    ev = json.loads(res.stdout)
    res = run_module("export", "lenet5", "--to", "torch", "-o", tmp_path / "net.py", "--weights", run / "best.npz")
    assert res.returncode == 0, res.stderr
    ns = {}
    exec((tmp_path / "net.py").read_text(), ns)
    net = ns["Net"]().eval()
    net.load_state_dict(torch.load(tmp_path / "net.pt"))
    # the same test split and normalisation as `cnncalc evaluate`
    from cnncalc.runtime import checkpoint as C
    from cnncalc.runtime.data import Normalization, load_dataset, prepare
    meta = C.load_checkpoint(run / "best.npz").metadata
    ds = prepare(load_dataset(None), (32, 32, 1), 10, Normalization.from_dict(meta["data"]["normalization"]))
    with torch.no_grad():
        pred = net(torch.from_numpy(np.ascontiguousarray(ds.test_images, np.float32))).argmax(1).numpy()
    correct = int((pred == ds.test_labels).sum())
    assert correct == ev["correct"], (correct, ev["correct"])


@pytest.mark.slow
def test_onnx_import_with_weights_evaluates_like_the_original(tmp_path):
    """train → export ONNX with the weights → import --weights → evaluate: the same accuracy."""
    pytest.importorskip("onnx")
    run = tmp_path / "run"
    res = run_module("train", "--spec", "lenet5", "--epochs", "1", "--out", run, "--threads", "1")
    assert res.returncode == 0, res.stderr[-2000:]
    ev = json.loads(run_module("evaluate", "--checkpoint", run / "best.npz", "--format", "json").stdout)
    res = run_module("export", "lenet5", "--to", "onnx", "-o", tmp_path / "l.onnx", "--weights", run / "best.npz")
    assert res.returncode == 0, res.stderr
    res = run_module("import", tmp_path / "l.onnx", "-o", tmp_path / "l.yaml", "--weights", tmp_path / "l.npz")
    assert res.returncode == 0, res.stderr
    res = run_module("evaluate", "--checkpoint", tmp_path / "l.npz", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["correct"] == ev["correct"]
