import os
import stat

import pytest

from cnncalc import fsutil
from cnncalc.fsutil import RunDirError, atomic_write_bytes, atomic_write_text, atomic_writer, prepare_run_dir


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_creates_and_replaces(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first\n")
    assert target.read_text() == "first\n"
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert _leftovers(tmp_path) == []


def test_new_file_gets_umask_permissions_not_mkstemp_0600(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_replacing_keeps_existing_permissions(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_exception_midway_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_writer(target) as f:
            f.write(b"partial new contents")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old contents"
    assert _leftovers(tmp_path) == []


def test_fsync_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fsutil.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_failed_rename_leaves_no_file_when_target_did_not_exist(tmp_path, monkeypatch):
    target = tmp_path / "new.bin"

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"data")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_refuses_existing_file(tmp_path):
    target = tmp_path / "user.txt"
    target.write_text("precious")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        atomic_write_text(target, "clobber", overwrite=False)
    assert target.read_text() == "precious"
    assert _leftovers(tmp_path) == []
    fresh = tmp_path / "fresh.txt"
    atomic_write_text(fresh, "ok", overwrite=False)
    assert fresh.read_text() == "ok"
    assert _leftovers(tmp_path) == []


def test_no_overwrite_detects_file_created_during_write(tmp_path):
    # The hard-link step must fail if someone created the target meanwhile.
    target = tmp_path / "race.txt"
    with pytest.raises(FileExistsError):
        with atomic_writer(target, "w", overwrite=False) as f:
            f.write("mine")
            target.write_text("theirs")
    assert target.read_text() == "theirs"
    assert _leftovers(tmp_path) == []


def test_prepare_run_dir(tmp_path):
    new = tmp_path / "a" / "b"
    assert prepare_run_dir(new) == new and new.is_dir()
    assert prepare_run_dir(new) == new          # empty: fine
    (new / "latest.npz").write_bytes(b"x")
    with pytest.raises(RunDirError, match="not empty.*latest.npz"):
        prepare_run_dir(new)
    assert prepare_run_dir(new, resume=True) == new
    assert prepare_run_dir(new, overwrite=True) == new
    assert (new / "latest.npz").read_bytes() == b"x"   # overwrite deletes nothing
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        prepare_run_dir(afile, overwrite=True)
