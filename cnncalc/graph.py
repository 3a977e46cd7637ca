"""The layer graph: a DAG of named nodes in topological order, each holding one Layer.

The loader builds it; ``Graph.infer()`` runs shape inference (every error located at the
spec line of the layer that caused it); analysis passes and the runtime read it.
"""
from __future__ import annotations

from itertools import chain

from cnncalc._record import Record
from cnncalc.errors import SpecError
from cnncalc.layers.base import Layer
from cnncalc.shapes import Shape

INPUT = "input"


class Node(Record):
    """One named node: its layer (None for the input), the names it reads, where the spec
    wrote it. (Repr and equality as a dataclass's; see cnncalc._record.)"""
    _fields = ("name", "layer", "inputs", "line", "trace", "is_output", "_shape")
    __match_args__ = _fields

    def __init__(self, name: str, layer: Layer | None, inputs: list[str], line: int | None = None,
                 trace: str = "", is_output: bool = False, _shape: Shape = ()):
        self.name = name
        self.layer = layer  # None for the input node
        self.inputs = inputs
        self.line = line
        self.trace = trace  # e.g. "in module 'inception' used at line 40"
        self.is_output = is_output  # marked `output: true`: an intended second output (an aux head)
        self._shape = _shape

    @property
    def kind(self) -> str:
        return self.layer.kind if self.layer is not None else "input"

    @property
    def shape(self) -> Shape:
        return self.layer.out_shape if self.layer is not None else self._shape

    @property
    def group(self) -> tuple[str, ...]:
        """The enclosing module instances / blocks, from the hierarchical name."""
        return tuple(self.name.split("/")[:-1])


class Graph(Record):
    """The nodes by name, in topological order, and the spec's header. (Repr and equality as a
    dataclass's; see cnncalc._record.)"""
    _fields = ("name", "input_shape", "nodes", "source", "file", "rounding", "description", "inferred")
    __match_args__ = _fields

    def __init__(self, name: str, input_shape: Shape, nodes: dict[str, Node] | None = None,
                 source: str | None = None, file: str | None = None, rounding: str = "exact",
                 description: str | None = None, inferred: bool = False):
        self.name = name
        self.input_shape = input_shape
        self.nodes = {} if nodes is None else nodes
        self.source = source
        self.file = file
        self.rounding = rounding
        self.description = description
        self.inferred = inferred
        if INPUT not in self.nodes:
            self.nodes = {INPUT: Node(INPUT, None, []), **self.nodes}

    # -- construction ---------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise SpecError(f"the layer name {node.name!r} is used twice", file=self.file, line=node.line,
                            layer=node.name, hint="give each layer a unique name")
        for src in node.inputs:
            if src not in self.nodes:
                raise SpecError(f"input {src!r} is not a layer defined before this one",
                                file=self.file, line=node.line, layer=node.name,
                                hint="name an earlier layer (or 'input')")
        self.nodes[node.name] = node
        self.inferred = False
        return node

    # -- queries --------------------------------------------------------------------------
    def __iter__(self):
        return iter(self.nodes.values())

    def __len__(self):
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    @property
    def layers(self) -> list[Node]:
        """Every node except the input, in topological order."""
        return [n for n in self.nodes.values() if n.layer is not None]

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {name: [] for name in self.nodes}
        for n in self.nodes.values():
            for src in n.inputs:
                out[src].append(n.name)
        return out

    def _read(self) -> set[str]:
        """The names some node reads (``consumers()`` without a list per node)."""
        return set(chain.from_iterable([n.inputs for n in self.nodes.values()]))

    def unconsumed(self) -> list[str]:
        """Layers whose output nothing reads, other than the last layer and those marked
        ``output: true``: usually a branch left dangling by mistake (it is still counted)."""
        read, nodes = self._read(), self.nodes
        last = next(reversed(nodes))
        return [name for name in nodes
                if name not in read and name not in (INPUT, last) and not nodes[name].is_output]

    @property
    def outputs(self) -> list[str]:
        read = self._read()
        return [name for name in self.nodes if name not in read and name != INPUT] or [INPUT]

    # -- display (Jupyter, pandas): cnncalc.results, imported only when used ---------------
    def _repr_html_(self) -> str:
        """Jupyter: the table of ``cnncalc summarize`` and the layer graph."""
        from cnncalc.analysis.report import analyze_graph
        from cnncalc.results import summary_html

        return summary_html(analyze_graph(self), self)

    def to_pandas(self):
        """One DataFrame row per layer (batch 1, float32; ``cnncalc.summary`` takes options)."""
        from cnncalc.analysis.report import analyze_graph
        from cnncalc.results import report_frame

        return report_frame(analyze_graph(self))

    # -- shape inference ------------------------------------------------------------------
    def infer(self, input_shape: Shape | None = None) -> "Graph":
        """Infer every node's output shape in topological order (idempotent)."""
        if input_shape is not None and tuple(input_shape) != self.input_shape:
            self.input_shape = tuple(input_shape)
            self.inferred = False
        if self.inferred:
            return self
        self.nodes[INPUT]._shape = self.input_shape
        shapes: dict[str, Shape] = {INPUT: self.input_shape}
        # Copies of one layer (the loader's replayed module instances share their validated
        # args) on the same input shapes infer the same state: take it from the first one.
        done: dict[tuple, Layer] = {}
        for node in self.nodes.values():
            layer = node.layer
            if layer is None:
                continue
            inputs = node.inputs
            ins = (shapes[inputs[0]],) if len(inputs) == 1 else tuple([shapes[s] for s in inputs])
            key = (layer.__class__, id(layer.args), layer.activation, layer.rounding, ins)
            first = done.get(key)
            if first is not None:
                d = layer.__dict__
                fd = first.__dict__.copy()
                fd["name"] = d["name"]
                fd["in_factors"] = d.get("in_factors")
                layer.__dict__ = fd
                shapes[node.name] = fd["out_shape"]
                continue
            try:
                shapes[node.name] = layer.infer(ins, self.rounding)
                done[key] = layer
            except SpecError as e:
                if node.trace and node.trace not in (e.hint or ""):
                    e.hint = (e.hint + f" ({node.trace})") if e.hint else node.trace
                raise e.located(file=self.file, line=node.line, layer=node.name)
        self._check_shared()
        self.inferred = True
        return self

    def _check_shared(self):
        """``shares: <layer>``: an earlier layer of the same kind that holds its own parameters,
        of the same shapes (what a module called twice is)."""
        seen = set()
        for node in self.nodes.values():
            layer = node.layer
            if layer is None:
                continue
            owner = layer.args.get("shares")
            if owner is not None:
                o = self.nodes.get(owner)
                why = (f"'shares' names {owner!r}, which is not a layer defined before this one" if o is None
                       or owner not in seen else
                       f"'shares' names {owner!r}, a {o.kind} layer; this is a {layer.kind} layer"
                       if o.kind != layer.kind else
                       f"'shares' names {owner!r}, which itself shares {o.layer.args['shares']!r}: name that one"
                       if o.layer.args.get("shares") else
                       f"'shares' names {owner!r}, whose parameters have other shapes: "
                       + ", ".join(f"{k} {list(s)}" for k, (s, _) in o.layer.param_shapes().items())
                       if o.layer.param_shapes() != layer.param_shapes() else "")
                if why:
                    raise SpecError(why, file=self.file, line=node.line, layer=node.name,
                                    hint="a shared layer uses the parameters of an earlier layer of the same "
                                         "kind and shapes, by its full name")
            seen.add(node.name)
