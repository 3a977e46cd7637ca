"""End to end: a run interrupted after epoch k and resumed from latest.npz ends
bit-identical to an uninterrupted run.  A numpy softmax regression on MNIST5k stands
in for the numba executor; the loop is the shape the train command should have."""
import numpy as np

from cnncalc.fsutil import prepare_run_dir
from cnncalc.runtime import checkpoint as C
from cnncalc.runtime.data import BatchIterator, load_for_training
from cnncalc.runtime.init import init_bias, init_weight
from cnncalc.runtime.optim import SGD
from cnncalc.runtime.schedule import make_schedule

SPEC = "name: softmax\nlayers: [fc: 10]\n"
SEED = 7


def grads_of(params, x, y, rng):
    x = x.reshape(len(x), -1)
    keep = (rng.random(x.shape) >= 0.1).astype(np.float32) / np.float32(0.9)   # dropout on inputs
    x = x * keep
    z = x @ params["fc.w"].T + params["fc.b"]
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    p /= len(y)
    return {"fc.w": p.T @ x, "fc.b": p.sum(axis=0)}


def accuracy(params, x, y):
    z = x.reshape(len(x), -1) @ params["fc.w"].T + params["fc.b"]
    return float((z.argmax(axis=1) == y).mean())


def train(run_dir, data, epochs, stop_after=None, resume=False):
    hwc = data.input_hwc
    sched = make_schedule("plateau", 0.1, patience=1)
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    batches = BatchIterator(data.train_images[::4], data.train_labels[::4], 100, seed=SEED)  # file is class-sorted
    if resume:
        ck = C.load_checkpoint(run_dir / C.LATEST, expected_spec_hash=C.spec_hash(SPEC),
                               param_shapes={"fc.w": (10, 784), "fc.b": (10,)})
        params, start, dropout = ck.params, ck.epoch, C.rng_from_array(ck.rng["dropout"])
        opt.load_state_dict(ck.optimizer, params)
        sched.load_state_dict(ck.schedule)
        best = ck.metadata["best_accuracy"]
    else:
        init_rng = np.random.default_rng(SEED)
        params = {"fc.w": init_weight(init_rng, "fc", (10, hwc[0] * hwc[1] * hwc[2]), "he"),
                  "fc.b": init_bias(10)}
        start, dropout, best = 0, np.random.default_rng([SEED, 1]), -1.0
    for epoch in range(start, epochs):
        opt.lr = sched.lr(epoch)
        for x, y in batches.epoch(epoch):
            opt.step(params, grads_of(params, x, y, dropout))
        acc = accuracy(params, data.test_images, data.test_labels)
        sched.end_epoch(epoch, acc)
        is_best = acc > best
        best = max(best, acc)
        ck = C.Checkpoint("softmax", C.spec_hash(SPEC), epoch + 1, params, optimizer=opt.state_dict(),
                          schedule=sched.state_dict(), rng={"dropout": C.rng_to_array(dropout)},
                          metadata={"best_accuracy": best})
        C.save_epoch(run_dir, ck, is_best)
        if stop_after is not None and epoch + 1 == stop_after:
            return params, best
    return params, best


def test_resume_is_bit_identical(tmp_path):
    data = load_for_training(None, (28, 28, 1), 10)
    a = prepare_run_dir(tmp_path / "a")
    ref, ref_best = train(a, data, epochs=4)
    b = prepare_run_dir(tmp_path / "b")
    train(b, data, epochs=4, stop_after=2)
    got, got_best = train(prepare_run_dir(b, resume=True), data, epochs=4, resume=True)
    assert np.array_equal(got["fc.w"], ref["fc.w"]) and np.array_equal(got["fc.b"], ref["fc.b"])
    assert got_best == ref_best > 0.7          # it actually learns
    for name in (C.LATEST, C.BEST):     # same contents (zip timestamps differ, so not bytes)
        x, y = C.load_checkpoint(a / name), C.load_checkpoint(b / name)
        assert (x.epoch, x.schedule, x.metadata) == (y.epoch, y.schedule, y.metadata)
        for section in ("params", "optimizer", "rng"):
            sx, sy = getattr(x, section), getattr(y, section)
            assert sx.keys() == sy.keys() and all(np.array_equal(sx[k], sy[k]) for k in sx)
