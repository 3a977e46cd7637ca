"""The graph executor: run (and differentiate) any spec with the numba kernels.

``Net(graph)`` allocates one array per tensor the layers list in ``param_shapes()`` and
``state_shapes()`` — the code that counts is the code that allocates — and walks the DAG in
topological order forward and in reverse order backward.  The public interface (what
``train``, ``verify``, ``gradcheck`` and ``erf`` use; nothing else)::

    net = Net(cnncalc.load("lenet5"), dtype="float64")
    outs = net.forward(x, train=True, rng=7)   # {output: array}; rng seeds dropout
    z = net.logits("F7")                       # pre-softmax scores of that forward
    dx = net.backward({"F7": dz})              # parameter gradients land in net.grads
    loss, dx = net.loss(x, labels, rng=7)      # softmax-cross-entropy + backward
    net.backward(douts, params=False)          # data gradients only (receptive fields)
    net.loss(x, labels, input_grad=False)      # training: no gradient for the input
    net.sub_batch = 0                          # loss on whole batches (default: sub-batches
                                               # of 32 where no layer couples the samples)
    net.grads["C1"]["weight"]                  # same shape as net.params["C1"]["weight"]
    net.cache_arrays()                         # arrays the forward kept for backward
    y, cache = net.run_node("C1", [x]); dxs, dps = net.backward_node("C1", dy, cache)

Layouts. Activations are NCHW. A 1-D tensor (spec ``LxC``) is carried as ``(N, C, 1, L)`` so
every 2-D kernel serves it too (kernel ``(1, k)``); its parameters keep the spec's 1-D shapes
and are reshaped (as views) when a kernel is called. A 3-D tensor (spec ``DxHxWxC``) is
``(N, C, D, H, W)``: conv, transposed conv and pooling run on the any-rank kernels of
``kernels/ndim.py`` (the tuned 2-D kernels keep the 1-D and 2-D paths); batch norm, the
activations, the norms and the resampling layers are rank-free. Flat vectors are ``(N, F)``. ``flatten``
reshapes NCHW in C-major order (C, then H, then W: PyTorch's ``x.flatten(1)``), so an fc
weight ``(out, in)`` indexes its inputs as ``c*H*W + h*W + w``.

Adding a layer type's kernels
-----------------------------
:data:`OPS` is the dispatch table, one row per layer kind: ``LayerOps(forward, backward,
fresh)``.

* ``forward(net, node, xs, ctx) -> (y, cache)``: ``xs`` the input arrays (runtime layout),
  ``node.layer`` the analysed layer (its windows, args, ``param_shapes()``),
  ``net.params[node.name]`` its parameters; ``ctx.train``, ``ctx.rng(node)`` (a Generator
  for anything random, a pure function of the forward's ``rng`` and the layer), and
  ``ctx.keep`` (True when a backward will follow: keep what makes it cheaper).
* ``backward(net, node, dy, cache, ctx) -> (list of input gradients, {param: gradient})``:
  skip the parameter gradients when ``ctx.params`` is False, and input ``i``'s gradient
  (return None for it) when ``ctx.need_dx[i]`` is False.
* ``fresh``: True when ``y`` is always a new array (not a view of an input, not kept in the
  cache), so the layer's fused activation may run in place on it.

Write the kernels in ``kernels/`` (numba for loops, numpy for GEMMs and ufuncs), test the
row with a gradcheck (``tests/runtime/test_kernels.py``) and a PyTorch cross-check.  A layer
kind with no row makes ``Net`` raise :class:`RuntimeUnsupported` (exit 2).  A layer's fused
``activation`` runs after it; gradients of a tensor read by several layers are summed.

``linear=True`` builds the linearised copy ``cnncalc verify`` uses for receptive fields:
identity activations, average pooling in place of max (and mean in place of maxout,
adaptive average in place of adaptive max), dropout/LRN/softmax as identity, positive weights;
layer/group/instance norm, layer scale and prelu as identity (pointwise for the field, as the
analysis treats them); ``mul`` passes its full-size (feature) branch and holds a broadcast
gate constant (the analysis flags such a field as gated instead of widening it); upsample,
crop and adaptive average pooling as themselves (they are linear), padding as zero padding
(the analysis' ``o − lo`` map; reflect/replicate only re-read units already inside). See
:data:`LINEAR_KIND`. Its weights are drawn in the net's dtype.

``init="fast"`` draws weights uniformly in [-1, 1)/sqrt(fan_in) in the net's dtype instead
of He's float64 normal draws (several times faster on a large net): for runs whose numbers
do not depend on the values (``verify``'s counts, shapes and bytes). Training uses ``he``.
"""
from __future__ import annotations

import copy
from typing import Callable, NamedTuple

import numpy as np

from cnncalc.analysis.workspace import COUPLING_KINDS, SUB_BATCH
from cnncalc.errors import CnnCalcError
from cnncalc.graph import INPUT, Graph
from cnncalc.runtime.kernels import activation as K_act
from cnncalc.runtime.kernels import activation_ext as K_act2
from cnncalc.runtime.kernels import attention as K_att
from cnncalc.runtime.kernels import conv as K_conv
from cnncalc.runtime.kernels import dense as K_dense
from cnncalc.runtime.kernels import loss as K_loss
from cnncalc.runtime.kernels import ndim as K_nd
from cnncalc.runtime.kernels import norm as K_norm
from cnncalc.runtime.kernels import pool as K_pool
from cnncalc.runtime.kernels import resample as K_rs
from cnncalc.runtime.kernels import statnorm as K_sn
from cnncalc.runtime.kernels import tensor as K_t
from cnncalc.shapes import TENSOR, Tensor, numel, torch_order

CONV_ALGOS = ("auto", "direct", "im2col", "fft", "winograd")
_ACT_NAME = {"leakyrelu": "leaky_relu"}  # spec name → kernel name
ELEMENTWISE = ("relu", "relu6", "leakyrelu", "tanh", "sigmoid", "softmax")
#: issue 10's activations: {kind: the layer arguments its kernel takes}
ACTIVATIONS2 = {"silu": (), "hardswish": (), "hardsigmoid": (), "gelu": ("approximate",), "mish": (),
                "elu": ("alpha",), "selu": (), "softplus": ("beta", "threshold")}
#: activations a layer may carry fused (``activation:``); prelu becomes its own layer
FUSED_ACTIVATIONS = (*ELEMENTWISE, *ACTIVATIONS2)
#: spec shapes up to DxHxWxC run (3 spatial axes) ...
MAX_INPUT_RANK = 4
#: ... except these kinds on 3-D tensors
NO_3D = ("local", "lrn", "maxout", "pad_channels")
#: what the linearised copy (``linear=True``) runs in place of a kind; see the module docstring
LINEAR_KIND = {"maxpool": "avgpool", "global_maxpool": "global_avgpool", "maxout": "_meanout",
               "lrn": "identity", "dropout": "identity", "adaptive_maxpool": "adaptive_avgpool",
               "prelu": "identity", "layernorm": "identity", "groupnorm": "identity",
               "instancenorm": "identity", "scale": "identity", "mul": "_mul_linear",
               **{k: "identity" for k in (*ELEMENTWISE, *ACTIVATIONS2)},
               # the tensor vocabulary: sums with the same dependencies (every gradient positive)
               "unary": "identity", "binary": "_sum_linear", "where": "_sum_linear", "reduce": "_reduce_linear",
               "logsoftmax": "_softmax_linear", "padding": "_pad_linear"}


class RuntimeUnsupported(CnnCalcError):
    """A layer option the reference runtime does not execute (exit 2)."""


# ----------------------------------------------------------------------------- layouts
def spec_shape(a: np.ndarray, nd: int) -> tuple[int, ...]:
    """Runtime array → the spec's shape of one sample: (N,C,H,W)→HxWxC, (N,C,1,L)→LxC, (N,F)→[F],
    (N,C,D,H,W)→DxHxWxC."""
    if nd == 3:
        return (*a.shape[2:], a.shape[1])
    if nd == 2:
        return (a.shape[2], a.shape[3], a.shape[1])
    if nd == 1:
        return (a.shape[3], a.shape[1])
    return (int(np.prod(a.shape[1:])),)


