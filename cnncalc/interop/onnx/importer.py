"""ONNX → spec: the importer's driver (the rewrites that lift readable layers live in
:mod:`cnncalc.interop.onnx.rewrites`, one module per family).

``import_onnx(path)`` reads the model with the ``onnx`` package, fixes the input size (the
batch is set to 1 for folding), runs ONNX shape inference, folds shape-only subgraphs
(Shape → Gather → Unsqueeze → Concat → Reshape: the ``x.view(x.size(0), -1)`` idiom), maps
every other node onto a spec layer and writes a readable spec: names from the nodes and
initializers, ``inputs:`` only where the graph branches, arguments every layer of a type
shares factored into ``defaults``.

The passes, in order: read (external data from the model's own folder only), every Constant,
folding of constant-only nodes (a table, else onnx's reference evaluator), the rewrites
(:func:`~cnncalc.interop.onnx.rewrites.registry`: region rewrites first, then the one node
rewrite of the op, lifting readable layers), then for every node they refuse the low-level
vocabulary (:mod:`cnncalc.interop.onnx.lower`); a tensor no longer laid
out N x C x H x W (``odd``) is read only by low-level ops. A node with no exact form is a
refusal collected with its name, op and reason; all of them are reported at once — or, with
``opaque=True``, each becomes an ``opaque`` layer (ONNX's shape, its real inputs, its learned
tensors as parameters, MACs unknown). :mod:`cnncalc.interop.check` then runs the spec against
the model when its weights are there.

Layouts: ONNX NCHW (NCL, NF) ↔ spec HxWxC (LxC, [F]); weights keep their ONNX layout,
which is the runtime's (conv ``(F, C/g, k…)``, fc ``(out, in)``).
"""
from __future__ import annotations

from cnncalc import limits

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cnncalc.interop import InteropError, require
from cnncalc.interop.onnx import rewrites
from cnncalc.interop.onnx.common import Item, Lift, Unmapped, axes_arg, pads_arg, show, spec_shape
from cnncalc.interop.onnx.spectext import spec_doc, spec_text
from cnncalc.layers import REGISTRY
from cnncalc.shapes import C as CHANNELS, fmt_shape

MAX_ONNX_BYTES = 2 * 1024**3  # protobuf's own limit

# ONNX ops whose spec layer type does not exist in this version (none left since the layer
# types of issue 10; kept for the error message of a future op)
PENDING: dict[str, str] = {}
FOLD_MAX_VALUES = 1 << 24  # values a folded constant may have
_READS_TENSORS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
_GROWS = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Pad", "Upsample"}
MAX_LISTED = 60  # refused nodes listed one per line (the rest are counted by op)


@dataclass
class Refusal:
    node: str  # the ONNX node name
    op: str
    why: str
    kept: bool  # an opaque layer could stand for it (with --opaque)


_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_NUMERIC_TYPES = _FLOAT_TYPES | {2, 3, 4, 5, 6, 7, 9, 12, 13}  # + (u)int8..64, bool


def _channels_first(sp, shape, batch) -> bool:
    """A tensor C x H x W (x D) whose trailing axes are the input's spatial axes whole and in
    order: the layout an image layer reads (as PyTorch's conv reads a 3-axis tensor)."""
    if sp is None or sp.__class__ is tuple or batch != 0 or shape is None or len(shape) < 3:
        return False
    if tuple(sp) != tuple(shape[1:]) or sp.nsp != len(shape) - 2:
        return False
    roles = sp.roles or ()
    if len(roles) != len(sp):
        return False
    for k in range(sp.nsp):
        n, r = shape[2 + k], roles[1 + k]
        if n == 1:  # a size-1 axis holds one value whatever it was (an unsqueeze at a 1x1 map
            if r is None or any(w != CHANNELS and m > 1 for w, m in r):  # shifts the roles of size 1)
                return False
        elif r != ((k, n),):
            return False
    return True


def _dtype_name(onnx, code: int) -> str:
    """STRING, FLOAT16, …; a code the ONNX enum does not have (a hostile file) is named by its number."""
    try:
        return onnx.TensorProto.DataType.Name(code)
    except ValueError:
        return f"data type {int(code)} (not an ONNX type)"


@dataclass
class Imported:
    text: str  # the spec (YAML)
    name: str
    input_shape: tuple
    params: dict = field(default_factory=dict)  # {layer: {tensor: array}}
    state: dict = field(default_factory=dict)
    opaque: list = field(default_factory=list)  # names of opaque layers
    source: str = ""  # the file (or FILE.py:FACTORY) it came from
    source_count: int | None = None  # parameters the framework itself counts (--torch)
    reference: object = None  # what the spec must compute the same as: the ModelProto, or the torch module
    outputs: list = field(default_factory=list)  # [(ONNX output name, spec layer)]
    onnx_input_dims: tuple = ()  # the ONNX input without the batch (C, H, W)
    doc: dict | None = None  # the spec as the mapping its text reads as (import_model(as_doc=True))
    note: str = ""  # what the user should know about the import (batch norm folded by the exporter)
    # the reference's weights are in this file (a model with external data: the ModelProto's
    # copies of those tensors were dropped once imported, so a check runs onnxruntime on the file)
    reference_file: str | None = None


def _module_path(node_name: str, op: str) -> str:
    """'/layer1/layer1.0/conv1/Conv' → 'layer1.0.conv1' (PyTorch's exported node names)."""
    comps = [c for c in node_name.split("/") if c]
    if node_name.startswith("/") and comps and comps[-1].split("_")[0] == op:
        comps = comps[:-1]
    path = ""
    for c in comps:
        path = c if (not path or c.startswith(path + ".")) else f"{path}.{c}"
    return path


