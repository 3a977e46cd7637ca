"""Convolution workspace per algorithm: ``summarize --workspace``.

The extra memory (elements besides the input, the weights and the output) one convolution
needs, per algorithm, for a batch of N images of C_in channels, output H_o x W_o x C_out,
k_h x k_w kernels, stride s, groups g:

* **direct** (the lectures' seven loops): 0.
* **im2col**: the unfolded input, one column per output position and one row per weight of a
  filter: k_h·k_w·C_in/g rows per group, g groups → k_h·k_w·C_in × H_o·W_o per image, as the
  runtime's ``_im2col`` allocates ``(g, C/g·k_h·k_w, N·H_o·W_o)``.
* **Winograd F(2x2, 3x3)** (A. Lavin and S. Gray, "Fast Algorithms for Convolutional Neural
  Networks", CVPR 2016, section 4): 3x3 kernels, stride 1, dilation 1 only. The output is cut
  into 2x2 tiles, P = ⌈H_o/2⌉·⌈W_o/2⌉ per image, each read from a 4x4 input tile (α = m + r − 1
  = 4): the transformed data V is α²·C_in·P, the transformed filters U α²·C_out·C_in/g, and the
  products M (before the inverse transform) α²·C_out·P: 16·P·(C_in + C_out) per image + 16·C_out·C_in/g.
* **FFT** (as the runtime computes it): the padded input H_p x W_p is transformed at the next
  5-smooth sizes L_0 ≥ H_p, L_1 ≥ W_p (``numpy.fft.rfft2``: L_0 x (⌊L_1/2⌋ + 1) complex values per
  plane); the input spectra N·C_in, the filter spectra C_out·C_in/g, the product spectra N·C_out
  planes, and the real inverse transform N·C_out·L_0·L_1 before the valid part is cut out.
  A complex value is two reals.

The runtime's own choice is the rule of ``cnncalc.runtime.kernels.conv.choose_algo`` (restated
here: the analysis never imports the runtime): thin groups → its depthwise kernel, 3x3 stride-1
ungrouped convs with ≥ 16 channels in and out on planes of 16x16 and more (8x8 with ≥ 64) →
Winograd F(4x4, 3x3) a chunk of images at a time, stride 1 with
≥ 81 taps → FFT, else im2col in one of its variants (a 1x1 unpadded conv reads the input in
place, a window covering the whole input is one GEMM, wide stride-1 kernels unfold rows,
ungrouped convs on planes of 16x16 and more — 8x8 and more when the weights fit 256 KiB —
unfold a tile of images at a time, ≤ 512 KiB of columns, from a padded copy of the tile only).
The runtime pads a copy of the input for direct, FFT and the other im2col variants (C_in·H_p·W_p
per image).

The peak over the network is the largest single conv's workspace: each is freed when its
conv returns.
"""
from __future__ import annotations

from cnncalc.shapes import Tensor

WINOGRAD = "Lavin & Gray, \"Fast Algorithms for Convolutional Neural Networks\", CVPR 2016: F(2x2, 3x3)"


