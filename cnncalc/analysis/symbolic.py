"""Cost as a function of the input size: ``summarize --symbolic``.

The shape rules run once more over the graph, on expressions instead of numbers: each spatial
size is a quasi-affine expression (:mod:`cnncalc.analysis.qaffine`) of the input's H and W (L of
a signal; D, H, W of a volume). A layer's counts are then sums of products of those sizes:

* parameters: constants (a locally connected layer or an untied bias: per output position);
* MACs: per output position × h·w (conv, depthwise, locally connected), per input position ×
  h·w (transposed conv), a constant (fc);
* activations: C × h·w of every layer that makes a new tensor (views make none).

Which sizes a network accepts is collected on the way, as constraints on one axis at a time: a
window must fit (``W + P − E ≥ 0``), exact rounding needs ``S`` to divide ``W + P − E``, merged
branches need equal sizes, and an fc layer after a flatten reads as many values as its weights
were made for (the spec's input fixes them). Every constraint is periodic in the axis beyond a
threshold (its expression is quasi-affine), so the accepted sizes are computed exactly by a scan
of one threshold plus one period.

Layers whose output does not follow from H and W by such rules (tokens, tensors, the
low-level vocabulary, opaque layers) are refused by name.
"""
from __future__ import annotations

from math import ceil, gcd, lcm

from cnncalc.analysis.qaffine import Expr, Poly
from cnncalc.errors import SpecError
from cnncalc.graph import INPUT, Graph
from cnncalc.shapes import Tensor, numel

AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
WINDOWED = ("conv", "dwconv", "local", "maxpool", "avgpool")
# layers whose output has their (first) input's spatial size
SAME_SIZE = ("relu", "relu6", "leakyrelu", "tanh", "sigmoid", "silu", "hardswish", "hardsigmoid", "gelu",
             "mish", "elu", "selu", "softplus", "prelu", "maxout", "batchnorm", "lrn", "dropout", "identity",
             "scale", "pad_channels", "channel_shuffle", "split", "groupnorm", "instancenorm", "layernorm",
             "softmax", "logsoftmax")
SCAN_LIMIT = 1_000_000  # sizes the domain scan may visit per axis


class SymbolicError(SpecError):
    pass


class Constraint:
    """``expr ≥ 0`` (ge), ``expr = 0`` (eq) or ``expr ≡ 0 mod m`` (div), on one axis."""

    __slots__ = ("axis", "kind", "expr", "m", "why")

    def __init__(self, axis: str, kind: str, expr: Expr, why: str, m: int = 0):
        self.axis, self.kind, self.expr, self.why, self.m = axis, kind, expr, why, m

    def holds(self, env, memo) -> bool:
        v = self.expr.value(env, memo)
        if v.__class__ is not int:  # a size that is not whole: an earlier exact division failed
            return False
        if self.kind == "ge":
            return v >= 0
        if self.kind == "eq":
            return v == 0
        return v % self.m == 0

    def text(self) -> str:
        e = self.expr.text()
        return {"ge": f"{e} >= 0", "eq": f"{e} = 0", "div": f"{e} divisible by {self.m}"}[self.kind]


class Domain:
    """The sizes one axis accepts: ``small`` (a finite list below ``start``) plus every
    v ≥ ``start`` with v mod ``period`` in ``residues`` (sorted)."""

    def __init__(self, axis, small, start, period, residues):
        self.axis, self.small, self.start, self.period, self.residues = axis, small, start, period, residues

    def __contains__(self, v: int) -> bool:
        if v < self.start:
            return v in self.small
        return v % self.period in self.residues

    @property
    def finite(self) -> bool:
        return not self.residues

    def text(self) -> str:
        a = self.axis
        if not self.small and not self.residues:
            return f"no {a} at all"
        if self.finite:
            return f"{a} = {self.small[0]}" if len(self.small) == 1 else f"{a} in {{{_runs(self.small)}}}"
        # the smallest m from which the periodic rule alone describes every accepted size
        m = self.start
        while m - 1 >= 1 and ((m - 1) in self.small) == ((m - 1) % self.period in self.residues):
            m -= 1
        lo = min(v for v in range(m, m + self.period) if v % self.period in self.residues)
        extra = [v for v in self.small if v < m]
        if len(self.residues) == self.period:
            rule = f"{a} >= {lo}"
        elif len(self.residues) == 1:
            rule = f"{a} >= {lo} with {a} = {lo} + {self.period}k"
        else:
            rs = sorted(self.residues)
            shown = ", ".join(map(str, rs[:16])) + (", ..." if len(rs) > 16 else "")
            rule = f"{a} >= {lo} with {a} mod {self.period} in {{{shown}}}"
        if extra:
            rule += f", and {a} in {{{_runs(extra)}}}"
        return rule

    def to_json(self) -> dict:
        return {"axis": self.axis, "text": self.text(), "finite": list(self.small), "start": self.start,
                "period": self.period, "residues": list(self.residues)}

    def sample(self, rng, n: int, upto: int) -> list[int]:
        """Up to ``n`` distinct accepted sizes ≤ ``upto`` (fewer if there are fewer)."""
        pool = [v for v in self.small if v <= upto]
        if self.residues:
            pool += [v for v in range(self.start, upto + 1) if v % self.period in self.residues]
        return sorted(rng.sample(pool, min(n, len(pool))))


