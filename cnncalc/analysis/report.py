"""The Report: per-layer statistics and totals, the numbers every command renders.

``analyze(graph)`` runs the passes in order: shapes (graph.infer) → parameter and
operation counts (read off each layer) → memory (elements, bytes, liveness).
All numbers are exact ints.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cnncalc._gc import paused_gc
from cnncalc._record import FACTORY, Record
from cnncalc.analysis.memory import peaks, saved_tensors, tensor_intervals
from cnncalc.errors import CnnCalcError
from cnncalc.graph import INPUT, Graph
from cnncalc.shapes import Shape, fmt_int, kind_key, numel

DTYPES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}
OP_KINDS = ("bias", "activation", "pool", "add", "mul", "norm", "interp")


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPES[dtype]
    except KeyError:
        raise CnnCalcError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}") from None


# LayerStats and Report are dataclasses (``dataclasses.asdict/fields/replace`` work on what
# ``cnncalc.analyze`` returns) whose ``__init__``, repr and ``==`` are written out, as
# ``@dataclass`` would write them (repr and ``==`` from cnncalc._record): generating them costs
# every cold start about 5 M instructions per class.
@dataclass(init=False, repr=False, eq=False)
class LayerStats(Record):
    """One row of the report: a layer's shape, counts and memory (all exact ints)."""
    name: str
    type: str
    inputs: list[str]
    shape: Shape
    description: str = ""
    weights: int = 0
    biases: int = 0
    nontrainable: int = 0
    activations: int = 0  # elements of the output, times batch
    activation_bytes: int = 0
    view: bool = False  # output aliases the input: no new memory
    macs: int = 0
    # training: backward MACs (see training_macs below); 0 for layers without MACs
    input_grad_macs: int = 0
    weight_grad_macs: int = 0
    ops: dict = field(default_factory=dict)
    explain: list[str] = field(default_factory=list)
    line: int | None = None
    type_key: str = ""
    saved_bytes: int = 0  # what autograd keeps for this layer's backward (storages new here)
    # (not fields: rows of layers that write tensors inside them, attention's heads x N x N, and
    # whose MACs split over the keys of summarize --by type)
    internal = 0
    mac_parts = None

    def __init__(self, name: str, type: str, inputs: list[str], shape: Shape, description: str = "",
                 weights: int = 0, biases: int = 0, nontrainable: int = 0, activations: int = 0,
                 activation_bytes: int = 0, view: bool = False, macs: int = 0, input_grad_macs: int = 0,
                 weight_grad_macs: int = 0, ops: dict = FACTORY, explain: list[str] = FACTORY,
                 line: int | None = None, type_key: str = "", saved_bytes: int = 0):
        self.name = name
        self.type = type
        self.inputs = inputs
        self.shape = shape
        self.description = description
        self.weights = weights
        self.biases = biases
        self.nontrainable = nontrainable
        self.activations = activations
        self.activation_bytes = activation_bytes
        self.view = view
        self.macs = macs
        self.input_grad_macs = input_grad_macs
        self.weight_grad_macs = weight_grad_macs
        self.ops = {} if ops is FACTORY else ops
        self.explain = [] if explain is FACTORY else explain
        self.line = line
        self.type_key = type_key
        self.saved_bytes = saved_bytes

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def trainable(self) -> int:
        return self.weights + self.biases

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def training_macs(self) -> int:
        """Forward + input-gradient + weight-gradient MACs of one training step."""
        return self.macs + self.input_grad_macs + self.weight_grad_macs

    @property
    def group(self) -> tuple[str, ...]:
        return tuple(self.name.split("/")[:-1])

    def to_dict(self, with_bias: bool = True) -> dict:
        return {
            "name": self.name, "type": self.type, "inputs": list(self.inputs), "shape": list(self.shape),
            **kind_key(self.shape),
            "params": self.params if with_bias else self.weights, "weights": self.weights,
            "biases": self.biases, "trainable": self.trainable, "nontrainable": self.nontrainable,
            "activations": self.activations, "activation_bytes": self.activation_bytes,
            "view": self.view, "macs": self.macs, "flops": self.flops,
            "input_grad_macs": self.input_grad_macs, "weight_grad_macs": self.weight_grad_macs,
            "training_macs": self.training_macs, "saved_bytes": self.saved_bytes,
            "ops": dict(self.ops), "description": self.description,
            **({"internal_activations": self.internal} if self.internal else {}),
            **({"line": self.line} if self.line else {}),
        }