def to_runtime(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A batch given in the runtime layout of the spec shape: (N,C,H,W), (N,C,L) or (N,F)."""
    x = np.asarray(x)
    if len(shape) == 2 and x.ndim == 3 and shape.__class__ is tuple:  # (N, C, L) → (N, C, 1, L)
        return x[:, :, None, :]
    return x  # (a token sequence or a tensor: batch first, then its own dims)


def random_input(shape, batch, rng, dtype="float64"):
    """A standard-normal runtime input of ``batch`` items for an analysis ``shape``."""
    if shape.__class__ is not tuple:  # tokens, a tensor: batch first, then its own dims
        x = rng.standard_normal((batch, *shape))
    elif len(shape) == 4:
        x = rng.standard_normal((batch, shape[3], *shape[:3]))
    elif len(shape) == 3:
        x = rng.standard_normal((batch, shape[2], shape[0], shape[1]))
    elif len(shape) == 2:
        x = rng.standard_normal((batch, shape[1], 1, shape[0]))
    else:
        x = rng.standard_normal((batch, shape[0]))
    return to_runtime(x.astype(dtype), shape)


def from_hwc(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) → (N, C, H, W); (N, L, C) → (N, C, L)."""
    x = np.asarray(x)
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if x.ndim >= 3 else x


def _win2d(layer, nd):
    """kernel, stride, pads, dilation of a windowed layer as 2-D kernel arguments."""
    ws = layer.windows
    if nd == 1:
        w = ws[0]
        return (1, w.kernel), (1, w.stride), ((0, 0), (w.pad_lo, w.pad_hi)), (1, w.dilation)
    return (tuple(w.kernel for w in ws), tuple(w.stride for w in ws),
            tuple((w.pad_lo, w.pad_hi) for w in ws), tuple(w.dilation for w in ws))


def _out_len(n, k_ext, s, lo, hi, ceil):
    """The runtime's own output-length rule: floor (PyTorch), or ceil with the last window
    starting inside the input or the low padding (PyTorch ceil_mode / Caffe)."""
    span = n + lo + hi - k_ext
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + lo:
        o -= 1
    return o


def _sizes(layer, nd, x, rounding):
    """(out_hw, pads) with extra high padding so the floor-rule kernels produce a ceil size."""
    kernel, stride, pads, dil = _win2d(layer, nd)
    ceil = rounding == "ceil"
    out, newpads = [], []
    for n, k, s, (lo, hi), d in zip(x.shape[2:], kernel, stride, pads, dil):
        ext = d * (k - 1) + 1
        o = _out_len(n, ext, s, lo, hi, ceil)
        extra = max(0, (o - 1) * s + ext - (n + lo + hi))
        out.append(o)
        newpads.append((lo, hi + extra))
    return tuple(out), tuple(newpads), kernel, stride, dil


# ----------------------------------------------------------------------------- the network
class Net:
    """A network built from an inferred Graph; see the module docstring."""

    def __init__(self, graph: Graph, *, dtype="float32", conv_algo: str = "auto", seed: int = 0,
                 linear: bool = False, init: str = "he", weights: tuple[dict, dict] | None = None):
        if conv_algo not in CONV_ALGOS:
            raise CnnCalcError(f"unknown conv algorithm {conv_algo!r}; use one of {', '.join(CONV_ALGOS)}")
        graph.infer()
        self.graph = graph
        self.dtype = np.dtype(dtype)
        self.conv_algo = conv_algo
        self.linear = linear
        self.seed = seed
        if init not in ("he", "fast"):
            raise CnnCalcError(f"unknown init {init!r}; use 'he' or 'fast'")
        self.init = init
        self.nd = {INPUT: _nd(graph.input_shape)}
        # a layer that shares another's parameters (``shares:``) has no entry: reading it gives
        # the owner's tensors (its gradients are added to the owner's)
        self.shared = {n.name: n.layer.args["shares"] for n in graph.layers if n.layer.args.get("shares")}
        self.params: dict[str, dict[str, np.ndarray]] = _Params(self.shared)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.grads: dict[str, dict[str, np.ndarray]] = {}
        rng = np.random.default_rng(seed)
        # ``weights`` ({layer: {tensor: array}} parameters, state) for a lean forward only: the
        # parameters stay as given and each layer's are made in the net's dtype while it runs
        # (a float64 check of 2 GB of float32 weights holds 2 GB, not 2 + 4)
        self._lean_params = None if weights is None else weights[0]
        for node in graph.layers:
            layer = node.layer
            self.nd[node.name] = _nd(layer.out_shape)
            if layer.kind not in OPS:
                raise RuntimeUnsupported(f"the runtime has no {layer.kind!r} layer", )
            if self.nd[node.name] == 3 and layer.kind in NO_3D:
                raise RuntimeUnsupported(f"{node.name}: the runtime has no 3-D {layer.kind!r} layer")
            if layer.kind == "maxpool" and any(w.dilation > 1 for w in layer.windows):
                raise RuntimeUnsupported(f"{node.name}: dilated max pooling is not supported by the runtime")
            # the code that counts is the code that allocates
            if weights is not None:
                if node.name not in self.shared:
                    _given(weights[0], node.name, _shapes(layer))  # (a missing tensor: now)
                self.state[node.name] = {name: np.asarray(a, self.dtype) for name, a in
                                         _given(weights[1], node.name, layer.state_shapes()).items()}
                continue
            if node.name not in self.shared:
                self.params[node.name] = {
                    name: self._init(rng, layer, name, shape, role)
                    for name, (shape, role) in layer.param_shapes().items()}
            self.state[node.name] = {
                name: (np.ones(shape, self.dtype) if "var" in name else np.full(shape, _state_init(layer, name),
                                                                                self.dtype))
                for name, shape in layer.state_shapes().items()}
        # an image layer reading a generic tensor of 2 axes reads it as C x L (PyTorch's Conv1d on
        # (N, C, L): ECA's conv over the channel descriptor): the runtime's 1-D images are
        # (N, C, 1, L), so those inputs get the size-1 axis on the way in (and off on the way back)
        self._signal_in: dict[str, tuple[int, ...]] = {}
        for node in graph.layers:
            if not node.layer.tensors:
                lift = tuple(i for i, s in enumerate(node.inputs)
                             if _signal_tensor(graph.input_shape if s == INPUT else graph[s].shape))
                if lift:
                    self._signal_in[node.name] = lift
        self._caches: dict[str, tuple] = {}
        # convs (no activation of their own) read by a batch norm: training, a Winograd conv sums
        # its output per filter as it writes it and the batch norm skips its statistics pass
        # (_conv_sums: {conv: (its output, the sums)} until that batch norm takes them)
        self._bn_fed = {n.inputs[0] for n in graph.layers
                        if n.layer.kind == "batchnorm" and len(n.inputs) == 1 and n.inputs[0] != INPUT
                        and graph[n.inputs[0]].layer.kind == "conv" and not graph[n.inputs[0]].layer.activation}
        self._conv_sums: dict[str, tuple] = {}
        self._logits: dict[str, np.ndarray] = {}
        self._outputs = set(graph.outputs)
        self._index = {n.name: i for i, n in enumerate(graph.layers)}
        self._last_outputs: dict[str, np.ndarray] = {}
        self._geom: dict = {}
        self.outputs_seen: dict[str, np.ndarray] = {}
        self._separable: bool | None = None
        self._replicas: list[Net] = []
        self._n = 1  # the batch of the latest forward (a layer of constants only repeats its output)

    #: samples per sub-batch of a training step (:meth:`loss`); 0 = whole batches. Fixed (not
    #: derived from the thread count) so the bits do not depend on it; 32 so that batch 64
    #: splits over two threads. On one thread, LeNet-5 at batch 256 costs ~7 % more CPU per
    #: image as sub-batches of 32 than as one batch (the per-call Python overhead). (Defined
    #: with `summarize --workspace`'s model, which restates it.)
    sub_batch = SUB_BATCH

    # -- parameters ---------------------------------------------------------------------
    def _init(self, rng, layer, name, shape, role):
        if layer.kind in ("layernorm", "groupnorm", "instancenorm") or (
                layer.kind == "batchnorm"):
            if self.linear:
                return np.ones(shape, self.dtype) if name == "gamma" else np.zeros(shape, self.dtype)
            base = 1.0 if name == "gamma" else 0.0
            return (base + 0.1 * rng.standard_normal(shape)).astype(self.dtype)
        if layer.kind in ("scale", "prelu"):  # PyTorch's init: the spec's value
            return np.full(shape, layer.args["init"], self.dtype)
        init = getattr(layer, "const_init", None)
        if init is not None and init(name) is not None:  # a constant with its 'init:' value
            return np.full(shape, init(name), self.dtype)
        fan_in = weight_fan_in(layer, shape) if role == "weight" else 1
        if self.linear:  # positive weights: no cancellation, so the gradient support is exact
            w = rng.random(shape, dtype=self.dtype)  # uniform in [0.5, 1.5) / fan_in, drawn in the dtype
            w += 0.5
            w /= fan_in
            return w
        if self.init == "fast":  # uniform in [-1, 1) / sqrt(fan_in), drawn in the dtype
            w = rng.random(shape, dtype=self.dtype)
            w -= 0.5
            w *= 2.0 / np.sqrt(fan_in)
            return w
        if role == "bias":
            return (0.1 * rng.standard_normal(shape)).astype(self.dtype)
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(self.dtype)

    def sample_shape(self, name: str, y: np.ndarray) -> tuple[int, ...]:
        """The spec's shape of one sample of node ``name``'s runtime output ``y``: images as
        HxWxC (:func:`spec_shape`), token sequences and tensors as they are (batch first)."""
        shape = self.graph[name].shape
        return tuple(y.shape[1:]) if shape.__class__ is not tuple else spec_shape(y, self.nd[name])

    def param_count(self, name: str | None = None) -> int:
        names = [name] if name else list(self.params)
        return sum(a.size for n in names for a in self.params.get(n, {}).values())  # (a sharer holds none)

    def state_count(self, name: str | None = None) -> int:
        names = [name] if name else list(self.state)
        return sum(a.size for n in names for a in self.state[n].values())

    def zero_grad(self):
        self.grads = {}

    # -- forward ------------------------------------------------------------------------
    def forward(self, x, *, train: bool = False, upto: str | None = None,
                keep=False, rng=None, lean: bool = False) -> dict[str, np.ndarray]:
        """Run the graph; returns {output name: array}. ``keep`` makes :attr:`outputs_seen`
        hold every node's output (True) or those of the named nodes (a collection). ``rng`` (an
        int or a sequence of ints; default the ``seed`` the net was built with) seeds dropout:
        layer ``i`` draws from ``default_rng([rng, i])``, so the same ``rng`` gives the same
        masks. ``lean`` (inference only): no cache is kept for a backward and each value is
        dropped after its last reader (unless an output or kept), so the memory held is the
        parameters and the values alive at one point of the graph, not every activation."""
        if lean and train:
            raise ValueError("a lean forward keeps nothing for a backward: not with train=True")
        lazy = self._lean_params
        if lazy is not None and not lean:
            raise ValueError("a Net made with weights= runs lean forwards only (its parameters are made per layer)")
        x = to_runtime(np.asarray(x, dtype=self.dtype), self.graph.input_shape)
        vals = {INPUT: x}
        need = self._ancestors(upto) if upto else None
        self._caches = {}
        self._conv_sums = {}
        self._logits = {}
        ctx = _Ctx(train, self.seed if rng is None else rng, keep=train)
        ctx.n = self._n = x.shape[0]
        outputs = set(self.graph.outputs) if upto is None else {upto}
        last: dict[str, int] = {}
        if lean:
            held = outputs | (set(keep) if keep and keep is not True else set())
            for i, node in enumerate(self.graph.layers):
                for s in node.inputs:
                    if s not in held:
                        last[s] = i
        for i, node in enumerate(self.graph.layers):
            if need is not None and node.name not in need:
                continue
            ctx.index = i
            if lazy is not None:  # this layer's parameters in the net's dtype, while it runs
                own = self.shared.get(node.name, node.name)
                made = _given(lazy, own, _shapes(self.graph[own].layer))
                self.params[own] = {k: np.asarray(a, self.dtype) for k, a in made.items()}
                try:
                    y, cache = self._run(node, [vals[s] for s in node.inputs], ctx)
                finally:
                    del self.params[own]
            else:
                y, cache = self._run(node, [vals[s] for s in node.inputs], ctx)
            vals[node.name] = y
            if lean:
                del cache
                for s in node.inputs:
                    if last.get(s) == i:
                        vals.pop(s, None)
            else:
                self._caches[node.name] = cache
        if keep is True:
            self.outputs_seen = vals
        else:
            self.outputs_seen = {n: vals[n] for n in keep if n in vals} if keep else {}
        self._last_outputs = {n: vals[n] for n in outputs if n in vals}
        return dict(self._last_outputs)

    def logits(self, name: str) -> np.ndarray:
        """Pre-softmax scores ``(N, classes)`` of output ``name`` from the latest forward
        (the output itself when it has no softmax)."""
        z = self._logits[name][0] if name in self._logits else None
        if z is None:
            z = self._last_outputs[name]
        return z.reshape(z.shape[0], -1)

    @property
    def caches(self) -> dict:
        """{node: cache} of the latest forward (read-only use: memory accounting)."""
        return self._caches

    def cache_arrays(self) -> list[np.ndarray]:
        """Every array the latest forward kept for backward (caches; views included)."""
        out: list[np.ndarray] = []
        _collect_arrays(self._caches, out)
        return out

    def speed_cache_arrays(self) -> list[np.ndarray]:
        """The part of :meth:`cache_arrays` kept only for speed (im2col's unfolded inputs and
        Winograd's transformed inputs, reused by the weight gradient): memory a training step spends that is not an activation."""
        out: list[np.ndarray] = []
        _collect_arrays(self._caches, out, "speed_arrays")
        return out

    def run_node(self, name, xs, *, train=False, index=None, rng=None):
        """One layer's forward (op, then its fused activation): (y, cache)."""
        node = self.graph[name]
        ctx = _Ctx(train, self.seed if rng is None else rng, keep=True)
        ctx.index = self._index[name] if index is None else index
        ctx.n = xs[0].shape[0] if xs else self._n
        return self._run(node, xs, ctx)

    def _run(self, node, xs, ctx):
        layer = node.layer
        lift = self._signal_in.get(node.name)
        if lift:
            xs = [x.reshape(x.shape[0], x.shape[1], 1, x.shape[2]) if i in lift else x for i, x in enumerate(xs)]
        act = None if self.linear else layer.activation
        if act == "relu" and layer.kind == "batchnorm" and node.name not in self._outputs:
            # batch norm and its ReLU in one pass forward and one backward (kernels/norm.py)
            y, cache = bn_fwd(self, node, xs, ctx, relu=True)
            return y, (cache, None, None, len(xs))
        row = OPS[self._kind(layer)]
        y, cache = row.forward(self, node, xs, ctx)
        act_cache = None
        if node.name in self._outputs and not self.linear:  # logits for softmax-CE
            if act == "softmax":
                self._logits[node.name] = (y, node.name, True)
            elif layer.kind == "softmax" and not act and layer.args["axis"] is None:
                self._logits[node.name] = (xs[0], node.inputs[0], False)
        if act:
            name = _ACT_NAME.get(act, act)
            if row.fresh and act in K_act.IN_PLACE and node.name not in self._logits:
                y, act_cache = K_act.activation_forward_inplace(name, y)
            else:
                y, act_cache = K_act.activation_forward(name, y)
        return y, (cache, act, act_cache, len(xs))

    def _kind(self, layer):
        k = layer.kind
        if self.linear:
            if k == "softmax" and layer.axis is not None:  # over an axis: global along it
                return "_softmax_linear"
            return LINEAR_KIND.get(k, k)
        return k

    def _ancestors(self, name):
        need, stack = set(), [name]
        while stack:
            n = stack.pop()
            if n in need or n == INPUT:
                continue
            need.add(n)
            stack.extend(self.graph[n].inputs)
        return need

    # -- backward -----------------------------------------------------------------------
    def backward(self, douts: dict[str, np.ndarray], *, below_activation=(), keep_cache=False,
                 params: bool = True, input_grad: bool = True):
        """Reverse-mode over the DAG from {node: dL/d(output)}; returns dL/d(input).

        Parameter gradients land in ``self.grads[node][param]`` (``params=False``: none are
        formed — data gradients only). Names in ``below_activation`` receive their gradient
        under their fused activation (softmax-cross-entropy hands the logits' gradient in
        directly). ``input_grad=False`` skips the input's gradient (returns None): a first
        conv then does no col2im at all. ``keep_cache`` keeps the forward's caches for
        another backward.
        """
        grads = {k: np.asarray(v, dtype=self.dtype) for k, v in douts.items()}
        self.grads = {}
        ctx = _Ctx(True, self.seed, keep=False)
        ctx.params = params
        for node in reversed(self.graph.layers):
            g = grads.pop(node.name, None)
            if g is None or node.name not in self._caches:
                continue
            cache = self._caches[node.name] if keep_cache else self._caches.pop(node.name)
            ctx.need_dx = [input_grad or src != INPUT for src in node.inputs]
            dxs, dps = self._backward(node, g, cache, ctx, node.name in below_activation)
            if params:
                owner = self.shared.get(node.name)
                if owner is None and node.name not in self.grads:
                    self.grads[node.name] = dps
                else:  # a shared tensor: the gradients of every use summed into its owner's (never in place)
                    acc = self.grads.setdefault(owner or node.name, {})
                    for k, a in dps.items():
                        acc[k] = acc[k] + a if k in acc else a
            for src, dx in zip(node.inputs, dxs):
                if dx is None:
                    continue
                grads[src] = dx if src not in grads else grads[src] + dx  # summed, never in place
        dx = grads.get(INPUT)
        if dx is not None and len(self.graph.input_shape) == 2 and self.graph.input_shape.__class__ is tuple:
            dx = dx[:, :, 0, :]
        return dx

    def backward_node(self, name, dy, cache, *, skip_activation=False, params=True):
        """One layer's backward from dL/d(its output): (input gradients, param gradients)."""
        ctx = _Ctx(True, self.seed, keep=False)
        ctx.params = params
        ctx.need_dx = [True] * cache[3]
        return self._backward(self.graph[name], dy, cache, ctx, skip_activation)

    def _backward(self, node, dy, cache, ctx, skip_activation):
        op_cache, act, act_cache, _ = cache
        dy = np.asarray(dy, dtype=self.dtype)
        if act and not skip_activation:
            dy = K_act.activation_backward(_ACT_NAME.get(act, act), dy, act_cache)
        dxs, dps = OPS[self._kind(node.layer)].backward(self, node, dy, op_cache, ctx)
        lift = self._signal_in.get(node.name)
        if lift:
            dxs = [dx.reshape(dx.shape[0], dx.shape[1], dx.shape[3]) if i in lift and dx is not None else dx
                   for i, dx in enumerate(dxs)]
        return dxs, dps

    # -- loss ---------------------------------------------------------------------------
    def sub_batched(self, n: int) -> bool:
        """True when :meth:`loss` runs a batch of ``n`` as sub-batches of :attr:`sub_batch`:
        ``n`` is larger than one sub-batch and no layer couples the samples of a batch (batch
        norm's statistics, dropout's whole-batch mask)."""
        if not self.sub_batch or n <= self.sub_batch:
            return False
        if self._separable is None:
            self._separable = not any(n.layer.kind in COUPLING_KINDS for n in self.graph.layers)
        return self._separable

    def loss(self, x, labels, *, train: bool = True, rng=None, input_grad: bool = True):
        """Softmax-cross-entropy (mean over the batch, summed over outputs); runs backward.

        An output with a fused softmax (or a softmax layer) is read as its logits, so the
        softmax and the loss are differentiated together. Returns (loss, dL/dx); dL/dx is
        None with ``input_grad=False`` (training).

        A batch larger than :attr:`sub_batch` runs as consecutive sub-batches when
        :meth:`sub_batched` (the same sums, in another order: each sub-batch's working set
        stays in cache), spread over the numba threads (one fork/join per call; see
        :func:`_sub_batch_loss`). The gradients are summed in sub-batch order, so the result
        does not depend on the thread count.
        """
        if self.sub_batched(len(labels)):
            return _sub_batch_loss(self, x, labels, train, rng, input_grad)
        return self._loss(x, labels, train=train, rng=rng, input_grad=input_grad)

    def _loss(self, x, labels, *, train=True, rng=None, input_grad=True, scale=None):
        outs = self.forward(x, train=train, rng=rng)
        douts, below, total = {}, set(), 0.0
        for name, y in outs.items():
            z, tgt, under = self._logits.get(name, (y, name, False))
            if under:
                below.add(name)
            l, dz = K_loss.softmax_cross_entropy(z.reshape(z.shape[0], -1), labels)
            if scale is not None:  # a sub-batch's share of the whole batch's mean
                l *= scale
                dz *= dz.dtype.type(scale)
            total += l
            douts[tgt] = dz.reshape(z.shape)
        return total, self.backward(douts, below_activation=below, input_grad=input_grad)


def _sub_batch_loss(net, x, labels, train, rng, input_grad):
    """:meth:`Net.loss` over sub-batches of ``net.sub_batch`` samples, on up to
    ``numba.get_num_threads()`` Python threads (each runs its kernels single-threaded:
    numba's thread count is per thread, BLAS is single-threaded, the kernels release the
    GIL). Every sub-batch runs on a shallow copy of ``net`` (shared parameters, own caches)."""
    from cnncalc.runtime import _numba

    n, k = len(labels), net.sub_batch
    spans = [(i, min(i + k, n)) for i in range(0, n, k)]
    workers = min(_numba.get_threads(), len(spans))
    reps = net._replicas
    while len(reps) < workers:
        r = copy.copy(net)
        r._replicas, r.sub_batch = [], 0
        reps.append(r)
    for r in reps:  # what a caller may have rebound since the copies were made
        r.params, r.state, r.seed, r.conv_algo = net.params, net.state, net.seed, net.conv_algo
    results: list = [None] * len(spans)

    def run(w):
        rep = reps[w]
        if workers > 1:
            _numba.set_thread_count(1)  # this Python thread only
        for j in range(w, len(spans), workers):
            lo, hi = spans[j]
            loss, dx = rep._loss(x[lo:hi], labels[lo:hi], train=train, rng=rng, input_grad=input_grad,
                                 scale=(hi - lo) / n)
            outs = {name: rep.logits(name) for name in rep._last_outputs}
            results[j] = (loss, dx, rep.grads, outs, dict(rep._last_outputs))
    if workers > 1:
        list(_pool(workers).map(run, range(workers)))
    else:
        run(0)
    total = 0.0
    grads: dict[str, dict[str, np.ndarray]] = {}
    for loss, _, g, _, _ in results:  # in sub-batch order: the same sums for any thread count
        total += loss
        for node, d in g.items():
            acc = grads.setdefault(node, {})
            for name, a in d.items():
                if name in acc:
                    acc[name] += a
                else:
                    acc[name] = a.copy()
    net.grads = grads
    net._last_outputs = {name: np.concatenate([r[4][name] for r in results]) for name in results[0][4]}
    net._logits = {name: (np.concatenate([r[3][name] for r in results]), name, False) for name in results[0][3]}
    net._caches = {}
    dx = np.concatenate([r[1] for r in results]) if input_grad else None
    return total, dx


_POOLS: dict = {}


def _pool(workers):
    from concurrent.futures import ThreadPoolExecutor

    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="cnncalc-sub-batch")
    return _POOLS[workers]


