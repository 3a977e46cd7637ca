"""The layer graph as a picture: a layered (Sugiyama) layout, pure Python.

``layout_graph(graph, depth)`` turns the inferred layer DAG into boxes and edge routes:

1. **collapse** module instances and blocks to one node per name prefix of ``depth``
   components (the rows of ``summarize --depth``);
2. **layering** by longest path from the input: a node sits one row below its deepest input;
   an edge spanning several rows gets a dummy node per row it crosses (a lane of its own);
3. **ordering** within each row by barycentre sweeps (down with the parents' positions, up
   with the children's), keeping the order with the fewest crossings;
4. **coordinates**: each row is placed as close as possible (least squares) to the mean
   x of its neighbours in the row above (down sweep) or below (up sweep), keeping the order
   and a minimum gap: a weighted isotonic regression solved by pool-adjacent-violators.

The renderers (:mod:`cnncalc.report.svg`, DOT, Mermaid, matplotlib PNG) read the Layout.
Nothing here imports numpy or the runtime.
"""
from __future__ import annotations

import json
from collections import deque

from dataclasses import dataclass, field

from cnncalc.escape import term_text
from cnncalc.errors import CnnCalcError
from cnncalc.graph import INPUT, Graph
from cnncalc.shapes import fmt_int, fmt_shape, numel

# text metrics of the monospace font the renderers use (DejaVu Sans Mono: 0.602 em per char)
NAME_PX, TEXT_PX, LABEL_PX = 12, 11, 10
CHAR_EM = 0.61
PAD_X, PAD_Y, LINE_GAP = 10, 7, 4
ROW_GAP = 58  # vertical space between rows: stem, shape label, fan-out
STEM = 14  # the vertical stem under a box before edges fan out; the shape label sits beside it
NODE_SEP, DUMMY_W, DUMMY_SEP = 26, 12, 8
MARGIN = 24
SWEEPS = 24


def text_width(text: str, px: float) -> float:
    return len(text) * px * CHAR_EM


@dataclass
class GNode:
    id: str
    name: str
    kind: str  # layer kind, "input" or "module"
    lines: list[str]  # name, type, output shape
    shape: tuple
    members: list[str] = field(default_factory=list)  # layer names inside (one unless collapsed)
    rank: int = 0
    order: int = 0
    x: float = 0.0  # centre
    y: float = 0.0  # top
    w: float = 0.0
    h: float = 0.0
    dummy: bool = False
    out_label: str = ""  # the shape written under the box, on the edges' common stem
    desc: str = ""  # the layer's one-line description (type, kernel/stride, filters)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x - self.w / 2, self.y, self.x + self.w / 2, self.y + self.h)


@dataclass
class GEdge:
    src: str
    dst: str
    label: str  # the tensor's shape
    chain: list[str] = field(default_factory=list)  # node ids from src through dummies to dst
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Layout:
    title: str
    nodes: dict[str, GNode]
    edges: list[GEdge]
    width: float = 0.0
    height: float = 0.0
    depth: int | None = None
    crossings: int = 0  # edge crossings between adjacent rows after ordering
    direction: str = "TB"  # TB: rows top to bottom; LR: columns left to right

    @property
    def real_nodes(self) -> list[GNode]:
        return [n for n in self.nodes.values() if not n.dummy]


# ---------------------------------------------------------------------------------- collapse
def group_key(name: str, depth: int | None) -> str:
    """The node a layer belongs to at ``depth`` (as ``summarize --depth`` groups rows)."""
    if depth is None:
        return name
    parts = name.split("/")
    return "/".join(parts[:depth]) if len(parts) > depth else name


