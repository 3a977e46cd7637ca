"""Training checkpoints: one ``.npz`` holding everything needed to resume exactly.

Layout of the archive (all plain arrays; loading uses ``allow_pickle=False``, so a
checkpoint can never run code)::

    format            "cnncalc-checkpoint"           0-d str
    format_version    1                              0-d int64
    meta              JSON text                      0-d str: spec_name, spec_hash, metadata
    epoch             completed epochs               0-d int64
    param/<name>      trainable parameters
    state/<name>      non-trainable state (batch-norm running mean/var, ...)
    optim/<key>       optimizer state (``SGD.state_dict()``: steps, momentum buffers)
    schedule/<key>    learning-rate schedule state (0-d int64 / float64)
    rng/<name>        generator states as uint64 words (see :func:`rng_to_array`)

``epoch`` counts *completed* epochs, i.e. it is the 0-based index of the next epoch
to run.  ``metadata`` is any JSON-able dict (command-line options, data set,
normalisation, metrics, best accuracy so far...).

A run directory holds ``latest.npz`` (rewritten after every epoch) and ``best.npz``
(rewritten when the epoch is the best so far).  Both are written atomically through
:mod:`cnncalc.fsutil`, so an interrupted write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from cnncalc.fsutil import atomic_writer, remove_stale_temps

__all__ = [
    "CheckpointError", "Checkpoint", "spec_hash", "rng_to_array", "rng_from_array",
    "save_checkpoint", "load_checkpoint", "save_epoch", "LATEST", "BEST",
    "FORMAT", "FORMAT_VERSION",
]

FORMAT = "cnncalc-checkpoint"
FORMAT_VERSION = 1
LATEST = "latest.npz"
BEST = "best.npz"

_SECTIONS = ("param", "state", "optim", "schedule", "rng")


class CheckpointError(Exception):
    """A checkpoint cannot be read or does not belong to the current network."""


def spec_hash(spec_text: str | bytes) -> str:
    """SHA-256 (hex) of the spec file's text; identifies the architecture a checkpoint fits."""
    if isinstance(spec_text, str):
        spec_text = spec_text.encode("utf-8")
    return hashlib.sha256(spec_text).hexdigest()


# ------------------------------------------------------------------ RNG state

_BITGENS = {"PCG64": 0, "PCG64DXSM": 1}
_M64 = (1 << 64) - 1


def rng_to_array(gen: np.random.Generator) -> np.ndarray:
    """Exact state of a PCG64/PCG64DXSM ``Generator`` as 7 uint64 words.

    ``[kind, state_hi, state_lo, inc_hi, inc_lo, has_uint32, uinteger]`` — the 128-bit
    state and increment split into halves, plus the buffered 32-bit draw.
    """
    st = gen.bit_generator.state
    kind = st["bit_generator"]
    if kind not in _BITGENS:
        raise ValueError(f"cannot checkpoint a {kind} generator; use numpy.random.default_rng()")
    s, inc = int(st["state"]["state"]), int(st["state"]["inc"])
    words = [_BITGENS[kind], s >> 64, s & _M64, inc >> 64, inc & _M64,
             int(st["has_uint32"]), int(st["uinteger"])]
    return np.array(words, dtype=np.uint64)


def rng_from_array(words: np.ndarray) -> np.random.Generator:
    """Inverse of :func:`rng_to_array`."""
    w = [int(v) for v in np.asarray(words, dtype=np.uint64)]
    if len(w) != 7 or w[0] not in _BITGENS.values():
        raise CheckpointError(f"invalid generator state {w}")
    kind = next(k for k, v in _BITGENS.items() if v == w[0])
    bitgen = getattr(np.random, kind)()
    bitgen.state = {"bit_generator": kind,
                    "state": {"state": (w[1] << 64) | w[2], "inc": (w[3] << 64) | w[4]},
                    "has_uint32": w[5], "uinteger": w[6]}
    return np.random.Generator(bitgen)


# ------------------------------------------------------------------ checkpoint

@dataclass
class Checkpoint:
    """Everything a resumed run needs.  See the module docstring for the file layout."""

    spec_name: str
    spec_hash: str
    epoch: int
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)
    schedule: dict[str, float | int] = field(default_factory=dict)
    rng: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