def _shapes(layer) -> dict:
    """{tensor: shape} of a layer's parameters."""
    return {name: shape for name, (shape, _) in layer.param_shapes().items()}


def _given(tensors: dict, layer: str, shapes: dict) -> dict:
    """{tensor: array} of ``layer`` from ``tensors`` ({layer: {tensor: array}}), each reshaped to
    its shape in ``shapes`` ({tensor: shape}); a missing one is a ValueError."""
    have = tensors.get(layer, {})
    out = {}
    for name, shape in shapes.items():
        if name not in have:
            raise ValueError(f"{layer}/{name}: no such tensor in the weights given")
        out[name] = np.asarray(have[name]).reshape(shape)
    return out


class _Params(dict):
    """{layer: {tensor: array}}; a layer that shares another's parameters reads the owner's
    (``net.params[sharer]``) but is no entry of its own (iteration, ``get`` and ``in`` see the
    tensors once: counts, optimizers and checkpoints)."""

    def __init__(self, shared):
        super().__init__()
        self.shared = shared

    def __missing__(self, key):
        if key in self.shared:
            return self[self.shared[key]]
        raise KeyError(key)


class _Ctx:
    """Per-pass context handed to every kernel row (see the module docstring)."""

    __slots__ = ("train", "seed", "keep", "index", "params", "need_dx", "n")

    def __init__(self, train, seed, keep):
        self.train, self.seed, self.keep = train, seed, keep
        self.index, self.params, self.need_dx = 0, True, ()
        self.n = 1  # the batch

    def rng(self, node=None):
        seed = list(self.seed) if isinstance(self.seed, (list, tuple)) else [int(self.seed)]
        return np.random.default_rng(seed + [self.index])


