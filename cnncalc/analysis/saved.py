"""What autograd keeps for backward, layer by layer, as PyTorch's implementation keeps it.

One rule per layer type (``RULES``; ``ACTIVATION_RULES`` for activations, standalone or fused
on a layer): the tensors its backward reads. Each is one of

- ``("in", k)``: input k — the storage it lives in (a view such as flatten, split or a slice
  shares its source's storage, so keeping it keeps the whole source);
- ``("out",)``: the layer's output (after its fused activation);
- ``("pre",)``: the output of a layer before its fused activation (a tensor of its own);
- ``("new", elements per sample, elements, dtype, what)``: a tensor made for backward
  (pooling's int64 indices, batch norm's mean and 1/std, dropout's mask).

A storage kept by several layers counts once (ReLU keeps its output and the next conv keeps
the same tensor as its input). Parameters and buffers that a backward reads (conv weights,
running statistics) are not counted here: they are in the parameters line.

A layer saves only when autograd records it: when one of its inputs requires a gradient or it
has trainable parameters (the first layers before any parameter keep nothing). Some rules
depend on which operands require one (``a * b`` keeps ``a`` for ``b``'s gradient only).

Every rule was read off PyTorch 2 (``torch.autograd.graph.saved_tensors_hooks`` on each
``nn`` module and op that ``cnncalc export --to torch`` writes); tests/test_saved_torch.py
holds the totals of the exported zoo networks against torch's. Dtypes: ``act`` is the
activation dtype (``--dtype``, or half under mixed precision), ``in`` the dtype of the layer's
input (under autocast a token stream can stay fp32), indices are int64 (8 bytes),
normalisation statistics float32, a where's condition bool. Dropout's mask is kept in the
activation dtype (torch's CPU kernel; CUDA's fused kernel keeps a 1-byte bool mask).
"""
from __future__ import annotations

from cnncalc.shapes import numel, spatial, torch_order

IN0 = ("in", 0)
OUT = ("out",)
PRE = ("pre",)
DTYPE_BYTES = {"int64": 8, "float32": 4, "bool": 1}  # ("act": the activation dtype)


def _new(per_sample: int, what: str, dtype: str = "act", fixed: int = 0):
    return ("new", per_sample, fixed, dtype, what)


# activations: the tensor each keeps, its input ("in") or its output ("out")
ACTIVATION_RULES = {
    "relu": "out", "tanh": "out", "sigmoid": "out", "softmax": "out",
    "relu6": "in", "leakyrelu": "in", "silu": "in", "hardswish": "in", "hardsigmoid": "in",
    "gelu": "in", "mish": "in", "elu": "in", "selu": "in", "softplus": "in", "prelu": "in",
}


def _nothing(layer, rg, w):
    return []


def _input(layer, rg, w):
    return [IN0]


