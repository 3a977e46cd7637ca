"""Receptive fields: size r, effective stride S, effective padding P and the field of every unit.

Follows Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks"
(Distill, 2019). Conventions:

* Pixel ``i`` of the input is centred at coordinate ``i``; a field is a closed interval
  ``[lo, hi]`` of input pixel indices (``r = hi − lo + 1``). Coordinates below 0 or above
  ``N − 1`` lie in the padding: a negative start means the field reaches into the padding.
* ``S`` (the *jump*) is how far the field moves in input pixels when the unit index grows by
  one; ``P = −lo`` of unit 0, so that unit ``u`` of a chain sees ``[u·S − P, u·S − P + r − 1]``.
* For a chain of windowed layers (kernel k, stride s, padding p on the low side, dilation d,
  effective kernel k' = d(k − 1) + 1) the Distill recurrences hold::

      r_l = r_{l−1} + (k'_l − 1)·S_{l−1}      S_l = S_{l−1}·s_l      P_l = P_{l−1} + p_l·S_{l−1}

  Each spatial axis is computed on its own (non-square kernels, asymmetric padding).
  ``r`` is the *extent* of the field; a dilated layer sees it with holes.
* Transposed convolution (``deconv``) divides the stride: ``S = S_prev / s`` (a
  ``fractions.Fraction``), and the field depends on the output unit's *phase* (u mod s):
  ``r_min`` / ``r_max`` report the extremes. A phase may even see nothing (k < s).
* Pointwise layers (activations, BN, LRN, dropout, flatten, maxout) pass fields through;
  fc and global pooling see the union of all their input units' fields (normally the whole
  input): they are flagged ``global`` and have ``S = 0`` (every unit sees the same pixels).
* Resampling layers (upsample, crop, padding, adaptive pooling) give an ``AxisMap`` per axis:
  output unit o reads a range of input units, periodic in o (``reads(o + a) = reads(o) + b``),
  so S is multiplied by b/a — an upsampling by 2 halves it, a Fraction reported exactly.
  A crop's ``to:`` input only lends its shape. Reflect / replicate padding is followed
  geometrically (as zero padding); the border units' real sources are mirrored pixels.
* ``mul`` with a broadcast gate (squeeze-excitation): the field follows the full-size
  branches; the node is flagged ``gated`` (every unit also depends on what the gate sees).
* Token sequences and tensors (the low-level ops, docs/tensors.md): the roles of their axes
  say which axis holds which spatial axis of the input, so a transpose to channels-last and
  back, a reshape that keeps H and W whole, or a matmul / norm over the channels keep an exact
  field. An op reports ``{spatial axis: effect}``: ``GLOBAL`` when every output reads every
  unit along it (a reduction, a softmax, a contraction), an ``AxisMap`` (a slice, a pad) or
  ``UNKNOWN`` when it scrambles the positions (a reshape that cuts H, a product of two
  positions such as QKᵀ). From an ``UNKNOWN`` on, the field is unknown (``unknown`` names the
  layer), never a number that might be wrong; an image layer reading a tensor whose axes are
  not channels then spatial (PyTorch's order) makes it unknown too.
* Branches: every distinct path from the input is carried as its own *path field*;
  a merge (concat, add) takes the union (the hull) of its inputs' fields. ``max_path_r`` /
  ``min_path_r`` are the largest / smallest field over the paths; a node is *aligned* when
  all paths have the same ``S`` and the same centre for every unit. A misaligned graph is
  reported (``aligned = False``, ``misaligned`` names the merges), never refused; its union
  field can be larger than any single path's field.

Internally one path's field along one axis is *periodic-affine*: with period ``q`` (units)
and shift ``T`` (input pixels per period), unit ``u = m·q + φ`` sees
``[lo[φ] + m·T, hi[φ] + m·T]`` (``None`` for a phase that sees nothing); ``S = T/q``.
Convolutions have ``q = 1``; transposed convolutions multiply ``q`` by their stride.

API (pure Python, exact integers and Fractions)::

    from cnncalc.analysis.rf import receptive_fields, unit_field
    rep = receptive_fields(graph)            # or a zoo name / path; input_shape= to override
    f = rep["pool5"]                         # LayerField
    f.r, f.S, f.P, f.start, f.centre         # per-axis tuples (H, W) — ints / Fractions
    f.r_min, f.r_max, f.max_path_r, f.min_path_r, f.aligned, f.is_global
    rep.aligned, rep.misaligned              # whole graph
    uf = unit_field(rep, "conv5_3", (3, 4))  # or unit_field(graph, ...)
    uf.unclipped  # ((lo_h, hi_h), (lo_w, hi_w)) input rows / columns, may leave [0, N−1]
    uf.clipped    # the same intersected with the input; None on an axis where it misses it
    uf.paths      # per axis: the distinct (lo, hi) intervals of the single paths

    uf.support    # the hull of the pixels it really depends on (padding = zeros at every layer)

``unit_field`` is what ``cnncalc verify`` compares with the support of an input gradient: the
bounding box (per axis min..max) of the nonzero input gradient of a unit is ``support``, which
equals ``clipped`` unless some window along the way lies entirely in an intermediate layer's
padding (then the real dependencies are fewer), and equals ``unclipped`` when no window
touches padding. With dilation the support has holes; its hull is still ``support``. (The
gradient of a max-pool or ReLU network can be zero by accident; verify through a linearised
copy, as planned.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd

from cnncalc._gc import paused_gc
from cnncalc.errors import CnnCalcError
from cnncalc.graph import INPUT, Graph
from cnncalc.layers.base import GLOBAL, AxisMap, Window
from cnncalc.layers.tensor import UNKNOWN
from cnncalc.shapes import Shape, Tensor, kind_key, spatial

Interval = tuple[int, int]
MAX_PATHS = 256  # distinct path fields counted (and listed per unit) exactly, per node and axis
# Shortcuts that give the same fields with less work (period-1 paths in closed form, the set
# of every path carried lazily, fields shared between axes and through pointwise layers, the
# numbers of a shared field computed once). Tests switch them off to check that.
SHORTCUTS = True


class cached_property:
    """functools.cached_property without its lock: Python 3.11's takes an RLock on each first
    read (23,000 of them for cifar_resnet1202's report, a fifth of the receptive fields'
    time); fields are built and read in one thread. The value goes in the instance's
    ``__dict__``, which then answers every later read (a non-data descriptor)."""

    def __init__(self, func):
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


# ----------------------------------------------------------------------------- one path, one axis
@dataclass(frozen=True)
class PathField:
    """One path's field along one axis: unit u = m·q + φ sees [lo[φ] + m·T, hi[φ] + m·T]."""
    q: int
    T: int
    lo: tuple[int | None, ...]
    hi: tuple[int | None, ...]

    @cached_property  # fields are frozen; Fractions are slow to build
    def S(self) -> Fraction:
        return Fraction(self.T, self.q)

    def at(self, u: int) -> Interval | None:
        m, ph = divmod(u, self.q)
        if self.lo[ph] is None:
            return None
        return self.lo[ph] + m * self.T, self.hi[ph] + m * self.T

    def sizes(self) -> list[int]:
        return [h - l + 1 if l is not None else 0 for l, h in zip(self.lo, self.hi)]

    def normalized(self) -> "PathField":
        """The smallest period that describes the same field (a canonical form)."""
        for q in range(1, self.q):
            if self.q % q:
                continue
            rep = self.q // q
            if self.T % rep:
                continue
            t = self.T // rep
            cand = PathField(q, t, self.lo[:q], self.hi[:q])
            if all(cand.at(u) == self.at(u) for u in range(self.q)):
                return cand
        return self


