"""Convolutions: Conv (dwconv when depthwise; a zero Pad in front folded into its padding) and
ConvTranspose."""
from __future__ import annotations

from cnncalc.interop.onnx.common import Unmapped, compact, nchw, pads_arg, rounding, window
from cnncalc.interop.onnx.rewrites import rewrite


def _weight_rank(imp, op, node, W):
    """A conv weight is (out, in/group, *kernel), of the input's rank: a scalar or a vector is no
    convolution (a rank-0 weight was exit 70 in the unpacking, found by the ONNX fuzz, seed 330),
    and a kernel of fewer or more axes than the input imported silently as some other window."""
    if W.ndim < 3:
        raise Unmapped(op, node.name, f"a weight of shape {list(W.shape)} (rank {W.ndim}); a convolution's "
                       f"weight has rank 3 or more: (out channels, in channels per group, *kernel)", hard=True)
    s = imp.shape(node.input[0])
    if s is not None and len(s) != W.ndim:
        raise Unmapped(op, node.name, f"a weight of shape {list(W.shape)} (rank {W.ndim}) on an input of rank "
                       f"{len(s)}: the kernel needs one axis per spatial axis of the input", hard=True)


def _take_pad(imp, node, x, nd):
    """A zero Pad feeding this node (F.pad before a conv) adds to its padding."""
    if x in imp.pending and imp.pending[x][0] == "pad":
        _, src, (plo, phi), _ = imp.pending.pop(x)
        return src, plo, phi
    return x, [0] * nd, [0] * nd


@rewrite("Conv", family="conv", lifts="conv / dwconv (+ a zero Pad before it, folded; shares: an earlier conv's weights)")
def conv(imp, node):
    x = node.input[0]
    W = imp.const(node.input[1])
    if W is None:
        raise Unmapped("Conv", node.name, "weights that are not constants")
    merged = sorted(imp.learned_of.get(node.input[1], ()))
    if len(merged) > 1:  # (a spec's conv has one weight tensor: the others' parameters would be lost)
        raise Unmapped("Conv", node.name, f"its weight is computed from {len(merged)} learned tensors "
                       f"({', '.join(merged[:3])}; NFNet's ScaledStdConv2d: the standardised weight times a "
                       f"gain): one conv would count the parameters of one", hard=True)
    B = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    _weight_rank(imp, "Conv", node, W)
    F, cg, *k = W.shape
    nd = len(k)
    x, plo, phi = _take_pad(imp, node, x, nd)
    xs = nchw(imp, x, node)
    c, in_sp = xs[1], xs[2:]
    if list(imp.attr(node, "kernel_shape", k)) != list(k):
        raise Unmapped("Conv", node.name, f"kernel_shape {list(imp.attr(node, 'kernel_shape'))} contradicts "
                        f"the weight's {list(W.shape)}", hard=True)
    g = imp.attr(node, "group", 1)
    if W.dtype.kind != "f" or g < 1 or c % g or cg * g != c or F % g:
        raise Unmapped("Conv", node.name, f"a weight {list(W.shape)} ({W.dtype}) that does not fit {c} input "
                        f"channels in {g} group(s)", hard=True)
    strides, dil, lo, hi = window(imp, node, in_sp, k)
    lo = [a + b for a, b in zip(lo, plo)]
    hi = [a + b for a, b in zip(hi, phi)]
    if g == c and g > 1 and F % c == 0:
        kind, args = "dwconv", {"dwconv": compact(k)}
        if F // c != 1:
            args["multiplier"] = F // c
    else:
        kind, args = "conv", {"conv": int(F), "kernel": compact(k)}
    if any(s != 1 for s in strides):
        args["stride"] = compact(strides)
    if any(lo) or any(hi):
        args["pad"] = pads_arg(lo, hi)
    if any(d != 1 for d in dil):
        args["dilation"] = compact(dil)
    if kind == "conv" and g != 1:
        args["groups"] = int(g)
    if B is None:
        args["bias"] = False
    r = rounding(imp, in_sp, k, strides, dil, lo, hi)
    if r:
        args["rounding"] = r
    p = {"weight": W}
    if B is not None:
        p["bias"] = B
    # the same weight and bias initializers as an earlier conv (a module called again): that
    # layer's parameters, counted once (shares:)
    key = (node.input[1], node.input[2] if B is not None else "")
    shared = all(t in imp.init_names and imp.learned(t) for t in key if t)
    owner = imp.owner_of.get(key) if shared else None
    if owner is not None and imp.by_name.get(owner) is not None and imp.by_name[owner].kind == kind:
        args["shares"] = owner
        p = None
    it = imp.emit(node, kind, args, [x], weight=node.input[1], params=p)
    if shared and owner is None:
        imp.owner_of[key] = it.name


@rewrite("ConvTranspose", family="conv", lifts="deconv")
def conv_transpose(imp, node):
    W = imp.const(node.input[1])
    if W is None:
        raise Unmapped("ConvTranspose", node.name, "weights that are not constants")
    if imp.attr(node, "output_shape") is not None or imp.attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise Unmapped("ConvTranspose", node.name, "output_shape / auto_pad (give explicit pads)")
    B = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    _weight_rank(imp, "ConvTranspose", node, W)
    C, fg, *k = W.shape
    nd = len(k)
    g = imp.attr(node, "group", 1)
    strides = list(imp.attr(node, "strides", [1] * nd))
    dil = list(imp.attr(node, "dilations", [1] * nd))
    pads = list(imp.attr(node, "pads", [0] * (2 * nd)))
    op = list(imp.attr(node, "output_padding", [0] * nd))
    if (g < 1 or W.dtype.kind != "f" or C % g or len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd
            or any(v < 1 for v in (*strides, *dil, *k)) or any(v < 0 for v in (*pads, *op))):
        raise Unmapped("ConvTranspose", node.name, f"an invalid window or weight (kernel {k}, strides {strides}, "
                        f"dilations {dil}, pads {pads}, groups {g})", hard=True)
    args = {"deconv": int(fg * g), "kernel": compact(k)}
    if any(s != 1 for s in strides):
        args["stride"] = compact(strides)
    if any(pads):
        args["pad"] = pads_arg(pads[:nd], pads[nd:])
    if any(op):
        args["output_padding"] = compact(op)
    if any(d != 1 for d in dil):
        args["dilation"] = compact(dil)
    if g != 1:
        args["groups"] = int(g)
    if B is None:
        args["bias"] = False
    p = {"weight": W, **({"bias": B} if B is not None else {})}
    imp.emit(node, "deconv", args, [node.input[0]], weight=node.input[1], params=p)
