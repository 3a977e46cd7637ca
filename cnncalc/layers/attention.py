"""Token layers as papers draw them: patch embedding, class token, position embedding, multi-head
(and window) self-attention, the transformer MLP, Swin's patch merging, the token mean, and the
image ⇄ tokens reshapes (docs/attention.md).

They read the kinds of :mod:`cnncalc.shapes`: a token sequence ``N x C`` (or a tensor whose last
two axes are tokens and channels: the leading axes are groups, MobileViT's patches), and say
which positions of the input each token holds through the axis roles, so the receptive field
stays exact: a patch embedding is a window of ``patch``, window attention a window of the
(shifted) window partition, global attention makes the field global.

The convention (as the rest of cnncalc): MACs are the multiply-accumulates of conv, linear and
matmul — for attention Q, K, V projections + QKᵀ + AV + the output projection. The scaling,
the softmax, masks and the relative position bias are other ops, by class.
"""
from __future__ import annotations

import math

from cnncalc.errors import SpecError, short
from cnncalc.layers.base import (GLOBAL, REQUIRED, Layer, Window, as_activation, as_bool, as_int,
                                 axis_map)
from cnncalc.layers.tensor import UNKNOWN, chan, effects_of
from cnncalc.shapes import TOKENS, Tensor, fmt_int, fmt_shape, numel

ATTENTION_QK_AV = "attention QKᵀ+AV"   # the by-type keys of attention's MACs (summarize --by type)
ATTENTION_PROJ = "attention projections"


def _pos_float(v, name):
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise SpecError(f"{name}: {v!r} is not a number") from None
    if not (f > 0 and math.isfinite(f)) or isinstance(v, bool):
        raise SpecError(f"{name}: {v!r} must be a positive number")
    return f


def _int_field(minimum=1):
    return lambda v, n: as_int(v, n, minimum)


QV = "qv"  # qkv_bias: qv — learned q and v biases, the k bias fixed at zero (BEiT, EVA, Swin V2)


def _qkv_bias(v, name):
    """true, false, or ``qv``: the q and v biases learned and the k bias a fixed zero (BEiT's,
    EVA's and Swin V2's ``torch.cat((q_bias, zeros_like(v_bias), v_bias))``)."""
    if isinstance(v, bool) or v == QV:
        return v
    raise SpecError(f"'{name}' must be one of true, false, {QV} (q and v biases learned, the k bias fixed "
                    f"at zero: BEiT, Swin V2), got {short(v)}")


def _grid_of(role) -> tuple[int, ...] | None:
    """The token grid (H, W, …) a token axis' role enumerates in row-major order, or None."""
    if role is None or not role:
        return None
    if [w for w, _ in role] != list(range(len(role))):
        return None
    return tuple(n for _, n in role)


def token_input(layer, x) -> Tensor:
    """The token sequence a layer reads: N x C, or a tensor (…, N, C) whose leading axes are groups."""
    if x.__class__ is not Tensor or len(x) < 2:
        raise SpecError(f"a {layer.kind} layer reads token sequences (N x C), got the "
                        f"{'image' if len(x) > 1 else 'flat vector'} {fmt_shape(x)}",
                        hint="turn an image into tokens first: '- tokens' (H·W tokens of C) or "
                             "'- {patch_embed: 768, patch: 16}'")
    return x


def _lead(x: Tensor) -> int:
    """How many sequences a (…, N, C) tensor holds (1 for N x C tokens)."""
    return numel(x[:-2])


def _lead_text(x: Tensor) -> str:
    return "*".join(map(str, x[:-2])) + "*" if len(x) > 2 else ""