def _collect_arrays(obj, out, method="arrays"):
    """Walk a cache (arrays, dicts, lists, kernel cache objects) and gather its arrays: every
    array with ``method="arrays"``, only those kernel caches keep for speed with
    ``method="speed_arrays"`` (plain arrays in a cache are activations, not speed caches)."""
    if isinstance(obj, np.ndarray):
        if method == "arrays":
            out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect_arrays(v, out, method)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect_arrays(v, out, method)
    elif hasattr(obj, method):
        out.extend(getattr(obj, method)())


def _state_init(layer, name) -> float:
    """A buffer's initial value: a constant's 'init:', else 0 (the weights file holds it)."""
    init = getattr(layer, "const_init", None)
    return (init(name) if init is not None else None) or 0.0


def _signal_tensor(shape) -> bool:
    return shape.__class__ is Tensor and shape.kind == TENSOR and len(shape) == 2


def _nd(shape) -> int:
    return len(shape) - 1 if len(shape) > 1 else 0


def weight_fan_in(layer, shape) -> int:
    k = layer.kind
    if k == "local":
        return int(np.prod(shape[-3:] if len(shape) == 6 else shape[-2:]))
    if k == "conv" and getattr(layer, "connections", None) is not None:
        return max(1, shape[0] // layer.filters)
    if k == "deconv":
        return int(shape[0] * np.prod(shape[2:])) // max(1, layer.filters // layer.groups) or 1
    return int(np.prod(shape[1:])) or 1


# ----------------------------------------------------------------------------- layer ops
def _conv_weight(net, node):
    """The weight as the kernels want it: 4-D, and dense for a connection table."""
    layer, p = node.layer, net.params[node.name]
    w = p["weight"]
    if getattr(layer, "connections", None) is not None:
        idx = _conn_index(layer)
        dense = np.zeros((layer.filters, layer.in_channels, *layer.kernel), net.dtype)
        dense.reshape(-1)[idx] = w
        w = dense
    nd = net.nd[node.inputs[0]]
    if nd == 1:
        w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
    return w


def _conn_index(layer):
    """Flat indices into the dense (F, C, k...) weight of each entry of the flat weight."""
    kk = numel(layer.kernel)
    out = []
    for f, row in enumerate(layer.connections):
        for c in row:
            base = (f * layer.in_channels + c) * kk
            out.extend(range(base, base + kk))
    return np.asarray(out, dtype=np.int64)


def _bias_4d(net, node, b, nd):
    if b is None or nd != 1 or b.ndim == 1:
        return b
    return b.reshape(b.shape[0], 1, b.shape[1])  # untied (F, OL) → (F, 1, OL)


def _rounding(net, node):
    return node.layer.rounding or net.graph.rounding


def _geometry(net, node, x):
    """``_sizes`` of a windowed layer for this input size, computed once per size."""
    key = (node.name, x.shape[2:])
    g = net._geom.get(key)
    if g is None:
        nd = net.nd[node.inputs[0]]
        g = net._geom[key] = (*_sizes(node.layer, nd, x, _rounding(net, node)), _win2d(node.layer, nd)[2])
    return g


def standardize_forward(w, eps: float, scale: float, gain=None):
    """Weight standardisation as timm writes it (``F.batch_norm`` over the weight reshaped to
    (1, F, -1), training statistics, ``weight = gain * scale``): per filter f,
    ``w' = (w - mean) / sqrt(var + eps) * gain_f * scale`` with the mean and the biased
    variance over the filter's fan-in values -- a layer norm of each filter
    (:func:`~cnncalc.runtime.kernels.statnorm.statnorm_forward` over ``(F, -1)``) with
    ``gain * scale`` as its gamma. Returns ``(w', cache)``."""
    f = w.shape[0]
    s = w.dtype.type(scale)
    if gain is not None:
        s = gain.reshape(f, *(1,) * (w.ndim - 1)) * s
    y, cache = K_sn.statnorm_forward(w, (f, -1), s, None, w.dtype.type(eps))
    return y, (cache, scale, gain is not None)


def standardize_backward(dws, cache):
    """Gradients of :func:`standardize_forward`: ``(dw, dgain)`` (dgain None without a gain)."""
    sn, scale, has_gain = cache
    xhat = sn[0]
    dw, dg, _ = K_sn.statnorm_backward(dws.reshape(xhat.shape), sn, param_axes=tuple(range(1, xhat.ndim)))
    dgain = dg.reshape(-1) * xhat.dtype.type(scale) if has_gain else None
    return dw.reshape(dws.shape), dgain


class _Std:
    """A conv's cache when its weight is standardised: the conv's own cache and the
    standardisation's."""

    __slots__ = ("cache", "std")

    def __init__(self, cache, std):
        self.cache, self.std = cache, std


def conv_fwd(net, node, xs, ctx):
    x, nd = xs[0], net.nd[node.inputs[0]]
    out_hw, pads, _, stride, dil, _ = _geometry(net, node, x)
    w = _conv_weight(net, node)
    st = getattr(node.layer, "standardize", None)
    if st:
        w, std = standardize_forward(w, st["eps"], st["scale"], net.params[node.name].get("gain"))
    b = _bias_4d(net, node, net.params[node.name].get("bias"), nd)
    if nd == 3:
        if b is not None and b.ndim > 1:
            raise RuntimeUnsupported(f"{node.name}: the runtime has no untied bias on 3-D inputs")
        y, cache = K_nd.conv_forward(x, w, b, stride, pads, dil, node.layer.groups)
        cache = _Nd(cache)
    else:
        sums = ctx.train and not net.linear and node.name in net._bn_fed
        y, cache = K_conv.conv2d_forward(x, w, b, stride, pads, dil, node.layer.groups, net.conv_algo,
                                         keep_cols=ctx.keep, bn_sums=sums)
        if cache.sums is not None:
            net._conv_sums[node.name] = (y, cache.sums)
    return (y, _Std(cache, std)) if st else (y, cache)


def conv_bwd(net, node, dy, cache, ctx):
    std = None
    if isinstance(cache, _Std):
        cache, std = cache.cache, cache.std
    if isinstance(cache, _Nd):
        dx, dw, db = K_nd.conv_backward(dy, cache.cache, need_dx=ctx.need_dx[0], need_dw=ctx.params)
    else:
        dx, dw, db = K_conv.conv2d_backward(dy, cache, need_dx=ctx.need_dx[0], need_dw=ctx.params)
    if not ctx.params:  # receptive-field checks: dX only, the weight gradient is half the work
        return [dx], {}
    layer, p = node.layer, net.params[node.name]
    if getattr(layer, "connections", None) is not None:
        dw = dw.reshape(-1)[_conn_index(layer)]
    dgain = None
    if std is not None:
        dw, dgain = standardize_backward(dw, std)
    dps = {"weight": dw.reshape(p["weight"].shape)}
    if db is not None:
        dps["bias"] = db.reshape(p["bias"].shape)
    if dgain is not None:
        dps["gain"] = dgain.reshape(p["gain"].shape)
    return [dx], dps


def deconv_fwd(net, node, xs, ctx):
    x, nd, layer = xs[0], net.nd[node.inputs[0]], node.layer
    kernel, stride, pads, dil = _win2d(layer, nd)
    op = (0, *layer.output_padding) if nd == 1 else layer.output_padding
    w = _conv_weight(net, node)
    if nd == 3:
        y, cache = K_nd.conv_transpose_forward(x, w, net.params[node.name].get("bias"), stride, pads, dil,
                                               layer.groups, op)
        return y, _Nd(cache)
    return K_conv.conv_transpose2d_forward(x, w, net.params[node.name].get("bias"), stride, pads, dil,
                                           layer.groups, op, net.conv_algo)


def deconv_bwd(net, node, dy, cache, ctx):
    if isinstance(cache, _Nd):
        dx, dw, db = K_nd.conv_transpose_backward(dy, cache.cache)
    else:
        dx, dw, db = K_conv.conv_transpose2d_backward(dy, cache)
    p = net.params[node.name]
    dps = {"weight": dw.reshape(p["weight"].shape)}
    if db is not None:
        dps["bias"] = db
    return [dx], dps


def local_fwd(net, node, xs, ctx):
    x, nd = xs[0], net.nd[node.inputs[0]]
    out_hw, pads, _, stride, dil, _ = _geometry(net, node, x)
    p = net.params[node.name]
    w, b = p["weight"], p.get("bias")
    if nd == 1:  # (OL, F, C, k) → (1, OL, F, C, 1, k); bias (OL, F) → (1, OL, F)
        w = w.reshape(1, w.shape[0], w.shape[1], w.shape[2], 1, w.shape[3])
        b = None if b is None else b.reshape(1, *b.shape)
    return K_conv.locally_connected2d_forward(x, w, b, stride, pads, dil)


def local_bwd(net, node, dy, cache, ctx):
    dx, dw, db = K_conv.locally_connected2d_backward(dy, cache)
    p = net.params[node.name]
    dps = {"weight": dw.reshape(p["weight"].shape)}
    if db is not None:
        dps["bias"] = db.reshape(p["bias"].shape)
    return [dx], dps


def fc_fwd(net, node, xs, ctx):
    p = net.params[node.name]
    x = xs[0]
    if node.layer.in_shapes[0].__class__ is not tuple:  # tokens: the same Linear on every token
        y, cache = K_dense.dense_forward(x.reshape(-1, x.shape[-1]), p["weight"], p.get("bias"))
        return y.reshape(*x.shape[:-1], y.shape[-1]), (cache, x.shape)
    return K_dense.dense_forward(x, p["weight"], p.get("bias"))


def fc_bwd(net, node, dy, cache, ctx):
    shape = None
    if node.layer.in_shapes[0].__class__ is not tuple:
        cache, shape = cache
        dy = dy.reshape(-1, dy.shape[-1])
    dx, dw, db = K_dense.dense_backward(dy, cache, need_dx=ctx.need_dx[0], need_dw=ctx.params)
    if shape is not None and dx is not None:
        dx = dx.reshape(shape)
    if not ctx.params:
        return [dx], {}
    return [dx], ({"weight": dw} | ({"bias": db} if db is not None else {}))


def _pool_fwd(kind):
    def fwd(net, node, xs, ctx):
        x, layer = xs[0], node.layer
        # the pool kernels clip windows themselves: give them the spec's pads, not the extra
        out_hw, pads, kernel, stride, _, spads = _geometry(net, node, x)
        if net.nd[node.inputs[0]] == 3:
            if kind == "max":
                return _ndc(*K_nd.maxpool_forward(x, kernel, stride, spads, out_hw))
            return _ndc(*K_nd.avgpool_forward(x, kernel, stride, spads, out_hw,
                                             layer.args.get("count_include_pad", True)))
        if kind == "max":
            return K_pool.maxpool2d_forward(x, kernel, stride, spads, out_hw)
        inc = layer.args.get("count_include_pad", True)
        return K_pool.avgpool2d_forward(x, kernel, stride, spads, out_hw, inc)
    return fwd


def pool_bwd(net, node, dy, cache, ctx):
    if isinstance(cache, _Nd):
        return [K_nd.pool_backward(dy, cache.cache)], {}
    return [K_pool.pool2d_backward(dy, cache)], {}


def _whole(x):
    d = x.ndim - 2
    return x.shape[2:], (1,) * d, ((0, 0),) * d, (1,) * d


def gmax_fwd(net, node, xs, ctx):
    if xs[0].ndim == 5:
        return _ndc(*K_nd.maxpool_forward(xs[0], *_whole(xs[0])))
    return K_pool.global_maxpool_forward(xs[0])


def gavg_fwd(net, node, xs, ctx):
    if xs[0].ndim == 5:
        return _ndc(*K_nd.avgpool_forward(xs[0], *_whole(xs[0])))
    return K_pool.global_avgpool_forward(xs[0])


def _act_fwd(kind):
    name = _ACT_NAME.get(kind, kind)

    def fwd(net, node, xs, ctx):
        kw = {"alpha": node.layer.args["alpha"]} if kind == "leakyrelu" else {}
        return K_act.activation_forward(name, xs[0], **kw)

    def bwd(net, node, dy, cache, ctx):
        return [K_act.activation_backward(name, dy, cache)], {}
    return fwd, bwd


def identity_fwd(net, node, xs, ctx):
    return xs[0], None


def identity_bwd(net, node, dy, cache, ctx):
    return [dy], {}


def maxout_fwd(net, node, xs, ctx):
    return K_act.maxout_forward(xs[0], node.layer.args["k"])


def maxout_bwd(net, node, dy, cache, ctx):
    return [K_act.maxout_backward(dy, cache)], {}


def meanout_fwd(net, node, xs, ctx):
    """The linearised maxout: the mean of the k pieces."""
    x, k = xs[0], node.layer.args["k"]
    return x.reshape(x.shape[0], x.shape[1] // k, k, *x.shape[2:]).mean(axis=2), (x.shape, k)


def meanout_bwd(net, node, dy, cache, ctx):
    shape, k = cache
    return [np.repeat(dy / k, k, axis=1).reshape(shape)], {}


def dropout_fwd(net, node, xs, ctx):
    # a fixed stream per (rng, layer): repeated forwards draw the same mask (gradient checks)
    return K_act.dropout_forward(xs[0], node.layer.args["p"], train=ctx.train, rng=ctx.rng(node))


def dropout_bwd(net, node, dy, cache, ctx):
    return [K_act.dropout_backward(dy, cache)], {}


def bn_fwd(net, node, xs, ctx, relu=False):
    p, s, a = net.params[node.name], net.state[node.name], node.layer.args
    x = xs[0]
    train = ctx.train and not net.linear
    if train and x.ndim >= 2 and x.dtype in (np.float32, np.float64):  # two numba passes
        made = net._conv_sums.pop(node.inputs[0], None)  # the conv summed x as it wrote it: one
        return K_norm.batchnorm_train_forward(x, p["gamma"], p["beta"], s["running_mean"], s["running_var"],
                                              momentum=a["momentum"], eps=a["eps"], relu=relu,
                                              sums=made[1] if made is not None and made[0] is x else None)
    y, cache = K_norm.batchnorm_forward(x, p["gamma"], p["beta"], s["running_mean"], s["running_var"],
                                        train=train, momentum=a["momentum"], eps=a["eps"])
    if relu:
        y, act_cache = K_act.activation_forward_inplace("relu", y)
        return y, ("relu", cache, act_cache)
    return y, cache


def bn_bwd(net, node, dy, cache, ctx):
    if isinstance(cache, K_norm.BNCache):
        dx, dg, db = K_norm.batchnorm_train_backward(dy, cache)
    else:
        if isinstance(cache, tuple) and isinstance(cache[0], str):  # ("relu", bn cache, mask)
            dy = K_act.activation_backward("relu", dy, cache[2])
            cache = cache[1]
        dx, dg, db = K_norm.batchnorm_backward(dy, cache, need_dparams=ctx.params)
    return [dx], ({"gamma": dg, "beta": db} if ctx.params else {})


def lrn_fwd(net, node, xs, ctx):
    a = node.layer.args
    return K_norm.lrn_forward(xs[0], a["size"], a["alpha"], a["beta"], a["k"])


def lrn_bwd(net, node, dy, cache, ctx):
    return [K_norm.lrn_backward(dy, cache)], {}


def flatten_fwd(net, node, xs, ctx):
    x = xs[0]
    return x.reshape(x.shape[0], -1), x.shape  # C-major, a view


def flatten_bwd(net, node, dy, shape, ctx):
    return [dy.reshape(shape)], {}


def concat_fwd(net, node, xs, ctx):
    return np.concatenate(xs, axis=1), [x.shape[1] for x in xs]


def concat_bwd(net, node, dy, sizes, ctx):
    cuts = np.cumsum(sizes)[:-1]
    return [np.ascontiguousarray(d) for d in np.split(dy, cuts, axis=1)], {}


def add_fwd(net, node, xs, ctx):
    y = xs[0].copy()
    for x in xs[1:]:
        y += x
    return y, len(xs)


def add_bwd(net, node, dy, n, ctx):
    return [dy] * n, {}  # the same gradient goes to every branch (accumulation never mutates)


def pad_channels_fwd(net, node, xs, ctx):
    """Option A shortcut: ``x[:, :, ::s, ::s]`` with zero channels appended (or split both sides)."""
    x, layer = xs[0], node.layer
    strides = layer.strides if net.nd[node.inputs[0]] == 2 else (1, layer.strides[0])
    sub = x[:, :, ::strides[0], ::strides[1]]
    lo = layer.added // 2 if layer.args["place"] == "both" else 0
    y = np.zeros((x.shape[0], x.shape[1] + layer.added, *sub.shape[2:]), x.dtype)
    y[:, lo:lo + x.shape[1]] = sub
    return y, (x.shape, strides, lo)


def pad_channels_bwd(net, node, dy, cache, ctx):
    shape, strides, lo = cache
    dx = np.zeros(shape, dy.dtype)
    dx[:, :, ::strides[0], ::strides[1]] = dy[:, lo:lo + shape[1]]
    return [dx], {}


def _shuffle_perm(c, g):
    """y[:, k·g + j] = x[:, j·(C/g) + k]: the source channel of each output channel."""
    return np.arange(c).reshape(g, c // g).T.reshape(-1)


def shuffle_fwd(net, node, xs, ctx):
    x = xs[0]
    perm = _shuffle_perm(x.shape[1], node.layer.args["groups"])
    return np.ascontiguousarray(x[:, perm]), perm


def shuffle_bwd(net, node, dy, perm, ctx):
    dx = np.empty_like(dy)
    dx[:, perm] = dy  # the inverse permutation
    return [dx], {}


def split_fwd(net, node, xs, ctx):
    x, a = xs[0], node.layer.args
    w = x.shape[1] // a["parts"]
    return x[:, a["part"] * w:(a["part"] + 1) * w], (x.shape, a["part"] * w)  # a view


def split_bwd(net, node, dy, cache, ctx):
    shape, lo = cache
    dx = np.zeros(shape, dy.dtype)
    dx[:, lo:lo + dy.shape[1]] = dy
    return [dx], {}


# ----------------------------------------------------------------------------- issue 10
class _Nd:
    """A cache from the any-rank kernels (kernels/ndim.py): 3-D inputs."""

    __slots__ = ("cache",)

    def __init__(self, cache):
        self.cache = cache

    def arrays(self):
        out: list[np.ndarray] = []
        _collect_arrays(self.cache, out)
        return out


def _ndc(y, cache):
    return y, _Nd(cache)


def _spatial_axes(net, name):
    """Runtime axes of the spec's spatial axes of tensor ``name``: (3,) for 1-D (N, C, 1, L)."""
    nd = net.nd[name]
    return (3,) if nd == 1 else tuple(range(2, 2 + nd))


def _act2(kind):
    keys = ACTIVATIONS2[kind]

    def fwd(net, node, xs, ctx):
        return K_act.activation_forward(kind, xs[0], **{k: node.layer.args[k] for k in keys})

    def bwd(net, node, dy, cache, ctx):
        return [K_act.activation_backward(kind, dy, cache)], {}
    return LayerOps(fwd, bwd, True)


def prelu_fwd(net, node, xs, ctx):
    return K_act2.prelu_forward(xs[0], net.params[node.name]["weight"])


def prelu_bwd(net, node, dy, cache, ctx):
    dx, da = K_act2.prelu_backward(dy, cache)
    return [dx], ({"weight": da} if ctx.params else {})


def _bcast_shape(n, spec, out_spec):
    """Runtime shape of a ``mul`` input with spec shape ``spec`` lined up against ``out_spec``."""
    if len(out_spec) == 1:
        return (n, *spec)
    s = (1,) * (len(out_spec) - len(spec)) + tuple(spec)
    return (n, s[-1], 1, s[0]) if len(out_spec) == 2 else (n, s[-1], *s[:-1])


def mul_fwd(net, node, xs, ctx):
    layer = node.layer
    views = [x.reshape(_bcast_shape(x.shape[0], s, layer.out_shape)) for x, s in zip(xs, layer.in_shapes)]
    y, _ = K_sn.mul_forward(views)
    return y, (views, [x.shape for x in xs])


def mul_bwd(net, node, dy, cache, ctx):
    views, shapes = cache
    dxs = K_sn.mul_backward(dy, views, ctx.need_dx)
    return [None if g is None else g.reshape(s) for g, s in zip(dxs, shapes)], {}


def mul_linear_fwd(net, node, xs, ctx):
    """The linearised ``mul``: the feature path (the full-size branch) passes unchanged; a
    broadcast gate is a constant (its field is flagged, not folded, by the analysis)."""
    i = node.layer.rf_inputs()[0]
    return xs[i], (i, [x.shape for x in xs])


def mul_linear_bwd(net, node, dy, cache, ctx):
    i, shapes = cache
    return [dy if j == i else np.zeros(s, dy.dtype) for j, s in enumerate(shapes)], {}


def scale_fwd(net, node, xs, ctx):
    return K_sn.scale_forward(xs[0], net.params[node.name]["gamma"])


def scale_bwd(net, node, dy, cache, ctx):
    dx, dg = K_sn.scale_backward(dy, cache, ctx.params)
    return [dx], ({"gamma": dg} if ctx.params else {})


def _norm_plan(net, node, x):
    """(array to normalise, its groups shape, γ/β broadcast shape, γ's reduce axes, channels last?)."""
    kind, a = node.layer.kind, node.layer.args
    n = x.shape[0]
    if kind == "layernorm" and node.layer.norm_axis is not None:  # ONNX's: axes axis.. last (PyTorch order)
        r = node.layer.norm_axis + 1
        return x, (-1, int(np.prod(x.shape[r:]))), x.shape[r:], tuple(range(r)), False
    if kind == "layernorm" and a["over"] == "channels":
        xt = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        return xt, (-1, xt.shape[-1]), (xt.shape[-1],), tuple(range(xt.ndim - 1)), True
    if kind == "layernorm":
        return x, (n, 1, -1), x.shape[1:], (0,), False
    bshape = (x.shape[1],) + (1,) * (x.ndim - 2)
    axes = (0, *range(2, x.ndim))
    if kind == "groupnorm":
        return x, (n, a["groups"], -1), bshape, axes, False
    return x, (n, x.shape[1], -1), bshape, axes, False  # instancenorm


def statnorm_fwd(net, node, xs, ctx):
    x = xs[0]
    xt, groups, bshape, axes, moved = _norm_plan(net, node, x)
    p = net.params[node.name]
    g = p["gamma"].reshape(bshape) if "gamma" in p else None
    b = p["beta"].reshape(bshape) if "beta" in p else None
    y, cache = K_sn.statnorm_forward(xt, groups, g, b, node.layer.args["eps"])
    if moved:
        y = np.ascontiguousarray(np.moveaxis(y, -1, 1))
    return y, (cache, axes, moved)


def statnorm_bwd(net, node, dy, cache, ctx):
    c, axes, moved = cache
    if moved:
        dy = np.ascontiguousarray(np.moveaxis(dy, 1, -1))
    dx, dg, db = K_sn.statnorm_backward(dy, c, axes)
    if moved:
        dx = np.ascontiguousarray(np.moveaxis(dx, -1, 1))
    p = net.params[node.name]
    dps = {}
    if ctx.params and "gamma" in p:
        dps = {"gamma": dg.reshape(p["gamma"].shape), "beta": db.reshape(p["beta"].shape)}
    return [dx], dps


def _in_sizes(node):
    x = node.layer.in_shapes[0]
    return x[:-1]


def upsample_fwd(net, node, xs, ctx):
    layer = node.layer
    ins, outs = _in_sizes(node), layer.out_shape[:-1]
    if layer.args["mode"] == "nearest":
        mats = [K_rs.nearest_matrix(i, o) for i, o in zip(ins, outs)]
    else:
        mats = [K_rs.linear_matrix(i, o, layer.args["align_corners"]) for i, o in zip(ins, outs)]
    return K_rs.axis_linear_forward(xs[0], mats, _spatial_axes(net, node.inputs[0]))


def axis_linear_bwd(net, node, dy, cache, ctx):
    return [K_rs.axis_linear_backward(dy, cache)], {}


def adaptive_avg_fwd(net, node, xs, ctx):
    mats = [K_rs.adaptive_avg_matrix(i, o) for i, o in zip(_in_sizes(node), node.layer.out_shape[:-1])]
    return K_rs.axis_linear_forward(xs[0], mats, _spatial_axes(net, node.inputs[0]))


def adaptive_max_fwd(net, node, xs, ctx):
    return K_rs.adaptive_max_forward(xs[0], node.layer.out_shape[:-1], _spatial_axes(net, node.inputs[0]))


def adaptive_max_bwd(net, node, dy, cache, ctx):
    return [K_rs.adaptive_max_backward(dy, cache)], {}


def crop_fwd(net, node, xs, ctx):
    y, cache = K_rs.crop_forward(xs[0], node.layer.crops, _spatial_axes(net, node.inputs[0]))
    return y, (cache, [x.shape for x in xs[1:]])


def crop_bwd(net, node, dy, cache, ctx):
    c, others = cache
    # a `to:` layer is read for its shape only: its gradient is zero
    return [K_rs.crop_backward(dy, c)] + [np.zeros(s, dy.dtype) if need else None
                                          for s, need in zip(others, ctx.need_dx[1:])], {}


def pad_fwd(net, node, xs, ctx):
    layer = node.layer
    axes = _spatial_axes(net, node.inputs[0])
    mode = "zero" if net.linear else layer.args["mode"]  # linearised: the analysis' o − lo map
    if mode == "zero":
        y, cache = K_rs.zero_pad_forward(xs[0], layer.pads, axes)
        return y, ("zero", cache)
    mats = [K_rs.pad_matrix(n, lo, hi, mode) for n, (lo, hi) in zip(_in_sizes(node), layer.pads)]
    y, cache = K_rs.axis_linear_forward(xs[0], mats, axes)
    return y, ("mat", cache)


def pad_bwd(net, node, dy, cache, ctx):
    how, c = cache
    if how == "zero":
        return [K_rs.zero_pad_backward(dy, c)], {}
    return [K_rs.axis_linear_backward(dy, c)], {}


# ----------------------------------------------------------------------------- the tensor vocabulary
def _const(net, node, o):
    """A constant operand as a runtime array with a batch axis of 1."""
    c = o.const
    if c.tensor:
        a = (net.params if c.learned else net.state)[node.name][o.cname]
    else:
        a = np.asarray(c.value, dtype=net.dtype)
    return a[None]


def _operands(net, node, xs):
    layer = node.layer
    return [K_t.to_torch(xs[o.input], layer.in_shapes[o.input]) if o.const is None else _const(net, node, o)
            for o in layer.ops_]


def _full(ops, n):
    """Constants repeated over the batch (concat and stack join whole samples)."""
    return [o if o.shape[0] == n else np.broadcast_to(o, (n, *o.shape[1:])) for o in ops]


def _split_back(dy, sizes, axis):
    return np.split(dy, np.cumsum(sizes)[:-1], axis=axis)


def _slices(ranges):
    return (slice(None),) + tuple(slice(r.start, r.stop if r.stop >= 0 else None, r.step) for r in ranges)


#: kind → (forward(layer, operands, n) -> (y, cache), backward(layer, dy, cache, operand shapes) -> grads)
TENSOR_OPS: dict[str, tuple[Callable, Callable]] = {
    "matmul": (lambda L, o, n: K_t.matmul_fwd(o[0], o[1]), lambda L, d, c, s: K_t.matmul_bwd(d, c)),
    "binary": (lambda L, o, n: K_t.binary_fwd(L.args["op"], o[0], o[1]),
               lambda L, d, c, s: K_t.binary_bwd(d, c, s)),
    "where": (lambda L, o, n: K_t.where_fwd(*o), lambda L, d, c, s: K_t.where_bwd(d, c, s)),
    "unary": (lambda L, o, n: K_t.unary_fwd(L.args["op"], o[0]), lambda L, d, c, s: [K_t.unary_bwd(d, c)]),
    "reduce": (lambda L, o, n: K_t.reduce_fwd(L.args["op"], o[0], tuple(a + 1 for a in L.axes),
                                              L.args["keepdims"]),
               lambda L, d, c, s: [K_t.reduce_bwd(d, c)]),
    "softmax": (lambda L, o, n: K_t.softmax_fwd(o[0], L.axis + 1), lambda L, d, c, s: [K_t.softmax_bwd(d, c)]),
    "logsoftmax": (lambda L, o, n: K_t.softmax_fwd(o[0], L.axis + 1, log=True),
                   lambda L, d, c, s: [K_t.softmax_bwd(d, c)]),
    "reshape": (lambda L, o, n: (o[0].reshape(n, *torch_order(L.out_shape)), None),
                lambda L, d, c, s: [d.reshape(s[0])]),
    "transpose": (lambda L, o, n: (o[0].transpose(0, *(p + 1 for p in L.perm)), None),
                  lambda L, d, c, s: [d.transpose(0, *(int(p) + 1 for p in np.argsort(L.perm)))]),
    "slice": (lambda L, o, n: (o[0][_slices([L.ranges.get(a, range(0, o[0].shape[a + 1]))
                                             for a in range(o[0].ndim - 1)])], None),
              lambda L, d, c, s: [_scatter(d, s[0], _slices([L.ranges.get(a, range(0, s[0][a + 1]))
                                                            for a in range(len(s[0]) - 1)]))]),
    "gather": (lambda L, o, n: K_t.take_fwd(o[0], L.axis + 1, np.reshape(L.flat, L.ishape),
                                            view=L.view),
               lambda L, d, c, s: [K_t.take_bwd(d, c)]),
    "expand": (lambda L, o, n: (np.broadcast_to(K_t.align(o[0], len(L.out_shape_t)), (n, *L.out_shape_t)), None),
               lambda L, d, c, s: [K_t.unbroadcast(d, s[0])]),
    "tile": (lambda L, o, n: K_t.tile_fwd(o[0], L.args["repeats"]), lambda L, d, c, s: [K_t.tile_bwd(d, c)]),
    "concat": (lambda L, o, n: (np.concatenate(_full(o, n), axis=L.axis + 1), None),
               lambda L, d, c, s: _split_back(d, [x[L.axis + 1] for x in s], L.axis + 1)),
    "stack": (lambda L, o, n: (np.stack(_full(o, n), axis=L.axis + 1), None),
              lambda L, d, c, s: [np.take(d, k, axis=L.axis + 1) for k in range(len(s))]),
    "split": (lambda L, o, n: (o[0][_slices([L.ranges.get(a, range(0, o[0].shape[a + 1]))
                                             for a in range(o[0].ndim - 1)])], None),
              lambda L, d, c, s: [_scatter(d, s[0], _slices([L.ranges.get(a, range(0, s[0][a + 1]))
                                                            for a in range(len(s[0]) - 1)]))]),
    "padding": (lambda L, o, n: K_t.pad_fwd(o[0], {a + 1: p for a, p in zip(L.pad_axes, L.pads)},
                                            L.args["mode"], L.args["value"]),
                lambda L, d, c, s: [K_t.pad_bwd(d, c)]),
    # the linearised copy's forms (LINEAR_KIND): a sum of the operands (binary, where: the mask
    # is not an operand of the sum), a sum over the axes (reduce), a sum over the axis put back
    # on every value (softmax over an axis)
    "_sum_linear": (lambda L, o, n: _sum_linear_fwd(L, o),
                    lambda L, d, c, s: _sum_linear_bwd(L, d, c, s)),
    "_reduce_linear": (lambda L, o, n: K_t.reduce_fwd("sum", o[0], tuple(a + 1 for a in L.axes), L.args["keepdims"]),
                       lambda L, d, c, s: [K_t.reduce_bwd(d, c)]),
    "_pad_linear": (lambda L, o, n: K_t.pad_fwd(o[0], {a + 1: p for a, p in zip(L.pad_axes, L.pads)}, "zero"),
                    lambda L, d, c, s: [K_t.pad_bwd(d, c)]),
    "_softmax_linear": (lambda L, o, n: (np.broadcast_to(o[0].sum(axis=L.axis + 1, keepdims=True), o[0].shape),
                                         None),
                        lambda L, d, c, s: [np.broadcast_to(d.sum(axis=L.axis + 1, keepdims=True), s[0])]),
}


def _mask(layer, operand) -> bool:
    """Left out of the linearised sum: where's condition, and a broadcast gate (held constant,
    as the linearised mul holds it: the analysis flags its field instead of widening it)."""
    if operand.const is None:
        return operand.input in layer.gate_inputs
    return layer.kind == "where" and operand.index == 0


def _sum_linear_fwd(layer, xs):
    kept = [x for x, p in zip(xs, layer.ops_) if not _mask(layer, p)]
    if len(kept) == 1:  # a binary op with its gate held constant: the other operand itself
        return kept[0], None
    return K_t.binary_fwd("add", *kept)


def _sum_linear_bwd(layer, dy, cache, shapes):
    kept = [k for k, p in enumerate(layer.ops_) if not _mask(layer, p)]
    grads = ([K_t.unbroadcast(dy, shapes[kept[0]])] if cache is None
             else K_t.binary_bwd(dy, cache, [shapes[k] for k in kept]))
    out: list = [None] * len(shapes)
    for k, g in zip(kept, grads):
        out[k] = g
    return out


def _scatter(d, shape, index):
    dx = np.zeros(shape, d.dtype)
    dx[index] = d
    return dx


def tensor_fwd(net, node, xs, ctx):
    layer = node.layer
    ops = _operands(net, node, xs)
    y, cache = TENSOR_OPS[net._kind(layer)][0](layer, ops, xs[0].shape[0] if xs else 1)
    if not xs:  # constants only: one sample's result, repeated over the batch (a new tensor)
        y = np.broadcast_to(y, (ctx.n, *y.shape[1:]))
    if not layer.view or not xs:  # a new tensor, dense (as the analysis counts it)
        y = np.ascontiguousarray(y)
    return K_t.from_torch(y, layer.out_shape), (cache, [o.shape for o in ops], [x.shape for x in xs])


def tensor_bwd(net, node, dy, cache, ctx):
    c, op_shapes, x_shapes = cache
    layer = node.layer
    dy = K_t.to_torch(dy, layer.out_shape)
    if not x_shapes:  # constants only: the one result every sample repeated gets their gradients' sum
        dy = dy.sum(axis=0, keepdims=True)
    grads = TENSOR_OPS[net._kind(layer)][1](layer, dy, c, op_shapes)
    dxs: list = [None] * len(x_shapes)
    dps = {}
    for o, g, shp in zip(layer.ops_, grads, op_shapes):
        if g is None:
            continue
        if o.const is None:
            if ctx.need_dx[o.input]:
                g = np.ascontiguousarray(K_t.unbroadcast(g, shp)).reshape(x_shapes[o.input])
                dxs[o.input] = g if dxs[o.input] is None else dxs[o.input] + g
        elif ctx.params and o.const.tensor and o.const.learned:
            dps[o.cname] = np.ascontiguousarray(
                K_t.unbroadcast(g, shp)).reshape(o.const.shape).astype(dy.dtype, copy=False)
    return dxs, dps


# ----------------------------------------------------------------------------- token layers
def patch_embed_fwd(net, node, xs, ctx):
    y, cache = conv_fwd(net, node, xs, ctx)  # the conv k = s = patch (the layer has its geometry)
    n, d = y.shape[:2]
    return np.ascontiguousarray(y.reshape(n, d, -1).transpose(0, 2, 1)), (cache, y.shape)


def patch_embed_bwd(net, node, dy, cache, ctx):
    c, shape = cache
    return conv_bwd(net, node, np.ascontiguousarray(dy.transpose(0, 2, 1)).reshape(shape), c, ctx)


def tokens_fwd(net, node, xs, ctx):
    x = xs[0]
    return x.reshape(x.shape[0], x.shape[1], -1).transpose(0, 2, 1), x.shape


def tokens_bwd(net, node, dy, shape, ctx):
    return [np.ascontiguousarray(dy.transpose(0, 2, 1)).reshape(shape)], {}


def to_image_fwd(net, node, xs, ctx):
    x = xs[0]
    size = node.layer.size
    y = np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(x.shape[0], x.shape[2], *size)
    return (y if len(size) == 2 else y.reshape(y.shape[0], y.shape[1], 1, size[0])), x.shape


def to_image_bwd(net, node, dy, shape, ctx):
    return [np.ascontiguousarray(dy.reshape(shape[0], shape[2], -1).transpose(0, 2, 1))], {}


def cls_token_fwd(net, node, xs, ctx):
    x = xs[0]
    cls = net.params[node.name]["cls"]
    cls = np.broadcast_to(cls.reshape((1,) * (x.ndim - 2) + cls.shape[1:]), (*x.shape[:-2], *cls.shape[1:]))
    return np.concatenate([cls, x], axis=-2), cls.shape[-2]


def cls_token_bwd(net, node, dy, k, ctx):
    g = dy[..., :k, :]
    return [np.ascontiguousarray(dy[..., k:, :])], (
        {"cls": g.reshape(-1, *g.shape[-2:]).sum(axis=0)[None]} if ctx.params else {})


def pos_embed_fwd(net, node, xs, ctx):
    return xs[0] + net.params[node.name]["pos"][0], None


def pos_embed_bwd(net, node, dy, cache, ctx):
    return [dy], ({"pos": dy.reshape(-1, *dy.shape[-2:]).sum(axis=0)[None]} if ctx.params else {})


def relbias_fwd(net, node, xs, ctx):
    L = node.layer
    key = ("relbias", node.name)
    idx = net._geom.get(key)
    if idx is None:
        idx = net._geom[key] = K_t.relbias_index(L.grid, L.stride, L.args["offsets"])
    return K_t.relbias_fwd(xs[0], net.params[node.name]["table"], idx), idx


def relbias_bwd(net, node, dy, idx, ctx):
    return [dy], ({"table": K_t.relbias_bwd(dy, node.layer.table, idx)} if ctx.params else {})


def _att_plan(net, node):
    plan = net._geom.get(("attention", node.name))
    if plan is None:
        L = node.layer
        plan = net._geom[("attention", node.name)] = K_att.Plan(
            L.h, L.dk, L.dv, L.scale, L.window, L.args["shift"], L.grid, net.dtype,
            bias_window=L.bias_w if L.rel_bias else None, cls_bias=L.rel_bias and L.cls_bias)
    return plan


def attention_fwd(net, node, xs, ctx):
    return K_att.attention_fwd(xs[0], net.params[node.name], _att_plan(net, node))


def attention_bwd(net, node, dy, cache, ctx):
    dx, g = K_att.attention_bwd(dy, cache, net.params[node.name], _att_plan(net, node), ctx.need_dx[0])
    return [dx], (g if ctx.params else {})


def mlp_fwd(net, node, xs, ctx):
    x, p, act = xs[0], net.params[node.name], node.layer.args["act"]
    h, c1 = K_dense.dense_forward(x.reshape(-1, x.shape[-1]), p["fc1_weight"], p.get("fc1_bias"))
    a, ca = K_act.activation_forward(_ACT_NAME.get(act, act), h) if act else (h, None)
    y, c2 = K_dense.dense_forward(a, p["fc2_weight"], p.get("fc2_bias"))
    return y.reshape(*x.shape[:-1], y.shape[-1]), (c1, ca, c2, x.shape)


def mlp_bwd(net, node, dy, cache, ctx):
    c1, ca, c2, shape = cache
    act = node.layer.args["act"]
    da, dw2, db2 = K_dense.dense_backward(dy.reshape(-1, dy.shape[-1]), c2, need_dw=ctx.params)
    dh = K_act.activation_backward(_ACT_NAME.get(act, act), da, ca) if act else da
    dx, dw1, db1 = K_dense.dense_backward(dh, c1, need_dx=ctx.need_dx[0], need_dw=ctx.params)
    g = {}
    if ctx.params:
        g = {"fc1_weight": dw1, "fc2_weight": dw2}
        if db1 is not None:
            g |= {"fc1_bias": db1, "fc2_bias": db2}
    return [None if dx is None else dx.reshape(shape)], g


def patch_merging_fwd(net, node, xs, ctx):
    L, p = node.layer, net.params[node.name]
    m = K_att.merge_fwd(xs[0], (2 * L.grid[0], 2 * L.grid[1]))
    z, cn = K_sn.statnorm_forward(m, (-1, m.shape[-1]), p["norm_gamma"], p["norm_beta"], L.args["eps"])
    y, cd = K_dense.dense_forward(z.reshape(-1, z.shape[-1]), p["weight"])
    return y.reshape(z.shape[0], z.shape[1], -1), (cn, cd, z.shape)


def patch_merging_bwd(net, node, dy, cache, ctx):
    cn, cd, zshape = cache
    L = node.layer
    dz, dw, _ = K_dense.dense_backward(dy.reshape(-1, dy.shape[-1]), cd, need_dw=ctx.params)
    dm, dg, db = K_sn.statnorm_backward(dz.reshape(zshape), cn, (0, 1))
    dx = K_att.merge_bwd(dm, (2 * L.grid[0], 2 * L.grid[1]), L.c)
    g = {"weight": dw, "norm_gamma": dg.reshape(-1), "norm_beta": db.reshape(-1)} if ctx.params else {}
    return [dx], g


def token_mean_fwd(net, node, xs, ctx):
    return xs[0].mean(axis=1), xs[0].shape


def token_mean_bwd(net, node, dy, shape, ctx):
    return [np.broadcast_to(dy[:, None, :] / shape[1], shape).copy()], {}


class LayerOps(NamedTuple):
    """One row of the dispatch table (see the module docstring)."""

    forward: Callable
    backward: Callable
    fresh: bool = False  # the forward always returns a new array: a fused activation may run in place


_ACT_OPS = {k: LayerOps(*_act_fwd(k)) for k in ELEMENTWISE}

OPS: dict[str, LayerOps] = {
    "conv": LayerOps(conv_fwd, conv_bwd, True), "dwconv": LayerOps(conv_fwd, conv_bwd, True),
    "deconv": LayerOps(deconv_fwd, deconv_bwd, True), "local": LayerOps(local_fwd, local_bwd, True),
    "fc": LayerOps(fc_fwd, fc_bwd, True),
    "maxpool": LayerOps(_pool_fwd("max"), pool_bwd, True), "avgpool": LayerOps(_pool_fwd("avg"), pool_bwd, True),
    "global_maxpool": LayerOps(gmax_fwd, pool_bwd, True), "global_avgpool": LayerOps(gavg_fwd, pool_bwd, True),
    **_ACT_OPS,
    "maxout": LayerOps(maxout_fwd, maxout_bwd), "_meanout": LayerOps(meanout_fwd, meanout_bwd),
    "dropout": LayerOps(dropout_fwd, dropout_bwd), "batchnorm": LayerOps(bn_fwd, bn_bwd, True),
    "lrn": LayerOps(lrn_fwd, lrn_bwd),
    "flatten": LayerOps(flatten_fwd, flatten_bwd), "concat": LayerOps(concat_fwd, concat_bwd, True),
    "add": LayerOps(add_fwd, add_bwd, True), "identity": LayerOps(identity_fwd, identity_bwd),
    "pad_channels": LayerOps(pad_channels_fwd, pad_channels_bwd, True),
    "channel_shuffle": LayerOps(shuffle_fwd, shuffle_bwd),
    "split": LayerOps(split_fwd, split_bwd),
    # issue 10
    **{k: _act2(k) for k in ACTIVATIONS2},
    "prelu": LayerOps(prelu_fwd, prelu_bwd, True),
    "mul": LayerOps(mul_fwd, mul_bwd, True), "_mul_linear": LayerOps(mul_linear_fwd, mul_linear_bwd),
    "scale": LayerOps(scale_fwd, scale_bwd, True),
    "layernorm": LayerOps(statnorm_fwd, statnorm_bwd, True),
    "groupnorm": LayerOps(statnorm_fwd, statnorm_bwd, True),
    "instancenorm": LayerOps(statnorm_fwd, statnorm_bwd, True),
    "upsample": LayerOps(upsample_fwd, axis_linear_bwd, True),
    "adaptive_avgpool": LayerOps(adaptive_avg_fwd, axis_linear_bwd, True),
    "adaptive_maxpool": LayerOps(adaptive_max_fwd, adaptive_max_bwd, True),
    "crop": LayerOps(crop_fwd, crop_bwd), "padding": LayerOps(pad_fwd, pad_bwd, True),
    # the low-level tensor vocabulary (layers/tensor.py, kernels/tensor.py)
    **{k: LayerOps(tensor_fwd, tensor_bwd) for k in ("matmul", "binary", "where", "unary", "reduce",
                                                      "logsoftmax", "reshape", "transpose", "slice",
                                                      "gather", "expand", "tile", "stack")},
}


OPS.update({k: LayerOps(tensor_fwd, tensor_bwd) for k in ("_sum_linear", "_reduce_linear", "_softmax_linear")})
# the token layers (layers/attention.py, kernels/attention.py)
OPS.update({"patch_embed": LayerOps(patch_embed_fwd, patch_embed_bwd, True),
            "tokens": LayerOps(tokens_fwd, tokens_bwd), "to_image": LayerOps(to_image_fwd, to_image_bwd, True),
            "cls_token": LayerOps(cls_token_fwd, cls_token_bwd, True),
            "pos_embed": LayerOps(pos_embed_fwd, pos_embed_bwd, True),
            "relbias": LayerOps(relbias_fwd, relbias_bwd, True),
            "attention": LayerOps(attention_fwd, attention_bwd, True), "mlp": LayerOps(mlp_fwd, mlp_bwd, True),
            "patch_merging": LayerOps(patch_merging_fwd, patch_merging_bwd, True),
            "mean": LayerOps(token_mean_fwd, token_mean_bwd, True)})


def _generic_or(row: LayerOps, generic) -> LayerOps:
    """A row whose layer kind reads tensors too (concat with an axis, split along an axis, a
    softmax over an axis, padding of other axes): the tensor kernels when ``generic(layer)``."""
    def fwd(net, node, xs, ctx):
        if generic(node.layer):
            y, cache = tensor_fwd(net, node, xs, ctx)
            return y, ("tensor", cache)
        y, cache = row.forward(net, node, xs, ctx)
        return y, ("row", cache)

    def bwd(net, node, dy, cache, ctx):
        how, c = cache
        return (tensor_bwd if how == "tensor" else row.backward)(net, node, dy, c, ctx)
    return LayerOps(fwd, bwd, row.fresh)


for _k, _generic in (("concat", lambda L: bool(L.ops_)), ("split", lambda L: bool(L.ops_)),
                     ("softmax", lambda L: L.axis is not None), ("padding", lambda L: L.generic)):
    OPS[_k] = _generic_or(OPS[_k], _generic)
OPS["_pad_linear"] = OPS["padding"]  # (an image's padding linearises itself: pad_fwd)
