"""`cnncalc --help`: one whole line per command (issue 29: click cut every description
mid-sentence), from the short-help table, without importing the commands."""
import os
import subprocess
import sys

from cnncalc.cli import COMMANDS, SHORT_HELP
from tests.conftest import ROOT


def test_every_command_has_a_short_help_line():
    missing = sorted(set(COMMANDS) - set(SHORT_HELP))
    assert not missing, f"add a line to SHORT_HELP in cnncalc/cli/__init__.py for: {missing}"
    for name, text in SHORT_HELP.items():
        assert text.endswith(".") and "\n" not in text, name
        assert len(text) <= 56, f"{name}: {len(text)} characters do not fit one line of an 80-column terminal"


def test_help_lists_every_command_whole_on_80_columns_without_importing_them():
    probe = ("import sys; from cnncalc.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('IMPORTED', sorted(m for m in sys.modules if m.startswith('cnncalc.cli.')))")
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120).stdout
    lines = out.splitlines()
    for name in COMMANDS:
        row = [x for x in lines if x.split()[:1] == [name]]
        assert row and row[0].rstrip().endswith(SHORT_HELP[name]), (name, row)
        assert len(row[0]) <= 80
    commands = out[out.index("Commands:"):]
    assert "..." not in commands
    imported = lines[-1]
    assert imported.startswith("IMPORTED") and "cnncalc.cli.train" not in imported \
        and "cnncalc.cli.summarize" not in imported, imported
