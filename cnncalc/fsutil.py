"""Safe file output: atomic writes and run-directory preparation.

Every file cnncalc writes for the user goes through :func:`atomic_write` (or the
helpers built on it).  The data are written to a temporary file *in the same
directory* as the target, flushed and ``fsync``-ed, and only then moved over the
target with :func:`os.replace` (atomic on POSIX and Windows when source and
target are on the same file system).  A crash or an exception while writing
therefore leaves either the complete old file or the complete new one, never a
truncated mixture, and the temporary file is removed on failure.

With ``overwrite=False`` an existing target is never replaced: the finished
temporary file is *hard-linked* into place, which fails atomically if the
target appeared in the meantime (falling back to an existence check where hard
links are unsupported).
"""
from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = [
    "RunDirError",
    "atomic_writer",
    "atomic_write_bytes",
    "atomic_write_text",
    "prepare_run_dir",
    "RunLock",
    "lock_run_dir",
    "DISK_ERRNOS",
]

LOCK_NAME = ".cnncalc-train.lock"
# write failures that are the machine's state, not a bug: full disk, quota, read-only, too big
DISK_ERRNOS = frozenset(getattr(__import__("errno"), n) for n in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EIO")
                        if hasattr(__import__("errno"), n))


class RunLock:
    """An exclusive lock on a run directory, held while one ``cnncalc train`` writes into it.

    ``fcntl.flock`` on ``RUN_DIR/.cnncalc-train.lock``: the kernel releases it if the process
    dies, so a crashed run never leaves a stale lock. The file holds the holder's pid and start
    time so that a second run can name it.
    """

    def __init__(self, path: Path, fd: int | None):
        self.path = path
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


def lock_run_dir(path: str | os.PathLike) -> RunLock:
    """Create ``path`` if needed and lock it; :class:`RunDirError` naming the other run if a
    run already holds it."""
    import time

    run_dir = Path(path)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory; choose another output directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunDirError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from exc
    try:
        import fcntl
    except ImportError:  # no flock on this platform: no lock
        return RunLock(run_dir / LOCK_NAME, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        raise RunDirError(f"another cnncalc train is already writing into {run_dir} "
                          f"({holder or 'pid unknown'}); wait for it to finish, or choose another "
                          "output directory") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
    return RunLock(run_dir / LOCK_NAME, fd)



class RunDirError(Exception):
    """The output/run directory cannot be used (exists and is not empty, is a file...)."""


def _default_mode() -> int:
    # mkstemp creates 0600 files; give new files the permissions open() would.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; not all platforms allow opening a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb", *, overwrite: bool = True,
                  encoding: str | None = None) -> Iterator[IO]:
    """Context manager yielding a file object whose contents replace ``path`` atomically
    (its ``name`` is the temporary file's path, in the target's folder).

    The target is only touched if the ``with`` block finishes without an exception.
    ``mode`` is ``"wb"`` or ``"w"`` (text, ``encoding`` defaults to UTF-8).
    ``overwrite=False`` raises :class:`FileExistsError` instead of replacing an
    existing file.  The parent directory must exist.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer mode must be 'wb' or 'w', not {mode!r}")
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not overwrite and target.exists():
        raise FileExistsError(f"{target} already exists; refusing to overwrite it")
    if target.exists():
        file_mode = target.stat().st_mode & 0o7777
    else:
        file_mode = _default_mode()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        # (opened by name so that f.name is the temporary file's path: a writer of a pair of
        # files, such as ONNX external data, can check the pair before the rename)
        try:
            if mode == "w":
                f = open(tmp_name, "w", encoding=encoding or "utf-8", newline="")
            else:
                f = open(tmp_name, "wb")
        finally:
            os.close(fd)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode)
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)          # fails atomically if target exists
            except FileExistsError:
                raise FileExistsError(f"{target} already exists; refusing to overwrite it") from None
            except OSError:                   # no hard links here (e.g. some FAT/SMB mounts)
                if target.exists():
                    raise FileExistsError(f"{target} already exists; refusing to overwrite it") from None
                os.replace(tmp, target)
            else:
                tmp.unlink()
        _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def stale_temps(directory: str | os.PathLike, names) -> list[Path]:
    """The temporary files :func:`atomic_writer` leaves behind when killed (``kill -9``, power
    loss) while writing one of ``names`` in ``directory``: ``.NAME.XXXXXXXX.tmp`` (mkstemp's 8
    characters), regular files (not links) owned by this user. Nothing else matches."""
    pattern = re.compile("|".join(rf"\.{re.escape(n)}\.[a-z0-9_]{{8}}\.tmp" for n in names))
    out = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    uid = os.getuid() if hasattr(os, "getuid") else None
    for e in entries:
        if not pattern.fullmatch(e.name):
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and (uid is None or st.st_uid == uid):
            out.append(Path(e.path))
    return out


def remove_stale_temps(directory: str | os.PathLike, names) -> list[Path]:
    """Remove :func:`stale_temps` (call it only while holding the directory's lock, e.g. a
    run directory's: no other writer is then half-way through). Returns what was removed."""
    removed = []
    for p in stale_temps(directory, names):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, "wb", overwrite=overwrite) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True,
                      encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, "w", overwrite=overwrite, encoding=encoding) as f:
        f.write(text)


def prepare_run_dir(path: str | os.PathLike, *, overwrite: bool = False,
                    resume: bool = False) -> Path:
    """Create (or accept) the directory a training run writes into.

    * missing → created, with parents;
    * existing and empty → used;
    * existing and non-empty → :class:`RunDirError` unless ``resume`` (continue the
      run that is there) or ``overwrite`` (write into it anyway; files are replaced
      one by one, atomically, as the new run writes them — nothing is deleted);
    * a file, not a directory → :class:`RunDirError`.
    """
    run_dir = Path(path)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory; choose another output directory")
    if run_dir.is_dir():
        entries = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)
        if entries and not (overwrite or resume):
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise RunDirError(
                f"run directory {run_dir} is not empty (contains {shown}); "
                "resume it, allow overwriting it, or choose another output directory")
        return run_dir
    try:
        run_dir.mkdir(parents=True)
    except OSError as exc:
        raise RunDirError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from exc
    return run_dir
