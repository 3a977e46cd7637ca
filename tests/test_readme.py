"""The README and the pages under docs/ tell the truth: every ```text block whose first line is
`$ cnncalc …` is executed and its output compared with the one shown, so the examples cannot
drift.

Rules (kept small on purpose):

* A block holds one or more commands, each a line `$ cnncalc ARGS [| FILTER] [# comment]`,
  followed by the exact output expected (stdout and stderr as a terminal shows them, plain:
  NO_COLOR=1). Each block runs on its own, in a scratch directory where `specs/` and `examples/`
  are the repository's, so files it writes (run directories, pictures) go nowhere.
* Filters, as a shell would apply them: `| grep PATTERN`, `| head -n N`, `| tail -n N`.
* Exit status: 0 unless the command's comment says `# exit status N`.
* A line `...` in the output stands for one or more lines left out of the README.
* Masks, applied to both sides before comparing (MASKS below): durations (`12.3 s`, `3 min`),
  throughput (`1,234 img/s`, `images/s`), run-directory timestamps (`runs/lenet5-20261123-182237`),
  and the thread count (`2 thread(s)`), and relative errors below 1e-7 in scientific notation
  (`2.2e-09`: a float64 gradient check's rounding noise, which moves with the CPU's fused
  multiply-add). Numbers are never masked otherwise.
* Blocks that train or verify a network are marked slow (they still run in the full suite).
"""
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SLOW = ("train", "verify", "gradcheck", "erf", "evaluate")

MASKS = [
    (re.compile(r"\b\d+(?:\.\d+)? s\b"), "<T> s"),
    (re.compile(r"\b\d+ min\b"), "<T> min"),
    (re.compile(r"\b\d+ h \d+ min\b"), "<T> min"),
    (re.compile(r"[\d,]+(?:\.\d+)? (img/s|images/s)"), r"<N> \1"),
    (re.compile(r"(runs/[\w.]+?)-\d{8}-\d{6}(?:-\d+)?"), r"\1-<DATE>"),
    (re.compile(r"\b\d+ thread\(s\)"), "<N> thread(s)"),
    (re.compile(r"\b\d\.\de-(?:0[89]|[1-9]\d)\b"), "<1e-7>"),
]


def mask(line: str) -> str:
    for rx, rep in MASKS:
        line = rx.sub(rep, line)
    return line.rstrip()


def blocks(page: Path = README):
    """(line number, [(command, expected lines)]) for every executable ```text block of a page."""
    text = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(text):
        if text[i].strip() == "```text":
            start, body = i + 1, []
            i += 1
            while i < len(text) and text[i].strip() != "```":
                body.append(text[i])
                i += 1
            if body and body[0].startswith("$ cnncalc "):
                cmds = []
                for line in body:
                    if line.startswith("$ "):
                        cmds.append((line[2:], []))
                    else:
                        cmds[-1][1].append(line)
                out.append((start + 1, cmds))
        i += 1
    return out


