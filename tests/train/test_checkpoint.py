import math

import numpy as np
import pytest

from cnncalc.runtime import checkpoint as C
from cnncalc.runtime.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from cnncalc.runtime.optim import SGD
from cnncalc.runtime.schedule import make_schedule

SPEC = "name: lenet5\nlayers:\n  - conv: {filters: 6, kernel: 5}\n"


def make_ckpt(epoch=3, seed=0):
    rng = np.random.default_rng(seed)
    params = {"conv1.w": rng.standard_normal((6, 1, 5, 5)).astype(np.float32),
              "conv1.b": rng.standard_normal(6).astype(np.float32),
              "block/1.fc.w": rng.standard_normal((10, 84)).astype(np.float32)}
    state = {"bn1.running_mean": rng.standard_normal(6).astype(np.float32),
             "bn1.running_var": rng.random(6).astype(np.float32) + 0.5}
    opt = SGD(0.01, momentum=0.9, weight_decay=5e-4)
    for _ in range(2):
        opt.step(params, {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()})
    sched = make_schedule("plateau", 0.01, patience=2)
    sched.end_epoch(0, 0.5)
    sched.end_epoch(1, 0.4)
    shuffle = np.random.default_rng(123)
    shuffle.random(5)
    return Checkpoint(spec_name="lenet5", spec_hash=C.spec_hash(SPEC), epoch=epoch, params=params,
                      state=state, optimizer=opt.state_dict(), schedule=sched.state_dict(),
                      rng={"dropout": C.rng_to_array(shuffle)},
                      metadata={"options": {"lr": 0.01, "batch_size": 64, "schedule": "plateau"},
                                "best_accuracy": 0.5, "data": {"name": "mnist5k"}})


def assert_same(a: Checkpoint, b: Checkpoint):
    assert (a.spec_name, a.spec_hash, a.epoch, a.metadata) == (b.spec_name, b.spec_hash, b.epoch, b.metadata)
    for section in ("params", "state", "optimizer", "rng"):
        x, y = getattr(a, section), getattr(b, section)
        assert x.keys() == y.keys(), section
        for k in x:
            assert np.asarray(x[k]).dtype == y[k].dtype and np.array_equal(x[k], y[k]), (section, k)
    assert a.schedule == b.schedule
    assert [type(v) for v in a.schedule.values()] == [type(b.schedule[k]) for k in a.schedule]


def test_round_trip_is_exact(tmp_path):
    ckpt = make_ckpt()
    assert ckpt.schedule["best"] == 0.5 and ckpt.schedule["bad_epochs"] == 1
    save_checkpoint(tmp_path / "c.npz", ckpt)
    back = load_checkpoint(tmp_path / "c.npz", expected_spec_hash=C.spec_hash(SPEC),
                           param_shapes={k: v.shape for k, v in ckpt.params.items()},
                           state_shapes={k: v.shape for k, v in ckpt.state.items()})
    assert_same(ckpt, back)
    # a fresh plateau schedule's -inf best survives too
    fresh = make_schedule("plateau", 0.1).state_dict()
    ckpt.schedule = fresh
    save_checkpoint(tmp_path / "c.npz", ckpt)
    assert load_checkpoint(tmp_path / "c.npz").schedule["best"] == -math.inf


def test_file_holds_no_pickles(tmp_path):
    import zipfile
    save_checkpoint(tmp_path / "c.npz", make_ckpt())
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        names = set(z.namelist())
        assert {"format.npy", "meta.npy", "epoch.npy", "param/conv1.w.npy",
                "optim/momentum_buffer/conv1.w.npy", "schedule/best.npy", "rng/dropout.npy"} <= names
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:   # every entry loads without pickle
        assert all(z[k].dtype != object for k in z.files)


def test_rng_state_round_trip_including_buffered_uint32():
    for kind in (np.random.PCG64, np.random.PCG64DXSM):
        g = np.random.Generator(kind(2024))
        g.integers(0, 2 ** 32, size=3, dtype=np.uint32)   # odd count leaves a buffered half-word
        words = C.rng_to_array(g)
        assert words.dtype == np.uint64 and words.shape == (7,) and words[5] == 1
        h = C.rng_from_array(words)
        assert np.array_equal(g.integers(0, 2 ** 32, size=5, dtype=np.uint32),
                              h.integers(0, 2 ** 32, size=5, dtype=np.uint32))
        assert np.array_equal(g.random(4), h.random(4))
    with pytest.raises(ValueError, match="MT19937"):
        C.rng_to_array(np.random.Generator(np.random.MT19937(1)))


def test_momentum_buffer_round_trips_through_checkpoint_file(tmp_path):
    rng = np.random.default_rng(1)
    init = {"w": rng.standard_normal((4, 3)).astype(np.float32), "b": np.zeros(4, np.float32)}
    grads = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in init.items()} for _ in range(6)]
    ref = {k: v.copy() for k, v in init.items()}
    o = SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    for g in grads:
        o.step(ref, g)
    run = {k: v.copy() for k, v in init.items()}
    o1 = SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    for g in grads[:4]:
        o1.step(run, g)
    save_checkpoint(tmp_path / "c.npz", Checkpoint("n", "h", 4, run, optimizer=o1.state_dict()))
    back = load_checkpoint(tmp_path / "c.npz")
    o2 = SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    o2.load_state_dict(back.optimizer, back.params)
    for g in grads[4:]:
        o2.step(back.params, g)
    for k in ref:
        assert np.array_equal(back.params[k], ref[k])