@dataclass(init=False, repr=False, eq=False)
class Report(Record):
    """Per-layer rows and totals of one network: what every command renders."""
    name: str
    source: str | None
    input_shape: Shape
    batch: int
    dtype: str
    layers: list[LayerStats]
    totals: dict
    memory: dict
    file: str | None = None
    with_bias: bool = True
    peak_at: str = ""

    def __init__(self, name: str, source: str | None, input_shape: Shape, batch: int, dtype: str,
                 layers: list[LayerStats], totals: dict, memory: dict, file: str | None = None,
                 with_bias: bool = True, peak_at: str = ""):
        self.name = name
        self.source = source
        self.input_shape = input_shape
        self.batch = batch
        self.dtype = dtype
        self.layers = layers
        self.totals = totals
        self.memory = memory
        self.file = file
        self.with_bias = with_bias
        self.peak_at = peak_at

    def __getitem__(self, name: str) -> LayerStats:
        for row in self.layers:
            if row.name == name:
                return row
        if name == INPUT:
            n = self.totals["input"]
            return LayerStats(name=INPUT, type="input", inputs=[], shape=self.input_shape,
                              description="input", activations=n,
                              activation_bytes=n * self.memory["bytes_per_element"])
        raise KeyError(f"no layer named {name!r} in {self.name}")

    def __contains__(self, name: str) -> bool:
        return name == INPUT or any(r.name == name for r in self.layers)

    def __iter__(self):
        return iter(self.layers)

    def _repr_html_(self) -> str:
        """Jupyter: the table of ``cnncalc summarize`` with its totals (cnncalc.results)."""
        from cnncalc.results import summary_html

        return summary_html(self, None)

    def to_pandas(self):
        """One pandas DataFrame row per layer, indexed by name (needs pandas)."""
        from cnncalc.results import report_frame

        return report_frame(self)

    def to_dict(self, *, lazy: bool = False) -> dict:
        """``lazy``: ``layers`` is a generator of the rows' dicts (a writer that streams them
        never holds them all), not a list."""
        rows = (r.to_dict(self.with_bias) for r in self.layers)
        return {
            "name": self.name, "source": self.source, "input": list(self.input_shape),
            **{f"input_{k}": v for k, v in kind_key(self.input_shape).items()},
            "batch": self.batch, "dtype": self.dtype, "biases_counted": self.with_bias,
            "layers": rows if lazy else list(rows),
            "totals": dict(self.totals), "memory": dict(self.memory),
        }


# the fields a row takes from the first row counted the same, between type and input_grad_macs
_SHARED = ("shape", "description", "weights", "biases", "nontrainable", "activations",
           "activation_bytes", "view", "macs")
# (__match_args__ is set by @dataclass: the fields in order)
LayerStats._fields = LayerStats.__match_args__
Report._fields = Report.__match_args__


def analyze_graph(graph: Graph, *, batch: int = 1, dtype: str = "float32", bias: bool = True,
                  input_shape: Shape | None = None, explain: bool = False) -> Report:
    with paused_gc():
        return _analyze(graph, batch, dtype, bias, input_shape, explain)


