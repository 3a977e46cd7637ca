"""Issue 25 item 15: the temporary files a checkpoint write killed half-way (kill -9) leaves are
removed on resume and by the next checkpoint write, and only those (by pattern, regular files
of this user); a NUL character (and a >30-digit integer where a name is expected) in a spec,
an answer file or a question sheet is an error with file:line."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnncalc.errors import SpecError
from cnncalc.fsutil import stale_temps
from cnncalc.runtime import checkpoint as C
from cnncalc.spec.yamlsafe import load_yaml

from conftest import ROOT, run_module  # noqa: E402


def _killed_mid_write(run_dir: Path) -> Path:
    """A process writing run_dir/latest.npz through atomic_writer, killed with SIGKILL."""
    code = ("import sys, time\nfrom cnncalc.fsutil import atomic_writer\n"
            "with atomic_writer(sys.argv[1], 'wb') as f:\n"
            "    f.write(b'x' * 100000); f.flush(); print('ready', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(run_dir / C.LATEST)], stdout=subprocess.PIPE,
                         text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    (tmp,) = [q for q in run_dir.iterdir() if q.name.endswith(".tmp")]
    assert tmp.name.startswith(".latest.npz.") and not (run_dir / C.LATEST).exists()
    return tmp


def _bystanders(run_dir: Path) -> list[Path]:
    """Files a cleanup must never touch: other names, other lengths, a link, a folder."""
    keep = [run_dir / ".latest.npz.keep.tmp", run_dir / ".other.npz.abcd1234.tmp", run_dir / "latest.npz.abcd1234.tmp",
            run_dir / ".latest.npz.abcd1234.tmp.bak", run_dir / "notes.tmp"]
    for k in keep:
        k.write_text("mine")
    outside = run_dir.parent / "outside.txt"
    outside.write_text("outside")
    (run_dir / ".best.npz.zzzz9999.tmp").symlink_to(outside)
    (run_dir / ".best.npz.yyyy8888.tmp").mkdir()
    return keep + [run_dir / ".best.npz.zzzz9999.tmp", run_dir / ".best.npz.yyyy8888.tmp", outside]


def test_next_checkpoint_write_removes_what_a_kill_left(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    tmp = _killed_mid_write(run)
    keep = _bystanders(run)
    assert stale_temps(run, (C.LATEST, C.BEST)) == [tmp]
    C.save_epoch(run, C.Checkpoint("n", C.spec_hash("x"), 1, {"a/w": np.zeros(3, np.float32)}), is_best=True)
    assert not tmp.exists() and (run / C.LATEST).exists() and (run / C.BEST).exists()
    assert all(k.exists() or k.is_symlink() for k in keep)
    assert [q.name for q in run.iterdir() if q.name.startswith((".latest.npz.", ".best.npz.")) and
            q.name.endswith(".tmp") and not q.is_symlink() and q.is_file()] == [".latest.npz.keep.tmp"]


def test_resume_removes_what_a_kill_left(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    tmp = _killed_mid_write(run)
    keep = _bystanders(run)
    res = run_module("train", "--resume", run)
    assert res.returncode == 2 and "has no checkpoint" in res.stderr, res.stderr  # (it died before its first)
    assert not tmp.exists()
    assert all(k.exists() or k.is_symlink() for k in keep)


@pytest.mark.parametrize("text,line", [
    ("input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3, name: a\x00b}\n", 3),
    ("# a comment\n\x00\n", 2),
    ("sheet: x\nquestions:\n  - {id: a\x00, layer: conv1}\n", 3),
])
def test_nul_is_an_error_with_file_and_line(text, line):
    with pytest.raises(SpecError) as e:
        load_yaml(text, file="f.yaml")
    assert str(e.value).startswith(f"f.yaml:{line}: ") and "U+0000" in str(e.value)


def test_nul_in_a_spec_on_the_command_line(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_bytes(b"input: 8x8x3\nlayers:\n  - {conv: 4, kernel: 3}\n  - {relu: , name: \"r\x00\"}\n")
    res = run_module("summarize", p)
    assert res.returncode == 2 and f"{p}:4: " in res.stderr and "Traceback" not in res.stderr, res.stderr


@pytest.mark.parametrize("field,line", [("name", 1), ("source", 1)])
def test_huge_integer_in_a_text_field_has_file_and_line(tmp_path, field, line):
    p = tmp_path / "s.yaml"
    p.write_text(f"{field}: {'9' * 40}\ninput: 8x8x3\nlayers:\n  - {{conv: 4, kernel: 3}}\n")
    res = run_module("summarize", p)
    assert res.returncode == 2 and f"{p}:{line}: " in res.stderr, res.stderr


def test_huge_integer_as_a_student_name_has_file_and_line(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "a.yaml").write_text(f"sheet: cnn-homework-2\nid: s1\nstudent: {'9' * 40}\nanswers:\n  a: 1\n")
    res = run_module("check", "--key", ROOT / "examples/homework/QUESTIONS.yaml", subs, "--format", "plain")
    assert f"{subs / 'a.yaml'}:3: " in res.stdout + res.stderr, res.stdout + res.stderr
