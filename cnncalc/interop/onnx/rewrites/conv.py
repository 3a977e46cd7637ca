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


def _through(imp, tensor, ops=("Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten")):
    """The node behind ``tensor`` past the reshapes (which keep the values' order)."""
    n = imp.producer(tensor)
    while n is not None and n.op_type in ops:
        n = imp.producer(n.input[0])
    return n


def _scalar(a):
    return a is not None and a.dtype.kind == "f" and a.size >= 1 and bool((a == a.reshape(-1)[0]).all())


def _gain_and_scale(imp, t, F):
    """The standardisation's multiplier (timm: ``gain * scale``, per filter): ``(gain or None,
    scale)``. A learned vector times a constant scalar (the graph as written) splits in two; a
    learned vector alone (torch.onnx.export's constant folding multiplied them) is the gain with
    scale 1; a constant of one value (StdConv2d: ones) is the scale alone."""
    a = imp.const(t)
    if a is None or a.size != F or a.dtype.kind != "f":
        return None
    if not imp.learned_from(t):
        return (None, float(a.reshape(-1)[0])) if _scalar(a) else None
    n = _through(imp, t)
    if n is not None and n.op_type == "Mul" and len(n.input) == 2:
        for g, c in (n.input, n.input[::-1]):
            gv, cv = imp.const(g), imp.const(c)
            if gv is not None and gv.size == F and imp.learned_from(g) and cv is not None and cv.size == 1 \
                    and not imp.learned_from(c) and float(cv.reshape(-1)[0]) > 0:
                return gv.reshape(F), float(cv.reshape(-1)[0])
    return a.reshape(F), 1.0


def _short(v: float) -> float:
    """A float32 constant as the shortest decimal that reads back as it (1e-05, not
    9.999999747378752e-06)."""
    import numpy as np

    return float(str(np.float32(v)))


def standardized(imp, node, W):
    """Weight standardisation on a conv's weight (BiT's StdConv2d, NFNet's ScaledStdConv2d, as
    torch.onnx.export writes ``F.batch_norm(w.reshape(1, F, -1), training=True)``): the weight
    is a BatchNormalization in training mode (its own statistics; the mean and variance inputs
    are only the running statistics' update) over an initializer reshaped to (1, F, fan-in),
    with a zero bias; its scale is timm's ``gain * scale``. Folded or not, the importer has
    already computed the weight (W); this finds the raw weight, gain, scale and eps, and
    checks that they give W. Returns ``(raw weight, gain or None, {eps, gain, scale})`` or None."""
    import numpy as np

    if W.ndim < 3 or W.dtype.kind != "f":  # (no convolution's weight: _weight_rank says so)
        return None
    n = _through(imp, node.input[1])
    if n is None or n.op_type != "BatchNormalization" or not imp.attr(n, "training_mode", 0) or len(n.input) < 3:
        return None
    X, B = imp.const(n.input[0]), imp.const(n.input[2])
    F = W.shape[0]
    if X is None or B is None or X.size != W.size or X.ndim < 3 or X.shape[:2] != (1, F) or B.size != F \
            or B.any() or imp.learned_from(n.input[2]) or len(imp.learned_from(n.input[0])) != 1:
        return None
    gs = _gain_and_scale(imp, n.input[1], F)
    if gs is None:
        return None
    gain, scale = gs
    eps = imp.attr(n, "epsilon", 1e-5)
    if not isinstance(eps, float) or not 0 < eps < float("inf") or not 0 < scale < float("inf"):
        return None  # (a hostile attribute: the conv's refusal names the tensors)
    raw = X.reshape(W.shape)
    v = raw.reshape(F, -1).astype(np.float64)
    d = v - v.mean(1, keepdims=True)
    mult = np.float64(scale) * (gain.astype(np.float64).reshape(F, 1) if gain is not None else 1.0)
    want = d / np.sqrt((d * d).mean(1, keepdims=True) + eps) * mult
    if not np.allclose(want, W.reshape(F, -1), rtol=1e-4, atol=1e-6 * float(np.abs(want).max(initial=1e-30))):
        return None
    st = {"eps": _short(eps), "gain": gain is not None}
    if _short(scale) != 1.0:
        st["scale"] = _short(scale)
    # the learned tensors it reads (a module called again reads the same ones: shares:)
    key = (tuple(sorted(imp.learned_from(n.input[0]))), tuple(sorted(imp.learned_from(n.input[1]))))
    return raw, gain, st, key


@rewrite("Conv", family="conv", lifts="conv / dwconv (+ a zero Pad before it, folded; shares: an earlier conv's "
                                      "weights; a weight standardisation on the weight: standardize)")
def conv(imp, node):
    x = node.input[0]
    W = imp.const(node.input[1])
    if W is None:
        raise Unmapped("Conv", node.name, "weights that are not constants")
    merged = sorted(imp.learned_of.get(node.input[1], ()))
    std = standardized(imp, node, W) if len(merged) > 1 or node.input[1] not in imp.init_names else None
    if std is not None:
        W, gain, std_args, std_key = std
        merged = []
    if len(merged) > 1:  # (a spec's conv has one weight tensor: the others' parameters would be lost)
        raise Unmapped("Conv", node.name, f"its weight is computed from {len(merged)} learned tensors "
                       f"({', '.join(merged[:3])}; not the weight standardisation `standardize:` reads, a "
                       f"training-mode BatchNormalization over the weight): one conv would count the "
                       f"parameters of one", hard=True)
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
    if std is not None:
        args["standardize"] = std_args
        if gain is not None:
            p["gain"] = gain
    # the same weight and bias initializers as an earlier conv (a module called again): that
    # layer's parameters, counted once (shares:)
    key = (node.input[1], node.input[2] if B is not None else "")
    shared = all(t in imp.init_names and imp.learned(t) for t in key if t)
    if std is not None:  # (the standardisation's raw weight and gain, and the bias)
        key = ("standardize", *std_key, key[1])
        shared = not key[-1] or (key[-1] in imp.init_names and imp.learned(key[-1]))
    owner = imp.owner_of.get(key) if shared else None
    if owner is not None and imp.by_name.get(owner) is not None and imp.by_name[owner].kind == kind and \
            imp.by_name[owner].args.get("standardize") == args.get("standardize"):
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
