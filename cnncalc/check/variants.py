"""Per-student variants of a question sheet: ``{choose: [...]}`` and ``{range: [lo, hi]}``.

Anywhere inside a question item, inside a named spec of ``specs:`` or inside the sheet's
``spec:``, a value may be a *choice point* instead of a fixed value::

    layer: {input: {choose: [28x28x3, 32x32x3, 36x36x3]}, conv: 8,
            kernel: {choose: [3, 5]}, stride: {range: [1, 3]}}     # range: lo..hi inclusive
                                                                    # ([lo, hi, step] also works)

The choice points of one *group* (one question item, one named spec, the sheet's spec) are
drawn together: every combination is enumerated, the ones that do not make a gradable
question are dropped (a window that does not fit, say — except for ``fits:`` questions,
whose point is exactly that), and a student's combination is picked by a stable hash
(SHA-256, never Python's per-process ``hash()``) of the sheet id, the student's variant id,
the group and the sheet's secret ``seed:`` (when it has one). The same id always draws the
same numbers, on any machine, in any run.

Everything here is plain data manipulation; checking which combinations are admissible is
the sheet's business (``cnncalc.check.sheet``), which calls :func:`combinations` and
:func:`pick`.
"""
from __future__ import annotations

import hashlib
import itertools
from typing import Any, Callable

from cnncalc.errors import SpecError
from cnncalc.spec.yamlsafe import LineDict, LineList

CHOICE_KEYS = ("choose", "range")
MAX_COMBINATIONS = 2000       # per group; more is almost surely a mistake in the sheet
MAX_RANGE = 1000              # values in one range


def is_choice(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and next(iter(node)) in CHOICE_KEYS


def choice_points(node: Any, path: tuple = ()) -> list[tuple]:
    """The paths (tuples of keys and list indices) of the choice points under ``node``."""
    if is_choice(node):
        return [path]
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += choice_points(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += choice_points(v, path + (i,))
    return out


def options(node: dict, file: str | None) -> list:
    """The values a choice point can take, in the order written."""
    key, val = next(iter(node.items()))
    line = node.line_of(key) if isinstance(node, LineDict) else None
    if key == "choose":
        if not isinstance(val, list) or not val:
            raise SpecError("'choose' takes a non-empty list of values, e.g. {choose: [3, 5]}", file=file,
                            line=line)
        for v in val:
            if is_choice(v):
                raise SpecError("a 'choose' list cannot contain another choice", file=file, line=line)
        return list(val)
    ok = (isinstance(val, list) and len(val) in (2, 3)
          and all(isinstance(v, int) and not isinstance(v, bool) for v in val))
    if not ok:
        raise SpecError("'range' takes whole numbers [lo, hi] (inclusive) or [lo, hi, step], e.g. "
                        "{range: [1, 3]}", file=file, line=line)
    lo, hi = val[0], val[1]
    step = val[2] if len(val) == 3 else 1
    if step < 1 or hi < lo:
        raise SpecError(f"'range: {list(val)}' is empty: write [lo, hi] with lo ≤ hi and a step ≥ 1",
                        file=file, line=line)
    if (hi - lo) // step + 1 > MAX_RANGE:
        raise SpecError(f"'range: {list(val)}' has more than {MAX_RANGE} values", file=file, line=line,
                        hint="use a step ([lo, hi, step]) or a shorter range")
    return list(range(lo, hi + 1, step))


def get(node: Any, path: tuple) -> Any:
    for k in path:
        node = node[k]
    return node


def combinations(group: Any, file: str | None, line: int | None = None) -> tuple[list[tuple], list[tuple]]:
    """(paths, every combination of values) of the choice points of ``group``."""
    paths = choice_points(group)
    opts = [options(get(group, p), file) for p in paths]
    n = 1
    for o in opts:
        n *= len(o)
    if n > MAX_COMBINATIONS:
        raise SpecError(f"this question has {n:,} combinations of choices (at most {MAX_COMBINATIONS:,})",
                        file=file, line=line, hint="offer fewer choices, or split it into questions")
    return paths, list(itertools.product(*opts))


def substitute(node: Any, values: dict[tuple, Any], path: tuple = (),
               drop: Callable[[tuple, Any], bool] | None = None) -> Any:
    """A copy of ``node`` with the choice point at each path of ``values`` replaced by its value
    (line numbers kept: a drawn value reports errors at the line of its choice point).
    ``drop(path, key)`` leaves keys out of mappings (sheet-only keys such as ``points``)."""
    if path in values:
        return _relined(values[path], node)
    if isinstance(node, dict):
        out = LineDict()
        out.line = getattr(node, "line", None)
        out.key_lines = {}
        for k, v in node.items():
            if drop is not None and drop(path, k):
                continue
            out[k] = substitute(v, values, path + (k,), drop)
            if isinstance(node, LineDict):
                out.key_lines[k] = node.line_of(k)
        return out
    if isinstance(node, list):
        out = LineList(substitute(v, values, path + (i,), drop) for i, v in enumerate(node))
        out.line = getattr(node, "line", None)
        out.item_lines = list(getattr(node, "item_lines", [out.line] * len(node)))
        return out
    return node


def _relined(value: Any, where: Any) -> Any:
    """A drawn value, with the line of its choice point when it is a mapping or list."""
    line = getattr(where, "line", None)
    if isinstance(value, dict):
        out = LineDict(value)
        out.line, out.key_lines = line, {k: line for k in value}
        return out
    if isinstance(value, list):
        out = LineList(value)
        out.line, out.item_lines = line, [line] * len(value)
        return out
    return value


def stable_index(n: int, *parts: str) -> int:
    """An index in range(n) from a SHA-256 of the parts (the same on every machine and run)."""
    # (surrogatepass: a student's id may hold a lone surrogate, "\ud800" in YAML; it must not
    # stop the class's gradebook, and every valid id hashes as before)
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % n


def pick(admissible: list[tuple], sheet_id: str, variant: str, group: str, seed: str | None = None) -> tuple:
    """The combination of ``group`` drawn for ``variant``; a sheet's secret ``seed`` joins the
    hash, so that nobody without the sheet can tell which numbers an id draws."""
    parts = (sheet_id, str(variant), group) + ((seed,) if seed is not None else ())
    return admissible[stable_index(len(admissible), *parts)]


__all__ = ["CHOICE_KEYS", "MAX_COMBINATIONS", "is_choice", "choice_points", "options", "combinations",
           "substitute", "stable_index", "pick", "get"]