class Importer:
    """One import: the model's tables, the spec items emitted so far, the refusals; ``run()`` walks the nodes."""

    def __init__(self, model, *, source: str, opaque: bool, input_shape=None):
        self.onnx = require("onnx")
        self.model = model
        self.source = source
        self.allow_opaque = opaque
        self.cnncalc = model.producer_name == "cnncalc"
        self.g = model.graph
        self.consts: dict[str, np.ndarray] = {}
        self.layer_of: dict[str, str] = {}  # tensor → spec layer
        self.pending: dict[str, tuple] = {}  # tensor → ("pad"|"slice"|"nhwc", src tensor, info, node name)
        self.pad_nodes: dict[str, object] = {}
        self.items: list[Item] = []
        self.by_name: dict[str, Item] = {}
        self.params: dict[str, dict] = {}
        # (weight, bias) initializers → the layer that holds them: a later conv of the same
        # tensors (a module called again, CoaT's shared position encodings) shares them
        self.owner_of: dict[tuple, str] = {}
        self.state: dict[str, dict] = {}
        self.refused: list[Refusal] = []
        self.batch_of: dict[str, int | None] = {}  # tensor → its batch axis, where a low-level op moved it
        self.odd: set[str] = set()  # tensors not laid out N x C x (D x) H x W: only low-level ops read them
        self.pending_node: dict[str, object] = {}  # tensor → the ONNX node a pending entry stands for
        self.opaque_command = f"cnncalc import {source} --opaque"
        self.skip: set[int] = set()
        self.poisoned: set[str] = set()
        self.spec_shapes: dict[str, tuple] = {}
        self.rounding_floor = False
        self._setup(input_shape)

    # ------------------------------------------------------------------ setup
    def _setup(self, input_shape):
        onnx = self.onnx
        inits = {t.name for t in self.g.initializer}
        self.init_names = {t: t for t in inits}  # initializer (or an Identity of one) → its own name
        self.learned_of: dict[str, set] = {}  # a constant folded at import → the learned tensors it merges
        # the model's buffers, where its exporter says (`import --torch`): not parameters
        listed = [p.value for p in self.model.metadata_props if p.key == "cnncalc.torch_buffers"]
        self.knows_buffers = bool(listed)  # (an ONNX file does not say: named like a parameter, learned)
        self.buffers = {n for v in listed for n in v.split("\n") if n}
        # tensors computed from constants only by layers (a layer of constants only, inputs: [],
        # and the ops after it): no batch axis of their own, the same for every sample
        self.fixed: set[str] = set()
        for t in self.g.initializer:
            if t.data_type not in _NUMERIC_TYPES:
                raise InteropError(f"{self.source}: initializer {show(t.name)} holds "
                                   f"{_dtype_name(onnx, t.data_type)} values; cnncalc reads "
                                   f"numeric tensors only")
            try:
                self.consts[t.name] = onnx.numpy_helper.to_array(t)
            except Exception as e:  # a size that contradicts its dims, …
                raise InteropError(f"{self.source}: initializer {show(t.name)} is unreadable: "
                                   f"{str(e).splitlines()[0][:200]}") from None
        ins = [i for i in self.g.input if i.name not in inits]
        if len(ins) != 1:
            raise InteropError(f"{self.source}: cnncalc imports models with one input; this one has "
                               f"{len(ins)} ({', '.join(i.name for i in ins) or 'none'})")
        inp = ins[0]
        self.input_name = inp.name
        tt = inp.type.tensor_type
        if tt.elem_type not in _FLOAT_TYPES:
            kind = _dtype_name(onnx, tt.elem_type) if tt.elem_type else "no tensor"
            raise InteropError(f"{self.source}: the input {show(inp.name)} is {kind}; cnncalc imports "
                               f"networks of a float input")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if len(dims) not in (2, 3, 4, 5):
            raise InteropError(f"{self.source}: the input {inp.name!r} has {len(dims)} axes; cnncalc "
                               f"reads N x C x D x H x W, N x C x H x W, N x C x L or N x F")
        if input_shape is not None:
            want = tuple(input_shape)
            if len(want) != len(dims) - 1:
                raise InteropError(f"{self.source}: --input {fmt_shape(want)} has {len(want)} axes but the "
                                   f"model's input has {len(dims) - 1} (without the batch)")
            chw = (want[-1], *want[:-1]) if len(want) > 1 else want
            if dims[1] not in (None, 0) and len(dims) > 2 and dims[1] != chw[0]:
                raise InteropError(f"{self.source}: --input has {chw[0]} channels but the model takes {dims[1]}")
            dims = [1, *chw]
        else:
            rest = dims[1:]
            if any(d in (None, 0) for d in rest):
                shown = " x ".join("?" if d in (None, 0) else str(d) for d in dims[1:])
                raise InteropError(f"{self.source}: the input {inp.name!r} has dynamic sizes (C x H x W = "
                                   f"{shown})\n  hint: give the size with --input HxWxC, e.g. --input 224x224x3")
            dims = [1, *rest]
        for d, v in zip(tt.shape.dim, dims):
            d.Clear()
            d.dim_value = v
        self.input_dims = dims
        self.input_shape = spec_shape(dims[1:])
        self.layer_of[inp.name] = "input"
        self.spec_shapes["input"] = self.input_shape
        try:
            inferred = onnx.shape_inference.infer_shapes(_light(self.model), data_prop=True)
        except Exception as e:  # onnx raises several types; all mean an inconsistent model
            raise InteropError(f"{self.source}: ONNX shape inference failed: {str(e).splitlines()[0][:300]}") from None
        self.shapes: dict[str, tuple | None] = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                ds = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
                self.shapes[vi.name] = None if any(d is None for d in ds) else tuple(ds)
        self.n_consumers = Counter(i for n in self.g.node for i in n.input if i)
        self.consumers: dict[str, list[int]] = {}  # tensor → indices of the nodes reading it
        for k, n in enumerate(self.g.node):
            for t in dict.fromkeys(n.input):
                if t:
                    self.consumers.setdefault(t, []).append(k)
        self.made_by: dict[str, object] = {o: n for n in self.g.node for o in n.output if o}  # tensor → its node
        self.output_names = {o.name for o in self.g.output}
        for o in self.g.output:
            self.n_consumers[o.name] += 1

    # ------------------------------------------------------------------ helpers
    def attr(self, node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return self.onnx.helper.get_attribute_value(a)
        return default

    def const(self, name):
        return self.consts.get(name) if name else None

    def producer(self, tensor):
        """The ONNX node that computes ``tensor`` (None for the input, an initializer, or a
        tensor no node writes)."""
        return self.made_by.get(tensor) if tensor else None

    def learned_from(self, tensor) -> set:
        """The learned tensors ``tensor`` is (an initializer :meth:`learned` names) or is computed
        from (a constant folded at import)."""
        if tensor in self.init_names:
            return {self.init_names[tensor]} if self.learned(tensor) else set()
        return set(self.learned_of.get(tensor, ()))

    def shape(self, tensor):
        if tensor in self.consts:
            return tuple(self.consts[tensor].shape)
        return self.shapes.get(tensor)

    def src(self, tensor, node) -> str:
        if tensor in self.pending:
            kind, src, info, pname = self.pending[tensor]
            if kind == "pad":  # F.pad that no conv folded: a padding layer of its own
                self.pending.pop(tensor)
                pnode = self.pad_nodes[tensor]
                self.emit(pnode, "padding", {"padding": pads_arg(*info)}, [src])
                return self.layer_of[tensor]
            what = ("a channels-last Transpose" if kind == "nhwc" else "a strided Slice") + f" ({show(pname)})"
            raise Unmapped(node.op_type, node.name, f"reads {what} that only a LayerNormalization over the "
                            f"channels imports exactly" if kind == "nhwc" else
                            f"reads {what} that only a channel Pad (ResNet option A) imports exactly")
        if tensor not in self.layer_of:
            raise Unmapped(node.op_type, node.name, f"input {tensor!r} is not computed by a mapped layer")
        return self.layer_of[tensor]

    def name_for(self, node, weight: str | None = None) -> str:
        if self.cnncalc and node.name:
            raw = node.name
        elif weight and "." in weight and weight.rsplit(".", 1)[1] in ("weight", "bias"):
            raw = weight.rsplit(".", 1)[0]
        elif node.name:
            raw = _module_path(node.name, node.op_type) or node.op_type.lower()
        else:
            raw = node.op_type.lower()
        name = raw.strip("/").replace("/", ".") or node.op_type.lower()
        if name == "input":
            name = "input_"
        base, k = name, 1
        while name in self.by_name:
            k += 1
            name = f"{base}_{k}"
        return name

    def emit(self, node, kind, args, inputs, *, out=None, weight=None, name=None, params=None, state=None):
        srcs = [self.src(t, node) for t in inputs]  # first: it may emit a pending padding layer
        name = name or self.name_for(node, weight)
        it = Item(kind, args, name, srcs, node.name)
        self.items.append(it)
        self.by_name[name] = it
        if params:
            self.params[name] = params
        if state:
            self.state[name] = state
        self.layer_of[out or node.output[0]] = name
        self._own_shape(it, out or node.output[0])
        return it

    def _own_shape(self, it, tensor):
        """The layer's shape by cnncalc's own rules, so that later nodes do not depend on ONNX
        shape inference (which gives up on, e.g., a Pad whose pads are computed)."""
        cls = REGISTRY[it.kind]
        args = {k: v for k, v in it.args.items() if k != it.kind}
        if cls.primary and it.args.get(it.kind) is not None:
            args[cls.primary] = it.args[it.kind]
        try:
            shp = cls(it.name, args).infer([self.spec_shapes[i] for i in it.inputs], "exact")
        except Exception:  # let ONNX's inferred shape stand; the spec's loader reports real errors
            return
        self.spec_shapes[it.name] = shp
        self.shapes[tensor] = (1, *((shp[-1], *shp[:-1]) if len(shp) > 1 else shp))

    def alias(self, node, tensor):
        self.layer_of[node.output[0]] = self.src(tensor, node)
        if tensor in self.odd:
            self.odd.add(node.output[0])
        if tensor in self.batch_of:
            self.batch_of[node.output[0]] = self.batch_of[tensor]
        if self.shape(tensor) is not None:
            self.shapes[node.output[0]] = self.shape(tensor)

    def single_use(self, tensor) -> bool:
        return self.n_consumers[tensor] == 1

    # ------------------------------------------------------------------ driver
    def run(self):
        nodes = list(self.g.node)
        if len(nodes) > limits.get("onnx_nodes"):
            lim = limits.LIMITS["onnx_nodes"]
            raise InteropError(f"{self.source}: {len(nodes):,} ONNX nodes is over the limit on {lim.what} "
                               f"({lim.value:,}; {lim.how_to_raise()})")
        self.nodes = nodes
        constants = set()
        for i, node in enumerate(nodes):  # every Constant first: a pattern may look ahead at them
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                try:
                    self.constant(node)
                    constants.add(i)
                except Unmapped:
                    pass
        for i, node in enumerate(nodes):
            if i in self.skip or i in constants:
                continue
            self.index = i
            bad = next((t for t in node.input if t in self.poisoned), None)
            if bad is not None:  # reads a refused node that could not be kept as a placeholder
                self.refused.append(Refusal(node.name, node.op_type, f"reads {bad!r}, the output of a refused "
                                             f"node whose shape is unknown", kept=False))
                self.poisoned.update(node.output)
                continue
            if node.op_type == "Constant":
                try:
                    self.constant(node)
                except Unmapped as u:
                    self._unmapped(node, u)
                continue
            why = self._reads_table(node)
            if (why or self.of_parameters(node)) and any(region(self, i) for region in rewrites.region_rewrites(node.op_type)):
                continue  # (a rewrite gives it an exact form: LeViT's attention biases, rewrites/relbias.py;
                # EdgeNeXt's conv of a constant grid, Swin V2's position-bias MLP and logit scale,
                # rewrites/constant.py)
            if why:
                self.refused.append(Refusal(node.name, node.op_type, why, kept=False))
                self.poisoned.update(o for o in node.output if o)
                continue
            if self._fold(node):
                continue
            if any(region(self, i) for region in rewrites.region_rewrites(node.op_type)):
                continue
            fn = rewrites.node_rewrite(node.op_type) if node.domain in ("", "ai.onnx") else None
            try:
                if fn is None:
                    raise Unmapped(node.op_type, node.name)
                if any(t in self.odd for t in node.input) and not self._reads_as_image(node):
                    # not an N x C x H x W image: low-level ops only
                    raise Unmapped(node.op_type, node.name, "its input is not laid out as N x C x H x W")
                fn(self, node)
            except Unmapped as u:
                self._unmapped(node, u)
        refused = self.refused if not self.allow_opaque else [r for r in self.refused if not r.kept]
        if refused:
            raise InteropError(self._refusal_message(refused))
        if not self.items:
            raise InteropError(f"{self.source}: the model has no layers cnncalc can read")

    def _reads_table(self, node) -> str:
        """Why a node that repeats or re-indexes a parameter cannot be folded into a constant
        (a table gathered by constant indices that are no relbias rule's — LeViT's and
        EfficientViT-M's are, and the relbias rewrites take them before this refusal; a class
        token broadcast beyond the batch; a conv of constants only): the folded tensor would
        count its values, not the parameter's, or drop the parameter. "" when it is not such a
        node."""
        if node.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") and node.input and all(
                u in self.consts for u in node.input if u) and any(self.learned(u) for u in node.input[1:] if u):
            return (f"a {node.op_type} of constants only (as EdgeNeXt's position encoding, computed from the "
                    f"input's shape alone): folded into a constant it would lose its parameters and MACs, "
                    f"and only a 1x1 Conv of stride 1 without padding, or a MatMul of a parameter and a "
                    f"buffer whose result meets the activations in elementwise ops, has a spec form (a "
                    f"matmul of two constants; `import --torch` tells buffers from parameters)")
        if node.op_type not in ("Gather", "GatherElements", "GatherND", "Expand", "Tile") or not node.input:
            return ""
        t = node.input[0]
        if t not in self.consts or not self.learned(t) or any(u and u not in self.consts for u in node.input[1:]):
            return ""
        if node.op_type == "Expand":  # (the class token expanded to the import batch is folded: same values)
            try:
                full = np.broadcast_shapes(self.consts[t].shape,
                                           tuple(int(v) for v in self.consts[node.input[1]].reshape(-1)))
            except (ValueError, TypeError):
                return ""
            if math.prod(full) == self.consts[t].size:
                return ""
        return (f"it reads the parameter {show(self.init_names[t])} by constant indices or repeats it (a "
                f"table of learned values): no spec layer counts that table as its parameters (a relbias "
                f"layer holds a table read by query-key offsets only, docs/tensors.md)")

    def _reads_as_image(self, node) -> bool:
        """A conv or pooling whose data input is a tensor of 3 to 5 axes, the batch first: the
        spec's image layers read it as C x H x W, as PyTorch's do (tokens reshaped back to a
        map: CoaT's convolutional position encoding, EfficientViT's per-head convs)."""
        if node.op_type not in _READS_TENSORS:
            return False
        x = node.input[0]
        s = self.shape(x)
        return (self.batch_of.get(x, 0) == 0 and s is not None and 3 <= len(s) <= 5 and
                all(t not in self.odd for t in node.input[1:] if t))

    def _refusal_message(self, refused) -> str:
        shown = refused[:MAX_LISTED]
        lines = [f"  node {show(r.node) if r.node else '(unnamed)'} ({show(r.op)[1:-1]}): {r.why}" for r in shown]
        if len(refused) > len(shown):
            more = Counter(r.op for r in refused[len(shown):])
            lines.append(f"  ... and {len(refused) - len(shown)} more: " +
                         ", ".join(f"{show(op)[1:-1]} x{k}" for op, k in more.most_common()))
        head = (f"{self.source}: {len(refused)} ONNX node(s) cannot be imported exactly "
                f"(ONNX node name, op type: why):")
        if self.allow_opaque or not any(r.kept for r in refused):
            tail = ("  (these cannot be kept as opaque layers: the model is invalid there, or the output "
                    "shapes are unknown)")
        else:
            tail = (f"  hint: {self.opaque_command} keeps them as opaque layers (their parameters counted, "
                    f"their MACs unknown, flagged in every report)")
        return "\n".join([head, *lines, tail])

    def _unmapped(self, node, u):
        why = u.why or ("no cnncalc layer type for this op" if rewrites.node_rewrite(u.op) is None else
                        "no exact mapping of this form of the op")
        name = u.node if u.node is not None else node.name
        if not u.hard and node.domain in ("", "ai.onnx"):
            from cnncalc.interop.onnx.lower import LOWERINGS

            low = self._lower(node)
            if low is None:
                return
            if node.op_type in LOWERINGS:  # (else the op has no low-level form at all: why says it)
                why = f"{why}; as low-level ops: {low}" if u.why else f"as low-level ops: {low}"
        kept = not u.hard and self._opaque_layer(node)
        self.refused.append(Refusal(name, u.op, why, kept))
        if not kept:
            self.poisoned.update(o for o in node.output if o)

    def learned(self, t) -> bool:
        """An initializer a model trains (its parameters), as opposed to a buffer or a number:
        float, and either named like a parameter or more than one value (exporters fold a
        parameter's reshape into a new initializer named after the op)."""
        a = self.consts.get(t)
        if t not in self.init_names or a is None or a.dtype.kind != "f":
            return False
        t = self.init_names[t]
        if t in self.buffers:
            return False
        named = "." in t and not t.startswith(("onnx::", "/"))
        return named or a.size > 1

    def of_parameters(self, node) -> bool:
        """Every input a constant, one of them a parameter (a learned initializer): folded into
        a constant, the op would drop the parameter from the count (a layer of constants only
        keeps it: rewrites/constant.py)."""
        ins = [t for t in node.input if t]
        return bool(ins) and all(t in self.consts for t in ins) and any(
            t in self.init_names and self.learned(t) for t in ins)

    def _lower(self, node) -> str | None:
        """``node`` as low-level layers (cnncalc.interop.onnx.lower); None when done, else why not."""
        from cnncalc.interop.onnx.lower import Operand, Unlowered, lower

        shapes_before = {o: self.shapes[o] for o in node.output if o in self.shapes}
        ops = []
        for t in node.input:
            if not t:
                ops.append(None)
            elif t in self.consts:
                v = self.consts[t]
                ops.append(Operand(tuple(v.shape), v, learned=self.learned(t)))
            else:
                shape = self.shape(t)
                if shape is None:
                    return f"the shape of {show(t)} is unknown"
                src = self._wire(t)
                if src is None:
                    return f"its input {show(t)} is not computed by an imported layer"
                ops.append(Operand(tuple(shape), name=src, batch=self.batch_of.get(t, 0), fixed=t in self.fixed))
        attrs = {}
        for a in node.attribute:
            v = self.onnx.helper.get_attribute_value(a)
            attrs[a.name] = self.onnx.numpy_helper.to_array(v) if hasattr(v, "dims") else v
        name = self.name_for(node)
        try:
            low = lower(node.op_type, attrs, ops, name=name, n_outputs=len(node.output), opset=self.opset)
        except Unlowered as e:
            return e.reason
        except (ValueError, TypeError, IndexError, OverflowError, MemoryError) as e:
            return f"{type(e).__name__}: {str(e)[:120]}"
        for k, v in low.constants.items():
            self.consts[node.output[k]] = np.asarray(v)
        for li in low.items:
            it = Item(li.kind, {li.kind: None, **li.args}, li.name, list(li.inputs), node.name)
            self.items.append(it)
            self.by_name[li.name] = it
            if li.params:
                self.params[li.name] = li.params
            if li.state:
                self.state[li.name] = li.state
            self._lowered_shape(it)
        acts = [t for t in node.input if t and t not in self.consts]
        fixed = bool(acts) and all(t in self.fixed for t in acts)  # (of constants only still)
        for out, (item, batch) in zip(node.output, low.outputs):
            if not out:
                continue
            self.layer_of[out] = item
            self.batch_of[out] = batch
            if fixed:
                self.fixed.add(out)
                self.odd.add(out)
            sp = self.spec_shapes.get(item)
            if self.shapes.get(out) is None and sp is not None:  # ONNX inference gave up here
                pt = tuple(sp) if sp.__class__ is not tuple else (sp[-1], *sp[:-1]) if len(sp) > 1 else tuple(sp)
                # (the batch is 1 at the import: folded into an axis, the shape is the sample's)
                self.shapes[out] = pt if batch is None else (*pt[:batch], 1, *pt[batch:])
            shape = self.shapes.get(out)
            # N x C x H x W again: the spec's own rules made it an image (or a flat vector)
            nchw = (batch == 0 and shape is not None and sp is not None and sp.__class__ is tuple
                    and sp == spec_shape(shape[1:])) or _channels_first(sp, shape, batch)
            if not nchw:
                self.odd.add(out)
        self._lift(node, [li.name for li in low.items], shapes_before)
        return None

    def _lift(self, node, names, shapes_before):
        """The lift rewrites (stage "lift") over the items ``node`` was just lowered to."""
        lifts = rewrites.lift_rewrites()
        if not lifts:
            return
        ctx = None
        for name in names:
            it = self.by_name.get(name)
            if it is None:  # (removed by an earlier lift)
                continue
            for rw in lifts:
                if it.kind in rw.ops:
                    ctx = ctx or Lift(self, node, shapes_before)
                    if rw.fn(ctx, it):
                        break

    def infer_item_shape(self, it):
        """The spec shape of an item a rewrite made (kept in ``spec_shapes``; dropped when the
        layer's own rules refuse it: the spec's loader reports real errors)."""
        self._lowered_shape(it)

    def _lowered_shape(self, it):
        cls = REGISTRY.get(it.kind)
        args = {k: v for k, v in it.args.items() if k != it.kind}
        if cls is not None and cls.primary and it.args.get(it.kind) is not None:
            args[cls.primary] = it.args[it.kind]
        try:
            self.spec_shapes[it.name] = cls(it.name, args).infer([self.spec_shapes[i] for i in it.inputs], "exact")
        except Exception:  # (the spec's loader reports real errors)
            self.spec_shapes.pop(it.name, None)

    def _wire(self, t):
        """The spec layer that holds tensor ``t`` for an opaque layer reading it, or None."""
        if t in self.pending:
            kind = self.pending[t][0]
            if kind == "pad":
                return self.src(t, None)
            pnode = self.pending_node.get(t)
            self.pending.pop(t)
            if pnode is None:
                return None
            if self._lower(pnode) is not None:  # exact as low-level ops (a transpose, a slice), else opaque
                if not self._opaque_layer(pnode):
                    return None
                self.refused.append(Refusal(pnode.name, pnode.op_type, f"a {'channels-last transpose' if kind == 'nhwc' else 'strided slice'} "
                                             "whose consumer was not imported", True))
        return self.layer_of.get(t)

    def _opaque_layer(self, node) -> bool:
        """An opaque layer for ``node`` (shape from ONNX, wired to its real inputs, its float
        initializers counted as its parameters); False when that is impossible."""
        outs = [o for o in node.output if o and self.n_consumers[o]]
        shape = self.shape(node.output[0]) if node.output else None
        if len(outs) > 1 or shape is None or len(shape) < 2 or any(d <= 0 for d in shape):
            return False
        data = [t for t in node.input if t and t not in self.consts]
        ins = []
        for t in dict.fromkeys(data):
            src = self._wire(t)
            if src is None:
                return False
            ins.append(src)
        if not ins:
            return False
        params = {}
        for t in node.input:
            a = self.consts.get(t) if t in self.init_names else None
            if a is not None and a.dtype.kind == "f" and a.size > 1:
                params[f"p{len(params)}"] = a
        name = self.name_for(node)
        args = {"opaque": node.op_type, "shape": fmt_shape(spec_shape(shape[1:]))}
        if params:
            args["params"] = [list(a.shape) for a in params.values()]
            self.params[name] = params
        it = Item("opaque", args, name, ins, node.name)
        self.items.append(it)
        self.by_name[name] = it
        self.layer_of[node.output[0]] = name
        self.shapes[node.output[0]] = tuple(shape)
        return True


    # ------------------------------------------------------------------ constant folding
    def constant(self, node):
        v = self.attr(node, "value")
        if v is not None:
            self.consts[node.output[0]] = self.onnx.numpy_helper.to_array(v)
            return
        for key in ("value_float", "value_int"):
            v = self.attr(node, key)
            if v is not None:
                self.consts[node.output[0]] = np.array(v)
                return
        for key in ("value_floats", "value_ints"):
            v = self.attr(node, key)
            if v is not None:
                self.consts[node.output[0]] = np.array(v)
                return
        raise Unmapped("Constant", node.name)

    def _fold(self, node) -> bool:
        """Evaluate a node whose inputs are all known constants (or a Shape of a tensor whose
        shape is known): the shape arithmetic of a Reshape target."""
        op = node.op_type
        if op == "Shape":
            s = self.shape(node.input[0])
            if s is None:
                return False
            a = np.array(s, dtype=np.int64)
            start, end = self.attr(node, "start", 0), self.attr(node, "end", None)
            self.consts[node.output[0]] = a[start:end]
            return True
        if not node.input or any(t and self.const(t) is None for t in node.input):
            return False
        self._note_learned(node)
        ins = [self.const(t) if t else None for t in node.input]
        if op == "Expand" and len(ins) == 2 and node.input[0] in self.init_names:
            # timm/torchvision's class token: a parameter expanded to the import batch (1), so
            # as many values as the parameter has; it stays that parameter (learned)
            try:
                full = np.broadcast_shapes(ins[0].shape, tuple(int(v) for v in ins[1].reshape(-1)))
            except ValueError:
                return False
            if math.prod(full) == ins[0].size:
                self.consts[node.output[0]] = ins[0].reshape(full)
                self.init_names[node.output[0]] = self.init_names[node.input[0]]
                return True
        if op in FOLD:
            try:
                self.consts[node.output[0]] = np.asarray(FOLD[op](self, node, ins))
                if op == "Identity" and node.input[0] in self.init_names:  # PyTorch's de-duplicated
                    self.init_names[node.output[0]] = self.init_names[node.input[0]]  # initializers
                return True
            except Exception:  # (the general evaluator below may still fold it)
                pass
        return self._fold_any(node, ins)

    def _note_learned(self, node):
        """The learned tensors (float initializers of more than one value) a constant computed at
        import derives from: a conv whose weight merges two of them (NFNet's ScaledStdConv2d:
        the standardised weight times a per-channel gain) would count one tensor's parameters."""
        srcs = set()
        for t in node.input:
            if not t:
                continue
            if t in self.init_names:
                a = self.consts.get(t)
                if a is not None and a.dtype.kind == "f" and a.size > 1:
                    srcs.add(self.init_names[t])
            else:
                srcs |= self.learned_of.get(t, set())
        if srcs:
            for o in node.output:
                if o:
                    self.learned_of[o] = srcs

    def _fold_any(self, node, ins) -> bool:
        """A node of constants only (weight standardisation's ReduceMean over a weight, TF "same"
        padding's Ceil/Mod/Max arithmetic, Equal/Where/CumSum on shapes) evaluated by onnx's
        reference implementation, when its result is small enough to keep."""
        if node.domain not in ("", "ai.onnx") or any(a.type in (5, 10) for a in node.attribute):  # (graphs)
            return False
        outs = [self.shapes.get(o) for o in node.output if o]
        if any(s is None for s in outs):
            # (ONNX inference gives up on shapes computed from shapes: torchvision's Swin builds
            # its shifted-window mask from Range, ConstantOfShape and Expand of such sizes)
            grown = _fold_size(node.op_type, ins)
            if grown is not None and grown > FOLD_MAX_VALUES:
                return False
            if grown is None and (node.op_type in _GROWS or sum(v.size for v in ins if v is not None) > 1 << 16):
                return False
        elif sum(math.prod(s) for s in outs) > FOLD_MAX_VALUES:
            return False
        onnx = self.onnx
        try:
            from onnx.reference import ReferenceEvaluator

            h = onnx.helper
            names = [f"i{k}" if t else "" for k, t in enumerate(node.input)]
            n = h.make_node(node.op_type, names, [f"o{k}" for k in range(len(node.output))])
            n.attribute.extend(node.attribute)
            g = h.make_graph([n], "fold", [], [h.make_value_info(f"o{k}", onnx.TypeProto()) for k in range(len(node.output))],
                             [onnx.numpy_helper.from_array(np.asarray(v), f"i{k}") for k, v in enumerate(ins) if v is not None])
            m = h.make_model(g, opset_imports=[h.make_opsetid("", self.opset)])
            res = ReferenceEvaluator(m).run(None, {})
        except Exception:  # an op the reference cannot run on these values: not folded
            return False
        if sum(np.asarray(r).size for r in res) > FOLD_MAX_VALUES:
            return False
        for o, r in zip(node.output, res):
            if o:
                self.consts[o] = np.asarray(r)
        return True


