"""Spec → ONNX: one exporter per spec layer type (the ``EXPORTERS`` table).

The model keeps the spec's names: a layer's output tensor and its main node are named as
the layer; a fused activation is a second node named ``<layer>/<activation>``; helper
nodes (the Flatten in front of an fc that reads a 1x1xC map, the strided Slice of a
pad_channels) are named ``<layer>/<what>``. Initializers are ``<layer>/<tensor>`` with the
tensor names of cnncalc's checkpoints (``weight``, ``bias``, ``gamma``, ``beta``,
``running_mean``, ``running_var``). Layout NCHW (NCL for 1-D specs, NF for flat ones), the
batch axis symbolic (``N``). Opset :data:`OPSET`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnncalc.graph import INPUT, Graph
from cnncalc.interop import InteropError, require
from cnncalc.interop.attention_export import ONNX_ROWS
from cnncalc.interop.tensor_export import onnx_rows
from cnncalc.shapes import Tensor, spatial

OPSET = 17
PRODUCER = "cnncalc"

# spec layer types the exporter cannot write, and why (also the round-trip exclusions)
UNSUPPORTED = {
    "local": "ONNX has no locally-connected (untied-weight) convolution",
    "maxout": "no single ONNX op; a Reshape+ReduceMax would not import back as maxout",
    "opaque": "an opaque layer has no known computation",
}

# decomposed activations (opset 17 has no Gelu/Mish/Swish op): the same node patterns
# torch.onnx.export writes, which the importer recognises by evaluating them
SQRT2 = 1.4142135381698608
SQRT_2_OVER_PI = 0.7978845608028654


def onnx_dims(shape) -> list:
    """A spec shape (HxWxC, LxC, [F]) → ONNX dims with a symbolic batch: [N, C, H, W]; a token
    sequence or a tensor: [N, *its dims] (PyTorch's order)."""
    if shape.__class__ is Tensor or len(shape) == 1:
        return ["N", *shape]
    return ["N", shape[-1], *shape[:-1]]


def unsupported_layers(graph: Graph) -> list[tuple[str, str]]:
    """(layer name, reason) for every layer the exporter cannot write."""
    graph.infer()
    out = []
    for n in graph.layers:
        lay = n.layer
        if lay.kind in UNSUPPORTED:
            out.append((n.name, UNSUPPORTED[lay.kind]))
        elif lay.kind in ("conv", "dwconv") and lay.connections is not None:
            out.append((n.name, "a connection table (LeNet's C3) is not a grouped convolution"))
        elif lay.kind in ("conv", "dwconv") and lay.args["bias"] == "untied":
            out.append((n.name, "an untied (per-position) bias has no ONNX Conv equivalent"))
        elif lay.kind == "avgpool" and not lay.args["count_include_pad"] and _asym(lay):
            out.append((n.name, "asymmetric padding with count_include_pad: false"))
        elif lay.kind in ("adaptive_avgpool", "adaptive_maxpool") and _adaptive_kernel(lay) is None:
            out.append((n.name, "adaptive pooling whose output size does not divide the input "
                                "(ONNX pools have one window size; PyTorch's exporter refuses it too)"))
        elif lay.kind == "mul" and len(lay.in_shapes) != 2:
            out.append((n.name, "a mul of more than two branches"))
    return out


def _adaptive_kernel(layer):
    """The one window (kernel = stride) of an adaptive pool whose output size divides its
    input, or None."""
    sp, out = spatial(layer.in_shapes[0]), spatial(layer.out_shape)
    if any(i % o for i, o in zip(sp, out)):
        return None
    return [i // o for i, o in zip(sp, out)]


def _asym(layer) -> bool:
    return any(w.pad_lo != w.pad_hi for w in layer.windows)


class _Builder:
    def __init__(self, graph: Graph, params, state):
        self.onnx = require("onnx")
        self.h = self.onnx.helper
        self.graph = graph
        self.params = params
        self.state = state
        self.nodes: list = []
        self.inits: list = []
        self._names: set[str] = set()
        self._params_written: set[str] = set()

    def init(self, name: str, array) -> str:
        """An initializer named ``name``: the array is kept by reference and written into the
        finished model by :meth:`write_inits` (protobuf copies a message that is appended to a
        repeated field, and ``make_model`` copies the graph: built first, 2.15 GB of weights
        peaked at 8.5 GB, four copies; written in place, the weights' bytes exist once)."""
        self.inits.append((name, array))
        return name

    def write_inits(self, graph_proto, external: "ExternalData | None" = None) -> None:
        """Each initializer, made in place in ``graph_proto.initializer`` (raw little-endian
        bytes), the builder's reference dropped as it goes. ``external``: tensors of at least
        :data:`EXTERNAL_MIN_TENSOR` bytes go straight to its file instead (the model refers to
        them; their bytes never enter the model)."""
        FLOAT, INT64 = self.onnx.TensorProto.FLOAT, self.onnx.TensorProto.INT64
        inits, self.inits = self.inits, []
        for i, (name, array) in enumerate(inits):
            a = np.asarray(array)
            a = np.asarray(a, np.float32 if a.dtype.kind == "f" else np.int64)
            t = graph_proto.initializer.add()
            t.name = name
            t.dims.extend(a.shape)
            t.data_type = FLOAT if a.dtype == np.float32 else INT64
            a = np.ascontiguousarray(a).astype("<" + a.dtype.str[1:], copy=False)
            if external is not None and a.nbytes >= EXTERNAL_MIN_TENSOR:
                external.put(t, a)
            else:
                t.raw_data = a.tobytes()
            inits[i] = a = None

    def param(self, layer: str, pname: str) -> str:
        layer = self.graph[layer].layer.args.get("shares") or layer  # (a shared layer: its owner's tensor)
        name = f"{layer}/{pname}"
        if name not in self._params_written:
            self._params_written.add(name)
            self.init(name, self.params[layer][pname])
        return name

    def st(self, layer: str, sname: str) -> str:
        return self.init(f"{layer}/{sname}", self.state[layer][sname])

    def ints(self, name: str, values) -> str:
        return self.init(name, np.asarray(values, dtype=np.int64))

    def node(self, op: str, inputs, output: str, name: str, **attrs):
        self.nodes.append(self.h.make_node(op, list(inputs), [output], name=name, **attrs))
        return output


def window_attrs(layer, *, pool: bool) -> dict:
    """kernel_shape, strides, pads (with the extra high pad a ceil/floor output implies),
    dilations — read off the inferred layer so the ONNX output size equals the spec's."""
    in_sp, out_sp = spatial(layer.in_shapes[0]), spatial(layer.out_shape)
    lo, hi, ceil = [], [], False
    for n, w, o in zip(in_sp, layer.windows, out_sp):
        span = n + w.pad_lo + w.pad_hi - w.extent
        floor_o = span // w.stride + 1
        extra = 0
        if o > floor_o:
            if pool:
                ceil = True
            else:
                extra = (o - 1) * w.stride + w.extent - (n + w.pad_lo + w.pad_hi)
        lo.append(w.pad_lo)
        hi.append(w.pad_hi + extra)
    attrs = {"kernel_shape": list(layer.kernel), "strides": list(layer.stride), "pads": lo + hi}
    if any(d != 1 for d in layer.dilation):
        attrs["dilations"] = list(layer.dilation)
    if ceil:
        attrs["ceil_mode"] = 1
    return attrs


# ----------------------------------------------------------------------------- the table
def _const(b: _Builder, name: str, array) -> str:
    """A Constant node (a value the importer must not count as learned, as an initializer of
    more than one value would be)."""
    a = np.asarray(array, np.float32)
    b.nodes.append(b.h.make_node("Constant", [], [name], name=name,
                                 value=b.onnx.numpy_helper.from_array(a, name)))
    return name


def _standardized_weight(b: _Builder, node) -> str:
    """timm's ``F.batch_norm(w.reshape(1, F, -1), None, None, weight=gain * scale, training=True,
    eps=eps).reshape_as(w)`` as torch.onnx.export writes it (what the importer reads back): a
    BatchNormalization in training mode (three outputs; its mean and variance inputs only feed
    the running statistics' update), its scale the gain times the scale."""
    lay, n = node.layer, node.name
    st, shape = lay.standardize, b.params[lay.args.get("shares") or n]["weight"].shape  # (a sharer: its owner's)
    f = shape[0]
    w3 = b.node("Reshape", [b.param(n, "weight"), b.ints(f"{n}/std_shape3", [1, f, -1])], f"{n}/std_w3", f"{n}/std_reshape")
    if st["gain"] and st["scale"] == 1.0:
        s = b.param(n, "gain")
    elif st["gain"]:
        s = b.node("Mul", [b.param(n, "gain"), _const(b, f"{n}/std_scale", st["scale"])], f"{n}/std_gs", f"{n}/std_mul")
    else:
        s = _const(b, f"{n}/std_scale", np.full(f, st["scale"]))
    zero, one = _const(b, f"{n}/std_zero", np.zeros(f)), _const(b, f"{n}/std_one", np.ones(f))
    b.nodes.append(b.h.make_node("BatchNormalization", [w3, s, zero, zero, one],
                                 [f"{n}/std_wn", f"{n}/std_rm", f"{n}/std_rv"], name=f"{n}/std_bn",
                                 epsilon=float(st["eps"]), momentum=1.0, training_mode=1))
    return b.node("Reshape", [f"{n}/std_wn", b.ints(f"{n}/std_shape", list(shape))], f"{n}/std_w", f"{n}/std_back")


def _conv(b: _Builder, node, xs, out):
    lay = node.layer
    ins = [xs[0], _standardized_weight(b, node) if lay.standardize else b.param(node.name, "weight")]
    if lay.args["bias"]:
        ins.append(b.param(node.name, "bias"))
    attrs = window_attrs(lay, pool=False)
    if lay.groups != 1:
        attrs["group"] = lay.groups
    return b.node("Conv", ins, out, node.name, **attrs)


def _deconv(b: _Builder, node, xs, out):
    lay = node.layer
    ins = [xs[0], b.param(node.name, "weight")]
    if lay.args["bias"]:
        ins.append(b.param(node.name, "bias"))
    attrs = {"kernel_shape": list(lay.kernel), "strides": list(lay.stride),
             "pads": [w.pad_lo for w in lay.windows] + [w.pad_hi for w in lay.windows]}
    if any(d != 1 for d in lay.dilation):
        attrs["dilations"] = list(lay.dilation)
    if any(lay.output_padding):
        attrs["output_padding"] = list(lay.output_padding)
    if lay.groups != 1:
        attrs["group"] = lay.groups
    return b.node("ConvTranspose", ins, out, node.name, **attrs)


def _fc(b: _Builder, node, xs, out):
    lay = node.layer
    x = xs[0]
    if lay.in_shapes[0].__class__ is not tuple:  # tokens: the Linear on the last axis
        # (the MatMul named as the layer: the importer's token_fc names the fc it lifts after it)
        w = b.init(f"{node.name}/weight_t", np.asarray(b.params[node.name]["weight"]).T)
        if not lay.args["bias"]:
            return b.node("MatMul", [x, w], out, node.name)
        y = b.node("MatMul", [x, w], f"{node.name}/mm", node.name)
        return b.node("Add", [y, b.param(node.name, "bias")], out, f"{node.name}/bias")
    if len(lay.in_shapes[0]) > 1:  # 1x1xC → [C]
        x = b.node("Flatten", [x], f"{node.name}/flat", f"{node.name}/flatten", axis=1)
    ins = [x, b.param(node.name, "weight")]
    if lay.args["bias"]:
        ins.append(b.param(node.name, "bias"))
    return b.node("Gemm", ins, out, node.name, transB=1)


def _pool(op):
    def f(b: _Builder, node, xs, out):
        lay = node.layer
        attrs = window_attrs(lay, pool=True)
        if op == "AveragePool":
            attrs["count_include_pad"] = int(lay.args["count_include_pad"])
        return b.node(op, xs, out, node.name, **attrs)
    return f


def _simple(op, **fixed):
    def f(b: _Builder, node, xs, out):
        return b.node(op, xs, out, node.name, **fixed)
    return f


def _relu6(b, node, xs, out, name=None):
    lo = b.init(f"{name or node.name}/min", np.array(0.0, np.float32))
    hi = b.init(f"{name or node.name}/max", np.array(6.0, np.float32))
    return b.node("Clip", [xs[0], lo, hi], out, name or node.name)


def _leaky(b, node, xs, out):
    return b.node("LeakyRelu", xs, out, node.name, alpha=float(node.layer.args["alpha"]))


def _dropout(b, node, xs, out):
    ratio = b.init(f"{node.name}/ratio", np.array(node.layer.args["p"], np.float32))
    return b.node("Dropout", [xs[0], ratio], out, node.name)


def _bn(b, node, xs, out):
    a = node.layer.args
    ins = [xs[0], b.param(node.name, "gamma"), b.param(node.name, "beta"),
           b.st(node.name, "running_mean"), b.st(node.name, "running_var")]
    # ONNX momentum weighs the running value (PyTorch's weighs the new batch)
    return b.node("BatchNormalization", ins, out, node.name, epsilon=float(a["eps"]),
                  momentum=float(round(1.0 - a["momentum"], 12)))


def _lrn(b, node, xs, out):
    a = node.layer.args
    return b.node("LRN", xs, out, node.name, size=a["size"], alpha=float(a["alpha"]),
                  beta=float(a["beta"]), bias=float(a["k"]))


def _add(b, node, xs, out):
    return b.node("Add" if len(xs) == 2 else "Sum", xs, out, node.name)


def _split(b, node, xs, out):
    a = node.layer.args
    c = node.layer.in_shapes[0][-1]
    w = c // a["parts"]
    starts = b.ints(f"{node.name}/starts", [a["part"] * w])
    ends = b.ints(f"{node.name}/ends", [(a["part"] + 1) * w])
    axes = b.ints(f"{node.name}/axes", [1])
    return b.node("Slice", [xs[0], starts, ends, axes], out, node.name)


def _shuffle(b, node, xs, out):
    shape = node.layer.in_shapes[0]
    g, c, sp = node.layer.args["groups"], shape[-1], list(shape[:-1])
    s1 = b.ints(f"{node.name}/shape1", [0, g, c // g, *sp])
    s2 = b.ints(f"{node.name}/shape2", [0, c, *sp])
    t = b.node("Reshape", [xs[0], s1], f"{node.name}/grouped", f"{node.name}/reshape1")
    t = b.node("Transpose", [t], f"{node.name}/transposed", f"{node.name}/transpose",
               perm=[0, 2, 1, *range(3, 3 + len(sp))])
    return b.node("Reshape", [t, s2], out, node.name)


def _pad_channels(b, node, xs, out):
    lay = node.layer
    x = xs[0]
    nsp = len(lay.strides)
    if any(s > 1 for s in lay.strides):
        starts = b.ints(f"{node.name}/starts", [0] * nsp)
        ends = b.ints(f"{node.name}/ends", [np.iinfo(np.int64).max] * nsp)
        axes = b.ints(f"{node.name}/axes", list(range(2, 2 + nsp)))
        steps = b.ints(f"{node.name}/steps", list(lay.strides))
        x = b.node("Slice", [x, starts, ends, axes, steps], f"{node.name}/sub", f"{node.name}/subsample")
    lo = lay.added // 2 if lay.args["place"] == "both" else 0
    hi = lay.added - lo
    pads = b.ints(f"{node.name}/pads", [0, lo] + [0] * nsp + [0, hi] + [0] * nsp)
    return b.node("Pad", [x, pads], out, node.name, mode="constant")



def act_nodes(b: _Builder, kind: str, args: dict, x: str, out: str, name: str):
    """The node(s) of an activation ``kind`` from ``x`` to ``out``; the last node is named
    ``name``, helper nodes ``name/<what>`` (shared by layers and fused ``activation:``)."""
    c = lambda what, v: b.init(f"{name}/{what}", np.array(v, np.float32))  # noqa: E731
    t = lambda what: f"{name}/{what}"  # noqa: E731
    if kind == "relu6":
        return b.node("Clip", [x, c("min", 0.0), c("max", 6.0)], out, name)
    if kind in SIMPLE_ACTS:
        op, attrs = SIMPLE_ACTS[kind]
        return b.node(op, [x], out, name, **attrs)
    if kind == "leakyrelu":
        return b.node("LeakyRelu", [x], out, name, alpha=float(args.get("alpha", 0.01)))
    if kind == "elu":
        return b.node("Elu", [x], out, name, alpha=float(args.get("alpha", 1.0)))
    if kind == "hardsigmoid":  # relu6(x + 3)/6 = clip(x/6 + 1/2, 0, 1); ONNX's default alpha is 0.2
        return b.node("HardSigmoid", [x], out, name, alpha=1.0 / 6.0, beta=0.5)
    if kind == "silu":  # x·sigmoid(x)
        s = b.node("Sigmoid", [x], t("sigmoid"), t("sigmoid"))
        return b.node("Mul", [x, s], out, name)
    if kind == "mish":  # x·tanh(softplus(x))
        s = b.node("Softplus", [x], t("softplus"), t("softplus"))
        s = b.node("Tanh", [s], t("tanh"), t("tanh"))
        return b.node("Mul", [x, s], out, name)
    if kind == "softplus":
        beta = float(args.get("beta", 1.0))
        if beta == 1.0:
            return b.node("Softplus", [x], out, name)
        s = b.node("Mul", [x, c("beta", beta)], t("scaled"), t("scale"))
        s = b.node("Softplus", [s], t("softplus"), t("softplus"))
        return b.node("Div", [s, c("beta_", beta)], out, name)
    if kind == "gelu" and args.get("approximate", "none") == "tanh":
        # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        x3 = b.node("Mul", [b.node("Mul", [x, x], t("x2"), t("x2")), x], t("x3"), t("x3"))
        s = b.node("Mul", [x3, c("k", 0.044715)], t("kx3"), t("kx3"))
        s = b.node("Add", [x, s], t("inner"), t("inner"))
        s = b.node("Mul", [s, c("sqrt_2_over_pi", SQRT_2_OVER_PI)], t("arg"), t("arg"))
        s = b.node("Tanh", [s], t("tanh"), t("tanh"))
        s = b.node("Add", [s, c("one", 1.0)], t("one_plus"), t("one_plus"))
        s = b.node("Mul", [x, s], t("x_times"), t("x_times"))
        return b.node("Mul", [s, c("half", 0.5)], out, name)
    if kind == "gelu":  # x·½(1 + erf(x/√2)), torch.onnx.export's pattern
        s = b.node("Div", [x, c("sqrt2", SQRT2)], t("scaled"), t("scale"))
        s = b.node("Erf", [s], t("erf"), t("erf"))
        s = b.node("Add", [s, c("one", 1.0)], t("one_plus"), t("one_plus"))
        s = b.node("Mul", [x, s], t("x_times"), t("x_times"))
        return b.node("Mul", [s, c("half", 0.5)], out, name)
    raise InteropError(f"{name}: no ONNX form for the activation {kind!r}")


SIMPLE_ACTS = {"relu": ("Relu", {}), "tanh": ("Tanh", {}), "sigmoid": ("Sigmoid", {}),
               "softmax": ("Softmax", {"axis": 1}), "hardswish": ("HardSwish", {}), "selu": ("Selu", {})}


def _act_layer(b, node, xs, out):
    return act_nodes(b, node.layer.kind, node.layer.args, xs[0], out, node.name)


def _per_channel(b, node, pname, nsp):
    """A per-channel parameter (C,) as a (C, 1, …) initializer that broadcasts over NCHW."""
    a = np.asarray(b.params[node.name][pname])
    return b.init(f"{node.name}/{pname}", a.reshape(a.shape[0], *([1] * nsp)))


def _prelu(b, node, xs, out):
    nsp = len(spatial(node.layer.out_shape))
    return b.node("PRelu", [xs[0], _per_channel(b, node, "weight", nsp)], out, node.name)


def _scale(b, node, xs, out):
    nsp = len(spatial(node.layer.out_shape))
    return b.node("Mul", [xs[0], _per_channel(b, node, "gamma", nsp)], out, node.name)


def _mul(b, node, xs, out):
    lay = node.layer
    ins = list(xs)
    rank = max(len(s) for s in lay.in_shapes)
    for i, s in enumerate(lay.in_shapes):
        if len(s) < rank:  # a flat [C] gate → (N, C, 1, 1)
            shp = b.ints(f"{node.name}/gate_shape{i}", [0, s[-1], *([1] * (rank - 1))])
            ins[i] = b.node("Reshape", [ins[i], shp], f"{node.name}/gate{i}", f"{node.name}/gate{i}")
    return b.node("Mul", ins, out, node.name)


def _affine(b, node, shape_c, nsp, names=("gamma", "beta")):
    """γ, β initializers (or, for ``affine: false``, the ones/zeros ONNX requires, named
    ``unit_scale``/``zero_bias`` so the importer reads them back as no parameters)."""
    if node.layer.args["affine"]:
        g, bb = (np.asarray(b.params[node.name][n]) for n in names)
        return (b.init(f"{node.name}/gamma", g.reshape(*shape_c)), b.init(f"{node.name}/beta", bb.reshape(*shape_c)))
    return (b.init(f"{node.name}/unit_scale", np.ones(shape_c, np.float32)),
            b.init(f"{node.name}/zero_bias", np.zeros(shape_c, np.float32)))


def _layernorm(b, node, xs, out):
    lay = node.layer
    eps = float(lay.args["eps"])
    shape = lay.out_shape
    nsp = len(spatial(shape))
    if lay.args["over"] == "all" or nsp == 0:
        aff = _affine(b, node, lay._affine_shape() if lay.args["over"] == "all" else (shape[-1],), 0)
        return b.node("LayerNormalization", [xs[0], *aff], out, node.name, axis=1, epsilon=eps)
    # over the channels at each position: channels-last, normalise the last axis, back
    aff = _affine(b, node, (shape[-1],), 0)
    t = b.node("Transpose", [xs[0]], f"{node.name}/channels_last", f"{node.name}/to_channels_last",
               perm=[0, *range(2, 2 + nsp), 1])
    t = b.node("LayerNormalization", [t, *aff], f"{node.name}/normed", f"{node.name}/layernorm",
               axis=-1, epsilon=eps)
    return b.node("Transpose", [t], out, node.name, perm=[0, 1 + nsp, *range(1, 1 + nsp)])


def _instancenorm(b, node, xs, out):
    aff = _affine(b, node, (node.layer.out_shape[-1],), 0)
    return b.node("InstanceNormalization", [xs[0], *aff], out, node.name, epsilon=float(node.layer.args["eps"]))


def _groupnorm(b, node, xs, out):
    """torch.onnx.export's opset-17 pattern: Reshape (N, G, -1) → InstanceNormalization with
    unit γ → Reshape back → Mul γ → Add β (GroupNormalization-18 has per-group γ, β)."""
    lay = node.layer
    g = lay.args["groups"]
    shape = lay.out_shape
    nsp = len(spatial(shape))
    t = b.node("Reshape", [xs[0], b.ints(f"{node.name}/grouped_shape", [0, g, -1])],
               f"{node.name}/grouped", f"{node.name}/group")
    t = b.node("InstanceNormalization", [t, b.init(f"{node.name}/unit_scale", np.ones(g, np.float32)),
                                         b.init(f"{node.name}/zero_bias", np.zeros(g, np.float32))],
               f"{node.name}/normed", f"{node.name}/norm", epsilon=float(lay.args["eps"]))
    back = b.ints(f"{node.name}/shape", [0, shape[-1], *spatial(shape)])
    if not lay.args["affine"]:
        return b.node("Reshape", [t, back], out, node.name)
    t = b.node("Reshape", [t, back], f"{node.name}/ungrouped", f"{node.name}/ungroup")
    t = b.node("Mul", [t, _per_channel(b, node, "gamma", nsp)], f"{node.name}/scaled", f"{node.name}/scale")
    return b.node("Add", [t, _per_channel(b, node, "beta", nsp)], out, node.name)


def _upsample(b, node, xs, out):
    lay = node.layer
    a = lay.args
    sizes = [int(v) for v in spatial(lay.out_shape)]
    roi = ""
    if a["mode"] == "nearest":  # PyTorch's nearest: o reads floor(o·In/Out)
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear",
                 "coordinate_transformation_mode": "align_corners" if a["align_corners"] else "half_pixel"}
    ratios = [o / i for o, i in zip(sizes, spatial(lay.in_shapes[0]))]
    if all(r == int(r) for r in ratios):  # integer factors: scales, any batch
        ins = [xs[0], roi, b.init(f"{node.name}/scales", np.array([1, 1, *ratios], np.float32))]
    else:  # sizes (N, C) + the spec's, as torch.onnx.export writes it: Shape → Slice → Concat
        nc = b.node("Shape", [xs[0]], f"{node.name}/input_shape", f"{node.name}/shape", start=0, end=2)
        sz = b.node("Concat", [nc, b.ints(f"{node.name}/spatial_sizes", sizes)], f"{node.name}/sizes",
                    f"{node.name}/sizes", axis=0)
        ins = [xs[0], roi, "", sz]
    return b.node("Resize", ins, out, node.name, **attrs)


def _slice_spatial(b, node, x, out, lohi):
    sp = spatial(node.layer.in_shapes[0])
    starts = b.ints(f"{node.name}/starts", [lo for lo, _ in lohi])
    ends = b.ints(f"{node.name}/ends", [n - hi for n, (_, hi) in zip(sp, lohi)])
    axes = b.ints(f"{node.name}/axes", list(range(2, 2 + len(sp))))
    return b.node("Slice", [x, starts, ends, axes], out, node.name)


def _crop(b, node, xs, out):
    return _slice_spatial(b, node, xs[0], out, node.layer.crops)


def _padding(b, node, xs, out):
    lay = node.layer
    pads = lay.pads
    mode = {"zero": "constant", "reflect": "reflect", "replicate": "edge"}[lay.args["mode"]]
    p = b.ints(f"{node.name}/pads", [0, 0, *(lo for lo, _ in pads), 0, 0, *(hi for _, hi in pads)])
    return b.node("Pad", [xs[0], p], out, node.name, mode=mode)


def _adaptive(op):
    """An output size that divides the input: one window, kernel = stride = In/Out (also for
    size 1, where a Global*Pool would import as global pooling, whose receptive field the
    report treats as the whole image)."""
    def f(b, node, xs, out):
        k = _adaptive_kernel(node.layer)
        return b.node(op, xs, out, node.name, kernel_shape=k, strides=k)
    return f


EXPORTERS: dict[str, Callable] = {
    "conv": _conv, "dwconv": _conv, "deconv": _deconv, "fc": _fc,
    "flatten": _simple("Flatten", axis=1),
    "maxpool": _pool("MaxPool"), "avgpool": _pool("AveragePool"),
    "global_maxpool": _simple("GlobalMaxPool"), "global_avgpool": _simple("GlobalAveragePool"),
    "relu": _simple("Relu"), "relu6": _relu6, "leakyrelu": _leaky, "tanh": _simple("Tanh"),
    "sigmoid": _simple("Sigmoid"), "softmax": _simple("Softmax", axis=1),
    "dropout": _dropout, "batchnorm": _bn, "lrn": _lrn,
    "concat": _simple("Concat", axis=1), "add": _add, "identity": _simple("Identity"),
    "split": _split, "channel_shuffle": _shuffle, "pad_channels": _pad_channels,
    **{k: _act_layer for k in ("silu", "hardswish", "hardsigmoid", "gelu", "mish", "elu", "selu", "softplus")},
    "prelu": _prelu, "mul": _mul, "scale": _scale,
    "layernorm": _layernorm, "groupnorm": _groupnorm, "instancenorm": _instancenorm,
    "upsample": _upsample, "crop": _crop, "padding": _padding,
    "adaptive_avgpool": _adaptive("AveragePool"), "adaptive_maxpool": _adaptive("MaxPool"),
}
EXPORTERS.update(onnx_rows(EXPORTERS))  # the tensor vocabulary (interop/tensor_export.py)
EXPORTERS.update(ONNX_ROWS)  # the token layers (interop/attention_export.py)



def random_weights(graph: Graph, seed: int | None = 0):
    """He-normal weights, small biases, BN at identity: what an export without --weights holds.
    ``seed=None``: all zeros (fast; for comparing structure only)."""
    rng = np.random.default_rng(seed or 0)
    if seed is None:
        class _Zeros:
            def standard_normal(self, shape, dtype=np.float32):
                return np.zeros(shape, dtype)
        rng = _Zeros()
    params, state = {}, {}
    for n in graph.layers:
        lay = n.layer
        ps = {}
        for pname, (shape, role) in lay.owned_param_shapes().items():
            if lay.kind == "batchnorm" or pname == "gain":  # (a standardised conv's gain starts at 1)
                ps[pname] = np.full(shape, 0.0 if pname == "beta" else 1.0, np.float32)
            elif role == "bias":
                ps[pname] = (0.01 * rng.standard_normal(shape, dtype=np.float32))
            else:
                fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
                if lay.kind == "deconv":
                    fan_in = shape[0] * int(np.prod(shape[2:]))
                ps[pname] = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / max(fan_in, 1)))
        params[n.name] = ps
        state[n.name] = {s: (np.ones(shape, np.float32) if "var" in s else np.zeros(shape, np.float32))
                         for s, shape in lay.state_shapes().items()}
    return params, state


def export_onnx(graph: Graph, params=None, state=None, *, seed: int | None = 0,
                external: "ExternalData | None" = None):
    """The ONNX ModelProto of an inferred graph; ``params``/``state`` as ``{layer: {tensor: array}}``
    (default: :func:`random_weights`). Raises InteropError for layers ONNX cannot express.
    ``external``: write the large tensors to its file as they are made (:func:`export_onnx_files`)."""
    graph.infer()
    bad = unsupported_layers(graph)
    if bad:
        listing = "; ".join(f"{n}: {why}" for n, why in bad[:8]) + (f"; ... ({len(bad)} in all)" if len(bad) > 8 else "")
        raise InteropError(f"{graph.name}: cannot export {len(bad)} layer(s) to ONNX — {listing}")
    if params is None:
        p0, s0 = random_weights(graph, seed)
        params = params or p0
        state = state or s0
    b = _Builder(graph, params, state or {})
    onnx, h = b.onnx, b.h
    for node in graph.layers:
        lay = node.layer
        fn = EXPORTERS.get(lay.kind)
        if fn is None:
            raise InteropError(f"{node.name}: no ONNX exporter for layer type {lay.kind!r}")
        act = lay.activation
        out = f"{node.name}/pre" if act else node.name
        fn(b, node, list(node.inputs), out)
        if act:
            act_nodes(b, act, {}, out, node.name, f"{node.name}/{act}")
    f32 = onnx.TensorProto.FLOAT
    inputs = [h.make_tensor_value_info(INPUT, f32, onnx_dims(graph.input_shape))]
    outputs = [h.make_tensor_value_info(o, f32, onnx_dims(graph[o].shape)) for o in graph.outputs]
    g = h.make_graph(b.nodes, graph.name, inputs, outputs)
    doc = f"exported by cnncalc from {graph.file or graph.name}" + (f" ({graph.source})" if graph.source else "")
    model = h.make_model(g, producer_name=PRODUCER, opset_imports=[h.make_opsetid("", OPSET)], doc_string=doc)
    model.ir_version = 8
    b.write_inits(model.graph, external)  # (after make_model, which copies the graph it is given)
    return model


# ----------------------------------------------------------------------------- writing a model
#: weights (bytes of tensor data) above which :func:`save_onnx` keeps them in ONNX external
#: data: protobuf's 2 GiB limit on one message, less room for the graph itself
EXTERNAL_ABOVE = 2 ** 31 - 2 ** 20
#: tensors of at least this many bytes go to the external file (onnx's own default); the rest stay
EXTERNAL_MIN_TENSOR = 1024
_ALIGN = 4096  # each tensor's offset in the data file (onnx allows gaps under 64 KiB; mmap likes pages)


def data_path(path) -> "Path":
    """Where :func:`save_onnx` puts the external data of ``path``: ``<name>.onnx.data`` next to it."""
    from pathlib import Path

    p = Path(path)
    return p.with_name(p.name + ".data")


def tensor_bytes(model) -> int:
    """Bytes of raw tensor data in the model's initializers."""
    return sum(len(t.raw_data) for t in model.graph.initializer)


def save_onnx(model, path, *, overwrite: bool = False, external: bool | None = None):
    """Write ``model`` to ``path`` atomically; returns the external data file or None.

    Over :data:`EXTERNAL_ABOVE` bytes of weights (or with ``external=True``) the initializers
    of at least :data:`EXTERNAL_MIN_TENSOR` bytes are written to :func:`data_path` (onnx's
    external-data convention: location relative to the model, offset, length) and the
    .onnx keeps the graph. Both files are written through :func:`cnncalc.fsutil.atomic_writer`
    (the data first; the .onnx is only written once the data is complete and the checker
    accepts the pair), neither replaced unless ``overwrite`` (FileExistsError). The
    model's large tensors are moved out of it (it then holds the graph only)."""
    from pathlib import Path

    from cnncalc.fsutil import atomic_write_bytes

    onnx = require("onnx")
    path = Path(path)
    if external is None:
        external = tensor_bytes(model) > EXTERNAL_ABOVE
    if not external:
        onnx.checker.check_model(model)
        atomic_write_bytes(path, model.SerializeToString(), overwrite=overwrite)
        return None

    def move(sink):
        for t in model.graph.initializer:
            raw = t.raw_data  # (each read of a bytes field is a copy of it: once)
            if len(raw) >= EXTERNAL_MIN_TENSOR:
                sink.put(t, raw)
                t.ClearField("raw_data")
        return model, None

    return _write_pair(path, overwrite, move)[1]


def export_onnx_files(graph: Graph, path, params=None, state=None, *, overwrite: bool = False,
                      finish=None):
    """:func:`export_onnx` written as :func:`save_onnx` writes a model over 2 GiB — ``path`` and
    its external data file (:func:`data_path`) — with each large tensor written to the data
    file as the model is made: the weights' bytes exist once, in the caller's arrays (the
    model made first and saved after held them a second time). ``finish(model)`` runs on the
    finished model before the check and the .onnx is written (cnncalc's numbers in it); its
    result is returned with the model (graph only) and the data file. Atomic and refusing to
    overwrite as :func:`save_onnx`."""
    def make(sink):
        model = export_onnx(graph, params, state, external=sink)
        return model, (finish(model) if finish is not None else None)

    return _write_pair(path, overwrite, make)


def _write_pair(path, overwrite: bool, make):
    """(model, data file, extra): ``make(sink)`` gives (model, extra), the model's large tensors
    written to ``sink`` (an :class:`ExternalData` on the data file's temporary file); the data
    file first, then — once the checker accepts the pair — the .onnx, both atomic, neither
    replaced unless ``overwrite`` (FileExistsError); a failure leaves neither."""
    from pathlib import Path

    from cnncalc.fsutil import atomic_write_bytes, atomic_writer

    path = Path(path)
    data = data_path(path)
    for p in (path, data):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} already exists; refusing to overwrite it")
    data_existed = data.exists()
    with atomic_writer(data, "wb", overwrite=overwrite) as f:
        sink = ExternalData(f, data.name)
        model, extra = make(sink)
        sink.check(model)
    try:
        atomic_write_bytes(path, model.SerializeToString(), overwrite=overwrite)
    except BaseException:
        if not data_existed:
            data.unlink(missing_ok=True)
        raise
    return model, data, extra