def fast_len(n: int) -> int:
    """The smallest 2,3,5-smooth integer >= n (the runtime's FFT sizes)."""
    m = max(int(n), 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


class ConvWorkspace:
    """One conv's geometry and workspace per algorithm (elements; None: not applicable)."""

    __slots__ = ("name", "description", "in_shape", "out_shape", "direct", "im2col", "winograd", "fft",
                 "fft_complex", "fft_real", "padded", "runtime", "runtime_algo", "runtime_detail", "explain",
                 "geometry")

    def to_dict(self, nbytes: int) -> dict:
        d = {k: getattr(self, k) for k in ("name", "description", "direct", "im2col", "winograd", "fft",
                                          "padded", "runtime", "runtime_algo", "runtime_detail")}
        d["in_shape"], d["out_shape"] = list(self.in_shape), list(self.out_shape)
        d["fft_complex"], d["fft_real"] = self.fft_complex, self.fft_real
        d["bytes"] = {k: (None if getattr(self, k) is None else getattr(self, k) * nbytes)
                      for k in ("direct", "im2col", "winograd", "fft", "padded", "runtime")}
        d["geometry"] = dict(self.geometry)
        return d


#: the runtime's im2col tiles (restated from cnncalc.runtime.kernels.conv: the analysis never
#: imports the runtime): bytes of columns per tile, the plane sizes that run tile by tile
TILE_BYTES, TILE_MIN_PLANE, TILE_SMALL_PLANE, TILE_SMALL_W_BYTES = 512 << 10, 256, 64, 256 << 10
#: a training forward of the tiled path keeps the batch's columns (for the weight gradient) when
#: they are at most this many bytes, else only a tile's (restated from the runtime's conv module)
TILE_KEEP_BYTES = 4 << 20
#: a training step (the runtime's ``Net.loss``) runs a batch larger than this as consecutive
#: sub-batches of this many samples, forward and backward each, unless a layer of one of these
#: kinds couples the samples (defined here and imported by the runtime's executor)
SUB_BATCH = 32
COUPLING_KINDS = ("batchnorm", "dropout")
#: the runtime's Winograd rule and chunks, defined here and imported by the runtime
#: (cnncalc.runtime.kernels.conv.winograd_pays, kernels/winograd.py): both channel counts at
#: least WINO_MIN_CHANNELS and an input plane of WINO_MIN_PLANE positions (16x16), or of
#: WINO_WIDE_PLANE (8x8) when both channel counts are WINO_WIDE_CHANNELS or more
WINO_MIN_CHANNELS, WINO_MIN_PLANE, WINO_WIDE_PLANE, WINO_WIDE_CHANNELS = 16, 256, 64, 64
#: bytes of one chunk's transformed input and output (V and M) together
WINO_CHUNK_BYTES = 1 << 20


#: what one conv of the runtime keeps from its training forward for its backward, at most: the
#: im2col columns or the Winograd transformed input of a layer larger than this are made again in
#: backward (cnncalc.runtime.kernels.conv)
KEEP_BYTES = 64 << 20


def winograd_size_pays(channels: int, plane: int) -> bool:
    """The size part of the runtime's Winograd rule: ``channels`` = min(in, out), ``plane`` =
    the input's H*W (the 3x3 stride-1 ungrouped part is the caller's)."""
    return channels >= WINO_MIN_CHANNELS and (
        plane >= WINO_MIN_PLANE or (plane >= WINO_WIDE_PLANE and channels >= WINO_WIDE_CHANNELS))


def winograd_chunk(N: int, C: int, F: int, tiles: int, nbytes: int, alpha: int = 6) -> int:
    """Images per Winograd chunk: as many as keep ``alpha^2 * (C + F) * tiles`` transformed values
    per image within WINO_CHUNK_BYTES, at least one, at most N."""
    return max(1, min(N, WINO_CHUNK_BYTES // max(1, alpha * alpha * (C + F) * tiles * nbytes)))
#: depthwise output planes of at most this many positions run as numpy passes (kernels/depthwise.py)
TINY_PLANE = 16


def conv_workspace(layer, batch: int = 1, nbytes: int = 4, runtime_batch: int | None = None
                   ) -> ConvWorkspace | None:
    """The workspace of one inferred conv / dwconv layer (None for 3-D convolutions and
    layers on tokens or tensors, which these algorithms do not cover); ``nbytes`` per element
    sets how many images the runtime's im2col tiles hold. ``runtime_batch``: the runtime column
    for a training step that runs the batch as sub-batches of this many samples (:func:`workspace`)."""
    x, y = layer.in_shapes[0], layer.out_shape
    if x.__class__ is Tensor or len(x) not in (2, 3):
        return None
    if len(x) == 2:  # a signal L x C runs as a 1 x L image (the runtime's conv1d)
        H, W, C = 1, x[0], x[1]
        OH, OW = 1, y[0]
        (kh, kw), (sh, sw), (dh, dw) = (1, layer.kernel[0]), (1, layer.stride[0]), (1, layer.dilation[0])
        (pt, pb), (pl, pr) = (0, 0), layer.pad[0]
    else:
        H, W, C = x
        OH, OW = y[0], y[1]
        kh, kw = layer.kernel
        sh, sw = layer.stride
        dh, dw = layer.dilation
        (pt, pb), (pl, pr) = layer.pad
    # the runtime's kernels round down: a ceil-rounded conv gets the extra high padding that
    # makes floor give its size (cnncalc.runtime.executor._sizes)
    pb += max(0, (OH - 1) * sh + dh * (kh - 1) + 1 - (H + pt + pb))
    pr += max(0, (OW - 1) * sw + dw * (kw - 1) + 1 - (W + pl + pr))
    F, g = y[-1], layer.groups
    Cg = C // g
    N = batch
    Hp, Wp = H + pt + pb, W + pl + pr
    padded = N * C * Hp * Wp if pt or pb or pl or pr else 0
    r = ConvWorkspace()
    r.name, r.description = layer.name, layer.describe()
    r.in_shape, r.out_shape = tuple(x), tuple(y)
    r.geometry = {"N": N, "C_in": C, "C_out": F, "groups": g, "kernel": [kh, kw], "stride": [sh, sw],
                  "dilation": [dh, dw], "H": H, "W": W, "H_out": OH, "W_out": OW, "H_pad": Hp, "W_pad": Wp}
    r.padded = padded
    r.direct = 0
    r.im2col = N * kh * kw * C * OH * OW
    ex = [f"im2col: {kh}*{kw}*{C} rows x {OH}*{OW} columns" + (f" x {N} images" if N > 1 else "")
          + f" = {r.im2col:,}" + (f" (g = {g} groups of {kh}*{kw}*{Cg} rows)" if g > 1 else "")]
    if (kh, kw, sh, sw, dh, dw) == (3, 3, 1, 1, 1, 1):
        P = -(-OH // 2) * -(-OW // 2)
        V, U, M = 16 * C * P * N, 16 * F * Cg, 16 * F * P * N
        r.winograd = V + U + M
        ex.append(f"Winograd F(2x2,3x3): tiles ceil({OH}/2)*ceil({OW}/2) = {P:,} per image; "
                  f"V 16*{C}*{P}{f'*{N}' if N > 1 else ''} + U 16*{F}*{Cg} + M 16*{F}*{P}{f'*{N}' if N > 1 else ''}"
                  f" = {V:,} + {U:,} + {M:,} = {r.winograd:,}")
    else:
        r.winograd = None
        ex.append("Winograd F(2x2,3x3): not applicable (3x3 kernels, stride 1, dilation 1 only)")
    L0, L1 = fast_len(Hp), fast_len(Wp)
    half = L1 // 2 + 1
    planes = N * C + F * Cg + N * F
    r.fft_complex = planes * L0 * half
    r.fft_real = N * F * L0 * L1
    r.fft = 2 * r.fft_complex + r.fft_real
    ex.append(f"FFT: padded {Hp}x{Wp} -> 5-smooth {L0}x{L1}, rfft2 planes {L0}x{half} complex; "
              f"({N}*{C} input + {F}*{Cg} filter + {N}*{F} product) planes * {L0 * half:,} = "
              f"{r.fft_complex:,} complex = {2 * r.fft_complex:,} reals, + inverse {N}*{F}*{L0}*{L1} = "
              f"{r.fft_real:,} reals; total {r.fft:,}")
    # the runtime's choice (cnncalc.runtime.kernels.conv.choose_algo and _conv_nobias), for the
    # samples one call of it runs: the batch, or a sub-batch of it
    pads = pt or pb or pl or pr
    N = batch if runtime_batch is None else runtime_batch
    if N != batch:
        padded = N * C * Hp * Wp if pads else 0
        im2col = N * kh * kw * C * OH * OW
        fft = 2 * (N * C + F * Cg + N * F) * L0 * half + N * F * L0 * L1
    else:
        im2col, fft = r.im2col, r.fft
    if g > 1 and Cg == 1 and F == g and OH * OW <= TINY_PLANE:
        Hn, Wn = (OH - 1) * sh + (kh - 1) * dh + 1, (OW - 1) * sw + (kw - 1) * dw + 1
        r.runtime_algo = "depthwise"
        r.runtime = N * C * (Hn * Wn + 3 * OH * OW)
        r.runtime_detail = (f"tiny planes, channels-last passes: padded input {N}*{C}*{Hn}*{Wn} + accumulator "
                            f"and two temporaries 3*{N}*{C}*{OH}*{OW}")
    elif g > 1 and Cg * (F // g) <= 32:
        Wq = OW + ((kw - 1) * dw) // sw
        Hq = OH + ((kh - 1) * dh) // sh + 1
        per_task = OH * Wq + sh * sw * Hq * Wq
        r.runtime_algo = "depthwise"
        r.runtime = per_task
        r.runtime_detail = (f"per running thread: wide output row grid {OH}*{Wq} + phase planes "
                            f"{sh}*{sw}*{Hq}*{Wq} = {per_task:,} (no padded copy)")
    elif (kh, kw, sh, sw, dh, dw, g) == (3, 3, 1, 1, 1, 1, 1) and winograd_size_pays(min(C, F), H * W):
        TH, TW = -(-OH // 4), -(-OW // 4)
        T = winograd_chunk(N, C, F, TH * TW, nbytes)
        Hb, Wb = 4 * TH + 2, 4 * TW + 2
        # a training forward keeps V of the whole batch for the weight gradient (up to KEEP_BYTES)
        kept = 36 * C * N * TH * TW * nbytes <= KEEP_BYTES
        Nv = N if kept else T
        xb, V, M, U = T * C * Hb * Wb, 36 * C * Nv * TH * TW, 36 * F * T * TH * TW, 36 * F * C
        r.runtime_algo = "winograd"
        r.runtime = xb + V + M + U
        r.runtime_detail = (f"F(4x4,3x3) on a chunk of {T} image{'s' if T > 1 else ''}: padded to whole tiles "
                            f"{T}*{C}*{Hb}*{Wb} = {xb:,} + V 36*{C}*{Nv}*{TH}*{TW} = {V:,}"
                            + (" (the batch's, kept for the weight gradient)" if kept else "")
                            + f" + M 36*{F}*{T}*{TH}*{TW} = {M:,} + U 36*{F}*{C} = {U:,}")
    else:
        one_by_one = H - (kh - 1) * dh <= sh and W - (kw - 1) * dw <= sw
        if kh * kw >= 81 and sh == 1 and sw == 1 and not one_by_one:
            r.runtime_algo = "fft"
            r.runtime = fft + padded
            r.runtime_detail = f"FFT {fft:,}" + (f" + padded copy {padded:,}" if padded else "")
        else:
            r.runtime_algo = "im2col"
            if g == 1 and (dh, dw) == (1, 1) and not pads and (H, W) == (kh, kw):
                r.runtime, r.runtime_detail = 0, "the window covers the whole input: one GEMM on the input itself"
            elif kh == kw == 1 and g == 1 and not pads:
                r.runtime = 0 if (sh, sw) == (1, 1) else N * C * OH * OW
                r.runtime_detail = ("1x1: the GEMM reads the input in place" if not r.runtime else
                                    f"1x1 strided: the input at the strided positions {N}*{C}*{OH}*{OW} = {r.runtime:,}")
            elif (sh, sw) == (1, 1) and g == 1 and kw >= 5 and C * kh >= 64:
                R, G = N * C * kh * OH * Wp, N * F * kw * OH * Wp
                r.runtime = R + G + padded
                r.runtime_detail = (f"row unfold {N}*{C}*{kh}*{OH}*{Wp} = {R:,} + GEMM rows {N}*{F}*{kw}*{OH}*{Wp} = "
                                    f"{G:,}" + (f" + padded copy {padded:,}" if padded else ""))
            elif g == 1 and (OH * OW >= TILE_MIN_PLANE
                             or (OH * OW >= TILE_SMALL_PLANE and F * C * kh * kw * 4 <= TILE_SMALL_W_BYTES)):
                Kc, P = C * kh * kw, OH * OW
                T = max(1, min(N, TILE_BYTES // (Kc * P * nbytes)))
                tpad = T * C * Hp * Wp if padded else 0
                kept = N * Kc * P * nbytes <= TILE_KEEP_BYTES
                Nc = N if kept else T
                r.runtime = Nc * Kc * P + tpad
                r.runtime_detail = ((f"columns of the batch {N}*{Kc}*{P} (kept for the weight gradient), "
                                     f"unfolded a tile of {T} image{'s' if T > 1 else ''} at a time") if kept else
                                    f"columns of a tile of {T} image{'s' if T > 1 else ''} {T}*{Kc}*{P}")
                r.runtime_detail += f" + the tile padded {T}*{C}*{Hp}*{Wp} = {tpad:,}" if tpad else ""
            else:
                r.runtime = im2col + padded
                r.runtime_detail = f"columns {im2col:,}" + (f" + padded copy {padded:,}" if padded else "")
    if N != batch:
        r.runtime_detail = (f"per sub-batch of {N} (a training step runs a batch of {batch} as "
                            f"sub-batches: no layer couples its samples): {r.runtime_detail}")
    runtime = [f"runtime: {r.runtime_algo}: {r.runtime_detail} = {r.runtime:,}"]
    copy = ([f"padded copy (direct, im2col, FFT in the runtime): {batch}*{C}*{Hp}*{Wp} = {r.padded:,}"]
            if r.padded else [])
    ex += runtime + copy if N == batch else copy + runtime  # (a sub-batch's runtime line last)
    r.explain = ex
    return r


class WorkspaceReport:
    def __init__(self, name, source, batch, dtype, nbytes, rows, skipped):
        self.name, self.source, self.batch, self.dtype, self.nbytes = name, source, batch, dtype, nbytes
        self.rows, self.skipped = rows, skipped

    def peaks(self) -> dict:
        """Algorithm → (elements, layer) of the largest workspace over the convs."""
        out = {}
        for k in ("direct", "im2col", "winograd", "fft", "runtime"):
            best = None
            for r in self.rows:
                v = getattr(r, k)
                if v is not None and (best is None or v > best[0]):
                    best = (v, r.name)
            out[k] = best or (0, None)
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "batch": self.batch, "dtype": self.dtype,
                "bytes_per_element": self.nbytes, "winograd": WINOGRAD,
                "layers": [r.to_dict(self.nbytes) for r in self.rows],
                "peak": {k: {"elements": v, "bytes": v * self.nbytes, "layer": n}
                         for k, (v, n) in self.peaks().items()},
                "skipped": list(self.skipped)}


def workspace(graph, *, batch: int = 1, nbytes: int = 4, dtype: str = "float32", input_shape=None) -> WorkspaceReport:
    graph.infer(input_shape)
    rows, skipped = [], []
    # the runtime column is a training step's: over SUB_BATCH samples it runs sub-batches
    sub = (SUB_BATCH if batch > SUB_BATCH and not any(n.kind in COUPLING_KINDS for n in graph.layers)
           else batch)
    for node in graph.nodes.values():
        if node.layer is None or node.kind not in ("conv", "dwconv", "deconv", "local"):
            continue
        r = conv_workspace(node.layer, batch, nbytes, sub) if node.kind in ("conv", "dwconv") else None
        if r is None:
            skipped.append(node.name)
        else:
            rows.append(r)
    return WorkspaceReport(graph.name, graph.source, batch, dtype, nbytes, rows, skipped)