def _padded(layer, pool: bool):
    """The zero-padded input a window layer keeps when PyTorch cannot pad it itself
    (asymmetric padding, as TensorFlow's 'same' makes; a pool's pad over half its kernel):
    ``F.pad`` writes a new tensor first, and the layer keeps that. None otherwise."""
    x = layer.in_shapes[0]
    sp, out = spatial(x), spatial(layer.out_shape)
    lo, hi = [], []
    for n, win, o in zip(sp, layer.windows, out):
        extra = 0
        if not pool:  # (a conv's ceil-rounded output: torch pads the end by the extra row)
            span = n + win.pad_lo + win.pad_hi - win.extent
            if o > span // win.stride + 1:
                extra = (o - 1) * win.stride + win.extent - (n + win.pad_lo + win.pad_hi)
        lo.append(win.pad_lo)
        hi.append(win.pad_hi + extra)
    if lo == hi and not (pool and any(h > win.kernel // 2 for h, win in zip(hi, layer.windows))):
        return None
    size = x[-1]
    for n, a, b in zip(sp, lo, hi):
        size *= n + a + b
    return _new(size, "zero-padded input (F.pad: asymmetric padding)")


def _conv(layer, rg, w):
    p = _padded(layer, pool=False)
    out = [IN0] if p is None else [p]
    st = getattr(layer, "standardize", None)
    if st:  # (timm's StdConv2d / ScaledStdConv2d, as `export --to torch` writes it)
        f = layer.filters
        # the conv keeps its weight, here a tensor of its own: the standardised one (in the
        # activation dtype: under autocast the conv reads a half copy of it)
        out.append(_new(0, "standardised weight", fixed=f * layer.fan_in))
        if w:  # F.batch_norm over the weight keeps its mean and 1/std (and gain * scale)
            out.append(_new(0, "weight standardisation's mean, 1/std" + (", gain * scale" if st["gain"] else ""),
                            "float32", fixed=f * (3 if st["gain"] else 2)))
    return out


def _avgpool(layer, rg, w):
    p = _padded(layer, pool=True)
    return [IN0] if p is None else [p]


def _input_if_trained(layer, rg, w):
    """fc, locally connected, layer scale: the input serves the weight's gradient only."""
    return [IN0] if w else []


def _maxpool(layer, rg, w):
    p = _padded(layer, pool=True) if layer.kind == "maxpool" else None
    return [IN0 if p is None else p, _new(numel(layer.out_shape), "argmax indices", "int64")]


def _global_maxpool(layer, rg, w):
    return [IN0, _new(layer.out_shape[-1], "argmax indices", "int64")]


def _adaptive_avgpool(layer, rg, w):
    # an output of 1 is a mean (keeps nothing); other sizes keep the input
    return [] if all(s == 1 for s in spatial(layer.out_shape)) else [IN0]


def _batchnorm(layer, rg, w):
    c = layer.out_shape[-1]
    return [IN0, _new(0, "batch mean", "float32", c), _new(0, "batch 1/std", "float32", c)]


def _groupnorm(layer, rg, w):
    g = layer.args["groups"]
    return [IN0, _new(g, "group mean", "float32"), _new(g, "group 1/std", "float32")]


def _instancenorm(layer, rg, w):
    c = layer.out_shape[-1]
    out = [IN0, _new(c, "mean", "float32"), _new(c, "1/std", "float32")]
    if layer.args["affine"]:
        out.append(_new(c, "γ repeated per sample", "float32"))
    return out


def _layernorm(layer, rg, w):
    if layer.norm_axis is not None:
        positions = numel(layer.t_shape[:layer.norm_axis])
    elif layer.args["over"] == "all" and len(layer.out_shape) > 1:
        positions = 1
    else:
        positions = numel(spatial(layer.out_shape)) or 1
    return [IN0, _new(positions, "mean", "float32"), _new(positions, "1/std", "float32")]


def _lrn(layer, rg, w):
    x = layer.in_shapes[0]
    padded = (x[-1] + layer.args["size"] - 1) * (numel(spatial(x)) or 1)
    n = numel(layer.out_shape)
    return [IN0, _new(padded, "padded squares"), _new(n, "scale"), _new(n, "scale^-β")]


def _dropout(layer, rg, w):
    return [_new(numel(layer.out_shape), "mask")]


def _padding(layer, rg, w):
    if getattr(layer, "generic", False):  # the tensor form: zero pad, or one index_select per axis
        if layer.args["mode"] in ("zero", "constant"):
            return []
        n = torch_order(layer.in_shapes[0])
        return [_new(0, f"indices along axis {a}", "int64", n[a] + lo + hi)
                for a, (lo, hi) in zip(layer.pad_axes, layer.pads)]
    return [] if layer.args["mode"] == "zero" else [IN0]


def _maxout(layer, rg, w):
    return [_new(numel(layer.out_shape), "argmax indices", "int64")]


def _operands(layer, rg):
    """Per operand: (the saved reference or None for a constant, does it require a gradient)."""
    out = []
    for o in getattr(layer, "ops_", ()) or ():
        if o.const is None:
            out.append((("in", o.input), rg[o.input]))
        else:
            out.append((None, bool(o.const.tensor and o.const.learned)))
    if not out:  # a plain two-input layer (mul)
        out = [(("in", k), rg[k]) for k in range(len(rg))]
    return out


def _product(layer, rg, w):
    """a · b keeps a for b's gradient and b for a's (constants are parameters or buffers)."""
    ops = _operands(layer, rg)
    saved = []
    for i, (ref, _) in enumerate(ops):
        if ref is not None and any(g for j, (_, g) in enumerate(ops) if j != i):
            saved.append(ref)
    return saved


def _mul(layer, rg, w):
    return _product(layer, rg, w)


def _binary(layer, rg, w):
    op = layer.args["op"]
    if op in ("add", "sub"):
        return []
    if op == "mul":
        return _product(layer, rg, w)
    (ra, ga), (rb, gb) = _operands(layer, rg)
    if op == "div":  # a / b keeps b, and a too when b needs a gradient
        keep = [rb] + ([ra] if gb else [])
    elif op == "pow":  # keeps base, exponent and result
        keep = [ra, rb, OUT]
    else:  # maximum, minimum: both operands
        keep = [ra, rb]
    return [r for r in keep if r is not None]


def _where(layer, rg, w):
    o = layer.ops_[0]
    return [_new(numel(o.shape), "condition", "bool") if o.const is None else
            _new(0, "condition", "bool", numel(o.shape))]


_UNARY_IN = ("abs", "log", "erf", "sin", "cos")
_UNARY_OUT = ("sqrt", "exp", "reciprocal")


def _unary(layer, rg, w):
    op = layer.args["op"]
    return [IN0] if op in _UNARY_IN else [OUT] if op in _UNARY_OUT else []


def _reduce(layer, rg, w):
    op = layer.args["op"]
    if op in ("sum", "mean"):
        return []
    if op in ("l1", "sumsquare"):
        return [IN0]
    if op == "prod":  # one torch.prod per axis, the last axis first: each keeps its input and output
        shape = list(torch_order(layer.in_shapes[0]))
        keep = []
        for i, a in enumerate(sorted(layer.axes, reverse=True)):
            if i:
                keep.append(_new(numel(shape), "partial product"))
            if layer.args["keepdims"]:
                shape[a] = 1
            else:
                del shape[a]
        return [IN0] + keep + [OUT]
    return [IN0, OUT]  # max, min (amax), l2 (square keeps x, sqrt its result), logsumexp


def _matmul(layer, rg, w):
    return _product(layer, rg, w)


def _gather(layer, rg, w):
    return [] if layer.view else [_new(0, "indices", "int64", len(layer.flat))]


def _slice(layer, rg, w):
    return [_new(0, f"indices along axis {a}", "int64", len(r))
            for a, r in sorted(layer.ranges.items()) if r.step < 0]


def _split(layer, rg, w):
    return _slice(layer, rg, w) if getattr(layer, "ops_", None) else []


def _softmax(layer, rg, w):
    return [OUT]


# ---- token layers (cnncalc.layers.attention), as the helper modules `export --to torch` writes
def _patch_embed(layer, rg, w):
    """A conv with kernel = stride = patch (keeps its input), then a flatten/transpose view."""
    return [IN0]


def _mlp(layer, rg, w):
    """fc1 keeps its input (for its weight's gradient), the activation its input or output,
    fc2 its input (the activation's output); a ReLU's output is the tensor fc2 keeps."""
    hid = layer.rows * layer.hid
    act = layer.args["act"]
    out = [IN0] if w else []
    if act is None:
        return out + ([_new(hid, "hidden (fc1 output)")] if w else [])
    where = ACTIVATION_RULES.get(act, "in")
    if where == "out":
        return out + [_new(hid, f"hidden after {act} (kept by {act} and fc2)")]
    out.append(_new(hid, f"hidden before {act}"))
    return out + ([_new(hid, f"hidden after {act} (fc2's input)")] if w else [])


def _attention(layer, rg, w, batch=None, mixed=False):
    """The exported unfused attention: qkv's linear keeps its input (x, or the window partition
    — a copy, unless the grid is one window and unshifted — or the roll's output); q·scale and
    a copy of kᵀ (matmul folds both to bmm: kᵀ, a strided slice of qkv, is copied); softmax
    its output (heads x N x keys); AV the probabilities and a copy of v; proj its input (the
    heads' output, a copy after the transpose). Masks, bias table indices: buffers.

    When the whole batch is one sequence (batch 1, one group, one window) the fold to bmm
    merges the batch axis of size 1 without a copy: kᵀ and v stay views of qkv, and the qkv
    output (q, k and v) is kept whole instead of the two copies."""
    g, n, h = layer.groups, layer.n, layer.h
    seqs = g * (numel(layer.grid) // layer.window ** 2 if layer.window else 1)
    x = g * n * layer.c
    out = []
    if w:
        if layer.window is None:
            out.append(IN0)
        elif layer.args["shift"]:
            out.append(_new(x, "shifted windows (roll, partition)"))
        elif layer.grid == (layer.window, layer.window):
            out.append(IN0)  # one window: the partition is a view
        else:
            out.append(_new(x, "window partition"))
    out.append(_new(g * n * h * layer.dk, "q * scale"))
    if batch == 1 and seqs == 1:
        out.append(_new(n * h * (2 * layer.dk + layer.dv), "qkv (kᵀ and v are views of it)"))
    else:
        out.append(_new(g * n * h * layer.dk, "kᵀ (bmm's copy)"))
    if mixed and (layer.rel_bias or (layer.window and layer.args["shift"])):
        # under autocast the fp32 bias table (or shift mask) added to the half scores makes them
        # fp32: softmax keeps fp32 probabilities, and AV reads a half copy of them
        out.append(_new(layer.scores(), "attention probabilities (softmax output, fp32)", "float32"))
        out.append(_new(layer.scores(), "half copy of the probabilities (AV's input)"))
    else:
        out.append(_new(layer.scores(), "attention probabilities (softmax output)"))
    if not (batch == 1 and seqs == 1):
        out.append(_new(g * n * h * layer.dv, "v (bmm's copy)"))
    if w and layer.args["proj"]:
        out.append(_new(g * n * h * layer.dv, "heads' output (proj's input)"))
    return out


def _patch_merging(layer, rg, w):
    """The 2x2 groups gathered to 4C (a copy: reshape of a permute), LayerNorm keeps it and its
    mean, 1/std per token; the reduction linear keeps the normalised tokens."""
    n, c4 = layer.n, 4 * layer.c
    out = [_new(n * c4, "merged 2x2 tokens (4C)", "in"), _new(n, "mean", "float32"), _new(n, "1/std", "float32")]
    return out + ([_new(n * c4, "normalised merged tokens")] if w else [])


def _activation(kind):
    where = ACTIVATION_RULES[kind]
    return lambda layer, rg, w: [IN0 if where == "in" else OUT]


RULES = {
    "conv": _conv, "dwconv": _conv, "deconv": _input, "local": _input_if_trained,
    "fc": _input_if_trained, "scale": _input_if_trained, "matmul": _matmul,
    "flatten": _nothing, "identity": _nothing, "reshape": _nothing, "transpose": _nothing,
    "concat": _nothing, "add": _nothing, "stack": _nothing, "expand": _nothing, "tile": _nothing,
    "pad_channels": _nothing, "channel_shuffle": _nothing, "upsample": _nothing, "crop": _nothing,
    "global_avgpool": _nothing, "split": _split, "slice": _slice, "gather": _gather,
    "maxpool": _maxpool, "avgpool": _avgpool, "global_maxpool": _global_maxpool,
    "adaptive_avgpool": _adaptive_avgpool, "adaptive_maxpool": _maxpool,
    "batchnorm": _batchnorm, "groupnorm": _groupnorm, "instancenorm": _instancenorm,
    "layernorm": _layernorm, "lrn": _lrn, "dropout": _dropout, "padding": _padding,
    "mul": _mul, "binary": _binary, "where": _where, "unary": _unary, "reduce": _reduce,
    "softmax": _softmax, "logsoftmax": _softmax, "maxout": _maxout,
    # an opaque layer's computation is unknown: it keeps nothing we can name (a lower bound,
    # as its 0 parameters and 0 MACs are)
    "opaque": _nothing,
    # token layers: reshapes, concatenation with the class token, the position embedding's add
    # and the token mean keep nothing
    "patch_embed": _patch_embed, "mlp": _mlp, "attention": _attention, "patch_merging": _patch_merging,
    "tokens": _nothing, "to_image": _nothing, "cls_token": _nothing, "pos_embed": _nothing, "relbias": _nothing, "mean": _nothing,
    **{k: _activation(k) for k in ACTIVATION_RULES if k != "softmax"},
}


# rules that depend on the batch size (a view or a copy, as the batch axis folds)
_BY_BATCH = {_attention}


def layer_saves(layer, rg: list[bool], trainable: bool, batch: int | None = None,
                mixed: bool = False) -> list[tuple]:
    """The tensors ``layer`` keeps for backward, its fused activation's included, given which
    inputs require a gradient (``rg``) and whether it has trainable parameters, at ``batch``
    (None: any batch over one), under torch autocast when ``mixed``."""
    if not trainable and not any(rg):
        return []  # autograd records nothing
    rule = RULES[layer.kind]
    if rule is _attention:
        out = rule(layer, rg, trainable, batch, mixed)
    else:
        out = rule(layer, rg, trainable, batch) if rule in _BY_BATCH else rule(layer, rg, trainable)
    act = layer.activation
    if act:
        if act == "softmax" or ACTIVATION_RULES.get(act) == "out":
            fused = OUT
        else:
            fused = PRE
        out = [PRE if r == OUT else r for r in out] + [fused]
    return out
