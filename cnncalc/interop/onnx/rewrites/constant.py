"""Layers of constants only: a learned op whose every input is a constant (EdgeNeXt's position
encoding: a fixed Fourier grid computed from the input's shape, then a learned 1x1 conv). Folded
into one constant, the op would lose its parameters and the MACs it runs on every forward; as a
spec layer with no input (``inputs: []``, docs/tensors.md) it keeps both, and its one result is
repeated over the batch."""
from __future__ import annotations

import math

import numpy as np

from cnncalc.interop.onnx.rewrites import rewrite


@rewrite("Conv", family="constant", stage="region",
         lifts="matmul of two constants (inputs: []) + its bias")
def conv_of_constants(imp, i) -> bool:
    """A 1x1 Conv (stride 1, no padding, one group) of a constant input and learned weights: the
    weight (F, C) times the input (C, H·W) as a matmul of two constants, reshaped to (F, H, W),
    plus the bias. MACs = F·H·W·C, the conv's; parameters the weight's and the bias's."""
    node = imp.nodes[i]
    ins = list(node.input) + [""] * (3 - len(node.input))
    x, W, B = (imp.const(t) for t in ins[:3])
    if x is None or W is None or not imp.learned(ins[1]) or (ins[2] and (B is None or not imp.learned(ins[2]))):
        return False
    if imp.learned(ins[0]) or x.dtype.kind != "f" or W.dtype.kind != "f" or x.ndim < 3 or x.shape[0] != 1:
        return False
    f, c, *k = W.shape
    sp = x.shape[2:]
    nd = len(sp)
    if (W.ndim != x.ndim or c != x.shape[1] or any(d != 1 for d in k) or imp.attr(node, "group", 1) != 1
            or any(s != 1 for s in imp.attr(node, "strides", [1] * nd)) or any(imp.attr(node, "pads", [0] * 2 * nd))
            or imp.attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID")
            or (B is not None and B.shape != (f,))):
        return False
    n = int(np.prod(sp))
    out = node.output[0]
    name = imp.name_for(node, ins[1])
    last = B is None
    const = [{"index": 0, "shape": [f, c], "learned": True}, {"index": 1, "shape": [c, n], "learned": False}]
    imp.emit(node, "matmul", {"matmul": None, "const": const}, [], out=f"{out}#product", name=name,
             params={"const0": W.reshape(f, c).astype(np.float32)},
             state={"const1": x.reshape(c, n).astype(np.float32)})
    imp.emit(node, "reshape", {"reshape": [f, *map(int, sp)]}, [f"{out}#product"],
             out=out if last else f"{out}#grid", name=f"{name}.grid")
    if not last:
        imp.emit(node, "binary", {"binary": "add", "const": {"shape": [f] + [1] * nd, "learned": True}},
                 [f"{out}#grid"], out=out, name=f"{name}.bias",
                 params={"const1": B.reshape(f, *[1] * nd).astype(np.float32)})
    imp.shapes[out] = (1, f, *map(int, sp))
    imp.batch_of[out] = 0
    imp.odd.add(out)  # (constants' axes: a tensor, not an image)
    return True


# ----------------------------------------------------------------------------- Swin V2
# Its continuous position bias is a 2-layer MLP run on every forward on a fixed table of
# log-spaced coordinates (a MatMul of two constants, then the bias, a ReLU, a second MatMul,
# a Gather by the relative index, 16·sigmoid), added to the logits; its cosine attention
# multiplies the logits by exp(min(logit_scale, log 100)) of a learned logit_scale; and it zeroes
# the k third of its qkv bias on every forward (a ScatterND of zeros into the parameter). Each
# starts as a node of constants only that reads a parameter: folded, the parameter would be
# lost. As a layer of constants only (inputs: []) it stays counted; the ops after it are
# ordinary low-level layers of a value the same for every sample (``imp.fixed``), down to the
# elementwise op where it meets an activation.

_JOINS = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"}  # where such a value meets an activation
_PASSES = {"Exp", "Log", "Sigmoid", "Relu", "Tanh", "Neg", "Abs", "Sqrt", "Reciprocal", "Clip", "Identity", "Cast",
           "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Gather", "Flatten", "MatMul"}


