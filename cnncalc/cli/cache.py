"""``cnncalc cache``: where the compiled kernels are kept, how big they are, and clearing them.

The runtime's numba kernels are compiled the first time a runtime command (train, evaluate,
bench, gradcheck, verify, erf) needs them and kept on disk, so later runs start in a second.
This command reads that directory without importing numba."""
from __future__ import annotations

import os
from pathlib import Path

import click

from cnncalc.cli.common import fail, format_option
from cnncalc.report.render import Column, TableView, emit_json, render

#: the files numba writes into a cache directory: an index per function, one file per overload
SUFFIXES = (".nbi", ".nbc")


def _files(root: Path):
    """The numba cache files under ``root`` (links are neither followed nor removed)."""
    if not root.is_dir() or root.is_symlink():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            p = Path(dirpath) / name
            if p.suffix in SUFFIXES and not p.is_symlink() and p.is_file():
                out.append(p)
    return sorted(out)


def _groups(root: Path, files):
    """Per top-level folder (numba names one after each source folder: kernels_<hash>, ...)."""
    groups: dict[str, dict] = {}
    for p in files:
        rel = p.relative_to(root)
        key = rel.parts[0] if len(rel.parts) > 1 else "."
        g = groups.setdefault(key, {"folder": key, "kernels": 0, "compiled": 0, "bytes": 0})
        g["kernels" if p.suffix == ".nbi" else "compiled"] += 1
        g["bytes"] += p.stat().st_size
    return list(groups.values())


@click.command()
@click.option("--info", "action", flag_value="info", default=True,
              help="Where the compiled kernels are and how much they take (the default).")
@click.option("--clear", "action", flag_value="clear",
              help="Delete the compiled kernels (numba's .nbi/.nbc files, nothing else); the next "
                   "runtime command compiles them again (about 20 s).")
@format_option()
def cache(action, fmt):
    """The compiled-kernel cache of the runtime commands: show it or clear it.

    The first runtime command (train, evaluate, bench, gradcheck, verify, erf) compiles its
    numba kernels -- about 20 s, with a "compiling kernels (first run only)" line on a
    terminal -- and keeps them in a per-user folder: NUMBA_CACHE_DIR when set, else
    $XDG_CACHE_HOME/cnncalc/numba, else ~/.cache/cnncalc/numba. A new cnncalc version or
    source change recompiles the kernels it changed.

    \b
    Examples:
      cnncalc cache                  # same as --info
      cnncalc cache --info --format json
      cnncalc cache --clear
    """
    from cnncalc.runtime import cache_dir

    where, why = cache_dir()
    root = Path(where)
    if root.exists() and not root.is_dir():
        fail(f"the kernel cache {root} is not a folder; remove it or set NUMBA_CACHE_DIR to a folder")
    files = _files(root)
    groups = _groups(root, files)
    total = sum(g["bytes"] for g in groups)
    kernels = sum(g["kernels"] for g in groups)
    compiled = sum(g["compiled"] for g in groups)
    if action == "clear":
        removed, freed, errors = 0, 0, []
        for p in files:
            try:
                size = p.stat().st_size
                p.unlink()
            except OSError as e:
                errors.append(f"{p}: {e.strerror}")
                continue
            removed, freed = removed + 1, freed + size
        for dirpath, _, _ in sorted(os.walk(root, followlinks=False), key=lambda t: -len(t[0])):
            if Path(dirpath) != root:
                try:
                    os.rmdir(dirpath)  # only folders left empty
                except OSError:
                    pass
        result = {"cache_dir": str(root), "set_by": why, "removed_files": removed, "freed_bytes": freed,
                  "errors": errors}
        if fmt == "json":
            emit_json(result)
        else:
            rows = [{"what": "folder", "value": str(root)}, {"what": "chosen by", "value": why},
                    {"what": "files removed", "value": f"{removed:,}"},
                    {"what": "bytes freed", "value": f"{freed:,} ({freed / 2**20:.1f} MiB)"}]
            render(TableView(title="kernel cache cleared" if not errors else "kernel cache: some files stayed",
                             columns=[Column("what", "", "left"), Column("value", "", "left")], rows=rows,
                             notes=errors + ["the next runtime command compiles its kernels again"]), fmt)
        if errors:
            fail(f"{len(errors)} file(s) in {root} could not be removed (listed above); check their "
                 "permissions")
        return
    result = {"cache_dir": str(root), "set_by": why, "exists": root.is_dir(), "kernels": kernels,
              "compiled_versions": compiled, "bytes": total, "folders": groups}
    if fmt == "json":
        emit_json(result)
        return
    cols = [Column("folder", "Folder", "left"), Column("kernels", "Kernels", fmt=lambda v: f"{v:,}"),
            Column("compiled", "Compiled versions", fmt=lambda v: f"{v:,}"),
            Column("bytes", "Bytes", fmt=lambda v: f"{v:,}")]
    footer = [{"folder": "total", "kernels": kernels, "compiled": compiled, "bytes": total}] if groups else []
    notes = [f"folder: {why}; NUMBA_CACHE_DIR or XDG_CACHE_HOME move it"]
    if not groups:
        notes.append("empty: the next runtime command compiles its kernels (about 20 s, first run only)")
    render(TableView(title=f"kernel cache {root} ({total / 2**20:.1f} MiB)", columns=cols, rows=groups,
                     footer=footer, notes=notes), fmt)
