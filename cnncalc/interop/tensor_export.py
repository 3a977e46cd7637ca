"""The tensor vocabulary (cnncalc/layers/tensor.py) in ONNX and in PyTorch: the rows
``onnx_export.EXPORTERS`` and ``torch_export.MODULES`` take for each op, and for the forms of
concat, split, softmax, padding and layernorm that read tensors.

Both write batch-first tensors in PyTorch's order (what the spec's axes number, + 1 for the
batch). Operands of different per-sample rank are lined up by size-1 axes after the batch
axis (ONNX and torch broadcast from the right, batch axis included: a (N, C) activation
against a (4, C) constant would otherwise pair N with 4); a 1-D operand of a matmul is
promoted as torch.matmul promotes it per sample. A constant is an initializer
``<layer>/const<i>`` (ONNX) or an attribute of a small ``Constants`` module (torch): learned
ones are parameters, buffers are buffers (both in the state_dict as ``<layer>.const<i>``),
written values are non-persistent buffers.
"""
from __future__ import annotations

import numpy as np

from cnncalc.graph import INPUT
from cnncalc.layers.tensor import pad_source
from cnncalc.shapes import torch_order

# ----------------------------------------------------------------------------- ONNX
_ONNX_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "max": "Max", "min": "Min"}
_ONNX_UNARY = {"neg": "Neg", "abs": "Abs", "sqrt": "Sqrt", "exp": "Exp", "log": "Log", "reciprocal": "Reciprocal",
               "erf": "Erf", "sin": "Sin", "cos": "Cos", "floor": "Floor", "ceil": "Ceil", "round": "Round",
               "sign": "Sign"}
_ONNX_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin",
                "prod": "ReduceProd", "l1": "ReduceL1", "l2": "ReduceL2", "sumsquare": "ReduceSumSquare",
                "logsumexp": "ReduceLogSumExp"}
_PAD_MODE = {"zero": "constant", "constant": "constant", "reflect": "reflect", "replicate": "edge"}


def _const_value(b, node, o):
    c = o.const
    if not c.tensor:
        return np.asarray(c.value, np.float32)
    return (b.params if c.learned else b.state)[node.name][o.cname]


class _OnnxOps:
    """Operand names of one node, lined up for broadcasting."""

    def __init__(self, b, node, xs):
        self.b, self.node, self.layer = b, node, node.layer
        self.names, self.ranks, self.consts = [], [], []
        for o in self.layer.ops_:
            if o.const is None:
                self.names.append(xs[o.input])
            else:
                self.names.append(b.init(f"{node.name}/{o.cname}", np.asarray(_const_value(b, node, o))))
            self.ranks.append(len(o.shape))
            self.consts.append(o.const)

    def up(self, k: int, rank: int) -> str:
        """Operand k with size-1 axes after the batch axis up to per-sample ``rank``."""
        name, have = self.names[k], self.ranks[k]
        if self.consts[k] is not None or have >= rank:
            return name
        axes = self.b.ints(f"{self.node.name}/unsqueeze{k}", list(range(1, 1 + rank - have)))
        return self.b.node("Unsqueeze", [name, axes], f"{self.node.name}/aligned{k}", f"{self.node.name}/align{k}")

    def lined(self) -> list[str]:
        r = max(self.ranks)
        return [self.up(k, r) for k in range(len(self.names))]

    def batched(self, k: int, like: str) -> str:
        """A constant operand repeated over the batch of tensor ``like`` (for concat/stack)."""
        name, c = self.names[k], self.consts[k]
        if c is None:
            return name
        b, n = self.b, self.node.name
        shp = b.node("Shape", [like], f"{n}/batch_of{k}", f"{n}/shape{k}", start=0, end=1)
        full = b.node("Concat", [shp, b.ints(f"{n}/dims{k}", list(self.layer.ops_[k].shape))],
                      f"{n}/expand_shape{k}", f"{n}/expand_shape{k}", axis=0)
        one = b.node("Unsqueeze", [name, b.ints(f"{n}/batch_axis{k}", [0])], f"{n}/one{k}", f"{n}/one{k}")
        return b.node("Expand", [one, full], f"{n}/repeated{k}", f"{n}/repeat{k}")


