"""``verify``: run the network and check every number the analyzer claims.

* **shape** — each layer's output shape in the runtime against ``Report[layer].shape``;
* **params / state** — the elements the executor allocated (from ``param_shapes()`` /
  ``state_shapes()``) against the report's per-layer and total counts;
* **activation bytes** — the bytes of each layer's output buffer actually held after a
  float32 forward pass of the batch (0 when the output is a view of its input) against
  ``activation_bytes``, and their sums against ``forward_bytes`` and (with the input)
  ``backward_saved_bytes`` — less what the analyzer counts *inside* layers (attention's q, k,
  v, scores and probabilities, an MLP's hidden layer: ``internal``), which are not layer
  outputs and are named in the note, not measured; kernel caches beyond the outputs (max-pool argmax, BN x̂,
  dropout masks) are reported, not compared: the analyzer does not claim them;
* **receptive field** — a linearised float32 copy (identity activations, average pooling for
  max, positive weights) back-propagates a one-hot gradient from one position of the layer
  (every channel) to the input; the bounding box of the non-zero input gradient must equal
  ``unit_field(...).support`` (the hull of the pixels reached by taps that land on real
  units at every layer; taps in the padding see zeros) and no pixel may lie outside it. Units: the centre and the two
  corners (``rf_units``: centre | corners | all = the four corners) of every layer except
  single-input pointwise ones (their field is their input's; ``rf_every_layer`` checks them
  too), all units of a layer in one backward pass, one per batch item. A pass ends where its
  gradient is a positive combination of units measured before and takes the union of their
  supports (:func:`check_fields`), or where its support at a layer read by several layers is
  one a pass met there before and takes what that one measured (:class:`_Memo`); every
  gradient is kept inside a band where float32 cannot
  lose or invent a non-zero, else the layer is redone in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnncalc.analysis.report import analyze_graph
from cnncalc.analysis.rf import receptive_fields, unit_field
from cnncalc.graph import INPUT
from cnncalc.runtime._numba import njit
from cnncalc.runtime.executor import Net, random_input
from cnncalc.runtime.kernels.conv import ConvCache, conv2d_data_grad
from cnncalc.runtime.kernels.pool import avgpool2d_backward_window
from cnncalc.shapes import fmt_shape


@dataclass
class Item:
    layer: str
    check: str
    claimed: object
    measured: object
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.claimed == self.measured

    def to_dict(self):
        def j(v):
            return list(v) if isinstance(v, tuple) else v
        return {"layer": self.layer, "check": self.check, "claimed": j(self.claimed),
                "measured": j(self.measured), "ok": self.ok, **({"note": self.note} if self.note else {})}


def _root(a):
    while isinstance(getattr(a, "base", None), np.ndarray):
        a = a.base
    return a


def _owned_bytes(y, xs) -> int:
    """Bytes of the buffer a layer's output keeps alive; 0 for a view of an input."""
    if any(np.shares_memory(y, x) for x in xs):
        return 0
    return _root(y).nbytes


