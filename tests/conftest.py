import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli():
    """Run the click app in-process: cli("summarize", "vgg16") -> Result."""
    from cnncalc.cli import main

    runner = CliRunner()

    def run(*args, input=None, env=None):
        return runner.invoke(main, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return run


def run_module(*args, env=None, cwd=None):
    """Run `python -m cnncalc ...` in a fresh interpreter (for import-time and exit-code checks)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "cnncalc", *map(str, args)], capture_output=True,
                          text=True, env=e, cwd=cwd or ROOT, timeout=300)


@pytest.fixture
def spec_file(tmp_path):
    """Write a spec text to a file and return its path."""
    def make(text: str, name: str = "net.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return make