class ExternalData:
    """Tensors written to an ONNX external-data file as they come: each at an offset aligned to
    :data:`_ALIGN`, the TensorProto given onnx's external-data fields (location relative to the
    model, offset, length) and no bytes of its own."""

    def __init__(self, f, location: str):
        self.f = f
        self.location = location
        self.moved: list = []

    def put(self, t, data) -> None:
        """``data``: bytes or a contiguous little-endian array (written without a copy)."""
        onnx = require("onnx")
        pad = -self.f.tell() % _ALIGN
        if pad:
            self.f.write(b"\0" * pad)
        offset = self.f.tell()
        view = memoryview(data).cast("B")
        self.f.write(view)
        # (what onnx.external_data_helper.set_external_data writes; it insists on raw_data,
        # which a tensor written here never has)
        del t.external_data[:]
        for key, value in (("location", self.location), ("offset", offset), ("length", len(view))):
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)
        t.data_location = onnx.TensorProto.EXTERNAL
        self.moved.append(t)

    def check(self, model) -> None:
        """The checker on ``model`` (whose large tensors this file holds) and this temporary,
        flushed file: it reads the pair from disk, the .onnx beside the data's temporary file."""
        from pathlib import Path

        self.f.flush()
        _check_with_data(require("onnx"), model, self.moved, Path(self.f.name), self.location)


def _check_with_data(onnx, model, moved, tmp_data, final_name):
    import os
    import tempfile

    def relocate(name):
        for t in moved:
            for e in t.external_data:
                if e.key == "location":
                    e.value = name

    relocate(tmp_data.name)
    fd, probe = tempfile.mkstemp(prefix=f".{final_name}.", suffix=".check.onnx", dir=tmp_data.parent)
    try:
        with os.fdopen(fd, "wb") as g:
            g.write(model.SerializeToString())
        onnx.checker.check_model(probe)
    finally:
        os.unlink(probe)
        relocate(final_name)
