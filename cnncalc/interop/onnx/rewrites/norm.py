"""Normalisations: BatchNormalization, LayerNormalization (over C, over C x H x W, and ConvNeXt's
channels-last Transpose → LayerNormalization → Transpose back), InstanceNormalization,
GroupNorm as torch.onnx.export writes it, LRN."""
from __future__ import annotations

import numpy as np

from cnncalc.interop.onnx.common import Unmapped, consumer, nchw
from cnncalc.interop.onnx.rewrites import rewrite


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
        raise Unmapped(node.op_type, node.name, "a scale or bias that is not a constant")
    return {}, {"gamma": s.astype(np.float32), "beta": b.astype(np.float32)}


def _eps(imp, node, args):
    eps = float(imp.attr(node, "epsilon", 1e-5))
    if abs(eps - 1e-5) > 1e-12:
        args["eps"] = float(f"{eps:.6g}")
    return args


@rewrite("Transpose", family="norm", name="channels_last_transpose",
         lifts="(pending: the LayerNormalization after it reads the channels)")
def transpose(imp, node):
    xs = nchw(imp, node.input[0], node)
    r = len(xs)
    perm = list(imp.attr(node, "perm", []))
    if r > 2 and perm == [0, *range(2, r), 1] and consumer(imp, node.output[0], "LayerNormalization") is not None:
        imp.pending[node.output[0]] = ("nhwc", node.input[0], None, node.name)
        imp.pending_node[node.output[0]] = node
        return
    raise Unmapped("Transpose", node.name, "a transpose other than channels-last around a LayerNormalization")


@rewrite("LayerNormalization", family="norm", lifts="layernorm (over C; over all with C x H x W; channels-last)")
def layernorm(imp, node):
    x = node.input[0]
    if x in imp.pending and imp.pending[x][0] == "nhwc":
        _, src, _, _ = imp.pending[x]
        xs = nchw(imp, src, node)
        r = len(xs)
        axis = imp.attr(node, "axis", -1) % r
        if axis != r - 1:
            raise Unmapped("LayerNormalization", node.name, f"a channels-last LayerNorm from axis {axis}: it "
                            "normalises more than the channels")
        k = consumer(imp, node.output[0], "Transpose")
        if k is None or list(imp.attr(imp.nodes[k], "perm")) != [0, r - 1, *range(1, r - 1)]:
            users = sorted({imp.nodes[k].op_type for k in imp.consumers.get(node.output[0], ())})
            raise Unmapped("LayerNormalization", node.name, "a LayerNorm over the channels whose result stays "
                            f"channels-last (it feeds {', '.join(users) or 'nothing'}, not one Transpose back)")
        imp.pending.pop(x)
        back = imp.nodes[k]
        imp.skip.add(k)
        extra, p = _affine_params(imp, node, xs[1])
        name = imp.name_for(back) if imp.cnncalc else imp.name_for(node, node.input[1])
        imp.emit(node, "layernorm", _eps(imp, node, {"layernorm": None, **extra}), [src], out=back.output[0],
                 name=name, params=p)
        return
    xs = nchw(imp, x, node)
    r = len(xs)
    axis = imp.attr(node, "axis", -1) % r
    if axis != 1:
        raise Unmapped("LayerNormalization", node.name, "normalising axes other than C (flat) or C, H, W")
    extra, p = _affine_params(imp, node, xs[1])
    if p is not None:
        p = {k: v.reshape(xs[1:]) if r > 2 else v.reshape(-1) for k, v in p.items()}
    over = "all" if r > 2 else None
    imp.emit(node, "layernorm", _eps(imp, node, {"layernorm": over, **extra}), [x], weight=node.input[1], params=p)


@rewrite("InstanceNormalization", family="norm", lifts="instancenorm")
def instancenorm(imp, node):
    xs = nchw(imp, node.input[0], node)
    extra, p = _affine_params(imp, node, xs[1])
    imp.emit(node, "instancenorm", _eps(imp, node, {"instancenorm": None, **extra}), [node.input[0]],
             weight=node.input[1], params=p)


@rewrite("Reshape", family="norm", name="groupnorm", stage="within", lifts="groupnorm")
def groupnorm_from_reshape(imp, node, xs, groups) -> bool:
    """torch.onnx.export's GroupNorm (opset < 18): Reshape (N, G, -1) → InstanceNormalization
    (unit γ) → Reshape back → Mul γ → Add β. True when ``node`` starts it (and it was imported)."""
    k1 = consumer(imp, node.output[0], "InstanceNormalization")
    if k1 is None:
        return False
    inorm = imp.nodes[k1]
    if not _unit_affine(imp, inorm.input[1], inorm.input[2] if len(inorm.input) > 2 else None):
        return False
    saved, imp.index = imp.index, k1
    k2 = consumer(imp, inorm.output[0], "Reshape")
    imp.index = saved
    if k2 is None:
        return False
    chain, last = [k1, k2], imp.nodes[k2].output[0]
    params = {}
    for op, pname in (("Mul", "gamma"), ("Add", "beta")):
        saved, imp.index = imp.index, chain[-1]
        k = consumer(imp, last, op)
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


@rewrite("BatchNormalization", family="norm", lifts="batchnorm")
def batchnorm(imp, node):
    ts = [imp.const(t) for t in node.input[1:5]]
    if any(t is None for t in ts):
        raise Unmapped("BatchNormalization", node.name, "statistics that are not constants")
    eps = float(imp.attr(node, "epsilon", 1e-5))
    mom = 1.0 - float(imp.attr(node, "momentum", 0.9))
    args = {"batchnorm": None}
    if abs(eps - 1e-5) > 1e-12:
        args["eps"] = float(f"{eps:.6g}")
    if abs(mom - 0.1) > 1e-6:
        args["momentum"] = float(f"{mom:.6g}")
    imp.emit(node, "batchnorm", args, [node.input[0]], weight=node.input[1],
             params={"gamma": ts[0], "beta": ts[1]}, state={"running_mean": ts[2], "running_var": ts[3]})


@rewrite("LRN", family="norm", lifts="lrn")
def lrn(imp, node):
    args = {"lrn": int(imp.attr(node, "size")), "alpha": float(f"{imp.attr(node, 'alpha', 1e-4):.6g}"),
            "beta": float(f"{imp.attr(node, 'beta', 0.75):.6g}"), "k": float(f"{imp.attr(node, 'bias', 1.0):.6g}")}
    imp.emit(node, "lrn", args, [node.input[0]])
