"""Issue 27, items 2 and 5: the default thread count, the first-run compile notice and
``cnncalc cache``."""
import csv
import io
import json
import os

import pytest

from tests.conftest import run_module


def test_default_threads_rule():
    from cnncalc.runtime._numba import default_threads

    assert default_threads(2, 0.0) == 2          # idle: every core
    assert default_threads(2, 0.4) == 2
    assert default_threads(2, 0.6) == 1          # the other core mostly busy: one thread
    assert default_threads(2, 1.0) == 1
    assert default_threads(2, 7.5) == 1          # never below one
    assert default_threads(8, 2.2) == 6
    assert default_threads(1, 0.0) == 1


def test_train_help_states_the_thread_rule(cli):
    out = " ".join(cli("train", "--help").output.split())
    assert "minus the 1-minute load average" in out and "slower than 1 thread" in out
    out = " ".join(cli("evaluate", "--help").output.split())
    assert "minus the 1-minute load average" in out


def _fresh_kernel():
    import numba

    def add_one(x):
        return x + 1
    add_one.__module__ = "cnncalc.runtime.kernels.test_only"  # counted as one of cnncalc's kernels
    return numba.njit(cache=False)(add_one)


def test_compile_notice_on_a_terminal():
    from cnncalc.runtime._numba import CompileNotice
    from numba.core import event

    buf = io.StringIO()
    notice = CompileNotice(buf, tty=True)
    event.register("numba:compile", notice)
    try:
        f = _fresh_kernel()
        assert f(1) == 2 and f(1.5) == 2.5     # two signatures: two compilations
        assert f(2) == 3                       # compiled already: no event
    finally:
        event.unregister("numba:compile", notice)
    notice.done()
    text = buf.getvalue()
    assert text.startswith("compiling kernels (first run only)")
    assert "add_one" in text                   # the kernel being compiled is named
    last = text.rsplit("\r\x1b[K", 1)[-1]
    assert last.startswith("compiled 2 kernels in ") and "cnncalc cache --info" in last
    assert last.endswith("\n")
    notice.done()                              # a second done() adds nothing
    assert buf.getvalue() == text


def test_compile_notice_silent_when_not_a_terminal():
    from cnncalc.runtime._numba import CompileNotice
    from numba.core import event

    buf = io.StringIO()
    notice = CompileNotice(buf, tty=False)
    event.register("numba:compile", notice)
    try:
        assert _fresh_kernel()(1) == 2
    finally:
        event.unregister("numba:compile", notice)
    notice.done()
    assert buf.getvalue() == "" and notice.count == 0


def _fake_cache(root):
    (root / "kernels_abc").mkdir(parents=True)
    (root / "kernels_abc" / "conv._im2col-10.py311.nbi").write_bytes(b"i" * 10)
    (root / "kernels_abc" / "conv._im2col-10.py311.1.nbc").write_bytes(b"c" * 100)
    (root / "kernels_abc" / "conv._im2col-10.py311.2.nbc").write_bytes(b"c" * 50)
    (root / "runtime_def").mkdir()
    (root / "runtime_def" / "optim._sgd-5.py311.nbi").write_bytes(b"i" * 7)
    (root / "notes.txt").write_text("not numba's")


def test_cache_info_and_clear(tmp_path):
    root = tmp_path / "cache"
    _fake_cache(root)
    env = {"NUMBA_CACHE_DIR": str(root)}
    r = run_module("cache", "--info", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["cache_dir"] == str(root) and info["set_by"] == "the NUMBA_CACHE_DIR variable"
    assert (info["kernels"], info["compiled_versions"], info["bytes"]) == (2, 2, 167)
    assert {g["folder"]: g["bytes"] for g in info["folders"]} == {"kernels_abc": 160, "runtime_def": 7}
    rows = list(csv.DictReader(io.StringIO(run_module("cache", "-F", "csv", env=env).stdout)))
    assert rows[-1] == {"folder": "total", "kernels": "2", "compiled": "2", "bytes": "167"}
    plain = run_module("cache", env=env).stdout
    assert str(root) in plain and "kernels_abc" in plain
    r = run_module("cache", "--clear", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert (done["removed_files"], done["freed_bytes"]) == (4, 167)
    # only numba's files go: the folder and anything else in it stay
    assert sorted(p.name for p in root.rglob("*")) == ["notes.txt"]
    assert json.loads(run_module("cache", "-F", "json", env=env).stdout)["kernels"] == 0


def test_cache_default_folder_and_no_numba(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path), "NUMBA_CACHE_DIR": ""}
    code = ("import sys, json\nfrom cnncalc.cli import main\n"
            "try:\n    main(['cache', '--format', 'json'])\nexcept SystemExit:\n    pass\n"
            "print('NUMBA' if 'numba' in sys.modules else 'NO-NUMBA')")
    import subprocess
    import sys

    from tests.conftest import ROOT

    e = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    out, flag = r.stdout.rsplit("}", 1)
    info = json.loads(out + "}")
    assert info["cache_dir"] == str(tmp_path / "cnncalc" / "numba") and info["exists"] is False
    assert flag.strip() == "NO-NUMBA"


@pytest.mark.parametrize("flag", ["--info", "--clear"])
def test_cache_refuses_a_file(tmp_path, flag):
    f = tmp_path / "afile"
    f.write_text("x")
    r = run_module("cache", flag, env={"NUMBA_CACHE_DIR": str(f)})
    assert r.returncode == 2 and "not a folder" in r.stderr and "Traceback" not in r.stderr
    assert f.read_text() == "x"