def test_save_epoch_latest_and_best(tmp_path):
    c1 = make_ckpt(epoch=1)
    assert C.save_epoch(tmp_path, c1, is_best=True) == [tmp_path / "latest.npz", tmp_path / "best.npz"]
    c2 = make_ckpt(epoch=2, seed=5)
    assert C.save_epoch(tmp_path, c2, is_best=False) == [tmp_path / "latest.npz"]
    assert load_checkpoint(tmp_path / "latest.npz").epoch == 2
    best = load_checkpoint(tmp_path / "best.npz")
    assert best.epoch == 1 and np.array_equal(best.params["conv1.w"], c1.params["conv1.w"])
    C.save_epoch(tmp_path, c2, is_best=True)
    assert (tmp_path / "best.npz").read_bytes() == (tmp_path / "latest.npz").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "latest.npz"]


def test_failure_midway_leaves_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "latest.npz", make_ckpt(epoch=1))
    before = (tmp_path / "latest.npz").read_bytes()
    real = np.lib.format.write_array
    calls = []

    def failing_write_array(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 6:            # some entries already in the zip: a genuinely partial file
            fp.write(b"\0" * 100)
            raise OSError(28, "No space left on device")
        return real(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write_array)
    with pytest.raises(OSError, match="No space"):
        C.save_epoch(tmp_path, make_ckpt(epoch=2, seed=9), is_best=True)
    assert len(calls) == 6
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.npz"]   # no temp, no best.npz
    assert (tmp_path / "latest.npz").read_bytes() == before
    assert load_checkpoint(tmp_path / "latest.npz").epoch == 1


def test_failed_rename_leaves_previous_checkpoint(tmp_path, monkeypatch):
    from cnncalc import fsutil
    save_checkpoint(tmp_path / "latest.npz", make_ckpt(epoch=1))

    def broken_replace(src, dst):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(fsutil.os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "latest.npz", make_ckpt(epoch=2))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["latest.npz"]
    assert load_checkpoint(tmp_path / "latest.npz").epoch == 1


def test_refuses_mismatched_spec_and_shapes(tmp_path):
    ckpt = make_ckpt()
    save_checkpoint(tmp_path / "c.npz", ckpt)
    other = C.spec_hash(SPEC.replace("filters: 6", "filters: 8"))
    with pytest.raises(CheckpointError, match="trained from spec 'lenet5' with a different text"):
        load_checkpoint(tmp_path / "c.npz", expected_spec_hash=other)
    shapes = {k: v.shape for k, v in ckpt.params.items()}
    with pytest.raises(CheckpointError, match=r"different shapes.*conv1.w \(6, 1, 5, 5\) vs \(8, 1, 5, 5\)"):
        load_checkpoint(tmp_path / "c.npz", param_shapes={**shapes, "conv1.w": (8, 1, 5, 5)})
    with pytest.raises(CheckpointError, match="missing parameters: conv2.w"):
        load_checkpoint(tmp_path / "c.npz", param_shapes={**shapes, "conv2.w": (16, 6, 5, 5)})
    del shapes["conv1.b"]
    with pytest.raises(CheckpointError, match="unexpected parameters: conv1.b"):
        load_checkpoint(tmp_path / "c.npz", param_shapes=shapes)
    with pytest.raises(CheckpointError, match="missing state tensors: bn2.running_mean"):
        load_checkpoint(tmp_path / "c.npz", state_shapes={"bn2.running_mean": (16,)})


def test_refuses_non_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")
    np.savez(tmp_path / "plain.npz", images=np.zeros(3))
    with pytest.raises(CheckpointError, match="no 'cnncalc-checkpoint' marker"):
        load_checkpoint(tmp_path / "plain.npz")
    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        load_checkpoint(tmp_path / "arr.npy")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.npz")
    arrays = C._to_arrays(make_ckpt())
    np.savez(tmp_path / "newer.npz", **{**arrays, "format_version": np.array(99)})
    with pytest.raises(CheckpointError, match="format 99, newer"):
        load_checkpoint(tmp_path / "newer.npz")
    # an object array needs pickle to load; allow_pickle=False must refuse it
    np.savez(tmp_path / "evil.npz", **{**arrays, "param/x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "evil.npz")


def test_save_rejects_unstorable_values(tmp_path):
    bad = make_ckpt()
    bad.metadata = {"x": object()}
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "c.npz", bad)
    bad = make_ckpt()
    bad.schedule = {"mode": "max"}
    with pytest.raises(ValueError, match="int or float"):
        save_checkpoint(tmp_path / "c.npz", bad)
    assert list(tmp_path.iterdir()) == []


def test_spec_hash_is_sha256_of_utf8_text():
    import hashlib
    assert C.spec_hash("x: 1\n") == hashlib.sha256(b"x: 1\n").hexdigest()
    assert C.spec_hash("é") == C.spec_hash("é".encode("utf-8"))