def check_counts_and_memory(graph, *, batch=2, conv_algo="auto", seed=0, report=None):
    report = report or analyze_graph(graph, batch=batch, dtype="float32")
    nbytes = report.memory["bytes_per_element"]
    net = Net(graph, dtype="float32", conv_algo=conv_algo, seed=seed, init="fast")  # values do not matter here
    items: list[Item] = []
    for node in graph.layers:
        row = report[node.name]
        items.append(Item(node.name, "params", row.params, net.param_count(node.name)))
        if row.nontrainable or net.state_count(node.name):
            items.append(Item(node.name, "state", row.nontrainable, net.state_count(node.name)))
    x = random_input(graph.input_shape, batch, np.random.default_rng(seed), "float32")
    net.forward(x, train=False, keep=True)
    vals = net.outputs_seen
    fwd = 0
    known = {id(_root(vals[INPUT]))}
    inside_claimed = 0  # values the analyzer counts inside layers (attention's q, k, v, scores...)
    for node in graph.layers:
        row = report[node.name]
        y = vals[node.name]
        items.append(Item(node.name, "shape", tuple(row.shape), net.sample_shape(node.name, y)))
        owned = _owned_bytes(y, [vals[s] for s in node.inputs])
        items.append(Item(node.name, "activation bytes", row.activation_bytes if not row.view else 0, owned,
                          "a view of its input" if row.view else ""))
        fwd += owned
        known.add(id(_root(y)))
        inside_claimed += row.internal * nbytes
    for d in net.params.values():
        known.update(id(_root(a)) for a in d.values())
    extra: dict[int, int] = {}
    for a in net.cache_arrays():
        r = _root(a)
        if id(r) not in known:
            extra[id(r)] = r.nbytes
    t, m = report.totals, report.memory
    # the analyzer's totals count what layers write inside them too (attention's q, k, v, scores
    # and probabilities, an MLP's hidden layer): written and freed (or cached) within the layer,
    # they are not layer outputs and are not measured here; the layer outputs are compared
    note = (f"layer outputs; the analyzer's total adds {inside_claimed:,} B written inside layers "
            "(attention's q, k, v, scores; not measured)" if inside_claimed else "")
    items += [
        Item("(total)", "params", t["trainable"], net.param_count()),
        Item("(total)", "state", t["nontrainable"], net.state_count()),
        Item("(total)", "forward bytes", m["forward_bytes"] - inside_claimed, fwd, note),
        Item("(total)", "backward saved bytes", m["backward_saved_bytes"] - inside_claimed,
             fwd + vals[INPUT].nbytes, note),
    ]
    info = {"kernel_cache_bytes": sum(extra.values()), "batch": batch, "dtype": "float32",
            "inside_bytes": inside_claimed}
    return items, info


def _support_box(g):
    """Per axis (lo, hi) of the non-zero entries of a (C, H, W) / (C, 1, L) gradient, and the mask."""
    mask = np.any(g != 0, axis=0)
    box = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        nz = np.nonzero(np.any(mask, axis=other) if other else mask)[0]
        box.append((int(nz[0]), int(nz[-1])) if len(nz) else None)
    return tuple(box), mask


RF_UNITS = ("centre", "corners", "all")


