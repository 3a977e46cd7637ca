"""Arithmetic: Add/Sum (residual adds, an fc's bias, x + 0 dropped) and Mul (products of
tensors, a per-channel gain)."""
from __future__ import annotations

import numpy as np

from cnncalc.interop.onnx.common import Unmapped, nchw
from cnncalc.interop.onnx.rewrites import rewrite


@rewrite("Add", "Sum", family="arith", lifts="add")
def add(imp, node):
    ks = [imp.const(t) for t in node.input]
    if len(node.input) == 2 and sum(k is not None for k in ks) == 1:
        j = 0 if ks[0] is None else 1
        xs = imp.shape(node.input[j])
        k = ks[1 - j]
        if (k.dtype.kind == "f" and not np.any(k) and not imp.learned(node.input[1 - j]) and xs is not None
                and k.ndim <= len(xs) and np.broadcast_shapes(tuple(xs), k.shape) == tuple(xs)):
            # x + 0 with a zero that is no parameter (MobileOne's train form); a zero-initialised
            # bias (ConvNeXt-V2's GRN) is a parameter and stays
            imp.alias(node, node.input[j])
            return
    if any(k is not None for k in ks):
        # (low level; an fc without bias + one value per unit: the lift rewrite linear.fc_bias)
        raise Unmapped(node.op_type, node.name, "adding a constant")
    imp.emit(node, "add", {"add": None}, list(node.input))


@rewrite("Mul", family="arith", lifts="mul / scale (one gain per channel)")
def mul(imp, node):
    ks = [imp.const(t) for t in node.input]
    if all(k is None for k in ks):
        a, b = (nchw(imp, t, node) for t in node.input)
        if len(a) != len(b):
            raise Unmapped("Mul", node.name, "a product of tensors of different ranks")
        imp.emit(node, "mul", {"mul": None}, list(node.input))
        return
    j = 0 if ks[0] is None else 1
    g = ks[1 - j]
    xs = nchw(imp, node.input[j], node)
    c = xs[1] if len(xs) > 1 else None
    if g is None or c is None or g.ndim > len(xs) or g.size != c or g.dtype.kind != "f":
        raise Unmapped("Mul", node.name, "multiplying by a constant that is not one value per channel")
    full = (1,) * (len(xs) - g.ndim) + tuple(g.shape)  # lined up from the right, as ONNX broadcasts
    if full[1] != c or any(d != 1 for k, d in enumerate(full) if k != 1):
        raise Unmapped("Mul", node.name, "multiplying by a constant that is not one value per channel")
    imp.emit(node, "scale", {"scale": None}, [node.input[j]], weight=node.input[1 - j],
             params={"gamma": g.reshape(-1).astype(np.float32)})