# ----------------------------------------------------------------------------- image ⇄ tokens
class PatchEmbed(Layer):
    """ViT's patch embedding: a conv with kernel = stride = ``patch`` (no padding), then the
    H/p·W/p positions flattened to tokens (``nn.Conv2d(C, D, p, p)`` then ``flatten(2).transpose(1, 2)``)."""

    kind = "patch_embed"
    family = "attention"
    primary = "channels"
    tensors = False
    takes_activation = False
    doc = "conv with kernel = stride = patch, flattened to H/p·W/p tokens of `channels` (ViT, Swin)"
    fields = {"channels": (_int_field(), REQUIRED), "patch": (_int_field(), REQUIRED), "bias": (as_bool, True)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        sp = self._need_spatial(x)
        p, d = self.args["patch"], self.args["channels"]
        grid = []
        for n in sp:
            if n % p:
                raise SpecError(f"the input {fmt_shape(x)} does not split into {p}x{p} patches ({n}/{p} is not whole)",
                                hint=f"use an input that is a multiple of {p}, or another patch size")
            grid.append(n // p)
        self.in_channels, self.grid = x[-1], tuple(grid)
        self.n = numel(grid)
        self.windows, self.groups = [Window(p, p, 0, 0)] * len(sp), 1  # (the runtime's conv geometry)
        self._notes.append(f"{' x '.join(f'{n}/{p}' for n in sp)} = {'x'.join(map(str, grid))} patches = "
                           f"{fmt_int(self.n)} tokens of {d}")
        role = tuple((s, g) for s, g in enumerate(grid))
        return Tensor((self.n, d), (role, chan(d)), nsp=len(sp))

    def param_shapes(self):
        d, c, p = self.args["channels"], self.in_channels, self.args["patch"]
        out = {"weight": ((d, c, *(p,) * len(self.grid)), "weight")}
        if self.args["bias"]:
            out["bias"] = ((d,), "bias")
        return out

    def macs(self):
        return self.n * self.args["channels"] * self.in_channels * self.args["patch"] ** len(self.grid)

    def _ops(self):
        return {"bias": self.n * self.args["channels"] if self.args["bias"] else 0}

    def rf_windows(self):
        p = self.args["patch"]
        return [Window(p, p, 0, 0)] * len(self.grid)

    def explain_params(self, with_bias=True):
        d, c, p = self.args["channels"], self.in_channels, self.args["patch"]
        k = "*".join([str(p)] * len(self.grid))
        nb = d if with_bias and self.args["bias"] else 0
        return f"({k}*{c})*{d}" + (f" + {d}" if nb else "") + f" = {fmt_int(numel(self.param_shapes()['weight'][0]) + nb)}"

    def explain_macs(self):
        p = self.args["patch"]
        k = "*".join([str(p)] * len(self.grid))
        return f"{fmt_int(self.n)} tokens * ({k}*{self.in_channels})*{self.args['channels']} = {fmt_int(self.macs())}"

    def describe(self):
        return f"patch{self.args['patch']}-{self.args['channels']}"


class Tokens(Layer):
    """An image H x W x C as H·W tokens of C (``x.flatten(2).transpose(1, 2)``): a view."""

    kind = "tokens"
    family = "reshape"
    view = True
    takes_activation = False
    doc = "an image HxWxC as H·W tokens of C (flatten(2).transpose(1, 2)); a view"

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        sp = self._need_spatial(x)
        c, n = x[-1], numel(sp)
        self._notes.append(f"{'*'.join(map(str, sp))} = {fmt_int(n)} tokens of {c}")
        # a view of the N, C, H, W storage: the token axis steps by 1, the channel axis by H·W
        return Tensor((n, c), (tuple(enumerate(sp)), chan(c)), nsp=len(sp), strides=(n * c, 1, n))


class ToImage(Layer):
    """Tokens back to an image (``x.transpose(1, 2).reshape(B, C, H, W)``): ``size`` [H, W]
    (default: the grid the tokens hold, else a square). A copy (a reshape after a transpose)."""

    kind = "to_image"
    family = "reshape"
    primary = "size"
    tensors = True
    takes_activation = False
    doc = "tokens N x C back to an image HxWxC (size: [H, W]; default the tokens' grid or a square)"
    fields = {"size": (lambda v, n: tuple(as_int(x, n) for x in (v if isinstance(v, list) else [v, v])), None)}

    def _infer(self, in_shapes, rounding):
        x = in_shapes[0]
        if x.__class__ is not Tensor or x.kind != TOKENS:
            raise SpecError(f"a to_image layer reads a token sequence (N x C), got {fmt_shape(x)}")
        n, c = x
        grid = _grid_of(x.roles[0])
        size = self.args["size"] or grid
        if size is None:
            r = math.isqrt(n)
            if r * r != n:
                raise SpecError(f"{n} tokens are not a square grid", hint="give 'size: [H, W]'")
            size = (r, r)
        if numel(size) != n:
            raise SpecError(f"{n} tokens do not make a {'x'.join(map(str, size))} image "
                            f"({'*'.join(map(str, size))} = {numel(size)})")
        self.size = tuple(size)
        self.exact = grid == self.size
        self._notes.append(f"{fmt_int(n)} tokens = {'*'.join(map(str, size))}, {c} channels")
        return (*size, c)

    def rf_windows(self):
        if self.exact:
            return None
        return {s: UNKNOWN for s in range(len(self.size))}  # tokens that were not this grid


class ClsToken(Layer):
    """A learned class token put before the tokens (ViT, DeiT: ``torch.cat([cls, x], 1)``): C
    parameters; N + 1 tokens. (DeiT's distillation token is a second one.)"""

    kind = "cls_token"
    family = "attention"
    primary = "count"
    tensors = True
    takes_activation = False
    doc = "learned class token(s) before the tokens: N + count tokens, count·C parameters"
    fields = {"count": (_int_field(), 1)}

    def _infer(self, in_shapes, rounding):
        x = token_input(self, in_shapes[0])
        k = self.args["count"]
        self.c = x[-1]
        self._notes.append(f"{x[-2]} + {k} = {x[-2] + k} tokens")
        # the new token holds no position: the token axis enumerates no grid any more (nsp 0:
        # the receptive field keeps the patch tokens' grid, and global attention makes it global)
        return Tensor((*x[:-2], x[-2] + k, x[-1]), (*x.roles[:-2], None, x.roles[-1]), nsp=0)

    def param_shapes(self):
        return {"cls": ((1, self.args["count"], self.c), "weight")}

    def const_init(self, name):
        return 0.0  # (the runtime's start: a learned offset, as a bias starts)

    def explain_params(self, with_bias=True):
        k = self.args["count"]
        return f"{k}*{self.c} = {fmt_int(k * self.c)}" if k > 1 else f"{self.c}"


class PosEmbed(Layer):
    """A learned position embedding added to every token (ViT): N·C parameters, N·C adds."""

    kind = "pos_embed"
    family = "attention"
    tensors = True
    takes_activation = False
    doc = "learned position embedding added to the tokens: N·C parameters, N·C adds"

    def _infer(self, in_shapes, rounding):
        x = token_input(self, in_shapes[0])
        self.nc = tuple(x[-2:])
        self._notes.append(f"{x[-2]} tokens x {x[-1]} channels")
        return Tensor(tuple(x), x.roles, x.nsp)

    def param_shapes(self):
        return {"pos": ((1, *self.nc), "weight")}

    def const_init(self, name):
        return 0.0

    def _ops(self):
        return {"add": numel(self.out_shape)}

    def explain_ops(self):
        return f"{fmt_int(numel(self.out_shape))} add"

    def explain_params(self, with_bias=True):
        return f"{self.nc[0]}*{self.nc[1]} = {fmt_int(numel(self.nc))}"


# ----------------------------------------------------------------------------- attention
class Attention(Layer):
    """Multi-head self-attention (Vaswani et al. 2017; ViT's, timm's ``Attention``): Q, K, V
    projections of ``heads`` × ``head_dim`` (default C / heads), softmax(QKᵀ·scale)V per head,
    an output projection to ``dim`` (default C). ``window`` (Swin): attention within
    non-overlapping windows of window x window tokens of the token grid, ``shift`` their
    cyclic shift, and a relative position bias table of (2·window − 1)² x heads parameters.
    ``bias_window`` P (MaxViT): each sequence is a P x P window already (P² tokens, in row-major
    order), with the same table of (2P − 1)² x heads. ``cls_bias`` (BEiT, with ``bias_window`` P):
    each sequence is a class token then the P x P grid (1 + P² tokens), and the table has 3 more
    rows, (2P − 1)² + 3 x heads: row (2P − 1)² is read by the class token's query at every patch
    key, the next by every patch query at the class token's key, the last by cls → cls (timm's
    ``gen_relative_position_index``). ``qk_scale``: what q·kᵀ is multiplied by
    (default 1/√head_dim; torchvision's MaxViT takes 1/√C). ``qkv_bias``: true (one learned bias
    of h·(2·dk + dv)), false, or ``qv``: learned q and v biases (``q_bias`` h·dk, ``v_bias`` h·dv)
    and a k bias fixed at zero (BEiT, EVA, Swin V2: ``cat((q_bias, zeros, v_bias))``).

    MACs = Q, K, V projections + QKᵀ + AV + output projection; the scaling (one mul per query
    value), the softmax, the relative position bias and the shifted-window mask (one add per
    score each) are other ops. Memory: the output, and inside the layer q, k, v, the scores
    and the softmax probabilities (heads x N x N each, what PyTorch's unfused attention
    writes and saves for backward) and the heads' output."""

    kind = "attention"
    family = "attention"
    primary = "heads"
    tensors = True
    takes_activation = False
    doc = ("multi-head self-attention: heads, head_dim (C/heads), qkv_bias (true, false, qv), proj, dim; "
           "window, shift "
           "and a relative position bias (Swin; bias_window: sequences that are windows, MaxViT; "
           "cls_bias: a class token before the window, BEiT); "
           "MACs = Q/K/V proj + QKᵀ + AV + out proj")
    fields = {"heads": (_int_field(), REQUIRED), "head_dim": (_int_field(), None),
              "value_dim": (_int_field(), None), "qkv_bias": (_qkv_bias, True), "proj": (as_bool, True),
              "proj_bias": (as_bool, True), "dim": (_int_field(), None),
              "window": (_int_field(), None), "shift": (_int_field(0), 0), "rel_pos_bias": (as_bool, None),
              "bias_window": (_int_field(), None), "cls_bias": (as_bool, False), "qk_scale": (_pos_float, None)}

    def _infer(self, in_shapes, rounding):
        x = token_input(self, in_shapes[0])
        a = self.args
        n, c = x[-2], x[-1]
        h = a["heads"]
        if a["head_dim"] is None and c % h:
            raise SpecError(f"{h} heads do not divide the {c} channels",
                            hint="give 'head_dim:' or a number of heads that divides the channels")
        self.c, self.n, self.h = c, n, h
        self.dk = a["head_dim"] or c // h
        self.dv = a["value_dim"] or self.dk
        self.scale = a["qk_scale"] if a["qk_scale"] is not None else self.dk ** -0.5  # (what q·kᵀ is multiplied by)
        self.groups = _lead(x)
        if not a["proj"] and a["dim"] not in (None, h * self.dv):
            raise SpecError(f"without an output projection the output has heads*value_dim = {h * self.dv} channels")
        self.out_c = (a["dim"] or c) if a["proj"] else h * self.dv
        self.keys = n  # keys each query reads
        self.window = a["window"]
        self.grid = None
        if self.window is not None:
            self._window_rule(x)
        elif a["shift"]:
            raise SpecError("'shift' needs a 'window' (shifted window attention)")
        bw = a["bias_window"]
        if bw is not None:
            if self.window is not None:
                raise SpecError("'bias_window' is for sequences that are windows already; with 'window' the "
                                "bias table is the window's", hint="drop 'bias_window'")
            want = bw * bw + int(a["cls_bias"])
            if n != want and a["cls_bias"]:
                raise SpecError(f"'bias_window: {bw}' with 'cls_bias' needs sequences of a class token and "
                                f"{bw}x{bw} patches = {want} tokens, not {n}",
                                hint=(f"drop 'cls_bias': {n} tokens are a {bw}x{bw} window" if n == bw * bw else
                                      f"'bias_window: {math.isqrt(n - 1)}'" if n > 1 and math.isqrt(n - 1) ** 2 == n - 1
                                      else "one class token then a square grid of patches"))
            if n != want:
                raise SpecError(f"'bias_window: {bw}' needs sequences of {bw}x{bw} = {want} tokens, not {n}",
                                hint=(f"'cls_bias: true': {n} tokens are a class token and {bw}x{bw} patches (BEiT)"
                                      if n == want + 1 else None))
        elif a["cls_bias"]:
            raise SpecError("'cls_bias' needs 'bias_window: P' (the class token's rows extend the P x P window's "
                            "table)", hint="'bias_window: P' where the sequence is 1 + P² tokens")
        if a["cls_bias"] and a["rel_pos_bias"] is False:
            raise SpecError("'cls_bias' adds rows to the relative position bias table; 'rel_pos_bias: false' has none",
                            hint="drop 'cls_bias'")
        if a["rel_pos_bias"] and self.window is None and bw is None:
            raise SpecError("'rel_pos_bias' needs a 'window' (the table is indexed by offsets inside a window)",
                            hint="or 'bias_window: P' when each sequence is a P x P window already (MaxViT)")
        self.bias_w = self.window if self.window is not None else bw  # the side of the window the table indexes
        self.rel_bias = self.bias_w is not None and a["rel_pos_bias"] is not False
        self.cls_bias = bool(a["cls_bias"])  # (the table's 3 class-token rows, BEiT)
        self._notes.append(f"{_lead_text(x)}{n} tokens x {c} → {h} heads x {self.dk} (q, k)"
                           + (f", {self.dv} (v)" if self.dv != self.dk else "")
                           + f" → {self.out_c} channels")
        self.effects = self._effects(x)
        return Tensor((*x[:-1], self.out_c), (*x.roles[:-1], chan(self.out_c)), x.nsp)

    def _window_rule(self, x):
        w, s = self.window, self.args["shift"]
        grid = _grid_of(x.roles[-2])
        if grid is None or len(grid) != 2:
            raise SpecError(f"window attention needs tokens that are an H x W grid; these {x[-2]} tokens "
                            "are not (a class token, or a reshape that cut the grid)",
                            hint="make the tokens with patch_embed, tokens or patch_merging")
        for g in grid:
            if g % w:
                raise SpecError(f"the {grid[0]}x{grid[1]} token grid does not split into {w}x{w} windows",
                                hint=f"use a window that divides {math.gcd(*grid)}")
        if s >= w:
            raise SpecError(f"a shift of {s} must be smaller than the window ({w})",
                            hint=f"Swin shifts by window // 2 = {w // 2}")
        self.grid = grid
        self.keys = w * w
        self._notes.append(f"{grid[0]}x{grid[1]} grid / {w}x{w} windows = {numel(grid) // (w * w)} windows of "
                           f"{w * w} tokens" + (f", shifted by {s}" if s else ""))

    def _effects(self, x):
        role = x.roles[-2]
        if self.window is None:
            # every output reads every token: global along the spatial axes the tokens hold
            if role is None:  # tokens that are not a grid (a class token before them): global on every axis
                return GLOBAL
            return effects_of([(role, GLOBAL)])
        w, s = self.window, self.args["shift"]
        # along each grid axis a unit o reads its window of the shifted partition: the windows
        # start at s, s + w, … (the cyclic roll's wrapped part is masked off: it is not read)
        m = axis_map(w, w, lambda o: (s - w, s) if o < s else (s, s + w),
                     f"window {w}" + (f" shifted by {s}" if s else ""))
        return {ax: m for ax in range(len(self.grid))}

    def rf_windows(self):
        return self.effects if self.effects == GLOBAL else dict(self.effects) or None

    # -- counting -----------------------------------------------------------------------
    def param_shapes(self):
        a, c, h = self.args, self.c, self.h
        qkv = h * (2 * self.dk + self.dv)
        out = {"qkv_weight": ((qkv, c), "weight")}
        if a["qkv_bias"] == QV:  # (the k part of the bias is a fixed zero: no parameter)
            out["q_bias"] = ((h * self.dk,), "bias")
            out["v_bias"] = ((h * self.dv,), "bias")
        elif a["qkv_bias"]:
            out["qkv_bias"] = ((qkv,), "bias")
        if a["proj"]:
            out["proj_weight"] = ((self.out_c, h * self.dv), "weight")
            if a["proj_bias"]:
                out["proj_bias"] = ((self.out_c,), "bias")
        if self.rel_bias:
            out["rel_pos_table"] = (((2 * self.bias_w - 1) ** 2 + 3 * self.cls_bias, h), "weight")
        return out

    def const_init(self, name):
        return 0.0 if name == "rel_pos_table" else None  # (the bias table starts at zero)

    def mac_terms(self) -> list[tuple[str, int, str]]:
        """(part, MACs, arithmetic) of Q, K, V projections, QKᵀ, AV and the output projection."""
        g, n, c, h, dk, dv, keys = self.groups, self.n, self.c, self.h, self.dk, self.dv, self.keys
        lead = f"{g}*" if g > 1 else ""
        terms = [("Q", g * n * c * h * dk, f"{lead}{n}*{c}*{h * dk}"),
                 ("K", g * n * c * h * dk, f"{lead}{n}*{c}*{h * dk}"),
                 ("V", g * n * c * h * dv, f"{lead}{n}*{c}*{h * dv}"),
                 ("QKᵀ", g * h * n * keys * dk, f"{lead}{h}*{n}*{keys}*{dk}"),
                 ("AV", g * h * n * keys * dv, f"{lead}{h}*{n}*{keys}*{dv}")]
        if self.args["proj"]:
            terms.append(("out", g * n * h * dv * self.out_c, f"{lead}{n}*{h * dv}*{self.out_c}"))
        return terms

    def macs(self):
        return sum(m for _, m, _ in self.mac_terms())

    def mac_parts(self) -> dict[str, int]:
        """This layer's MACs by the keys of ``summarize --by type``."""
        qk_av = sum(m for k, m, _ in self.mac_terms() if k in ("QKᵀ", "AV"))
        return {ATTENTION_PROJ: self.macs() - qk_av, ATTENTION_QK_AV: qk_av}

    def weight_grad_macs(self) -> int:
        """Training: the weight gradients are the projections' (QKᵀ and AV have no weights)."""
        return self.mac_parts()[ATTENTION_PROJ]

    def input_grad_macs(self, flows) -> int:
        """Training: the projections' input gradients, and two products each for QKᵀ (dQ, dK)
        and AV (dP, dV)."""
        return self.macs() + self.mac_parts()[ATTENTION_QK_AV]

    def scores(self) -> int:
        """Attention scores per sample: heads x N x keys (per group)."""
        return self.groups * self.h * self.n * self.keys

    def _ops(self):
        a = self.args
        g, n, h = self.groups, self.n, self.h
        bias = g * n * self._qkv_bias_width()
        if a["proj"] and a["proj_bias"]:
            bias += g * n * self.out_c
        adds = self.scores() * (int(self.rel_bias) + int(bool(a["shift"])))
        return {"bias": bias, "mul": g * n * h * self.dk, "activation": self.scores(), "add": adds}

    def _qkv_bias_width(self) -> int:
        """Bias values added to each token's q, k, v: h·(2·dk + dv), h·(dk + dv) with ``qv`` (the
        k part adds a fixed zero: no op), 0 without a bias."""
        b = self.args["qkv_bias"]
        return self.h * ((self.dk + self.dv) if b == QV else (2 * self.dk + self.dv) if b else 0)

    def internal_activations(self) -> int:
        """Values the layer writes inside (and PyTorch's unfused attention saves for backward):
        q, k, v, the scores and the softmax probabilities, the heads' output."""
        g, n, h = self.groups, self.n, self.h
        return g * n * h * (2 * self.dk + self.dv) + 2 * self.scores() + g * n * h * self.dv

    # -- explanations ---------------------------------------------------------------------
    def explain_params(self, with_bias=True):
        a, c, h = self.args, self.c, self.h
        qkv = h * (2 * self.dk + self.dv)
        bias = ""
        if with_bias and a["qkv_bias"] == QV:
            bias = f" + q bias {h * self.dk} + v bias {h * self.dv}"
        elif with_bias and a["qkv_bias"]:
            bias = f" + {qkv}"
        parts = [f"qkv {c}*{qkv}" + bias]
        if a["proj"]:
            parts.append(f"proj {h * self.dv}*{self.out_c}" + (f" + {self.out_c}" if a["proj_bias"] and with_bias else ""))
        if self.rel_bias:
            parts.append(f"relative position bias ((2*{self.bias_w} − 1)^2 + 3 class-token rows)*{h}" if self.cls_bias
                         else f"relative position bias (2*{self.bias_w} − 1)^2*{h}")
        total = sum(numel(s) for s, r in self.param_shapes().values() if with_bias or r == "weight")
        return " + ".join(parts) + f" = {fmt_int(total)}"

    def explain_macs(self):
        terms = self.mac_terms()
        return " + ".join(f"{k} {e}" for k, _, e in terms) + f" = {fmt_int(self.macs())}"

    def explain_ops(self):
        o = self.ops()
        g = f"{self.groups}*" if self.groups > 1 else ""
        sc = f"{g}{self.h}*{self.n}*{self.keys} = {fmt_int(self.scores())}"
        out = [f"scale {g}{self.n}*{self.h * self.dk} = {fmt_int(o['mul'])} mul", f"softmax {sc} activation"]
        if self.rel_bias:
            out.append(f"relative position bias {sc} add")
        if self.args["shift"]:
            out.append(f"shifted-window mask {sc} add")
        if o.get("bias"):
            out.append(f"{fmt_int(o['bias'])} bias")
        return ", ".join(out)

    def explain_memory(self) -> str:
        g, n, h = self.groups, self.n, self.h
        lead = f"{g}*" if g > 1 else ""
        return (f"inside: q, k, v {lead}{n}*{h}*({self.dk} + {self.dk} + {self.dv}) + scores and probabilities "
                f"2*{lead}{h}*{n}*{self.keys} + heads' output {lead}{n}*{h * self.dv} = "
                f"{fmt_int(self.internal_activations())}")

    def describe(self):
        s = f"attention {self.args['heads']}h"
        if self.window:
            s += f" w{self.window}" + (f"/s{self.args['shift']}" if self.args["shift"] else "")
        return s


# ----------------------------------------------------------------------------- MLP, merging, mean
class MLP(Layer):
    """The transformer's feed-forward block: linear C → ``hidden``, ``act`` (GELU), linear →
    ``dim`` (default C), applied to each token (timm's ``Mlp``)."""

    kind = "mlp"
    family = "attention"
    primary = "hidden"
    tensors = True
    takes_activation = False
    doc = "per-token MLP: linear C → hidden, act (gelu), linear → dim (default C); bias"
    fields = {"hidden": (_int_field(), REQUIRED), "dim": (_int_field(), None),
              "act": (as_activation, "gelu"), "bias": (as_bool, True)}

    def _infer(self, in_shapes, rounding):
        x = token_input(self, in_shapes[0])
        self.c, self.rows = x[-1], numel(x[:-1])
        self.hid, self.out_c = self.args["hidden"], self.args["dim"] or x[-1]
        self._notes.append(f"{'*'.join(map(str, x[:-1]))} tokens: {self.c} → {self.hid} → {self.out_c}")
        return Tensor((*x[:-1], self.out_c), (*x.roles[:-1], chan(self.out_c)), x.nsp)

    def param_shapes(self):
        out = {"fc1_weight": ((self.hid, self.c), "weight")}
        if self.args["bias"]:
            out["fc1_bias"] = ((self.hid,), "bias")
        out["fc2_weight"] = ((self.out_c, self.hid), "weight")
        if self.args["bias"]:
            out["fc2_bias"] = ((self.out_c,), "bias")
        return out

    def macs(self):
        return self.rows * (self.c * self.hid + self.hid * self.out_c)

    def _ops(self):
        b = self.rows * (self.hid + self.out_c) if self.args["bias"] else 0
        return {"bias": b, "activation": self.rows * self.hid if self.args["act"] else 0}

    def internal_activations(self) -> int:
        return self.rows * self.hid * (2 if self.args["act"] else 1)

    def explain_params(self, with_bias=True):
        b = self.args["bias"] and with_bias
        total = sum(numel(s) for s, r in self.param_shapes().values() if b or r == "weight")
        return (f"{self.c}*{self.hid}" + (f" + {self.hid}" if b else "") + f" + {self.hid}*{self.out_c}"
                + (f" + {self.out_c}" if b else "") + f" = {fmt_int(total)}")

    def explain_macs(self):
        return (f"{fmt_int(self.rows)} tokens * ({self.c}*{self.hid} + {self.hid}*{self.out_c}) = "
                f"{fmt_int(self.macs())}")

    def explain_memory(self) -> str:
        return (f"inside: hidden {fmt_int(self.rows)}*{self.hid}" + (" before and after the activation" if
                                                                   self.args["act"] else "")
                + f" = {fmt_int(self.internal_activations())}")

    def describe(self):
        return f"mlp {self.c}-{self.hid}-{self.out_c}" if self.out_shape else "mlp"


class PatchMerging(Layer):
    """Swin's patch merging (timm's ``PatchMerging``): each 2x2 group of tokens of the H x W grid
    concatenated (4C), LayerNorm over the 4C, a linear 4C → ``channels`` (default 2C) without
    bias: H/2·W/2 tokens."""

    kind = "patch_merging"
    family = "attention"
    primary = "channels"
    tensors = True
    takes_activation = False
    doc = "Swin patch merging: 2x2 tokens → 4C, LayerNorm, linear to `channels` (2C) without bias"
    fields = {"channels": (_int_field(), None), "eps": (lambda v, n: float(v), 1e-5)}

    def _infer(self, in_shapes, rounding):
        x = token_input(self, in_shapes[0])
        if len(x) != 2:
            raise SpecError(f"patch_merging reads N x C tokens, got {fmt_shape(x)}")
        grid = _grid_of(x.roles[0])
        if grid is None or len(grid) != 2 or grid[0] % 2 or grid[1] % 2:
            raise SpecError(f"patch_merging needs tokens on an H x W grid of even sides, got {x[0]} tokens"
                            + (f" on {'x'.join(map(str, grid))}" if grid else ""))
        self.c = x[1]
        self.out_c = self.args["channels"] or 2 * self.c
        self.grid = (grid[0] // 2, grid[1] // 2)
        self.n = numel(self.grid)
        self._notes.append(f"{grid[0]}x{grid[1]} grid / 2x2 = {self.grid[0]}x{self.grid[1]} = {self.n} tokens of "
                           f"4*{self.c} = {4 * self.c} → {self.out_c}")
        return Tensor((self.n, self.out_c), (((0, self.grid[0]), (1, self.grid[1])), chan(self.out_c)), 2)

    def param_shapes(self):
        c4 = 4 * self.c
        return {"norm_gamma": ((c4,), "weight"), "norm_beta": ((c4,), "bias"),
                "weight": ((self.out_c, c4), "weight")}

    def const_init(self, name):
        return {"norm_gamma": 1.0, "norm_beta": 0.0}.get(name)  # (a LayerNorm starts as the identity)

    def macs(self):
        return self.n * 4 * self.c * self.out_c

    def _ops(self):
        return {"norm": 5 * self.n * 4 * self.c}

    def rf_windows(self):
        return [Window(2, 2, 0, 0)] * 2

    def internal_activations(self) -> int:
        return 2 * self.n * 4 * self.c  # the merged 4C tokens, then normalised

    def explain_params(self, with_bias=True):
        c4 = 4 * self.c
        total = c4 * self.out_c + c4 + (c4 if with_bias else 0)
        return f"LayerNorm γ {c4}" + (f" + β {c4}" if with_bias else "") + f" + {c4}*{self.out_c} = {fmt_int(total)}"

    def explain_macs(self):
        return f"{fmt_int(self.n)} tokens * {4 * self.c}*{self.out_c} = {fmt_int(self.macs())}"

    def explain_memory(self) -> str:
        return f"inside: 4C tokens before and after the LayerNorm 2*{self.n}*{4 * self.c} = " \
               f"{fmt_int(self.internal_activations())}"

    def describe(self):
        return f"patch merging → {self.out_c}" if self.out_shape else "patch merging"


class TokenMean(Layer):
    """The mean over the tokens (a global average pool of tokens: DeiT without its class token,
    Swin's head): N x C → [C]; (N − 1)·C ``pool`` ops, as a global average pool counts them."""

    kind = "mean"
    family = "pool"
    tensors = True
    takes_activation = False
    doc = "mean over the tokens: N x C → [C] (a global average pool of tokens)"

    def _infer(self, in_shapes, rounding):
        x = token_input(self, in_shapes[0])
        if len(x) != 2:
            raise SpecError(f"mean reads N x C tokens, got {fmt_shape(x)}",
                            hint="a mean over other axes is {reduce: mean, axes: [...]}")
        self.role = x.roles[0]
        self.nsp = x.nsp
        self._notes.append(f"mean of {x[0]} tokens, for each of {x[1]} channels")
        return (x[1],)

    def _ops(self):
        return {"pool": (self.in_shapes[0][0] - 1) * self.out_shape[0]}

    def explain_ops(self):
        n, c = self.in_shapes[0]
        return f"({n} − 1)*{c} = {fmt_int((n - 1) * c)} pool"

    def rf_windows(self):
        if self.role is None:
            return GLOBAL
        return effects_of([(self.role, GLOBAL)]) or None

    def describe(self):
        return "mean of tokens"


__all__ = ["QV", "PatchEmbed", "Tokens", "ToImage", "ClsToken", "PosEmbed", "Attention", "MLP", "PatchMerging",
           "TokenMean", "token_input", "ATTENTION_QK_AV", "ATTENTION_PROJ"]