def _units(ns, which):
    """The units of a layer whose field is checked: centre; + the two corners; or all corners too."""
    picks = {tuple(n // 2 for n in ns)}
    if which in ("corners", "all"):
        picks |= {tuple(0 for _ in ns), tuple(n - 1 for n in ns)}
    if which == "all" and len(ns) == 2:
        picks |= {(0, ns[1] - 1), (ns[0] - 1, 0)}
    return sorted(picks)


def field_layers(graph, every=False):
    """The layers whose field is checked: all but single-input pointwise layers (activations,
    BN, dropout, channel shuffle/split, ...), whose field is their input's and is checked there.
    Merges, windowed and global layers, and the outputs, are always checked."""
    out = []
    for node in graph.layers:
        if node.shape.__class__ is not tuple:  # tokens, tensors: checked where they are images again
            continue
        if not node.inputs:  # a layer of constants only (inputs: []): it sees no pixel
            continue
        pointwise = node.layer.rf_windows() is None and len(node.inputs) == 1 and node.kind != "flatten"
        if every or not pointwise or node.name in graph.outputs:
            out.append(node)
    return out


def _seed(shape, node, nd, in_shape, picks):
    """One-hot gradients at ``picks`` of ``node`` (every channel of the unit), one unit per
    batch item: shape (len(picks), *shape). A flatten layer's units are its input's positions."""
    if len(shape) == 1 and node.kind == "flatten" and len(in_shape) >= 3:
        d4 = np.zeros((len(picks), *in_shape), np.float32)  # flatten is pointwise: C-major position
        for b, unit in enumerate(picks):
            if d4.ndim == 5:
                d4[(b, slice(None), *unit)] = 1.0
            else:
                d4[b, :, unit[0] if len(unit) == 2 else 0, unit[-1]] = 1.0
        return d4.reshape(len(picks), *shape)
    d = np.zeros((len(picks), *shape), np.float32)
    for b, unit in enumerate(picks):
        if len(shape) == 1:
            d[b, :] = 1.0
        elif nd == 1:
            d[b, :, 0, unit[-1]] = 1.0
        else:  # 2-D and 3-D: every spatial index of the unit
            d[(b, slice(None), *unit)] = 1.0
    return d


#: per dtype, the band every gradient value of a field pass must stay in: a non-zero value
#: of at least ``lo`` times a coefficient of the linear copy (weights >= 0.5/fan_in, pooling
#: and resampling shares, BN scale) — up to four of them in one layer, each >= 2^-20 — is
#: still non-zero, and a value of at most ``hi`` times such coefficients (<= 2^20) stays finite
_BAND = {"float32": (2.0 ** -60, 2.0 ** 60), "float64": (2.0 ** -500, 2.0 ** 500)}


class _TooNarrow(Exception):
    """A field pass left the dtype's safe band (:data:`_BAND`): redo it in float64."""


@njit
def _band_stats(v, big):
    """Over ``v``, a float array viewed as signed integers of its width (for floats >= +0 the
    integer order is the float order; -0, negatives and negative NaNs are negative integers,
    +inf and positive NaNs above every finite float): the smallest and largest entry, and the
    smallest positive one (``big`` if none). Integer reductions: one vectorised pass."""
    mn = v[0]
    mx = v[0]
    mp = big
    for i in range(v.size):
        x = v[i]
        mn = min(mn, x)
        mx = max(mx, x)
        mp = min(mp, x if x > 0 else big)
    return mn, mx, mp


def _check_band(g, dtype):
    """Raise :class:`_TooNarrow` unless every entry of ``g`` is +0 or within the safe band
    (none negative: the linear copy has no negative coefficient, so nothing can cancel)."""
    if not g.size:
        return
    lo, hi = _BAND[dtype]
    it = np.int32 if g.dtype == np.float32 else np.int64
    big = np.iinfo(it).max
    mn, mx, mp = _band_stats(np.ascontiguousarray(g).reshape(-1).view(it), it(big))
    bits = lambda x: int(np.array(x, g.dtype).view(it))  # noqa: E731
    if mn < 0 or mx > bits(hi) or (mp != big and mp < bits(lo)):
        raise _TooNarrow


@njit
def _scan(v, big):
    """One pass over ``v``, a gradient (N, C, H, W) viewed as signed integers of its width
    (see :func:`_band_stats`): the smallest and largest entry and the smallest positive one
    (``big`` if none), and per batch row the bounding box (h0, h1, w0, w1) of its non-zero
    entries over every channel ((-1, -1, -1, -1) for a row without any)."""
    N, C, H, W = v.shape
    mn = v[0, 0, 0, 0]
    mx = mn
    mp = big
    boxes = np.full((N, 4), -1, np.int64)
    for n in range(N):
        h0, h1, w0, w1 = H, -1, W, -1
        for c in range(C):
            for h in range(H):
                rmn = v[n, c, h, 0]
                rmx = rmn
                for w in range(W):
                    x = v[n, c, h, w]
                    rmn = min(rmn, x)
                    rmx = max(rmx, x)
                    mp = min(mp, x if x > 0 else big)
                mn = min(mn, rmn)
                mx = max(mx, rmx)
                if rmn != 0 or rmx != 0:  # a non-zero in this row: its first and last
                    h0 = min(h0, h)
                    h1 = max(h1, h)
                    a = 0
                    while v[n, c, h, a] == 0:
                        a += 1
                    b = W - 1
                    while v[n, c, h, b] == 0:
                        b -= 1
                    w0 = min(w0, a)
                    w1 = max(w1, b)
        if h1 >= 0:
            boxes[n, 0], boxes[n, 1], boxes[n, 2], boxes[n, 3] = h0, h1, w0, w1
    return mn, mx, mp, boxes


def _scan_grad(g, dtype, band):
    """The bounding boxes of ``g``'s rows (as :func:`_scan`; ``g`` of any rank is read as
    (N, 1, 1, rest) unless it is (N, C, H, W)), checking the band on the way: raise
    :class:`_TooNarrow` (when ``band``) unless every entry is +0 or within the dtype's band."""
    it = np.int32 if g.dtype == np.float32 else np.int64
    big = np.iinfo(it).max
    v = np.ascontiguousarray(g).view(it)
    v = v if v.ndim == 4 else v.reshape(v.shape[0], 1, 1, -1)
    if not v.size:
        return np.full((len(v), 4), -1, np.int64)
    mn, mx, mp, boxes = _scan(v, it(big))
    if band:
        lo, hi = _BAND[dtype]
        bits = lambda x: int(np.array(x, g.dtype).view(it))  # noqa: E731
        if mn < 0 or mx > bits(hi) or (mp != big and mp < bits(lo)):
            raise _TooNarrow
    return boxes


def _window_plan(boxes, OH, OW):
    """How to run a conv's data gradient on the non-zero windows of its output gradient: a
    list of (row slice, (h0, h1, w0, w1)) — the whole batch in the union of the rows' boxes,
    or each row in its own box when that is at most half the work — or None when the window
    is (nearly) the whole map and the plain backward is as cheap."""
    live = [(r, b) for r, b in enumerate(boxes.tolist()) if b[1] >= 0]
    if not live:
        return []
    area = lambda b: (b[1] - b[0] + 1) * (b[3] - b[2] + 1)  # noqa: E731
    union = (min(b[0] for _, b in live), max(b[1] for _, b in live),
             min(b[2] for _, b in live), max(b[3] for _, b in live))
    whole = len(boxes) * OH * OW
    one = len(boxes) * area(union)
    split = sum(area(b) for _, b in live)
    if min(one, split) > 0.7 * whole:
        return None
    if split <= 0.5 * one:
        return [(slice(r, r + 1), tuple(b)) for r, b in live]
    return [(slice(None), union)]


def _conv_dx_windowed(op, g, boxes):
    """A 2-D convolution's data gradient computed only where it can be non-zero: for each
    window of ``g`` (:func:`_window_plan`), the runtime's data-gradient kernel on a virtual
    input holding exactly the rows and columns the window's taps reach (no padding: taps in
    the padding are the rows that fall outside the real input, dropped), pasted into a zero
    gradient. Outside the windows ``g`` is zero, so the result equals the whole-map data
    gradient. None when the plain backward is as cheap or the geometry is not the floor rule."""
    C, H, W = op.x.shape[1:]
    kh, kw = op.w.shape[2:]
    (sh, sw), (dh, dw) = op.stride, op.dilation
    (pt, pb), (pl, pr) = op.pads
    OH, OW = g.shape[2:]
    if (OH != (H + pt + pb - dh * (kh - 1) - 1) // sh + 1 or OW != (W + pl + pr - dw * (kw - 1) - 1) // sw + 1):
        return None
    plan = _window_plan(boxes, OH, OW)
    if plan is None:
        return None
    dx = np.zeros((g.shape[0], *op.x.shape[1:]), g.dtype)
    for rows, (h0, h1, w0, w1) in plan:
        r0, c0 = h0 * sh - pt, w0 * sw - pl
        hv, wv = (h1 - h0) * sh + dh * (kh - 1) + 1, (w1 - w0) * sw + dw * (kw - 1) + 1
        dyc = np.ascontiguousarray(g[rows, :, h0:h1 + 1, w0:w1 + 1])
        dxv = conv2d_data_grad(dyc, op.w, (dyc.shape[0], C, hv, wv), op.stride, 0, op.dilation, op.groups, op.algo)
        a, b, c, d = max(r0, 0), min(r0 + hv, H), max(c0, 0), min(c0 + wv, W)
        if a < b and c < d:
            dx[rows, :, a:b, c:d] = dxv[:, :, a - r0:b - r0, c - c0:d - c0]
    return dx


def _pool_dx_windowed(net, node, op, g, boxes):
    """An average pooling's data gradient (the linear copy's max pooling too) on the windows
    of ``g`` (:func:`_window_plan`; the whole map when that is as cheap) by the runtime's
    :func:`avgpool2d_backward_window`, pasted into a zero gradient: the same numbers as the
    whole-map backward. None for a cache that function does not take."""
    OH, OW = g.shape[2:]
    plan = _window_plan(boxes, OH, OW)
    if plan is None:
        plan = [(slice(None), (0, OH - 1, 0, OW - 1))]
    dx = np.zeros((g.shape[0], *net.outputs_seen[node.inputs[0]].shape[1:]), g.dtype)
    for rows, (h0, h1, w0, w1) in plan:
        got = avgpool2d_backward_window(g[rows, :, h0:h1 + 1, w0:w1 + 1], op, (h0, h1), (w0, w1))
        if got is None:
            return None
        dxv, (r0, c0) = got
        dx[rows, :, r0:r0 + dxv.shape[2], c0:c0 + dxv.shape[3]] = dxv
    return dx


#: what :func:`_data_grads` differentiates itself from a layer's cache of any batch size
_OWN = {"conv": "conv", "dwconv": "conv", "maxpool": "pool", "avgpool": "pool"}


def _own(net, node, cache):
    """'conv' for a (1-D or 2-D) convolution run as conv2d, 'pool' for a 1-D or 2-D max or
    average pooling (average in the linear copy), without a fused activation: the layers
    :func:`_data_grads` differentiates itself (from the weight and the geometry alone); else None."""
    kind = _OWN.get(node.layer.kind)
    if kind is None or cache[1] is not None:
        return None
    if kind == "conv":
        op = cache[0]
        return kind if op.__class__ is ConvCache and op.x.ndim == 4 else None
    return kind if net.nd[node.inputs[0]] in (1, 2) and net.linear else None


def _data_grads(net, node, g, cache, boxes):
    """The input gradients of ``node`` from ``g`` (data gradients only; ``boxes``: its rows'
    non-zero boxes, :func:`_scan_grad`): a 2-D convolution or average pooling without a fused
    activation by the runtime's data-gradient kernels on the windows where ``g`` is non-zero
    (:func:`_conv_dx_windowed`, :func:`_pool_dx_windowed`) or on the whole map (its cache may
    be of another batch size: only its weights and geometry are read); everything else
    through the executor's ``backward_node``."""
    own = _own(net, node, cache)
    if own == "conv":
        op = cache[0]
        dx = _conv_dx_windowed(op, g, boxes)
        if dx is None:
            dx = conv2d_data_grad(g, op.w, (g.shape[0], *op.x.shape[1:]), op.stride, op.pads, op.dilation,
                                  op.groups, op.algo)
        return [dx]
    if own == "pool":
        dx = _pool_dx_windowed(net, node, cache[0], g, boxes)
        if dx is not None:
            return [dx]
    return net.backward_node(node.name, g, cache, params=False)[0]


class _FieldNet:
    """The linearised copy in one dtype: the net, one forward of the positive input (batch 1,
    every output kept), and per layer the cache of that layer's forward at ``batch`` (the
    most units checked in one layer: every pass runs at that batch), made from the kept
    outputs when a pass first reaches the layer. A 2-D convolution's batch-1 cache serves
    as it is (:func:`_data_grads` reads its weight and geometry only): the convolutions are
    run forward once, at batch 1."""

    def __init__(self, graph, dtype, conv_algo, seed, x1, batch):
        self.dtype = dtype
        self.batch = batch
        self.net = Net(graph, dtype=dtype, conv_algo=conv_algo, seed=seed, linear=True)
        self.net.forward(x1.astype(dtype), keep=True)
        self.outs = self.net.outputs_seen
        self.shapes = {k: v.shape[1:] for k, v in self.outs.items()}
        self._one = self.net.caches
        self._caches = {}

    def cache(self, name):
        c = self._caches.get(name)
        if c is None:
            c = self._one[name]
            if self.batch > 1 and _own(self.net, self.net.graph[name], c) is None:
                xs = [np.repeat(self.outs[s], self.batch, axis=0) for s in self.net.graph[name].inputs]
                c = self.net.run_node(name, xs)[1]
            self._caches[name] = c
        return c


def _unit_key(nd, pos):
    """The unit (as ``field_layers``' picks spell it) at runtime position ``pos`` of a tensor
    whose spatial rank is ``nd``."""
    if nd == 0:
        return "flat"
    if nd == 1:
        return (int(pos[-1]),)
    return tuple(int(p) for p in pos)


def _resolve(g_b, nd, known):
    """The input support of the gradient ``g_b`` (one batch item) at a layer's output, from the
    supports already measured there (``known``: unit -> mask), or None when they do not
    determine it. They do when every position ``g_b`` touches is touched on every channel and
    is a measured unit: the linear copy's Jacobian is non-negative, so the support of its
    transpose applied to a non-negative ``g_b`` is the union of the supports of the one-hot
    seeds (every channel of a unit) it is a positive combination of."""
    if nd == 0:
        nz = g_b != 0
        if not nz.any():
            return np.False_
        return known.get("flat") if nz.all() else None
    if np.count_nonzero(g_b[0]) > len(known):  # channel 0 alone touches too many positions
        return None
    nz = g_b != 0
    anyc, allc = nz.any(axis=0), nz.all(axis=0)
    if not np.array_equal(anyc, allc):
        return None
    mask = None
    for pos in zip(*np.nonzero(anyc)):
        m = known.get(_unit_key(nd, pos))
        if m is None:
            return None
        mask = m.copy() if mask is None else np.logical_or(mask, m, out=mask)
    return np.False_ if mask is None else mask


class _Memo:
    """Input supports measured from a layer's gradient, keyed by the gradient's support there.

    In the linear copy the input support a gradient ``g`` at layer k leads to depends on the
    support of ``g`` alone (the Jacobian is non-negative: the union of its non-zero positions'
    supports). So when a pass row reaches k holding the only live gradient of its row and
    nothing in its mask yet, the mask it ends with is *the* input support of that gradient
    support at k; a later pass whose row reaches k with the same support takes it and ends
    there. GoogLeNet's 3x3 branch and pool branch of an inception reach the concat below with
    the same (3x3 block, every channel) support; once fields fill the map, every later pass
    arrives with the whole map. Kept at layers read by two or more layers only (where passes
    from different branches meet), for 2-D maps."""

    def __init__(self, graph):
        self.layers = {name for name, users in graph.consumers().items() if len(users) >= 2}
        self.seen: dict[tuple, np.ndarray] = {}

    @staticmethod
    def key(g_b, box):
        """The support of ``g_b`` (C, H, W), non-zero inside ``box`` (h0, h1, w0, w1) only: the
        box when every entry in it is non-zero (every channel), else the packed mask."""
        h0, h1, w0, w1 = box
        inner = g_b[:, h0:h1 + 1, w0:w1 + 1]
        if np.count_nonzero(inner) == inner.size:
            return ("box", g_b.shape, h0, h1, w0, w1)
        return ("mask", g_b.shape, np.packbits(g_b != 0).tobytes())


def _field_masks(fnet, order, node, picks, known, band=True, memo=None):
    """Input-support masks (one per unit of ``picks`` of ``node``) through the linear copy.

    A backward pass over ``node``'s ancestors, one unit per batch item, data gradients only,
    layer by layer (the executor's ``backward_node``; convolutions on the windows where the
    gradient is non-zero, :func:`_data_grads`). Before a layer is differentiated, the batch
    items whose gradient there is a positive combination of units already measured
    (``known``: {layer: {unit: mask}}) take the union of those units' masks and their rows
    are zeroed there (see :func:`_resolve`), and so do those whose gradient support there was
    met before (``memo``, :class:`_Memo`); the pass ends when every row is zero. Every
    gradient is checked against the dtype's band first (:func:`_check_band`)."""
    net = fnet.net
    shape = fnet.shapes[node.name]
    d = _seed(shape, node, net.nd[node.name], fnet.shapes[node.inputs[0]], picks).astype(fnet.dtype)
    if len(d) < fnet.batch:  # one forward serves every layer: rows beyond the picks are zero
        d = np.concatenate([d, np.zeros((fnet.batch - len(d), *d.shape[1:]), d.dtype)])
    masks = [np.zeros(fnet.shapes[INPUT][1:], bool) for _ in range(fnet.batch)]
    frontier = {node.name: d}
    # per frontier entry, the rows that may be non-zero there; per row, whether its mask has
    # anything yet (both for the memo: a row alone at a layer, with an empty mask, is recorded)
    live = {node.name: np.arange(fnet.batch) < len(picks)}
    dirty = np.zeros(fnet.batch, bool)
    record = []
    for k in reversed(order):
        g = frontier.pop(k.name, None)
        if g is None:
            continue
        live.pop(k.name)
        boxes = _scan_grad(g, fnet.dtype, band)
        kn = known.get(k.name)
        done = []
        if kn:
            for r in range(g.shape[0]):
                if boxes[r, 1] < 0:
                    continue
                m = _resolve(g[r], net.nd[k.name], kn)
                if m is not None:
                    masks[r] = np.logical_or(masks[r], m)
                    done.append(r)
                    dirty[r] = True
        if memo is not None and g.ndim == 4 and k.name in memo.layers:
            for r in range(g.shape[0]):
                if boxes[r, 1] < 0 or r in done:
                    continue
                key = (k.name, memo.key(g[r], boxes[r]))
                m = memo.seen.get(key)
                if m is not None:
                    masks[r] = np.logical_or(masks[r], m)
                    done.append(r)
                    dirty[r] = True
                elif not dirty[r] and not any(lv[r] for lv in live.values()):
                    record.append((key, r))
        if done:
            g = g.copy()
            g[done] = 0
            boxes[done] = -1
        rows = boxes[:, 1] >= 0
        if not rows.any():
            if not frontier:
                break
            continue
        dxs = _data_grads(net, k, g, fnet.cache(k.name), boxes)
        for src, dx in zip(k.inputs, dxs):
            if dx is None:
                continue
            if src == INPUT:
                if band:
                    _check_band(dx, fnet.dtype)
                nz = (dx != 0).any(axis=1)  # over the channels: (N,), (N, 1, L), (N, H, W), ...
                for r in range(dx.shape[0]):
                    masks[r] = np.logical_or(masks[r], nz[r])
                dirty |= rows
            else:
                frontier[src] = dx if src not in frontier else frontier[src] + dx
                live[src] = rows | live[src] if src in live else rows
    if memo is not None:  # the pass ran through: what its lone rows ended with is theirs
        ended = {}  # one copy per row, shared by its keys (masks are replaced, never changed in place)
        for key, r in record:
            if key not in memo.seen:
                if r not in ended:
                    ended[r] = masks[r].copy()
                memo.seen[key] = ended[r]
    return masks[:len(picks)]


def _mask_box(mask):
    """Per axis (lo, hi) of the True entries of a support mask (None on an axis without any)."""
    box = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        nz = np.nonzero(np.any(mask, axis=other) if other else mask)[0]
        box.append((int(nz[0]), int(nz[-1])) if len(nz) else None)
    return tuple(box)


def check_fields(graph, *, seed=0, conv_algo="im2col", progress=None, units="corners", every_layer=False):
    """Receptive-field checks through the linearised copy, in float32.

    Layers in forward order; per layer one backward pass over its ancestors, a unit per batch
    item, data gradients only (:func:`_field_masks`). A unit's pass ends early where its
    gradient is a positive combination of units measured before — every channel at the
    centre and corners of a 1x1 convolution's or a merge's input, say — and takes the union of
    their supports: in the linear copy (positive weights, identity activations, average
    pooling, BN on its running statistics, samples never mixed) that union *is* the support
    the rest of the pass would produce. Only windowed layers then pay for a pass down to the
    input.

    float32 is enough for the claim checked — *which* input pixels get a non-zero gradient:
    weights and gradients are positive, so every path adds a positive term and nothing
    cancels; a positive float32 sum is zero only if every term underflowed, and a zero stays
    exactly zero. Every gradient of a pass is checked against a band (:data:`_BAND`) inside
    which no product of it with a coefficient of the copy can underflow or overflow; a layer
    whose pass leaves the band is redone in float64.
    """
    if units not in RF_UNITS:
        raise ValueError(f"units must be one of {RF_UNITS}, got {units!r}")
    if conv_algo in ("fft", "auto"):
        conv_algo = "im2col"  # exact zeros: FFT leaves 1e-17 noise everywhere
    rep = receptive_fields(graph)
    nodes = [n for n in field_layers(graph, every_layer) if rep[n.name].unknown is None]
    x1 = random_input(graph.input_shape, 1, np.random.default_rng(seed)) ** 2 + 1.0  # positive
    nets: dict[str, _FieldNet] = {}
    units_of = {n.name: _units([a.n for a in rep[n.name].axes], units) for n in nodes}
    batch = max(map(len, units_of.values()), default=1)

    def fnet(dtype):
        if dtype not in nets:
            nets[dtype] = _FieldNet(graph, dtype, conv_algo, seed, x1, batch)
        return nets[dtype]

    index = {n.name: i for i, n in enumerate(graph.layers)}
    known: dict[str, dict] = {}
    memo = _Memo(graph)
    items: list[Item] = []
    for node in nodes:
        picks = units_of[node.name]
        order = graph.layers[:index[node.name] + 1]
        note = ""
        try:
            masks = _field_masks(fnet("float32"), order, node, picks, known, memo=memo)
        except _TooNarrow:  # float32 too narrow here: redo in float64
            try:
                masks = _field_masks(fnet("float64"), order, node, picks, known, memo=memo)
            except _TooNarrow:
                masks = _field_masks(fnet("float64"), order, node, picks, known, band=False, memo=memo)
                note = "; gradients outside float64's safe band"
        net = nets["float32"].net
        in_nd = net.nd[INPUT]
        if net.nd[node.name]:
            known[node.name] = dict(zip(picks, masks))
        elif len(picks) == 1 and not (node.kind == "flatten" and net.nd[node.inputs[0]]):
            known[node.name] = {"flat": masks[0]}
        for unit, mask in zip(picks, masks):
            box = _mask_box(mask)
            if in_nd == 1:
                box = box[1:]
            elif in_nd == 0:
                box = ()
            # the pixels the unit depends on: taps landing in any layer's padding see zeros, so
            # they are dropped (a dilated kernel larger than its input: docs/conventions.md)
            claimed = unit_field(rep, node.name, unit).support
            claimed = tuple(tuple(c) if c is not None else None for c in claimed)
            uname = ",".join(map(str, unit))
            items.append(Item(node.name, f"field of unit ({uname})", claimed, box,
                              f"support fills {_box_fill(mask, box, in_nd):.0%} of its box{note}"))
        if progress:
            progress(node.name)
    return items


def _box_fill(mask, box, nd):
    if not box or any(b is None for b in box):
        return 0.0
    if nd == 1:
        m = mask[0, box[0][0]:box[0][1] + 1]
    else:
        m = mask[tuple(slice(lo, hi + 1) for lo, hi in box)]
    return float(m.mean())


def verify(graph, *, batch=2, conv_algo="auto", seed=0, fields=True, progress=None, rf_units="corners",
           rf_every_layer=False, log=None):
    """All checks; returns (items, info). ``log(line)``, when given, gets one line per check
    group as it completes (the CLI prints them on stderr when it is not a terminal)."""
    import time

    graph.infer()
    t = time.perf_counter()
    items, info = check_counts_and_memory(graph, batch=batch, conv_algo=conv_algo, seed=seed)
    if log:
        log(f"verify: params, state, shapes and memory: {len(items)} checks, "
            f"{sum(not i.ok for i in items)} differences ({time.perf_counter() - t:.1f} s)")
    if fields:
        t = time.perf_counter()
        got = check_fields(graph, seed=seed, conv_algo=conv_algo, progress=progress, units=rf_units,
                           every_layer=rf_every_layer)
        items += got
        if log:
            log(f"verify: receptive fields: {len(got)} units, {sum(not i.ok for i in got)} differences "
                f"({time.perf_counter() - t:.1f} s)")
    return items, info


def fmt_value(v) -> str:
    if isinstance(v, tuple) and v and all(isinstance(a, tuple) or a is None for a in v):
        return " x ".join("∅" if a is None else f"[{a[0]}, {a[1]}]" for a in v)
    if isinstance(v, tuple):
        return fmt_shape(v)
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
