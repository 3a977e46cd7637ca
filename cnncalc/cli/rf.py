"""``cnncalc receptive-field``: r, S, P and the first unit's field of every layer; unit queries;
quick chains for the lecture questions."""
from __future__ import annotations

import re

import click

from cnncalc.analysis.rf import MAX_PATHS, RFReport, fmt_num, receptive_fields, unit_field
from cnncalc.cli.common import fail, format_option, hidden_alias, input_option, load_graph, rounding_option
from cnncalc.errors import CnnCalcError, SpecError
from cnncalc.report.render import Column, TableView, emit_json, render
from cnncalc.shapes import fmt_shape, spatial

CHAIN_HELP = """\b
Chains (--chain): layers separated by commas or spaces, each written
  [KIND]K[xK2][sS | /S | /sS][pP][dD][-F][*N]
KIND  conv (default), pool or maxpool (stride defaults to the kernel),
      avgpool, deconv (transposed conv), dwconv
K     kernel size; S stride; P padding (both sides); D dilation;
      -F the filter count, as the Type column writes it (ignored: the
      field does not depend on it); *N the layer N times.
Every spelling below is the same grammar:
  3x3*3   "3x3 3x3 3x3"   3,3,3   conv3,conv3,conv3
  7x7s2,7x7s1   "7x7/2 7x7"   "conv7x7/s2-64 maxpool3x3/s2"
  11s4,pool3s2   3d2*4   deconv4s2p1
Without --input, the input is the smallest square on which every window fits."""

_NUM = r"\d+(?:x\d+)?"
_ITEM = re.compile(rf"^(?P<kind>conv|convdw|maxpool|avgpool|pool|deconv|dwconv)?"
                   rf"(?P<k>{_NUM})(?:(?:s|/s|/)(?P<s>{_NUM}))?(?:/g\d+)?(?:/?p(?P<p>{_NUM}))?"
                   rf"(?:/?d(?P<d>{_NUM}))?(?:-\d+)?(?:\*(?P<n>\d+))?$")
_KINDS = {None: "conv", "conv": "conv", "pool": "maxpool", "maxpool": "maxpool", "avgpool": "avgpool",
          "deconv": "deconv", "dwconv": "dwconv", "convdw": "dwconv"}
_SUFFIX = re.compile(r"^(?:/|s\d|p\d|d\d|-\d|\*\d)")


def _axes(v: str | None):
    if v is None:
        return None
    parts = [int(x) for x in v.split("x")]
    return parts[0] if len(parts) == 1 or len(set(parts)) == 1 else parts


def chain_items(text: str) -> list[str]:
    """The items of a chain: separated by commas or spaces; within a comma's part a bare kind
    (``conv 3x3``) joins the next word and a suffix (``7x7 s2``, ``3x3 *3``) the word before."""
    items: list[str] = []
    for part in text.lower().replace("×", "x").split(","):
        words: list[str] = []
        for w in part.split():
            if words and (words[-1] in _KINDS or _SUFFIX.match(w)):
                words[-1] += w
            else:
                words.append(w)
        items += words or [""]
    return items


def parse_chain(text: str) -> list[tuple[str, dict]]:
    """'7x7s2,7x7s1' → [(name, {conv: 1, kernel: 7, stride: 2}), ...] (see CHAIN_HELP)."""
    out: list[tuple[str, dict]] = []
    for tok in chain_items(text):
        m = _ITEM.match(tok)
        if not m or not tok:
            raise CnnCalcError(f"cannot read the chain item {tok!r}; write e.g. 3x3, 7x7s2, 7x7/2, conv3p1, "
                               f"pool2, 3x3d2, deconv4s2p1 or 3x3*3, separated by commas or spaces "
                               f"(cnncalc receptive-field --help shows the grammar)")
        kind = _KINDS[m["kind"]]
        args: dict = {"kernel": _axes(m["k"])}
        if kind in ("conv", "deconv"):
            args = {kind: 1, **args}
        else:
            args = {kind: args.pop("kernel"), **args}
        for key, g in (("stride", "s"), ("pad", "p"), ("dilation", "d")):
            if m[g] is not None:
                if key == "dilation" and kind == "avgpool":
                    raise CnnCalcError(f"{tok!r}: average pooling takes no dilation")
                args[key] = _axes(m[g])
        n = int(m["n"] or 1)
        if not 1 <= n <= 1000:
            raise CnnCalcError(f"{tok!r}: repeat between 1 and 1000 times")
        base = re.sub(r"[^\w]", "_", tok.split("*")[0])
        for _ in range(n):
            out.append((f"{len(out) + 1}_{base}", args))
    return out


