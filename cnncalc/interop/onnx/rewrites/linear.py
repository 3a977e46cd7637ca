"""Fully connected layers: Gemm, and MatMul of a flat input by a constant matrix."""
from __future__ import annotations

import numpy as np

from cnncalc.interop.onnx.common import Item, Unmapped
from cnncalc.interop.onnx.rewrites import rewrite


@rewrite("Gemm", family="linear", lifts="fc")
def gemm(imp, node):
    A, Bn = node.input[0], node.input[1]
    W = imp.const(Bn)
    if W is None or imp.attr(node, "transA", 0) or W.ndim != 2:
        raise Unmapped("Gemm", node.name, "a Gemm whose second input is not a constant matrix")
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
            raise Unmapped("Gemm", node.name, "a bias that is not one value per unit")
    imp.emit(node, "fc", args, [A], weight=Bn, params=p)


@rewrite("MatMul", family="linear", lifts="fc (no bias; a following Add of one value per unit becomes its bias)")
def matmul(imp, node):
    W = imp.const(node.input[1])
    xs = imp.shape(node.input[0])
    if W is None or W.ndim != 2 or xs is None or len(xs) != 2:
        raise Unmapped("MatMul", node.name, "only a flat input times a constant matrix is an fc layer")
    imp.emit(node, "fc", {"fc": int(W.shape[1]), "bias": False}, [node.input[0]], weight=node.input[1],
             params={"weight": np.ascontiguousarray(W.T)})


@rewrite("binary", family="linear", name="fc_bias", stage="lift", lifts="the bias of the fc before it")
def fc_bias(lift, item) -> bool:
    """An fc without bias (MatMul), then Add of one value per unit: the fc's bias.

    Runs on the low-level ``binary`` add an Add of a constant is lowered to; the fc must feed
    nothing else and have no fused activation."""
    node, imp = lift.node, lift.imp
    if node.op_type not in ("Add", "Sum") or len(node.input) != 2 or item.args.get("op") != "add":
        return False
    ks = [imp.const(t) for t in node.input]
    if sum(k is not None for k in ks) != 1:
        return False
    j = 0 if ks[0] is None else 1
    b = ks[1 - j]
    it = imp.by_name.get(imp.layer_of.get(node.input[j]))
    if (it is not None and it.kind == "fc" and it.args.get("bias") is False and not it.args.get("activation")
            and lift.uses(node.input[j]) == 1 and b.size == it.args["fc"]):
        del it.args["bias"]
        imp.params[it.name]["bias"] = b.reshape(-1).astype(np.float32)
        lift.fold_into(item, it)
        return True
    return False


@rewrite("binary", family="linear", name="token_fc", stage="lift",
         lifts="fc per token (nn.Linear on tokens: a MatMul by a weight, then its bias)")
def token_fc(lift, item) -> bool:
    """A low-level matmul of one activation by a learned (C, C') weight, then an Add of a learned
    bias of C' values: nn.Linear applied to every token, one fc layer (it reads tokens and any
    tensor per last axis). The matmul must feed the Add alone."""
    node, imp = lift.node, lift.imp
    if node.op_type != "Add" or item.args.get("op") != "add" or len(item.inputs) != 1:
        return False
    c = item.args.get("const")
    mm = lift.producer(item)
    if not isinstance(c, dict) or not c.get("learned") or mm is None or mm.kind != "matmul" or len(mm.inputs) != 1:
        return False
    cm = mm.args.get("const")
    if not isinstance(cm, dict) or not cm.get("learned") or cm.get("index", 1) != 1:
        return False
    W = imp.params.get(mm.name, {}).get(f"const{cm.get('index', 1)}")
    b = imp.params.get(item.name, {}).get(f"const{c.get('index', 1)}")
    if W is None or b is None or W.ndim != 2 or b.shape != (W.shape[1],):
        return False
    held = [t for t, layer in imp.layer_of.items() if layer == mm.name]
    if not held or sum(lift.uses(t) for t in held) != 1:
        return False
    from cnncalc.interop.onnx.rewrites.attention import layout, restore

    keep = layout(imp, item)
    new = Item("fc", {"fc": int(W.shape[1])}, mm.name, list(mm.inputs), mm.raw)
    lift.replace([mm, item], new, params={"weight": np.ascontiguousarray(W.T, np.float32),
                                          "bias": np.asarray(b, np.float32)})
    restore(imp, keep)
    return True