def _first_act(ops: _OnnxOps) -> str:
    return next(nm for nm, c in zip(ops.names, ops.consts) if c is None)


def onnx_matmul(b, node, xs, out):
    ops = _OnnxOps(b, node, xs)
    n = node.name
    a, bb = ops.names
    ra, rb = ops.ranks
    squeeze = []
    if ra == 1 and ops.consts[0] is None:  # a per-sample vector: (N, K) → (N, 1, K)
        a = b.node("Unsqueeze", [a, b.ints(f"{n}/row_axis", [1])], f"{n}/row", f"{n}/row")
        ra, squeeze = 2, [-2]
    if rb == 1 and ops.consts[1] is None:  # (N, K) → (N, K, 1)
        bb = b.node("Unsqueeze", [bb, b.ints(f"{n}/col_axis", [2])], f"{n}/col", f"{n}/col")
        rb, squeeze = 2, squeeze + [-1]
    r = max(ra, rb)
    ops.names, ops.ranks = [a, bb], [ra, rb]
    a, bb = ops.up(0, r), ops.up(1, r)
    if all(c is not None for c in ops.consts):  # constants only: one sample, repeated over the batch
        return _repeated(b, node, b.node("MatMul", [a, bb], f"{n}/one_sample", f"{n}/product"), out)
    if not squeeze:
        return b.node("MatMul", [a, bb], out, n)
    y = b.node("MatMul", [a, bb], f"{n}/product", f"{n}/product")
    return b.node("Squeeze", [y, b.ints(f"{n}/squeeze_axes", squeeze)], out, n)


def _repeated(b, node, y, out):
    """A layer of constants only (``inputs: []``): its one sample ``y`` (no batch axis) expanded
    to the input's batch."""
    n = node.name
    shp = b.node("Shape", [INPUT], f"{n}/batch", f"{n}/batch", start=0, end=1)
    full = b.node("Concat", [shp, b.ints(f"{n}/dims", list(torch_order(node.layer.out_shape)))],
                  f"{n}/expand_shape", f"{n}/expand_shape", axis=0)
    return b.node("Expand", [y, full], out, n)


def onnx_binary(b, node, xs, out):
    ops = _OnnxOps(b, node, xs)
    op = _ONNX_BINARY[node.layer.args["op"]]
    if all(c is not None for c in ops.consts):  # constants only: one sample, repeated over the batch
        return _repeated(b, node, b.node(op, ops.names, f"{node.name}/one_sample", f"{node.name}/op"), out)
    return b.node(op, ops.lined(), out, node.name)


def onnx_where(b, node, xs, out):
    ops = _OnnxOps(b, node, xs)
    names = ops.lined()
    cond = b.node("Cast", [names[0]], f"{node.name}/mask", f"{node.name}/mask", to=b.onnx.TensorProto.BOOL)
    return b.node("Where", [cond, *names[1:]], out, node.name)


def onnx_unary(b, node, xs, out):
    return b.node(_ONNX_UNARY[node.layer.args["op"]], xs, out, node.name)


def onnx_reduce(b, node, xs, out):
    lay = node.layer
    axes = [a + 1 for a in lay.axes]
    keep = int(lay.args["keepdims"])
    op = _ONNX_REDUCE[lay.args["op"]]
    if op == "ReduceSum":  # opset 13+: axes as an input
        return b.node(op, [xs[0], b.ints(f"{node.name}/axes", axes)], out, node.name, keepdims=keep)
    return b.node(op, xs, out, node.name, axes=axes, keepdims=keep)


def onnx_softmax(b, node, xs, out):
    op = "LogSoftmax" if node.layer.kind == "logsoftmax" else "Softmax"
    return b.node(op, xs, out, node.name, axis=node.layer.axis + 1)


def onnx_reshape(b, node, xs, out):
    dims = [0, *torch_order(node.layer.out_shape)]
    return b.node("Reshape", [xs[0], b.ints(f"{node.name}/shape", dims)], out, node.name)


def onnx_transpose(b, node, xs, out):
    return b.node("Transpose", xs, out, node.name, perm=[0, *(p + 1 for p in node.layer.perm)])


