"""ONNX → spec: one importer per ONNX op (the ``IMPORTERS`` table).

``import_onnx(path)`` reads the model with the ``onnx`` package, fixes the input size (the
batch is set to 1 for folding), runs ONNX shape inference, folds shape-only subgraphs
(Shape → Gather → Unsqueeze → Concat → Reshape: the ``x.view(x.size(0), -1)`` idiom), maps
every other node onto a spec layer and writes a readable spec: names from the nodes and
initializers, ``inputs:`` only where the graph branches, arguments every layer of a type
shares factored into ``defaults``.

The passes, in order: read (external data from the model's own folder only), every Constant,
folding of constant-only nodes (a table, else onnx's reference evaluator), the pattern
importers (``IMPORTERS``: one per ONNX op, lifting readable layers), then for every node they
refuse the low-level vocabulary (:mod:`cnncalc.interop.onnx_lower`); a tensor no longer laid
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
from cnncalc.layers import REGISTRY
from cnncalc.shapes import fmt_shape

MAX_ONNX_BYTES = 2 * 1024**3  # protobuf's own limit

# ONNX ops whose spec layer type does not exist in this version (none left since the layer
# types of issue 10; kept for the error message of a future op)
PENDING: dict[str, str] = {}
FOLD_MAX_VALUES = 1 << 24  # values a folded constant may have
_READS_TENSORS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
_GROWS = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Pad", "Upsample"}
MAX_LISTED = 60  # refused nodes listed one per line (the rest are counted by op)


@dataclass
class _Refusal:
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
    return len(roles) == len(sp) and all(roles[1 + k] == ((k, shape[2 + k]),) for k in range(sp.nsp))


def _dtype_name(onnx, code: int) -> str:
    """STRING, FLOAT16, …; a code the ONNX enum does not have (a hostile file) is named by its number."""
    try:
        return onnx.TensorProto.DataType.Name(code)
    except ValueError:
        return f"data type {int(code)} (not an ONNX type)"


def _show(name: str, limit: int = 120) -> str:
    """A name for a message: control characters escaped, long names shortened, quoted."""
    s = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(name))
    return repr(s[:limit] + ("..." if len(s) > limit else ""))


@dataclass
class Item:
    """One spec layer being built."""
    kind: str
    args: dict
    name: str
    inputs: list[str]  # spec layer names ("input" for the network input)
    raw: str = ""  # the ONNX node name it came from


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


def spec_shape(dims) -> tuple:
    """ONNX dims without the batch (C, H, W) → spec (H, W, C)."""
    dims = tuple(int(d) for d in dims)
    if len(dims) == 1:
        return dims
    return (*dims[1:], dims[0])


def _module_path(node_name: str, op: str) -> str:
    """'/layer1/layer1.0/conv1/Conv' → 'layer1.0.conv1' (PyTorch's exported node names)."""
    comps = [c for c in node_name.split("/") if c]
    if node_name.startswith("/") and comps and comps[-1].split("_")[0] == op:
        comps = comps[:-1]
    path = ""
    for c in comps:
        path = c if (not path or c.startswith(path + ".")) else f"{path}.{c}"
    return path


class _Importer:
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
        self.state: dict[str, dict] = {}
        self.refused: list[_Refusal] = []
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
        for t in self.g.initializer:
            if t.data_type not in _NUMERIC_TYPES:
                raise InteropError(f"{self.source}: initializer {_show(t.name)} holds "
                                   f"{_dtype_name(onnx, t.data_type)} values; cnncalc reads "
                                   f"numeric tensors only")
            try:
                self.consts[t.name] = onnx.numpy_helper.to_array(t)
            except Exception as e:  # a size that contradicts its dims, …
                raise InteropError(f"{self.source}: initializer {_show(t.name)} is unreadable: "
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
            raise InteropError(f"{self.source}: the input {_show(inp.name)} is {kind}; cnncalc imports "
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
                self.emit(pnode, "padding", {"padding": _pads_arg(*info)}, [src])
                return self.layer_of[tensor]
            what = ("a channels-last Transpose" if kind == "nhwc" else "a strided Slice") + f" ({_show(pname)})"
            raise _Unmapped(node.op_type, node.name, f"reads {what} that only a LayerNormalization over the "
                            f"channels imports exactly" if kind == "nhwc" else
                            f"reads {what} that only a channel Pad (ResNet option A) imports exactly")
        if tensor not in self.layer_of:
            raise _Unmapped(node.op_type, node.name, f"input {tensor!r} is not computed by a mapped layer")
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
                    self._constant(node)
                    constants.add(i)
                except _Unmapped:
                    pass
        for i, node in enumerate(nodes):
            if i in self.skip or i in constants:
                continue
            self.index = i
            bad = next((t for t in node.input if t in self.poisoned), None)
            if bad is not None:  # reads a refused node that could not be kept as a placeholder
                self.refused.append(_Refusal(node.name, node.op_type, f"reads {bad!r}, the output of a refused "
                                             f"node whose shape is unknown", kept=False))
                self.poisoned.update(node.output)
                continue
            if node.op_type == "Constant":
                try:
                    self._constant(node)
                except _Unmapped as u:
                    self._unmapped(node, u)
                continue
            why = self._reads_table(node)
            if why:
                self.refused.append(_Refusal(node.name, node.op_type, why, kept=False))
                self.poisoned.update(o for o in node.output if o)
                continue
            if self._fold(node):
                continue
            if node.op_type in ELEMENTWISE and self._elementwise_region(i):
                continue
            fn = IMPORTERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            try:
                if fn is None:
                    raise _Unmapped(node.op_type, node.name)
                if any(t in self.odd for t in node.input) and not self._reads_as_image(node):
                    # not an N x C x H x W image: low-level ops only
                    raise _Unmapped(node.op_type, node.name, "its input is not laid out as N x C x H x W")
                fn(self, node)
            except _Unmapped as u:
                self._unmapped(node, u)
        refused = self.refused if not self.allow_opaque else [r for r in self.refused if not r.kept]
        if refused:
            raise InteropError(self._refusal_message(refused))
        if not self.items:
            raise InteropError(f"{self.source}: the model has no layers cnncalc can read")

    def _reads_table(self, node) -> str:
        """Why a node that repeats or re-indexes a parameter cannot be folded into a constant
        (LeViT's and EfficientViT's attention biases: a table gathered by constant indices; a
        class token broadcast beyond the batch): the folded tensor would count its values, not
        the parameter's. "" when it is not such a node."""
        if node.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") and node.input and all(
                u in self.consts for u in node.input if u) and any(self._learned(u) for u in node.input[1:] if u):
            return (f"a {node.op_type} of constants only (EdgeNeXt's position encoding, computed from the "
                    f"input's shape alone): folded into a constant it would lose its parameters and MACs, "
                    f"and no spec layer reads a constant input")
        if node.op_type not in ("Gather", "GatherElements", "GatherND", "Expand", "Tile") or not node.input:
            return ""
        t = node.input[0]
        if t not in self.consts or not self._learned(t) or any(u and u not in self.consts for u in node.input[1:]):
            return ""
        if node.op_type == "Expand":  # (the class token expanded to the import batch is folded: same values)
            try:
                full = np.broadcast_shapes(self.consts[t].shape,
                                           tuple(int(v) for v in self.consts[node.input[1]].reshape(-1)))
            except (ValueError, TypeError):
                return ""
            if math.prod(full) == self.consts[t].size:
                return ""
        return (f"it reads the parameter {_show(self.init_names[t])} by constant indices or repeats it (a "
                f"table of learned values): no spec layer counts that table as its parameters")

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
        lines = [f"  node {_show(r.node) if r.node else '(unnamed)'} ({_show(r.op)[1:-1]}): {r.why}" for r in shown]
        if len(refused) > len(shown):
            more = Counter(r.op for r in refused[len(shown):])
            lines.append(f"  ... and {len(refused) - len(shown)} more: " +
                         ", ".join(f"{_show(op)[1:-1]} x{k}" for op, k in more.most_common()))
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
        why = u.why or ("no cnncalc layer type for this op" if u.op not in IMPORTERS else
                        "no exact mapping of this form of the op")
        name = u.node if u.node is not None else node.name
        if not u.hard and node.domain in ("", "ai.onnx"):
            from cnncalc.interop.onnx_lower import LOWERINGS

            low = self._lower(node)
            if low is None:
                return
            if node.op_type in LOWERINGS:  # (else the op has no low-level form at all: why says it)
                why = f"{why}; as low-level ops: {low}" if u.why else f"as low-level ops: {low}"
        kept = not u.hard and self._opaque_layer(node)
        self.refused.append(_Refusal(name, u.op, why, kept))
        if not kept:
            self.poisoned.update(o for o in node.output if o)

    def _learned(self, t) -> bool:
        """An initializer a model trains (its parameters), as opposed to a buffer or a number:
        float, and either named like a parameter or more than one value (exporters fold a
        parameter's reshape into a new initializer named after the op)."""
        a = self.consts.get(t)
        if t not in self.init_names or a is None or a.dtype.kind != "f":
            return False
        t = self.init_names[t]
        named = "." in t and not t.startswith(("onnx::", "/"))
        return named or a.size > 1

    def _lower(self, node) -> str | None:
        """``node`` as low-level layers (cnncalc.interop.onnx_lower); None when done, else why not."""
        from cnncalc.interop.onnx_lower import Operand, Unlowered, lower

        ops = []
        for t in node.input:
            if not t:
                ops.append(None)
            elif t in self.consts:
                v = self.consts[t]
                ops.append(Operand(tuple(v.shape), v, learned=self._learned(t)))
            else:
                shape = self.shape(t)
                if shape is None:
                    return f"the shape of {_show(t)} is unknown"
                src = self._wire(t)
                if src is None:
                    return f"its input {_show(t)} is not computed by an imported layer"
                ops.append(Operand(tuple(shape), name=src, batch=self.batch_of.get(t, 0)))
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
        for out, (item, batch) in zip(node.output, low.outputs):
            if not out:
                continue
            self.layer_of[out] = item
            self.batch_of[out] = batch
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
        return None

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
                self.refused.append(_Refusal(pnode.name, pnode.op_type, f"a {'channels-last transpose' if kind == 'nhwc' else 'strided slice'} "
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

    # ------------------------------------------------------------------ decomposed activations
    def _elementwise_region(self, i) -> bool:
        """Nodes from ``i`` on that compute an elementwise function of one mapped tensor x
        (with scalar constants): torch.onnx.export's GELU (Div, Erf, Add, Mul, Mul), SiLU
        (Sigmoid, Mul), Mish (Softplus, Tanh, Mul), Softplus(β) … . The longest such chain whose
        intermediate tensors are used only inside it is evaluated on sample values and named by
        what it computes (silu, gelu, gelu tanh, mish, hardswish, hardsigmoid, softplus β)."""
        first = self.nodes[i]
        data = [t for t in first.input if t and t not in self.consts]
        if len(set(data)) != 1 or data[0] not in self.layer_of or data[0] in self.pending:
            return False
        x = data[0]
        have, region = {x}, []
        for k in range(i, min(len(self.nodes), i + 40)):
            n = self.nodes[k]
            if k in self.skip:
                continue
            if n.op_type == "Constant" and k > i:
                try:
                    self._constant(n)
                except _Unmapped:
                    break
                continue
            ins = [t for t in n.input if t]
            if n.op_type not in ELEMENTWISE or len(n.output) != 1:
                continue
            if not all(t in have or (t in self.consts and self.consts[t].size == 1) for t in ins):
                continue
            if not any(t in have for t in ins):
                continue
            region.append(k)
            have.add(n.output[0])
            if len(region) >= 12:  # the longest known function (GELU's tanh form) has 9 nodes
                break
        if len(region) < 2:
            return False
        # one pass: evaluate each node once on the probe, and note after which node every
        # intermediate tensor has all its consumers inside (a prefix that may be replaced)
        outs = self.output_names
        vals, open_, uses, ends = {x: _PROBE}, set(), Counter(), []
        with np.errstate(all="ignore"):
            for j, k in enumerate(region):
                n = self.nodes[k]
                try:
                    vals[n.output[0]] = _eval_node(self, n, vals)
                except (KeyError, TypeError, ValueError):
                    break
                for t in n.input:
                    if t in open_:
                        uses[t] += 1
                        if uses[t] == self.n_consumers[t] and t not in outs:
                            open_.discard(t)
                open_.add(n.output[0])
                if j and open_ == {n.output[0]}:
                    ends.append(j + 1)
        found = None
        for end in reversed(ends):
            part = region[:end]
            last = self.nodes[part[-1]].output[0]
            found = _match(vals[last])
            if found is not None:
                break
        if found is not None:
            kind, args = found
            self.skip.update(part)
            uses = sum(1 for k in part for t in self.nodes[k].input if t == x)
            activation(kind, kind)(self, self.nodes[part[-1]], args or None, x=x, uses=uses)
            if x in self.odd:  # elementwise: the layout it reads is the layout it gives
                self.odd.add(last)
            if x in self.batch_of:
                self.batch_of[last] = self.batch_of[x]
            return True
        return False

    # ------------------------------------------------------------------ constant folding
    def _constant(self, node):
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
        raise _Unmapped("Constant", node.name)

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

    def _fold_any(self, node, ins) -> bool:
        """A node of constants only (weight standardisation's ReduceMean over a weight, TF "same"
        padding's Ceil/Mod/Max arithmetic, Equal/Where/CumSum on shapes) evaluated by onnx's
        reference implementation, when its result is small enough to keep."""
        if node.domain not in ("", "ai.onnx") or any(a.type in (5, 10) for a in node.attribute):  # (graphs)
            return False
        outs = [self.shapes.get(o) for o in node.output if o]
        if any(s is None for s in outs):
            if node.op_type in _GROWS or sum(v.size for v in ins if v is not None) > 1 << 16:
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


class _Unmapped(Exception):
    def __init__(self, op, node, why="", hard=False):
        super().__init__(why)
        self.op, self.node, self.why, self.hard = op, node, why, hard


def _axes(imp, node, ins, pos=1):
    a = imp.attr(node, "axes")
    if a is None and len(ins) > pos and ins[pos] is not None:
        a = ins[pos].tolist()
    return a


def _cos_value(imp, node):
    v = imp.attr(node, "value")
    return imp.onnx.numpy_helper.to_array(v).reshape(-1)[0] if v is not None else np.float32(0)


def _erf(v):
    import math
    return np.vectorize(math.erf)(v)


def _softplus(v):
    return np.logaddexp(0.0, v)


EW_EVAL: dict[str, Callable] = {
    "Mul": lambda a, b: a * b, "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Div": lambda a, b: a / b,
    "Pow": lambda a, b: a ** b, "Erf": _erf, "Tanh": np.tanh, "Sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "Softplus": _softplus, "Relu": lambda a: np.maximum(a, 0), "Exp": np.exp, "Log": np.log,
    "Neg": np.negative, "Sqrt": np.sqrt, "HardSwish": lambda a: a * np.clip(a + 3, 0, 6) / 6,
}
ELEMENTWISE = set(EW_EVAL) | {"HardSigmoid", "Clip"}

_PROBE = np.linspace(-6.0, 6.0, 97)
_SQRT2 = np.sqrt(2.0)
KNOWN_FUNCTIONS = [
    ("silu", {}, lambda x: x / (1 + np.exp(-x))),
    ("gelu", {}, lambda x: 0.5 * x * (1 + _erf(x / _SQRT2))),
    ("gelu", {"approximate": "tanh"}, lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    ("mish", {}, lambda x: x * np.tanh(_softplus(x))),
    ("hardswish", {}, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    ("hardsigmoid", {}, lambda x: np.clip(x / 6 + 0.5, 0, 1)),
]


def _eval_node(imp, n, vals):
    """One elementwise node on the probe values (scalar constants as numbers)."""
    ins = [vals[t] if t in vals else np.float64(imp.consts[t].reshape(-1)[0]) for t in n.input if t]
    if n.op_type == "HardSigmoid":
        return np.clip(imp.attr(n, "alpha", 0.2) * ins[0] + imp.attr(n, "beta", 0.5), 0, 1)
    if n.op_type == "Clip":
        lo = ins[1] if len(ins) > 1 else imp.attr(n, "min", -np.inf)
        hi = ins[2] if len(ins) > 2 else imp.attr(n, "max", np.inf)
        return np.clip(ins[0], lo, hi)
    return EW_EVAL[n.op_type](*ins)


_KNOWN_ON_PROBE = None
_QUICK = (5, 40, 48, 60, 90)


def _match(y):
    """(kind, args) of the known function whose values on the probe are ``y``, or None."""
    global _KNOWN_ON_PROBE
    if y.shape != _PROBE.shape:
        return None
    if _KNOWN_ON_PROBE is None:
        with np.errstate(all="ignore"):
            _KNOWN_ON_PROBE = [(kind, args, fn(_PROBE), [float(v) for v in fn(_PROBE)[list(_QUICK)]])
                               for kind, args, fn in KNOWN_FUNCTIONS]
    few = [float(y[k]) for k in _QUICK]  # a few points first: most chains are no known function
    for kind, args, ref, ref_few in _KNOWN_ON_PROBE:
        if all(abs(a - b) <= 1e-6 + 1e-5 * abs(b) for a, b in zip(few, ref_few)) and \
                np.all(np.isfinite(y)) and np.allclose(y, ref, rtol=1e-5, atol=1e-6):
            return kind, args
    if not np.isfinite(y[48]):
        return None
    beta = float(np.log(2.0) / y[48]) if y[48] > 0 else 0.0  # softplus_β(0) = ln 2 / β
    if beta > 0:
        with np.errstate(all="ignore"):
            pts = [float(np.logaddexp(0.0, beta * _PROBE[k]) / beta) for k in _QUICK]
            if all(abs(a - b) <= 1e-6 + 1e-5 * abs(b) for a, b in zip(few, pts)) and \
                    np.all(np.isfinite(y)) and np.allclose(y, _softplus(beta * _PROBE) / beta, rtol=1e-5, atol=1e-6):
                return "softplus", {"beta": float(f"{beta:.6g}")}
    return None


FOLD: dict[str, Callable] = {
    "Gather": lambda imp, n, i: np.take(i[0], i[1], axis=imp.attr(n, "axis", 0)),
    "Unsqueeze": lambda imp, n, i: np.expand_dims(i[0], tuple(_axes(imp, n, i))),
    "Squeeze": lambda imp, n, i: np.squeeze(i[0], tuple(_axes(imp, n, i)) if _axes(imp, n, i) else None),
    "Concat": lambda imp, n, i: np.concatenate([np.atleast_1d(x) for x in i], axis=imp.attr(n, "axis", 0)),
    "Cast": lambda imp, n, i: i[0],
    "ConstantOfShape": lambda imp, n, i: np.full(tuple(int(d) for d in i[0]), _cos_value(imp, n)),
    "Transpose": lambda imp, n, i: np.transpose(i[0], imp.attr(n, "perm")),
    "Reshape": lambda imp, n, i: i[0].reshape([int(d) if d != 0 else i[0].shape[k] for k, d in enumerate(i[1])]),
    "Identity": lambda imp, n, i: i[0],
    "Mul": lambda imp, n, i: i[0] * i[1], "Add": lambda imp, n, i: i[0] + i[1],
    "Sub": lambda imp, n, i: i[0] - i[1], "Div": lambda imp, n, i: i[0] // i[1]
    if i[0].dtype.kind in "iu" else i[0] / i[1],
    "ReduceProd": lambda imp, n, i: np.prod(i[0], keepdims=bool(imp.attr(n, "keepdims", 1))),
    "Slice": lambda imp, n, i: i[0][tuple(slice(None) for _ in range(int((i[3] if len(i) > 3 and i[3] is not None else [0])[0])))
                                      + (slice(int(i[1][0]), int(i[2][0]), int(i[4][0]) if len(i) > 4 and i[4] is not None else 1),)]
    if len(i[1]) == 1 else (_ for _ in ()).throw(ValueError()),
}


# ----------------------------------------------------------------------------- op importers
def _ints(v, n):
    return list(v) if v is not None else [n]


def _compact(vals):
    vals = [int(v) for v in vals]
    return vals[0] if len(set(vals)) == 1 else vals


def _pads_arg(lo, hi):
    if all(a == b for a, b in zip(lo, hi)):
        return _compact(lo)
    return [[int(a), int(b)] for a, b in zip(lo, hi)]


def _window(imp, node, in_sp, kernel, *, default_stride=1):
    nd = len(kernel)
    strides = list(imp.attr(node, "strides", [default_stride] * nd))
    dil = list(imp.attr(node, "dilations", [1] * nd))
    pads = list(imp.attr(node, "pads", [0] * (2 * nd)))
    if (len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd or any(v < 1 for v in (*strides, *dil, *kernel))
            or any(p < 0 for p in pads)):
        raise _Unmapped(node.op_type, node.name, f"an invalid window (kernel {list(kernel)}, strides {strides}, "
                        f"dilations {dil}, pads {pads}): each must be ≥ 1 (pads ≥ 0), one per spatial axis",
                        hard=True)
    lo, hi = pads[:nd], pads[nd:]
    auto = imp.attr(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        lo, hi = [], []
        for n, k, s, d in zip(in_sp, kernel, strides, dil):
            ext = d * (k - 1) + 1
            total = max((-(-n // s) - 1) * s + ext - n, 0)
            small, big = total // 2, total - total // 2
            lo.append(small if auto == "SAME_UPPER" else big)
            hi.append(big if auto == "SAME_UPPER" else small)
    elif auto == "VALID":
        lo, hi = [0] * nd, [0] * nd
    return strides, dil, lo, hi


def _rounding(imp, in_sp, kernel, strides, dil, lo, hi, ceil=False):
    inexact = any((n + a + b - (d * (k - 1) + 1)) % s for n, k, s, d, a, b in
                  zip(in_sp, kernel, strides, dil, lo, hi))
    if not inexact:
        return None
    return "ceil" if ceil else "floor"


def _nchw(imp, tensor, node):
    s = imp.shape(tensor)
    if s is None:
        raise _Unmapped(node.op_type, node.name, f"the shape of {tensor!r} is unknown")
    return s


def _take_pad(imp, node, x, nd):
    """A zero Pad feeding this node (F.pad before a conv) adds to its padding."""
    if x in imp.pending and imp.pending[x][0] == "pad":
        _, src, (plo, phi), _ = imp.pending.pop(x)
        return src, plo, phi
    return x, [0] * nd, [0] * nd


def conv(imp: _Importer, node):
    x = node.input[0]
    W = imp.const(node.input[1])
    if W is None:
        raise _Unmapped("Conv", node.name, "weights that are not constants")
    B = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    F, cg, *k = W.shape
    nd = len(k)
    x, plo, phi = _take_pad(imp, node, x, nd)
    xs = _nchw(imp, x, node)
    c, in_sp = xs[1], xs[2:]
    if list(imp.attr(node, "kernel_shape", k)) != list(k):
        raise _Unmapped("Conv", node.name, f"kernel_shape {list(imp.attr(node, 'kernel_shape'))} contradicts "
                        f"the weight's {list(W.shape)}", hard=True)
    g = imp.attr(node, "group", 1)
    if W.dtype.kind != "f" or g < 1 or c % g or cg * g != c or F % g:
        raise _Unmapped("Conv", node.name, f"a weight {list(W.shape)} ({W.dtype}) that does not fit {c} input "
                        f"channels in {g} group(s)", hard=True)
    strides, dil, lo, hi = _window(imp, node, in_sp, k)
    lo = [a + b for a, b in zip(lo, plo)]
    hi = [a + b for a, b in zip(hi, phi)]
    if g == c and g > 1 and F % c == 0:
        kind, args = "dwconv", {"dwconv": _compact(k)}
        if F // c != 1:
            args["multiplier"] = F // c
    else:
        kind, args = "conv", {"conv": int(F), "kernel": _compact(k)}
    if any(s != 1 for s in strides):
        args["stride"] = _compact(strides)
    if any(lo) or any(hi):
        args["pad"] = _pads_arg(lo, hi)
    if any(d != 1 for d in dil):
        args["dilation"] = _compact(dil)
    if kind == "conv" and g != 1:
        args["groups"] = int(g)
    if B is None:
        args["bias"] = False
    r = _rounding(imp, in_sp, k, strides, dil, lo, hi)
    if r:
        args["rounding"] = r
    p = {"weight": W}
    if B is not None:
        p["bias"] = B
    imp.emit(node, kind, args, [x], weight=node.input[1], params=p)


def conv_transpose(imp, node):
    W = imp.const(node.input[1])
    if W is None:
        raise _Unmapped("ConvTranspose", node.name, "weights that are not constants")
    if imp.attr(node, "output_shape") is not None or imp.attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise _Unmapped("ConvTranspose", node.name, "output_shape / auto_pad (give explicit pads)")
    B = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    C, fg, *k = W.shape
    nd = len(k)
    g = imp.attr(node, "group", 1)
    strides = list(imp.attr(node, "strides", [1] * nd))
    dil = list(imp.attr(node, "dilations", [1] * nd))
    pads = list(imp.attr(node, "pads", [0] * (2 * nd)))
    op = list(imp.attr(node, "output_padding", [0] * nd))
    if (g < 1 or W.dtype.kind != "f" or C % g or len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd
            or any(v < 1 for v in (*strides, *dil, *k)) or any(v < 0 for v in (*pads, *op))):
        raise _Unmapped("ConvTranspose", node.name, f"an invalid window or weight (kernel {k}, strides {strides}, "
                        f"dilations {dil}, pads {pads}, groups {g})", hard=True)
    args = {"deconv": int(fg * g), "kernel": _compact(k)}
    if any(s != 1 for s in strides):
        args["stride"] = _compact(strides)
    if any(pads):
        args["pad"] = _pads_arg(pads[:nd], pads[nd:])
    if any(op):
        args["output_padding"] = _compact(op)
    if any(d != 1 for d in dil):
        args["dilation"] = _compact(dil)
    if g != 1:
        args["groups"] = int(g)
    if B is None:
        args["bias"] = False
    p = {"weight": W, **({"bias": B} if B is not None else {})}
    imp.emit(node, "deconv", args, [node.input[0]], weight=node.input[1], params=p)


def gemm(imp, node):
    A, Bn = node.input[0], node.input[1]
    W = imp.const(Bn)
    if W is None or imp.attr(node, "transA", 0) or W.ndim != 2:
        raise _Unmapped("Gemm", node.name, "a Gemm whose second input is not a constant matrix")
    W = W if imp.attr(node, "transB", 0) else W.T
    alpha, beta = imp.attr(node, "alpha", 1.0), imp.attr(node, "beta", 1.0)
    W = W * alpha if alpha != 1.0 else W
    C = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    args = {"fc": int(W.shape[0])}
    p = {"weight": np.ascontiguousarray(W)}
    if C is None:
        args["bias"] = False
    else:
        p["bias"] = np.broadcast_to(C * beta, (W.shape[0],)).copy() if C.size in (1, W.shape[0]) else None
        if p["bias"] is None:
            raise _Unmapped("Gemm", node.name, "a bias that is not one value per unit")
    imp.emit(node, "fc", args, [A], weight=Bn, params=p)


def matmul(imp, node):
    W = imp.const(node.input[1])
    xs = imp.shape(node.input[0])
    if W is None or W.ndim != 2 or xs is None or len(xs) != 2:
        raise _Unmapped("MatMul", node.name, "only a flat input times a constant matrix is an fc layer")
    imp.emit(node, "fc", {"fc": int(W.shape[1]), "bias": False}, [node.input[0]], weight=node.input[1],
             params={"weight": np.ascontiguousarray(W.T)})


def add(imp, node):
    ks = [imp.const(t) for t in node.input]
    if len(node.input) == 2 and sum(k is not None for k in ks) == 1:
        j = 0 if ks[0] is None else 1
        xs = imp.shape(node.input[j])
        k = ks[1 - j]
        if (k.dtype.kind == "f" and not np.any(k) and not imp._learned(node.input[1 - j]) and xs is not None
                and k.ndim <= len(xs) and np.broadcast_shapes(tuple(xs), k.shape) == tuple(xs)):
            # x + 0 with a zero that is no parameter (MobileOne's train form); a zero-initialised
            # bias (ConvNeXt-V2's GRN) is a parameter and stays
            imp.alias(node, node.input[j])
            return
    if any(k is not None for k in ks):
        # MatMul + Add(bias) = fc with a bias
        if len(node.input) == 2:
            j = 0 if ks[0] is None else 1
            b = ks[1 - j]
            prod = imp.layer_of.get(node.input[j])
            it = imp.by_name.get(prod)
            if (it is not None and it.kind == "fc" and it.args.get("bias") is False and not it.args.get("activation")
                    and imp.single_use(node.input[j]) and b.size == it.args["fc"]):
                del it.args["bias"]
                imp.params[it.name]["bias"] = b.reshape(-1).astype(np.float32)
                imp.layer_of[node.output[0]] = it.name
                return
        raise _Unmapped(node.op_type, node.name, "adding a constant")
    imp.emit(node, "add", {"add": None}, list(node.input))


def pool(kind, onnx_op):
    def f(imp, node):
        x = node.input[0]
        if len(node.output) > 1 and node.output[1] and imp.n_consumers[node.output[1]]:
            raise _Unmapped(onnx_op, node.name, "pooling indices")
        xs = _nchw(imp, x, node)
        in_sp = xs[2:]
        k = list(imp.attr(node, "kernel_shape"))
        strides, dil, lo, hi = _window(imp, node, in_sp, k)
        ceil = bool(imp.attr(node, "ceil_mode", 0))
        args = {kind: _compact(k)}
        if strides != k:
            args["stride"] = _compact(strides)
        if any(lo) or any(hi):
            args["pad"] = _pads_arg(lo, hi)
        if any(d != 1 for d in dil):
            args["dilation"] = _compact(dil)
        r = _rounding(imp, in_sp, k, strides, dil, lo, hi, ceil)
        if r:
            args["rounding"] = r
        if kind == "avgpool" and not imp.attr(node, "count_include_pad", 0) and (any(lo) or any(hi) or r == "ceil"):
            args["count_include_pad"] = False
        imp.emit(node, kind, args, [x])
    return f


def simple(kind, **fixed):
    def f(imp, node):
        imp.emit(node, kind, {kind: None, **fixed}, [node.input[0]])
    return f


def activation(kind, op):
    def f(imp, node, args=None, x=None, uses=1):
        x = x or node.input[0]
        prod = imp.layer_of.get(x)
        it = imp.by_name.get(prod)
        fusable = (it is not None and REGISTRY[it.kind].takes_activation and not it.args.get("activation")
                   and imp.n_consumers[x] == uses and x not in {o.name for o in imp.g.output} and not args)
        if fusable and imp.cnncalc:
            fusable = node.name == f"{it.raw}/{kind}"
        if fusable:
            it.args["activation"] = kind
            imp.layer_of[node.output[0]] = it.name
            if imp.shape(x) is not None:
                imp.shapes[node.output[0]] = imp.shape(x)
            return
        imp.emit(node, kind, {kind: None, **(args or {})}, [x])
    return f


def hardsigmoid(imp, node):
    alpha, beta = float(imp.attr(node, "alpha", 0.2)), float(imp.attr(node, "beta", 0.5))
    if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-6:
        raise _Unmapped("HardSigmoid", node.name, f"alpha {alpha:g}, beta {beta:g} (the layer is PyTorch's "
                        "relu6(x + 3)/6: alpha 1/6, beta 0.5)")
    activation("hardsigmoid", "HardSigmoid")(imp, node)


def elu(imp, node):
    alpha = float(imp.attr(node, "alpha", 1.0))
    activation("elu", "Elu")(imp, node, None if abs(alpha - 1.0) < 1e-9 else {"alpha": float(f"{alpha:.6g}")})


def selu(imp, node):
    a, g = float(imp.attr(node, "alpha", 1.67326319217681884765625)), float(imp.attr(node, "gamma", 1.05070102214813232421875))
    if abs(a - 1.6732632) > 1e-5 or abs(g - 1.0507010) > 1e-5:
        raise _Unmapped("Selu", node.name, "alpha/gamma other than SELU's constants")
    activation("selu", "Selu")(imp, node)


def gelu(imp, node):
    approx = imp.attr(node, "approximate", b"none")
    approx = approx.decode() if isinstance(approx, bytes) else approx
    activation("gelu", "Gelu")(imp, node, {"approximate": "tanh"} if approx == "tanh" else None)


def prelu(imp, node):
    w = imp.const(node.input[1])
    xs = _nchw(imp, node.input[0], node)
    if w is None or w.size not in (1, xs[1]):
        raise _Unmapped("PRelu", node.name, "slopes that are neither one per channel nor one")
    args = {"prelu": "shared"} if w.size == 1 and xs[1] != 1 else {"prelu": None}
    imp.emit(node, "prelu", args, [node.input[0]], weight=node.input[1],
             params={"weight": w.reshape(-1).astype(np.float32)})


def mul(imp, node):
    ks = [imp.const(t) for t in node.input]
    if all(k is None for k in ks):
        a, b = (_nchw(imp, t, node) for t in node.input)
        if len(a) != len(b):
            raise _Unmapped("Mul", node.name, "a product of tensors of different ranks")
        imp.emit(node, "mul", {"mul": None}, list(node.input))
        return
    j = 0 if ks[0] is None else 1
    g = ks[1 - j]
    xs = _nchw(imp, node.input[j], node)
    c = xs[1] if len(xs) > 1 else None
    if g is None or c is None or g.ndim > len(xs) or g.size != c or g.dtype.kind != "f":
        raise _Unmapped("Mul", node.name, "multiplying by a constant that is not one value per channel")
    full = (1,) * (len(xs) - g.ndim) + tuple(g.shape)  # lined up from the right, as ONNX broadcasts
    if full[1] != c or any(d != 1 for k, d in enumerate(full) if k != 1):
        raise _Unmapped("Mul", node.name, "multiplying by a constant that is not one value per channel")
    imp.emit(node, "scale", {"scale": None}, [node.input[j]], weight=node.input[1 - j],
             params={"gamma": g.reshape(-1).astype(np.float32)})


def _unit_affine(imp, scale, bias) -> bool:
    """ONNX requires γ (and InstanceNormalization β): ones/zeros that are not parameters (not
    named like one) stand for ``affine: false``."""
    s, b = imp.const(scale), imp.const(bias) if bias else None
    named = scale.endswith((".weight", "/gamma", ".gamma")) and not scale.endswith("unit_scale")
    return (s is not None and not named and np.all(s == 1) and (b is None or np.all(b == 0)))


def _affine_params(imp, node, xs_c):
    scale, bias = node.input[1], node.input[2] if len(node.input) > 2 and node.input[2] else None
    if _unit_affine(imp, scale, bias):
        return {"affine": False}, None
    s = imp.const(scale)
    b = imp.const(bias) if bias else np.zeros_like(s)
    if s is None or b is None:
        raise _Unmapped(node.op_type, node.name, "a scale or bias that is not a constant")
    return {}, {"gamma": s.astype(np.float32), "beta": b.astype(np.float32)}


def _eps(imp, node, args):
    eps = float(imp.attr(node, "epsilon", 1e-5))
    if abs(eps - 1e-5) > 1e-12:
        args["eps"] = float(f"{eps:.6g}")
    return args


def _consumer(imp, tensor, op):
    """The index of the one node that reads ``tensor``, if it is an ``op``; else None."""
    if not imp.single_use(tensor):
        return None
    ks = [k for k in imp.consumers.get(tensor, ()) if k > imp.index]
    return ks[0] if len(ks) == 1 and imp.nodes[ks[0]].op_type == op else None


def transpose(imp, node):
    xs = _nchw(imp, node.input[0], node)
    r = len(xs)
    perm = list(imp.attr(node, "perm", []))
    if r > 2 and perm == [0, *range(2, r), 1] and _consumer(imp, node.output[0], "LayerNormalization") is not None:
        imp.pending[node.output[0]] = ("nhwc", node.input[0], None, node.name)
        imp.pending_node[node.output[0]] = node
        return
    raise _Unmapped("Transpose", node.name, "a transpose other than channels-last around a LayerNormalization")


def layernorm(imp, node):
    x = node.input[0]
    if x in imp.pending and imp.pending[x][0] == "nhwc":
        _, src, _, _ = imp.pending[x]
        xs = _nchw(imp, src, node)
        r = len(xs)
        axis = imp.attr(node, "axis", -1) % r
        if axis != r - 1:
            raise _Unmapped("LayerNormalization", node.name, f"a channels-last LayerNorm from axis {axis}: it "
                            "normalises more than the channels")
        k = _consumer(imp, node.output[0], "Transpose")
        if k is None or list(imp.attr(imp.nodes[k], "perm")) != [0, r - 1, *range(1, r - 1)]:
            users = sorted({imp.nodes[k].op_type for k in imp.consumers.get(node.output[0], ())})
            raise _Unmapped("LayerNormalization", node.name, "a LayerNorm over the channels whose result stays "
                            f"channels-last (it feeds {', '.join(users) or 'nothing'}, not one Transpose back)")
        imp.pending.pop(x)
        back = imp.nodes[k]
        imp.skip.add(k)
        extra, p = _affine_params(imp, node, xs[1])
        name = imp.name_for(back) if imp.cnncalc else imp.name_for(node, node.input[1])
        imp.emit(node, "layernorm", _eps(imp, node, {"layernorm": None, **extra}), [src], out=back.output[0],
                 name=name, params=p)
        return
    xs = _nchw(imp, x, node)
    r = len(xs)
    axis = imp.attr(node, "axis", -1) % r
    if axis != 1:
        raise _Unmapped("LayerNormalization", node.name, "normalising axes other than C (flat) or C, H, W")
    extra, p = _affine_params(imp, node, xs[1])
    if p is not None:
        p = {k: v.reshape(xs[1:]) if r > 2 else v.reshape(-1) for k, v in p.items()}
    over = "all" if r > 2 else None
    imp.emit(node, "layernorm", _eps(imp, node, {"layernorm": over, **extra}), [x], weight=node.input[1], params=p)


def instancenorm(imp, node):
    xs = _nchw(imp, node.input[0], node)
    extra, p = _affine_params(imp, node, xs[1])
    imp.emit(node, "instancenorm", _eps(imp, node, {"instancenorm": None, **extra}), [node.input[0]],
             weight=node.input[1], params=p)


def _groupnorm(imp, node, xs, groups) -> bool:
    """torch.onnx.export's GroupNorm (opset < 18): Reshape (N, G, -1) → InstanceNormalization
    (unit γ) → Reshape back → Mul γ → Add β. True when ``node`` starts it (and it was imported)."""
    k1 = _consumer(imp, node.output[0], "InstanceNormalization")
    if k1 is None:
        return False
    inorm = imp.nodes[k1]
    if not _unit_affine(imp, inorm.input[1], inorm.input[2] if len(inorm.input) > 2 else None):
        return False
    saved, imp.index = imp.index, k1
    k2 = _consumer(imp, inorm.output[0], "Reshape")
    imp.index = saved
    if k2 is None:
        return False
    chain, last = [k1, k2], imp.nodes[k2].output[0]
    params, nsp = {}, len(xs) - 2
    for op, pname in (("Mul", "gamma"), ("Add", "beta")):
        saved, imp.index = imp.index, chain[-1]
        k = _consumer(imp, last, op)
        imp.index = saved
        if k is None:
            break
        other = [t for t in imp.nodes[k].input if t != last]
        v = imp.const(other[0]) if len(other) == 1 else None
        if v is None or v.size != xs[1]:
            break
        params[pname] = v.reshape(-1).astype(np.float32)
        chain.append(k)
        last = imp.nodes[k].output[0]
    if len(params) == 1:
        return False
    imp.skip.update(chain)
    args = _eps(imp, inorm, {"groupnorm": int(groups)})
    if not params:
        args["affine"] = False
    final = imp.nodes[chain[-1]]
    name = imp.name_for(final) if imp.cnncalc else imp.name_for(node)
    imp.emit(node, "groupnorm", args, [node.input[0]], out=last, name=name, params=params or None)
    return True


def resize(imp, node):
    xs = _nchw(imp, node.input[0], node)
    nsp = len(xs) - 2
    mode = imp.attr(node, "mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    ctm = imp.attr(node, "coordinate_transformation_mode", b"half_pixel")
    ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
    if node.op_type == "Upsample":
        scales, sizes = imp.const(node.input[1]) if len(node.input) > 1 else imp.attr(node, "scales"), None
        ctm = "asymmetric"
    else:
        scales = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        sizes = imp.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if scales is not None and np.size(scales) == 0:
        scales = None
    if (scales is None) == (sizes is None):
        raise _Unmapped(node.op_type, node.name, "scales or sizes that are not constants")
    if scales is not None:
        scales = [float(v) for v in scales]
        if scales[:2] != [1.0, 1.0]:
            raise _Unmapped(node.op_type, node.name, "resizing the batch or channel axis")
        out = [int(np.floor(n * f)) for n, f in zip(xs[2:], scales[2:])]
    else:
        out = [int(v) for v in sizes][2:]
    args = {}
    if all(o % n == 0 for o, n in zip(out, xs[2:])):
        args["upsample"] = _compact([o // n for o, n in zip(out, xs[2:])])
    else:
        args.update(upsample=None, size="x".join(map(str, out)))
    if mode == "nearest":
        nm = imp.attr(node, "nearest_mode", b"round_prefer_floor")
        nm = nm.decode() if isinstance(nm, bytes) else nm
        if ctm != "asymmetric" or (node.op_type == "Resize" and nm != "floor"):
            raise _Unmapped(node.op_type, node.name, f"nearest with {ctm}/{nm} (PyTorch's nearest is asymmetric/floor)")
    elif mode == "linear":
        if ctm not in ("align_corners", "half_pixel", "pytorch_half_pixel"):
            raise _Unmapped(node.op_type, node.name, f"linear with coordinate_transformation_mode {ctm}")
        args["mode"] = {1: "linear", 2: "bilinear", 3: "trilinear"}[nsp]
        if ctm == "align_corners":
            args["align_corners"] = True
    else:
        raise _Unmapped(node.op_type, node.name, f"mode {mode} (nearest and linear are layer types)")
    if any(o < n for o, n in zip(out, xs[2:])):
        raise _Unmapped(node.op_type, node.name, "downsampling")
    imp.emit(node, "upsample", args, [node.input[0]])


def leaky(imp, node):
    alpha = float(imp.attr(node, "alpha", 0.01))
    args = None if abs(alpha - 0.01) < 1e-9 else {"alpha": round(alpha, 9)}
    activation("leakyrelu", "LeakyRelu")(imp, node, args)


def clip(imp, node):
    lo = imp.const(node.input[1]) if len(node.input) > 1 and node.input[1] else imp.attr(node, "min")
    hi = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else imp.attr(node, "max")
    if lo is None or hi is None or float(lo) != 0.0 or float(hi) != 6.0:
        raise _Unmapped("Clip", node.name, "only Clip(0, 6) is relu6")
    activation("relu6", "Clip")(imp, node)


def softmax(imp, node):
    xs = _nchw(imp, node.input[0], node)
    axis = imp.attr(node, "axis", -1 if imp.opset >= 13 else 1)
    if axis % len(xs) != 1 or (imp.opset < 13 and len(xs) > 2):
        raise _Unmapped("Softmax", node.name, "softmax over an axis other than the channels")
    activation("softmax", "Softmax")(imp, node)


def dropout(imp, node):
    r = imp.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    p = float(r) if r is not None else float(imp.attr(node, "ratio", 0.5))
    args = {"dropout": round(p, 9)}
    imp.emit(node, "dropout", args, [node.input[0]])


def batchnorm(imp, node):
    ts = [imp.const(t) for t in node.input[1:5]]
    if any(t is None for t in ts):
        raise _Unmapped("BatchNormalization", node.name, "statistics that are not constants")
    eps = float(imp.attr(node, "epsilon", 1e-5))
    mom = 1.0 - float(imp.attr(node, "momentum", 0.9))
    args = {"batchnorm": None}
    if abs(eps - 1e-5) > 1e-12:
        args["eps"] = float(f"{eps:.6g}")
    if abs(mom - 0.1) > 1e-6:
        args["momentum"] = float(f"{mom:.6g}")
    imp.emit(node, "batchnorm", args, [node.input[0]], weight=node.input[1],
             params={"gamma": ts[0], "beta": ts[1]}, state={"running_mean": ts[2], "running_var": ts[3]})


def lrn(imp, node):
    args = {"lrn": int(imp.attr(node, "size")), "alpha": float(f"{imp.attr(node, 'alpha', 1e-4):.6g}"),
            "beta": float(f"{imp.attr(node, 'beta', 0.75):.6g}"), "k": float(f"{imp.attr(node, 'bias', 1.0):.6g}")}
    imp.emit(node, "lrn", args, [node.input[0]])


def concat(imp, node):
    if len([t for t in node.input if t]) == 1:  # torchvision/timm DenseNet: torch.cat([x], 1) is x
        imp.alias(node, next(t for t in node.input if t))
        return
    s = _nchw(imp, node.output[0], node)
    if imp.attr(node, "axis") % len(s) != 1:
        raise _Unmapped("Concat", node.name, "concatenation along an axis other than the channels")
    imp.emit(node, "concat", {"concat": None}, list(node.input))


def flatten(imp, node):
    xs = _nchw(imp, node.input[0], node)
    if imp.attr(node, "axis", 1) != 1:
        raise _Unmapped("Flatten", node.name, "flatten from an axis other than 1")
    nxt = [imp.nodes[k] for k in imp.consumers.get(node.output[0], ())]
    if len(xs) == 2 or (imp.cnncalc and node.name.endswith("/flatten") and nxt and nxt[0].op_type == "Gemm"):
        imp.alias(node, node.input[0])  # already flat, or the helper in front of an fc
        return
    imp.emit(node, "flatten", {"flatten": None}, [node.input[0]])


def reshape(imp, node):
    target = imp.const(node.input[1])
    xs = _nchw(imp, node.input[0], node)
    if target is None:
        raise _Unmapped("Reshape", node.name, "a target shape that depends on the data")
    t = [int(v) for v in target]
    t = [xs[i] if v == 0 and i < len(xs) else v for i, v in enumerate(t)]
    n = math.prod(xs)
    if t.count(-1) > 1 or any(v < -1 for v in t):
        raise _Unmapped("Reshape", node.name, f"an invalid target shape {t}", hard=True)
    if -1 in t:
        known = math.prod(v for v in t if v != -1)
        if known == 0 or n % known:
            raise _Unmapped("Reshape", node.name, f"a reshape of {n} values to {t}", hard=True)
        t[t.index(-1)] = n // known
    if math.prod(t) != n:
        raise _Unmapped("Reshape", node.name, f"a reshape of {list(xs)} ({n} values) to {t} "
                        f"({math.prod(t)} values)", hard=True)
    if len(t) == 3 and t[0] == xs[0] and len(xs) > 2 and xs[1] % t[1] == 0 and t[1] * t[2] == int(np.prod(xs[1:])):
        if _groupnorm(imp, node, xs, t[1]):
            return
    if len(t) == 2 and t[0] == xs[0]:
        if len(xs) == 2:
            imp.alias(node, node.input[0])
        else:
            imp.emit(node, "flatten", {"flatten": None}, [node.input[0]])
        return
    if len(t) == len(xs) + 1 and len(xs) >= 3 and t[0] == xs[0] and t[1] * t[2] == xs[1] and t[3:] == list(xs[2:]):
        # channel shuffle: Reshape(N, g, C/g, H, W) → Transpose(0, 2, 1, ...) → Reshape(N, C, H, W)
        j = imp.index
        tr = [k for k in imp.consumers.get(node.output[0], ()) if k > j]
        if len(tr) == 1 and imp.nodes[tr[0]].op_type == "Transpose" and imp.single_use(node.output[0]):
            perm = list(imp.attr(imp.nodes[tr[0]], "perm"))
            if perm == [0, 2, 1, *range(3, len(t))]:
                tnode = imp.nodes[tr[0]]
                rs = [k for k in imp.consumers.get(tnode.output[0], ()) if k > tr[0]]
                if len(rs) == 1 and imp.nodes[rs[0]].op_type == "Reshape":
                    last = imp.nodes[rs[0]]
                    back = imp.const(last.input[1])
                    if back is not None and [int(v) for v in back][1:] in ([xs[1], *xs[2:]], [-1, *xs[2:]]):
                        imp.skip.update({tr[0], rs[0]})
                        name = imp.name_for(last) if imp.cnncalc else None
                        imp.emit(last, "channel_shuffle", {"channel_shuffle": int(t[1])}, [node.input[0]],
                                 name=name)
                        return
    if tuple(t) == tuple(xs):
        imp.alias(node, node.input[0])
        return
    raise _Unmapped("Reshape", node.name, f"a reshape {list(xs)} → {t}")


def identity(imp, node):
    imp.emit(node, "identity", {"identity": None}, [node.input[0]])


def global_reduce(imp, node):
    axes = _axes(imp, node, [imp.const(t) for t in node.input])
    xs = _nchw(imp, node.input[0], node)
    if axes is None or sorted(a % len(xs) for a in axes) != list(range(2, len(xs))):
        raise _Unmapped(node.op_type, node.name, "a reduction over axes other than the spatial ones")
    kind = "global_avgpool" if node.op_type == "ReduceMean" else "global_maxpool"
    if imp.attr(node, "keepdims", 1):
        imp.emit(node, kind, {kind: None}, [node.input[0]])
    else:
        it = imp.emit(node, kind, {kind: None}, [node.input[0]], out=node.output[0] + "#pool")
        imp.emit(node, "flatten", {"flatten": None}, [node.output[0] + "#pool"], name=it.name + ".flatten")


def slice_(imp, node):
    xs = _nchw(imp, node.input[0], node)
    ins = [imp.const(t) if t else None for t in node.input]
    if any(v is None for v in ins[1:]):
        raise _Unmapped("Slice", node.name, "slice bounds that depend on the data")
    starts, ends = [int(v) for v in ins[1]], [int(v) for v in ins[2]]
    axes = [int(a) % len(xs) for a in ins[3]] if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = [int(v) for v in ins[4]] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    if axes == [1] and steps == [1]:
        c = xs[1]
        lo, hi = max(starts[0], 0) if starts[0] >= 0 else c + starts[0], min(ends[0], c) if ends[0] >= 0 else c + ends[0]
        w = hi - lo
        if w > 0 and c % w == 0 and lo % w == 0:
            imp.emit(node, "split", {"split": c // w, "part": lo // w}, [node.input[0]])
            return
    if axes and all(a >= 2 for a in axes) and all(s == 1 for s in steps):
        lohi = [[0, 0] for _ in xs[2:]]
        for a, st, en in zip(axes, starts, ends):
            n = xs[a]
            lo = min(max(st + n if st < 0 else st, 0), n)
            hi = min(max(en + n if en < 0 else en, 0), n)
            lohi[a - 2] = [lo, n - hi]
        if not any(map(any, lohi)):
            imp.alias(node, node.input[0])
            return
        imp.emit(node, "crop", {"crop": _pads_arg([a for a, _ in lohi], [b for _, b in lohi])}, [node.input[0]])
        return
    if sorted(axes) == list(range(2, len(xs))) and all(s == 0 for s in starts) and all(e >= xs[a] for e, a in zip(ends, axes)):
        order = sorted(range(len(axes)), key=lambda i: axes[i])
        imp.pending[node.output[0]] = ("slice", node.input[0], [steps[i] for i in order], node.name)
        imp.pending_node[node.output[0]] = node
        return
    raise _Unmapped("Slice", node.name)


def pad(imp, node):
    xs = _nchw(imp, node.input[0], node)
    pads = imp.const(node.input[1]) if len(node.input) > 1 else imp.attr(node, "pads")
    mode = imp.attr(node, "mode", b"constant")
    value = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if pads is None or mode not in ("constant", "reflect", "edge") or (value is not None and float(value) != 0.0) \
            or (len(node.input) > 3 and node.input[3]):
        raise _Unmapped("Pad", node.name, "a padding that is not zero / reflect / edge with constant amounts")
    pads = [int(p) for p in pads]
    r = len(xs)
    lo, hi = pads[:r], pads[r:]
    if lo[0] or hi[0] or any(p < 0 for p in pads):
        raise _Unmapped("Pad", node.name)
    if not lo[1] and not hi[1] and (mode != "constant" or imp.cnncalc):  # a padding layer
        spec_mode = {"constant": "zero", "reflect": "reflect", "edge": "replicate"}[mode]
        imp.emit(node, "padding", {"padding": _pads_arg(lo[2:], hi[2:]),
                                   **({"mode": spec_mode} if spec_mode != "zero" else {})}, [node.input[0]])
        return
    if mode != "constant":
        raise _Unmapped("Pad", node.name, "reflect/edge padding of the channels")
    if not any(lo[2:]) and not any(hi[2:]):  # channels only: pad_channels (ResNet option A)
        x, strides = node.input[0], [1] * (r - 2)
        if x in imp.pending and imp.pending[x][0] == "slice":
            _, x, strides, _ = imp.pending.pop(x)
        args = {"pad_channels": int(xs[1] + lo[1] + hi[1])}
        if any(s != 1 for s in strides):
            args["stride"] = _compact(strides)
        if lo[1]:
            if lo[1] != (lo[1] + hi[1]) // 2:
                raise _Unmapped("Pad", node.name, "an uneven channel padding")
            args["place"] = "both"
        imp.emit(node, "pad_channels", args, [x])
        return
    if not lo[1] and not hi[1]:  # spatial zero padding: folded into the next conv (else a padding layer)
        imp.pending[node.output[0]] = ("pad", node.input[0], (lo[2:], hi[2:]), node.name)
        imp.pad_nodes[node.output[0]] = node
        imp.shapes[node.output[0]] = (*xs[:2], *(n + a + b for n, a, b in zip(xs[2:], lo[2:], hi[2:])))
        return
    raise _Unmapped("Pad", node.name)


def split(imp, node):
    xs = _nchw(imp, node.input[0], node)
    axis = imp.attr(node, "axis", 0) % len(xs)
    sizes = imp.const(node.input[1]) if len(node.input) > 1 and node.input[1] else imp.attr(node, "split")
    parts = len(node.output)
    sizes = [int(s) for s in sizes] if sizes is not None else [xs[1] // parts] * parts
    if axis != 1 or len(set(sizes)) != 1 or sum(sizes) != xs[1]:
        raise _Unmapped("Split", node.name, "only equal channel splits are a split layer")
    base = imp.name_for(node)
    for i, o in enumerate(node.output):
        if o and imp.n_consumers[o]:
            imp.emit(node, "split", {"split": parts, "part": i}, [node.input[0]], out=o, name=f"{base}_{i}")


IMPORTERS: dict[str, Callable] = {
    "Conv": conv, "ConvTranspose": conv_transpose, "Gemm": gemm, "MatMul": matmul,
    "MaxPool": pool("maxpool", "MaxPool"), "AveragePool": pool("avgpool", "AveragePool"),
    "GlobalAveragePool": simple("global_avgpool"), "GlobalMaxPool": simple("global_maxpool"),
    "ReduceMean": global_reduce, "ReduceMax": global_reduce,
    "Relu": activation("relu", "Relu"), "LeakyRelu": leaky, "Clip": clip,
    "Sigmoid": activation("sigmoid", "Sigmoid"), "Tanh": activation("tanh", "Tanh"), "Softmax": softmax,
    "Dropout": dropout, "BatchNormalization": batchnorm, "LRN": lrn,
    "Add": add, "Sum": add, "Concat": concat, "Flatten": flatten, "Reshape": reshape,
    "Identity": identity, "Slice": slice_, "Pad": pad, "Split": split,
    "HardSwish": activation("hardswish", "HardSwish"), "HardSigmoid": hardsigmoid, "Elu": elu, "Selu": selu,
    "Softplus": activation("softplus", "Softplus"), "Mish": activation("mish", "Mish"), "Gelu": gelu,
    "PRelu": prelu, "Mul": mul, "Transpose": transpose, "LayerNormalization": layernorm,
    "InstanceNormalization": instancenorm, "Resize": resize, "Upsample": resize,
}


# ----------------------------------------------------------------------------- the spec text
def _dump(v) -> str:
    import yaml
    return yaml.safe_dump(v, default_flow_style=True, sort_keys=False, width=10**9).strip().removesuffix("\n...")


def _factor_defaults(items: list[Item]) -> dict:
    by_kind: dict[str, list[Item]] = {}
    for it in items:
        by_kind.setdefault(it.kind, []).append(it)
    defaults = {}
    for kind, its in by_kind.items():
        if len(its) < 2 or kind == "opaque":
            continue
        keys = [k for k in its[0].args if k != kind and all(k in i.args for i in its)]
        shared = {k: its[0].args[k] for k in keys if all(i.args[k] == its[0].args[k] for i in its)}
        if shared:
            defaults[kind] = shared
            for i in its:
                for k in shared:
                    del i.args[k]
    return defaults


def _spec_parts(imp: _Importer) -> tuple[dict, list[dict]]:
    """The spec's defaults and layer items (factoring the defaults out of the items' args)."""
    items = imp.items
    defaults = _factor_defaults(items)
    layers = []
    prev = "input"
    for it in items:
        d = {}
        for k, v in it.args.items():
            d[k] = v
        d["name"] = it.name
        if it.inputs != [prev]:
            d["inputs"] = it.inputs if len(it.inputs) > 1 else it.inputs[0]
        layers.append(d)
        prev = it.name
    return defaults, layers


def spec_text(imp: _Importer, name: str) -> str:
    defaults, layers = _spec_parts(imp)
    from cnncalc.escape import comment_text  # a file name with a line break cannot add YAML keys

    lines = [f"# imported by cnncalc from {comment_text(imp.source)}", f"name: {_dump(name)}",
             f"source: {_dump(imp.source_text)}", f"input: {fmt_shape(imp.input_shape)}"]
    if defaults:
        lines.append("defaults:")
        lines += [f"  {k}: {_dump(v)}" for k, v in defaults.items()]
    lines.append("layers:")
    lines += [f"  - {_dump(d)}" for d in layers]
    return "\n".join(lines) + "\n"


def spec_doc(imp: _Importer, name: str) -> dict:
    """What the safe YAML loader reads back from ``spec_text``: the same values (plain
    str/int/float/bool/None, lists and dicts: ``_dump`` can write nothing else), without
    writing and parsing the text (the YAML parser reads ~100 KB/s; a 50,000-layer model's
    spec is megabytes, over the spec_bytes limit meant for files people write)."""
    defaults, layers = _spec_parts(imp)
    doc = {"name": name, "source": imp.source_text, "input": fmt_shape(imp.input_shape)}
    if defaults:
        doc["defaults"] = defaults
    doc["layers"] = layers
    return doc


# ----------------------------------------------------------------------------- entry points
def read_model(path: str | Path):
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
    _load_external_data(model, p)
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise InteropError(f"{path}: the ONNX checker rejects the model: {str(e).splitlines()[0][:300]}") from None
    return model


def _load_external_data(model, path: Path):
    """Tensors stored outside the .onnx file are read from the model's own folder, through
    onnx's checked opener (an absolute location, one with '..', or a symlink is refused), and
    their total size is bounded like the file's."""
    onnx = require("onnx")
    ext = [t for t in _all_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    if not ext:
        return
    total = 0
    for t in ext:
        try:
            info = onnx.external_data_helper.ExternalDataInfo(t)
        except Exception as e:
            raise InteropError(f"{path}: tensor {t.name!r} has unreadable external-data fields: {str(e)[:200]}") from None
        n = info.length if info.length else 0
        total += n
        if total > MAX_ONNX_BYTES:
            raise InteropError(f"{path}: the external data is over {MAX_ONNX_BYTES:,} bytes")
        try:
            onnx.external_data_helper.load_external_data_for_tensor(t, str(path.parent))
        except Exception as e:  # onnx's checks: outside the folder, a symlink, missing file, short read
            raise InteropError(f"{path}: the external data of tensor {t.name!r} (location {info.location!r}) "
                               f"cannot be read from the model's folder {str(path.parent)!r}: "
                               f"{str(e).splitlines()[0][:200]}") from None


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
    imp = _Importer(model, source=source, opaque=opaque, input_shape=input_shape)
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
    return import_model(read_model(path), source=str(path), input_shape=input_shape, opaque=opaque)


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