def _runs(values: list[int], most: int = 12) -> str:
    """``207..210, 215..218, 223``: sorted ints as runs."""
    runs = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    parts = [f"{lo}" if lo == hi else f"{lo}, {hi}" if hi == lo + 1 else f"{lo}..{hi}" for lo, hi in runs]
    return ", ".join(parts[:most]) + (", ..." if len(parts) > most else "")


class SymLayer:
    __slots__ = ("name", "kind", "description", "sizes", "channels", "params", "macs", "activations",
                 "view", "explain", "line")

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.kind, "description": self.description,
                "shape": [s.text() for s in self.sizes] + [self.channels] if self.sizes is not None else
                [self.channels.text()],
                "shape_python": [s.py() for s in self.sizes] + [self.channels] if self.sizes is not None else
                [self.channels.py()],
                "view": self.view,
                **{k: formula(getattr(self, k)) for k in ("params", "macs", "activations")}}


def formula(p: Poly) -> dict:
    return {"formula": p.text(), "python": p.py(), "terms": p.to_json()}


class SymbolicReport:
    """The per-layer formulas, their totals, and the accepted input sizes per axis."""

    def __init__(self, name, source, axes, input_shape, layers, totals, domains, constraints, fixed,
                 batch, nbytes, dtype):
        self.name, self.source, self.axes, self.input_shape = name, source, axes, input_shape
        self.layers, self.totals, self.domains, self.constraints = layers, totals, domains, constraints
        self.fixed, self.batch, self.nbytes, self.dtype = fixed, batch, nbytes, dtype

    def accepts(self, sizes: tuple[int, ...]) -> bool:
        return all(v in d for v, d in zip(sizes, self.domains))

    def env(self, sizes) -> dict:
        return dict(zip(self.axes, sizes))

    def evaluate(self, sizes: tuple[int, ...]) -> dict:
        """The totals at one input size (ints): what the numeric analysis gives there."""
        env, memo = self.env(sizes), {}
        return {k: p.value(env, memo) for k, p in self.totals.items()}

    def to_dict(self) -> dict:
        return {
            "name": self.name, "source": self.source, "variables": list(self.axes),
            "input": list(self.input_shape), "batch": self.batch, "dtype": self.dtype,
            "bytes_per_element": self.nbytes,
            "accepted": [d.to_json() for d in self.domains],
            "fixed_by": list(self.fixed),
            "constraints": [{"axis": c.axis, "kind": c.kind, "python": c.expr.py(), "modulus": c.m or None,
                             "text": c.text(), "why": c.why} for c in self.constraints],
            "layers": [r.to_json() for r in self.layers],
            "totals": {k: formula(p) for k, p in self.totals.items()},
        }