IDENTITY = PathField(1, 1, (0,), (0,))


def _period(win: Window | AxisMap, deconv: bool) -> tuple[int, int]:
    """(a, b): the reads of output unit o + a are those of o moved by b input units."""
    if isinstance(win, AxisMap):  # upsample, crop, padding, adaptive pooling
        return win.a, win.b
    return (win.stride, 1) if deconv else (1, win.stride)


def _reads(win: Window | AxisMap, deconv: bool, o: int) -> tuple[int, int, int]:
    """The input units output unit o reads, as an arithmetic progression (first, step, count):
    never a list, so a kernel of 10^12 taps costs no more than one of 3."""
    if isinstance(win, AxisMap):
        lo, hi = win.span(o)
        return lo, 1, max(0, hi - lo)
    k, s, pl, d = win.kernel, win.stride, win.pad_lo, win.dilation
    if not deconv:
        return o * s - pl, d, k
    # transposed: o reads input unit i through tap j when i*s + j*d = o + pl
    t, g = o + pl, gcd(d, s)
    if t % g:
        return 0, 1, 0
    sg = s // g
    j0 = (t // g) * pow(d // g, -1, sg) % sg if sg > 1 else 0
    if j0 >= k:
        return 0, 1, 0
    return (t - j0 * d) // s, -(d // g), (k - 1 - j0) // sg + 1


def _extreme_taps(first: int, step: int, count: int, q: int):
    """The units of a progression that can hold the extremes of a field of period q: along
    each residue class mod q a path's field only moves right as the unit grows, so only the
    first and the last unit of each class matter, and the classes repeat every q/gcd(step, q)."""
    per = q // gcd(abs(step), q)
    if count <= 2 * per:
        return [first + j * step for j in range(count)]
    return [first + j * step for j in (*range(per), *range(count - per, count))]


def _inside(first: int, step: int, count: int, n: int) -> range:
    """The units of a progression that lie in 0..n−1 (step ≠ 0)."""
    if step < 0:
        first, step = first + (count - 1) * step, -step
    j_lo = max(0, -(first // step) if first < 0 else 0)
    j_hi = min(count - 1, (n - 1 - first) // step) if n - 1 >= first else -1
    return range(first + j_lo * step, first + j_hi * step + 1, step) if j_hi >= j_lo else range(0)


def apply_window(pf: PathField, win: Window, deconv: bool = False) -> PathField:
    """The field of a windowed layer's units from the field of its input units."""
    a, b = _period(win, deconv)
    g = gcd(b, pf.q)
    q2 = a * (pf.q // g)
    t2 = (b // g) * pf.T
    los, his = [], []
    for ph in range(q2):
        lo = hi = None
        for i in _extreme_taps(*_reads(win, deconv, ph), pf.q):
            iv = pf.at(i)
            if iv is None:
                continue
            lo = iv[0] if lo is None else min(lo, iv[0])
            hi = iv[1] if hi is None else max(hi, iv[1])
        los.append(lo)
        his.append(hi)
    return PathField(q2, t2, tuple(los), tuple(his)).normalized()


def apply_global(pf: PathField, n: int) -> PathField:
    """fc / global pooling: the hull of the fields of all n input units; S = 0."""
    ivs = [iv for iv in (pf.at(u) for u in _sample_units(pf, n)) if iv is not None]
    if not ivs:
        return PathField(1, 0, (None,), (None,))
    return PathField(1, 0, (min(i[0] for i in ivs),), (max(i[1] for i in ivs),))


def _sample_units(pf: PathField, n: int) -> list[int]:
    """Units whose fields hold the extremes over 0..n−1: each phase's first and last unit."""
    out = set()
    for ph in range(min(pf.q, n)):
        out.add(ph)
        out.add(ph + ((n - 1 - ph) // pf.q) * pf.q)
    return sorted(out)


def _prune(paths: set[PathField]) -> frozenset[PathField]:
    """Keep only the paths that can hold an extreme of a reported number.

    Exact for paths of period 1 (q = 1), always: every later layer moves the lo and hi of all
    paths of equal (q, T) by the same amounts, so the paths holding the least and greatest lo,
    hi, hi − lo and hi + lo are the only ones any later number can come from — at most 8 per
    (1, T), and the work per layer stops growing with depth. A field with phases (q > 1, after
    upsampling or a transposed conv) mixes its phases at the next window, so no per-phase
    extreme is enough: those paths are all kept, up to MAX_PATHS, and only beyond that pruned
    by per-phase extremes: the union field (r, S, P, start, end, r range) stays exact, but
    the per-path sizes and the alignment may then miss a path — the caller marks them."""
    keep: set[PathField] = set()
    by: dict[tuple[int, int], list[PathField]] = {}
    for p in paths:
        by.setdefault((p.q, p.T), []).append(p)
    many = len(paths) > MAX_PATHS
    for (q, _), group in by.items():
        if len(group) <= 2 or (q > 1 and not many):
            keep.update(group)
            continue
        for ph in range(q):
            live = [p for p in group if p.lo[ph] is not None]
            if not live:
                continue
            for key in (lambda p: p.lo[ph], lambda p: p.hi[ph], lambda p: p.hi[ph] - p.lo[ph],
                        lambda p: p.hi[ph] + p.lo[ph]):
                keep.add(min(live, key=key))
                keep.add(max(live, key=key))
        keep.update(p for p in group if any(l is None for l in p.lo))
    return frozenset(keep)


def _carry(src: list["AxisField"], fn=None) -> dict:
    """The path sets of a node whose inputs are ``src``, each path mapped by ``fn``: the pruned
    paths, every distinct path while there are at most MAX_PATHS, and whether a path with
    phases had to be dropped (then per-path numbers are from the kept paths only)."""
    fn = fn or (lambda p: p)
    # while every distinct path is known (at most MAX_PATHS), map those only: the kept ones
    # are among them; past the cap, only the kept ones
    full = None
    if all(a.full is not None for a in src):
        full = frozenset(fn(p) for a in src for p in a.full)
        full = full if len(full) <= MAX_PATHS else None
    mapped = set(full) if full is not None else {fn(p) for a in src for p in a.paths}
    pruned = _prune(mapped)
    approx = any(a.approx for a in src) or any(p.q > 1 for p in mapped - pruned)
    return {"paths": pruned, "full": full, "approx": approx}


class Q1Paths:
    """Every distinct path field of a node, all of period 1 (q = 1) and seeing something, kept
    lazily: per jump T, a set of (lo, hi) pairs and an offset (dlo, dhi) added to them all.

    A windowed layer moves the lo and hi of every path of jump T by the same amounts (a
    translation, exactly ``apply_window`` for q = 1) and multiplies T by its stride, so it maps
    this set in O(number of jumps) instead of O(paths): the paths of a deep residual stack
    (hundreds per node) are carried through each block's layers without being touched, and
    are only re-based at a merge. Reads like the frozenset of PathFields it stands for
    (iteration, ``len``, ``in``, ``==``); iterating builds those PathFields once."""
    __slots__ = ("groups", "_len", "_set")

    def __init__(self, groups: dict):
        self.groups = groups  # T -> (dlo, dhi, frozenset of (lo, hi))
        self._len = sum(len(g[2]) for g in groups.values())
        self._set = None

    @classmethod
    def of(cls, paths) -> "Q1Paths | None":
        """The lazy form of ``paths`` (PathFields), or None unless all are q = 1, T >= 0 and see
        something."""
        groups: dict = {}
        for p in paths:
            if p.q != 1 or p.T < 0 or p.lo[0] is None:
                return None
            groups.setdefault(p.T, set()).add((p.lo[0], p.hi[0]))
        return cls({t: (0, 0, frozenset(v)) for t, v in groups.items()})

    def window(self, pl: int, span: int, s: int) -> "Q1Paths":
        """After a window of stride s, low padding pl and extent span + 1 (see ``_map_q1``)."""
        return Q1Paths({s * t: (dlo - pl * t, dhi + (span - pl) * t, rel)
                        for t, (dlo, dhi, rel) in self.groups.items()})

    @staticmethod
    def union(parts: "list[Q1Paths]") -> "Q1Paths":
        groups: dict = {}
        for part in parts:
            for t, (dlo, dhi, rel) in part.groups.items():
                g = groups.get(t)
                if g is None:
                    groups[t] = (dlo, dhi, rel)
                elif rel is not g[2] or (dlo, dhi) != g[:2]:
                    a, b = dlo - g[0], dhi - g[1]
                    moved = rel if a == 0 == b else frozenset([(lo + a, hi + b) for lo, hi in rel])
                    groups[t] = (g[0], g[1], g[2] | moved)
        return Q1Paths(groups)

    def frozen(self) -> frozenset:
        if self._set is None:
            self._set = frozenset(PathField(1, t, (lo + dlo,), (hi + dhi,))
                                  for t, (dlo, dhi, rel) in self.groups.items() for lo, hi in rel)
        return self._set

    def __len__(self):
        return self._len

    def __iter__(self):
        return iter(self.frozen())

    def __contains__(self, p):
        return p in self.frozen()

    def __eq__(self, other):
        if isinstance(other, Q1Paths):
            other = other.frozen()
        elif not isinstance(other, (set, frozenset)):
            return NotImplemented
        return self.frozen() == other

    __hash__ = None

    def __repr__(self):
        return f"Q1Paths({set(self.frozen())!r})"


def _map_q1(p: PathField, pl: int, span: int, s: int) -> PathField:
    """``apply_window`` of a path of period 1 (T >= 0, seeing something) through a plain window
    (not transposed): unit 0 reads input units −pl … −pl + span, whose fields are moved by
    their index times T; the extremes are the first and the last tap."""
    t = p.T
    return PathField(1, s * t, (p.lo[0] - pl * t,), (p.hi[0] + (span - pl) * t,))


def _same(a, b) -> bool:
    """a == b for what a layer reports per axis (None, GLOBAL, UNKNOWN, a Window, an AxisMap),
    windows compared by their fields without building tuples."""
    if a is b:
        return True
    if a.__class__ is b.__class__ and a.__class__ in (Window, AxisMap):
        return a.__dict__ == b.__dict__
    return a == b


def _q1(paths) -> bool:
    for p in paths:
        if p.q != 1 or p.T < 0 or p.lo[0] is None:
            return False
    return True


def _carry_window(a: "AxisField", w: Window) -> dict | None:
    """``_carry([a], apply_window(·, w))`` for a plain window when every path has period 1: the
    kept paths mapped one by one (a translation keeps which paths hold the extremes) and the
    set of every path mapped lazily (``Q1Paths``). None when the shortcut does not apply."""
    if not _q1(a.paths):
        return None
    full = a.full
    if full is not None and full.__class__ is not Q1Paths:
        full = Q1Paths.of(full)
        if full is None:
            return None
    pl, span, s = w.pad_lo, w.dilation * (w.kernel - 1), w.stride
    return {"paths": frozenset([_map_q1(p, pl, span, s) for p in a.paths]),
            "full": None if full is None else full.window(pl, span, s), "approx": a.approx}


def _carry_merge(src: list["AxisField"]) -> dict | None:
    """``_carry(src)`` (a merge) when every source's every path has period 1: the union of the
    kept paths pruned again (the extremes of a union are among its parts' extremes) and the
    union of the lazy sets of every path. None when the shortcut does not apply."""
    fulls = []
    for a in src:
        if not _q1(a.paths):
            return None
        f = a.full
        if f is not None and f.__class__ is not Q1Paths:
            return None
        fulls.append(f)
    full = None
    if all(f is not None for f in fulls):
        full = Q1Paths.union(fulls)
        if len(full) > MAX_PATHS:
            full = None
    paths = set()
    for a in src:
        paths.update(a.paths)
    return {"paths": _prune(paths), "full": full, "approx": any(a.approx for a in src)}


def _clip(iv: Interval | None, n: int) -> Interval | None:
    if iv is None:
        return None
    lo, hi = max(iv[0], 0), min(iv[1], n - 1)
    return (lo, hi) if lo <= hi else None


# ----------------------------------------------------------------------------- one node, one axis
@dataclass(frozen=True)
class AxisField:
    """All paths' fields of one node along one axis, and the numbers reported for it.

    ``paths`` holds the paths with an extreme (all that any reported number needs);
    ``full`` every distinct path field, while there are at most MAX_PATHS (else None)."""
    paths: frozenset[PathField]
    n: int          # units along this axis (of the last spatial map, for flat outputs)
    size_in: int    # input pixels along this axis
    is_global: bool = False
    full: frozenset[PathField] | None = field(default=None, compare=False)
    approx: bool = field(default=False, compare=False)  # per-path numbers from kept paths only

    @property
    def count(self) -> int | None:
        """Distinct path fields, or None when there are more than MAX_PATHS."""
        return None if self.full is None else len(self.full)

    def interval(self, u: int) -> Interval | None:
        """The union (hull) of the paths' fields of unit u, unclipped."""
        ivs = [iv for iv in (p.at(u) for p in self.paths) if iv is not None]
        if not ivs:
            return None
        return min(i[0] for i in ivs), max(i[1] for i in ivs)

    def clipped(self, u: int) -> Interval | None:
        return _clip(self.interval(u), self.size_in)

    @cached_property  # paths are fixed once built: read many times by the report
    def Ss(self) -> list[Fraction]:
        # (one Fraction per distinct (T, q): the paths mostly share theirs)
        return sorted({Fraction(t, q) for t, q in {(p.T, p.q) for p in self.paths}})

    @cached_property
    def S(self) -> Fraction | None:
        """The effective stride, or None when the paths disagree (misaligned)."""
        s = self.Ss
        return s[0] if len(s) == 1 else None

    def shown(self, u: int) -> Interval | None:
        """What the report shows for unit u: the union field, clipped for a global layer
        (it sees the whole input; its unclipped hull only says how far the padding goes)."""
        return self.clipped(u) if self.is_global else self.interval(u)

    @cached_property
    def first(self) -> Interval | None:
        return self.shown(0)

    @cached_property  # (read for every layer that shares this field)
    def r_unclipped(self) -> int:
        return _size(self.interval(0))

    @cached_property  # (read for every layer that shares this field)
    def start(self) -> int | None:
        f = self.first
        return None if f is None else f[0]

    @cached_property  # (read for every layer that shares this field)
    def end(self) -> int | None:
        f = self.first
        return None if f is None else f[1]

    @cached_property  # (read for every layer that shares this field)
    def r(self) -> int:
        """Size of unit 0's (union) field."""
        f = self.first
        return 0 if f is None else f[1] - f[0] + 1

    @cached_property  # (read for every layer that shares this field)
    def P(self) -> int | None:
        f = self.first
        return None if f is None or self.is_global else -f[0]

    @cached_property  # (read for every layer that shares this field)
    def centre(self) -> Fraction | None:
        f = self.first
        return None if f is None else Fraction(f[0] + f[1], 2)

    def _units(self) -> range:
        """Units over which the union field takes every size it can take."""
        if self.S is not None:
            period = 1
            for p in self.paths:
                period = period * p.q // gcd(period, p.q)
            return range(min(period, self.n))
        return range(self.n)

    @cached_property
    def r_range(self) -> tuple[int, int]:
        sizes = []
        for u in self._units():
            iv = self.shown(u)
            sizes.append(0 if iv is None else iv[1] - iv[0] + 1)
        sizes = sizes or [self.r]
        return min(sizes), max(sizes)

    @property
    def r_min(self) -> int:
        return self.r_range[0]

    @property
    def r_max(self) -> int:
        return self.r_range[1]

    def _path_sizes(self, p: PathField) -> list[int]:
        if not self.is_global:
            return p.sizes()
        return [_size(_clip(iv, self.size_in)) for iv in (p.at(ph) for ph in range(p.q))]

    @cached_property  # (read for every layer that shares this field)
    def max_path_r(self) -> int:
        return max((max(self._path_sizes(p)) for p in self.paths), default=0)  # (no path: a constant)

    @cached_property  # (read for every layer that shares this field)
    def min_path_r(self) -> int:
        return min((min(self._path_sizes(p)) for p in self.paths), default=0)

    @cached_property  # (read for every layer that shares this field)
    def aligned(self) -> bool:
        """Same S on every path and the same centre for every unit."""
        if len(self.paths) <= 1:
            return True
        if self.S is None:
            return False
        for u in self._units():
            cs = set()
            for p in self.paths:
                iv = p.at(u)
                cs.add(None if iv is None else iv[0] + iv[1])
            if len(cs) > 1:
                return False
        return True

    def why_misaligned(self) -> str:
        if self.S is None:
            return "effective strides differ: " + ", ".join(fmt_num(s) for s in self.Ss)
        for u in self._units():
            cs = sorted({Fraction(iv[0] + iv[1], 2) for iv in (p.at(u) for p in (self.full or self.paths)) if iv})
            if len(cs) > 1 and self.full is None:  # the kept paths hold the extremes only
                return f"centres of unit {u} differ: {fmt_num(cs[0])} to {fmt_num(cs[-1])}"
            if len(cs) > 1:
                return f"centres of unit {u} differ: " + ", ".join(fmt_num(c) for c in cs)
        return ""


# ----------------------------------------------------------------------------- one node
AXES_2D = ("H", "W")


@dataclass
class LayerField:
    """The receptive field of one node: per-axis values as tuples in (H, W) order."""
    name: str
    type: str
    description: str
    inputs: list[str]
    shape: Shape
    axes: tuple[AxisField, ...]
    windows: object = None       # what the layer reported: None, GLOBAL or [Window, ...]
    deconv: bool = False
    explain: list[str] = field(default_factory=list)
    field_inputs: list[str] | None = None  # the inputs that carry the field (default: inputs)
    gated: bool = False          # multiplied by a broadcast gate that sees its whole input
    unknown: str | None = None   # the layer where the field became unknown (then no number holds)
    global_since: str | None = None  # the layer where the field became global (global attention, fc)

    @property
    def sources(self) -> list[str]:
        return self.inputs if self.field_inputs is None else self.field_inputs

    def _each(self, attr):
        return tuple(getattr(a, attr) for a in self.axes)

    r = property(lambda self: self._each("r"))
    S = property(lambda self: self._each("S"))
    P = property(lambda self: self._each("P"))
    start = property(lambda self: self._each("start"))
    end = property(lambda self: self._each("end"))
    centre = property(lambda self: self._each("centre"))
    r_unclipped = property(lambda self: self._each("r_unclipped"))
    r_min = property(lambda self: self._each("r_min"))
    r_max = property(lambda self: self._each("r_max"))
    max_path_r = property(lambda self: self._each("max_path_r"))
    min_path_r = property(lambda self: self._each("min_path_r"))

    @property
    def aligned(self) -> bool:
        return all(a.aligned for a in self.axes)

    @property
    def is_global(self) -> bool:
        return any(a.is_global for a in self.axes)

    @property
    def n_paths(self) -> int | None:
        """Distinct path fields (the most over the axes), or None when over MAX_PATHS."""
        counts = [a.count for a in self.axes]
        return None if None in counts else max(counts, default=1)

    @property
    def phase_dependent(self) -> bool:
        return any(a.r_min != a.r_max for a in self.axes)

    def to_dict(self, _cache: dict | None = None) -> dict:
        """``_cache``: the per-axes part of earlier layers' dicts, by the identity of their axes
        (layers through pointwise ones share their fields; RFReport.to_dict passes one)."""
        if self.unknown is not None:
            return {"name": self.name, "type": self.type, "inputs": list(self.inputs), "shape": list(self.shape),
                    **kind_key(self.shape), "r": None, "S": None, "P": None, "start": None, "end": None,
                    "centre": None, "global": False, "unknown": self.unknown}
        key = tuple(map(id, self.axes))
        parts = None if _cache is None or not SHORTCUTS else _cache.get(key)
        if parts is None:
            parts = self._axes_dict()
            if _cache is not None:
                _cache[key] = parts
        numbers, tail, lists = parts
        d = {"name": self.name, "type": self.type, "inputs": list(self.inputs), "shape": list(self.shape)}
        d.update(numbers)
        if self.global_since is not None:  # (the layer's, not its axes': never in the shared part)
            d["global_since"] = self.global_since
        if self.gated:
            d["gated"] = True
        d.update(kind_key(self.shape))
        if tail:
            d.update(tail)
        if lists:  # each layer's dict holds its own lists
            for k, v in d.items():
                if v.__class__ is list and k not in ("inputs", "shape"):
                    d[k] = _copy_lists(v)
        return d

    def _axes_dict(self) -> tuple[dict, dict, bool]:
        """The keys of ``to_dict`` that depend on the axes only: those before ``gated``, those
        after the shape's kind, and whether any value is a list."""
        a = self.axes[0]
        if SHORTCUTS and all(x is a for x in self.axes):  # one field on every axis: each value is its own
            return _axis_dict(a, len(self.axes))
        d = {"r": _collapse(self.r), "S": _collapse(tuple(_jnum(s) for s in self.S)),
             "P": _collapse(self.P), "start": _collapse(self.start), "end": _collapse(self.end),
             "centre": _collapse(tuple(_jnum(c) for c in self.centre)),
             "r_min": _collapse(self.r_min), "r_max": _collapse(self.r_max),
             "max_path_r": _collapse(self.max_path_r), "min_path_r": _collapse(self.min_path_r),
             "r_unclipped": _collapse(self.r_unclipped), "paths": self.n_paths, "aligned": self.aligned, "global": self.is_global}
        if self.n_paths is None:
            d["paths_more_than"] = MAX_PATHS
        if any(a.approx for a in self.axes):
            d["per_path_approximate"] = True  # max/min_path_r and alignment: from the kept paths
        tail = {}
        fr = [s for s in self.S if isinstance(s, Fraction) and s.denominator != 1]
        if fr:
            tail["S_exact"] = _collapse(tuple(str(s) if s is not None else None for s in self.S))
        if not self.aligned:
            tail["misaligned"] = "; ".join(a.why_misaligned() for a in self.axes if not a.aligned)
            tail["S_paths"] = _collapse(tuple(tuple(_jnum(s) for s in a.Ss) for a in self.axes))
        lists = any(v.__class__ is list for v in (*d.values(), *tail.values()))
        return d, tail, lists


def _axis_dict(a: AxisField, nd: int) -> tuple[dict, dict, bool]:
    """``LayerField._axes_dict`` of a layer whose axes are all the field ``a`` (what
    ``_collapse`` gives for equal values on every axis), computed once per field."""
    got = a.__dict__.get("_dict")
    if got is not None and got[0] == nd:
        return got[1]
    S = a.S
    d = {"r": a.r, "S": _jnum(S), "P": a.P, "start": a.start, "end": a.end, "centre": _jnum(a.centre),
         "r_min": a.r_min, "r_max": a.r_max, "max_path_r": a.max_path_r, "min_path_r": a.min_path_r,
         "r_unclipped": a.r_unclipped, "paths": a.count, "aligned": a.aligned, "global": a.is_global}
    if a.count is None:
        d["paths_more_than"] = MAX_PATHS
    if a.approx:
        d["per_path_approximate"] = True  # max/min_path_r and alignment: from the kept paths
    tail = {}
    if isinstance(S, Fraction) and S.denominator != 1:
        tail["S_exact"] = str(S)
    if not a.aligned:
        tail["misaligned"] = "; ".join([a.why_misaligned()] * nd)
        tail["S_paths"] = [_jnum(s) for s in a.Ss]
    got = (d, tail, "S_paths" in tail)
    a.__dict__["_dict"] = (nd, got)
    return got


def _copy_lists(v):
    return [_copy_lists(x) if x.__class__ is list else x for x in v]


def _collapse(t: tuple):
    """One value when every axis agrees, else the list per axis."""
    t = tuple(list(x) if isinstance(x, tuple) else x for x in t)
    return t[0] if len(t) and all(x == t[0] for x in t) else list(t)


def _jnum(x):
    if isinstance(x, Fraction):
        return int(x) if x.denominator == 1 else float(x)
    return x


def fmt_num(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, Fraction):
        return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    return str(x)


# ----------------------------------------------------------------------------- the report
@dataclass
class RFReport:
    name: str
    input_shape: Shape
    layers: dict[str, LayerField]
    source: str | None = None

    def __getitem__(self, name: str) -> LayerField:
        try:
            return self.layers[name]
        except KeyError:
            import difflib
            close = difflib.get_close_matches(name, list(self.layers), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise CnnCalcError(f"no layer named {name!r} in {self.name}{hint}") from None

    @property
    def misaligned(self) -> list[str]:
        """Merge nodes where the paths disagree (the first place each misalignment appears)."""
        return [f.name for f in self.layers.values()
                if f.windows is None and len(f.sources) > 1 and f.unknown is None and not f.aligned]

    @property
    def aligned(self) -> bool:
        return all(f.aligned for f in self.layers.values() if f.unknown is None)

    def to_dict(self) -> dict:
        with paused_gc():
            return self._to_dict()

    def _to_dict(self) -> dict:
        cache: dict = {}
        return {"name": self.name, "input": list(self.input_shape),
                "layers": [f.to_dict(cache) for n, f in self.layers.items() if n != INPUT],
                "aligned": self.aligned, "misaligned": self.misaligned,
                "convention": "pixel i centred at i; unit u sees [u*S - P, u*S - P + r - 1] "
                              "(Araujo, Norris & Sim, Distill 2019)"}


def receptive_fields(graph: Graph | str, input_shape: Shape | None = None) -> RFReport:
    """The receptive field of every node of ``graph`` (a Graph, a spec path or a zoo name)."""
    with paused_gc():  # (many small acyclic objects: see cnncalc._gc)
        return _receptive_fields(graph, input_shape)


def _signal_window(graph, src, win, nd):
    """A conv reading a generic tensor of 2 axes (C x L: ECA's Conv1d over the channel
    descriptor) slides along the tensor's second axis: the window applies to the input's
    spatial axis that axis is, whole; over anything else (channels, mixed positions) the
    window's positions are unknown (harmless where the sources already see the whole input)."""
    t = graph.input_shape if src == INPUT else graph[src].shape
    if t.__class__ is not Tensor or len(t) != 2 or len(win) != 1:
        return win
    r = t.roles[1] if t.roles else None
    if r is not None and len(r) == 1 and isinstance(r[0][0], int) and r[0][1] == t[1] and r[0][0] < nd:
        return [win[0] if ax == r[0][0] else None for ax in range(nd)]
    return [UNKNOWN] * nd


def _receptive_fields(graph, input_shape) -> RFReport:
    if not isinstance(graph, Graph):
        from cnncalc.spec.loader import load_spec
        graph = load_spec(graph)
    graph.infer(input_shape)
    in_sp = spatial(graph.input_shape)
    if not in_sp:
        raise CnnCalcError(f"the input {list(graph.input_shape)} has no spatial axes, so there is no "
                           "receptive field", )
    nd = len(in_sp)
    first = {}  # axes of equal size start as one AxisField (see below)
    start = tuple(first.setdefault(n, AxisField(frozenset({IDENTITY}), n, n, full=frozenset({IDENTITY})))
                  for n in in_sp)
    fields: dict[str, LayerField] = {
        INPUT: LayerField(INPUT, "input", "input", [], graph.input_shape, start,
                          explain=["r = 1, S = 1, P = 0 (each pixel sees itself)"])}
    for node in graph.layers:
        layer = node.layer
        if not node.inputs:  # an op of constants only: it sees no pixel (a path-less field)
            fields[node.name] = LayerField(
                node.name, layer.kind, layer.describe(), [], node.shape,
                tuple(AxisField(frozenset(), 1, n, full=frozenset()) for n in in_sp), layer.rf_windows(),
                explain=["reads no input (an op of constants only): its values are the same for every "
                         "input, and add nothing to a field they join"])
            continue
        srcs = [node.inputs[i] for i in layer.rf_inputs()]
        ins = [fields[s] for s in srcs]
        win = layer.rf_windows()
        if win.__class__ is dict:  # a tensor op: {spatial axis: effect}, pointwise on the others
            win = [win.get(ax) for ax in range(nd)]
        elif win.__class__ is list and srcs:
            win = _signal_window(graph, srcs[0], win, nd)
        unknown = _unknown(layer, ins)
        deconv = layer.kind == "deconv"
        sp = spatial(node.shape)
        axes = []
        sp_prev = w_prev = None  # (the axis before: read from ax = 1 on)
        for ax in range(nd):
            src = [f.axes[ax] for f in ins]
            n_out = sp[ax] if len(sp) == nd else src[0].n
            w = win[ax] if win.__class__ is list else win
            if SHORTCUTS and ax and n_out == sp_prev and _same(w, w_prev) and all(
                    f.axes[ax] is f.axes[ax - 1] for f in ins) and in_sp[ax] == in_sp[ax - 1]:
                # the same sources, window and size as the axis before (a square layer on a
                # square map): the same field, one object (its numbers are computed once)
                axes.append(axes[-1])
                continue
            sp_prev, w_prev = n_out, w
            if w is UNKNOWN:  # positions scrambled: harmless where every source sees the whole input
                if not all(a.is_global for a in src):
                    unknown = unknown or node.name
                w = None
            if w is None:
                if SHORTCUTS and len(src) == 1 and src[0].n == n_out:  # pointwise: the source's field itself
                    axes.append(src[0])
                    continue
                carried = _carry_merge(src) if SHORTCUTS and len(src) > 1 else None
                axes.append(AxisField(n=n_out, size_in=in_sp[ax], is_global=any(a.is_global for a in src),
                                      **(carried or _carry(src))))
            elif w == GLOBAL:
                n = 1 if win == GLOBAL else n_out
                each = [AxisField(n=1, size_in=a.size_in, is_global=True,
                                  **_carry([a], lambda p, n=a.n: apply_global(p, n))) for a in src]
                axes.append(AxisField(n=n, size_in=in_sp[ax], is_global=True, **_carry(each)))
            else:
                # an AxisMap layer may have a shape-only second input (crop's 'to:')
                if len(win) != nd or (len(src) != 1 and not isinstance(w, AxisMap)):
                    raise CnnCalcError(f"{node.name}: cannot follow the receptive field through a "
                                       f"{layer.kind} layer with {len(src)} inputs")
                a = src[0]
                carried = _carry_window(a, w) if SHORTCUTS and not deconv and w.__class__ is Window else None
                axes.append(AxisField(n=n_out, size_in=in_sp[ax], is_global=a.is_global,
                                      **(carried or _carry([a], lambda p, w=w: apply_window(p, w, deconv)))))
        lf = LayerField(node.name, layer.kind, layer.describe(), list(node.inputs), node.shape,
                        tuple(axes), win, deconv, field_inputs=srcs,
                        gated=len(srcs) < len(node.inputs) and getattr(layer, "gated", False),
                        unknown=unknown)
        if lf.is_global:
            lf.global_since = next((f.global_since for f in ins if f.is_global and f.global_since), node.name)
        lf.explain = _explain(lf, ins) if unknown is None else [
            f"unknown: {unknown} scrambles the positions of the input" + (" (this layer)" if unknown == node.name
                                                                            else "")]
        if lf.gated:
            gate = [s for s in node.inputs if s not in srcs]
            lf.explain.append(f"gated by {', '.join(gate)} (broadcast, e.g. squeeze-excitation): "
                              f"every unit also depends on all the pixels the gate sees; r follows "
                              f"the full-size branch")
        fields[node.name] = lf
    return RFReport(graph.name, graph.input_shape, fields, graph.source)


def _unknown(layer, ins) -> str | None:
    """Where the field became unknown, if a source's is; an image layer reading a tensor whose
    axes are not channels then spatial (read as C x H x W, as PyTorch) makes it unknown here
    (unless every source sees the whole input)."""
    for f in ins:
        if f.unknown is not None:
            return f.unknown
    if not layer.tensors:
        for f in ins:
            if f.shape.__class__ is Tensor and not all(a.is_global for a in f.axes):
                return layer.name
    return None


# ----------------------------------------------------------------------------- unit queries
def _hull(ivs) -> Interval | None:
    ivs = [iv for iv in ivs if iv is not None]
    if not ivs:
        return None
    return min(i[0] for i in ivs), max(i[1] for i in ivs)


def _blind(a: AxisField) -> bool:
    """A field without a path: a layer of constants only (``inputs: []``) and the ops after it."""
    return a.full is not None and not a.full


def support_arrays(rep: RFReport, layer: str, ax: int) -> list[Interval | None]:
    """Per unit of ``layer`` along axis ``ax``: the hull of the input pixels it really depends on.

    Unlike ``clipped`` this follows only real units (padding is zeros at every layer), so a
    unit whose window lies entirely in an intermediate layer's padding gets less (or None).
    """
    memo = rep.__dict__.setdefault("_support", {})
    if (layer, ax) in memo:
        return memo[(layer, ax)]
    for name, lf in rep.layers.items():
        if (name, ax) in memo:
            continue
        a = lf.axes[ax]
        if name == INPUT:
            arr = [(u, u) for u in range(a.n)]
        elif (w := _axis_window(lf, ax)) is None:
            # (a value of constants only sees no pixel: it adds nothing where it joins)
            # (a source of one unit along the axis is broadcast: every unit reads its one unit)
            srcs = [memo[(s, ax)] for s in lf.sources if not _blind(rep.layers[s].axes[ax])]
            srcs = [s * a.n if len(s) == 1 != a.n else s for s in srcs]
            arr = (srcs[0] if len(srcs) == 1 else [_hull(s[u] for s in srcs) for u in range(a.n)] if srcs
                   else [None] * a.n)
        elif w == GLOBAL:
            arr = [_hull(iv for s in lf.sources for iv in memo[(s, ax)])] * a.n
        else:
            src = memo[(lf.sources[0], ax)]
            arr = [_hull(src[i] for i in _inside(*_reads(w, lf.deconv, u), len(src))) for u in range(a.n)]
        memo[(name, ax)] = arr
        if name == layer:
            break
    return memo[(layer, ax)]


@dataclass(frozen=True)
class UnitField:
    """``unclipped``: the geometric field (Distill), may reach into the padding; ``clipped``:
    intersected with the input; ``support``: the hull of the pixels the unit really depends on
    (padding is zeros) — what a gradient check sees; ``paths``: per-path intervals."""
    layer: str
    unit: tuple[int, ...]
    unclipped: tuple[Interval | None, ...]
    clipped: tuple[Interval | None, ...]
    paths: tuple[tuple[Interval, ...], ...]
    input_shape: Shape
    support: tuple[Interval | None, ...] = ()

    def to_dict(self) -> dict:
        return {"layer": self.layer, "unit": list(self.unit),
                "unclipped": [list(iv) if iv else None for iv in self.unclipped],
                "clipped": [list(iv) if iv else None for iv in self.clipped],
                "support": [list(iv) if iv else None for iv in self.support],
                "paths": [[list(iv) for iv in ax] for ax in self.paths],
                "input": list(self.input_shape)}


def unit_field(source: RFReport | Graph | str, layer: str, unit, input_shape: Shape | None = None
               ) -> UnitField:
    """The input pixels unit ``unit`` (one index per spatial axis) of ``layer`` sees.

    ``unclipped``: per axis (lo, hi) in input pixel coordinates, possibly in the padding;
    ``clipped``: intersected with [0, N − 1] (None if it misses the input entirely).
    """
    rep = source if isinstance(source, RFReport) else receptive_fields(source, input_shape)
    lf = rep[layer]
    if lf.unknown is not None:
        raise CnnCalcError(f"the receptive field of {layer} is unknown: {lf.unknown} scrambles the positions "
                           f"of the input (a reshape across H/W, a product of two positions)")
    unit = tuple(int(u) for u in (unit if isinstance(unit, (tuple, list)) else (unit,)))
    nd = len(lf.axes)
    if len(unit) == 1 and nd > 1 and lf.is_global:
        unit = unit * nd
    if len(unit) != nd:
        raise CnnCalcError(f"{layer} has {nd} spatial axes: give {nd} unit indices (e.g. "
                           f"{','.join('0' * nd)}), got {len(unit)}")
    for ax, (u, a) in enumerate(zip(unit, lf.axes)):
        if not 0 <= u < a.n:
            raise CnnCalcError(f"unit index {u} is outside {layer}'s axis {ax} (0..{a.n - 1})")
    support = tuple(support_arrays(rep, layer, ax)[u] for ax, u in enumerate(unit))
    if None in support:  # a box with an empty side is empty (a unit in the padding along one axis)
        support = (None,) * len(support)
    return UnitField(layer, unit, tuple(a.interval(u) for a, u in zip(lf.axes, unit)),
                     tuple(a.clipped(u) for a, u in zip(lf.axes, unit)),
                     tuple(tuple(sorted({iv for iv in (p.at(u) for p in (a.full or a.paths)) if iv}))
                           for a, u in zip(lf.axes, unit)),
                     rep.input_shape, support)


# ----------------------------------------------------------------------------- explanations
def _axis_names(nd: int) -> tuple[str, ...]:
    return (AXES_2D if nd == 2 else ("L",) if nd == 1 else ("D", "H", "W") if nd == 3
            else tuple(f"axis{i}" for i in range(nd)))


def _explain(lf: LayerField, ins: list[LayerField]) -> list[str]:
    nd = len(lf.axes)
    names = _axis_names(nd)
    per_axis = []
    for ax in range(nd):
        if SHORTCUTS and ax and lf.axes[ax] is lf.axes[ax - 1] and _same(_axis_window(lf, ax),
                                                                          _axis_window(lf, ax - 1)) and all(
                f.axes[ax] is f.axes[ax - 1] for f in ins):
            per_axis.append(per_axis[-1])  # the same field, window and sources: the same text
            continue
        a = lf.axes[ax]
        srcs = [f.axes[ax] for f in ins]
        w = _axis_window(lf, ax)
        if w is None:
            if len(ins) > 1:
                parts = ", ".join(f"{f.name} [{_iv(f.axes[ax].first)}]" for f in ins)
                text = f"union of {parts} = [{_iv(a.first)}], r = {a.r}"
                if not a.aligned:
                    text += f"; MISALIGNED ({a.why_misaligned()}): union r = {a.r}"
                    text += (f" > max-path r = {a.max_path_r}" if a.r > a.max_path_r
                             else f", max-path r = {a.max_path_r}")
                elif a.max_path_r != a.min_path_r:
                    text += f" (paths: {a.min_path_r}..{a.max_path_r})"
            else:
                text = a.__dict__.get("_pointwise") if SHORTCUTS else None
                if text is None:  # (a field shared by a chain of pointwise layers: once)
                    text = a.__dict__["_pointwise"] = f"pointwise: r = {a.r}, S = {fmt_num(a.S)}, P = {fmt_num(a.P)}"
            per_axis.append(text)
        elif w == GLOBAL:
            s = srcs[0]
            per_axis.append(f"global: sees all {s.n} input units: [{_iv(a.first)}], clipped "
                            f"[{_iv(a.clipped(0))}] = {_size(a.clipped(0))} of {a.size_in} input pixels")
        else:
            s = srcs[0]
            per_axis.append(_explain_window(w, s, a, lf.deconv))
    if nd > 1 and len(set(per_axis)) == 1:
        return per_axis[:1]
    return [f"{n}: {t}" for n, t in zip(names, per_axis)]


def _axis_window(lf: LayerField, ax: int):
    """What the layer does along axis ``ax``: None (pointwise), GLOBAL, or a Window/AxisMap (an
    UNKNOWN of a field that stayed known is pointwise: every source sees the whole input)."""
    w = lf.windows[ax] if lf.windows.__class__ is list else lf.windows
    return None if w is UNKNOWN else w


def _iv(iv) -> str:
    return "–" if iv is None else f"{iv[0]}, {iv[1]}"


def _size(iv) -> int:
    return 0 if iv is None else iv[1] - iv[0] + 1


def _explain_window(w: Window, prev: AxisField, a: AxisField, deconv: bool) -> str:
    Sp = prev.S
    if isinstance(w, AxisMap):
        ratio = Fraction(w.b, w.a)
        return (f"{w.label}: S = {fmt_num(Sp)}*{fmt_num(ratio)} = {fmt_num(a.S)}; r = {a.r_min}"
                + (f"..{a.r_max} (depends on the output unit)" if a.r_max != a.r_min else "")
                + f", unit 0 sees [{_iv(a.first)}], P = {fmt_num(a.P)}")
    k = w.extent
    keff = f"{w.kernel}" if w.dilation == 1 else f"({w.dilation}*({w.kernel} − 1) + 1 = {k})"
    if prev.S is None:
        return (f"misaligned input: each path moved on its own; r = {a.r}, "
                f"paths {a.min_path_r}..{a.max_path_r}")
    Sp, Pp, rp = prev.S, prev.P, prev.r
    if deconv:
        return (f"transposed: S = {fmt_num(Sp)}/{w.stride} = {fmt_num(a.S)}; r = {a.r_min}"
                + (f"..{a.r_max} (depends on the output phase)" if a.r_max != a.r_min else "")
                + f", unit 0 sees [{_iv(a.first)}], P = {fmt_num(a.P)}")
    if prev.r_min != prev.r_max or len(prev.paths) > 1 and a.r != rp + (k - 1) * Sp:
        return (f"r = {a.r} (unit 0; input phase-dependent or branched), S = {fmt_num(Sp)}*{w.stride}"
                f" = {fmt_num(a.S)}, P = {fmt_num(a.P)}")
    pad = "" if w.pad_lo == w.pad_hi else f" (pad [{w.pad_lo}, {w.pad_hi}]: only the low side counts)"
    return (f"r = {rp} + ({keff} − 1)*{fmt_num(Sp)} = {a.r}, S = {fmt_num(Sp)}*{w.stride} = "
            f"{fmt_num(a.S)}, P = {fmt_num(Pp)} + {w.pad_lo}*{fmt_num(Sp)} = {fmt_num(a.P)}{pad}")