def chain_graph(text: str, input_shape=None):
    """A graph for a chain; without an input, the smallest square input on which every window fits
    (for a chain without padding that is exactly the last layer's r: its single unit sees it all)."""
    import json

    from cnncalc.spec.loader import load_spec_text

    items = parse_chain(text)

    def build(shape):
        layers = [{**args, "name": name} for name, args in items]
        doc = {"name": f"chain {text}", "input": "x".join(map(str, shape)), "rounding": "floor",
               "layers": layers}
        g = load_spec_text(json.dumps(doc), file="<chain>")  # JSON is YAML
        return g.infer()

    if input_shape is not None:
        return build(input_shape)

    def fits(n):
        try:
            build((n, n, 1))
            return True
        except SpecError:
            return False
    hi = 1
    while not fits(hi):
        hi *= 2
        if hi > 1 << 16:
            raise CnnCalcError("no input up to 65536x65536 fits this chain")
    lo = hi // 2 + 1 if hi > 1 else 1
    while lo < hi:  # smallest size that fits (windows fit monotonically in the input size)
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return build((hi, hi, 1))


def _unit(ctx, param, value):
    if value is None:
        return None
    try:
        return tuple(int(x) for x in value.replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"write the unit as i,j (e.g. 3,4), got {value!r}") from None


@click.command("receptive-field", epilog=CHAIN_HELP)
@click.argument("spec", required=False)
@format_option()
@input_option
@rounding_option
@click.option("--chain", "chain", metavar="CHAIN",
              help="Analyse a quick chain of layers instead of a spec, e.g. '3x3*3', "
                   "'3x3 3x3 3x3' or '7x7/2 7x7' (the grammar is below).")
@hidden_alias("--layers", "chain")
@click.option("--layer", "-l", "layer", metavar="NAME", help="Show only this layer (with --unit: query one unit).")
@click.option("--unit", "unit", metavar="I,J", callback=_unit,
              help="The input rows and columns that unit (I, J) of --layer sees.")
@click.option("--explain", is_flag=True, help="Show the recurrence with the numbers for every row.")
def receptive_field(spec, fmt, input_shape, chain, layer, unit, explain):
    """Receptive field size r, effective stride S, effective padding P and the field of the
    first unit for every layer of SPEC (Araujo, Norris & Sim, Distill 2019; pixel i is
    centred at i, unit u sees input pixels u*S − P … u*S − P + r − 1).

    SPEC is a YAML file or the name of a shipped spec (see `cnncalc zoo`).

    \b
    Examples:
      cnncalc receptive-field vgg16
      cnncalc receptive-field vgg16 --explain --format markdown
      cnncalc receptive-field vgg16 --layer conv5_3 --unit 3,4
      cnncalc receptive-field --chain 3x3*3              # three 3x3 convs see 7x7
      cnncalc receptive-field --chain 7x7s2,7x7s1 --explain
      cnncalc receptive-field alexnet --format json
    """
    if (spec is None) == (chain is None):
        fail("give a SPEC (file or zoo name) or --chain, e.g. --chain 7x7s2,7x7s1")
    if unit is not None and layer is None:
        fail("--unit needs --layer NAME: which layer's unit?")
    if chain is not None:
        graph = chain_graph(chain, input_shape)
        rep = receptive_fields(graph)
    else:
        rep = receptive_fields(load_graph(spec, input_shape), input_shape)
    if layer is not None:
        rep[layer]  # a clear error for an unknown name
    if unit is not None:
        uf = unit_field(rep, layer, unit)
        if fmt == "json":
            obj = uf.to_dict()
            obj.update({k: v for k, v in rep[layer].to_dict().items() if k in ("r", "S", "P", "global")})
            emit_json(obj)
        else:
            render(unit_view(rep, uf), fmt)
        return
    if fmt == "json":
        obj = rep.to_dict()
        if layer is not None:
            obj["layers"] = [x for x in obj["layers"] if x["name"] == layer]
        if explain:
            for row in obj["layers"]:
                row["explain"] = rep[row["name"]].explain
        emit_json(obj, rows="layers")  # (one compact line unless on a terminal)
        return
    render(layer_view(rep, only=layer, explain=explain and fmt != "csv"), fmt)


# ------------------------------------------------------------------------------------- views
def _per_axis(values, f=str) -> str:
    vals = [f(v) for v in values]
    return vals[0] if len(set(vals)) == 1 else "x".join(vals)