# ----------------------------------------------------------------------------------- the walk
def symbolic(graph: Graph, *, batch: int = 1, nbytes: int = 4, dtype: str = "float32",
             input_shape=None, explain: bool = False) -> SymbolicReport:
    graph.infer(input_shape)
    x0 = graph.input_shape
    if x0.__class__ is Tensor:
        raise SymbolicError("--symbolic: the input is a token sequence / tensor; formulas in the input "
                            "size are made for images (HxWxC), signals (LxC) and volumes (DxHxWxC)",
                            file=graph.file, hint="analyse one size with --input instead")
    nd = len(x0) - 1
    axes = AXES.get(nd, ())
    if not axes:
        raise SymbolicError(f"--symbolic: the input {list(x0)} has no spatial axes: nothing depends on "
                            "an input size", file=graph.file, hint="summarize without --symbolic")
    walk = _Walk(graph, axes, explain)
    sizes0 = tuple(Expr.var(a) for a in axes)
    walk.sym[INPUT] = ("img", sizes0, x0[-1])
    rows = []
    for node in graph.nodes.values():
        if node.layer is None:
            continue
        row = walk.layer(node)
        row.macs, row.activations = row.macs.scaled(batch), row.activations.scaled(batch)
        rows.append(row)
    cin = x0[-1]
    totals = {"params": Poly(), "macs": Poly(), "activations": Poly()}
    for r in rows:
        totals["params"] = totals["params"] + r.params
        totals["macs"] = totals["macs"] + r.macs
        totals["activations"] = totals["activations"] + r.activations
    totals["input"] = Poly.product(cin * batch, sizes0)
    totals["memory_bytes"] = (totals["input"] + totals["activations"]).scaled(nbytes)
    domains = [scan_domain(a, [c for c in walk.constraints if c.axis == a]) for a in axes]
    return SymbolicReport(graph.name, graph.source, axes, tuple(x0), rows, totals, domains, walk.constraints,
                          walk.fixed, batch, nbytes, dtype)


