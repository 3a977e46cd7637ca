"""Training faults (issue 13): a second concurrent run into the same --out, a full disk, a
Ctrl-C after training finished, and --resume of a run that never wrote a checkpoint."""
import errno
import os
import signal

import numpy as np
import pytest
from click.testing import CliRunner

from cnncalc.cli import main
from cnncalc.fsutil import LOCK_NAME, lock_run_dir
from cnncalc.runtime import checkpoint as C

SPEC = """\
name: tiny
input: 8x8x1
layers:
  - {conv: 2, kernel: 3, pad: 1, activation: relu, name: c1}
  - flatten
  - {fc: 3, activation: softmax, name: out}
"""
OPTS = ["--epochs", "2", "--batch-size", "32", "--lr", "0.05", "--threads", "1", "--seed", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 3
    images = rng.integers(0, 255, size=(120, 8, 8), dtype=np.uint8)
    np.savez(d / "tiny.npz", images=images, labels=labels)
    (d / "tiny.yaml").write_text(SPEC)
    return d


def train(files, *extra):
    args = ["train", "--spec", files / "tiny.yaml", "--data", files / "tiny.npz", *OPTS, *extra]
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_second_run_into_the_same_out_exits_2_naming_the_first(files, tmp_path):
    out = tmp_path / "run"
    first = lock_run_dir(out)  # the first run holds the directory (flock: per open file)
    try:
        r = train(files, "--out", out)
        assert r.exit_code == 2, r.output
        assert "another cnncalc train is already writing into" in r.output
        assert f"pid {os.getpid()}" in r.output
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written by the second
    finally:
        first.release()
    r = train(files, "--out", out)  # released: the directory is usable again, the lock file gone
    assert r.exit_code == 0, r.output
    assert LOCK_NAME not in {p.name for p in out.iterdir()}


def test_full_disk_exits_2_with_the_path_and_keeps_the_last_checkpoint(files, tmp_path, monkeypatch):
    real_save, calls = C.save_epoch, []

    def save_epoch(run_dir, ckpt, is_best):
        calls.append(ckpt.epoch)
        if len(calls) == 1:
            return real_save(run_dir, ckpt, is_best)

        def no_space(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr("cnncalc.fsutil.os.fsync", no_space)  # the disk fills during epoch 2
        return real_save(run_dir, ckpt, is_best)

    monkeypatch.setattr(C, "save_epoch", save_epoch)
    out = tmp_path / "run"
    r = train(files, "--out", out)
    assert r.exit_code == 2, r.output
    assert f"cannot write into {out}" in r.output and "No space left on device" in r.output
    assert "internal error" not in r.output and "intact" in r.output
    monkeypatch.undo()
    assert C.load_checkpoint(out / C.LATEST).epoch == 1  # the last good checkpoint, whole
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_sigint_after_training_finished_exits_0(files, tmp_path, monkeypatch):
    import cnncalc.cli.train as T

    real = T._summary

    def summary_then_ctrl_c(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)  # arrives after the last epoch, while finishing
        return real(*a, **k)

    monkeypatch.setattr(T, "_summary", summary_then_ctrl_c)
    r = train(files, "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "summary.json").exists()


def test_resume_without_a_checkpoint_says_to_start_again(files, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("")  # killed before its first checkpoint
    r = train_resume(run_dir)
    assert r.exit_code == 2, r.output
    assert "has no checkpoint" in r.output and "start it again" in r.output


def train_resume(run_dir):
    return CliRunner().invoke(main, ["train", "--resume", str(run_dir)], catch_exceptions=False)
