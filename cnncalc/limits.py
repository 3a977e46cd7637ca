"""Every resource a spec or an answer file can make cnncalc spend, bounded in one place.

Each limit has a name, a value and a way to raise it: an environment variable
``CNNCALC_LIMIT_<NAME>`` (e.g. ``CNNCALC_LIMIT_SPEC_BYTES=50000000``). Hitting a limit is
bad input (exit 2) with a message naming the limit and how to raise it; see docs/limits.md
(a test checks that it lists every limit here).
"""
from __future__ import annotations

import os

from cnncalc._record import FrozenRecord


class Limit(FrozenRecord):
    """A named bound with its default and what it bounds. (Frozen, with a dataclass's repr and
    equality; see cnncalc._record.)"""
    _fields = ("name", "default", "what")
    __match_args__ = _fields

    def __init__(self, name: str, default: int, what: str):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "what", what)

    @property
    def env(self) -> str:
        return f"CNNCALC_LIMIT_{self.name.upper()}"

    @property
    def value(self) -> int:
        raw = os.environ.get(self.env)
        if raw:
            try:
                v = int(raw.replace("_", "").replace(",", ""))
                if v > 0:
                    return v
            except ValueError:
                pass
        return self.default

    def how_to_raise(self) -> str:
        return f"limit {self.name} = {self.value:,}; raise it with {self.env}=N if this input is really meant"


LIMITS: dict[str, Limit] = {lim.name: lim for lim in (
    Limit("spec_bytes", 200_000, "size of a spec or answer file, in bytes (the safe YAML parser reads ~100 KB/s)"),
    Limit("yaml_depth", 100, "nesting depth of YAML mappings and lists"),
    Limit("yaml_nodes", 1_000_000, "YAML values after expanding aliases (*ref), so alias bombs stop early"),
    Limit("expansion_steps", 100_000,
          "items expanded (every repeat and module instance, including those 'when: false' drops)"),
    Limit("module_calls", 5_000, "module instances expanded (a module that calls itself twice doubles them)"),
    Limit("layers", 50_000, "layers in the expanded graph"),
    Limit("module_depth", 32, "modules and named blocks nested in one another"),
    Limit("expr_chars", 500, "characters of one ${...} expression"),
    Limit("expr_nodes", 200, "operators, names and numbers in one ${...} expression"),
    Limit("int_digits", 30, "decimal digits of an integer in a spec or an expression result (10^30)"),
    Limit("string_chars", 10_000, "characters of a string made by an expression or a name"),
    Limit("onnx_nodes", 100_000,
          "nodes of an ONNX graph that import or summarize reads (twice the layers limit: a layer "
          "exports as one or two nodes)"),
    Limit("onnx_external_bytes", 4 * 2 ** 30,
          "bytes of external tensor data (<name>.onnx.data beside the model) that import or summarize "
          "reads into memory (import --weights peaks at about six times it: the tensors, the float32 "
          "weights, the check's float64 ones, onnxruntime's)"),
    Limit("runtime_bytes", 8 * 2 ** 30,
          "memory a command that runs or writes a network may need (train, evaluate, verify, gradcheck, "
          "erf, export: parameters, gradients, optimizer state and activations, estimated by the "
          "analyzer before anything is allocated)"),
)}


_cache: dict[str, int] = {}


def get(name: str) -> int:
    """The limit's value (the environment is read once per process; see :func:`reload`)."""
    v = _cache.get(name)
    if v is None:
        v = _cache[name] = LIMITS[name].value
    return v


def reload() -> None:
    """Forget cached values (after changing CNNCALC_LIMIT_* in this process, e.g. in tests)."""
    _cache.clear()


def exceeded(name: str, what: str):
    """The SpecError to raise when ``what`` goes over limit ``name``."""
    from cnncalc.errors import SpecError

    lim = LIMITS[name]
    return SpecError(f"{what}: over the limit on {lim.what}", hint=lim.how_to_raise())


