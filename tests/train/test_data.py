import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest

from cnncalc.runtime import data as D
from cnncalc.runtime.data import DataError

# ----------------------------------------------------------------- bundled data + split

M64 = (1 << 64) - 1


def py_splitmix64(x):
    """Independent pure-Python SplitMix64 (second method for the split order)."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def py_stratified_split(labels, fraction=0.2):
    train, test = [], []
    for c in sorted(set(labels)):
        idx = [i for i, l in enumerate(labels) if l == c]
        base = py_splitmix64(D.SPLIT_KEY ^ c)
        keys = [py_splitmix64((j + base) & M64) for j in range(len(idx))]
        order = [idx[j] for j in sorted(range(len(idx)), key=lambda j: (keys[j], j))]
        n_test = int(round(len(idx) * fraction))
        test += order[:n_test]
        train += order[n_test:]
    return sorted(train), sorted(test)


@pytest.fixture(scope="module")
def mnist():
    return D.load_dataset(None)


@pytest.fixture(scope="module")
def raw_mnist():
    with np.load("cnncalc/data/mnist5k.npz", allow_pickle=False) as z:
        return z["images"], z["labels"]


def test_bundled_split_counts_and_shapes(mnist):
    assert mnist.train_images.shape == (4000, 1, 28, 28) and mnist.train_images.dtype == np.uint8
    assert mnist.test_images.shape == (1000, 1, 28, 28)
    assert np.bincount(mnist.train_labels).tolist() == [400] * 10
    assert np.bincount(mnist.test_labels).tolist() == [100] * 10
    assert mnist.num_classes == 10 and mnist.original_hwc == (28, 28, 1)
    assert "MNIST" in mnist.attribution and "CC BY-SA 3.0" in mnist.attribution
    assert mnist.attribution == D.MNIST5K_ATTRIBUTION and "\n" not in D.MNIST5K_ATTRIBUTION


def test_bundled_split_disjoint_complete_and_matches_raw(mnist, raw_mnist):
    images, labels = raw_mnist
    tr, te = D.stratified_split(labels)
    assert len(np.intersect1d(tr, te)) == 0
    assert np.array_equal(np.union1d(tr, te), np.arange(5000))
    assert np.array_equal(mnist.train_images[:, 0], images[tr])
    assert np.array_equal(mnist.test_labels, labels[te])
    # No test image appears (as pixels) in the training split: MNIST5k has no duplicates.
    train_hashes = {hashlib.sha1(im.tobytes()).digest() for im in images[tr]}
    assert not any(hashlib.sha1(im.tobytes()).digest() in train_hashes for im in images[te])


def test_split_is_fixed_forever(raw_mnist):
    _, labels = raw_mnist
    np.random.seed(123)                      # global RNG state must not matter
    tr1, te1 = D.stratified_split(labels)
    np.random.seed(999)
    _ = np.random.default_rng(5).random(10)
    tr2, te2 = D.stratified_split(labels)
    assert np.array_equal(tr1, tr2) and np.array_equal(te1, te2)
    py_tr, py_te = py_stratified_split(labels.tolist())
    assert te1.tolist() == py_te and tr1.tolist() == py_tr
    # Golden lock: if this changes, every published result stops being comparable.
    assert hashlib.sha256(te1.astype(np.int64).tobytes()).hexdigest() == (
        "5c53b8d148e1069d6f4f9ab0227f4025371fc129f8ac914b4a440c0f5805b5ca")


def test_stratified_split_rounding():
    labels = np.array([0] * 7 + [1] * 13 + [2] * 1)
    tr, te = D.stratified_split(labels)
    # round(7*0.2)=1, round(13*0.2)=3, round(0.2)=0
    assert np.bincount(labels[te], minlength=3).tolist() == [1, 3, 0]
    assert np.bincount(labels[tr], minlength=3).tolist() == [6, 10, 1]


# ----------------------------------------------------------------- IDX

def idx_bytes(arr, code):
    arr = np.asarray(arr)
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    be = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    return header + arr.astype(be).tobytes()


def write_idx_dir(d, n_train=12, n_test=6, gz=False, dotted=False, h=28, w=28):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": (rng.integers(0, 256, (n_train, h, w)), 0x08),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 3, 0x08),
        "t10k-images-idx3-ubyte": (rng.integers(0, 256, (n_test, h, w)), 0x08),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 3, 0x08),
    }
    for name, (a, code) in arrays.items():
        b = idx_bytes(a, code)
        fname = name.replace("-idx", ".idx") if dotted else name
        if gz:
            (d / (fname + ".gz")).write_bytes(gzip.compress(b))
        else:
            (d / fname).write_bytes(b)
    return {k: v[0] for k, v in arrays.items()}


@pytest.mark.parametrize("gz,dotted", [(False, False), (True, False), (True, True)])
def test_idx_dir_roundtrip(tmp_path, gz, dotted):
    arrays = write_idx_dir(tmp_path, gz=gz, dotted=dotted)
    ds = D.load_dataset(tmp_path)
    assert ds.train_images.shape == (12, 1, 28, 28)
    assert np.array_equal(ds.train_images[:, 0], arrays["train-images-idx3-ubyte"])
    assert np.array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert ds.num_classes == 3 and ds.original_hwc == (28, 28, 1)


def test_read_idx_big_endian_types(tmp_path):
    # int16 300 = 0x012C is stored as bytes 01 2C; -2 as FF FE.
    p = tmp_path / "x.idx"
    p.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 3]) + bytes([0x00, 0x01, 0xFF, 0xFE, 0x01, 0x2C]))
    assert D.read_idx(p).tolist() == [1, -2, 300]
    # float32 1.5 = 0x3FC00000; 2-D dims 1x2
    p.write_bytes(bytes([0, 0, 0x0D, 2, 0, 0, 0, 1, 0, 0, 0, 2]) + bytes.fromhex("3fc00000c0000000"))
    a = D.read_idx(p)
    assert a.shape == (1, 2) and a.tolist() == [[1.5, -2.0]] and a.dtype.isnative


@pytest.mark.parametrize("payload,match", [
    (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "bad magic"),
    (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "unknown IDX data type code 0x07"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 5, 6]), "3 bytes of data but the file has 2"),
    (bytes([0, 0, 8, 2, 0, 0]), "truncated IDX header"),
    (bytes([0, 0, 8, 0]), "0 dimensions"),
    (b"", "bad magic"),
])
def test_read_idx_errors(tmp_path, payload, match):
    p = tmp_path / "bad"
    p.write_bytes(payload)
    with pytest.raises(DataError, match=match):
        D.read_idx(p)


def test_idx_dir_errors(tmp_path):
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"missing IDX file\(s\) t10k-labels-idx1-ubyte"):
        D.load_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5), 0x08))
    with pytest.raises(DataError, match="has 6 images but t10k-labels-idx1-ubyte has 5 labels"):
        D.load_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((6, 1)), 0x08))
    with pytest.raises(DataError, match="label IDX file must have 1 dimension"):
        D.load_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"0" * 100)[:20])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        D.load_dataset(tmp_path)


# ----------------------------------------------------------------- CIFAR-10

def cifar_batch(n, offset, str_keys=False):
    rng = np.random.default_rng(offset)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [(offset + i) % 10 for i in range(n)]
    if str_keys:
        return {"data": data, "labels": labels, "batch_label": "x"}
    return {b"data": data, b"labels": labels, b"batch_label": b"x", b"filenames": [b"a.png"] * n}


def write_cifar(d, protocol=2, str_keys=False, legacy=False):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {}
    for k, name in enumerate(names):
        batches[name] = cifar_batch(4, 10 * k, str_keys)
        blob = pickle.dumps(batches[name], protocol=protocol)
        if legacy:   # the real download was pickled by NumPy 1.x: numpy.core.multiarray
            assert b"numpy._core.multiarray" in blob
            blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        (d / name).write_bytes(blob)
    return batches


@pytest.mark.parametrize("protocol,str_keys,legacy", [(2, False, False), (2, False, True), (5, True, False)])
def test_cifar_dir(tmp_path, protocol, str_keys, legacy):
    batches = write_cifar(tmp_path, protocol, str_keys, legacy)
    ds = D.load_dataset(tmp_path)
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.test_images.shape == (4, 3, 32, 32)
    key = "data" if str_keys else b"data"
    row = batches["data_batch_1"][key][0]
    # Row layout: 1024 red (row-major 32x32), 1024 green, 1024 blue.
    assert ds.train_images[0, 0, 0, 1] == row[1]
    assert ds.train_images[0, 1, 1, 0] == row[1024 + 32]
    assert ds.train_images[0, 2, 31, 31] == row[3071]
    assert ds.train_labels[4:8].tolist() == [0, 1, 2, 3] == [(10 + i) % 10 for i in range(4)]
    assert ds.original_hwc == (32, 32, 3)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os
        return (os.mkdir, (self.target,))


def test_cifar_refuses_code_execution(tmp_path):
    write_cifar(tmp_path)
    sentinel = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Evil(str(sentinel)), b"labels": [0]}, protocol=2)
    (tmp_path / "data_batch_3").write_bytes(payload)
    with pytest.raises(DataError, match="refusing to load global posix.mkdir|refusing to load global os.mkdir"):
        D.load_dataset(tmp_path)
    assert not sentinel.exists()
    pickle.loads(payload)                 # the payload is real: plain pickle runs it
    assert sentinel.is_dir()


def test_cifar_errors(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8),
                                                          b"labels": [0, 1]}))
    with pytest.raises(DataError, match=r"'data' must be an \(N, 3072\) array"):
        D.load_dataset(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="expected a dict"):
        D.load_dataset(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(DataError, match="lacks 'data' or 'labels'"):
        D.load_dataset(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(b"\x80\x02}q\x00(")   # truncated pickle
    with pytest.raises(DataError, match="cannot unpickle"):
        D.load_dataset(tmp_path)
    (tmp_path / "data_batch_2").unlink()
    with pytest.raises(DataError, match=r"missing CIFAR-10 batch file\(s\) data_batch_2"):
        D.load_dataset(tmp_path)


# ----------------------------------------------------------------- npz

def test_npz_with_split_and_nhwc(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 8, 6, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(5), 10)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    ds = D.load_dataset(tmp_path / "d.npz")
    assert ds.original_hwc == (8, 6, 3) and ds.train_images.shape == (40, 3, 8, 6)
    assert np.bincount(ds.test_labels).tolist() == [2] * 5
    tr, te = D.stratified_split(labels)
    assert np.array_equal(ds.test_images, images[te].transpose(0, 3, 1, 2))
    assert ds.name == "d" and "split 40/10" in ds.split


def test_npz_with_test_arrays_float_pixels(tmp_path):
    images = np.array([[[0.0, 1.0], [0.5, 0.2]]] * 4)
    np.savez(tmp_path / "d.npz", images=images, labels=[0, 1, 0, 1],
             test_images=images[:2], test_labels=np.array([1, 0], dtype=np.uint8))
    ds = D.load_dataset(tmp_path / "d.npz")
    assert ds.train_images[0, 0].tolist() == [[0, 255], [128, 51]]   # rint(0.5*255)=128, rint(51.0)=51
    assert ds.test_labels.tolist() == [1, 0] and ds.split == "train/test arrays from file"


@pytest.mark.parametrize("arrays,match", [
    (dict(pictures=np.zeros((2, 4, 4), np.uint8), labels=[0, 1]), "needs arrays 'images' and 'labels'"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), labels=[0, 1], test_images=np.zeros((1, 4, 4))),
     "test_images but not its partner"),
    (dict(images=np.zeros((3, 4, 4), np.uint8), labels=[0, 1]), "3 images but 2 labels"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), labels=[0, -1]), "labels must be >= 0"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), labels=[0.5, 1]), "labels must be integers"),
    (dict(images=np.full((2, 4, 4), 256, np.int32), labels=[0, 1]), "must be in 0..255"),
    (dict(images=np.full((2, 4, 4), 2.0), labels=[0, 1]), r"must be in \[0, 1\]"),
    (dict(images=np.full((2, 4, 4), np.nan), labels=[0, 1]), "NaN"),
    (dict(images=np.zeros((2, 4)), labels=[0, 1]), "3 or 4 dimensions"),
    (dict(images=np.zeros((2, 5, 5, 5), np.uint8), labels=[0, 1]), "cannot tell the channel axis"),
    (dict(images=np.zeros((0, 4, 4), np.uint8), labels=np.zeros(0, int)), "contains no images"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), labels=[0, 1]), "too few images per class"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), labels=[0, 1],
          test_images=np.zeros((2, 5, 5), np.uint8), test_labels=[0, 1]), "train images are"),
])
def test_npz_errors(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=match):
        D.load_dataset(tmp_path / "d.npz")


def test_npz_object_array_is_refused_without_pickle(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.array([object(), 1], dtype=object), labels=[0, 1])
    with pytest.raises(DataError, match="object arrays are not allowed"):
        D.load_dataset(tmp_path / "d.npz")


def test_path_errors(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        D.load_dataset(tmp_path / "nope")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="must be an .npz"):
        D.load_dataset(tmp_path / "x.csv")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        D.load_dataset(tmp_path / "bad.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="neither MNIST-style IDX files"):
        D.load_dataset(empty)


# ----------------------------------------------------------------- fitting / normalisation

def test_fit_pads_28_to_32_centred():
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 1, 28, 28)
    out, msg = D.fit_to_input(x, (32, 32, 1))
    assert msg == "padded 28x28 → 32x32 (2 pixels each side)"
    assert out.shape == (2, 1, 32, 32)
    assert np.array_equal(out[:, :, 2:30, 2:30], x)
    assert out.sum(dtype=np.int64) == x.sum(dtype=np.int64)   # the border is all zeros
    assert out[0, 0, 2, 2] == x[0, 0, 0, 0] and out[0, 0, 29, 29] == x[0, 0, 27, 27]
    same, msg2 = D.fit_to_input(x, (28, 28, 1))
    assert same is x and msg2 is None


@pytest.mark.parametrize("shape,hwc,msg", [
    ((1, 1, 28, 28), (227, 227, 3),
     "spec input is 227x227x3 but the data is 28x28x1: use --input 28x28x1 or different --data"),
    ((1, 3, 32, 32), (32, 32, 1),
     "spec input is 32x32x1 but the data is 32x32x3: use --input 32x32x3 or different --data"),
    ((1, 1, 32, 32), (28, 28, 1),
     "spec input is 28x28x1 but the data is 32x32x1: use --input 32x32x1 or different --data"),
])
def test_fit_errors(shape, hwc, msg):
    with pytest.raises(DataError) as ei:
        D.fit_to_input(np.zeros(shape, np.uint8), hwc)
    assert str(ei.value) == msg


def test_class_count_mismatch(mnist):
    assert D.check_num_classes(10, mnist) == 10
    with pytest.raises(DataError, match="last layer has 1000 outputs but the data has 10 classes"):
        D.check_num_classes(1000, mnist)
    with pytest.raises(DataError, match="has 10 outputs but the data has 3 classes"):
        D.check_num_classes(10, np.array([0, 2, 1]))


def test_scale_is_division_by_255(mnist):
    p = D.prepare(mnist, (28, 28, 1), 10)
    assert p.train_images.dtype == np.float32 and p.messages == []
    i = np.unravel_index(np.argmax(mnist.train_images), mnist.train_images.shape)
    assert p.train_images[i] == np.float32(mnist.train_images[i]) * np.float32(1 / 255)
    assert p.train_images.max() == 1.0 and p.train_images.min() == 0.0
    assert p.normalization.to_dict() == {"method": "scale", "mean": [0.0], "std": [1.0]}


def test_standardize_uses_training_split_only():
    train = np.zeros((4, 2, 2, 2), np.uint8)
    train[:, 0] = np.array([0, 255, 0, 255]).reshape(4, 1, 1)      # ch0: mean .5, std .5
    train[:, 1] = np.array([51, 51, 102, 102]).reshape(4, 1, 1)    # ch1: mean .3, std .1
    test = np.full((2, 2, 2, 2), 255, np.uint8)
    ds = D.Dataset("t", "t", train, np.array([0, 1, 0, 1]), test, np.array([0, 1]), 2, (2, 2, 2), "x")
    p = D.prepare(ds, (2, 2, 2), 2, normalize="standardize")
    assert np.allclose(p.normalization.mean, [0.5, 0.3]) and np.allclose(p.normalization.std, [0.5, 0.1])
    assert np.allclose(p.train_images[:, 0, 0, 0], [-1, 1, -1, 1], atol=1e-6)
    assert np.allclose(p.train_images[:, 1, 0, 0], [-1, -1, 1, 1], atol=1e-5)
    assert np.allclose(p.test_images[0, :, 0, 0], [(1 - .5) / .5, (1 - .3) / .1], atol=1e-5)
    assert "standardized per channel" in p.messages[-1]
    assert D.Normalization.from_dict(p.normalization.to_dict()) == p.normalization


def test_normalization_errors():
    x = np.full((3, 1, 2, 2), 7, np.uint8)
    with pytest.raises(DataError, match="constant"):
        D.compute_normalization(x, "standardize")
    with pytest.raises(DataError, match="unknown normalisation 'zscore'"):
        D.compute_normalization(x, "zscore")


def test_load_for_training_pads_and_reports(mnist):
    p = D.load_for_training(None, (32, 32, 1), 10)
    assert p.train_images.shape == (4000, 1, 32, 32) and p.input_hwc == (32, 32, 1)
    assert p.messages == ["padded 28x28 → 32x32 (2 pixels each side)"]
    assert p.metadata()["original_hwc"] == [28, 28, 1]


# ----------------------------------------------------------------- batches

def test_batches_cover_each_epoch_once_and_resume_exactly():
    x = np.arange(23, dtype=np.float32).reshape(23, 1, 1, 1)
    y = np.arange(23)
    it = D.BatchIterator(x, y, batch_size=5, seed=42)
    assert len(it) == 5
    uninterrupted = []
    for e in range(4):
        batches = list(it.epoch(e))
        assert [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]
        ys = np.concatenate([b[1] for b in batches])
        assert sorted(ys.tolist()) == list(range(23))
        assert np.array_equal(np.concatenate([b[0] for b in batches]).ravel(), ys)  # x/y stay paired
        uninterrupted.append(ys)
    assert not np.array_equal(uninterrupted[0], uninterrupted[1])
    resumed = D.BatchIterator(x, y, batch_size=5, seed=42)           # fresh process, epoch 2
    assert np.array_equal(np.concatenate([b[1] for b in resumed.epoch(2)]), uninterrupted[2])
    mid = np.concatenate([b[1] for b in resumed.epoch(3, start_batch=2)])
    assert np.array_equal(mid, uninterrupted[3][10:])
    other = D.BatchIterator(x, y, batch_size=5, seed=43)
    assert not np.array_equal(np.concatenate([b[1] for b in other.epoch(0)]), uninterrupted[0])
    # The permutation is the documented one: Generator seeded with SeedSequence([seed, epoch]).
    expect = np.random.Generator(np.random.PCG64(np.random.SeedSequence([42, 1]))).permutation(23)
    assert np.array_equal(uninterrupted[1], expect)


def test_batches_drop_last_and_no_shuffle():
    y = np.arange(7)
    it = D.BatchIterator(y.reshape(7, 1), y, batch_size=3, seed=0, drop_last=True)
    assert len(it) == 2 and [len(b[1]) for b in it.epoch(0)] == [3, 3]
    plain = D.BatchIterator(y.reshape(7, 1), y, batch_size=3, seed=0, shuffle=False)
    assert [b[1].tolist() for b in plain.epoch(5)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b[1].tolist() for b in D.eval_batches(y, y, 4)] == [[0, 1, 2, 3], [4, 5, 6]]
    with pytest.raises(ValueError):
        D.BatchIterator(y, y, batch_size=0, seed=0)


def test_saved_normalization_is_reused_exactly(mnist):
    trained = D.prepare(mnist, (28, 28, 1), 10, normalize="standardize")
    saved = D.Normalization.from_dict(trained.metadata()["normalization"])
    again = D.prepare(mnist, (28, 28, 1), 10, normalize=saved)
    assert np.array_equal(again.test_images, trained.test_images)
    fake = D.Normalization("standardize", (0.5,), (0.25,))
    p = D.prepare(mnist, (28, 28, 1), 10, normalize=fake)
    i = (0, 0, 14, 14)
    assert p.test_images[i] == pytest.approx((mnist.test_images[i] / 255 - 0.5) / 0.25, abs=1e-6)
    with pytest.raises(DataError, match="3 channel"):
        D.prepare(mnist, (28, 28, 1), 10, normalize=D.Normalization("scale", (0,) * 3, (1,) * 3))
