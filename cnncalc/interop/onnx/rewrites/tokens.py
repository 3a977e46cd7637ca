"""The token layers around attention (cnncalc/layers/attention.py) as ONNX writes them — timm's
ViT, and cnncalc's own ``export --to onnx`` (cnncalc/interop/attention_export.py), whose output
imports back into the same layers: the patch embedding, the class token, the position
embedding, the per-token MLP and the mean over the tokens. (Attention itself, window attention
and Swin's patch merging: rewrites/attention.py.)

Each is a lift over the low-level items the ONNX nodes were lowered to; the region must be read
by nothing else (its intermediate tensors by its own nodes only), and the new layer must infer
the shape the region had. This family comes before ``linear`` in the registry: the MLP's last
Add is also what ``token_fc`` would take as the bias of a per-token fc.
"""
from __future__ import annotations

import numpy as np

from cnncalc.interop.onnx.common import Item
from cnncalc.interop.onnx.rewrites import rewrite
from cnncalc.interop.onnx.rewrites.attention import layout, restore

MLP_ACTS = ("gelu", "silu", "relu")  # (the activations the mlp layer takes, as the importer names them)


def _held(imp, it) -> list[str]:
    return [t for t, layer in imp.layer_of.items() if layer == it.name]


def _readers(imp, t) -> list[int]:
    """The ONNX nodes that read the values of tensor ``t`` (a Shape node reads none)."""
    return [k for k in imp.consumers.get(t, ()) if imp.nodes[k].op_type != "Shape"]


def _read_once(lift, it) -> bool:
    """The tensors ``it`` holds are read once in all (by the next item of the region), and none
    is a graph output."""
    imp = lift.imp
    ts = _held(imp, it)
    return bool(ts) and sum(len(_readers(imp, t)) for t in ts) == 1 and not any(t in imp.output_names for t in ts)


def _closed(lift, region) -> bool:
    """The tensors of the region's items but the last are read by the region's own nodes only:
    nodes whose outputs its items hold, or nodes a region rewrite took into one of them (GELU's
    Div · Erf · Add · Mul · Mul reads its input twice: their tensors that no layer holds are
    followed to the tensors a layer does). Shape nodes read no values."""
    imp = lift.imp
    names = {it.name for it in region}
    todo = [t for it in region[:-1] for t in _held(imp, it)]
    seen = set(todo)
    while todo:
        t = todo.pop()
        if t in imp.output_names:
            return False
        for k in _readers(imp, t):
            for o in imp.nodes[k].output:
                if not o or o in seen:
                    continue
                if o not in imp.layer_of:
                    if not (k in imp.skip or imp.nodes[k] is lift.node or _before(imp, k, lift.node)):
                        return False  # (a node not imported yet reads it)
                    seen.add(o)
                    todo.append(o)
                elif imp.layer_of[o] not in names:
                    return False
    return True


def _before(imp, k, node) -> bool:
    """Node ``k`` comes before ``node`` in the graph (it has been imported)."""
    for j in range(k + 1, len(imp.nodes)):
        if imp.nodes[j] is node:
            return True
    return False


def _learned_const(imp, it, index=None):
    """The learned constant operand of a low-level item (at ``index``; None: either side of an
    elementwise op, ``Add(bias, x)`` or ``Add(x, bias)``), or None."""
    c = it.args.get("const") if it is not None else None
    if not isinstance(c, dict) or not c.get("learned") or (index is not None and c.get("index", 1) != index):
        return None
    return imp.params.get(it.name, {}).get(f"const{c.get('index', 1)}")


def _shape(imp, name):
    sp = imp.spec_shapes.get(name)
    return None if sp is None else tuple(sp)


def _name(region) -> str:
    """The lifted layer's name: the shortest of the region's without a ``_k`` suffix (cnncalc's
    export names the last node as the layer, ``block1/mlp``, and the others under it;
    torch.onnx.export names them after the module, ``mlp``, ``mlp_2``, …)."""
    return min((it.name for it in region), key=lambda s: (s.rsplit("_", 1)[-1].isdigit(), len(s)))