def _onnx_slice(b, node, x, ranges, out):
    n = node.name
    axes = sorted(ranges)
    starts = [ranges[a].start for a in axes]
    ends = [ranges[a].stop if ranges[a].stop >= 0 else -(2 ** 62) for a in axes]
    steps = [ranges[a].step for a in axes]
    return b.node("Slice", [x, b.ints(f"{n}/starts", starts), b.ints(f"{n}/ends", ends),
                            b.ints(f"{n}/axes", [a + 1 for a in axes]), b.ints(f"{n}/steps", steps)], out, n)


def onnx_slice(b, node, xs, out):
    return _onnx_slice(b, node, xs[0], node.layer.ranges, out)


def onnx_gather(b, node, xs, out):
    lay = node.layer
    idx = np.reshape(np.asarray(lay.flat, np.int64), lay.ishape)
    return b.node("Gather", [xs[0], b.init(f"{node.name}/indices", idx)], out, node.name, axis=lay.axis + 1)


def onnx_expand(b, node, xs, out):
    ops = _OnnxOps(b, node, xs)
    dims = list(node.layer.out_shape_t)
    return b.node("Expand", [ops.up(0, len(dims)), b.ints(f"{node.name}/shape", [1, *dims])], out, node.name)


def onnx_tile(b, node, xs, out):
    return b.node("Tile", [xs[0], b.ints(f"{node.name}/repeats", [1, *node.layer.args["repeats"]])], out,
                  node.name)


def onnx_concat(b, node, xs, out):
    ops = _OnnxOps(b, node, xs)
    like = _first_act(ops)
    return b.node("Concat", [ops.batched(k, like) for k in range(len(ops.names))], out, node.name,
                  axis=node.layer.axis + 1)


def onnx_stack(b, node, xs, out):
    ops = _OnnxOps(b, node, xs)
    like = _first_act(ops)
    ax = node.layer.axis + 1
    parts = [b.node("Unsqueeze", [ops.batched(k, like), b.ints(f"{node.name}/stack_axis{k}", [ax])],
                    f"{node.name}/part{k}", f"{node.name}/part{k}") for k in range(len(ops.names))]
    return b.node("Concat", parts, out, node.name, axis=ax)


def onnx_split(b, node, xs, out):
    return _onnx_slice(b, node, xs[0], node.layer.ranges, out)


def onnx_pad(b, node, xs, out):
    lay = node.layer
    rank = len(torch_order(lay.in_shapes[0])) + 1
    lo, hi = [0] * rank, [0] * rank
    for a, (p, q) in zip(lay.pad_axes, lay.pads):
        lo[a + 1], hi[a + 1] = p, q
    ins = [xs[0], b.ints(f"{node.name}/pads", lo + hi)]
    if lay.args["mode"] == "constant":
        ins.append(b.init(f"{node.name}/value", np.array(lay.args["value"], np.float32)))
    return b.node("Pad", ins, out, node.name, mode=_PAD_MODE[lay.args["mode"]])


def onnx_layernorm(b, node, xs, out):
    lay = node.layer
    shape = lay._affine_shape()
    if lay.args["affine"]:
        g = b.init(f"{node.name}/gamma", np.asarray(b.params[node.name]["gamma"]).reshape(shape))
        bb = b.init(f"{node.name}/beta", np.asarray(b.params[node.name]["beta"]).reshape(shape))
    else:
        g = b.init(f"{node.name}/unit_scale", np.ones(shape, np.float32))
        bb = b.init(f"{node.name}/zero_bias", np.zeros(shape, np.float32))
    return b.node("LayerNormalization", [xs[0], g, bb], out, node.name, axis=lay.norm_axis + 1,
                  epsilon=float(lay.args["eps"]))


def onnx_relbias(b, node, xs, out):
    """x + table[:, index]: a Gather of the table by the (Nq, Nk) index along its offsets
    (heads x Nq x Nk, one head 1 x Nq x Nk: both broadcast over the batch), then an Add."""
    from cnncalc.runtime.kernels.tensor import relbias_index

    lay, n = node.layer, node.name
    idx = relbias_index(lay.grid, lay.stride, lay.args["offsets"])
    t = b.node("Gather", [b.param(n, "table"), b.ints(f"{n}/index", idx)], f"{n}/bias", f"{n}/bias", axis=1)
    return b.node("Add", [xs[0], t], out, n)


