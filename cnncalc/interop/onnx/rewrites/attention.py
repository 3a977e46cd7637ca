"""Attention as torch.onnx.export writes timm's ``Attention`` (ViT, DeiT, MobileViT, …), fused
(``scaled_dot_product_attention``) or not: lifted into cnncalc's ``attention`` layer when the
whole block matches, else left as the exact low-level ops it was lowered to (the counts are the
same either way: QKᵀ and AV are matmuls of two activations).

The block, over the lowered items (one sample's axes; T tokens, C channels, h heads of d)::

    x ─ matmul W_qkv (C, 3C) ─ [add b_qkv] ─ reshape (T, 3, h, d) ─ transpose (1, 2, 0, 3)
      ─ split 3 ─ reshape (h, T, d) ×3 → q, k, v
    q ─ [mul s_q] ┐
    k ─ [mul s_k] ─ transpose (0, 2, 1) ─ [mul s_k] ┴ matmul ─ softmax (last axis) ┐
    v ──────────────────────────────────────────────────────────────────────────── matmul
      ─ transpose (1, 0, 2) ─ reshape (T, C) ─ matmul W_proj (C, C') ─ [add b_proj]

with the scales multiplying to d^-1/2 (cnncalc's attention scales by 1/√d). Every
intermediate tensor must be read by the block alone. Leading axes (MobileViT's patches folded
with the batch) are groups of sequences, as the attention layer reads them.
"""
from __future__ import annotations

import math

import numpy as np

from cnncalc.interop.onnx.common import Item
from cnncalc.interop.onnx.rewrites import rewrite


def _held(imp, it) -> list[str]:
    return [t for t, layer in imp.layer_of.items() if layer == it.name]


def _only_here(lift, it, readers: int = 1) -> bool:
    """``it``'s tensors are read by ``readers`` ONNX nodes in all (the block's own); a Shape node
    reads no values (the exported SDPA computes its scale from q's shape: folded)."""
    imp = lift.imp
    ts = _held(imp, it)
    n = sum(sum(1 for k in imp.consumers.get(t, ()) if imp.nodes[k].op_type != "Shape")
            + (t in imp.output_names) for t in ts)
    return bool(ts) and n == readers


def _const(imp, it):
    """The one constant tensor an item holds (its ``const`` operand), or None."""
    p = {**imp.params.get(it.name, {}), **imp.state.get(it.name, {})}
    c = it.args.get("const")
    if c is None or isinstance(c, list):
        return None
    if "value" in c:
        return np.asarray(c["value"], np.float64)
    return p.get(f"const{c.get('index', 1)}")


def _is(it, kind, **args) -> bool:
    return it is not None and it.kind == kind and all(it.args.get(k) == v for k, v in args.items())


def _scaled(lift, it, scale):
    """Walk back over ``mul`` by one value: (the item before them, the product of the values)."""
    imp = lift.imp
    while _is(it, "binary", op="mul") and len(it.inputs) == 1:
        v = _const(imp, it)
        if v is None or np.size(v) != 1 or not _only_here(lift, it):
            return None, scale
        scale *= float(np.asarray(v).reshape(-1)[0])
        it = lift.producer(it)
    return it, scale


@rewrite("matmul", family="attention", name="attention", stage="lift",
         lifts="attention (qkv projection · QKᵀ · softmax · AV · output projection)")