def _analyze(graph, batch, dtype, bias, input_shape, explain) -> Report:
    if batch < 1:
        raise CnnCalcError("--batch must be at least 1")
    nbytes = dtype_bytes(dtype)
    graph.infer(input_shape)
    rows: list[LayerStats] = []
    sizes: dict[str, int] = {INPUT: numel(graph.input_shape) * batch}
    # does the gradient reach this layer's output? only if a trainable tensor lies upstream of it
    grad_flows: dict[str, bool] = {INPUT: False}
    # copies of one layer on the same input shapes (replayed module instances) count the same:
    # their rows are copies of the first one's, with their own name, inputs and line
    counted: dict[tuple, list] = {}
    # the totals are summed per distinct row: [its fields, how many rows have them]
    distinct: list[list] = []
    new = object.__new__
    dx_macs = 0
    internal: dict[str, int] = {}  # values written inside a layer (attention's scores), per layer
    for node in graph.nodes.values():
        layer = node.layer
        if layer is None:  # (the input)
            continue
        # (graph.infer gives a copy its first's in_shapes list: the same object, the same shapes)
        key = (layer.__class__, id(layer.args), layer.activation, layer.rounding, id(layer.in_shapes))
        entry = counted.get(key)
        if entry is None:
            w = b = 0
            for shape, role in layer.param_shapes().values():
                if role == "weight":
                    w += numel(shape)
                else:
                    b += numel(shape)
            uses = w + b > 0  # (its own parameters, or those it shares: a weight gradient per use)
            if layer.args.get("shares"):  # counted once, at the layer that holds them
                w = b = 0
            elems = numel(layer.out_shape) * batch
            m = layer.macs() * batch
            tmpl = {"type": layer.kind, "shape": layer.out_shape, "description": layer.describe(),
                    "weights": w, "biases": b, "nontrainable": sum(numel(s) for s in layer.state_shapes().values()),
                    "activations": elems, "activation_bytes": elems * nbytes, "view": layer.view,
                    "macs": m, "input_grad_macs": 0,
                    "weight_grad_macs": (layer.weight_grad_macs() * batch if layer.weight_grad_macs is not None
                                         else m if uses else 0),
                    "ops": {k: v * batch for k, v in layer.ops().items()}, "type_key": type_key(layer),
                    "internal": layer.internal_activations() * batch,
                    "mac_parts": ({k: v * batch for k, v in layer.mac_parts().items()}
                                  if layer.mac_parts is not None else None)}
            entry = [tmpl, 0, uses, 0 if tmpl["view"] else elems,
                     tuple(tmpl[f] for f in _SHARED), {}]
            distinct.append(entry)
            counted[key] = entry
        tmpl = entry[0]
        entry[1] += 1
        # Every forward MAC multiplies one input value by one weight (conv, grouped/depthwise,
        # transposed, locally connected, fc). Backward repeats each product once for the input
        # gradient (dX += w·dY) and once for the weight gradient (dW += x·dY): the same count
        # each, under the same convention (padding positions included, as in forward). The input
        # gradient is skipped when no trainable tensor lies upstream (e.g. the first conv).
        inputs = node.inputs
        if len(inputs) == 1:
            needs_dx = grad_flows.get(inputs[0], False)
        else:
            needs_dx = False
            for i in inputs:
                if grad_flows.get(i, False):
                    needs_dx = True
                    break
        name = node.name
        # a row's own attributes, set in the order __init__ sets them (so that rows keep
        # their values inline, as instances made by __init__ do: less memory, faster reads)
        row = new(LayerStats)
        row.name = name
        row.type = tmpl["type"]
        row.inputs = list(inputs)
        (row.shape, row.description, row.weights, row.biases, row.nontrainable, row.activations,
         row.activation_bytes, row.view, row.macs) = entry[4]
        if needs_dx:
            m = tmpl["macs"]
            if m and layer.input_grad_macs is not None:  # a matmul of two activations: one per flowing input
                m = layer.input_grad_macs([grad_flows.get(i, False) for i in inputs]) * batch
            dx_macs += m
            row.input_grad_macs = m
        else:
            row.input_grad_macs = 0
        row.weight_grad_macs = tmpl["weight_grad_macs"]
        row.ops = tmpl["ops"].copy()
        row.explain = []
        row.line = node.line
        row.type_key = tmpl["type_key"]
        row.saved_bytes = 0
        if tmpl["internal"]:
            row.internal = tmpl["internal"]
            internal[name] = tmpl["internal"]
        if tmpl["mac_parts"] is not None:
            row.mac_parts = tmpl["mac_parts"]
        grad_flows[name] = needs_dx or entry[2]
        sizes[name] = entry[3]
        if explain:
            # write an fc layer after a flatten as the slides do: 7*7*512*4096, not 25088*4096
            src = graph[node.inputs[0]] if node.inputs else None
            layer.in_factors = (src.layer.in_shapes[0] if src is not None and src.layer is not None
                                and src.kind == "flatten" else None)
            # copies counted the same explain the same (their lines are made once per copy's
            # in_factors; each row gets its own list)
            lines = entry[5].get(layer.in_factors)
            if lines is None:
                lines = entry[5][layer.in_factors] = explain_layer(layer, batch, bias)
            row.explain = lines.copy()
            if row.macs:
                dx = (f"{fmt_int(row.input_grad_macs)} input gradient" if row.input_grad_macs
                      else "no input gradient (nothing trainable upstream)")
                row.explain.append(f"training MACs: {fmt_int(row.macs)} forward + {dx} + "
                                   f"{fmt_int(row.weight_grad_macs)} weight gradient = {fmt_int(row.training_macs)}")
        rows.append(row)

    weights = biases = nontrain = macs = dw_macs = acts = 0
    ops = dict.fromkeys(OP_KINDS, 0)
    for tmpl, n, _, _, _, _ in distinct:
        weights += tmpl["weights"] * n
        biases += tmpl["biases"] * n
        nontrain += tmpl["nontrainable"] * n
        macs += tmpl["macs"] * n
        dw_macs += tmpl["weight_grad_macs"] * n
        if not tmpl["view"]:
            acts += tmpl["activations"] * n
        acts += tmpl["internal"] * n
        for k, v in tmpl["ops"].items():
            if k in ops:
                ops[k] += v * n
    trainable = weights + biases
    input_elems = sizes[INPUT]
    totals = {
        "params": trainable if bias else weights, "trainable": trainable, "nontrainable": nontrain,
        "weights": weights, "biases": biases, "params_with_state": trainable + nontrain,
        "activations": acts, "input": input_elems, "macs": macs, "flops": 2 * macs,
        "ops": ops, "layers": len(rows),
        "input_grad_macs": dx_macs, "weight_grad_macs": dw_macs,
        "training_macs": macs + dx_macs + dw_macs, "training_flops": 2 * (macs + dx_macs + dw_macs),
        # layers whose MACs are unknown (opaque ops kept from an imported model): the MAC and
        # FLOP totals are then lower bounds
        "macs_unknown": [r.name for r in rows if r.type == "opaque"],
    }
    intervals = tensor_intervals(graph, sizes)
    peak_elems, peak_at, grad_peak = peaks(graph, sizes, intervals, internal)
    # what autograd keeps for backward, as PyTorch keeps it (cnncalc.analysis.saved)
    kept = saved_tensors(graph, batch, nbytes, detail=explain)
    per_layer = kept.per_layer
    layers = graph.layers if explain else None  # (a new list per call: once, not per row)
    for row in rows:
        row.saved_bytes = per_layer[row.name]
        if explain:
            row.explain.append(_explain_saved(kept.keeps[row.name], kept.first, row.name, layers))
    totals["saved_bytes"] = kept.total
    param_bytes = (trainable + nontrain) * nbytes
    memory = {
        "bytes_per_element": nbytes,
        "input_bytes": input_elems * nbytes,
        "forward_bytes": acts * nbytes,
        # what cnncalc's runtime keeps for backward (every output; `cnncalc verify` checks it)
        "backward_saved_bytes": (input_elems + acts) * nbytes,
        # what PyTorch's autograd keeps (cnncalc.analysis.saved; tests hold it against torch)
        "autograd_saved_bytes": kept.total,
        "activation_gradient_peak_bytes": grad_peak * nbytes,
        "params_bytes": param_bytes,
        "gradients_bytes": trainable * nbytes,
        "optimizer_bytes": trainable * nbytes,
        "training_total_bytes": param_bytes + 2 * trainable * nbytes + (input_elems + acts + grad_peak) * nbytes,
        "inference_peak_bytes": peak_elems * nbytes + param_bytes,
        "inference_peak_activation_bytes": peak_elems * nbytes,
        "rule_of_thumb_bytes": 2 * (input_elems + acts) * nbytes,
    }
    return Report(name=graph.name, source=graph.source, input_shape=graph.input_shape, batch=batch,
                  dtype=dtype, layers=rows, totals=totals, memory=memory, file=graph.file,
                  with_bias=bias, peak_at=peak_at)