def _either(old, new, generic):
    def row(b, node, xs, out):
        return (new if generic(node.layer) else old)(b, node, xs, out)
    return row


def onnx_rows(existing: dict) -> dict:
    """The rows of the vocabulary, and the existing rows of concat, split, softmax, padding and
    layernorm wrapped to write their tensor forms."""
    return {
        "matmul": onnx_matmul, "binary": onnx_binary, "where": onnx_where, "unary": onnx_unary,
        "reduce": onnx_reduce, "logsoftmax": onnx_softmax, "reshape": onnx_reshape,
        "transpose": onnx_transpose, "slice": onnx_slice, "gather": onnx_gather, "expand": onnx_expand,
        "tile": onnx_tile, "stack": onnx_stack, "relbias": onnx_relbias,
        "concat": _either(existing["concat"], onnx_concat, lambda L: bool(L.ops_)),
        "split": _either(existing["split"], onnx_split, lambda L: bool(L.ops_)),
        "softmax": _either(existing["softmax"], onnx_softmax, lambda L: L.axis is not None),
        "padding": _either(existing["padding"], onnx_pad, lambda L: L.generic),
        "layernorm": _either(existing["layernorm"], onnx_layernorm, lambda L: L.norm_axis is not None),
    }


# ----------------------------------------------------------------------------- PyTorch
TORCH_HELPER = '''class Constants(nn.Module):
    """The constant operands of a low-level op: learned ones are parameters, buffers are
    buffers (both in the state_dict), values written in the spec are buffers left out of it."""

    def __init__(self, learned=(), buffers=(), values=()):
        super().__init__()
        for name, shape in learned:
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))
        for name, shape in buffers:
            self.register_buffer(name, torch.zeros(shape))
        for name, value in values:
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32), persistent=False)
'''

_TORCH_BINARY = {"add": "torch.add", "sub": "torch.sub", "mul": "torch.mul", "div": "torch.div",
                 "pow": "torch.pow", "max": "torch.maximum", "min": "torch.minimum"}
_TORCH_UNARY = {"neg": "torch.neg", "abs": "torch.abs", "sqrt": "torch.sqrt", "exp": "torch.exp",
                "log": "torch.log", "reciprocal": "torch.reciprocal", "erf": "torch.erf", "sin": "torch.sin",
                "cos": "torch.cos", "floor": "torch.floor", "ceil": "torch.ceil", "round": "torch.round",
                "sign": "torch.sign"}


def _torch_ops(g, node, xs, helper):
    """(operand expressions, per-sample ranks, constant or None per operand)."""
    lay = node.layer
    consts = [o for o in lay.ops_ if o.const is not None]
    ref = None
    if consts:
        learned = [(o.cname, tuple(o.const.shape)) for o in consts if o.const.tensor and o.const.learned]
        buffers = [(o.cname, tuple(o.const.shape)) for o in consts if o.const.tensor and not o.const.learned]
        values = [(o.cname, o.const.value) for o in consts if not o.const.tensor]
        ref = g.module(node, f"{helper(g, 'Constants')}(learned={learned!r}, buffers={buffers!r}, values={values!r})")
    exprs = [xs[o.input] if o.const is None else f"{ref}.{o.cname}" for o in lay.ops_]
    return exprs, [len(o.shape) for o in lay.ops_], [o.const for o in lay.ops_]


def _up(expr, have, rank, const):
    if const is not None or have >= rank:
        return expr
    return f"{expr}[(slice(None),) + (None,) * {rank - have}]"


def _lined(exprs, ranks, consts):
    r = max(ranks)
    return [_up(e, h, r, c) for e, h, c in zip(exprs, ranks, consts)]


def _batched(expr, const, shape, like):
    return expr if const is None else f"{expr}.expand({like}.shape[0], *{tuple(shape)!r})"


