"""Layers of constants only: a learned op whose every input is a constant (EdgeNeXt's position
encoding: a fixed Fourier grid computed from the input's shape, then a learned 1x1 conv). Folded
into one constant, the op would lose its parameters and the MACs it runs on every forward; as a
spec layer with no input (``inputs: []``, docs/tensors.md) it keeps both, and its one result is
repeated over the batch."""
from __future__ import annotations

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