def _explain_saved(keeps, first, name, layers) -> str:
    """'saved for backward: input 802,816 B + … = …' (a storage an earlier layer keeps counts
    there, not here; ``layers``: the graph's layers in order, which ``first`` indexes)."""
    if not keeps:
        return "saved for backward: nothing"
    parts, total = [], 0
    for key, size, what in keeps:
        owner = layers[first[key]].name
        if owner == name:
            parts.append(f"{what} {fmt_int(size)} B")
            total += size
        else:
            parts.append(f"{what} (kept by {owner}: 0 B here)")
    return "saved for backward: " + " + ".join(parts) + f" = {fmt_int(total)} B"


def type_key(layer) -> str:
    """The row of a by-type table (MobileNet's Table 2): 'conv 1x1', 'conv dw 3x3', 'fc'…"""
    k = layer.kind
    if k in ("conv", "dwconv") and layer.out_shape:
        kern = "x".join(map(str, layer.kernel))
        if layer.groups == layer.in_channels and layer.groups > 1:
            return f"conv dw {kern}"
        if layer.groups > 1:
            return f"conv {kern} (groups {layer.groups})"
        return f"conv {kern}"
    return k


def explain_layer(layer, batch: int, with_bias: bool) -> list[str]:
    out = [f"shape: {s}" for s in layer.explain_shape()]
    p = layer.explain_params(with_bias)
    if p:
        out.append(f"params: {p}")
    shape = layer.out_shape
    b = f"{batch}*" if batch > 1 else ""
    mem = f"memory: {b}{'*'.join(map(str, shape))} = {fmt_int(numel(shape) * batch)}"
    if layer.view:
        mem += " (a view of its input: no new memory)"
    out.append(mem)
    inside = layer.explain_memory()
    if inside:
        out.append(f"memory {inside}" + (f" per image, *{batch}" if batch > 1 else ""))
    o = layer.explain_ops()
    if o:
        out.append(f"ops: {o}")
    m = layer.explain_macs()
    if m:
        out.append(f"MACs: {m}" + (f" per image, *{batch} = {fmt_int(layer.macs() * batch)}" if batch > 1 else ""))
    return out