def _of_input(imp) -> set:
    """The tensors that depend on the values of the model's input (a Shape of one does not)."""
    dep = {imp.input_name}
    for nd in imp.nodes:
        if nd.op_type not in ("Shape", "Size") and any(t in dep for t in nd.input if t):
            dep.update(o for o in nd.output if o)
    return dep


def _meets_activation(imp, t, dep=None, depth=0) -> bool:
    """Every path from tensor ``t`` through ops of it and constants (unary, shape, gather, a
    product with a constant) ends in an elementwise op with an activation: the value stays
    low-level layers from ``t`` on, and nothing reads it as a weight (a conv's, a MatMul's)."""
    dep = _of_input(imp) if dep is None else dep
    uses = imp.consumers.get(t, [])
    if not uses or t in imp.output_names or depth > 32:
        return False
    for k in uses:
        nd = imp.nodes[k]
        if nd.domain not in ("", "ai.onnx") or len([o for o in nd.output if o]) != 1:
            return False
        others = [u for u in nd.input if u and u != t]
        if nd.op_type in _JOINS and any(u in dep for u in others):
            continue
        if nd.op_type in (_PASSES | _JOINS) and not any(u in dep for u in others) and \
                _meets_activation(imp, nd.output[0], dep, depth + 1):
            continue
        return False
    return True


def _fixed_result(imp, out, shape, name):
    """``out`` is the value of constants only that layer ``name`` computes, of ONNX shape ``shape``
    (its whole shape the sample's: no batch axis)."""
    imp.layer_of[out] = name
    imp.shapes[out] = tuple(int(d) for d in shape)
    imp.batch_of[out] = None
    imp.odd.add(out)
    imp.fixed.add(out)


def _param_layer_name(imp, t):
    """A layer named after the parameter it holds (``features.1.0.attn.logit_scale``)."""
    base = imp.init_names.get(t, t).strip("/").replace("/", ".").replace("::", ".") or "constant"
    name, k = base, 1
    while name in imp.by_name:
        k += 1
        name = f"{base}_{k}"
    return name


def _float_tensor(a) -> bool:
    return a is not None and a.dtype.kind == "f" and 1 <= a.ndim <= 8


@rewrite("MatMul", family="constant", stage="region",
         lifts="matmul of two constants (inputs: []), the ops after it low-level")
def matmul_of_constants(imp, i) -> bool:
    """A MatMul of two constants, one of them learned (Swin V2's position-bias MLP: the fixed
    coordinate table, a buffer, times the first Linear's weight), whose result reaches an
    activation only through elementwise ops: a matmul with inputs: [] (MACs = the product's,
    parameters the learned operand's), its result a value of constants only."""
    node = imp.nodes[i]
    if len(node.input) != 2:
        return False
    a, b = (imp.const(t) for t in node.input)
    if not (_float_tensor(a) and _float_tensor(b)):
        return False
    learned = [imp.learned(t) for t in node.input]
    if not any(learned) or (all(learned) and not imp.knows_buffers) or not _meets_activation(imp, node.output[0]):
        return False  # (both named like parameters in an ONNX file: one may be a buffer, which nobody says)
    try:
        shape = np.matmul(np.zeros(a.shape, np.float32), np.zeros(b.shape, np.float32)).shape
    except ValueError:
        return False
    if not 1 <= len(shape) <= 8:
        return False
    const, params, state = [], {}, {}
    for k, (t, v) in enumerate(zip(node.input, (a, b))):
        const.append({"index": k, "shape": [int(d) for d in v.shape], "learned": learned[k]})
        (params if learned[k] else state)[f"const{k}"] = np.asarray(v, np.float32)
    w = node.input[learned.index(True)]
    name = imp.name_for(node, w)
    imp.emit(node, "matmul", {"matmul": None, "const": const}, [], name=name, params=params, state=state or None)
    _fixed_result(imp, node.output[0], shape, name)
    return True


@rewrite("Clip", family="constant", stage="region",
         lifts="binary max / min of a learned constant (inputs: [])")
