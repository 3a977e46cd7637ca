"""Tensor liveness over the graph: the inference peak with buffer reuse, and the peak of
activation gradients during backward.

A tensor lives from the step that produces it to the last step that reads it; views
(flatten, dropout at inference, identity) alias the tensor they read and extend its life.
Graph outputs live to the end.
"""
from __future__ import annotations

from itertools import accumulate

from cnncalc.errors import CnnCalcError
from cnncalc.graph import INPUT, Graph


def tensor_intervals(graph: Graph, sizes: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """Root tensor name → (first step, last step, elements). Steps are topological indices."""
    root: dict[str, int] = {}  # name → the step that made the tensor it is (a view: its input's)
    last: list[int] = []  # step → the last step that reads the tensor it made, so far
    # steps are visited in order, so a tensor's last reader so far is the current step
    step = 0
    for name, node in graph.nodes.items():
        layer = node.layer
        inputs = node.inputs
        last.append(step)
        if layer is not None and layer.view:
            root[name] = root[inputs[0]]
        else:
            root[name] = step
        if len(inputs) == 1:
            last[root[inputs[0]]] = step
        else:
            for src in inputs:
                last[root[src]] = step
        step += 1
    end = step - 1
    for out in graph.outputs:
        last[root[out]] = end
    return {name: (r, last[r], sizes[name]) for i, (name, r) in enumerate(root.items()) if r == i}


def live_sizes(intervals: dict[str, tuple[int, int, int]], n_steps: int) -> list[int]:
    """The sum of the live tensors' sizes at each step."""
    delta = [0] * (n_steps + 1)
    for lo, hi, size in intervals.values():
        delta[lo] += size
        delta[hi + 1] -= size
    del delta[n_steps]
    return list(accumulate(delta))


def _highest(live: list[int]) -> tuple[int, int]:
    """The largest value and the first step that has it ((0, 0) when nothing is live)."""
    best = max(live, default=0)
    return (best, live.index(best)) if best > 0 else (0, 0)


def peaks(graph: Graph, sizes: dict[str, int], intervals=None, internal=None) -> tuple[int, str, int]:
    """The inference peak (the largest sum of live tensors over the steps, and the layer
    where it happens) and the gradient peak. During backward the gradient of a tensor lives
    over the same steps as the tensor (from its last reader's backward to its producer's)
    and the input needs none: the live gradients are the live tensors without the input's
    interval. ``internal`` {layer: values} adds what a layer writes inside itself (attention's
    q, k, v, scores and probabilities) at its own step: live while it runs (and their gradients
    while its backward runs)."""
    iv = tensor_intervals(graph, sizes) if intervals is None else intervals
    live = live_sizes(iv, len(graph.nodes))
    if internal:
        steps = {name: k for k, name in enumerate(graph.nodes)}
        for name, n in internal.items():
            live[steps[name]] += n
    best, where = _highest(live)
    lo, hi, size = iv[INPUT]
    grad = live if not size else live[:lo] + [v - size for v in live[lo:hi + 1]] + live[hi + 1:]
    return best, list(graph.nodes)[where], _highest(grad)[0]


# ------------------------------------------------------------------ what backward keeps
# layers whose inputs torch's autocast casts to half: under mixed precision an fp32 tensor
# they read (the graph input, or an fp32 token stream) is kept as a half copy, their output
# is half, and their weights' half copies are kept too (the token layers: their linears' and
# the patch embedding's weights; not a bias table, a norm's γ)
_AUTOCAST_HALF = frozenset(("conv", "dwconv", "deconv", "local", "fc", "matmul", "patch_embed", "attention",
                            "mlp", "patch_merging"))
# layers whose output is fp32 under autocast whatever their input: an fp32 parameter joined
# to or added to the activations (type promotion: a class token concatenated, a position
# embedding or a learned scale)
_AUTOCAST_FP32 = frozenset(("cls_token", "pos_embed", "relbias", "scale"))
# layers whose output takes the widest dtype of their inputs (type promotion)
_AUTOCAST_PROMOTE = frozenset(("add", "concat", "stack", "mul", "binary", "where"))
_HALF_WEIGHTS = {"attention": ("qkv_weight", "proj_weight"), "mlp": ("fc1_weight", "fc2_weight"),
                 "patch_embed": ("weight",), "patch_merging": ("weight",)}


class Saved:
    """What autograd keeps for backward, layer by layer (see cnncalc.analysis.saved).

    ``per_layer[name]``: the bytes that layer adds (a storage already kept by an earlier layer
    counts there); ``keeps[name]``: (storage key, bytes, what) per tensor the layer keeps, the
    storages counted once in ``total``. ``first[key]`` is the earliest layer (in forward order)
    that keeps storage ``key``: backward frees the storage after that layer's backward.
    ``rg[name]``: does the layer's output require a gradient. ``roots[name]``: the storage a
    layer's output lives in (views share their source's), ``sizes[root]`` its bytes."""

    __slots__ = ("per_layer", "keeps", "total", "first", "rg", "roots", "sizes", "weight_copies", "hidden")

    def __init__(self):
        self.per_layer: dict[str, int] = {}
        self.keeps: dict[str, list] = {}
        self.total = 0
        self.first: dict = {}
        self.rg: dict[str, bool] = {}
        self.roots: dict[str, str] = {}
        self.sizes: dict = {}
        self.weight_copies = 0
        self.hidden: dict = {}  # key of a tensor made for backward → its bytes


def saved_tensors(graph: Graph, batch: int, act_bytes: int, *, input_bytes: int | None = None,
                  trainable=None, mixed: bool = False, detail: bool = True) -> Saved:
    """Walk the layers in forward order and collect what each keeps for backward.

    ``trainable(name)`` says whether a layer's parameters are trained (default: all are);
    ``mixed``: torch autocast (activations in ``act_bytes``, the graph input in
    ``input_bytes``, conv/linear/matmul read half copies of their fp32 inputs and weights).
    ``detail``: also list each layer's tensors (``keeps``, ``first``, ``hidden``: what
    --explain and the training walk read); without it only ``per_layer`` and ``total``."""
    from cnncalc.analysis.saved import DTYPE_BYTES, layer_saves
    from cnncalc.shapes import numel

    ib = act_bytes if input_bytes is None else input_bytes
    s = Saved()
    roots, sizes, rg, first = s.roots, s.sizes, s.rg, s.first
    per_layer, keeps_of, hidden = s.per_layer, s.keeps, s.hidden
    roots[INPUT] = INPUT
    sizes[INPUT] = numel(graph.input_shape) * batch * ib
    rg[INPUT] = False
    # under autocast, the bytes per element of each tensor (the half ``act_bytes``, or 4 where
    # the graph input or an fp32 parameter made it fp32: see _AUTOCAST_FP32, _AUTOCAST_PROMOTE)
    width = {INPUT: ib}
    seen = set()  # storages counted (first keeps only the earliest keeper: with detail)
    cache: dict = {}
    tmpl: dict = {}
    total = weight_copies = 0
    for step, node in enumerate(graph.layers):
        layer, name, ins = node.layer, node.name, node.inputs
        # (copies of one layer on the same input shapes — replayed module instances — share
        # their arguments and in_shapes objects: their templates are computed once)
        lkey = (layer.__class__, id(layer.args), layer.activation, id(layer.in_shapes))
        t = tmpl.get(lkey)
        if t is None:
            ps = layer.param_shapes()
            names = _HALF_WEIGHTS.get(layer.kind)
            # (a standardised conv's weight is computed each forward: no cached copy; the conv
            # keeps the half copy of the standardised weight, saved.py's rule)
            t = tmpl[lkey] = (bool(ps), numel(layer.out_shape) * batch,
                              0 if getattr(layer, "standardize", None) else
                              sum(numel(sh) for k, (sh, role) in ps.items()
                                  if (role == "weight" if names is None else k in names)) * act_bytes,
                              layer.view and layer.kind != "dropout",  # (a view at inference only)
                              mixed and layer.kind in _AUTOCAST_HALF)
        has_params, out_elems, weight_bytes, alias, half = t
        w = has_params and (trainable is None or trainable(name))
        if len(ins) == 1:
            r = (rg[ins[0]],)
            rg[name] = w or r[0]
        else:
            r = tuple([rg[i] for i in ins])
            rg[name] = w or any(r)
        # the dtype the layer computes in and writes (act_bytes unless autocast keeps fp32)
        if not mixed or half:
            wide = act_bytes
        elif layer.kind in _AUTOCAST_FP32:
            wide = 4
        elif layer.kind in _AUTOCAST_PROMOTE:
            wide = max(width[i] for i in ins)
        else:
            wide = width[ins[0]]
        width[name] = wide
        out_bytes = out_elems * wide
        if alias:
            roots[name] = roots[ins[0]]
        else:
            roots[name] = name
            sizes[name] = out_bytes
        key = (lkey, r, w, wide if mixed else 0, mixed and layer.kind == "attention")
        plan = cache.get(key)
        if plan is None:  # (tag, input index or entry index, bytes of a tensor made here, what)
            plan = []
            for k, e in enumerate(layer_saves(layer, list(r), w, batch, mixed=mixed)):
                if e[0] == "in":
                    plan.append((0, e[1], 0, f"input {ins[e[1]]}" if len(ins) > 1 else "input"))
                elif e[0] == "out":
                    plan.append((1, 0, 0, "output"))
                elif e[0] == "pre":
                    plan.append((2, k, out_bytes, "output before the activation"))
                else:
                    _, per, fixed, dt, what = e
                    b = wide if dt == "act" else width[ins[0]] if dt == "in" else DTYPE_BYTES[dt]
                    plan.append((2, k, (per * batch + fixed) * b, what))
            cache[key] = plan
        added = 0
        keeps = [] if detail else None
        for tag, k, size, what in plan:
            if tag == 0:
                sk = roots[ins[k]]
                if half and width[ins[k]] != act_bytes:  # autocast casts the fp32 tensor: a half copy
                    size = sizes[sk] // width[ins[k]] * act_bytes
                    sk, what = ("half", sk), ("half copy of the input" if sk == INPUT
                                               else f"half copy of the fp32 {what}")
                    sizes[sk] = size
                else:
                    size = sizes[sk]
            elif tag == 1:
                sk = roots[name]
                size = sizes[sk]
            else:
                sk = (name, k)
                if detail:
                    hidden[sk] = size
            if sk not in seen:
                seen.add(sk)
                added += size
                if detail:
                    first[sk] = step
            if detail:
                keeps.append((sk, size, what))
        if half and r and (w or any(r)) and not layer.args.get("shares"):
            # (a shared layer's weights: autocast casts a parameter once per forward, its cache
            # gives the other uses the same copy)
            weight_copies += weight_bytes
        per_layer[name] = added
        if detail:
            keeps_of[name] = keeps
        total += added
    s.total = total
    s.weight_copies = weight_copies
    return s



# ------------------------------------------------------------------ what a backward allocates for itself
def backward_transients(layer, batch: int, act: int, pbytes: int, grad_in: bool, grad_w: bool,
                        in_bytes: int) -> tuple[int, str]:
    """Bytes a layer's backward allocates beyond the gradients the walk already counts (its
    input's gradient ``in_bytes`` when ``grad_in``, its weights' gradient when ``grad_w``), at
    their highest during that backward, and the rule — as PyTorch's CPU kernels (oneDNN, one
    thread, fp32) allocate them, read off torch.profiler's allocation events:

    - convolution, native kernel (as PyTorch picks it with one thread: a 1x1 unit-stride conv on
      a batch under 16, or a batch of one image of at most 20,480 values with a kernel up to
      3x3): nothing for a 1x1, one image's im2col columns otherwise;
    - convolution (oneDNN, every other case): backward-data reorders the output gradient and the weights into its
      blocked layouts and writes the input gradient into a buffer copied out at the end (live at
      once: gO + W + gI, then gI twice); backward-weights reorders the input (when its channels
      are a multiple of 8) and the output gradient and accumulates into a weight buffer copied
      out (gI + X + gO + W, then gI + 2 W). When the input is narrower than the kernel (a
      3×3 on 2×2 or 1×1 maps) oneDNN's jit kernel declines and its gemm path runs instead:
      a scratchpad of 4 weight-sized reduction buffers (batch > 1) + one image's im2col
      columns + 256 B, per thread;
    - batch norm: an input-sized temporary and two per-channel sums;
    - everything else: nothing beyond its outputs (ReLU, add, pooling, linear write their
      gradients directly). The token layers (attention, MLP, patch embedding and merging) count
      nothing here either: their backward's inner gradients (attention's probabilities' and
      scores' gradients, heads x N x keys each; an MLP's hidden gradient) are freed inside it.
      Measured peaks of DeiT-Tiny (batch 2) and MobileViT-XXS (batch 2) agree within 0.03 %
      (tests/interop/test_saved_torch.py); a peak that falls inside an attention's backward
      at long sequences would be under-counted by up to those inner gradients."""
    from cnncalc.shapes import numel

    kind = layer.kind
    if kind in ("conv", "dwconv") and getattr(layer, "connections", None) is None and len(layer.kernel) == 2:
        w = numel(layer.param_shapes()["weight"][0]) * pbytes
        go = numel(layer.out_shape) * batch * act
        gi = in_bytes if grad_in else 0
        counted = gi + (w if grad_w else 0)
        phases = []
        if grad_in:
            phases.append(go + w + gi)  # output gradient and weights reordered, input gradient buffer
            phases.append(2 * gi)  # the buffer and the input gradient it is copied to
        rule = ""
        kh, kw = layer.kernel
        one = kh == kw == 1 and max(layer.stride) == 1 and max(w.dilation for w in layer.windows) == 1
        small = layer.groups == 1 and batch == 1 and not (kh > 3 and kw > 3) and numel(layer.in_shapes[0]) <= 20480
        if (one and batch < 16) or small:
            # PyTorch's own rule (ConvParams::use_mkldnn, one thread): a 1x1 unit-stride conv on
            # a batch under 16, or one small image with a kernel up to 3x3, runs the native
            # kernel: it reads a 1x1's input in place, unfolds other kernels into one image's columns
            col = 0 if one else layer.in_channels // layer.groups * kh * kw * numel(layer.out_shape[:-1]) * act
            return col, ("convolution backward (native kernel): " + (f"one image's columns {col:,} B" if col
                                                                      else "nothing beyond its gradients"))
        if grad_w:
            ih, iw = layer.in_shapes[0][0], layer.in_shapes[0][1]
            if iw < layer.kernel[1] or ih < layer.kernel[0]:
                oh, ow = layer.out_shape[0], layer.out_shape[1]
                col = layer.in_channels // layer.groups * numel(layer.kernel) * oh * ow * act
                scratch = (4 * w if batch > 1 else 0) + col + 256
                phases.append(gi + w + max(scratch, w))
                rule = (f"gemm path (input {iw} wide < kernel {layer.kernel[1]}): scratchpad 4 x {w:,} + "
                        f"im2col {col:,} + 256 B")
            else:
                xc = numel(layer.in_shapes[0]) * batch * act if layer.in_channels % 8 == 0 else 0
                phases.append(gi + xc + go + w)
                phases.append(gi + 2 * w)
                rule = "reorders of the input and output gradient, a weight-gradient buffer"
        extra = max(phases, default=0) - counted
        if grad_in and not rule:
            rule = "reorders of the output gradient and weights, an input-gradient buffer"
        return max(extra, 0), f"convolution backward: {rule}"
    if kind == "batchnorm" and grad_in:
        c = layer.out_shape[-1]
        return in_bytes + 2 * c * 4, "batch-norm backward: an input-sized temporary + 2 per-channel sums"
    return 0, ""


# ------------------------------------------------------------------ one training step
OPTIMIZERS = {  # state tensors per parameter, and whether torch keeps a 'step' scalar per tensor
    "sgd": (0, False), "momentum": (1, False), "adam": (2, True), "adamw": (2, True),
    "rmsprop": (1, True), "adagrad": (1, True),
}
PRECISIONS = ("fp32", "fp16-mixed", "bf16-mixed")


def matcher(freeze=(), trainable=()):
    """``name → trained?`` from --freeze / --trainable prefixes (None: everything trains). A
    prefix matches a layer named so or a layer inside it (``layer1`` matches ``layer1/conv1``,
    not ``layer10``); a trailing ``*`` matches any continuation."""
    if not freeze and not trainable:
        return None

    def hit(name, prefixes):
        for p in prefixes:
            if p.endswith("*"):
                if name.startswith(p[:-1]):
                    return True
            elif name == p or name.startswith(p.rstrip("/") + "/"):
                return True
        return False

    if trainable:
        return lambda name: hit(name, trainable) and not hit(name, freeze)
    return lambda name: not hit(name, freeze)


def owner_matcher(graph: Graph, train):
    """``train`` with a layer that ``shares:`` another's parameters trained exactly when their
    owner is: the tensor is one (PyTorch names it at its owner), so freezing the owner freezes
    every use (no weight gradient, nothing kept for one) and freezing a sharer alone changes
    nothing."""
    if train is None:
        return None
    owner = {n.name: n.layer.args["shares"] for n in graph.layers if n.layer.args.get("shares")}
    if not owner:
        return train
    return lambda name: train(owner.get(name, name))


def segments(n: int, every: int | None = None, count: int | None = None) -> list[tuple[int, int]]:
    """Checkpointed segments (first, last layer index), as torch.utils.checkpoint_sequential
    cuts them: ``every`` layers each, or ``count`` segments of n // count layers (the last takes
    the rest); the last segment is never checkpointed (its forward runs just before backward)."""
    if every:
        cuts = [(a, min(a + every, n) - 1) for a in range(0, n, every)]
    elif count:
        size = max(n // count, 1)
        cuts = [(a * size, a * size + size - 1) for a in range(min(count, n) - 1)]
        cuts.append((cuts[-1][1] + 1 if cuts else 0, n - 1))
    else:
        return []
    return cuts[:-1]


class TrainingStep:
    """The memory of one training step from the liveness walk (see ``training_step``)."""

    __slots__ = ("lines", "timeline", "peak", "peak_step", "peak_layer", "peak_parts", "n_layers", "recompute_macs",
                 "training_macs", "trainable_params", "frozen_params", "optimizer", "precision", "saved",
                 "checkpointed", "transients")

    def transient_note(self) -> str:
        """What the backward at the peak allocates for itself, and the rule ('' when nothing)."""
        if self.peak_step < self.n_layers or not self.peak_parts.get("backward transients"):
            return ""
        size, rule = self.transients[self.peak_layer]
        return f"backward transients {size:,} B at the backward of {self.peak_layer}: {rule}"

    def as_dict(self) -> dict:
        return {"optimizer": self.optimizer, "precision": self.precision, "peak_bytes": self.peak,
                "peak_at": self.peak_layer, "peak_phase": "forward" if self.peak_step < self.n_layers else "backward",
                "saved_bytes": self.saved, "recompute_macs": self.recompute_macs,
                "training_macs": self.training_macs, "trainable_params": self.trainable_params,
                "frozen_params": self.frozen_params, "checkpointed_segments": self.checkpointed,
                "lines": {k: v for k, v, _ in self.lines}}


def training_step(graph: Graph, batch: int, *, dtype_bytes: int = 4, optimizer: str = "momentum",
                  precision: str = "fp32", checkpoint_every: int | None = None,
                  checkpoint_segments: int | None = None, freeze=(), trainable=(),
                  macs: dict | None = None, input_grad_macs=None) -> TrainingStep:
    """Walk one training step: forward (layer i at step i), then backward (layer i at step
    2n − 1 − i), then the optimizer step. Live at each step:

    - parameters, BN running statistics and optimizer state (the whole step);
    - each activation storage from the layer that makes it to its last reader in forward, or,
      when a layer keeps it for backward, to the backward of the earliest layer keeping it;
      tensors made for backward (indices, statistics, masks) from their layer's forward to its
      backward; the input for the whole step;
    - each activation gradient from the backward of its tensor's last reader to the backward
      of the layer that made the tensor (tensors that require no gradient have none);
    - each parameter gradient from its layer's backward to the optimizer step.

    Checkpointed segments keep only what enters them; their backward first runs their forward
    again, and what their layers keep lives from then to each layer's backward. Mixed precision
    (torch autocast): activations and their gradients in 2 bytes, the input and parameters,
    gradients and optimizer state in fp32, plus the half copies of conv/linear weights."""
    from cnncalc.shapes import numel

    if optimizer not in OPTIMIZERS:
        raise CnnCalcError(f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if precision not in PRECISIONS:
        raise CnnCalcError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    mixed = precision != "fp32"
    act = 2 if mixed else dtype_bytes
    pbytes = 4 if mixed else dtype_bytes
    train = owner_matcher(graph, matcher(freeze, trainable))
    s = saved_tensors(graph, batch, act, input_bytes=pbytes if mixed else act, trainable=train, mixed=mixed)
    layers = graph.layers
    n = len(layers)
    end = 2 * n - 1
    step_of = {node.name: i for i, node in enumerate(layers)}
    cuts = segments(n, checkpoint_every, checkpoint_segments)
    seg_of = [None] * n
    for k, (a, b) in enumerate(cuts):
        for i in range(a, b + 1):
            seg_of[i] = k
    # parameters
    trained = frozen = state = ntensors = 0
    pgrad = []  # (step, bytes) of each trained layer's parameter gradients
    for i, node in enumerate(layers):
        ps = node.layer.owned_param_shapes()  # (a shared layer's are stored, and their gradient, once)
        state += sum(numel(sh) for sh in node.layer.state_shapes().values())
        if not ps:
            continue
        k = sum(numel(sh) for sh, _ in ps.values())
        if train is None or train(node.name):
            trained += k
            ntensors += len(ps)
            pgrad.append((i, k * pbytes))
        else:
            frozen += k
    per_param, has_step = OPTIMIZERS[optimizer]
    opt_bytes = per_param * trained * pbytes + (4 * ntensors if has_step else 0)
    const = (trained + frozen + state) * pbytes + opt_bytes
    # one difference array per kind of tensor: activations (and what backward keeps),
    # activation gradients, parameter gradients, autocast's half weights, backward transients
    deltas = [[0] * (2 * n + 1) for _ in range(5)]

    def live(lo, hi, size, kind=0):
        if size and lo <= hi:
            d = deltas[kind]
            d[lo] += size
            d[hi + 1] -= size

    # readers: the last forward step reading each storage (through any view of it)
    last = {}
    producer = {INPUT: 0}
    for i, node in enumerate(layers):
        r = s.roots[node.name]
        if r == node.name:
            producer[r] = i
        for src in node.inputs:
            last[s.roots[src]] = i
    for out in graph.outputs:
        last[s.roots[out]] = max(last.get(s.roots[out], 0), n - 1)
    # who keeps each storage: forward-kept (outside checkpoints) and per checkpointed segment
    kept_fwd: dict = {}
    kept_seg: dict = {}
    for node in layers:
        i = step_of[node.name]
        for key, size, _ in s.keeps[node.name]:
            k = seg_of[i]
            if k is None:
                kept_fwd[key] = min(kept_fwd.get(key, i), i)
            else:
                d = kept_seg.setdefault(key, {})
                d[k] = min(d.get(k, i), i)
    sizes = dict(s.sizes)
    sizes.update(s.hidden)
    sizes[("half", INPUT)] = s.sizes[INPUT] // (pbytes if mixed else act) * act
    saved_total = 0  # kept through the forward: by layers outside checkpoints, and by the checkpoints
    for key, size in sizes.items():
        savers = kept_seg.get(key, {})
        if isinstance(key, tuple):  # made for backward by one layer (or the input's half copy)
            if key not in kept_fwd and not savers:
                continue
            lo = step_of[key[0]] if key[0] in step_of else min([kept_fwd.get(key, n), *savers.values()])
            hi = -1
        else:
            lo = producer.get(key, 0)
            hi = end if key == INPUT else last.get(key, lo)
        if key in kept_fwd:
            hi = max(hi, end - kept_fwd[key])
            saved_total += size
        live(lo, hi, size)
        for k, first in savers.items():
            a, b = cuts[k]
            if not isinstance(key, tuple) and (key == INPUT or producer.get(key, 0) < a):
                continue  # it enters the segment: the checkpoint keeps it (below), nothing is remade
            live(end - b, end - first, size)  # made again by the segment's recomputation
    # the inputs of each checkpointed segment: kept until the segment's backward is done
    entered = set()
    for k, (a, b) in enumerate(cuts):
        entering = {s.roots[src] for node in layers[a:b + 1] for src in node.inputs}
        for r in entering:
            if producer.get(r, 0) < a or r == INPUT:
                hi = end if r == INPUT else max(last.get(r, 0), end - kept_fwd[r] if r in kept_fwd else 0)
                if end - a > hi:
                    live(hi + 1, end - a, sizes[r])
                if r not in kept_fwd and r not in entered:
                    entered.add(r)
                    saved_total += sizes[r]
    # activation gradients
    for r, p in producer.items():
        if r == INPUT or not s.rg.get(r, False):
            continue
        live(end - last.get(r, p), end - p, s.sizes[r], 1)
    for i, size in pgrad:
        live(end - i, end, size, 2)
    if mixed and s.weight_copies:
        live(0, end, s.weight_copies, 3)  # (autocast's weight cache: the forward, kept for backward)
    # what each backward allocates for itself, live during that backward only
    transients = {}
    for i, node in enumerate(layers):
        lay = node.layer
        if lay.kind not in ("conv", "dwconv", "batchnorm"):
            continue
        gin = any(s.rg[x] for x in node.inputs)
        gw = bool(lay.param_shapes()) and (train is None or train(node.name))
        if not (gin or gw):
            continue
        extra, rule = backward_transients(lay, batch, act, pbytes, gin, gw,
                                          numel(lay.in_shapes[0]) * batch * act)
        # a fused activation's backward runs first and frees what only it kept (its output):
        # the convolution's transients come after that
        freed = sum(size for key, size, what in s.keeps[node.name]
                    if what.startswith("output") and kept_fwd.get(key) == i)
        extra = max(extra - freed, 0)
        if extra:
            transients[node.name] = (extra, rule)
            live(end - i, end - i, extra, 4)
    timeline = list(accumulate(map(sum, zip(*deltas))))[:2 * n]
    t = TrainingStep()
    t.timeline = [v + const for v in timeline]
    best = max(timeline, default=0)
    t.peak_step = timeline.index(best) if timeline else 0
    t.peak = best + const
    t.n_layers = n
    t.peak_layer = layers[t.peak_step if t.peak_step < n else end - t.peak_step].name if n else ""
    # what is live at the peak, by kind (they add up to the peak)
    at = t.peak_step + 1
    acts, agrads, pgrads, copies, trans = (sum(d[:at]) for d in deltas)
    t.peak_parts = {"parameters, buffers, optimizer state": const, "activations and kept tensors": acts,
                    "activation gradients": agrads, "parameter gradients so far": pgrads}
    if mixed:
        t.peak_parts["half copies of weights"] = copies
    if transients:
        t.peak_parts["backward transients"] = trans
    t.transients = transients
    t.optimizer, t.precision = optimizer, precision
    t.saved = saved_total + (s.weight_copies if mixed else 0)
    t.trainable_params, t.frozen_params = trained, frozen
    t.checkpointed = len(cuts)
    m = macs or {}
    t.recompute_macs = sum(m.get(layers[i].name, 0) for a, b in cuts for i in range(a, b + 1))
    fwd = sum(m.values())
    dx = dw = 0
    for node in layers:
        mm = m.get(node.name, 0)
        if not mm:
            continue
        flows = [s.rg[x] for x in node.inputs]
        if any(flows):
            dx += input_grad_macs(node, flows) if input_grad_macs else mm
        if node.layer.param_shapes() and (train is None or train(node.name)):
            dw += mm
    t.training_macs = fwd + dx + dw + t.recompute_macs
    prec = {"fp32": f"{pbytes}-byte", "fp16-mixed": "fp16 autocast", "bf16-mixed": "bf16 autocast"}[precision]
    t.lines = [
        ("parameters", (trained + frozen) * pbytes, f"{trained + frozen:,} parameters × {pbytes} B"
         + (" (fp32 master weights)" if mixed else "") + (f", {frozen:,} frozen" if frozen else "")),
        ("buffers", state * pbytes, "batch-norm running statistics"),
        ("optimizer state", opt_bytes, f"{optimizer}: {per_param} tensor(s) per trained parameter"
         + (", + a step counter per tensor" if has_step else "")),
        ("parameter gradients", trained * pbytes, f"one per trained parameter, {pbytes} B"),
        ("saved for backward", t.saved, f"what autograd keeps ({prec} activations"
         + (", half copies of conv/linear weights" if mixed else "")
         + (f"; {len(cuts)} checkpointed segments keep their inputs" if cuts else "") + ")"),
        ("peak of the step", t.peak, f"the highest sum of live tensors, at the "
         f"{'forward' if t.peak_step < n else 'backward'} of {t.peak_layer}: parameters + state + "
         "live activations, saved tensors and gradients"),
    ]
    return t
