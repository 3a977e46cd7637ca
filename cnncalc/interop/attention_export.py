"""The token layers (layers/attention.py) in the exporters: ONNX nodes (opset 17: MatMul, Softmax,
Reshape, Transpose, Slice, Concat, Gather, LayerNormalization) and PyTorch code with explicit
matmuls — the computation of the runtime's kernels (runtime/kernels/attention.py), step by step,
so the three agree on outputs (tests/attention/test_export.py).

PyTorch: each layer with parameters is a small helper module written into the generated file,
whose parameters are named as the runtime's (``qkv_weight``, ``rel_pos_table``, …): the
state_dict keys are the checkpoint's. Window attention's index and mask are non-persistent
buffers computed in the module, as timm computes them.
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime.kernels.attention import MASK, rel_index, shift_mask

# ----------------------------------------------------------------------------- ONNX


def _roll(b, name, x, shift, h, w):
    """torch.roll(x, (shift, shift), (1, 2)) of (B, H, W, C) as Slice + Concat along H, then W."""
    for axis, n in ((1, h), (2, w)):
        x = _roll_axis(b, name, x, shift % n, axis, n)
    return x


def _roll_axis(b, name, x, s, axis, n, *, out=None, last=None):
    """torch.roll(x, s, axis) of an axis of n (0 ≤ s < n) as Slice + Concat; ``out`` and ``last``:
    the Concat's output and node name (else derived from ``name``)."""
    if not s:
        return x if out is None else b.node("Identity", [x], out, last)
    cut = n - s
    hi = b.node("Slice", [x, b.ints(f"{name}/s{axis}a", [cut]), b.ints(f"{name}/e{axis}a", [n]),
                          b.ints(f"{name}/x{axis}a", [axis])], f"{name}/hi{axis}", f"{name}/hi{axis}")
    lo = b.node("Slice", [x, b.ints(f"{name}/s{axis}b", [0]), b.ints(f"{name}/e{axis}b", [cut]),
                          b.ints(f"{name}/x{axis}b", [axis])], f"{name}/lo{axis}", f"{name}/lo{axis}")
    return b.node("Concat", [hi, lo], out or f"{name}/rolled{axis}", last or f"{name}/rolled{axis}", axis=axis)


def _reshape(b, name, x, dims):
    return b.node("Reshape", [x, b.ints(f"{name}/shape", list(dims))], name, name)


def _transpose(b, name, x, perm):
    return b.node("Transpose", [x], name, name, perm=list(perm))


def _linear(b, name, x, w, bias):
    """x @ wᵀ (+ bias) with the weight an initializer of shape (in, out); ``bias`` an array (an
    initializer) or the name of a tensor (:func:`_qkv_bias`'s concat)."""
    y = b.node("MatMul", [x, b.init(f"{name}/weight_t", np.asarray(w).T)], f"{name}/mm", f"{name}/mm")
    if bias is not None:
        y = b.node("Add", [y, bias if isinstance(bias, str) else b.init(f"{name}/bias", bias)], f"{name}/add",
                   f"{name}/add")
    return y


def _qkv_bias(b, node):
    """The qkv projection's bias: the ``qkv_bias`` initializer, None, or with ``qkv_bias: qv`` the
    Concat of the ``q_bias`` initializer, a zero Constant (the fixed k bias: a constant node, not
    an initializer, as PyTorch's k_bias buffer is no parameter) and the ``v_bias`` initializer —
    timm's ``torch.cat((q_bias, k_bias, v_bias))``, which the importer lifts back to ``qv``."""
    L, p, n = node.layer, b.params[node.name], node.name
    if "q_bias" not in p:
        return p.get("qkv_bias")
    zero = np.zeros(L.h * L.dk, np.float32)
    k = b.node("Constant", [], f"{n}/k_bias", f"{n}/k_bias", value=b.onnx.numpy_helper.from_array(zero, f"{n}/k_bias"))
    return b.node("Concat", [b.param(n, "q_bias"), k, b.param(n, "v_bias")], f"{n}/qkv_bias", f"{n}/qkv_bias", axis=0)