# what each command that allocates keeps per parameter and per activation value, in copies of
# its element type (the estimate is a floor: what cannot fit certainly does not run)
MEMORY_PROFILES = {
    # command: (bytes per element, copies of the parameters and state, copies of input + activations)
    "gradcheck": (8, 3, 3),   # float64: values, gradients, a working copy
    "verify": (8, 3, 3),
    "erf": (8, 3, 3),
    "train": (4, 4, 3),       # float32: weights, gradients, momentum, a saved copy; activations kept for backward, their gradients
    "evaluate": (4, 2, 2),    # forward only
    "bench": (4, 4, 3),       # times forward passes and training steps: as train
    "export": (4, 3, 0),      # the weights as arrays, as initializers/tensors, serialized
    # ONNX over 2 GiB: each tensor goes to the .data file as the model is made, from the arrays
    "export-external": (4, 1, 0),
}


def memory_needed(graph, *, batch: int, command: str) -> int:
    """Bytes ``command`` needs at least to run ``graph`` at ``batch``, from the analyzer's counts
    (nothing is allocated): see :data:`MEMORY_PROFILES`."""
    from cnncalc.analysis.report import analyze_graph

    size, p_copies, a_copies = MEMORY_PROFILES[command]
    t = analyze_graph(graph, batch=batch).totals
    return size * (p_copies * (t["trainable"] + t["nontrainable"]) + a_copies * (t["input"] + t["activations"]))


def check_memory(graph, *, batch: int, command: str) -> int:
    """Refuse (exit 2, naming the limit) before allocating anything what ``command`` could not
    hold: a 10^12-element spec analyses in milliseconds, running it would ask for terabytes.
    Returns the estimate. (``command``: a key of :data:`MEMORY_PROFILES`; the message names
    the command, "export" for "export-external".)"""
    need, cap = memory_needed(graph, batch=batch, command=command), get("runtime_bytes")
    if need > cap:
        from cnncalc.errors import SpecError

        size = MEMORY_PROFILES[command][0]
        command = command.split("-")[0]
        raise SpecError(f"{command} of {graph.name} (batch {batch}) needs at least {need / 2 ** 30:,.1f} GiB "
                        f"(float{size * 8} parameters, activations and what {command} keeps with them), "
                        f"over the {cap / 2 ** 30:,.0f} GiB limit; try a smaller --input or --batch",
                        hint=LIMITS["runtime_bytes"].how_to_raise())
    return need


def lean_forward_bytes(graph, *, size: int = 8) -> int:
    """Bytes a lean inference forward of a Net given its weights (``Net(weights=...)``,
    ``forward(lean=True)``, one sample) needs at least: the parameters and state once as
    float32 (the imported arrays), and at the layer where it is largest, that layer's
    parameters in elements of ``size`` bytes (made while it runs) with its inputs and output,
    which must be alive together (a floor: nothing else is counted). What ``import``'s check
    runs: no gradients, no caches, no copies per command."""
    import math

    from cnncalc.analysis.report import analyze_graph

    r = analyze_graph(graph, batch=1)
    # a view holds no memory of its own: reading it keeps its source's values alive
    acts, root = {"input": r.totals["input"]}, {"input": "input"}
    for row in r.layers:
        view = getattr(row, "view", False) and row.inputs
        root[row.name] = root.get(row.inputs[0], row.inputs[0]) if view else row.name
        acts[row.name] = 0 if view else row.activations
    own = {n.name: sum(math.prod(sh) for sh, _ in n.layer.param_shapes().values()) for n in graph.layers}
    peak = max((own[row.name] + acts[row.name] + sum(acts.get(src, 0) for src in {root.get(i, i) for i in row.inputs})
                for row in r.layers), default=0)
    return 4 * (r.totals["trainable"] + r.totals["nontrainable"]) + size * max(peak, r.totals["input"])


def onnx_weight_bytes(graph) -> int:
    """Bytes of an ONNX export's float32 weights (parameters and state)."""
    from cnncalc.analysis.report import analyze_graph

    t = analyze_graph(graph, batch=1).totals
    return 4 * (t["trainable"] + t["nontrainable"])


def max_int() -> int:
    v = _cache.get("_max_int")
    if v is None:
        v = _cache["_max_int"] = 10 ** get("int_digits")
    return v


def check_int(v: int, where: str = "a number") -> int:
    """Refuse integers beyond 10^int_digits (they would make every later step slow)."""
    if abs(v) >= max_int():
        raise exceeded("int_digits", f"{where} has more than {get('int_digits')} digits")
    return v