def _swap(lift, region, new, params, want=None) -> bool:
    """Replace ``region`` (its last item the one lifted) by ``new`` when ``new`` infers the
    shape the region ended with (or ``want``); True when done."""
    from cnncalc.layers import REGISTRY

    imp = lift.imp
    cls = REGISTRY[new.kind]
    args = {k: v for k, v in new.args.items() if k != new.kind}
    if cls.primary and new.args.get(new.kind) is not None:
        args[cls.primary] = new.args[new.kind]
    try:
        got = cls(new.name, args).infer([imp.spec_shapes[i] for i in new.inputs], "exact")
    except Exception:  # (not tokens, another shape: the low-level items stay)
        return False
    if tuple(got) != (want or _shape(imp, region[-1].name)):
        return False
    if new.name in imp.by_name and new.name not in {it.name for it in region}:
        return False
    keep = layout(imp, region[-1])
    lift.replace(region, new, params=params)
    restore(imp, keep)
    return True


@rewrite("transpose", family="tokens", name="patch_embed", stage="lift",
         lifts="patch_embed (conv with kernel = stride, flattened to tokens)")
def patch_embed(lift, item) -> bool:
    """ViT's patch embedding: a conv whose kernel equals its stride, flattened and transposed to tokens.

    The conv without padding, dilation or groups, its patch 2 or more; its positions flattened (Reshape to C x H·W)
    and transposed to H·W tokens of C (``proj(x).flatten(2).transpose(1, 2)``): one patch_embed
    layer."""
    imp = lift.imp
    if list(item.args.get("perm", [])) != [1, 0] or len(item.inputs) != 1:
        return False
    flat = lift.producer(item)
    cv = lift.producer(flat) if flat is not None and flat.kind == "reshape" else None
    if cv is None or cv.kind != "conv" or set(cv.args) - {"conv", "kernel", "stride", "bias"}:
        return False
    k, s = cv.args.get("kernel"), cv.args.get("stride", 1)
    # (patch 1: a pointwise conv, then the tokens layer — kept two layers as a spec writes them)
    if not isinstance(k, int) or k != s or k < 2 or not (_read_once(lift, cv) and _read_once(lift, flat)):
        return False
    cs, fs = _shape(imp, cv.name), _shape(imp, flat.name)
    if cs is None or fs != (cs[-1], int(np.prod(cs[:-1]))):
        return False
    p = imp.params.get(cv.name, {})
    args = {"patch_embed": int(cv.args["conv"]), "patch": int(k)}
    params = {"weight": np.asarray(p["weight"], np.float32)}
    if cv.args.get("bias") is False:
        args["bias"] = False
    else:
        params["bias"] = np.asarray(p["bias"], np.float32).reshape(-1)
    region = [cv, flat, item]
    return _swap(lift, region, Item("patch_embed", args, _name(region), list(cv.inputs), item.raw), params)


@rewrite("transpose", family="tokens", name="tokens", stage="lift", lifts="tokens (an image as H·W tokens)")
def tokens(lift, item) -> bool:
    """An image as its H·W tokens: Reshape to C x H·W, then Transpose, one tokens layer.

    (``x.flatten(2).transpose(1, 2)`` without a conv before it.)"""
    imp = lift.imp
    if list(item.args.get("perm", [])) != [1, 0] or len(item.inputs) != 1:
        return False
    flat = lift.producer(item)
    if flat is None or flat.kind != "reshape" or not _read_once(lift, flat):
        return False
    img = imp.spec_shapes.get(flat.inputs[0])
    fs = _shape(imp, flat.name)
    if img.__class__ is not tuple or len(img) < 2 or fs != (img[-1], int(np.prod(img[:-1]))):
        return False
    return _swap(lift, [flat, item], Item("tokens", {"tokens": None}, item.name, list(flat.inputs), item.raw), None)