def _field(lf) -> str:
    ivs = [f"[{a.start}, {a.end}]" if a.start is not None else "none" for a in lf.axes]
    return ivs[0] if len(set(ivs)) == 1 else " x ".join(ivs)


def _r(lf) -> str:
    out = []
    for a in lf.axes:
        out.append(str(a.r) if a.r_min == a.r_max else f"{a.r_min}..{a.r_max}")
    return out[0] if len(set(out)) == 1 else "x".join(out)


def _notes(lf) -> str:
    notes = []
    if lf.is_global:
        since = "" if lf.global_since in (None, lf.name) else f" since {lf.global_since}"
        notes.append(f"global{since}: sees the whole input (unclipped {_per_axis(lf.r_unclipped)})")
    if any(a.r_min != a.r_max for a in lf.axes):
        notes.append("depends on the output phase")
    if not lf.aligned:
        why = "; ".join(dict.fromkeys(a.why_misaligned() for a in lf.axes if not a.aligned))
        more = any(a.r > a.max_path_r for a in lf.axes)
        notes.append(f"MISALIGNED ({why}); union r {'>' if more else 'vs'} max-path r "
                     f"{_per_axis(lf.max_path_r)}")
    elif (lf.n_paths is None or lf.n_paths > 1) and lf.max_path_r != lf.min_path_r:
        count = f"over {MAX_PATHS}" if lf.n_paths is None else f"{lf.n_paths}"
        notes.append(f"{count} paths, r {_per_axis(lf.min_path_r)}..{_per_axis(lf.max_path_r)}")
    if any(a.approx for a in lf.axes):
        notes.append(f"over {MAX_PATHS} paths with phases: per-path r and alignment from the extremes kept")
    return "; ".join(notes)


def layer_view(rep: RFReport, only: str | None = None, explain: bool = False) -> TableView:
    rows = []
    for name, lf in rep.layers.items():
        if only is not None and name != only:
            continue
        if lf.unknown is not None:  # positions scrambled upstream: no number would be right
            row = {"name": name, "type": lf.description, "shape": lf.shape, "r": "?", "S": "?", "P": "?",
                   "field": "unknown", "centre": "?",
                   "notes": f"unknown: {lf.unknown} scrambles the positions" if lf.unknown == name
                   else f"unknown since {lf.unknown}"}
        else:
            row = {"name": name, "type": lf.description, "shape": lf.shape, "r": _r(lf),
                   "S": _per_axis(lf.S, fmt_num), "P": _per_axis(lf.P, fmt_num), "field": _field(lf),
                   "centre": _per_axis(lf.centre, fmt_num), "notes": _notes(lf)}
        if explain:
            row["explain"] = " | ".join(lf.explain)
        rows.append(row)
    cols = [Column("name", "Layer", "left"), Column("type", "Type", "left", style="dim", drop=4),
            Column("shape", "Output shape", "right", fmt=fmt_shape, drop=1),
            Column("r", "r"), Column("S", "S"), Column("P", "P"),
            Column("field", "unit 0 sees", "right", drop=2), Column("centre", "centre", drop=3),
            Column("notes", "", "left", style="yellow")]
    if explain:
        cols.append(Column("explain", "recurrence", "left", style="cyan"))
    notes = []
    if rep.misaligned:
        notes += _misaligned_notes(rep)
    else:
        notes.append("aligned: every path to every layer has the same S and the same centre")
    unknown = sorted({lf.unknown for lf in rep.layers.values() if lf.unknown is not None})
    if unknown:
        notes.append(f"unknown: {', '.join(unknown[:5])} scramble(s) the positions of the input (a reshape "
                     f"across H/W, a product of two positions such as QKᵀ): no field is given after it")
    opaque = [n for n, lf in rep.layers.items() if lf.type == "opaque"]
    if opaque:
        notes.append(f"WARNING: {len(opaque)} opaque layer(s) ({', '.join(opaque[:5])}) are treated as "
                     f"pointwise: fields through them are unknown")
    last = _last_local(rep)
    sections = []
    if last is not None:
        lf = rep[last]
        sections.append(("Summary", [
            ("last spatial layer", f"{last}: r = {_r(lf)}, S = {_per_axis(lf.S, fmt_num)}, "
                                   f"P = {_per_axis(lf.P, fmt_num)}"),
            ("convention", "pixel i is centred at i; unit u sees input pixels u*S - P .. u*S - P + r - 1 "
                           "(negative = in the padding)"),
        ]))
    return TableView(title=f"{rep.name} — receptive fields, input {fmt_shape(rep.input_shape)}",
                     columns=cols, rows=rows, sections=sections, notes=notes, caption=rep.source)