_BROADCASTS = {"Add", "Sub", "Mul", "Div", "Mod", "Pow", "Min", "Max", "Equal", "Less", "Greater", "LessOrEqual",
               "GreaterOrEqual", "And", "Or", "Xor", "Where"}
_NO_BIGGER = {"Reshape", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Flatten", "Identity", "Concat", "Cast", "Not",
              "Neg", "Abs", "Sign", "Floor", "Ceil", "Round", "Sqrt", "Exp", "Log", "Reciprocal"}


def _fold_size(op: str, ins) -> int | None:
    """How many values a node of constants makes from these inputs, known without running it
    (an op that can grow its input, ``_GROWS``; a broadcasting elementwise op; an op that makes
    at most as many values as it reads); None when that is not known beforehand (Resize, Pad,
    MatMul, …)."""
    vals = [v for v in ins if v is not None]
    try:
        if op in _BROADCASTS:
            return math.prod(np.broadcast_shapes(*(np.shape(v) for v in vals)))
        if op in _NO_BIGGER:
            return sum(np.size(v) for v in vals)
        if op == "ConstantOfShape":
            return math.prod(int(v) for v in ins[0].reshape(-1))
        if op == "Expand":
            return math.prod(np.broadcast_shapes(ins[0].shape, tuple(int(v) for v in ins[1].reshape(-1))))
        if op == "Tile":
            return ins[0].size * math.prod(int(v) for v in ins[1].reshape(-1))
        if op == "Range":
            start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in ins[:3])
            return max(math.ceil((limit - start) / delta), 0) if delta else None
    except (ValueError, TypeError, IndexError, AttributeError, OverflowError):
        return None
    return None


