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


def _bias_source(imp, it):
    """The ONNX tensor of the constant an Add among ``it``'s nodes adds (the qkv bias of a
    lowered add, or of the fc the bias was folded into), or None."""
    for t in _held(imp, it):
        nd = imp.made_by.get(t)
        if nd is not None and nd.op_type == "Add":
            cs = [u for u in nd.input if u in imp.consts]
            if len(cs) == 1:
                return cs[0]
    return None


def _qv_bias(imp, it, b_qkv, h, d) -> tuple | None:
    """(q_bias, v_bias) when the qkv bias ``b_qkv`` (h·3·d values, added by ``it``) is BEiT's,
    EVA's and Swin V2's ``cat((q_bias, zeros, v_bias))``: its k third exactly zero and the tensor
    not a parameter of its own but computed from the two — torch.onnx.export's fold of the cat
    (an ``onnx::`` tensor: a module's parameter keeps its dotted name) or a Concat the importer
    folded, of learned tensors of 2·h·d values in all (a learned k bias among them: not qv, and
    a parameter that happens to be zero in its k third stays one bias). Else None."""
    b = np.asarray(b_qkv).reshape(-1)
    hd = h * d
    t = _bias_source(imp, it)
    if t is None or b.size != 3 * hd or np.any(b[hd:2 * hd]):
        return None
    if t in imp.init_names:
        computed = imp.init_names[t].startswith("onnx::")
    else:
        srcs = imp.learned_from(t)
        computed = bool(srcs) and sum(imp.consts[u].size for u in srcs if u in imp.consts and imp.learned(u)) == 2 * hd
    return (b[:hd], b[2 * hd:]) if computed else None


def _bias_args(imp, it, b_qkv, h, d, args, params):
    """The qkv bias into the attention layer's arguments and parameters: ``qkv_bias: false``,
    ``qkv_bias: qv`` with ``q_bias`` and ``v_bias`` (:func:`_qv_bias`), or ``qkv_bias``."""
    if b_qkv is None:
        args["qkv_bias"] = False
        return
    qv = _qv_bias(imp, it, b_qkv, h, d) if it is not None else None
    if qv is not None:
        args["qkv_bias"] = "qv"
        params["q_bias"], params["v_bias"] = (np.asarray(v, np.float32) for v in qv)
    else:
        params["qkv_bias"] = np.asarray(b_qkv, np.float32).reshape(-1)


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
    params = {"qkv_weight": np.ascontiguousarray(w_qkv.T, np.float32),
              "proj_weight": np.ascontiguousarray(w_proj.T, np.float32)}
    _bias_args(imp, pre if b_qkv is not None else None, b_qkv, h, d, args, params)
    args["proj_bias"] = False
    if w_proj.shape[1] != ch:
        args["dim"] = int(w_proj.shape[1])
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


# ----------------------------------------------------------------------------- Swin's window attention
_MOVES = ("reshape", "transpose", "slice", "concat", "identity")


def swin_rel_index(w: int) -> np.ndarray:
    """(w², w²) indices into Swin's (2w − 1)² x heads relative position bias table: token i of a
    w x w window reads the row of the offset (Δrow + w − 1)·(2w − 1) + Δcol + w − 1 to token j
    (the reference code's ``relative_position_index``)."""
    r, c = np.divmod(np.arange(w * w), w)
    return (r[:, None] - r[None, :] + w - 1) * (2 * w - 1) + (c[:, None] - c[None, :] + w - 1)


def beit_rel_index(w: int) -> np.ndarray:
    """(1 + w², 1 + w²) indices into BEiT's (2w − 1)² + 3 x heads table: a class token then a w x w
    window; between patches Swin's index, and three rows for the class token (timm's
    ``gen_relative_position_index``): T − 3 from the class token to every patch, T − 2 from every
    patch to the class token, T − 1 from the class token to itself."""
    t = (2 * w - 1) ** 2 + 3
    idx = np.full((w * w + 1, w * w + 1), t - 2)
    idx[1:, 1:] = swin_rel_index(w)
    idx[0, 1:] = t - 3
    idx[0, 0] = t - 1
    return idx


