"""The ONNX importer's rewrites: small patterns that lift ONNX nodes into readable spec layers.

One module per family (``conv``, ``tokens``, ``linear``, ``norm``, ``activation``, ``pool``, ``arith``,
``shape``, ``attention``, ``relbias``, ``constant``); each rewrite is registered once, with the ONNX ops it starts from, and tested on
its own (tests/interop/rewrites/test_<family>.py: a tiny onnx.helper graph, the layers it
became, the outputs against onnxruntime). The driver (:mod:`cnncalc.interop.onnx.importer`)
finds rewrites through this registry only.

The stages (the driver walks the ONNX nodes in graph order; at each node it tries the region
rewrites of its op, then its node rewrite, then the low-level lowering followed by the lifts):

* ``stage="region"``: ``fn(imp, i) -> bool`` — tried first at node ``i`` whose op is one of
  ``ops`` (any domain); it may consume several nodes (``imp.skip``) and returns True when it
  imported them, False to leave node ``i`` to the next rewrite. Region rewrites of an op run in
  registry order; the first that returns True wins.
* ``stage="node"``: ``fn(imp, node)`` — the one rewrite of an ONNX op (standard domain only):
  it emits layers (``imp.emit``) or raises :class:`~cnncalc.interop.onnx.common.Unmapped`
  (why it has no exact form; ``hard=True`` for an invalid model), after which the driver tries
  the low-level vocabulary (:mod:`cnncalc.interop.onnx.lower`) and then an opaque layer.
  A node rewrite may look ahead (``consumer``) and take later nodes with it (``imp.skip``), or
  leave a *pending* tensor for a later rewrite to fold (a zero Pad into the next Conv).
* ``stage="within"``: a pattern the node rewrite of its op calls at a fixed point of its own
  checks (GroupNorm and the channel shuffle, inside Reshape's rewrite): never called by the
  driver; registered so that it is listed and must have a test.
* ``stage="lift"``: ``fn(lift, item) -> bool`` — a graph-level pass over spec items: run on
  each item an ONNX node was just *lowered* to (the low-level vocabulary: ``matmul``,
  ``binary``, ``softmax``, ``transpose``, …) whose kind is one of ``ops`` (spec layer types,
  not ONNX ops), it matches a pattern backwards over the items already emitted and folds or
  replaces them with a readable layer through :class:`~cnncalc.interop.onnx.common.Lift`
  (``fold_into``, ``replace``). It runs right after that node, so a removed item frees its
  name and the names of later layers do not move. Example: ``linear.fc_bias`` (an fc, then a
  low-level add of one value per unit: the fc's bias); an ``attention`` lift (MatMul · Softmax
  · MatMul) is the same shape: ``ops=("matmul",)``, walk ``lift.producer`` back to the softmax
  and the first matmul, check ``lift.uses`` of the intermediates, ``lift.replace([...], Item(
  "attention", ...))``.

Adding a rewrite: one function in its family's module, decorated::

    @rewrite("LRN", family="norm", lifts="lrn")
    def lrn(imp, node):
        imp.emit(node, "lrn", {...}, [node.input[0]])

and one test in tests/interop/rewrites/test_norm.py marked ``@covers("lrn")`` (the name of
the rewrite: the function's name unless ``name=`` says otherwise). A new family is a new module
here, its name added to ``FAMILIES`` (which fixes the order of the listing), and its own
tests/interop/rewrites/test_<family>.py. ``registered(rw, ...)`` adds rewrites for the length
of a ``with`` block (tests, experiments).
"""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

FAMILIES = ("conv", "tokens", "linear", "norm", "activation", "pool", "arith", "shape", "attention", "relbias",
            "constant")  # (tokens before linear: its mlp lift sees the MLP's last Add before token_fc)
STAGES = ("region", "node", "within", "lift")


@dataclass(frozen=True)
class Rewrite:
    """One registered pattern."""
    name: str  # unique; tests name it in @covers(...)
    family: str  # the module it lives in (FAMILIES)
    ops: tuple  # the ONNX ops it starts from (stage "lift": the spec layer types it starts from)
    fn: Callable = field(compare=False, repr=False)
    stage: str = "node"  # "region" | "node" | "within" | "lift" (see the module's docstring)
    lifts: str = ""  # what it produces, for the listing: "conv / dwconv", "layernorm over the channels"
    doc: str = ""  # one line: the pattern it matches