def _check_name(section: str, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{section} names must be non-empty strings, got {name!r}")


def _to_arrays(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    meta = {"spec_name": ckpt.spec_name, "spec_hash": ckpt.spec_hash, "metadata": ckpt.metadata}
    try:
        meta_json = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable (finite numbers): {exc}") from exc
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "meta": np.array(meta_json),
        "epoch": np.array(int(ckpt.epoch), dtype=np.int64),
    }
    sections = {"param": ckpt.params, "state": ckpt.state, "optim": ckpt.optimizer,
                "rng": ckpt.rng}
    for section, values in sections.items():
        for name, value in values.items():
            _check_name(section, name)
            a = np.asarray(value)
            if a.dtype == object:
                raise ValueError(f"{section}/{name} is an object array; checkpoints hold plain arrays only")
            arrays[f"{section}/{name}"] = a
    for name, value in ckpt.schedule.items():
        _check_name("schedule", name)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"schedule/{name} must be an int or float, got {value!r}")
        dtype = np.int64 if isinstance(value, (int, np.integer)) else np.float64
        arrays[f"schedule/{name}"] = np.array(value, dtype=dtype)
    return arrays


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically (uncompressed ``.npz``)."""
    arrays = _to_arrays(ckpt)
    path = Path(path)
    with atomic_writer(path, "wb") as f:
        np.savez(f, allow_pickle=False, **arrays)
    return path


def save_epoch(run_dir: str | os.PathLike, ckpt: Checkpoint, is_best: bool) -> list[Path]:
    """Write ``run_dir/latest.npz`` and, if ``is_best``, ``run_dir/best.npz``; both atomic.
    The temporary files an earlier write killed half-way left (``.latest.npz.*.tmp``, 26 MB for
    LeNet-5, 1.6 GB for VGG-16) are removed first (the caller holds the run directory's lock)."""
    run_dir = Path(run_dir)
    remove_stale_temps(run_dir, (LATEST, BEST))
    latest = save_checkpoint(run_dir / LATEST, ckpt)
    written = [latest]
    if is_best:
        with open(latest, "rb") as src, atomic_writer(run_dir / BEST, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        written.append(run_dir / BEST)
    return written


def _fmt_shapes(items: list[str], limit: int = 6) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _check_shapes(what: str, got: Mapping[str, np.ndarray], expected: Mapping[str, tuple] | None,
                  path: Path) -> None:
    if expected is None:
        return
    expected = {k: tuple(int(d) for d in v) for k, v in expected.items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = [f"{k} {tuple(got[k].shape)} vs {expected[k]}" for k in sorted(set(got) & set(expected))
             if tuple(got[k].shape) != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing {what}: {_fmt_shapes(missing)}")
    if extra:
        problems.append(f"unexpected {what}: {_fmt_shapes(extra)}")
    if wrong:
        problems.append(f"{what} with different shapes (checkpoint vs network): {_fmt_shapes(wrong)}")
    if problems:
        raise CheckpointError(f"{path} does not fit this network — " + "; ".join(problems))


def load_checkpoint(path: str | os.PathLike, *, expected_spec_hash: str | None = None,
                    param_shapes: Mapping[str, tuple] | None = None,
                    state_shapes: Mapping[str, tuple] | None = None) -> Checkpoint:
    """Read a checkpoint, refusing one that does not match the current network.

    With ``expected_spec_hash`` the spec text must be the one the checkpoint was trained
    from; with ``param_shapes``/``state_shapes`` (``{name: shape}``) the names and shapes
    must match exactly.  Every problem raises :class:`CheckpointError`.
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{path} is not a cnncalc checkpoint (not an .npz archive)")
        with loaded as z:
            files = set(z.files)
            if "format" not in files or str(z["format"][()]) != FORMAT:
                raise CheckpointError(f"{path} is not a cnncalc checkpoint (no '{FORMAT}' marker)")
            version = int(z["format_version"])
            if version > FORMAT_VERSION:
                raise CheckpointError(f"{path} has checkpoint format {version}, newer than this "
                                      f"cnncalc understands ({FORMAT_VERSION}); upgrade cnncalc")
            meta = json.loads(str(z["meta"][()]))
            if not isinstance(meta, dict) or not {"spec_name", "spec_hash"} <= meta.keys():
                raise CheckpointError(f"{path} has damaged metadata (no spec name/hash)")
            epoch = int(z["epoch"])
            sections: dict[str, dict] = {s: {} for s in _SECTIONS}
            for key in files:
                section, sep, name = key.partition("/")
                if sep and section in sections:
                    sections[section][name] = z[key]
    except CheckpointError:
        raise
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {path} does not exist") from exc
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a readable cnncalc checkpoint ({type(exc).__name__}: {exc})"
                              ) from exc
    schedule = {k: (int(v) if np.issubdtype(v.dtype, np.integer) else float(v))
                for k, v in sections["schedule"].items()}
    ckpt = Checkpoint(spec_name=meta["spec_name"], spec_hash=meta["spec_hash"], epoch=epoch,
                      params=sections["param"], state=sections["state"],
                      optimizer=sections["optim"], schedule=schedule, rng=sections["rng"],
                      metadata=meta.get("metadata", {}))
    if expected_spec_hash is not None and ckpt.spec_hash != expected_spec_hash:
        raise CheckpointError(
            f"{path} was trained from spec '{ckpt.spec_name}' with a different text "
            f"(checkpoint spec hash {ckpt.spec_hash[:12]}, current spec {expected_spec_hash[:12]}): "
            "use the spec file the run was started with, or start a new run")
    _check_shapes("parameters", ckpt.params, param_shapes, path)
    _check_shapes("state tensors", ckpt.state, state_shapes, path)
    return ckpt