def run(command: str, cli_runner):
    """(exit code, output lines, expected exit code) of one README command line."""
    from cnncalc.cli import main

    words = shlex.split(command, comments=False)
    comment = ""
    if "#" in words:
        k = words.index("#")
        comment = " ".join(words[k + 1:])
        words = words[:k]
    else:
        for k, w in enumerate(words):
            if w.startswith("#"):
                comment = " ".join(words[k:])[1:]
                words = words[:k]
                break
    stages, cur = [], []
    for w in words:
        if w == "|":
            stages.append(cur)
            cur = []
        else:
            cur.append(w)
    stages.append(cur)
    assert stages[0][0] == "cnncalc", command
    res = cli_runner.invoke(main, stages[0][1:], catch_exceptions=False,
                            env={"NO_COLOR": "1", "COLUMNS": "100", "FORCE_COLOR": None,
                                 "CNNCALC_HIDE_EXPECTED": None})
    lines = res.output.splitlines()
    for st in stages[1:]:
        if st[0] == "grep":
            lines = [x for x in lines if re.search(st[-1], x)]  # grep [-E] PATTERN
        elif st[0] in ("head", "tail"):
            n = int(st[-1].lstrip("-"))
            lines = lines[:n] if st[0] == "head" else lines[-n:]
        else:
            raise AssertionError(f"README filter {st[0]!r} is not supported: {command}")
    m = re.search(r"exit status (\d+)", comment)
    return res.exit_code, lines, int(m.group(1)) if m else 0


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line after masking; a `...` line stands for one or more lines."""
    exp = [mask(x) for x in expected]
    act = [mask(x) for x in actual]
    while exp and not exp[-1]:
        exp.pop()
    while act and not act[-1]:
        act.pop()

    def go(i, j):
        if i == len(exp):
            return j == len(act)
        if exp[i] in ("...", "…"):
            return any(go(i + 1, k) for k in range(j + 1, len(act) + 1))
        return j < len(act) and exp[i] == act[j] and go(i + 1, j + 1)

    return go(0, 0)


def _params():
    out = []
    for page in PAGES:
        for line, cmds in blocks(page):
            slow = any(c.split()[1] in SLOW for c, _ in cmds)
            out.append(pytest.param(cmds, id=f"{page.relative_to(ROOT)}:{line}",
                                    marks=[pytest.mark.slow] if slow else []))
    return out


def test_readme_has_executable_blocks():
    assert len(blocks()) >= 1  # the front door shows the main job
    assert sum(len(blocks(p)) for p in PAGES) >= 15


@pytest.mark.parametrize("cmds", _params())
def test_readme_block(cmds, tmp_path, monkeypatch):
    for name in ("specs", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for command, expected in cmds:
        # a blank line separates the commands of a block
        exp = list(expected)
        while exp and not exp[-1].strip():
            exp.pop()
        code, actual, want = run(command, runner)
        shown = "\n".join(actual)
        assert code == want, f"$ {command}\nexit status {code}, README says {want}\n{shown}"
        assert matches(exp, actual), (f"$ {command}\nREADME shows:\n" + "\n".join(exp)
                                      + "\n\nthe command prints:\n" + shown)


def test_masks_and_ellipsis():
    assert mask("epoch 1/20  6.3 s  630 img/s") == mask("epoch 1/20  0.5 s  12,345 img/s")
    assert mask("run directory: runs/lenet5-20261123-182237") == "run directory: runs/lenet5-<DATE>"
    assert mask("1,849,688,064") == "1,849,688,064"  # numbers are not masked
    assert mask("C1  conv  20  2.2e-09  ok") == mask("C1  conv  20  4.5e-11  ok")
    assert mask("2.2e-07") == "2.2e-07" and mask("1.5e-06") == "1.5e-06"  # a real error shows
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert not matches(["a", "...", "d"], ["a", "d"])
    assert not matches(["a", "b"], ["a", "c"])


def test_front_door_and_ci_run_the_same_commands():
    """Clone, venv, install and the first command on the README's first screen; `.ci/run` runs
    the README's two set-up commands verbatim, then the slow group the README names."""
    first_screen = "\n".join(README.read_text(encoding="utf-8").splitlines()[:30])
    for step in ("git clone", "python3 -m venv .venv", "pip install . && cnncalc summarize specs/vgg16.yaml",
                 "pip install '.[test]' && python -m pytest -q"):
        assert step in first_screen, step
    readme = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("pip install . && cnncalc summarize specs/vgg16.yaml",
                    "pip install '.[test]' && python -m pytest -q\n", "python -m pytest -q -m slow"):
        assert command.strip() in readme and command in ci, command
    assert ci.index("pytest -q\n") < ci.index("pytest -q -m slow")  # the README's command first
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme  # the CPU-only torch


def test_every_guide_is_linked_from_the_readme_and_every_link_resolves():
    readme = README.read_text(encoding="utf-8")
    links = set(re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", readme))
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in links, f"README.md does not link docs/{page.name} (All guides)"
    for link in links:
        assert (ROOT / link).is_file(), link
