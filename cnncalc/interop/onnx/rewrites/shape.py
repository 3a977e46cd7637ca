"""Shapes and plumbing: Reshape (flatten, channel shuffle), Flatten, Concat, Split, Slice (channel
split, crop, the strided slice of ResNet option A), Pad (padding, pad_channels, or pending for
the next conv), Resize/Upsample, Identity, Dropout."""
from __future__ import annotations

import math

import numpy as np

from cnncalc.interop.onnx.common import Unmapped, compact, nchw, pads_arg
from cnncalc.interop.onnx.rewrites import rewrite
from cnncalc.interop.onnx.rewrites.norm import groupnorm_from_reshape


@rewrite("Resize", "Upsample", family="shape", lifts="upsample")
def resize(imp, node):
    xs = nchw(imp, node.input[0], node)
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
        raise Unmapped(node.op_type, node.name, "scales or sizes that are not constants")
    if scales is not None:
        scales = [float(v) for v in scales]
        if scales[:2] != [1.0, 1.0]:
            raise Unmapped(node.op_type, node.name, "resizing the batch or channel axis")
        out = [int(np.floor(n * f)) for n, f in zip(xs[2:], scales[2:])]
    else:
        out = [int(v) for v in sizes][2:]
    args = {}
    if all(o % n == 0 for o, n in zip(out, xs[2:])):
        args["upsample"] = compact([o // n for o, n in zip(out, xs[2:])])
    else:
        args.update(upsample=None, size="x".join(map(str, out)))
    if mode == "nearest":
        nm = imp.attr(node, "nearest_mode", b"round_prefer_floor")
        nm = nm.decode() if isinstance(nm, bytes) else nm
        if ctm != "asymmetric" or (node.op_type == "Resize" and nm != "floor"):
            raise Unmapped(node.op_type, node.name, f"nearest with {ctm}/{nm} (PyTorch's nearest is asymmetric/floor)")
    elif mode == "linear":
        if ctm not in ("align_corners", "half_pixel", "pytorch_half_pixel"):
            raise Unmapped(node.op_type, node.name, f"linear with coordinate_transformation_mode {ctm}")
        args["mode"] = {1: "linear", 2: "bilinear", 3: "trilinear"}[nsp]
        if ctm == "align_corners":
            args["align_corners"] = True
    else:
        raise Unmapped(node.op_type, node.name, f"mode {mode} (nearest and linear are layer types)")
    if any(o < n for o, n in zip(out, xs[2:])):
        raise Unmapped(node.op_type, node.name, "downsampling")
    imp.emit(node, "upsample", args, [node.input[0]])


@rewrite("Dropout", family="shape", lifts="dropout")
def dropout(imp, node):
    r = imp.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    p = float(r) if r is not None else float(imp.attr(node, "ratio", 0.5))
    args = {"dropout": round(p, 9)}
    imp.emit(node, "dropout", args, [node.input[0]])


@rewrite("Concat", family="shape", lifts="concat (over the channels)")
def concat(imp, node):
    if len([t for t in node.input if t]) == 1:  # torchvision/timm DenseNet: torch.cat([x], 1) is x
        imp.alias(node, next(t for t in node.input if t))
        return
    s = nchw(imp, node.output[0], node)
    if imp.attr(node, "axis") % len(s) != 1:
        raise Unmapped("Concat", node.name, "concatenation along an axis other than the channels")
    imp.emit(node, "concat", {"concat": None}, list(node.input))


@rewrite("Flatten", family="shape", lifts="flatten")
def flatten(imp, node):
    xs = nchw(imp, node.input[0], node)
    if imp.attr(node, "axis", 1) != 1:
        raise Unmapped("Flatten", node.name, "flatten from an axis other than 1")
    nxt = [imp.nodes[k] for k in imp.consumers.get(node.output[0], ())]
    if len(xs) == 2 or (imp.cnncalc and node.name.endswith("/flatten") and nxt and nxt[0].op_type == "Gemm"):
        imp.alias(node, node.input[0])  # already flat, or the helper in front of an fc
        return
    imp.emit(node, "flatten", {"flatten": None}, [node.input[0]])


@rewrite("Reshape", family="shape", lifts="flatten / groupnorm / channel_shuffle / nothing")
def reshape(imp, node):
    target = imp.const(node.input[1])
    xs = nchw(imp, node.input[0], node)
    if target is None:
        raise Unmapped("Reshape", node.name, "a target shape that depends on the data")
    t = [int(v) for v in target]
    t = [xs[i] if v == 0 and i < len(xs) else v for i, v in enumerate(t)]
    n = math.prod(xs)
    if t.count(-1) > 1 or any(v < -1 for v in t):
        raise Unmapped("Reshape", node.name, f"an invalid target shape {t}", hard=True)
    if -1 in t:
        known = math.prod(v for v in t if v != -1)
        if known == 0 or n % known:
            raise Unmapped("Reshape", node.name, f"a reshape of {n} values to {t}", hard=True)
        t[t.index(-1)] = n // known
    if math.prod(t) != n:
        raise Unmapped("Reshape", node.name, f"a reshape of {list(xs)} ({n} values) to {t} "
                        f"({math.prod(t)} values)", hard=True)
    if len(t) == 3 and t[0] == xs[0] and len(xs) > 2 and xs[1] % t[1] == 0 and t[1] * t[2] == int(np.prod(xs[1:])):
        if groupnorm_from_reshape(imp, node, xs, t[1]):
            return
    if len(t) == 2 and t[0] == xs[0]:
        if len(xs) == 2:
            imp.alias(node, node.input[0])
        else:
            imp.emit(node, "flatten", {"flatten": None}, [node.input[0]])
        return
    if len(t) == len(xs) + 1 and len(xs) >= 3 and t[0] == xs[0] and t[1] * t[2] == xs[1] and t[3:] == list(xs[2:]):
        if channel_shuffle(imp, node, xs, t):
            return
    if tuple(t) == tuple(xs):
        imp.alias(node, node.input[0])
        return
    raise Unmapped("Reshape", node.name, f"a reshape {list(xs)} → {t}")


@rewrite("Reshape", family="shape", name="channel_shuffle", stage="within", lifts="channel_shuffle")
def channel_shuffle(imp, node, xs, t) -> bool:
    """Reshape(N, g, C/g, H, W) → Transpose(0, 2, 1, ...) → Reshape(N, C, H, W): ShuffleNet's
    channel shuffle. True when ``node`` (the first Reshape, to ``t``) starts it (and it was imported)."""
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
                    return True
    return False


@rewrite("Identity", family="shape", lifts="identity")
def identity(imp, node):
    imp.emit(node, "identity", {"identity": None}, [node.input[0]])


@rewrite("Slice", family="shape", lifts="split / crop / (pending: strided, for pad_channels)")
def slice_(imp, node):
    xs = nchw(imp, node.input[0], node)
    ins = [imp.const(t) if t else None for t in node.input]
    if any(v is None for v in ins[1:]):
        raise Unmapped("Slice", node.name, "slice bounds that depend on the data")
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
        imp.emit(node, "crop", {"crop": pads_arg([a for a, _ in lohi], [b for _, b in lohi])}, [node.input[0]])
        return
    if sorted(axes) == list(range(2, len(xs))) and all(s == 0 for s in starts) and all(e >= xs[a] for e, a in zip(ends, axes)):
        order = sorted(range(len(axes)), key=lambda i: axes[i])
        imp.pending[node.output[0]] = ("slice", node.input[0], [steps[i] for i in order], node.name)
        imp.pending_node[node.output[0]] = node
        return
    raise Unmapped("Slice", node.name)


@rewrite("Pad", family="shape", lifts="padding / pad_channels / (pending: folded into the next conv)")
def pad(imp, node):
    xs = nchw(imp, node.input[0], node)
    pads = imp.const(node.input[1]) if len(node.input) > 1 else imp.attr(node, "pads")
    mode = imp.attr(node, "mode", b"constant")
    value = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if pads is None or mode not in ("constant", "reflect", "edge") or (value is not None and float(value) != 0.0) \
            or (len(node.input) > 3 and node.input[3]):
        raise Unmapped("Pad", node.name, "a padding that is not zero / reflect / edge with constant amounts")
    pads = [int(p) for p in pads]
    r = len(xs)
    lo, hi = pads[:r], pads[r:]
    if lo[0] or hi[0] or any(p < 0 for p in pads):
        raise Unmapped("Pad", node.name)
    if not lo[1] and not hi[1] and (mode != "constant" or imp.cnncalc):  # a padding layer
        spec_mode = {"constant": "zero", "reflect": "reflect", "edge": "replicate"}[mode]
        imp.emit(node, "padding", {"padding": pads_arg(lo[2:], hi[2:]),
                                   **({"mode": spec_mode} if spec_mode != "zero" else {})}, [node.input[0]])
        return
    if mode != "constant":
        raise Unmapped("Pad", node.name, "reflect/edge padding of the channels")
    if not any(lo[2:]) and not any(hi[2:]):  # channels only: pad_channels (ResNet option A)
        x, strides = node.input[0], [1] * (r - 2)
        if x in imp.pending and imp.pending[x][0] == "slice":
            _, x, strides, _ = imp.pending.pop(x)
        args = {"pad_channels": int(xs[1] + lo[1] + hi[1])}
        if any(s != 1 for s in strides):
            args["stride"] = compact(strides)
        if lo[1]:
            if lo[1] != (lo[1] + hi[1]) // 2:
                raise Unmapped("Pad", node.name, "an uneven channel padding")
            args["place"] = "both"
        imp.emit(node, "pad_channels", args, [x])
        return
    if not lo[1] and not hi[1]:  # spatial zero padding: folded into the next conv (else a padding layer)
        imp.pending[node.output[0]] = ("pad", node.input[0], (lo[2:], hi[2:]), node.name)
        imp.pad_nodes[node.output[0]] = node
        imp.shapes[node.output[0]] = (*xs[:2], *(n + a + b for n, a, b in zip(xs[2:], lo[2:], hi[2:])))
        return
    raise Unmapped("Pad", node.name)


@rewrite("Split", family="shape", lifts="split")
def split(imp, node):
    xs = nchw(imp, node.input[0], node)
    axis = imp.attr(node, "axis", 0) % len(xs)
    sizes = imp.const(node.input[1]) if len(node.input) > 1 and node.input[1] else imp.attr(node, "split")
    parts = len(node.output)
    sizes = [int(s) for s in sizes] if sizes is not None else [xs[1] // parts] * parts
    if axis != 1 or len(set(sizes)) != 1 or sum(sizes) != xs[1]:
        raise Unmapped("Split", node.name, "only equal channel splits are a split layer")
    base = imp.name_for(node)
    for i, o in enumerate(node.output):
        if o and imp.n_consumers[o]:
            imp.emit(node, "split", {"split": parts, "part": i}, [node.input[0]], out=o, name=f"{base}_{i}")