def build(graph: Graph, depth: int | None = None) -> tuple[dict[str, GNode], list[GEdge]]:
    graph.infer()
    texts: dict = {}

    def fmt_shape_(shape):  # fmt_shape of each plain shape once (replayed blocks repeat theirs)
        if shape.__class__ is not tuple:
            return fmt_shape(shape)
        t = texts.get(shape)
        if t is None:
            t = texts[shape] = fmt_shape(shape)
        return t
    nodes: dict[str, GNode] = {}
    nodes[INPUT] = GNode(INPUT, INPUT, "input", [INPUT, "input", fmt_shape(graph.input_shape)],
                         tuple(graph.input_shape), [INPUT])
    owner = {INPUT: INPUT}
    params: dict[str, int] = {}
    for n in graph.layers:
        key = group_key(n.name, depth)
        owner[n.name] = key
        params[key] = params.get(key, 0) + sum(numel(sh) for sh, _ in n.layer.owned_param_shapes().values())
        g = nodes.get(key)
        if g is None:
            nodes[key] = GNode(key, key, n.kind, [], n.shape, [n.name], desc=n.layer.describe())
        else:
            g.members.append(n.name)
            g.shape = n.shape  # the last layer's output, as summarize --depth
    for g in nodes.values():
        if g.id == INPUT:
            continue
        if len(g.members) > 1 or g.members[0] != g.id:
            g.kind = "module"
            g.lines = [g.name, f"module, {len(g.members)} layers", f"{fmt_int(params[g.id])} params",
                       fmt_shape_(g.shape)]
        else:
            g.lines = [g.name, g.desc, fmt_shape_(g.shape)]
    edges: dict[tuple[str, str], GEdge] = {}
    for n in graph.layers:
        dst = owner[n.name]
        for s in n.inputs:
            src = owner[s]
            if src == dst:
                continue
            label = fmt_shape_(graph[s].shape)
            e = edges.get((src, dst))
            if e is None:
                edges[(src, dst)] = GEdge(src, dst, label)
            elif label not in e.label.split(" | "):
                e.label += " | " + label
    return nodes, list(edges.values())


# ---------------------------------------------------------------------------------- layering
def _ranks(nodes: dict[str, GNode], edges: list[GEdge], depth) -> None:
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    succs: dict[str, list[str]] = {k: [] for k in nodes}
    for e in edges:
        preds[e.dst].append(e.src)
        succs[e.src].append(e.dst)
    indeg = {k: len(v) for k, v in preds.items()}
    ready = deque(k for k in nodes if indeg[k] == 0)
    seen = 0
    while ready:
        k = ready.popleft()  # (a list's pop(0) is quadratic over a merge of 24,000 branches)
        seen += 1
        nodes[k].rank = max((nodes[p].rank + 1 for p in preds[k]), default=0)
        for s in succs[k]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if seen != len(nodes):
        stuck = [k for k, v in indeg.items() if v > 0][:3]
        raise CnnCalcError(f"collapsing at --depth {depth} makes a cycle through {', '.join(stuck)} "
                           "(a module's layers are not contiguous): use a larger --depth or none")


def _add_dummies(nodes: dict[str, GNode], edges: list[GEdge]) -> None:
    for i, e in enumerate(edges):
        a, b = nodes[e.src], nodes[e.dst]
        chain = [e.src]
        for r in range(a.rank + 1, b.rank):
            d = GNode(f"~{i}.{r}", "", "dummy", [], (), rank=r, dummy=True, w=DUMMY_W)
            nodes[d.id] = d
            chain.append(d.id)
        chain.append(e.dst)
        e.chain = chain


# ---------------------------------------------------------------------------------- ordering
def _rows(nodes) -> list[list[str]]:
    n_rows = max(n.rank for n in nodes.values()) + 1
    rows: list[list[str]] = [[] for _ in range(n_rows)]
    for k, n in nodes.items():  # insertion order: spec order, dummies after the real nodes
        rows[n.rank].append(k)
    return rows


def _links(edges) -> tuple[dict, dict]:
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for e in edges:
        for a, b in zip(e.chain, e.chain[1:]):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    return up, down


def _crossings(upper: list[str], lower: list[str], down: dict) -> int:
    if len(upper) < 2 or len(lower) < 2:  # edges from one node, or into one: none cross
        return 0
    pos = {k: i for i, k in enumerate(lower)}
    segs = [(i, pos[b]) for i, a in enumerate(upper) for b in down.get(a, ()) if b in pos]
    segs.sort()
    # count inversions of the lower ends (a merge-sort count would be O(E log E); rows are small)
    n = 0
    ends = [b for _, b in segs]
    for i in range(len(ends)):
        ei, ai = ends[i], segs[i][0]
        for j in range(i + 1, len(ends)):
            if segs[j][0] != ai and ends[j] < ei:
                n += 1
    return n