def _light(model):
    """A copy for shape inference without the weights' bytes: big initializers become typed
    graph inputs (shape inference needs their shapes, not their values)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model) if len(model.graph.initializer) == 0 else None
    if len(model.graph.initializer) == 0:
        return m
    m.ir_version = model.ir_version
    m.opset_import.extend(model.opset_import)
    g = m.graph
    g.name = model.graph.name
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    g.value_info.extend(model.graph.value_info)
    listed = {i.name for i in model.graph.input}
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if n <= 64:
            g.initializer.append(t)
        elif t.name not in listed:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return m


def _cos_value(imp, node):
    v = imp.attr(node, "value")
    return imp.onnx.numpy_helper.to_array(v).reshape(-1)[0] if v is not None else np.float32(0)

def _cast(imp, node, x):
    """ONNX Cast: to an integer type truncates toward zero (TF 'same' padding splits an odd total
    as Cast(total / 2) before and the rest after: keeping 1.5 made it a symmetric pad)."""
    to = imp.attr(node, "to")
    try:
        dtype = imp.onnx.helper.tensor_dtype_to_np_dtype(to)
    except Exception:
        raise ValueError(f"Cast to ONNX type {to}") from None
    x = np.asarray(x)
    if dtype.kind in "iub" and x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            raise ValueError("Cast of a non-finite value to an integer")
        return np.trunc(x).astype(dtype)
    return x.astype(dtype)


def _div(a, b):
    """ONNX Div: integers divide truncating toward zero (C's), not flooring (numpy's //)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        q = np.abs(a) // np.abs(b)
        return np.where((a < 0) != (b < 0), -q, q).astype(np.result_type(a, b))
    return a / b


FOLD: dict[str, Callable] = {
    "Gather": lambda imp, n, i: np.take(i[0], i[1], axis=imp.attr(n, "axis", 0)),
    "Unsqueeze": lambda imp, n, i: np.expand_dims(i[0], tuple(axes_arg(imp, n, i))),
    "Squeeze": lambda imp, n, i: np.squeeze(i[0], tuple(axes_arg(imp, n, i)) if axes_arg(imp, n, i) else None),
    "Concat": lambda imp, n, i: np.concatenate([np.atleast_1d(x) for x in i], axis=imp.attr(n, "axis", 0)),
    # to the type it names (the exported SDPA's scale is Sqrt(Cast(head_dim, float)), and a
    # Sqrt of the int64 20 is 4, not 4.47); to an integer it truncates
    "Cast": lambda imp, n, i: _cast(imp, n, i[0]),
    "ConstantOfShape": lambda imp, n, i: np.full(tuple(int(d) for d in i[0]), _cos_value(imp, n)),
    "Transpose": lambda imp, n, i: np.transpose(i[0], imp.attr(n, "perm")),
    "Reshape": lambda imp, n, i: i[0].reshape([int(d) if d != 0 else i[0].shape[k] for k, d in enumerate(i[1])]),
    "Identity": lambda imp, n, i: i[0],
    "Mul": lambda imp, n, i: i[0] * i[1], "Add": lambda imp, n, i: i[0] + i[1],
    "Sub": lambda imp, n, i: i[0] - i[1], "Div": lambda imp, n, i: _div(i[0], i[1]),
    "ReduceProd": lambda imp, n, i: np.prod(i[0], keepdims=bool(imp.attr(n, "keepdims", 1))),
    "Slice": lambda imp, n, i: i[0][tuple(slice(None) for _ in range(int((i[3] if len(i) > 3 and i[3] is not None else [0])[0])))
                                      + (slice(int(i[1][0]), int(i[2][0]), int(i[4][0]) if len(i) > 4 and i[4] is not None else 1),)]
    if len(i[1]) == 1 else (_ for _ in ()).throw(ValueError()),
}

# ----------------------------------------------------------------------------- entry points


def read_model(path: str | Path):
    """The checked ModelProto of an .onnx file, its external data read into it."""
    return _read_model(path)[0]


def _read_model(path: str | Path):
    """(:func:`read_model`'s model, whether it read tensors from external data)."""
    onnx = require("onnx")
    p = Path(path)
    if not p.is_file():
        raise InteropError(f"{path}: no such ONNX file")
    size = p.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise InteropError(f"{path}: {size:,} bytes is over the {MAX_ONNX_BYTES:,}-byte protobuf limit")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:
        raise InteropError(f"{path}: not a readable ONNX model (truncated or corrupt?): "
                           f"{type(e).__name__}: {str(e)[:200]}") from None
    if not model.graph.node:
        raise InteropError(f"{path}: not a readable ONNX model (no graph nodes: truncated or corrupt?)")
    external = _load_external_data(model, p)
    from cnncalc.interop.onnx_export import EXTERNAL_ABOVE, tensor_bytes

    try:
        if tensor_bytes(model) > EXTERNAL_ABOVE:  # one message cannot hold it: the checker reads the file
            onnx.checker.check_model(str(p))  # (and its external data's locations, already read above)
        else:
            onnx.checker.check_model(model)
    except Exception as e:
        raise InteropError(f"{path}: the ONNX checker rejects the model: {str(e).splitlines()[0][:300]}") from None
    return model, external


def _load_external_data(model, path: Path):
    """Tensors stored outside the .onnx file are read from the model's own folder, through
    onnx's checked opener (an absolute location, one with '..', or a symlink is refused), and
    their total size is bounded by the ``onnx_external_bytes`` limit (checked before each read;
    a tensor without a length counts the rest of its file). Whether there were any."""
    onnx = require("onnx")
    from cnncalc import limits

    ext = [t for t in _all_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if not ext:
        return False
    cap = limits.get("onnx_external_bytes")
    total = 0
    for t in ext:
        try:
            info = onnx.external_data_helper.ExternalDataInfo(t)
        except Exception as e:
            raise InteropError(f"{path}: tensor {t.name!r} has unreadable external-data fields: {str(e)[:200]}") from None
        n = info.length or 0
        if not n:  # (read to the end of the file: count what is there, if it is a plain file here)
            loc = Path(str(info.location))
            f = path.parent / loc
            try:  # (only a plain name inside the folder is looked at; onnx's opener refuses the rest)
                if not loc.is_absolute() and ".." not in loc.parts and f.is_file() and not f.is_symlink():
                    n = max(0, f.stat().st_size - (info.offset or 0))
            except (OSError, ValueError):
                pass
        total += n
        if total > cap:
            raise InteropError(f"{path}: the external data is over {cap:,} bytes ("
                               f"{limits.LIMITS['onnx_external_bytes'].how_to_raise()})")
        try:
            onnx.external_data_helper.load_external_data_for_tensor(t, str(path.parent))
        except Exception as e:  # onnx's checks: outside the folder, a symlink, missing file, short read
            raise InteropError(f"{path}: the external data of tensor {t.name!r} (location {info.location!r}) "
                               f"cannot be read from the model's folder {str(path.parent)!r}: "
                               f"{str(e).splitlines()[0][:200]}") from None
    return True


def _all_tensors(graph):
    """Every TensorProto of a graph: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _all_tensors(a.g)
            for sub in a.graphs:
                yield from _all_tensors(sub)


def _refuse_unloaded_external_data(model, source):
    onnx = require("onnx")
    bad = [t.name for t in _all_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if bad:
        raise InteropError(f"{source}: tensor {bad[0]!r} keeps its data in an external file; load the model "
                           f"from its .onnx file so that the data is read from the model's folder")


def import_model(model, *, source: str, input_shape=None, opaque: bool = False, name: str | None = None,
                 as_doc: bool = False, opaque_command: str | None = None) -> Imported:
    """Convert a loaded ModelProto into a spec (``Imported.text``) and its weights.
    ``as_doc``: the spec as the parsed mapping (``Imported.doc``), no text.
    ``opaque_command``: the command a refusal's hint suggests (default ``cnncalc import SOURCE --opaque``)."""
    _refuse_unloaded_external_data(model, source)
    imp = Importer(model, source=source, opaque=opaque, input_shape=input_shape)
    if opaque_command:
        imp.opaque_command = opaque_command
    imp.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    imp.run()
    producer = f"{model.producer_name} {model.producer_version}".strip()
    folded = folded_batchnorms(model)
    imp.source_text = f"ONNX model {Path(source).name}" + (f" (exported by {producer})" if producer else "") + (
        f"; batch norm folded into {folded} conv(s) by the exporter" if folded else "")
    name = name or model.graph.name or Path(source).stem
    doc = spec_doc(imp, name) if as_doc else None
    text = "" if as_doc else spec_text(imp, name)
    note = ""
    if folded:
        note = (f"torch.onnx.export (eval mode) folded batch norm into {folded} conv(s): the spec counts the "
                f"fused convs (a bias each, no BN), so fewer parameters than the module; `cnncalc import "
                f"--torch` keeps BN")
        text = text.replace("\nname: ", f"\n# note: {note}\nname: ", 1)
    return Imported(text=text, doc=doc, name=name, input_shape=imp.input_shape, source=source,
                    params={k: {n: np.asarray(a, np.float32) for n, a in v.items()} for k, v in imp.params.items()},
                    state={k: {n: np.asarray(a, np.float32) for n, a in v.items()} for k, v in imp.state.items()},
                    opaque=[it.name for it in imp.items if it.kind == "opaque"], reference=model,
                    outputs=[(o.name, imp.layer_of.get(o.name, o.name)) for o in model.graph.output],
                    onnx_input_dims=tuple(imp.input_dims[1:]), note=note)


def folded_batchnorms(model) -> int:
    """Convs into which PyTorch's exporter folded a BatchNorm (eval mode, constant folding): it
    renames the fused weight and bias after the op (``onnx::Conv_123``) instead of the module's
    ``layer.weight``, and writes a bias the module's conv did not have."""
    if model.producer_name != "pytorch":
        return 0
    inits = {t.name for t in model.graph.initializer}
    return sum(1 for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 2 and n.input[2] in inits
               and n.input[1].startswith("onnx::Conv_") and n.input[2].startswith("onnx::Conv_"))


def import_onnx(path: str | Path, *, input_shape=None, opaque: bool = False) -> Imported:
    model, external = _read_model(path)
    imp = import_model(model, source=str(path), input_shape=input_shape, opaque=opaque)
    if external:
        # the imported arrays are copies of the tensors read from the external data: the model
        # goes (a second copy of gigabytes of weights; protobuf frees a message's bytes only with
        # the whole message), and a check runs onnxruntime on the model's file
        imp.reference, imp.reference_file = None, str(path)
    return imp


def load_onnx_graph(path: str | Path, *, input_shape=None):
    """The Graph of an .onnx file (what ``cnncalc summarize model.onnx`` analyses), built from
    the imported spec's mapping (the layer limit applies; the text's size limit does not: no
    text is written or parsed)."""
    from cnncalc._gc import paused_gc
    from cnncalc.spec.loader import build_graph
    from cnncalc.spec.yamlsafe import unlined

    imp = import_model(read_model(path), source=str(path), input_shape=input_shape, as_doc=True)
    # (a message about the spec never cites a line of the binary .onnx: the mapping has no lines)
    with paused_gc():
        return build_graph(unlined(imp.doc), file=f"<spec imported from {path}>")