def _axis_labels(nd: int):
    return ("H", "W") if nd == 2 else ("L",) if nd == 1 else ("D", "H", "W") if nd == 3 else tuple(f"axis {i}" for i in range(nd))


def _misaligned_notes(rep) -> list[str]:
    """One note per misaligned merge and reason, its axes together ("along H and W"); merges
    with the same axes and reason (a ViT's 24 residual adds, Xception's 12 shortcuts) share one
    note that names them, each row's own note giving its numbers."""
    groups: dict[tuple, list] = {}
    for m in rep.misaligned:
        lf = rep[m]
        by: dict[tuple, list] = {}
        for ax, a in zip(_axis_labels(len(lf.axes)), lf.axes):
            if not a.aligned:
                by.setdefault((a.why_misaligned(), a.r > a.max_path_r), []).append((ax, a))
        for (why, larger), items in by.items():
            groups.setdefault((" and ".join(ax for ax, _ in items), why, larger), []).append((m, items))
    notes = []
    for (axes, why, larger), members in groups.items():
        cmp = "LARGER than" if larger else "not larger than"
        if len(members) == 1:
            (m, items), = members
            notes.append(f"{m} is misaligned along {axes} ({why}): its union field r = "
                         f"{_per_axis_of(items, 'r')} is {cmp} the largest single path's r = "
                         f"{_per_axis_of(items, 'max_path_r')}")
            continue
        names = [m for m, _ in members]
        shown = ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:3])}, ..., {names[-1]}"
        notes.append(f"{len(names)} merges are misaligned along {axes} ({why}): {shown}; each one's union "
                     f"field r is {cmp} its largest single path's r")
    return notes


def _per_axis_of(items, attr) -> str:
    """``attr`` of the axes in ``items``: one number when they agree, else per axis."""
    vals = [getattr(a, attr) for _, a in items]
    if len(set(vals)) == 1:
        return str(vals[0])
    return ", ".join(f"{v} ({ax})" for (ax, _), v in zip(items, vals))


def _last_local(rep: RFReport) -> str | None:
    last = None
    for name, lf in rep.layers.items():
        if name != "input" and lf.unknown is None and not lf.is_global and spatial(lf.shape):
            last = name
    return last


def _iv_text(iv) -> str:
    return f"{iv[0]}..{iv[1]}" if iv else "none"


def unit_view(rep: RFReport, uf) -> TableView:
    lf = rep[uf.layer]
    labels = _axis_labels(len(uf.unit))
    words = {"H": "rows", "W": "columns", "L": "positions"}
    rows = []
    for ax, (lab, u, un, cl, a) in enumerate(zip(labels, uf.unit, uf.unclipped, uf.clipped, lf.axes)):
        rows.append({"axis": f"{lab} ({words.get(lab, 'pixels')})", "unit": u,
                     "unclipped": f"{un[0]}..{un[1]}" if un else "none", "r": (un[1] - un[0] + 1) if un else 0,
                     "clipped": f"{cl[0]}..{cl[1]}" if cl else "none (all padding)",
                     "size": (cl[1] - cl[0] + 1) if cl else 0, "input": a.size_in,
                     "paths": "" if len(uf.paths[ax]) <= 1 else
                     " ".join(f"[{p[0]}, {p[1]}]" for p in uf.paths[ax]),
                     "support": _iv_text(uf.support[ax] if uf.support else cl), "_differs":
                     bool(uf.support) and uf.support[ax] != cl})
    cols = [Column("axis", "Axis", "left"), Column("unit", "Unit"),
            Column("unclipped", "Sees (unclipped)"), Column("r", "r"),
            Column("clipped", "Sees (clipped to the input)"), Column("size", "Size"),
            Column("input", "Input size", drop=1)]
    notes = ["pixel i is centred at i; indices outside 0..N-1 lie in the padding"]
    if any(r["_differs"] for r in rows):  # dilated taps in the padding: docs/conventions.md
        cols.append(Column("support", "Depends on"))
        notes.append("depends on: the pixels reached by taps that land on the image (taps in the "
                     "padding see zeros); this is what verify measures")
    for r in rows:
        del r["_differs"]
    if any(r["paths"] for r in rows):
        cols.append(Column("paths", "per path", "left"))
    unit = ",".join(map(str, uf.unit))
    return TableView(title=f"{rep.name}: unit ({unit}) of {uf.layer} ({fmt_shape(lf.shape)})",
                     columns=cols, rows=rows, notes=notes)
