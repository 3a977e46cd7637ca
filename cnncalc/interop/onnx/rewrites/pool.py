"""Pooling: MaxPool, AveragePool, the global pools and ReduceMean/ReduceMax over the spatial axes."""
from __future__ import annotations

from cnncalc.interop.onnx.common import Unmapped, axes_arg, compact, nchw, pads_arg, rounding, window
from cnncalc.interop.onnx.rewrites import Rewrite, register, rewrite


def pool(kind, onnx_op):
    def f(imp, node):
        x = node.input[0]
        if len(node.output) > 1 and node.output[1] and imp.n_consumers[node.output[1]]:
            raise Unmapped(onnx_op, node.name, "pooling indices")
        xs = nchw(imp, x, node)
        in_sp = xs[2:]
        k = list(imp.attr(node, "kernel_shape"))
        strides, dil, lo, hi = window(imp, node, in_sp, k)
        ceil = bool(imp.attr(node, "ceil_mode", 0))
        args = {kind: compact(k)}
        if strides != k:
            args["stride"] = compact(strides)
        if any(lo) or any(hi):
            args["pad"] = pads_arg(lo, hi)
        if any(d != 1 for d in dil):
            args["dilation"] = compact(dil)
        r = rounding(imp, in_sp, k, strides, dil, lo, hi, ceil)
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


@rewrite("ReduceMean", "ReduceMax", family="pool",
         lifts="global_avgpool / global_maxpool (+ flatten without keepdims)")
def global_reduce(imp, node):
    axes = axes_arg(imp, node, [imp.const(t) for t in node.input])
    xs = nchw(imp, node.input[0], node)
    if axes is None or sorted(a % len(xs) for a in axes) != list(range(2, len(xs))):
        raise Unmapped(node.op_type, node.name, "a reduction over axes other than the spatial ones")
    kind = "global_avgpool" if node.op_type == "ReduceMean" else "global_maxpool"
    if imp.attr(node, "keepdims", 1):
        imp.emit(node, kind, {kind: None}, [node.input[0]])
    else:
        it = imp.emit(node, kind, {kind: None}, [node.input[0]], out=node.output[0] + "#pool")
        imp.emit(node, "flatten", {"flatten": None}, [node.output[0] + "#pool"], name=it.name + ".flatten")


register(Rewrite("maxpool", "pool", ("MaxPool",), pool("maxpool", "MaxPool"), lifts="maxpool"))
register(Rewrite("avgpool", "pool", ("AveragePool",), pool("avgpool", "AveragePool"), lifts="avgpool"))
register(Rewrite("global_avgpool", "pool", ("GlobalAveragePool",), simple("global_avgpool"), lifts="global_avgpool"))
register(Rewrite("global_maxpool", "pool", ("GlobalMaxPool",), simple("global_maxpool"), lifts="global_maxpool"))
