import inspect
import os
import re
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


# ------------------------------------------------------------------ the slow group (docs/contributing.md)
# `python -m pytest -q` runs the fast tests (addopts `-m "not slow and not zoo_full"` in pyproject.toml); `-m slow`
# runs the rest. A test is slow if it is marked `@pytest.mark.slow` itself, or by one of these
# rules, which apply to every file, new ones included:
#   * it is marked `torch` (a PyTorch cross-check: importing torch alone costs seconds and
#     ~400 MB, and CI's fast run has no torch anyway);
#   * its module imports torch, torchvision or timm at module level (`pytest.importorskip`
#     included): the import is paid by the whole file;
#   * its file or test is listed in SLOW_PATHS (measured: docs/contributing.md has the run).
# Every feature keeps at least one fast test: a slow test is a second method or a bigger case.
# A test marked `zoo_full` (the import of every torchvision/timm model, hours on 2 cores) is in
# neither group: the default addopts deselect it too, `-m zoo_full` runs them; `-m slow` (CI) has
# a sample of the same tests.
SLOW_MODULES = ("torch", "torchvision", "timm")
# A test over every shipped spec runs this sample in the fast run and the rest in the slow group
# (zoo_params below): together the sample has every layer type of the zoo and 1-D and 3-D
# inputs, cheapest first (tests/test_zoo_sample.py checks that it still does).
ZOO_SAMPLE = ("kim-cnn", "lenet5-paper", "zfnet", "deeplabv3_head", "alphago-policy", "cifar_resnet20",
              "unet", "shufflenet_v2", "convnext_tiny", "xception", "mobilenet_v3_large",
              "inception_v3_aux", "c3d", "deit_tiny", "mobilevit_xxs", "swin_t", "efficientvit_b1")


def zoo_params(names=None, slow=()):
    """pytest params of shipped spec names: ZOO_SAMPLE fast, the others (and `slow`) slow."""
    from cnncalc.spec.loader import zoo_names

    return [n if n in ZOO_SAMPLE and n not in slow else pytest.param(n, marks=pytest.mark.slow)
            for n in (zoo_names() if names is None else names)]
SLOW_PATHS: tuple[str, ...] = ()
DEFAULT_MARKEXPR = "not slow and not zoo_full"  # addopts in pyproject.toml
FAST_BUDGET_S = 10.0  # CPU seconds: a fast test over this is named at the end of the run


_TORCH_IN_BODY = re.compile(r"importorskip\(\s*[\"'](?:torch|torchvision|timm)[\"']"
                            r"|^\s+(?:import|from) (?:torch|torchvision|timm)\b", re.MULTILINE)
_body_cache: dict = {}


def _body_imports_torch(item) -> bool:
    """The test function itself imports torch, torchvision or timm (importorskip included)."""
    fn = getattr(item, "function", None)
    if fn is None:
        return False
    if fn not in _body_cache:
        try:
            _body_cache[fn] = bool(_TORCH_IN_BODY.search(inspect.getsource(fn)))
        except (OSError, TypeError):
            _body_cache[fn] = False
    return _body_cache[fn]


def _is_slow(item) -> bool:
    if item.get_closest_marker("zoo_full"):  # a group of its own (below), not in `-m slow`
        return False
    if item.get_closest_marker("slow") or item.get_closest_marker("torch"):
        return True
    module = getattr(item, "module", None)
    if module is not None and any(getattr(getattr(module, name, None), "__name__", None) == name
                                  for name in SLOW_MODULES):
        return True
    if _body_imports_torch(item):
        return True
    nodeid = item.nodeid
    return any(nodeid == p or nodeid.startswith(p + "::") or nodeid.startswith(p + "[")
               or (p.endswith("/") and nodeid.startswith(p)) for p in SLOW_PATHS)


_WHOLE_FILE_SLOW = re.compile(
    r"^(?:import (?:torch|torchvision|timm)\b|from (?:torch|torchvision|timm)\b"
    r"|\w+ = pytest\.importorskip\([\"'](?:torch|torchvision|timm)[\"']\)"
    r"|pytestmark = .*\bpytest\.mark\.(?:slow|torch)\b)", re.MULTILINE)


def pytest_ignore_collect(collection_path, config):
    """The default run (`-m "not slow and not zoo_full"`) does not even import a file whose every test is slow
    (torch at module level, or a module-wide slow/torch mark): collecting torch alone costs
    seconds and hundreds of MB."""
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if " ".join((config.option.markexpr or "").split()) not in ("not slow", DEFAULT_MARKEXPR):
        return None
    try:
        head = collection_path.read_text(encoding="utf-8")
    except OSError:
        return None
    return True if _WHOLE_FILE_SLOW.search(head) else None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_slow(item) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


_cpu_over: list[tuple[float, str]] = []


def _cpu() -> float:
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


_torch_importers: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start, had_torch = _cpu(), "torch" in sys.modules
    yield
    spent = _cpu() - start
    if not item.get_closest_marker("slow") and not item.get_closest_marker("zoo_full"):
        if spent > FAST_BUDGET_S:  # (zoo_full is a group of hours of its own: no fast budget)
            _cpu_over.append((spent, item.nodeid))
        if not had_torch and "torch" in sys.modules:
            _torch_importers.append(item.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _torch_importers:
        terminalreporter.section("fast tests that imported torch")
        terminalreporter.write_line("importing torch costs seconds and hundreds of MB in every later test's "
                                    "process; mark these @pytest.mark.torch (docs/contributing.md):")
        for nodeid in _torch_importers:
            terminalreporter.write_line(f"  {nodeid}")
    if _cpu_over:
        terminalreporter.section("fast tests over their budget")
        terminalreporter.write_line(f"these tests are not marked slow but took over {FAST_BUDGET_S:.0f} CPU "
                                    f"seconds each; make them smaller or mark them @pytest.mark.slow "
                                    f"(docs/contributing.md):")
        for spent, nodeid in sorted(_cpu_over, reverse=True):
            terminalreporter.write_line(f"  {spent:6.1f} s  {nodeid}")