def _total_crossings(rows, down) -> int:
    return sum(_crossings(rows[r], rows[r + 1], down) for r in range(len(rows) - 1))


def _order(rows: list[list[str]], up: dict, down: dict) -> tuple[list[list[str]], int]:
    """The rows reordered by barycentre sweeps, and their crossings."""
    best = [list(r) for r in rows]
    best_c = _total_crossings(best, down)
    cur = [list(r) for r in rows]
    for sweep in range(SWEEPS):
        if best_c == 0:
            break
        rng = range(1, len(cur)) if sweep % 2 == 0 else range(len(cur) - 2, -1, -1)
        for r in rng:
            ref = cur[r - 1] if sweep % 2 == 0 else cur[r + 1]
            nbrs = up if sweep % 2 == 0 else down
            pos = {k: i for i, k in enumerate(ref)}
            keyed = []
            for i, k in enumerate(cur[r]):
                ps = [pos[p] for p in nbrs.get(k, ()) if p in pos]
                keyed.append((sum(ps) / len(ps) if ps else float(i), i, k))
            keyed.sort()
            cur[r] = [k for _, _, k in keyed]
        c = _total_crossings(cur, down)
        if c < best_c:
            best, best_c = [list(r) for r in cur], c
    return best, best_c


# ---------------------------------------------------------------------------------- coordinates
def _pav(desired: list[float], weights: list[float], offsets: list[float]) -> list[float]:
    """min sum w_i (x_i - d_i)^2 subject to x_{i+1} - x_i >= offsets[i+1] - offsets[i]."""
    blocks: list[list[float]] = []  # [value, weight, count]
    for d, w, o in zip(desired, weights, offsets):
        blocks.append([d - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks[-1]
            blocks[-1] = [(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2]
    out: list[float] = []
    for v, _, c in blocks:
        out.extend([v] * c)
    return [v + o for v, o in zip(out, offsets)]


def _occupied(n: GNode) -> tuple[float, float]:
    """Half-widths to the left and right that a node needs in its row (box and stem label)."""
    if n.dummy:
        return DUMMY_W / 2, DUMMY_W / 2
    right = max(n.w / 2, 6 + text_width(n.out_label, LABEL_PX) + 4) if n.out_label else n.w / 2
    return n.w / 2, right


def _coordinates(nodes: dict[str, GNode], rows: list[list[str]], up: dict, down: dict) -> None:
    dummy = {k: n.dummy for k, n in nodes.items()}
    occupied = {k: _occupied(n) for k, n in nodes.items()}  # (once per node, not per neighbour)

    def offsets(row):
        out, acc = [], 0.0
        for i, k in enumerate(row):
            if i:
                a = row[i - 1]
                gap = DUMMY_SEP if (dummy[a] or dummy[k]) else NODE_SEP
                acc += occupied[a][1] + gap + occupied[k][0]
            out.append(acc)
        return out

    offs = [offsets(r) for r in rows]
    # x of every node in a flat list (index = position in ``nodes``); what each node follows
    # in each kind of sweep (0: down, its parents; 1: up, its children; 2: both) is fixed, so
    # it is worked out once: (the indices it averages or None, its weight)
    index = {k: i for i, k in enumerate(nodes)}
    xs = [0.0] * len(index)
    for row, off in zip(rows, offs):
        for k, o in zip(row, off):
            xs[index[k]] = o

    def follow(k, ns):
        if not ns:
            return None, 0.001
        real = [p for p in ns if not dummy[p]]
        # a real node follows its real neighbours (the main path stays straight and skip
        # connections take the side lanes); lanes of dummies stay straight
        pick = real if (real and not dummy[k]) else ns
        # priorities (Sugiyama's priority method, as weights): a real node's place matters
        # most, a lane continues straight, a lane leaving a real node moves aside
        if dummy[k]:
            w = 50.0 if not real else 0.01
        else:
            w = 100.0 if len(pick) == 1 else 20.0
        n = len(pick)
        return (index[pick[0]] if n == 1 else (index[pick[0]], index[pick[1]]) if n == 2
                else [index[p] for p in pick]), w

    # each row's step in each kind of sweep, compiled once: ("the mean of the neighbours" is
    # written as sum([...]) / len(...) computes it, to the last bit: a lone neighbour p is
    # 0.0 + xs[p], two are 0.0 + xs[a] + xs[b], halved)
    #   (1, i, pick)  a row of one node i: it goes where it wants (what _pav gives a single one)
    #   (2, i0, i1, o0, o1, w0, w1, pick0, pick1)  a node and a lane beside it: _pav of two
    #   (3, ids, plan, offsets)  the general row: _pav
    # a pick is None (stay), an int (one neighbour), a pair (two) or a list (more)
    empty: list = []
    plans: list[list] = [[], [], []]
    for row, off in zip(rows, offs):
        per_mode: list[list] = [[], [], []]
        for k in row:
            u, d = up.get(k, empty), down.get(k, empty)
            f0, f1 = follow(k, u), follow(k, d)
            per_mode[0].append(f0)
            per_mode[1].append(f1)
            # both: the parents' plan when there are no children and the other way round
            per_mode[2].append(f0 if not d else f1 if not u else follow(k, u + d))
        ids = [index[k] for k in row]
        for mode, plan in enumerate(per_mode):
            if len(ids) == 1:
                plans[mode].append((1, ids[0], plan[0][0]))
            elif len(ids) == 2:
                (p0, w0), (p1, w1) = plan
                plans[mode].append((2, ids[0], ids[1], off[0], off[1], w0, w1, p0, p1))
            else:
                plans[mode].append((3, ids, plan, off))
    still = 0  # sweeps in a row that moved nothing
    for it in range(4 * 2 + 1):
        downward = it % 2 == 0
        if it == 8:  # a last balancing pass with both neighbours
            steps = plans[2]
        elif still >= 2:
            # a down and an up sweep both moved nothing: the positions are a fixed point of
            # both, so the remaining ones would not move anything either (the same result)
            continue
        else:
            steps = plans[0][1:] if downward else plans[1][-2::-1]
        before = xs.copy()
        for step in steps:
            kind = step[0]
            if kind == 1:
                pick = step[2]
                if pick is None:
                    continue
                if pick.__class__ is int:
                    xs[step[1]] = 0.0 + xs[pick]
                elif len(pick) == 2:
                    xs[step[1]] = (0.0 + xs[pick[0]] + xs[pick[1]]) / 2
                else:
                    xs[step[1]] = sum([xs[p] for p in pick]) / len(pick)
            elif kind == 2:
                _, i0, i1, o0, o1, w0, w1, p0, p1 = step
                if p0 is None:
                    b0 = xs[i0] - o0
                elif p0.__class__ is int:
                    b0 = (0.0 + xs[p0]) - o0
                elif len(p0) == 2:
                    b0 = (0.0 + xs[p0[0]] + xs[p0[1]]) / 2 - o0
                else:
                    b0 = sum([xs[p] for p in p0]) / len(p0) - o0
                if p1 is None:
                    b1 = xs[i1] - o1
                elif p1.__class__ is int:
                    b1 = (0.0 + xs[p1]) - o1
                elif len(p1) == 2:
                    b1 = (0.0 + xs[p1[0]] + xs[p1[1]]) / 2 - o1
                else:
                    b1 = sum([xs[p] for p in p1]) / len(p1) - o1
                if b0 > b1:
                    b0 = b1 = (b0 * w0 + b1 * w1) / (w0 + w1)
                xs[i0], xs[i1] = b0 + o0, b1 + o1
            else:
                _, ids, plan, off = step
                desired, weights = [], []
                for (pick, w), i in zip(plan, ids):
                    if pick is None:
                        desired.append(xs[i])
                    elif pick.__class__ is int:
                        desired.append(0.0 + xs[pick])
                    else:
                        desired.append(sum([xs[p] for p in pick]) / len(pick))
                    weights.append(w)
                for i, x in zip(ids, _pav(desired, weights, off)):
                    xs[i] = x
        still = still + 1 if xs == before else 0
    for k, i in index.items():
        nodes[k].x = xs[i]


# ---------------------------------------------------------------------------------- public
DIRECTIONS = ("TB", "LR")


def layout_graph(graph: Graph, depth: int | None = None, direction: str = "TB") -> Layout:
    """Boxes and routes of the layer graph: rows top to bottom (TB) or columns left to right (LR)."""
    if direction not in DIRECTIONS:
        raise CnnCalcError(f"direction must be TB or LR, not {direction!r}")
    nodes, edges = build(graph, depth)
    outs: dict[str, list[str]] = {}
    for e in edges:
        outs.setdefault(e.src, []).append(e.label)
    for k, labels in outs.items():
        uniq = list(dict.fromkeys(labels))
        nodes[k].out_label = " | ".join(uniq)
    for n in nodes.values():
        widest = max([text_width(n.lines[0], NAME_PX)] + [text_width(s, TEXT_PX) for s in n.lines[1:]])
        n.w = round(widest + 2 * PAD_X)
        n.h = round(PAD_Y * 2 + NAME_PX + (len(n.lines) - 1) * (TEXT_PX + LINE_GAP) + LINE_GAP)
    _ranks(nodes, edges, depth)
    _add_dummies(nodes, edges)
    rows = _rows(nodes)
    up, down = _links(edges)
    rows, crossings = _order(rows, up, down)
    for row in rows:
        for i, k in enumerate(row):
            nodes[k].order = i
    title = f"{graph.name} — input {fmt_shape(graph.input_shape)}" + (f", depth {depth}" if depth else "")
    if direction == "LR":
        return _left_to_right(nodes, edges, rows, up, down, title, depth, crossings)
    _coordinates(nodes, rows, up, down)
    # rows top to bottom
    y = MARGIN + 28  # room for the title
    row_h = []
    for row in rows:
        h = max((nodes[k].h for k in row if not nodes[k].dummy), default=0)
        for k in row:
            nodes[k].y = y
            if nodes[k].dummy:
                nodes[k].h = h
        row_h.append(h)
        y += h + ROW_GAP
    left = min(n.x - _occupied(n)[0] for n in nodes.values())
    right = max(n.x + _occupied(n)[1] for n in nodes.values())
    shift = MARGIN - left
    for n in nodes.values():
        n.x += shift
    for e in edges:
        pts = []
        for i, k in enumerate(e.chain):
            n = nodes[k]
            if i == 0:
                pts.append((n.x, n.y + n.h))
                pts.append((n.x, n.y + n.h + STEM))
            elif i == len(e.chain) - 1:
                pts.append((n.x, n.y))
            else:
                pts.append((n.x, n.y))
                pts.append((n.x, n.y + n.h))
        e.points = pts
    width = max(right - left + 2 * MARGIN, text_width(title, 14) + 2 * MARGIN)
    return Layout(title, nodes, edges, width=round(width), height=round(y - ROW_GAP + MARGIN), depth=depth,
                  crossings=crossings)


def _left_to_right(nodes, edges, rows, up, down, title, depth, crossings) -> Layout:
    """The same ordering placed in columns: the in-row placement runs on the boxes' heights
    (sizes swapped), then each column is as wide as its widest box plus room for the shape
    written on the stems leaving it."""
    labels = {k: n.out_label for k, n in nodes.items()}
    for n in nodes.values():  # place along the cross axis with the boxes' heights
        n.w, n.h = n.h, n.w
        n.out_label = ""
    _coordinates(nodes, rows, up, down)
    cross = {k: n.x for k, n in nodes.items()}
    for k, n in nodes.items():
        n.w, n.h = n.h, n.w
        n.out_label = labels[k]
    x = MARGIN
    for row in rows:
        real = [nodes[k] for k in row if not nodes[k].dummy]
        wmax = max((n.w for n in real), default=DUMMY_W)
        lab = max((text_width(n.out_label, LABEL_PX) for n in real if n.out_label), default=0)
        for k in row:
            n = nodes[k]
            if n.dummy:
                n.w, n.h = wmax, DUMMY_W
            n.x = x + n.w / 2  # boxes of a column share their left edge (TB: their top)
            n.y = cross[k] - n.h / 2
        x += wmax + max(ROW_GAP, STEM + lab + 18)
    top = min(n.y for n in nodes.values())
    shift = MARGIN + 28 - top
    for n in nodes.values():
        n.y += shift
    for e in edges:
        pts = []
        for i, k in enumerate(e.chain):
            n = nodes[k]
            cy = n.y + n.h / 2
            if i == 0:
                pts += [(n.x + n.w / 2, cy), (n.x + n.w / 2 + STEM, cy)]
            elif i == len(e.chain) - 1:
                pts.append((n.x - n.w / 2, cy))
            else:
                pts += [(n.x - n.w / 2, cy), (n.x + n.w / 2, cy)]
        e.points = pts
    right = max(n.x + n.w / 2 for n in nodes.values() if not n.dummy)
    bottom = max(n.y + n.h for n in nodes.values())
    width = max(right + MARGIN, text_width(title, 14) + 2 * MARGIN)
    return Layout(title, nodes, edges, width=round(width), height=round(bottom + MARGIN), depth=depth,
                  crossings=crossings, direction="LR")


def label_at(layout: Layout, n: GNode) -> tuple[float, float]:
    """Where the shape written on a box's outgoing stem starts (text baseline, left end)."""
    if layout.direction == "LR":
        return n.x + n.w / 2 + 4, n.y + n.h / 2 - 4
    return n.x + 6, n.y + n.h + STEM - 2


def overlaps(layout: Layout) -> list[tuple[str, str]]:
    """Pairs of real node boxes that overlap (the layout's invariant: none)."""
    bad = []
    nodes = layout.real_nodes
    for i, a in enumerate(nodes):
        ax0, ay0, ax1, ay1 = a.box
        for b in nodes[i + 1:]:
            bx0, by0, bx1, by1 = b.box
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                bad.append((a.id, b.id))
    return bad


# ---------------------------------------------------------------------------------- text formats
def _dot_esc(s: str) -> str:
    """Text inside a DOT "string": control characters shown escaped, \\ and " escaped."""
    return term_text(s).replace("\\", "\\\\").replace('"', '\\"')


def _dot_str(s: str) -> str:
    return '"' + _dot_esc(s) + '"'


def to_dot(layout: Layout) -> str:
    out = [f"digraph {_dot_str(layout.title)} {{", f"  rankdir={layout.direction};",
           '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="monospace", fontsize=11];',
           '  edge [fontname="monospace", fontsize=9];']
    for n in layout.real_nodes:
        label = '"' + "\\n".join(map(_dot_esc, n.lines)) + '"'  # (DOT's \\n: a line break)
        out.append(f"  {_dot_str(n.id)} [label={label}];")
    for e in layout.edges:
        out.append(f"  {_dot_str(e.src)} -> {_dot_str(e.dst)} [label={_dot_str(e.label)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _mmd_text(s: str) -> str:
    """Text inside a quoted mermaid label: one line (control characters shown escaped), its
    quote and markup characters as mermaid's entity codes."""
    s = term_text(s)
    return s.replace("#", "#35;").replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(layout: Layout) -> str:
    ids = {n.id: f"n{i}" for i, n in enumerate(layout.real_nodes)}
    # the front matter is YAML: the title as a JSON string (valid YAML), on one line
    out = ["---", f"title: {json.dumps(term_text(layout.title), ensure_ascii=False)}", "---",
           f"flowchart {layout.direction}"]
    for n in layout.real_nodes:
        out.append(f'  {ids[n.id]}["{"<br/>".join(_mmd_text(s) for s in n.lines)}"]')
    for e in layout.edges:
        out.append(f'  {ids[e.src]} -->|"{_mmd_text(e.label)}"| {ids[e.dst]}')
    return "\n".join(out) + "\n"