def swin_shift_mask(h: int, wd: int, w: int, s: int) -> np.ndarray:
    """(windows, w², w²): −100 between the tokens of a shifted window that the cyclic roll brought
    from different regions of the map, 0 elsewhere (the reference code's ``attn_mask``)."""
    def band(n):  # the region of each row (column) after rolling by −s: 0, 1, 2
        b = np.zeros(n, np.int64)
        b[n - w:n - s], b[n - s:] = 1, 2
        return b
    region = (band(h)[:, None] * 3 + band(wd)[None, :])
    win = region.reshape(h // w, w, wd // w, w).transpose(0, 2, 1, 3).reshape(-1, w * w)
    return np.where(win[:, :, None] != win[:, None, :], -100.0, 0.0)


def _torch_shape(imp, name):
    """The per-sample shape of an item's output in PyTorch's order, or None for an image (its
    spec order is not its memory order) or an unknown shape."""
    from cnncalc.shapes import Tensor

    sp = imp.spec_shapes.get(name)
    return tuple(sp) if sp.__class__ is Tensor else None


def _moves_back(lift, end, limit=24):
    """The data-movement items (reshape, transpose, slice, concat, identity) that compute
    ``end`` from one other tensor: (that tensor's layer name, the items), or (None, [])."""
    seen, leaves, todo = {}, set(), [end]
    while todo:
        it = todo.pop()
        if it.name in seen:
            continue
        if it.kind not in _MOVES or it.args.get("const") is not None or len(seen) >= limit:
            return None, []
        seen[it.name] = it
        for k, src in enumerate(it.inputs):
            p = lift.producer(it, k)
            if p is not None and p.kind in _MOVES:
                todo.append(p)
            else:
                leaves.add(src)
    if len(leaves) != 1:
        return None, []
    return leaves.pop(), list(seen.values())


def _roots(lift, end):
    """Where the tokens that ``end`` moves may start, the farthest first: ``(name, items)`` for
    the tensor before the movement items and for each of those items that every path to
    ``end`` passes (a roll's concat, a reshape: not one of the roll's two slices)."""
    leaf, items = _moves_back(lift, end)
    if leaf is None:
        return []
    pos = {it.name: k for k, it in enumerate(lift.imp.items)}
    out = [(leaf, items)]
    for cut in sorted(items, key=lambda i: pos[i.name]):
        if cut is end:
            continue
        chain = {it.name for it in items}
        sub, todo, whole = {}, [end], True
        while todo and whole:
            it = todo.pop()
            if it is cut or it.name in sub:
                continue
            sub[it.name] = it
            for src in it.inputs:
                if src not in chain:  # (a path around the cut)
                    whole = False
                todo.append(lift.imp.by_name.get(src))
        if whole:
            out.append((cut.name, list(sub.values())))
    return out


def _run_moves(imp, items, leaf, x, out):
    """``x`` (the leaf's values) carried through the movement items: ``out``'s values, or None."""
    pos = {it.name: k for k, it in enumerate(imp.items)}
    env = {leaf: x}
    for it in sorted(items, key=lambda i: pos[i.name]):
        shape = _torch_shape(imp, it.name)
        ins = [env.get(i) for i in it.inputs]
        if shape is None or any(v is None for v in ins):
            return None
        a, v = it.args, ins[0]
        if it.kind == "reshape":
            if np.prod(shape) != v.size:
                return None
            v = v.reshape(shape)
        elif it.kind == "transpose":
            v = v.transpose(a["perm"])
        elif it.kind == "slice":
            sl = [slice(None)] * v.ndim
            for k, (ax, st, en) in enumerate(zip(a["axes"], a["starts"], a["ends"])):
                step = (a.get("steps") or [1] * len(a["axes"]))[k]
                sl[ax] = slice(st, en, step)
            v = v[tuple(sl)]
        elif it.kind == "concat":
            v = np.concatenate(ins, axis=a.get("axis", 0))
        if v.shape != shape:
            return None
        env[it.name] = v
    return env.get(out)


def _root_grid(imp, x, ch):
    """The H x W map that the tensor ``x`` holds: an (H, W, C) tensor, or H·W tokens of C whose
    token axis enumerates an H x W grid of the input (the roles of cnncalc.shapes); or None."""
    from cnncalc.shapes import Tensor

    sp = imp.spec_shapes.get(x)
    if sp.__class__ is not Tensor or sp[-1] != ch:
        return None
    if len(sp) == 3:
        return tuple(sp[:2])
    role = sp.roles[0] if len(sp) == 2 else None
    if not role or [a for a, _ in role] != [0, 1]:
        return None
    return tuple(n for _, n in role)


def _partition(a, w):
    hh, ww, c = a.shape
    return a.reshape(hh // w, w, ww // w, w, c).transpose(0, 2, 1, 3, 4).reshape(-1, w * w, c)


def _reverse(a, w, hh, ww):
    c = a.shape[-1]
    return a.reshape(hh // w, ww // w, w, w, c).transpose(0, 2, 1, 3, 4).reshape(hh, ww, c)


def _heads_joint(lift, qkv):
    """timm's and torchvision's heads: the qkv projection reshaped to (…, N, 3, h, d), permuted
    to (3, …, h, N, d) and split (timm's unbind) or indexed (torchvision's qkv[0]) into q, k, v:
    (the projection's item, the items in between, a check of the shapes), or None."""
    parts = []
    for j, t in enumerate(qkv):
        if _is(t, "reshape"):
            sp = lift.producer(t)
            if not (_is(sp, "split", part=j, axis=0) and sp.args.get("parts") == [1, 1, 1]):
                return None
            parts.append(sp)
        elif _is(t, "gather", indices=j, axis=0):
            parts.append(None)
        else:
            return None
    tops = [lift.producer(p) if p is not None else lift.producer(t) for p, t in zip(parts, qkv)]
    perm = tops[0]
    if any(t is not perm for t in tops) or not _is(perm, "transpose"):
        return None
    heads_in = lift.producer(perm)
    if not _is(heads_in, "reshape"):
        return None

    def ok(lead, n, h, d):
        L = len(lead)
        return (_torch_shape(lift.imp, heads_in.name) == (*lead, n, 3, h, d)
                and list(perm.args.get("perm", [])) == [L + 1, *range(L), L + 2, L, L + 3])
    return lift.producer(heads_in), [*[p for p in parts if p is not None], perm, heads_in], ok


def _heads_apart(lift, qkv):
    """MaxViT's heads: the qkv projection cut into q, k, v along its channels (chunk: three
    slices or a split), each reshaped to (…, N, h, d) and permuted to (…, h, N, d); or None."""
    imp = lift.imp
    moved, cuts = [], []
    for t in qkv:
        r = lift.producer(t) if _is(t, "transpose") else None
        c = lift.producer(r) if _is(r, "reshape") else None
        if c is None or c.kind not in ("slice", "split"):
            return None
        moved += [t, r]
        cuts.append(c)
    pre = lift.producer(cuts[0])
    if any(lift.producer(c) is not pre for c in cuts) or pre is None:
        return None
    moved += [c for c in cuts if c not in moved]

    def ok(lead, n, h, d):
        L, hd, rank = len(lead), h * d, len(lead) + 2
        for j, (t, c) in enumerate(zip(qkv, cuts)):
            if (list(t.args.get("perm", [])) != [*range(L), L + 1, L, L + 2]
                    or _torch_shape(imp, lift.producer(t).name) != (*lead, n, h, d)):
                return False
            a = c.args
            if c.kind == "slice":
                if (a.get("steps") not in (None, [1]) or [ax % rank for ax in a.get("axes", [])] != [rank - 1]
                        or a.get("starts") != [j * hd] or a.get("ends") != [(j + 1) * hd]):
                    return False
            elif not (a.get("part") == j and a.get("parts") == [hd] * 3 and a.get("axis", -1) % rank == rank - 1):
                return False
        return True
    return pre, moved, ok


def _swin_core(lift, proj):
    """Match the window attention of ``proj`` (the output projection) back to the qkv
    projection: the parts as a dict, or None."""
    imp = lift.imp
    got = {"items": []}
    b_proj = None
    if _is(proj, "fc") and not proj.args.get("activation"):
        p = imp.params.get(proj.name, {})
        w_proj, b_proj = p.get("weight"), p.get("bias")
    else:
        if _is(proj, "binary", op="add") and len(proj.inputs) == 1 and (proj.args.get("const") or {}).get("learned"):
            b_proj = _const(imp, proj)
            got["items"].append(proj)
            proj_mm = lift.producer(proj)
        else:
            proj_mm = proj
        c = proj_mm.args.get("const") if proj_mm is not None else None
        if not _is(proj_mm, "matmul") or len(proj_mm.inputs) != 1 or not isinstance(c, dict) or not c.get("learned"):
            return None
        w_proj = _const(imp, proj_mm)
        w_proj = None if w_proj is None or w_proj.ndim != 2 else w_proj.T
        proj = proj_mm
    if w_proj is None:
        return None
    got["items"].append(proj)
    merged = lift.producer(proj)
    heads_out = lift.producer(merged) if _is(merged, "reshape") else None
    av = lift.producer(heads_out) if _is(heads_out, "transpose") else None
    if not _is(av, "matmul") or len(av.inputs) != 2 or av.args.get("const") is not None:
        return None
    v = lift.producer(av, 1)
    sm = lift.producer(av, 0)
    if not _is(sm, "softmax"):
        return None
    adds, it = [], lift.producer(sm)
    while it is not None and (_is(it, "identity") or _is(it, "reshape")
                              or (_is(it, "binary", op="add") and len(it.inputs) == 1)):
        adds.append(it)
        it = lift.producer(it)
    qk = it
    if not _is(qk, "matmul") or len(qk.inputs) != 2 or qk.args.get("const") is not None:
        return None
    q, s = _scaled(lift, lift.producer(qk, 0), 1.0)
    kt, s = _scaled(lift, lift.producer(qk, 1), s)
    k, s = _scaled(lift, lift.producer(kt), s) if _is(kt, "transpose") else (None, s)
    heads = _heads_joint(lift, (q, k, v)) or _heads_apart(lift, (q, k, v))
    if heads is None:
        return None
    pre, moved, qkv_ok = heads
    b_qkv = None
    if _is(pre, "fc") and not pre.args.get("activation"):
        mm = pre
        w_qkv, b_qkv = imp.params.get(mm.name, {}).get("weight"), imp.params.get(mm.name, {}).get("bias")
        qkv_items = [mm]
    else:
        mm = pre
        if _is(pre, "binary", op="add") and len(pre.inputs) == 1:
            b_qkv, mm = _const(imp, pre), lift.producer(pre)
        c = mm.args.get("const") if mm is not None else None
        if not _is(mm, "matmul") or len(mm.inputs) != 1 or not isinstance(c, dict) or not c.get("learned"):
            return None
        w_qkv = _const(imp, mm)
        w_qkv = None if w_qkv is None or w_qkv.ndim != 2 else w_qkv.T
        qkv_items = [mm] + ([pre] if pre is not mm else [])
    if w_qkv is None:
        return None
    xs, qs = _torch_shape(imp, mm.inputs[0]), _torch_shape(imp, q.name)
    if xs is None or qs is None or len(qs) != len(xs) + 1:
        return None
    lead, (n, ch) = xs[:-2], xs[-2:]
    L = len(lead)
    h, d = qs[-3], qs[-1]
    shp = lambda t: _torch_shape(imp, t.name)  # noqa: E731
    if (w_qkv.shape != (3 * h * d, ch) or not qkv_ok(lead, n, h, d)
            or any(shp(t) != (*lead, h, n, d) for t in (q, k, v))
            or list(kt.args.get("perm", [])) != [*range(L + 1), L + 2, L + 1]
            or shp(qk) != (*lead, h, n, n) or shp(sm) is None or shp(sm)[-2:] != (n, n)
            or sm.args.get("axis") not in (-1, len(shp(sm)) - 1)
            or list(heads_out.args.get("perm", [])) != [*range(L), L + 1, L, L + 2]
            or shp(merged) != (*lead, n, h * d) or w_proj.shape[1] != h * d
            or not (s > 0 and math.isfinite(s))
            or (b_qkv is not None and np.size(b_qkv) != 3 * h * d)
            or (b_proj is not None and np.size(b_proj) != w_proj.shape[0])):
        return None
    muls = []
    for t in (lift.producer(qk, 0), lift.producer(qk, 1), lift.producer(kt)):
        while _is(t, "binary", op="mul"):
            muls.append(t)
            t = lift.producer(t)
    got["items"] += [merged, heads_out, av, sm, *adds, qk, q, k, v, kt, *muls, *moved, *qkv_items]
    got.update(x=mm.inputs[0], n=n, ch=ch, h=h, d=d, windows=math.prod(lead), adds=adds, qk=qk, scale=s,
               w_qkv=w_qkv, b_qkv=b_qkv, w_proj=w_proj, b_proj=b_proj, proj_out=w_proj.shape[0],
               b_qkv_item=pre)
    return got


def _swin_bias(imp, core, w, shift, grid, cls=False):
    """The relative position bias table ((2w − 1)² x heads) that the adds between QKᵀ and the
    softmax hold, after checking that they are exactly that table read by Swin's index (a
    learned constant of heads x w² x w², torch.onnx.export's fold of the lookup) and, with a
    shift, the shifted-window mask: the table, or None. ``cls``: the sequence is a class token
    then the w x w window, the table BEiT's ((2w − 1)² + 3 rows, :func:`beit_rel_index`)."""
    h, n, nw = core["h"], core["n"], core["windows"]
    qk_shape = (nw, h, n, n)
    bias, mask = None, np.zeros(qk_shape)
    for it in core["adds"]:
        if it.kind != "binary":
            continue
        v = _const(imp, it)
        shape = _torch_shape(imp, it.name)
        if v is None or shape is None or math.prod(shape) != math.prod(qk_shape):
            return None
        if (it.args.get("const") or {}).get("learned"):
            if bias is not None or v.size != h * n * n or v.shape[-3:] != (h, n, n) or shape[-3:] != (h, n, n):
                return None
            bias = v.reshape(h, n, n)
        else:
            try:
                mask = mask + np.broadcast_to(v, shape).reshape(qk_shape)
            except ValueError:
                return None
    if bias is None:
        return None
    want = swin_shift_mask(*grid, w, shift)[:, None] if shift else np.zeros((1, 1, n, n))
    if not np.array_equal(mask, np.broadcast_to(want, qk_shape)):
        return None
    idx = beit_rel_index(w) if cls else swin_rel_index(w)
    table = np.zeros(((2 * w - 1) ** 2 + (3 if cls else 0), h), bias.dtype)
    table[idx.reshape(-1)] = bias.reshape(h, n * n).T
    if not np.array_equal(table[idx.reshape(-1)].T.reshape(h, n, n), bias):
        return None  # (a bias that is not one value per relative offset)
    return table


def _window_partition(lift, core):
    """The Swin window partition that feeds the attention ``core``: (the map's layer, the
    movement items, (H, W), the window, the shift) when the tokens of an H x W map (an
    (H, W, C) tensor or H·W tokens of a grid), rolled by −shift, reach the qkv projection as
    windows in row-major order (checked by carrying their indices through the items); or None."""
    imp = lift.imp
    n, ch, nw = core["n"], core["ch"], core["windows"]
    w = math.isqrt(n)
    start = imp.by_name.get(core["x"])
    if start is None or w * w != n or w < 2:
        return None
    roots = [r for r in _roots(lift, start) if _root_grid(imp, r[0], ch)]
    if not roots:
        return None
    x, fwd = roots[0]
    xs, grid = _torch_shape(imp, x), _root_grid(imp, x, ch)
    if xs is None or grid[0] % w or grid[1] % w or grid[0] * grid[1] != nw * n:
        return None
    hh, ww = grid
    idx = np.arange(hh * ww * ch).reshape(hh, ww, ch)
    got = _run_moves(imp, fwd, x, idx.reshape(xs), core["x"])
    if got is None:
        return None
    shift = next((s for s in range(w) if np.array_equal(
        got.reshape(-1), _partition(np.roll(idx, (-s, -s), (0, 1)), w).reshape(-1))), None)
    return None if shift is None else (x, fwd, grid, w, shift)


def _attention_args(imp, core, **extra) -> tuple[dict, dict]:
    """The attention layer's arguments and parameters for a matched ``core``."""
    h, d, ch, co = core["h"], core["d"], core["ch"], core["proj_out"]
    args = {"attention": int(h), **extra}
    if h * d != ch:
        args["head_dim"] = int(d)
    if not math.isclose(core["scale"], d ** -0.5, rel_tol=1e-5):  # (torchvision's MaxViT: 1/√C)
        args["qk_scale"] = float(np.float32(core["scale"]))
    params = {"qkv_weight": np.ascontiguousarray(core["w_qkv"], np.float32),
              "proj_weight": np.ascontiguousarray(core["w_proj"], np.float32)}
    _bias_args(imp, core["b_qkv_item"], core["b_qkv"], h, d, args, params)
    if core["b_proj"] is None:
        args["proj_bias"] = False
    if co != ch:
        args["dim"] = int(co)
    if core["b_proj"] is not None:
        params["proj_bias"] = np.asarray(core["b_proj"], np.float32).reshape(-1)
    return args, params


def _block_name(items, fallback) -> str:
    """A name for the lifted layer: the region's module name (no ``_k`` suffix, ending in
    ``attn`` if one does, the shortest)."""
    names = [it.name for it in items] or [fallback]
    return min(names, key=lambda s: (s.rsplit("_", 1)[-1].isdigit(), not s.endswith("attn"), len(s)))


def _region_closed(lift, items, last) -> bool:
    """Only the region's own ONNX nodes (and Shape nodes, which read no values) read the
    tensors of its items other than ``last``."""
    imp = lift.imp
    raws = {it.raw for it in items}
    names = {it.name for it in items if it is not last}
    for t, layer in imp.layer_of.items():
        if layer in names:
            if t in imp.output_names:
                return False
            for k in imp.consumers.get(t, ()):
                nd = imp.nodes[k]
                if nd.op_type != "Shape" and nd.name not in raws:
                    return False
    return True


_CROP_OR_ROLL = {"Slice", "Concat"}  # (ONNX ops that may go on with the block: a crop, the roll back)


@rewrite(*_MOVES, family="attention", name="swin_window_attention", stage="lift",
         lifts="attention with window, shift and relative position bias (Swin)")
def swin_window_attention(lift, item) -> bool:
    """Swin's (shifted) window attention block as one attention layer with window and shift. The
    block: a cyclic roll and a window partition (any slices, concats, reshapes and transposes
    that move the tokens so), timm's or torchvision's qkv · QKᵀ + relative position bias
    [+ the shifted-window mask] · softmax · AV · proj, the windows put back and rolled back;
    the bias lookup that torch.onnx.export folded into a heads x w² x w² constant becomes the
    (2w − 1)² x heads table again (when every value agrees with Swin's index)."""
    imp = lift.imp
    if not imp.items or imp.items[-1] is not item:  # (not the last item of its node)
        return False
    outs = [t for t in lift.node.output if imp.layer_of.get(t) == item.name]
    if len(outs) != 1 or imp.batch_of.get(outs[0], 0) != 0:
        return False
    readers = [imp.nodes[k] for k in imp.consumers.get(outs[0], ()) if imp.nodes[k].op_type != "Shape"]
    if readers and all(nd.op_type in _CROP_OR_ROLL for nd in readers):
        return False  # (a crop or the roll back may follow: lifted at the end of the chain)
    proj_name, back = _moves_back(lift, item)
    proj = imp.by_name.get(proj_name)
    if proj is None or not back:
        return False
    core = _swin_core(lift, proj)
    if core is None:
        return False
    part = _window_partition(lift, core)
    if part is None:
        return False
    x, fwd, (hh, ww), w, shift = part
    grid = (hh, ww)
    n, ch, nw, co = core["n"], core["ch"], core["windows"], core["proj_out"]
    xs, ys = _torch_shape(imp, x), _torch_shape(imp, item.name)
    if ys not in ((hh, ww, co), (hh * ww, co)):
        return False
    idx2 = np.arange(nw * n * co).reshape(nw, n, co)
    back_got = _run_moves(imp, back, proj.name, idx2.reshape(_torch_shape(imp, proj.name)), item.name)
    if back_got is None or not np.array_equal(
            back_got.reshape(-1), np.roll(_reverse(idx2, w, hh, ww), (shift, shift), (0, 1)).reshape(-1)):
        return False
    table = _swin_bias(imp, core, w, shift, grid)
    if table is None:
        return False
    region = [*fwd, *core["items"], *back]
    if not _region_closed(lift, region, item):
        return False
    att_name = _block_name(region, item.name)
    extra = {"window": int(w)}
    if shift:
        extra["shift"] = int(shift)
    args, params = _attention_args(imp, core, **extra)
    params["rel_pos_table"] = np.ascontiguousarray(table, np.float32)
    chain = []
    if len(xs) == 3:
        chain.append(Item("reshape", {"reshape": None, "shape": [hh * ww, ch]}, f"{att_name}.tokens", [x], item.raw))
    chain.append(Item("attention", args, att_name, [chain[-1].name if chain else x], item.raw))
    if len(ys) == 3:
        chain.append(Item("reshape", {"reshape": None, "shape": [hh, ww, co]}, f"{att_name}.map", [att_name], item.raw))
    taken = {it.name for it in region}
    if any(c.name in imp.by_name and c.name not in taken for c in chain) or not _chain_infers(imp, chain, ys):
        return False
    keep = layout(imp, item)
    lift.replace(region, chain, params={att_name: params})
    restore(imp, keep)
    return True


def _chain_infers(imp, chain, want) -> bool:
    """The new items accept what they read (the tokens keep the map's grid: window attention
    needs it) and end with the shape the block had."""
    from cnncalc.layers import REGISTRY

    shapes = dict(imp.spec_shapes)
    for it in chain:
        cls = REGISTRY[it.kind]
        args = {k: v for k, v in it.args.items() if k != it.kind}
        if cls.primary and it.args.get(it.kind) is not None:
            args[cls.primary] = it.args[it.kind]
        try:
            shapes[it.name] = cls(it.name, args).infer([shapes[i] for i in it.inputs], "exact")
        except Exception:  # (tokens without a grid, …: the low-level ops stay)
            return False
    return tuple(shapes[chain[-1].name]) == tuple(want)


@rewrite("matmul", family="attention", name="swin_patch_merging", stage="lift",
         lifts="patch_merging (Swin: 2x2 tokens → 4C, LayerNorm, linear)")
def swin_patch_merging(lift, item) -> bool:
    """Swin's patch merging (2x2 tokens gathered, LayerNorm, linear) as one patch_merging layer.
    Each 2x2 group of an H x W x C map gathered into 4C channels (timm's reshape and permute,
    or torchvision's four strided slices and a concat: any movement that puts them in that
    order), a LayerNorm over the 4C channels and a linear layer without bias. The layer keeps
    the token grid, which the window attention after it needs."""
    imp = lift.imp
    c = item.args.get("const")
    w = _const(imp, item)
    if (len(item.inputs) != 1 or not isinstance(c, dict) or not c.get("learned") or c.get("index", 1) != 1
            or w is None or w.ndim != 2 or imp.items[-1] is not item):
        return False
    ln = lift.producer(item)
    p = imp.params.get(ln.name, {}) if ln is not None else {}
    ys = _torch_shape(imp, item.name)
    if (not _is(ln, "layernorm") or ln.args.get("layernorm") is not None or "gamma" not in p or "beta" not in p
            or ys is None):
        return False
    ls = _torch_shape(imp, ln.name)
    if ls is None or ln.args.get("axis", -1) not in (-1, len(ls) - 1):
        return False
    c4, out = w.shape
    if np.size(p["gamma"]) != c4 or np.size(p["beta"]) != c4 or c4 % 4 or not _only_here(lift, ln):
        return False
    top = lift.producer(ln)
    roots = [r for r in _roots(lift, top) if _root_grid(imp, r[0], c4 // 4)] if top is not None else []
    if not roots:
        return False
    x, moves = roots[0]
    xs, grid = _torch_shape(imp, x), _root_grid(imp, x, c4 // 4)
    if xs is None or grid[0] % 2 or grid[1] % 2:
        return False
    (hh, ww), ch = grid, c4 // 4
    if ys not in ((hh // 2, ww // 2, out), (hh // 2 * (ww // 2), out)):
        return False
    idx = np.arange(hh * ww * ch).reshape(hh, ww, ch)
    got = _run_moves(imp, moves, x, idx.reshape(xs), ln.inputs[0])
    want = idx.reshape(hh // 2, 2, ww // 2, 2, ch).transpose(0, 2, 3, 1, 4)  # (the column offset, then the row)
    if got is None or not np.array_equal(got.reshape(-1), want.reshape(-1)):
        return False
    region = [*moves, ln, item]
    if not _region_closed(lift, region, item):
        return False
    name = ln.name.rsplit(".", 1)[0] if "." in ln.name else item.name
    if name in imp.by_name and name not in {it.name for it in region}:
        name = item.name
    args = {"patch_merging": None}
    if out != 2 * ch:
        args["channels"] = int(out)
    eps = ln.args.get("eps", 1e-5)
    if abs(eps - 1e-5) > 1e-12:
        args["eps"] = float(eps)
    chain = [Item("reshape", {"reshape": None, "shape": [hh * ww, ch]}, f"{name}.tokens", [x], item.raw)] \
        if len(xs) == 3 else []
    chain.append(Item("patch_merging", args, name, [chain[0].name if chain else x], item.raw))
    if len(ys) == 3:
        chain.append(Item("reshape", {"reshape": None, "shape": list(ys)}, f"{name}.map", [name], item.raw))
    taken = {it.name for it in region}
    if any(t.name in imp.by_name and t.name not in taken for t in chain) or not _chain_infers(imp, chain, ys):
        return False
    params = {"norm_gamma": np.asarray(p["gamma"], np.float32).reshape(-1),
              "norm_beta": np.asarray(p["beta"], np.float32).reshape(-1),
              "weight": np.ascontiguousarray(w.T, np.float32)}
    keep = layout(imp, item)
    lift.replace(region, chain, params={name: params})
    restore(imp, keep)
    return True


@rewrite("matmul", family="attention", name="attention_bias_window", stage="lift",
         lifts="attention with bias_window (MaxViT: sequences that are windows, with a bias table; "
               "BEiT: a class token before the window, cls_bias)")
def attention_bias_window(lift, item) -> bool:
    """Attention over sequences that are P x P windows already, with a relative position bias, as one attention layer with bias_window. MaxViT's
    block and grid attention: qkv (cut into q, k, v along the channels, or timm's and
    torchvision's joint form), q · (k·scale)ᵀ + the bias, softmax, · v, the output projection
    (its bias follows: attention_proj_bias). The bias that torch.onnx.export folded into a
    heads x P² x P² constant becomes the (2P − 1)² x heads table again when every value agrees
    with Swin's index; a Swin window partition before it is left to swin_window_attention. BEiT's
    block: 1 + P² tokens (a class token, then the P x P patches) and a folded bias of heads x
    (1 + P²)² whose values are its (2P − 1)² + 3 x heads table read by BEiT's index
    (:func:`beit_rel_index`): ``cls_bias: true``, the table with the class token's 3 rows."""
    imp = lift.imp
    c = item.args.get("const")
    if imp.items[-1] is not item or len(item.inputs) != 1 or not isinstance(c, dict) or not c.get("learned"):
        return False
    core = _swin_core(lift, item)
    if core is None or not any(a.kind == "binary" for a in core["adds"]):
        return False
    n = core["n"]
    p = math.isqrt(n)
    cls = p * p != n  # (BEiT: a class token, then the P x P patches)
    if cls:
        p = math.isqrt(n - 1)
        if p * p != n - 1:
            return False
    if p < 2 or (not cls and _window_partition(lift, core) is not None):
        return False
    table = _swin_bias(imp, core, p, 0, None, cls=cls)
    if table is None or not _region_closed(lift, core["items"], item):
        return False
    name = _block_name(core["items"], item.name)
    args, params = _attention_args(imp, core, bias_window=int(p), **({"cls_bias": True} if cls else {}))
    params["rel_pos_table"] = np.ascontiguousarray(table, np.float32)
    new = Item("attention", args, name, [core["x"]], item.raw)
    if (name in imp.by_name and name not in {it.name for it in core["items"]}) or \
            not _chain_infers(imp, [new], _torch_shape(imp, item.name)):
        return False
    keep = layout(imp, item)
    lift.replace(core["items"], new, params=params)
    restore(imp, keep)
    return True


# ----------------------------------------------------------------------------- Swin V2's cosine attention
@rewrite("reduce", family="attention", name="cosine_attention_qv_bias", stage="lift",
         lifts="the q and v biases of cosine attention (Swin V2: its k bias a fixed zero) after the heads split")
def cosine_attention_qv_bias(lift, item) -> bool:
    """Swin V2's q and v biases around a zero k bias, in its cosine attention (low-level ops): the
    qkv fc without a bias, q_bias and v_bias added to q and v after the heads split. timm adds
    ``cat((q_bias, k_bias, v_bias))`` to the qkv projection, the k bias a buffer of zeros, and
    torch.onnx.export folds the cat into one bias of 3·C values, which as the fc's bias counts C
    values too many; no attention layer takes cosine attention, so the bias is taken apart here
    (h x 1 x d each, learned: the same values, 2·C parameters). Runs at the L2 norm of q (cosine
    attention's first op after the split; plain attention blocks are lifted whole, with
    ``qkv_bias: qv``)."""
    imp = lift.imp
    if item.args.get("op") != "l2" or len(item.inputs) != 1:
        return False
    q = lift.producer(item)
    part = lift.producer(q) if _is(q, "reshape") else None
    if not _is(part, "split", part=0, axis=0) or part.args.get("parts") != [1, 1, 1] or len(part.inputs) != 1:
        return False
    parts = {it.args.get("part"): it for it in imp.items
             if _is(it, "split", axis=0) and it.inputs == part.inputs and it.args.get("parts") == [1, 1, 1]}
    heads = []
    for j in (0, 1, 2):
        rs = [it for it in imp.items if j in parts and it.inputs == [parts[j].name]]
        if len(rs) != 1 or not _is(rs[0], "reshape"):
            return False
        heads.append(rs[0])
    if heads[0] is not q:
        return False
    got = _heads_joint(lift, heads)
    if got is None:
        return False
    fc, moved, qkv_ok = got
    p = imp.params.get(fc.name, {}) if fc is not None else {}
    if not _is(fc, "fc") or fc.args.get("activation") or "bias" not in p or "weight" not in p:
        return False
    # (the fc's output, its heads reshape and their transpose are read by the block alone: they
    # lose the bias; the q and v parts carry it on)
    if not all(_only_here(lift, it) for it in (fc, *[m for m in moved if m.kind != "split"])):
        return False
    xs, qs = _torch_shape(imp, fc.inputs[0]), _torch_shape(imp, q.name)
    if xs is None or qs is None or len(xs) < 2 or len(qs) != len(xs) + 1:
        return False
    lead, n = xs[:-2], xs[-2]
    h, d = qs[-3], qs[-1]
    if not qkv_ok(lead, n, h, d) or any(_torch_shape(imp, t.name) != (*lead, h, n, d) for t in heads):
        return False
    qv = _qv_bias(imp, fc, p["bias"], h, d)
    if qv is None:
        return False
    chains = []
    for t, b in ((heads[0], qv[0]), (heads[2], qv[1])):
        split = Item("reshape", dict(t.args), f"{t.name}.heads", list(t.inputs), t.raw)
        add = Item("binary", {"binary": None, "op": "add", "const": {"index": 1, "shape": [int(h), 1, int(d)],
                                                                   "learned": True}}, t.name, [split.name], t.raw)
        want = imp.spec_shapes.get(t.name)
        if want is None or split.name in imp.by_name or not _chain_infers(imp, [split, add], want):
            return False
        chains.append((t, [split, add], np.asarray(b, np.float32).reshape(h, 1, d)))
    for t, chain, b in chains:
        keep = layout(imp, t)
        lift.replace([t], chain, params={t.name: {"const1": b}})
        restore(imp, keep)
    fc.args["bias"] = False
    del p["bias"]
    return True