class _Walk:
    def __init__(self, graph: Graph, axes, explain: bool):
        self.graph, self.axes, self.explain = graph, axes, explain
        self.sym: dict[str, tuple] = {}
        self.constraints: list[Constraint] = []
        self._seen: set = set()
        self.fixed: list[str] = []

    def need(self, axis, kind, expr: Expr, why: str, m: int = 0):
        if expr.is_constant:  # decided now: true at the spec's size, so true everywhere
            return
        key = (axis, kind, expr.key, m)
        if key not in self._seen:
            self._seen.add(key)
            self.constraints.append(Constraint(axis, kind, expr, why, m))

    def refuse(self, node, why: str):
        raise SymbolicError(f"--symbolic: {node.kind} layer has no formula in the input size: {why}",
                            file=self.graph.file, line=node.line, layer=node.name,
                            hint="--symbolic covers images, signals and volumes through conv, pooling, "
                                 "resampling, merges, norms and activations; analyse one size with --input")

    def image(self, node, name: str):
        s = self.sym[name]
        if s[0] != "img":
            self.refuse(node, f"its input {name!r} is a flat vector of {s[1].text()} values")
        return s[1], s[2]

    def layer(self, node) -> SymLayer:
        layer, kind, name = node.layer, node.kind, node.name
        for s in layer.in_shapes:
            if s.__class__ is Tensor:
                self.refuse(node, "it reads a token sequence or tensor, whose sizes are not "
                                  "spatial sizes (see docs/tensors.md)")
        if layer.out_shape.__class__ is Tensor:
            self.refuse(node, "it makes a token sequence or tensor")
        row = SymLayer()
        row.name, row.kind, row.description, row.view, row.line = name, kind, layer.describe(), layer.view, node.line
        row.explain = []
        ex = row.explain if self.explain else None
        params = sum(numel(s) for s, _ in layer.owned_param_shapes().values())
        row.params = Poly.product(params, ())
        row.macs = Poly.product(layer.macs(), ())
        out_c = layer.out_shape[-1]
        if kind in WINDOWED:
            sizes, c = self.image(node, node.inputs[0])
            out = tuple(self.slide(node, a, w, win, ex) for a, w, win in zip(self.axes, sizes, layer.windows))
            self.per_position(node, row, out, layer)
        elif kind == "deconv":
            sizes, c = self.image(node, node.inputs[0])
            out = []
            for a, w, win, op in zip(self.axes, sizes, layer.windows, layer.output_padding):
                o = (w - 1) * win.stride - win.pad_lo - win.pad_hi + win.extent + op
                self.need(a, "ge", o - 1, f"{name}: the transposed conv leaves an output")
                out.append(o)
                if ex is not None:
                    ex.append(f"{a}: ({w.text()} - 1)*{win.stride} - {win.pad_lo + win.pad_hi} + {win.extent}"
                              f"{f' + {op}' if op else ''} = {o.text()}")
            out = tuple(out)
            per = layer.macs() // numel(layer.in_shapes[0][:-1])
            if per * numel(layer.in_shapes[0][:-1]) != layer.macs():
                self.refuse(node, "its MACs are not a multiple of its input positions")
            row.macs = Poly.product(per, sizes)
            if ex is not None:
                ex.append(f"MACs: {per:,} per input position * {_prod_text(sizes)}")
        elif kind in ("global_avgpool", "global_maxpool", "adaptive_avgpool", "adaptive_maxpool"):
            sizes, c = self.image(node, node.inputs[0])
            out = tuple(Expr.constant(o) for o in layer.out_shape[:-1])
            for a, w, o in zip(self.axes, sizes, layer.out_shape[:-1]):
                self.need(a, "ge", w - o, f"{name}: pooling to {o} needs at least {o}")
            if ex is not None:
                ex.append(f"{' x '.join(s.text() for s in sizes)} -> {'x'.join(map(str, layer.out_shape[:-1]))}")
        elif kind == "upsample":
            sizes, c = self.image(node, node.inputs[0])
            if layer.args["size"] is not None:
                out = tuple(Expr.constant(o) for o in layer.out_shape[:-1])
            else:
                fs = [o // i for o, i in zip(layer.out_shape[:-1], layer.in_shapes[0][:-1])]
                out = tuple(w * f for w, f in zip(sizes, fs))
            if ex is not None:
                ex.append(" x ".join(f"{a}: {o.text()}" for a, o in zip(self.axes, out)))
        elif kind == "crop":
            sizes, c = self.image(node, node.inputs[0])
            if layer.args["to"] is not None:
                tsizes, _ = self.image(node, node.inputs[1])
                out = tsizes
                for a, w, t in zip(self.axes, sizes, tsizes):
                    self.need(a, "ge", w - t, f"{name}: cropped to {layer.args['to']}, which must not be larger")
            else:
                out = []
                for a, w, (lo, hi) in zip(self.axes, sizes, layer.crops):
                    o = w - lo - hi
                    self.need(a, "ge", o - 1, f"{name}: cropping {lo} + {hi} leaves something")
                    out.append(o)
                out = tuple(out)
            if ex is not None:
                ex.append(" x ".join(f"{a}: {o.text()}" for a, o in zip(self.axes, out)))
        elif kind == "padding":
            if layer.generic:
                self.refuse(node, "padding of other axes than the spatial ones (or mode: constant)")
            sizes, c = self.image(node, node.inputs[0])
            out = []
            for a, w, (lo, hi) in zip(self.axes, sizes, layer.pads):
                if layer.args["mode"] == "reflect":
                    self.need(a, "ge", w - max(lo, hi) - 1, f"{name}: reflect padding needs a longer input")
                out.append(w + lo + hi)
            out = tuple(out)
        elif kind in ("concat", "add", "mul"):
            if kind == "concat" and (layer.args.get("axis") is not None or layer.args.get("const")):
                self.refuse(node, "a concat along another axis than the channels")
            branches = [self.image(node, i) for i in node.inputs]
            full = [i for i, s in enumerate(layer.in_shapes) if s == layer.out_shape] if kind == "mul" \
                else range(len(branches))
            full = list(full) or [0]
            out = branches[full[0]][0]
            for i, (bs, _) in enumerate(branches):
                if i not in full:  # a broadcast gate: 1x1xC whatever the input size
                    for a, s in zip(self.axes, bs):
                        if not (s.is_constant and s.const == 1):
                            self.refuse(node, f"the branch {node.inputs[i]!r} broadcasts only at one size")
                    continue
                for a, s0, s in zip(self.axes, out, bs):
                    if s != s0:
                        self.need(a, "eq", s - s0, f"{name}: its branches {node.inputs[full[0]]!r} and "
                                                   f"{node.inputs[i]!r} have equal sizes")
        elif kind == "flatten":
            sizes, c = self.image(node, node.inputs[0]) if self.sym[node.inputs[0]][0] == "img" else (None, None)
            if sizes is None:
                self.sym[name] = self.sym[node.inputs[0]]
            else:
                self.sym[name] = ("flat", Poly.product(c, sizes), (sizes, layer.in_shapes[0]))
            return self._finish(row, node, None, self.sym[name][1])
        elif kind == "fc":
            s = self.sym[node.inputs[0]]
            src = s[2] if s[0] == "flat" else (s[1], layer.in_shapes[0])
            if src is not None:
                sizes, nominal = src
                for a, e, n in zip(self.axes, sizes, nominal[:-1]):
                    if not e.is_constant:
                        self.need(a, "eq", e - n, f"{name}: its {layer.in_features:,} weights per unit read a "
                                                  f"{'x'.join(map(str, nominal))} input")
                        if name not in self.fixed:
                            self.fixed.append(name)
            self.sym[name] = ("flat", Poly.product(out_c, ()), None)
            return self._finish(row, node, None, self.sym[name][1])
        elif kind == "pad_channels":
            sizes, c = self.image(node, node.inputs[0])
            out = tuple(w.ceil_div(st) for w, st in zip(sizes, layer.strides))
            if ex is not None and max(layer.strides) > 1:
                ex.append(" x ".join(f"{a}: ceil({w.text()}/{st}) = {o.text()}"
                                     for a, w, st, o in zip(self.axes, sizes, layer.strides, out)))
        elif kind in SAME_SIZE:
            s = self.sym[node.inputs[0]]
            if s[0] == "flat":
                if layer.out_shape != layer.in_shapes[0]:
                    self.refuse(node, "it changes the length of a flat vector")
                self.sym[name] = s  # (the same values: an fc after it still reads the flatten's sizes)
                return self._finish(row, node, None, s[1])
            if layer.in_shapes[0][:-1] != layer.out_shape[:-1]:
                self.refuse(node, "it changes the spatial size")
            if layer.args.get("axis") is not None:
                self.refuse(node, "it works along a given axis")
            if kind == "layernorm" and getattr(layer, "norm_axis", None) is not None:
                self.refuse(node, "it normalises over axes that include the spatial ones")
            out = s[1]
        else:
            self.refuse(node, "a low-level tensor operation or an opaque layer has no shape rule in H and W")
        if kind not in WINDOWED + ("deconv",) and layer.macs():
            self.refuse(node, "its MACs depend on sizes that the symbolic form does not follow")
        self.sym[name] = ("img", tuple(out), out_c)
        return self._finish(row, node, tuple(out), None)

    def _finish(self, row, node, sizes, flat):
        layer = node.layer
        row.sizes, row.channels = sizes, (layer.out_shape[-1] if sizes is not None else flat)
        if sizes is not None:
            row.activations = Poly() if layer.view else Poly.product(layer.out_shape[-1], sizes)
        else:
            row.activations = Poly() if layer.view else flat
        if self.explain:
            if row.params.terms:
                row.explain.append(f"params: {row.params.text()}")
            if row.macs.terms:
                row.explain.append(f"MACs: {row.macs.text()}")
            if row.activations.terms:
                row.explain.append(f"activations: {row.activations.text()}")
            elif layer.view:
                row.explain.append("activations: 0 (a view of its input)")
        return row

    def per_position(self, node, row, out, layer):
        positions = numel(layer.out_shape[:-1])
        macs = layer.macs()
        per = macs // positions
        if per * positions != macs:
            self.refuse(node, "its MACs are not a multiple of its output positions")
        row.macs = Poly.product(per, out)
        if self.explain and per:
            row.explain.append(f"MACs: {per:,} per output position * {_prod_text(out)}")
        # parameters that exist per output position: a locally connected layer's weights, an untied bias
        fixed, each = 0, 0
        for shape, _ in layer.owned_param_shapes().values():
            n = numel(shape)
            if node.kind == "local" or (len(shape) > 1 and tuple(shape[1:]) == tuple(layer.out_shape[:-1])):
                each += n // positions
            else:
                fixed += n
        if each:
            row.params = Poly.product(fixed, ()) + Poly.product(each, out)

    def slide(self, node, axis, w: Expr, win, ex) -> Expr:
        layer = node.layer
        rounding = layer.rounding or self.graph.rounding
        s, e = win.stride, win.extent
        name = node.name
        if layer.args.get("pad") == "same":
            # TensorFlow's rule: output ceil(W/S), total padding max((ceil(W/S) − 1)·S + E − W, 0)
            out = w.ceil_div(s)
            self.need(axis, "ge", w - 1, f"{name}: a non-empty input")
            if e < s and rounding == "exact":
                # W = qS − r: the padding is 0 when r < S − E, and then (W − E)/S is not whole
                # (floor gives q − 1 + 1, ceil q + 1 less the window in the padding: q again)
                self.need(axis, "ge", out * s - w - (s - e),
                          f"{name}: pad same, kernel {e} < stride {s}: exact rounding needs "
                          f"(-{axis} mod {s}) >= {s - e}")
            if ex is not None:
                ex.append(f"{axis}: pad same: ceil({w.text()}/{s}) = {out.text()}")
            return out
        num = w + (win.pad_lo + win.pad_hi - e)
        self.need(axis, "ge", num, f"{name}: the window ({e}) fits the padded input")
        step = f"({w.text()} + {win.pad_lo + win.pad_hi} - {e})/{s} + 1"
        if s == 1:
            out = num + 1
            rule = "exact"
        elif rounding == "floor":
            out = num.floor_div(s) + 1
            rule = "floor"
        elif rounding == "ceil":
            # ceil(num/S) + 1, less one when the last window starts in the right padding
            # ((out − 1)·S ≥ W + P_lo) and num is not a multiple of S (cnncalc.layers.base.slide).
            # With x = num + S − 1 that last window is dropped iff x mod S ≤ t, t = P_hi − E + S − 1,
            # and x mod S ≠ S − 1: so out = floor(x/S) + 1 − [x mod S ≤ t'], t' = min(t, S − 2),
            # and [x mod S ≥ t' + 1] = floor((x + S − t' − 1)/S) − floor(x/S)
            t = min(win.pad_hi - e + s - 1, s - 2)
            if t < 0:
                out = num.ceil_div(s) + 1
            else:
                out = (num + (2 * s - 2 - t)).floor_div(s)
            rule = "ceil"
        else:
            self.need(axis, "div", num, f"{name}: exact rounding: the stride {s} divides "
                                        f"{w.text()} + {win.pad_lo + win.pad_hi} - {e}", s)
            out = num.exact_div(s) + 1
            rule = "exact"
        if ex is not None:
            nt = f"({w.text()} + {win.pad_lo + win.pad_hi} - {e})"
            r = {"exact": step, "floor": f"floor({nt}/{s}) + 1",
                 "ceil": f"ceil({nt}/{s}) + 1, a last window starting in the right padding dropped"}[rule]
            ex.append(f"{axis}: {r} = {out.text()}")
        return out


def _prod_text(sizes) -> str:
    return "*".join(s.text(paren=True) for s in sizes)


# ------------------------------------------------------------------------------ the domain
def scan_domain(axis: str, constraints: list[Constraint]) -> Domain:
    """The exact set of sizes that satisfy every constraint of one axis.

    Each constraint's truth is periodic beyond a threshold: f(v + p) = f(v) + σp, so with
    g = f − σv (periodic, its extremes read off one period) f ≥ 0 holds for all v ≥ −min g/σ
    when σ > 0, fails beyond max g/(−σ) when σ < 0; f = 0 with σ ≠ 0 fails beyond the same
    bounds; divisibility and σ = 0 are periodic from the start. One scan of threshold +
    period then gives everything."""
    period, start = 1, 1
    for c in constraints:
        f = c.expr
        p = f.period()
        sigma = f.slope()
        if c.kind == "div":
            step = int(sigma * p)
            p = p * c.m // gcd(step, c.m)
            period = lcm(period, p)
            continue
        period = lcm(period, p)
        if sigma == 0:
            continue
        if p > SCAN_LIMIT:
            raise SymbolicError(f"--symbolic: the sizes {axis} accepts repeat only every {p:,}: too many to list",
                                hint=f"the constraint: {c.text()} ({c.why})")
        g = [f.value({axis: v}) - sigma * v for v in range(p)]
        lo, hi = min(g), max(g)
        if sigma > 0:
            t = ceil(-lo / sigma) + 1
        else:
            t = int(hi / -sigma) + 2
        start = max(start, t)
    if start + period > SCAN_LIMIT:
        raise SymbolicError(f"--symbolic: the sizes {axis} accepts need a scan of {start + period:,} values",
                            hint="this network's constraints are too irregular to list")
    small, residues = [], []
    for v in range(1, start + period):
        env, memo = {axis: v}, {}
        ok = all(c.holds(env, memo) for c in constraints)
        if ok:
            if v < start:
                small.append(v)
            else:
                residues.append(v % period)
    return Domain(axis, small, start, period, sorted(residues))