def onnx_attention(b, node, xs, out):
    """torch.onnx.export's form of timm's Attention (the form the importer lifts back into this
    layer: rewrites/attention.py): qkv as one MatMul (+ Add), reshaped to (…, T, 3, h, d),
    permuted to (3, …, h, T, d), split into q, k, v; q·scale @ kᵀ [+ the relative position
    bias, the table read at Swin's index, as torch.onnx.export folds it] [+ the shifted-window
    mask]; softmax; @ v; back to (…, T, h·d); the output projection. Window attention rolls
    and partitions the grid first and puts the windows back after (timm's Swin). Attention
    whose values have another width than its keys (dv ≠ dk) has no joint qkv: its q, k, v are
    cut apart (:func:`_onnx_attention_apart`)."""
    L = node.layer
    if L.dk != L.dv:
        return _onnx_attention_apart(b, node, xs, out)
    p, n = b.params[node.name], node.name
    h, d = L.h, L.dk
    x = xs[0]
    lead = list(L.in_shapes[0][:-2])
    n_tok, c = L.in_shapes[0][-2:]
    if L.window:
        gh, gw = L.grid
        w, s = L.window, L.args["shift"]
        x = _reshape(b, f"{n}/grid", x, [-1, gh, gw, c])
        x = _roll(b, f"{n}/roll", x, -s, gh, gw) if s else x
        x = _reshape(b, f"{n}/win6", x, [-1, gh // w, w, gw // w, w, c])
        x = _transpose(b, f"{n}/win_t", x, [0, 1, 3, 2, 4, 5])
        x = _reshape(b, f"{n}/seqs", x, [-1, w * w, c])
        seq, lead_x = w * w, []
    else:
        seq, lead_x = n_tok, lead  # (MobileViT's patches: groups of sequences, kept as axes)
    k = len(lead_x)
    qkv = _linear(b, f"{n}/qkv", x, p["qkv_weight"], _qkv_bias(b, node))
    # the node the importer names the lifted layer after (timm's /attn/Reshape): named as the layer
    # (window attention: its last node is, the lift takes the shortest name of the block)
    t = b.node("Reshape", [qkv, b.ints(f"{n}/heads_shape", [-1, *lead_x, seq, 3, h, d])], f"{n}/heads",
               f"{n}/heads" if L.window else n)
    t = _transpose(b, f"{n}/heads_t", t, [k + 2, *range(k + 1), k + 3, k + 1, k + 4])
    b.node("Split", [t, b.ints(f"{n}/split", [1, 1, 1])], f"{n}/qkv_split0", f"{n}/split", axis=0)
    b.nodes[-1].output[:] = [f"{n}/qkv_split{j}" for j in range(3)]  # (timm's unbind: three outputs)
    q, kk, v = (b.node("Squeeze", [f"{n}/qkv_split{j}", b.ints(f"{n}/sq{j}", [0])], f"{n}/{nm}", f"{n}/{nm}")
                for j, nm in enumerate("qkv"))
    q = b.node("Mul", [q, b.init(f"{n}/scale", np.array(L.scale, np.float32))], f"{n}/q_scaled", f"{n}/q_scaled")
    kt = _transpose(b, f"{n}/k_t", kk, [*range(k + 2), k + 3, k + 2])
    a = b.node("MatMul", [q, kt], f"{n}/scores", f"{n}/scores")
    if L.rel_bias:
        a = b.node("Add", [a, b.init(f"{n}/rel_pos_bias", _rel_pos_bias(L, p, seq, h))], f"{n}/biased", f"{n}/biased")
    if L.window and L.args["shift"]:
        nw = (L.grid[0] // L.window) * (L.grid[1] // L.window)
        a = _reshape(b, f"{n}/by_window", a, [-1, nw, h, seq, seq])
        m = shift_mask(*L.grid, L.window, L.args["shift"])[:, None]
        # (a Constant node, not an initializer: a buffer, which the importer does not count as weights)
        mask = b.node("Constant", [], f"{n}/mask", f"{n}/mask",
                      value=b.onnx.numpy_helper.from_array(np.asarray(m, np.float32), f"{n}/mask"))
        a = b.node("Add", [a, mask], f"{n}/masked", f"{n}/masked")
        a = _reshape(b, f"{n}/unwindow", a, [-1, h, seq, seq])
    a = b.node("Softmax", [a], f"{n}/probs", f"{n}/probs", axis=-1)
    o = b.node("MatMul", [a, v], f"{n}/av", f"{n}/av")
    o = _reshape(b, f"{n}/ctx", _transpose(b, f"{n}/av_t", o, [*range(k + 1), k + 2, k + 1, k + 3]),
                 [-1, *lead_x, seq, h * d])
    oc = L.out_c
    if not L.window:
        if "proj_weight" not in p:
            return b.node("Identity", [o], out, f"{n}/out")
        return _linear_to(b, f"{n}/proj", o, p["proj_weight"], p.get("proj_bias"), out)
    y = _linear(b, f"{n}/proj", o, p["proj_weight"], p.get("proj_bias")) if "proj_weight" in p else o
    gh, gw = L.grid
    w, s = L.window, L.args["shift"]
    y = _transpose(b, f"{n}/rwin_t", _reshape(b, f"{n}/rwin6", y, [-1, gh // w, gw // w, w, w, oc]),
                   [0, 1, 3, 2, 4, 5])
    tokens = [-1, *lead, n_tok, oc]
    if not s:  # (the layer's last node named as the layer: the lift of the block ends there)
        return b.node("Reshape", [y, b.ints(f"{n}/out_shape", tokens)], out, n)
    # the roll back: along W on the grid, then along H as a roll of the tokens by shift·W
    y = _roll_axis(b, f"{n}/unroll", _reshape(b, f"{n}/rgrid", y, [-1, gh, gw, oc]), s % gw, 2, gw)
    y = _reshape(b, f"{n}/out_shape", y, tokens)
    return _roll_axis(b, f"{n}/unroll_h", y, (s * gw) % n_tok, len(lead) + 1, n_tok, out=out, last=n)


def _rel_pos_bias(L, p, seq, h):
    """The relative position bias (heads, seq, seq): the table read at Swin's index, the constant
    torch.onnx.export folds timm's lookup into (the importer rebuilds the table from it); with
    ``cls_bias`` BEiT's index, the class token's three rows besides."""
    table = np.asarray(p["rel_pos_table"])  # ((1, heads, …): timm's unsqueeze(0), which no relbias rule reads)
    return table[rel_index(L.bias_w, L.cls_bias).reshape(-1)].reshape(seq, seq, h).transpose(2, 0, 1)[None]


def _linear_to(b, name, x, w, bias, out, last=None):
    """:func:`_linear` whose last node writes ``out`` (and is called ``last``, if given)."""
    if bias is None:
        return b.node("MatMul", [x, b.init(f"{name}/weight_t", np.asarray(w).T)], out, last or f"{name}/mm")
    y = b.node("MatMul", [x, b.init(f"{name}/weight_t", np.asarray(w).T)], f"{name}/mm", f"{name}/mm")
    return b.node("Add", [y, b.init(f"{name}/bias", bias)], out, last or f"{name}/add")


def _onnx_attention_apart(b, node, xs, out):
    """Attention with q, k, v cut apart from the qkv projection (any dk, dv)."""
    L, p, n = node.layer, b.params[node.name], node.name
    h, dk, dv = L.h, L.dk, L.dv
    x = xs[0]
    lead = list(L.in_shapes[0][:-2])
    n_tok, c = L.in_shapes[0][-2:]
    if L.window:
        gh, gw = L.grid
        w, s = L.window, L.args["shift"]
        x = _reshape(b, f"{n}/grid", x, [-1, gh, gw, c])
        x = _roll(b, f"{n}/roll", x, -s, gh, gw) if s else x
        x = _reshape(b, f"{n}/win6", x, [-1, gh // w, w, gw // w, w, c])
        x = _transpose(b, f"{n}/win_t", x, [0, 1, 3, 2, 4, 5])
        seq = w * w
    else:
        seq = n_tok
    x = _reshape(b, f"{n}/seqs", x, [-1, seq, c])
    qkv = _linear(b, f"{n}/qkv", x, p["qkv_weight"], _qkv_bias(b, node))
    parts = []
    for k, (lo, hi, d, perm) in enumerate(((0, h * dk, dk, [0, 2, 1, 3]), (h * dk, 2 * h * dk, dk, [0, 2, 3, 1]),
                                           (2 * h * dk, h * (2 * dk + dv), dv, [0, 2, 1, 3]))):
        t = b.node("Slice", [qkv, b.ints(f"{n}/qkv{k}_s", [lo]), b.ints(f"{n}/qkv{k}_e", [hi]),
                             b.ints(f"{n}/qkv{k}_a", [2])], f"{n}/qkv{k}", f"{n}/qkv{k}")
        t = _reshape(b, f"{n}/heads{k}", t, [-1, seq, h, d])
        parts.append(_transpose(b, f"{n}/heads{k}_t", t, perm))
    q = b.node("Mul", [parts[0], b.init(f"{n}/scale", np.array(L.scale, np.float32))], f"{n}/q", f"{n}/q")
    a = b.node("MatMul", [q, parts[1]], f"{n}/scores", f"{n}/scores")
    if L.rel_bias:  # (folded, as in onnx_attention: a Gather of the table has no spec layer to import into)
        a = b.node("Add", [a, b.init(f"{n}/rel_pos_bias", _rel_pos_bias(L, p, seq, h))], f"{n}/biased", f"{n}/biased")
    if L.window and L.args["shift"]:
        nw = (L.grid[0] // L.window) * (L.grid[1] // L.window)
        a = _reshape(b, f"{n}/by_window", a, [-1, nw, h, seq, seq])
        m = shift_mask(*L.grid, L.window, L.args["shift"])[:, None]
        a = b.node("Add", [a, b.init(f"{n}/mask", m)], f"{n}/masked", f"{n}/masked")
        a = _reshape(b, f"{n}/unwindow", a, [-1, h, seq, seq])
    a = b.node("Softmax", [a], f"{n}/probs", f"{n}/probs", axis=-1)
    o = b.node("MatMul", [a, parts[2]], f"{n}/av", f"{n}/av")
    o = _reshape(b, f"{n}/ctx", _transpose(b, f"{n}/av_t", o, [0, 2, 1, 3]), [-1, seq, h * dv])
    y = _linear(b, f"{n}/proj", o, p["proj_weight"], p.get("proj_bias")) if "proj_weight" in p else o
    oc = L.out_c
    if L.window:
        gh, gw = L.grid
        w, s = L.window, L.args["shift"]
        y = _reshape(b, f"{n}/rwin6", y, [-1, gh // w, gw // w, w, w, oc])
        y = _reshape(b, f"{n}/rgrid", _transpose(b, f"{n}/rwin_t", y, [0, 1, 3, 2, 4, 5]), [-1, gh, gw, oc])
        y = _roll(b, f"{n}/unroll", y, s, gh, gw) if s else y
    return b.node("Reshape", [y, b.ints(f"{n}/out_shape", [-1, *lead, n_tok, oc])], out, n)


def onnx_mlp(b, node, xs, out):
    L, p, n = node.layer, b.params[node.name], node.name
    y = _linear(b, f"{n}/fc1", xs[0], p["fc1_weight"], p.get("fc1_bias"))
    act = L.args["act"]
    if act:
        y = _onnx_act(b, act, y, f"{n}/act")
    # (the last node named as the layer, no Identity after it: the importer's mlp lift ends there)
    return _linear_to(b, f"{n}/fc2", y, p["fc2_weight"], p.get("fc2_bias"), out, last=n)


def _onnx_act(b, act, x, name):
    if act == "gelu":  # 0.5·x·(1 + erf(x/√2)): opset 17 has no Gelu
        t = b.node("Div", [x, b.init(f"{name}/sqrt2", np.array(np.sqrt(2.0), np.float32))], f"{name}/d", f"{name}/d")
        t = b.node("Erf", [t], f"{name}/erf", f"{name}/erf")
        t = b.node("Add", [t, b.init(f"{name}/one", np.array(1.0, np.float32))], f"{name}/p1", f"{name}/p1")
        t = b.node("Mul", [x, t], f"{name}/m", f"{name}/m")
        return b.node("Mul", [t, b.init(f"{name}/half", np.array(0.5, np.float32))], name, name)
    if act == "silu":
        return b.node("Mul", [x, b.node("Sigmoid", [x], f"{name}/sig", f"{name}/sig")], name, name)
    if act == "relu":
        return b.node("Relu", [x], name, name)
    raise ValueError(f"no ONNX form for an MLP activation {act!r}")


def onnx_patch_embed(b, node, xs, out):
    L, n = node.layer, node.name
    p = L.args["patch"]
    nd = len(L.grid)
    ins = [xs[0], b.param(n, "weight")] + ([b.param(n, "bias")] if L.args["bias"] else [])
    y = b.node("Conv", ins, f"{n}/conv", f"{n}/conv", kernel_shape=[p] * nd, strides=[p] * nd)
    y = _reshape(b, f"{n}/flat", y, [0, L.args["channels"], -1])
    return b.node("Transpose", [y], out, n, perm=[0, 2, 1])


def onnx_tokens(b, node, xs, out):
    L = node.layer
    y = _reshape(b, f"{node.name}/flat", xs[0], [0, L.out_shape[1], -1])
    return b.node("Transpose", [y], out, node.name, perm=[0, 2, 1])


def onnx_to_image(b, node, xs, out):
    L = node.layer
    y = _transpose(b, f"{node.name}/t", xs[0], [0, 2, 1])
    return b.node("Reshape", [y, b.ints(f"{node.name}/shape", [0, L.out_shape[-1], *L.size])], out, node.name)


def onnx_cls_token(b, node, xs, out):
    L, n = node.layer, node.name
    x = L.in_shapes[0]
    cls = np.asarray(b.params[n]["cls"]).reshape((1,) * (len(x) - 2) + (L.args["count"], L.c))
    cls = np.broadcast_to(cls, (1, *x[:-2], L.args["count"], L.c))
    # the batch's copies: Expand to the input's batch size (Shape → Slice [0:1] → Concat)
    shp = b.node("Shape", [xs[0]], f"{n}/shape", f"{n}/shape")
    bs = b.node("Slice", [shp, b.ints(f"{n}/s0", [0]), b.ints(f"{n}/s1", [1])], f"{n}/batch", f"{n}/batch")
    tgt = b.node("Concat", [bs, b.ints(f"{n}/rest", list(cls.shape[1:]))], f"{n}/target", f"{n}/target", axis=0)
    c = b.node("Expand", [b.init(f"{n}/cls", cls), tgt], f"{n}/cls_b", f"{n}/cls_b")
    return b.node("Concat", [c, xs[0]], out, n, axis=-2)


def onnx_pos_embed(b, node, xs, out):
    return b.node("Add", [xs[0], b.param(node.name, "pos")], out, node.name)


def onnx_patch_merging(b, node, xs, out):
    L, p, n = node.layer, b.params[node.name], node.name
    gh, gw = L.grid
    c = L.c
    y = _reshape(b, f"{n}/six", xs[0], [-1, gh, 2, gw, 2, c])
    y = _reshape(b, f"{n}/merged", _transpose(b, f"{n}/t", y, [0, 1, 3, 4, 2, 5]), [-1, gh * gw, 4 * c])
    y = b.node("LayerNormalization", [y, b.param(n, "norm_gamma"), b.param(n, "norm_beta")], f"{n}/norm",
               f"{n}/norm", axis=-1, epsilon=float(L.args["eps"]))
    return _linear_to(b, f"{n}/reduction", y, p["weight"], None, out, last=n)


def onnx_mean(b, node, xs, out):
    return b.node("ReduceMean", [xs[0]], out, node.name, axes=[1], keepdims=0)  # (opset 17: axes attribute)


ONNX_ROWS = {"attention": onnx_attention, "mlp": onnx_mlp, "patch_embed": onnx_patch_embed, "tokens": onnx_tokens,
             "to_image": onnx_to_image, "cls_token": onnx_cls_token, "pos_embed": onnx_pos_embed,
             "patch_merging": onnx_patch_merging, "mean": onnx_mean}


# ----------------------------------------------------------------------------- PyTorch
TORCH_HELPERS = {
    "PatchEmbed": '''class PatchEmbed(nn.Module):
    """A conv with kernel = stride = patch, its positions flattened to tokens."""

    def __init__(self, c, d, patch, nd, bias):
        super().__init__()
        self.patch, self.nd = patch, nd
        self.weight = nn.Parameter(torch.zeros(d, c, *(patch,) * nd))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None

    def forward(self, x):
        conv = F.conv2d if self.nd == 2 else F.conv1d
        return conv(x, self.weight, self.bias, stride=self.patch).flatten(2).transpose(1, 2)
''',
    "ClsToken": '''class ClsToken(nn.Module):
    """Learned class token(s) put before the tokens."""

    def __init__(self, count, c):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, count, c))

    def forward(self, x):
        cls = self.cls.reshape((1,) * (x.dim() - 3) + tuple(self.cls.shape))
        return torch.cat([cls.expand(*x.shape[:-2], -1, -1), x], -2)
''',
    "PosEmbed": '''class PosEmbed(nn.Module):
    """A learned position embedding added to the tokens."""

    def __init__(self, n, c):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, n, c))

    def forward(self, x):
        return x + self.pos[0]
''',
    "MLP": '''class MLP(nn.Module):
    """Linear, activation, linear on every token (timm's Mlp)."""

    def __init__(self, c, hidden, out, act, bias):
        super().__init__()
        self.act = act
        self.fc1_weight = nn.Parameter(torch.zeros(hidden, c))
        self.fc1_bias = nn.Parameter(torch.zeros(hidden)) if bias else None
        self.fc2_weight = nn.Parameter(torch.zeros(out, hidden))
        self.fc2_bias = nn.Parameter(torch.zeros(out)) if bias else None

    def forward(self, x):
        h = F.linear(x, self.fc1_weight, self.fc1_bias)
        h = {"gelu": F.gelu, "silu": F.silu, "relu": torch.relu, None: lambda t: t}[self.act](h)
        return F.linear(h, self.fc2_weight, self.fc2_bias)
''',
    "PatchMerging": '''class PatchMerging(nn.Module):
    """Swin's patch merging: 2x2 tokens of the H x W grid → 4C (timm's order), LayerNorm,
    a linear to the output channels without bias."""

    def __init__(self, c, out, grid, eps):
        super().__init__()
        self.c, self.grid, self.eps = c, grid, eps
        self.norm_gamma = nn.Parameter(torch.ones(4 * c))
        self.norm_beta = nn.Parameter(torch.zeros(4 * c))
        self.weight = nn.Parameter(torch.zeros(out, 4 * c))

    def forward(self, x):
        h, w = self.grid
        x = x.reshape(-1, h, 2, w, 2, self.c).permute(0, 1, 3, 4, 2, 5).reshape(-1, h * w, 4 * self.c)
        return F.linear(F.layer_norm(x, (4 * self.c,), self.norm_gamma, self.norm_beta, self.eps), self.weight)
''',
    "Attention": '''class Attention(nn.Module):
    """Multi-head self-attention with explicit matmuls (cnncalc's attention layer): qkv, per head
    softmax(q*scale @ k^T [+ relative position bias] [+ shifted-window mask]) @ v, projection.
    Window attention rolls the H x W grid by -shift, attends in window x window windows and
    puts them back, as timm's Swin does."""

    def __init__(self, c, heads, dk, dv, out, qkv_bias, proj, proj_bias, window=None, shift=0, grid=None,
                 bias_window=None, scale=None, cls_bias=False):
        super().__init__()
        self.h, self.dk, self.dv, self.window, self.shift, self.grid = heads, dk, dv, window, shift, grid
        self.scale = scale  # (None: 1/sqrt(dk))
        self.qkv_weight = nn.Parameter(torch.zeros(heads * (2 * dk + dv), c))
        self.qkv_bias = nn.Parameter(torch.zeros(heads * (2 * dk + dv))) if qkv_bias is True else None
        if qkv_bias == "qv":  # learned q and v biases, the k bias a fixed zero (timm's BEiT, Swin V2)
            self.q_bias = nn.Parameter(torch.zeros(heads * dk))
            self.register_buffer("k_bias", torch.zeros(heads * dk), persistent=False)
            self.v_bias = nn.Parameter(torch.zeros(heads * dv))
        self.proj_weight = nn.Parameter(torch.zeros(out, heads * dv)) if proj else None
        self.proj_bias = nn.Parameter(torch.zeros(out)) if proj and proj_bias else None
        self.rel_pos_table = None
        bw = window or bias_window  # (bias_window: each sequence is a window already, MaxViT)
        if bw:
            t = (2 * bw - 1) ** 2 + (3 if cls_bias else 0)
            self.rel_pos_table = nn.Parameter(torch.zeros(t, heads))
            r = torch.arange(bw)
            c2 = torch.stack(torch.meshgrid(r, r, indexing="ij")).flatten(1)
            rel = c2[:, :, None] - c2[:, None, :] + bw - 1
            index = rel[0] * (2 * bw - 1) + rel[1]
            if cls_bias:  # a class token before the window (timm's BEiT): its 3 rows of the table
                index = F.pad(index, (1, 0, 1, 0))
                index[0, :] = t - 3  # cls -> patches
                index[:, 0] = t - 2  # patches -> cls
                index[0, 0] = t - 1  # cls -> cls
            self.register_buffer("rel_index", index, persistent=False)
        if window:
            if shift:
                img = torch.zeros(1, grid[0], grid[1], 1)
                cnt = 0
                for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                    for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                        img[:, hs, ws, :] = cnt
                        cnt += 1
                mw = self.partition(img).squeeze(-1)
                mask = (mw[:, None, :] != mw[:, :, None]).float() * MASK
                self.register_buffer("mask", mask, persistent=False)

    def partition(self, x):
        b, h, w, c = x.shape
        k = self.window
        return x.reshape(b, h // k, k, w // k, k, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, k * k, c)

    def forward(self, x):
        lead, (n, c) = x.shape[:-2], x.shape[-2:]
        h, dk, dv = self.h, self.dk, self.dv
        if self.window:
            gh, gw = self.grid
            x = x.reshape(-1, gh, gw, c)
            if self.shift:
                x = torch.roll(x, (-self.shift, -self.shift), (1, 2))
            x = self.partition(x)
        elif dk != dv and len(lead) != 1:  # (groups of sequences, MobileViT's patches: one batch of them)
            x = x.reshape(-1, n, c)
        *grp, s, _ = x.shape  # (the batch and any groups of sequences: kept as axes)
        g = len(grp)
        bias = self.qkv_bias
        if hasattr(self, "q_bias"):
            bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        qkv = F.linear(x, self.qkv_weight, bias)
        if dk == dv:  # (timm's form: torch.onnx.export of it imports back as one attention layer)
            q, k, v = qkv.reshape(*grp, s, 3, h, dk).permute(g + 1, *range(g), g + 2, g, g + 3).unbind(0)
        else:
            q = qkv[..., :h * dk].reshape(*grp, s, h, dk).transpose(-2, -3)
            k = qkv[..., h * dk:2 * h * dk].reshape(*grp, s, h, dk).transpose(-2, -3)
            v = qkv[..., 2 * h * dk:].reshape(*grp, s, h, dv).transpose(-2, -3)
        a = torch.matmul(q * (dk ** -0.5 if self.scale is None else self.scale), k.transpose(-1, -2))
        if self.rel_pos_table is not None:
            a = a + self.rel_pos_table[self.rel_index.reshape(-1)].reshape(s, s, h).permute(2, 0, 1).unsqueeze(0)
        if self.window and self.shift:
            nw = self.mask.shape[0]
            a = (a.reshape(-1, nw, h, s, s) + self.mask[None, :, None]).reshape(*grp, h, s, s)
        y = torch.matmul(torch.softmax(a, -1), v).transpose(-2, -3).reshape(*grp, s, h * dv)
        if self.proj_weight is not None:
            y = F.linear(y, self.proj_weight, self.proj_bias)
        if self.window:
            gh, gw = self.grid
            k = self.window
            y = y.reshape(-1, gh // k, gw // k, k, k, y.shape[-1]).permute(0, 1, 3, 2, 4, 5)
            if self.shift:  # the roll back along W on the grid, then along H as a roll of the tokens by shift*W
                y = torch.roll(y.reshape(-1, gh, gw, y.shape[-1]), self.shift, 2)
            y = y.reshape(*lead, n, y.shape[-1])
            return torch.roll(y, self.shift * gw, y.dim() - 2) if self.shift else y
        return y if len(grp) == len(lead) else y.reshape(*lead, n, y.shape[-1])
''',
}


def _helper(g, node, cls: str, args: str, x: str) -> str:
    g.helpers[cls] = TORCH_HELPERS[cls]
    return f"{g.module(node, f'{cls}({args})')}({x})"


def torch_rows() -> dict:
    def attention(g, node, xs):
        L, a = node.layer, node.layer.args
        g.helpers["Attention"] = TORCH_HELPERS["Attention"].replace("* MASK", f"* {MASK!r}")
        code = (f"Attention({L.c}, {L.h}, {L.dk}, {L.dv}, {L.out_c}, qkv_bias={a['qkv_bias']!r}, "
                f"proj={a['proj']!r}, proj_bias={a['proj_bias']!r}")
        if L.window:
            code += f", window={L.window}, shift={a['shift']}, grid={tuple(L.grid)!r}"
        elif L.rel_bias:
            code += f", bias_window={L.bias_w}" + (", cls_bias=True" if L.cls_bias else "")
        if a["qk_scale"] is not None:
            code += f", scale={L.scale!r}"
        return f"{g.module(node, code + ')')}({xs[0]})"

    def mlp(g, node, xs):
        L = node.layer
        return _helper(g, node, "MLP", f"{L.c}, {L.hid}, {L.out_c}, {L.args['act']!r}, {L.args['bias']!r}", xs[0])

    def patch_embed(g, node, xs):
        L = node.layer
        return _helper(g, node, "PatchEmbed", f"{L.in_channels}, {L.args['channels']}, {L.args['patch']}, "
                                              f"{len(L.grid)}, {L.args['bias']!r}", xs[0])

    def cls_token(g, node, xs):
        return _helper(g, node, "ClsToken", f"{node.layer.args['count']}, {node.layer.c}", xs[0])

    def pos_embed(g, node, xs):
        n, c = node.layer.nc
        return _helper(g, node, "PosEmbed", f"{n}, {c}", xs[0])

    def patch_merging(g, node, xs):
        L = node.layer
        return _helper(g, node, "PatchMerging", f"{L.c}, {L.out_c}, {tuple(L.grid)!r}, {L.args['eps']!r}", xs[0])

    return {
        "attention": attention, "mlp": mlp, "patch_embed": patch_embed, "cls_token": cls_token,
        "pos_embed": pos_embed, "patch_merging": patch_merging,
        "tokens": lambda g, n, xs: f"{xs[0]}.flatten(2).transpose(1, 2)",
        "to_image": lambda g, n, xs: (f"{xs[0]}.transpose(1, 2).reshape(-1, {n.layer.out_shape[-1]}, "
                                      f"{', '.join(map(str, n.layer.size))})"),
        "mean": lambda g, n, xs: f"{xs[0]}.mean(1)",
    }