@rewrite("reshape", family="tokens", name="to_image", stage="lift", lifts="to_image (N x C tokens as an image)")
def to_image(lift, item) -> bool:
    """N x C tokens back to an image: Transpose to C x N, then Reshape to C x H x W, one to_image layer.

    (``x.transpose(1, 2).reshape(B, C, H, W)``.)"""
    imp = lift.imp
    t = lift.producer(item) if len(item.inputs) == 1 else None
    xs = _shape(imp, t.inputs[0]) if t is not None and len(t.inputs) == 1 else None
    if (t is None or t.kind != "transpose" or list(t.args.get("perm", [])) != [1, 0] or xs is None or len(xs) != 2
            or not _read_once(lift, t)):
        return False
    out = tuple(item.args.get("shape") or ())  # (C, H, W): the reshape's, in ONNX's order
    if len(out) < 2 or -1 in out or out[0] != xs[1] or int(np.prod(out[1:])) != xs[0]:
        return False
    image = (*out[1:], out[0])
    for args in ({"to_image": None}, {"to_image": [int(v) for v in out[1:]]}):
        if _swap(lift, [t, item], Item("to_image", args, item.name, list(t.inputs), item.raw), None, want=image):
            for tensor in _held(imp, imp.by_name[item.name]):  # (an N x C x H x W image now, as ONNX has it)
                imp.odd.discard(tensor)
            return True
    return False


@rewrite("concat", family="tokens", name="cls_token", stage="lift",
         lifts="cls_token (learned tokens put before the tokens)")
def cls_token(lift, item) -> bool:
    """ViT's class token: a learned (count, C) constant concatenated before N tokens of C.

    Along the token axis (``torch.cat([cls.expand(B, -1, -1), x], 1)``): one cls_token layer."""
    imp = lift.imp
    v = _learned_const(imp, item, index=0)
    xs = _shape(imp, item.inputs[0]) if len(item.inputs) == 1 else None
    if v is None or xs is None or len(xs) != 2 or v.ndim != 2 or v.shape[1] != xs[1] or item.args.get("axis") != 0:
        return False
    count = int(v.shape[0])
    args = {"cls_token": count if count != 1 else None}
    new = Item("cls_token", args, item.name, list(item.inputs), item.raw)
    return _swap(lift, [item], new, {"cls": np.asarray(v, np.float32).reshape(1, count, xs[1])})


@rewrite("binary", family="tokens", name="pos_embed", stage="lift",
         lifts="pos_embed (a learned N x C table added to the tokens)")
def pos_embed(lift, item) -> bool:
    """A position embedding: N x C tokens plus a learned constant of the same N x C, one pos_embed layer."""
    imp = lift.imp
    v = _learned_const(imp, item)
    xs = _shape(imp, item.inputs[0]) if len(item.inputs) == 1 else None
    if item.args.get("op") != "add" or v is None or xs is None or len(xs) != 2 or tuple(v.shape) != xs:
        return False
    new = Item("pos_embed", {"pos_embed": None}, item.name, list(item.inputs), item.raw)
    return _swap(lift, [item], new, {"pos": np.asarray(v, np.float32).reshape(1, *xs)})


def _linear_of(lift, it):
    """(weight (out, in), bias or None, the items) of a per-token linear layer ending at ``it``:
    an fc (the MatMul and its bias lifted already), or a low-level matmul by a learned matrix
    [and the add of a learned bias]; or None."""
    imp = lift.imp
    if it is None:
        return None
    if it.kind == "fc" and set(it.args) <= {"fc", "bias", "activation"}:
        p = imp.params.get(it.name, {})
        return np.asarray(p["weight"]), p.get("bias"), [it]
    items, b = [], None
    if it.kind == "binary" and it.args.get("op") == "add" and len(it.inputs) == 1:
        b = _learned_const(imp, it)
        if b is None:
            return None
        items.append(it)
        it = lift.producer(it)
        if it is None or not _read_once(lift, it):
            return None
    w = _learned_const(imp, it, 1) if it is not None and it.kind == "matmul" and len(it.inputs) == 1 else None
    if w is None or w.ndim != 2 or (b is not None and np.size(b) != w.shape[1]):
        return None
    return np.asarray(w).T, b, [it, *items]