def torch_rows(existing: dict) -> dict:
    """The torch rows of the vocabulary, and the existing rows of concat, split, softmax,
    padding and layernorm wrapped to write their tensor forms."""
    def use(g, name):  # the helper class written into the generated file
        g.helpers[name] = TORCH_HELPER
        return name

    def matmul(g, node, xs):
        (a, b), (ra, rb), (ca, cb) = _torch_ops(g, node, xs, use)
        post = ""
        if ra == 1 and ca is None:
            a, ra, post = f"{a}[:, None]", 2, ".squeeze(-2)"
        if rb == 1 and cb is None:
            b, rb, post = f"{b}[:, :, None]", 2, post + ".squeeze(-1)"
        r = max(ra, rb)
        if ca is not None and cb is not None:  # constants only: one sample, repeated over the batch
            shape = ", ".join(str(d) for d in torch_order(node.layer.out_shape))
            return f"torch.matmul({a}, {b}).expand({g.vars[INPUT]}.shape[0], {shape})"
        return f"torch.matmul({_up(a, ra, r, ca)}, {_up(b, rb, r, cb)}){post}"

    def binary(g, node, xs):
        exprs, ranks, consts = _torch_ops(g, node, xs, use)
        f = _TORCH_BINARY[node.layer.args['op']]
        if all(c is not None for c in consts):  # constants only: one sample, repeated over the batch
            shape = ", ".join(str(d) for d in torch_order(node.layer.out_shape))
            return f"{f}({exprs[0]}, {exprs[1]}).expand({g.vars[INPUT]}.shape[0], {shape})"
        e = _lined(exprs, ranks, consts)
        return f"{f}({e[0]}, {e[1]})"

    def where(g, node, xs):
        e = _lined(*_torch_ops(g, node, xs, use))
        return f"torch.where({e[0]} != 0, {e[1]}, {e[2]})"

    def reduce(g, node, xs):
        lay = node.layer
        dims, keep = tuple(a + 1 for a in lay.axes), lay.args["keepdims"]
        op, x = lay.args["op"], xs[0]
        k = f"dim={dims!r}, keepdim={keep!r}"
        if op == "prod":  # torch.prod takes one dim at a time
            expr = x
            for d in sorted(dims, reverse=True):
                expr = f"torch.prod({expr}, {d}, keepdim={keep!r})"
            return expr
        return {"sum": f"torch.sum({x}, {k})", "mean": f"torch.mean({x}, {k})", "max": f"torch.amax({x}, {k})",
                "min": f"torch.amin({x}, {k})", "l1": f"torch.sum(torch.abs({x}), {k})",
                "sumsquare": f"torch.sum(torch.square({x}), {k})",
                "l2": f"torch.sqrt(torch.sum(torch.square({x}), {k}))",
                "logsumexp": f"torch.logsumexp({x}, {k})"}[op]

    def softmax(g, node, xs):
        fn = "torch.log_softmax" if node.layer.kind == "logsoftmax" else "torch.softmax"
        return f"{fn}({xs[0]}, {node.layer.axis + 1})"

    def reshape(g, node, xs):
        return f"{xs[0]}.reshape({xs[0]}.shape[0], *{tuple(torch_order(node.layer.out_shape))!r})"

    def transpose(g, node, xs):
        return f"{xs[0]}.permute(0, *{tuple(p + 1 for p in node.layer.perm)!r})"

    def take(x, ranges):
        expr = x
        for a, r in sorted(ranges.items()):
            if r.step > 0:
                expr = f"{expr}[(slice(None),) * {a + 1} + (slice({r.start}, {r.stop}, {r.step}),)]"
            else:  # torch slices step forward only: pick the indices
                expr = f"{expr}.index_select({a + 1}, torch.tensor({list(r)!r}, device={x}.device))"
        return expr

    def slice_(g, node, xs):
        return take(xs[0], node.layer.ranges)

    def gather(g, node, xs):
        lay = node.layer
        shape = tuple(torch_order(lay.out_shape))
        return (f"{xs[0]}.index_select({lay.axis + 1}, torch.tensor({lay.flat!r}, device={xs[0]}.device))"
                f".reshape({xs[0]}.shape[0], *{shape!r})")

    def expand(g, node, xs):
        e, r, c = _torch_ops(g, node, xs, use)
        dims = tuple(node.layer.out_shape_t)
        return f"{_up(e[0], r[0], len(dims), c[0])}.expand(-1, *{dims!r})"

    def tile(g, node, xs):
        return f"{xs[0]}.repeat(1, *{tuple(node.layer.args['repeats'])!r})"

    def joined(fn):
        def row(g, node, xs):
            e, _, c = _torch_ops(g, node, xs, use)
            like = next(x for x, cc in zip(e, c) if cc is None)
            parts = [_batched(x, cc, o.shape, like) for x, cc, o in zip(e, c, node.layer.ops_)]
            return f"{fn}([{', '.join(parts)}], {node.layer.axis + 1})"
        return row

    def pad(g, node, xs):
        lay = node.layer
        x = xs[0]
        if lay.args["mode"] in ("zero", "constant"):
            rank = len(torch_order(lay.in_shapes[0])) + 1
            p = [0, 0] * (rank - 1)
            for a, (lo, hi) in zip(lay.pad_axes, lay.pads):
                k = 2 * (rank - 2 - a)  # F.pad: the last axis first
                p[k], p[k + 1] = lo, hi
            return f"F.pad({x}, {tuple(p)!r}, value={float(lay.args['value'])!r})"
        expr = x
        n = torch_order(lay.in_shapes[0])
        for a, (lo, hi) in zip(lay.pad_axes, lay.pads):  # the runtime's index map, any axis
            idx = pad_source(n[a], lo, hi, lay.args["mode"])
            expr = f"{expr}.index_select({a + 1}, torch.tensor({idx!r}, device={x}.device))"
        return expr

    def layernorm(g, node, xs):
        lay = node.layer
        a = lay.args
        extra = f", eps={a['eps']!r}" + ("" if a["affine"] else ", elementwise_affine=False")
        return f"{g.module(node, f'nn.LayerNorm({list(lay._affine_shape())!r}{extra})')}({xs[0]})"

    def relbias(g, node, xs):
        lay = node.layer
        g.helpers["RelBias"] = RELBIAS_HELPER
        code = (f"RelBias({lay.table[0]}, {tuple(lay.grid)!r}, {tuple(lay.stride)!r}, "
                f"{lay.args['offsets'] == 'signed'!r}, {tuple(lay.digits)!r})")
        return f"{g.module(node, code)}({xs[0]})"

    def either(old, new, generic):
        def row(g, node, xs):
            return (new if generic(node.layer) else old)(g, node, xs)
        return row

    return {
        "matmul": matmul, "binary": binary, "where": where,
        "unary": lambda g, node, xs: f"{_TORCH_UNARY[node.layer.args['op']]}({xs[0]})",
        "reduce": reduce, "logsoftmax": softmax, "reshape": reshape, "transpose": transpose,
        "slice": slice_, "gather": gather, "expand": expand, "tile": tile, "stack": joined("torch.stack"),
        "relbias": relbias,
        "concat": either(existing["concat"], joined("torch.cat"), lambda L: bool(L.ops_)),
        "split": either(existing["split"], slice_, lambda L: bool(L.ops_)),
        "softmax": either(existing["softmax"], softmax, lambda L: L.axis is not None),
        "padding": either(existing["padding"], pad, lambda L: L.generic),
        "layernorm": either(existing["layernorm"], layernorm, lambda L: L.norm_axis is not None),
    }


RELBIAS_HELPER = '''class RelBias(nn.Module):
    """A learned heads x T table read by the offset of each query (every stride-th position of
    the key grid) from each key, added to attention logits (LeViT's attention_biases)."""

    def __init__(self, heads, grid, stride, signed, digits):
        super().__init__()
        self.heads = heads
        t = 1
        for d in digits:
            t *= d
        self.table = nn.Parameter(torch.zeros(heads, t))
        q = torch.stack(torch.meshgrid(*[torch.arange(0, g, s) for g, s in zip(grid, stride)], indexing="ij"))
        k = torch.stack(torch.meshgrid(*[torch.arange(g) for g in grid], indexing="ij"))
        rel = q.flatten(1)[:, :, None] - k.flatten(1)[:, None, :]
        index = torch.zeros(rel.shape[1:], dtype=torch.long)
        for r, g, d in zip(rel, grid, digits):
            index = index * d + (r + g - 1 if signed else r.abs())
        self.register_buffer("index", index, persistent=False)

    def forward(self, x):
        b = self.table[:, self.index]
        return x + (b if self.heads > 1 else b[0])
'''