_REGISTERED: list[Rewrite] = []
_NODE: dict[str, Rewrite] = {}
_loaded = False


def register(rw: Rewrite) -> Rewrite:
    """Add ``rw`` to the registry (a name twice, or a second node rewrite of an op, is an error)."""
    if rw.stage not in STAGES:
        raise ValueError(f"rewrite {rw.name!r}: stage {rw.stage!r} is not one of {STAGES}")
    if rw.family not in FAMILIES:
        raise ValueError(f"rewrite {rw.name!r}: family {rw.family!r} is not one of {FAMILIES}")
    if any(r.name == rw.name for r in _REGISTERED):
        raise ValueError(f"rewrite {rw.name!r} is registered twice")
    if rw.stage == "node":
        for op in rw.ops:
            if op in _NODE:
                raise ValueError(f"ONNX op {op} has two node rewrites: {_NODE[op].name!r} and {rw.name!r}")
    _REGISTERED.append(rw)
    if rw.stage == "node":
        for op in rw.ops:
            _NODE[op] = rw
    return rw


def rewrite(*ops: str, family: str, name: str | None = None, stage: str = "node", lifts: str = ""):
    """Decorator: register ``fn`` as a rewrite starting from the ONNX ops ``ops``; the first line
    of its docstring is its description."""
    def deco(fn):
        doc = " ".join((fn.__doc__ or "").split())
        doc = doc.split(". ")[0].removesuffix(".")  # its first sentence
        register(Rewrite(name or fn.__name__.rstrip("_"), family, tuple(ops), fn, stage, lifts, doc))
        return fn
    return deco


def _load():
    global _loaded
    if not _loaded:
        _loaded = True
        for fam in FAMILIES:
            importlib.import_module(f"{__name__}.{fam}")


def registry() -> tuple[Rewrite, ...]:
    """Every rewrite, in a fixed order: by family (FAMILIES), then stage, then registration."""
    _load()
    return tuple(sorted(_REGISTERED, key=lambda r: (FAMILIES.index(r.family), STAGES.index(r.stage))))


def node_rewrite(op: str) -> Callable | None:
    """The function that imports one ``op`` node, or None when no rewrite starts from it."""
    _load()
    rw = _NODE.get(op)
    return rw.fn if rw is not None else None


_REGION_CACHE: dict[str, tuple] = {}


def region_rewrites(op: str) -> tuple:
    """The region functions tried at a node of ``op``, in registry order."""
    got = _REGION_CACHE.get(op)
    if got is None:
        got = _REGION_CACHE[op] = tuple(r.fn for r in registry() if r.stage == "region" and op in r.ops)
    return got


_LIFTS: list = []


def lift_rewrites() -> tuple[Rewrite, ...]:
    """The rewrites of stage "lift" (run over the items each lowered node became), in registry order."""
    if not _LIFTS:
        _LIFTS.append(tuple(r for r in registry() if r.stage == "lift"))
    return _LIFTS[0]


@contextmanager
def registered(*rws: Rewrite):
    """Register ``rws`` for the duration of a ``with`` block (a test's or an experiment's
    rewrite), then remove them again."""
    _load()
    for rw in rws:
        register(rw)
    _REGION_CACHE.clear()
    _LIFTS.clear()
    try:
        yield rws
    finally:
        for rw in rws:
            if rw in _REGISTERED:
                _REGISTERED.remove(rw)
            for op in rw.ops:
                if _NODE.get(op) is rw:
                    del _NODE[op]
        _REGION_CACHE.clear()
        _LIFTS.clear()


def listing() -> str:
    """The registry as text (``cnncalc import --list-rewrites``; docs/interop.md)."""
    lines = []
    for fam in FAMILIES:
        rs = [r for r in registry() if r.family == fam]
        if not rs:
            continue
        lines.append(f"{fam}:")
        for r in rs:
            start = ", ".join(r.ops)
            stage = {"node": "", "within": f" [within {start}]"}.get(r.stage, f" [{r.stage}]")
            lines.append(f"  {r.name}{stage}: {start} -> {r.lifts or '?'}" + (f"  ({r.doc})" if r.doc else ""))
    return "\n".join(lines)