def _ends_in_bias(imp, node) -> bool:
    """The MatMul's result goes to one Add of a constant (its bias: the lift waits for it)."""
    readers = imp.consumers.get(node.output[0], [])
    if len(readers) != 1 or node.output[0] in imp.output_names:
        return False
    nd = imp.nodes[readers[0]]
    return nd.op_type == "Add" and any(imp.const(t) is not None for t in nd.input)


@rewrite("binary", "matmul", family="tokens", name="mlp", stage="lift",
         lifts="mlp (linear, activation, linear on every token)")
def mlp(lift, item) -> bool:
    """timm's Mlp: two per-token linear layers with GELU, SiLU, ReLU or nothing between them.

    Both with a bias or both without; the activation may be fused into the first fc already:
    one mlp layer."""
    imp = lift.imp
    if item.kind == "matmul" and _ends_in_bias(imp, lift.node):
        return False
    fc2 = _linear_of(lift, item)
    if fc2 is None:
        return False
    w2, b2, items2 = fc2
    if items2[0].kind == "fc" and items2[0].args.get("activation"):
        return False
    act = lift.producer(items2[0])
    if act is None:
        return False
    act_kind = act.kind if act.kind in MLP_ACTS and set(act.args) == {act.kind} else None
    top = lift.producer(act) if act_kind else act
    fc1 = _linear_of(lift, top)
    if fc1 is None:
        return False
    w1, b1, items1 = fc1
    fused = items1[-1].args.get("activation") if items1[-1].kind == "fc" else None  # (an fc with its activation)
    if fused and (act_kind or fused not in MLP_ACTS):
        return False
    act_kind = act_kind or fused
    if (b1 is None) != (b2 is None) or w2.shape[1] != w1.shape[0]:
        return False
    args = {"mlp": int(w1.shape[0])}
    xs = _shape(imp, items1[0].inputs[0])
    if xs is None or xs[-1] != w1.shape[1]:
        return False
    if w2.shape[0] != xs[-1]:
        args["dim"] = int(w2.shape[0])
    if act_kind != "gelu":
        args["act"] = act_kind
    params = {"fc1_weight": np.ascontiguousarray(w1, np.float32)}
    if b1 is not None:
        params["fc1_bias"] = np.asarray(b1, np.float32).reshape(-1)
    params["fc2_weight"] = np.ascontiguousarray(w2, np.float32)
    if b2 is None:
        args["bias"] = False
    else:
        params["fc2_bias"] = np.asarray(b2, np.float32).reshape(-1)
    region = [*items1, *([act] if act_kind else []), *items2]
    if not _closed(lift, region):
        return False
    return _swap(lift, region, Item("mlp", args, _name(region), list(items1[0].inputs), item.raw), params)


@rewrite("reduce", family="tokens", name="token_mean", stage="lift", lifts="mean (the mean over N x C tokens)")
def token_mean(lift, item) -> bool:
    """The mean of N x C tokens (ReduceMean over the token axis, not kept: Swin's head), one mean layer."""
    imp = lift.imp
    xs = _shape(imp, item.inputs[0]) if len(item.inputs) == 1 else None
    if (item.args.get("op") != "mean" or item.args.get("keepdims", True) or list(item.args.get("axes", [])) != [0]
            or xs is None or len(xs) != 2):
        return False
    return _swap(lift, [item], Item("mean", {"mean": None}, item.name, list(item.inputs), item.raw), None)
