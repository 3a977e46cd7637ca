"""`cnncalc train` / `cnncalc evaluate` end to end on a tiny spec and data set, with the real
numba executor: run-directory files, exact resume after Ctrl-C, NaN stop, the confusion
matrix, and data/spec mismatches (exit 2)."""
import json
import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner

from cnncalc.cli import main
from cnncalc.runtime import checkpoint as C
from cnncalc.runtime import trainer as T

SPEC = """\
name: tiny
input: 8x8x1
layers:
  - {conv: 4, kernel: 3, pad: 1, activation: relu, bn: true, name: c1}
  - {maxpool: 2, name: p1}
  - flatten
  - {dropout: 0.25, name: drop}
  - {fc: 3, activation: softmax, name: out}
"""
N = 240  # 80 per class → fixed stratified split 192 train / 48 test
OPTS = ["--epochs", "3", "--batch-size", "32", "--lr", "0.05", "--threads", "1", "--seed", "3"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    labels = np.arange(N) % 3
    images = rng.integers(0, 60, size=(N, 8, 8), dtype=np.uint8)
    for i, c in enumerate(labels):  # class c: a bright horizontal bar at rows 2c..2c+1
        images[i, 2 * c:2 * c + 2, 1:7] = 200
    np.savez(d / "tiny.npz", images=images, labels=labels)
    (d / "tiny.yaml").write_text(SPEC)
    (d / "tiny4.yaml").write_text(SPEC.replace("fc: 3", "fc: 4"))
    (d / "tiny10.yaml").write_text(SPEC.replace("8x8x1", "10x10x1"))
    (d / "tiny_rgb.yaml").write_text(SPEC.replace("8x8x1", "8x8x3"))
    return d


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r


def train(files, out, *extra):
    return run("train", "--spec", files / "tiny.yaml", "--data", files / "tiny.npz", "--out", out, *OPTS, *extra)


def test_run_directory_and_json(files, tmp_path):
    r = train(files, tmp_path / "run", "--format", "json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["status"] == "completed" and s["epochs_completed"] == 3
    assert {"test_accuracy", "images_per_second", "train_accuracy", "train_loss", "test_loss", "seconds",
            "memory", "options", "data"} <= s.keys()
    assert s["test_accuracy"] > 0.9            # the bars are easy: it must actually learn
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.npz", "latest.npz", "metrics.jsonl", "summary.json"]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    for x in lines:
        assert {"epoch", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds",
                "images_per_second"} <= x.keys()
    assert json.loads((run_dir / "summary.json").read_text())["test_accuracy"] == s["test_accuracy"]
    assert s["test_accuracy"] == lines[-1]["test_accuracy"]
    # analyzer: float32 x batch 32 x (input 8*8*1 + c1 8*8*4 + c1_bn 8*8*4 + p1 4*4*4 + out 3);
    # flatten and dropout are views of p1
    m = s["memory"]
    assert m["predicted_backward_saved_bytes"] == 4 * 32 * (64 + 256 + 256 + 64 + 3)
    assert m["measured_activation_bytes"] > 0
    ck = C.load_checkpoint(run_dir / "latest.npz")
    assert ck.epoch == 3 and set(ck.params) == {"c1/weight", "c1/bias", "c1_bn/gamma", "c1_bn/beta",
                                                "out/weight", "out/bias"}
    assert set(ck.state) == {"c1_bn/running_mean", "c1_bn/running_var"}
    # never clobber: the same --out again is refused
    r2 = train(files, tmp_path / "run")
    assert r2.exit_code == 2 and "not empty" in r2.stderr


def _stop_at(monkeypatch, epoch, batch):
    """Send a real SIGINT to ourselves after training step (epoch, batch) (0-based epoch, 1-based batch)."""
    orig = T.Trainer.run

    def run(self, on_batch=None, on_epoch=None):
        def hook(p):
            if on_batch:
                on_batch(p)
            if (p.epoch, p.batch) == (epoch, batch):
                os.kill(os.getpid(), signal.SIGINT)
        return orig(self, hook, on_epoch)
    monkeypatch.setattr(T.Trainer, "run", run)


def _same_checkpoints(a, b):
    x, y = C.load_checkpoint(a), C.load_checkpoint(b)
    assert x.epoch == y.epoch and x.schedule == y.schedule
    for section in ("params", "state", "optimizer"):
        sx, sy = getattr(x, section), getattr(y, section)
        assert sx.keys() == sy.keys()
        for k in sx:
            assert np.array_equal(sx[k], sy[k]), f"{section}/{k} differs"


def _metrics(run_dir):
    drop = ("seconds", "images_per_second")
    return [{k: v for k, v in json.loads(x).items() if k not in drop}
            for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("epoch,batch", [(1, 3), (0, 6)])  # mid-epoch 2; the last batch of epoch 1
def test_ctrl_c_then_resume_is_exact(files, tmp_path, monkeypatch, epoch, batch):
    ref = tmp_path / "straight"
    assert train(files, ref).exit_code == 0
    cut = tmp_path / "cut"
    with monkeypatch.context() as mp:
        _stop_at(mp, epoch, batch)
        r = train(files, cut)
    assert r.exit_code == 130
    assert f"cnncalc train --resume {cut}" in r.stderr
    assert json.loads((cut / "summary.json").read_text())["status"] == "interrupted"
    r = run("train", "--resume", cut, "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "resuming" in r.stdout
    _same_checkpoints(ref / "latest.npz", cut / "latest.npz")
    _same_checkpoints(ref / "best.npz", cut / "best.npz")
    assert _metrics(ref) == _metrics(cut)


def test_sub_batched_resume_is_exact_with_another_thread_count(files, tmp_path, monkeypatch):
    # no batch norm, no dropout, batch 48 > 32: every step runs as sub-batches 32 + 16 (on two
    # threads when asked); stopped in mid-epoch 2 and resumed with 2 threads instead of 1,
    # the run ends bit-identical to an uninterrupted 1-thread run
    plain = tmp_path / "plain.yaml"
    plain.write_text(SPEC.replace(", bn: true", "").replace("  - {dropout: 0.25, name: drop}\n", ""))
    opts = ["--spec", plain, "--data", files / "tiny.npz", "--epochs", "3", "--batch-size", "48",
            "--lr", "0.05", "--seed", "3"]
    ref, cut = tmp_path / "straight", tmp_path / "cut"
    assert run("train", *opts, "--out", ref, "--threads", "1").exit_code == 0
    with monkeypatch.context() as mp:
        _stop_at(mp, 1, 2)
        assert run("train", *opts, "--out", cut, "--threads", "1").exit_code == 130
    r = run("train", "--resume", cut, "--threads", "2")
    assert r.exit_code == 0, r.output
    _same_checkpoints(ref / "latest.npz", cut / "latest.npz")
    assert _metrics(ref) == _metrics(cut)


def test_resume_extends_and_refuses_changed_options(files, tmp_path):
    assert train(files, tmp_path / "r", "--lr-schedule", "constant", "--epochs", "1").exit_code == 0
    r = run("train", "--resume", tmp_path / "r", "--lr", "0.1")
    assert r.exit_code == 2 and "--lr cannot change when resuming" in r.stderr
    r = run("train", "--resume", tmp_path / "r")
    assert r.exit_code == 2 and "--epochs N with N > 1" in r.stderr
    r = run("train", "--resume", tmp_path / "r", "--epochs", "2", "--threads", "1")
    assert r.exit_code == 0, r.output
    # constant lr: 1 + 1 resumed epochs are the first 2 of a straight 2-epoch run
    assert train(files, tmp_path / "s", "--lr-schedule", "constant", "--epochs", "2").exit_code == 0
    _same_checkpoints(tmp_path / "r" / "latest.npz", tmp_path / "s" / "latest.npz")


def test_adamw_run_resumes_exactly_and_refuses_sgd_options(files, tmp_path, monkeypatch):
    ref, cut = tmp_path / "straight", tmp_path / "cut"
    adam = ["--optimizer", "adamw", "--lr", "0.01", "--weight-decay", "0.05"]
    r = train(files, ref, *adam, "--format", "json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["options"]["optimizer"] == "adamw" and s["test_accuracy"] > 0.9
    assert {k.split("/")[0] for k in C.load_checkpoint(ref / "latest.npz").optimizer} == {"steps", "exp_avg",
                                                                                         "exp_avg_sq"}
    with monkeypatch.context() as mp:
        _stop_at(mp, 1, 3)
        assert train(files, cut, *adam).exit_code == 130
    r = run("train", "--resume", cut, "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "AdamW lr 0.01" in r.stdout
    _same_checkpoints(ref / "latest.npz", cut / "latest.npz")
    assert _metrics(ref) == _metrics(cut)
    r = train(files, tmp_path / "x", "--optimizer", "adamw", "--momentum", "0.5")
    assert r.exit_code == 2 and "AdamW has its own betas" in r.stderr
    r = run("train", "--resume", cut, "--optimizer", "sgd", "--epochs", "4")
    assert r.exit_code == 2 and "--optimizer cannot change when resuming" in r.stderr


def test_a_token_network_trains_and_its_memory_line_names_the_values_inside_attention(files, tmp_path):
    spec = tmp_path / "tok.yaml"
    spec.write_text("input: 8x8x1\nlayers:\n  - {patch_embed: 8, patch: 2}\n  - {attention: 2}\n  - {mean: }\n"
                    "  - {fc: 3}\n")
    r = run("train", "--spec", spec, "--data", files / "tiny.npz", "--out", tmp_path / "r", "--epochs", "1",
            "--batch", "32", "--optimizer", "adamw", "--lr", "0.01", "--threads", "1", "--format", "json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["memory"]
    # attention at batch 32, 16 tokens of 8, 2 heads of 4: q, k, v 16*2*12 + scores and probabilities
    # 2*2*16*16 + heads' output 16*8 = 1,536 values per image, 4 bytes
    assert m["measured_activation_bytes"] < m["predicted_backward_saved_bytes"]
    assert "includes 196,608 B written inside attention and MLP layers" in m["difference"]


def test_huge_lr_stops_with_exit_1(files, tmp_path):
    r = train(files, tmp_path / "nan", "--lr", "1e6", "--momentum", "0")
    assert r.exit_code == 1
    assert "diverged" in r.stderr and "Lower --lr" in r.stderr
    assert json.loads((tmp_path / "nan" / "summary.json").read_text())["status"] == "diverged"


def test_nan_keeps_last_good_checkpoint(files, tmp_path, monkeypatch):
    orig = T.Trainer.run

    def run_(self, on_batch=None, on_epoch=None):
        def poison(rec):  # after epoch 1 is saved, the weights blow up
            if rec["epoch"] == 1:
                self.params["out/weight"][0, 0] = np.inf
        return orig(self, on_batch, poison)
    monkeypatch.setattr(T.Trainer, "run", run_)
    r = train(files, tmp_path / "nan")
    assert r.exit_code == 1 and "after epoch 1" in r.stderr
    ck = C.load_checkpoint(tmp_path / "nan" / "latest.npz")
    assert ck.epoch == 1 and all(np.isfinite(a).all() for a in ck.params.values())
    assert len((tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()) == 1


def test_evaluate_confusion_matrix(files, tmp_path):
    assert train(files, tmp_path / "run", "--epochs", "1").exit_code == 0
    r = run("evaluate", "--checkpoint", tmp_path / "run" / "best.npz", "--format", "json", "--threads", "1")
    assert r.exit_code == 0, r.output
    e = json.loads(r.stdout)
    cm = np.array(e["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == e["num_test"] == 48    # round(80 * 0.2) per class
    assert cm.sum(axis=1).tolist() == [16, 16, 16]
    assert e["correct"] == np.trace(cm) and e["accuracy"] == pytest.approx(np.trace(cm) / 48)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert e["accuracy"] == summary["test_accuracy"]                  # same net, same data, same number
    # inference speed (issue 27): images over the seconds the pass took, with its batch and threads
    assert e["threads"] == 1 and e["batch"] == 256 and e["seconds"] > 0
    assert e["images_per_second"] == pytest.approx(48 / e["seconds"], rel=0.02)
    r = run("evaluate", "--checkpoint", tmp_path / "run" / "best.npz", "--format", "csv")
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == "true,p0,p1,p2,total,recall"
    assert len(r.stdout.splitlines()) == 1 + 3 + 1
    r = run("evaluate", "--checkpoint", tmp_path / "run" / "summary.json")
    assert r.exit_code == 2 and "not a" in r.stderr


@pytest.mark.parametrize("spec,needle", [
    ("tiny4.yaml", "set the last layer's width to 3"),
    ("tiny10.yaml", "use --input 8x8x1"),
    ("tiny_rgb.yaml", "use --input 8x8x1"),
])
def test_data_spec_mismatch_is_exit_2(files, tmp_path, spec, needle):
    r = run("train", "--spec", files / spec, "--data", files / "tiny.npz", "--out", tmp_path / "x")
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and "Traceback" not in r.output


def test_input_override_fits_the_data(files, tmp_path):
    r = run("train", "--spec", files / "tiny10.yaml", "--data", files / "tiny.npz", "--input", "8x8x1",
            "--out", tmp_path / "x", "--epochs", "1", "--threads", "1", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["data"]["input_hwc"] == [8, 8, 1]


def test_dropout_mask_changes_every_step_and_repeats_by_position():
    """The executor draws dropout from default_rng([rng, layer]); the trainer passes
    rng=step_seed(seed, epoch, batch), so masks differ between steps but are reproducible."""
    from cnncalc.spec.loader import load_spec_text

    net = T.TrainNet(load_spec_text(SPEC.replace("dropout: 0.25", "dropout: 0.5")))
    x = np.random.default_rng(1).random((16, 1, 8, 8), dtype=np.float32)
    outs = []
    for b in (0, 1, 0):
        outs.append(net.forward(x, train=True, rng=T.step_seed(3, 0, b))["out"])
    assert not np.array_equal(outs[0], outs[1])
    assert np.array_equal(outs[0], outs[2])
    assert len({T.step_seed(3, 1, 0), T.step_seed(3, 0, 1), T.step_seed(4, 0, 1)}) == 3


def test_ctrl_c_summary_has_real_time_and_images(files, tmp_path, monkeypatch):
    """Interrupted in the first epoch (no epoch finished): the summary counts the batches that ran."""
    with monkeypatch.context() as mp:
        _stop_at(mp, 0, 3)
        r = train(files, tmp_path / "cut")
    assert r.exit_code == 130
    s = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert s["epochs_completed"] == 0
    assert s["images"] == 3 * 32  # three batches of 32
    assert s["seconds"] > 0 and s["images_per_second"] > 0
    assert "for 96 images" in r.stdout and " 0 images/s" not in r.stdout


def test_measured_activation_memory_equals_the_analyzer_without_kernel_caches(files, tmp_path):
    # tanh, no BN, no max pool, no dropout: the runtime keeps exactly the input and every layer output
    # (the weights the caches refer to are parameters, not activations):
    # float32 x batch 32 x (input 8*8*1 + c1 8*8*4 + p1 4*4*4 + out 3) = 4*32*387 = 49,536 B
    (tmp_path / "plain.yaml").write_text(SPEC.replace(", bn: true", "").replace("maxpool", "avgpool")
                                         .replace("  - {dropout: 0.25, name: drop}\n", "")
                                         .replace("relu", "tanh"))
    r = run("train", tmp_path / "plain.yaml", "--data", files / "tiny.npz", "-o", tmp_path / "run",
            "--epochs", "1", "--batch", "32", "--threads", "1", "--format", "json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["memory"]
    assert m["predicted_backward_saved_bytes"] == 4 * 32 * (64 + 256 + 64 + 3) == 49_536
    assert m["measured_activation_bytes"] == 49_536
    assert m["difference"].startswith("equal")
    # batch 48 runs as sub-batches of 32 + 16; the measurement is still of a whole batch:
    # 4*48*387 = 74,304 B
    r = run("train", tmp_path / "plain.yaml", "--data", files / "tiny.npz", "-o", tmp_path / "run48",
            "--epochs", "1", "--batch", "48", "--threads", "1", "--format", "json")
    m = json.loads(r.stdout)["memory"]
    assert m["predicted_backward_saved_bytes"] == m["measured_activation_bytes"] == 74_304
    # with BN (its x̂ cache) the runtime keeps more, and the summary says why
    r = train(files, tmp_path / "bn", "--format", "json")
    m = json.loads(r.stdout)["memory"]
    assert m["measured_activation_bytes"] > m["predicted_backward_saved_bytes"]
    assert "kernel caches" in m["difference"]


def test_rounding_is_stored_with_the_run_and_used_by_evaluate(files, tmp_path):
    # p1 becomes a 3x3/3 pool on 8x8: (8 − 3)/3 + 1 = 2.67 does not fit; floor → 2x2x4, ceil → 3x3x4
    (files / "tiny_r.yaml").write_text(SPEC.replace("{maxpool: 2, name: p1}", "{maxpool: 3, stride: 3, name: p1}"))
    base = ["--spec", files / "tiny_r.yaml", "--data", files / "tiny.npz", *OPTS]
    r = run("train", *base, "--out", tmp_path / "strict")
    assert r.exit_code == 2 and "does not fit" in r.stderr
    r = run("train", *base, "--epochs", "1", "--rounding", "floor", "--out", tmp_path / "run", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["options"]["rounding"] == "floor"
    ck = C.load_checkpoint(tmp_path / "run" / "best.npz")
    assert ck.params["out/weight"].shape == (3, 2 * 2 * 4)                # PyTorch layout (units, in)
    e = run("evaluate", "--checkpoint", tmp_path / "run" / "best.npz", "--format", "json", "--threads", "1")
    assert e.exit_code == 0, e.output                                  # the stored rule, no flag needed
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert json.loads(e.stdout)["accuracy"] == summary["test_accuracy"]
    e = run("evaluate", "--checkpoint", tmp_path / "run" / "best.npz", "--rounding", "ceil", "--threads", "1")
    assert e.exit_code == 2 and "Traceback" not in e.output            # 3x3x4 = 36 inputs, not 16
    r = run("train", "--resume", tmp_path / "run", "--epochs", "2", "--rounding", "ceil")
    assert r.exit_code == 2 and "--rounding cannot change when resuming" in r.stderr
    r = run("train", "--resume", tmp_path / "run", "--epochs", "2", "--threads", "1")
    assert r.exit_code == 0, r.output                                  # resumed with the stored rule