def attention(lift, item) -> bool:
    """timm's Attention block (qkv Linear, heads, softmax(q·kᵀ·scale)·v, proj Linear) as one
    attention layer; the output projection's bias follows (attention_proj_bias)."""
    imp = lift.imp
    w_proj = _const(imp, item)
    c = item.args.get("const")
    if w_proj is None or len(item.inputs) != 1 or not isinstance(c, dict) or not c.get("learned") \
            or c.get("index", 1) != 1 or w_proj.ndim != 2:
        return False
    merged = lift.producer(item)
    heads_out = lift.producer(merged) if _is(merged, "reshape") else None
    av = lift.producer(heads_out) if _is(heads_out, "transpose") else None
    if not _is(av, "matmul") or len(av.inputs) != 2 or av.args.get("const") is not None:
        return False
    sm, v = lift.producer(av, 0), lift.producer(av, 1)
    qk = lift.producer(sm) if _is(sm, "softmax") else None
    if not _is(qk, "matmul") or len(qk.inputs) != 2 or qk.args.get("const") is not None:
        return False
    q, s = _scaled(lift, lift.producer(qk, 0), 1.0)
    kt, s = _scaled(lift, lift.producer(qk, 1), s)
    k, s = _scaled(lift, lift.producer(kt), s) if _is(kt, "transpose") else (None, s)
    if not all(_is(t, "reshape") for t in (q, k, v)):
        return False
    parts = [lift.producer(t) for t in (q, k, v)]
    if not all(_is(p, "split", part=j) for j, p in enumerate(parts)) or len({p.inputs[0] for p in parts}) != 1:
        return False
    perm = lift.producer(parts[0])
    heads_in = lift.producer(perm) if _is(perm, "transpose") else None
    if not _is(heads_in, "reshape"):
        return False
    pre = lift.producer(heads_in)
    b_qkv = None
    if _is(pre, "fc") and not pre.args.get("activation"):  # (the token_fc lift: the qkv Linear)
        mm = pre
        w_qkv = imp.params.get(mm.name, {}).get("weight")
        w_qkv = None if w_qkv is None else w_qkv.T
        b_qkv = imp.params.get(mm.name, {}).get("bias")
    else:
        if _is(pre, "binary", op="add") and len(pre.inputs) == 1:
            b_qkv = _const(imp, pre)
            mm = lift.producer(pre)
        else:
            mm = pre
        w_qkv = _const(imp, mm) if _is(mm, "matmul") and len(mm.inputs) == 1 else None
        if w_qkv is not None and not (mm.args.get("const") or {}).get("learned"):
            w_qkv = None
    if w_qkv is None or w_qkv.ndim != 2:
        return False
    x_name = mm.inputs[0]
    sp = imp.spec_shapes
    xs, ts = sp.get(x_name), sp.get(heads_in.name)
    if xs is None or ts is None or len(ts) < 4:
        return False
    n_tok, ch = xs[-2], xs[-1]
    three, h, d = ts[-3], ts[-2], ts[-1]
    lead = tuple(xs[:-2])
    # the shapes of every step: one sample's (lead…, T, C) → (lead…, T, 3, h, d) → (3, lead…, h, T, d)
    if (three != 3 or w_qkv.shape != (ch, 3 * h * d) or tuple(ts) != (*lead, n_tok, 3, h, d)
            or list(perm.args.get("perm", [])) != [len(lead) + 1, *range(len(lead)), len(lead) + 2, len(lead), len(lead) + 3]
            or parts[0].args.get("axis") != 0 or parts[0].args.get("parts") != [1, 1, 1]
            or tuple(sp.get(q.name, ())) != (*lead, h, n_tok, d) or tuple(sp.get(k.name, ())) != (*lead, h, n_tok, d)
            or tuple(sp.get(v.name, ())) != (*lead, h, n_tok, d)
            or list(kt.args.get("perm", [])) != [*range(len(lead) + 1), len(lead) + 2, len(lead) + 1]
            or sm.args.get("axis") not in (-1, len(lead) + 2)
            or list(heads_out.args.get("perm", [])) != [*range(len(lead)), len(lead) + 1, len(lead), len(lead) + 2]
            or tuple(sp.get(merged.name, ())) != (*lead, n_tok, h * d) or w_proj.shape[0] != h * d):
        return False
    if not math.isclose(s, d ** -0.5, rel_tol=1e-5):
        return False
    if b_qkv is not None and np.size(b_qkv) != 3 * h * d:
        return False
    bias_item = [pre] if pre is not mm else []
    inner = [mm, *bias_item, heads_in, perm, q, k, v, qk, sm, av, heads_out, merged]
    # (the split parts are read by one reshape each; perm by the three parts; the scale muls were checked)
    if not all(_only_here(lift, it) for it in [mm, *bias_item, heads_in, q, k, v, qk, sm, av, heads_out, merged]):
        return False
    muls = []
    for t in (lift.producer(qk, 0), lift.producer(qk, 1), lift.producer(kt)):
        while _is(t, "binary", op="mul"):
            muls.append(t)
            t = lift.producer(t)
    args = {"attention": int(h)}
    if h * d != ch:
        args["head_dim"] = int(d)
    if b_qkv is None:
        args["qkv_bias"] = False
    args["proj_bias"] = False
    if w_proj.shape[1] != ch:
        args["dim"] = int(w_proj.shape[1])
    params = {"qkv_weight": np.ascontiguousarray(w_qkv.T, np.float32),
              "proj_weight": np.ascontiguousarray(w_proj.T, np.float32)}
    if b_qkv is not None:
        params["qkv_bias"] = np.asarray(b_qkv, np.float32).reshape(-1)
    # named after the block (timm's /blocks.0/attn/Reshape: blocks.0.attn), not its last op
    new = Item("attention", args, heads_in.name, [x_name], item.raw)
    if not _infers(imp, new):
        return False
    keep = layout(imp, item)
    lift.replace([*inner, *parts, kt, *muls, item], new, params=params)
    restore(imp, keep)
    return True


def layout(imp, it) -> dict:
    """The batch axis, the not-an-image mark and the shape of the tensors ``it`` holds: a lift
    hands them over as if they were images with the batch first and the shape ONNX inferred
    (None where it gave up); tokens are not, and the shape is known."""
    return {t: (imp.batch_of.get(t, 0), t in imp.odd, imp.shapes.get(t)) for t in _held(imp, it)}


def restore(imp, keep):
    """Put back what :func:`layout` kept."""
    for t, (batch, odd, shape) in keep.items():
        imp.batch_of[t] = batch
        if odd:
            imp.odd.add(t)
        if shape is not None and imp.shapes.get(t) is None:
            imp.shapes[t] = shape


def _infers(imp, it) -> bool:
    """The attention layer accepts its input (tokens, or groups of them) and gives the shape
    the block gave."""
    from cnncalc.layers import REGISTRY

    args = {k: v for k, v in it.args.items() if k != "attention"}
    args["heads"] = it.args["attention"]
    try:
        REGISTRY["attention"](it.name, args).infer([imp.spec_shapes[it.inputs[0]]], "exact")
    except Exception:  # (a plain image, a flat vector: the low-level ops stay)
        return False
    return True


@rewrite("binary", family="attention", name="attention_proj_bias", stage="lift",
         lifts="the output projection's bias of the attention before it")
def attention_proj_bias(lift, item) -> bool:
    """An Add of one value per channel after a lifted attention without its output bias."""
    imp, node = lift.imp, lift.node
    if item.args.get("op") != "add" or len(item.inputs) != 1 or node.op_type != "Add":
        return False
    att = lift.producer(item)
    b = _const(imp, item)
    if (not _is(att, "attention") or att.args.get("proj_bias") is not False or b is None
            or not (item.args.get("const") or {}).get("learned")):
        return False
    out_c = imp.spec_shapes.get(att.name, (0,))[-1]
    if np.size(b) != out_c or not _only_here(lift, att):
        return False
    del att.args["proj_bias"]
    imp.params[att.name]["proj_bias"] = np.asarray(b, np.float32).reshape(-1)
    keep = layout(imp, item)
    lift.fold_into(item, att)
    restore(imp, keep)
    return True