def clip_of_parameter(imp, i) -> bool:
    """A Clip of a parameter by constant bounds (Swin V2's logit scale, clamp(s, max=log 100),
    then exp, multiplying the logits): binary max / min of the learned constant and the bound
    with inputs: [] (the parameter stays counted; its gradient passes where it is within the
    bounds), its result a value of constants only."""
    node = imp.nodes[i]
    ins = list(node.input) + [""] * (3 - len(node.input))
    x = imp.const(ins[0])
    if not _float_tensor(x) or not imp.learned(ins[0]) or imp.opset < 11:
        return False
    bounds = []
    for op, t in (("max", ins[1]), ("min", ins[2])):
        if t:
            v = imp.const(t)
            if v is None or v.size != 1:
                return False
            bounds.append((op, float(np.asarray(v).reshape(-1)[0])))
    if not bounds or not _meets_activation(imp, node.output[0]):
        return False
    base = _param_layer_name(imp, ins[0])
    shape = [int(d) for d in x.shape]
    out = node.output[0]
    prev = None
    for k, (op, v) in enumerate(bounds):
        last = k == len(bounds) - 1
        name = base if last else f"{base}.{op}"
        if prev is None:
            imp.emit(node, "binary", {"binary": None, "op": op, "const": [{"index": 0, "shape": shape, "learned": True},
                                                                          {"index": 1, "value": v}]},
                     [], out=out if last else f"{out}#{op}", name=name, params={"const0": np.asarray(x, np.float32)})
        else:
            imp.layer_of[f"{out}#prev"] = prev
            imp.emit(node, "binary", {"binary": None, "op": op, "const": {"index": 1, "value": v}}, [f"{out}#prev"],
                     out=out, name=name)
        prev = name
    _fixed_result(imp, out, x.shape, prev)
    return True


@rewrite("ScatterND", family="constant", stage="region",
         lifts="binary mul of a learned constant by a 0/1 mask (inputs: [])")
def zeroed_parameter(imp, i) -> bool:
    """A ScatterND of zeros into a parameter (Swin V2's qkv bias with its k third zeroed on every
    forward: ``bias.clone(); bias[C:2C].zero_()``): the parameter times a 0/1 mask (a buffer) with
    inputs: [] — the values the forward uses, the whole parameter counted, no gradient into the
    zeroed entries — its result a value of constants only."""
    node = imp.nodes[i]
    if len(node.input) != 3 or imp.attr(node, "reduction", b"none") not in (b"none", "none"):
        return False
    data, idx, upd = (imp.const(t) for t in node.input)
    if not _float_tensor(data) or not imp.learned(node.input[0]) or idx is None or upd is None:
        return False
    if idx.dtype.kind not in "iu" or idx.ndim < 1 or not 1 <= idx.shape[-1] <= data.ndim or np.any(upd != 0):
        return False
    if not _meets_activation(imp, node.output[0]):
        return False
    mask = np.ones(data.shape, np.float32)
    try:
        for row in idx.reshape(-1, idx.shape[-1]):
            mask[tuple(int(v) for v in row)] = 0.0
    except IndexError:
        return False
    name = _param_layer_name(imp, node.input[0])
    shape = [int(d) for d in data.shape]
    imp.emit(node, "binary", {"binary": None, "op": "mul", "const": [{"index": 0, "shape": shape, "learned": True},
                                                                   {"index": 1, "shape": list(shape), "learned": False}]},
             [], name=name, params={"const0": np.asarray(data, np.float32)}, state={"const1": mask})
    _fixed_result(imp, node.output[0], data.shape, name)
    return True


@rewrite("gather", family="constant", stage="lift", name="relative_gather",
         lifts="gather with relative: grid (Swin's relative position index)")
def relative_gather(lift, item) -> bool:
    """A gather whose indices are Swin's relative position index on a square key grid (Swin V2's
    position-bias MLP output, (2w − 1)² x heads, read at w² x w² query-key pairs): written
    ``relative: [w, w]`` instead of the w⁴ numbers (a spec of readable size; the same indices)."""
    from cnncalc.layers.tensor import relative_index

    idx = item.args.get("indices")
    if not isinstance(idx, list) or len(idx) < 4 or not all(isinstance(v, int) for v in idx):
        return False
    n = math.isqrt(len(idx))
    w = math.isqrt(n)
    if n * n != len(idx) or w * w != n or n > 1024 or idx != relative_index((w, w)):
        return False
    del item.args["indices"]
    item.args["relative"] = [w, w]
    return True
