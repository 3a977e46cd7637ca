"""Spec → a standalone PyTorch module (Python source), one generator per spec layer type
(the ``MODULES`` table).

The generated file imports only torch. Every spec layer that is a torch module becomes an
attribute named as the layer (module instances ``a/b`` become nested containers ``self.a.b``;
a name that is not a Python identifier is reached with ``getattr``); parameter-free plumbing
(concat, add, split, pad_channels, flatten) is written inline in ``forward``, commented with
the layer's name. The state_dict keys are the checkpoint's keys with ``/`` → ``.`` and, for
batch norm, ``gamma`` → ``weight``, ``beta`` → ``bias`` (plus PyTorch's
``num_batches_tracked``): :func:`state_dict_key`.
"""
from __future__ import annotations

import keyword
import re

from cnncalc.graph import INPUT, Graph
from cnncalc.interop import InteropError
from cnncalc.interop.onnx_export import unsupported_layers, window_attrs
from cnncalc.shapes import spatial

_BN_KEYS = {"gamma": "weight", "beta": "bias"}


def state_dict_key(layer: str, tensor: str, kind: str) -> str:
    """The PyTorch state_dict key of a cnncalc tensor ``layer/tensor``."""
    if kind == "batchnorm":
        tensor = _BN_KEYS.get(tensor, tensor)
    return ".".join(_attr_path(layer)) + "." + tensor


def _attr_path(layer: str) -> list[str]:
    return [p.replace(".", "_") for p in layer.split("/")]


def _ident(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _ref(path: list[str]) -> str:
    out = "self"
    for p in path:
        out = f"{out}.{p}" if _ident(p) else f"getattr({out}, {p!r})"
    return out


def _t(v):
    return tuple(int(x) for x in v)


def _one(v):
    v = _t(v)
    return v[0] if len(set(v)) == 1 else v


class _Gen:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.init: list[str] = []
        self.fwd: list[str] = []
        self.vars: dict[str, str] = {INPUT: "x"}
        self.containers: set[tuple] = set()
        self.used = {"x", "self", "torch", "nn", "F"}

    def var(self, name: str) -> str:
        v = re.sub(r"\W", "_", name.replace("/", "__"))
        if not v or v[0].isdigit() or keyword.iskeyword(v):
            v = "v_" + v
        base, k = v, 1
        while v in self.used:
            k += 1
            v = f"{base}_{k}"
        self.used.add(v)
        return v

    def module(self, node, code: str) -> str:
        path = _attr_path(node.name)
        for i in range(1, len(path)):
            if tuple(path[:i]) not in self.containers:
                self.containers.add(tuple(path[:i]))
                self._assign(path[:i], "nn.Module()")
        self._assign(path, code)
        return _ref(path)

    def _assign(self, path, code):
        parent, last = _ref(path[:-1]), path[-1]
        if _ident(last):
            self.init.append(f"{parent}.{last} = {code}")
        else:
            self.init.append(f"{parent}.add_module({last!r}, {code})")


def _nd(shape) -> int:
    return len(spatial(shape))


def _pads(layer, *, pool):
    a = window_attrs(layer, pool=pool)
    nd = len(layer.kernel)
    lo, hi = a["pads"][:nd], a["pads"][nd:]
    return a, lo, hi


def _fpad(x, lo, hi, value=None):
    """F.pad's order is the last axis first: (w_lo, w_hi, h_lo, h_hi)."""
    p = []
    for a, b in zip(reversed(lo), reversed(hi)):
        p += [a, b]
    v = f", value={value}" if value is not None else ""
    return f"F.pad({x}, {tuple(p)}{v})"


def _conv(g: _Gen, node, xs):
    lay = node.layer
    nd = _nd(lay.in_shapes[0])
    a, lo, hi = _pads(lay, pool=False)
    x = xs[0]
    if lo != hi:
        x, pad = _fpad(x, lo, hi), 0
    else:
        pad = _one(lo)
    extra = "" if lay.groups == 1 else f", groups={lay.groups}"
    if any(d != 1 for d in lay.dilation):
        extra += f", dilation={_one(lay.dilation)}"
    if not lay.args["bias"]:
        extra += ", bias=False"
    ref = g.module(node, f"nn.Conv{nd}d({lay.in_channels}, {lay.filters}, kernel_size={_one(lay.kernel)}, "
                         f"stride={_one(lay.stride)}, padding={pad}{extra})")
    return f"{ref}({x})"


def _deconv(g, node, xs):
    lay = node.layer
    nd = _nd(lay.in_shapes[0])
    lo, hi = [w.pad_lo for w in lay.windows], [w.pad_hi for w in lay.windows]
    if lo != hi:
        raise InteropError(f"{node.name}: PyTorch's ConvTranspose has no asymmetric padding")
    extra = "" if lay.groups == 1 else f", groups={lay.groups}"
    if any(lay.output_padding):
        extra += f", output_padding={_one(lay.output_padding)}"
    if any(d != 1 for d in lay.dilation):
        extra += f", dilation={_one(lay.dilation)}"
    if not lay.args["bias"]:
        extra += ", bias=False"
    ref = g.module(node, f"nn.ConvTranspose{nd}d({lay.in_channels}, {lay.filters}, kernel_size={_one(lay.kernel)}, "
                         f"stride={_one(lay.stride)}, padding={_one(lo)}{extra})")
    return f"{ref}({xs[0]})"


def _fc(g, node, xs):
    lay = node.layer
    b = "" if lay.args["bias"] else ", bias=False"
    ref = g.module(node, f"nn.Linear({lay.in_features}, {lay.units}{b})")
    x = xs[0] if len(lay.in_shapes[0]) == 1 else f"torch.flatten({xs[0]}, 1)"
    return f"{ref}({x})"


def _pool(kind):
    def f(g: _Gen, node, xs):
        lay = node.layer
        nd = _nd(lay.in_shapes[0])
        a, lo, hi = _pads(lay, pool=True)
        x = xs[0]
        ceil = ", ceil_mode=True" if a.get("ceil_mode") else ""
        inc = lay.args.get("count_include_pad", True)
        if lo != hi or any(p > k // 2 for p, k in zip(hi, lay.kernel)):
            if kind == "Avg" and not inc:
                raise InteropError(f"{node.name}: asymmetric padding with count_include_pad: false")
            x = _fpad(x, lo, hi, "float('-inf')" if kind == "Max" else None)
            pad = 0
        else:
            pad = _one(lo)
        extra = ""
        if kind == "Max" and any(d != 1 for d in lay.dilation):
            extra += f", dilation={_one(lay.dilation)}"
        if kind == "Avg" and not inc:
            extra += ", count_include_pad=False"
        ref = g.module(node, f"nn.{kind}Pool{nd}d(kernel_size={_one(lay.kernel)}, stride={_one(lay.stride)}, "
                             f"padding={pad}{ceil}{extra})")
        return f"{ref}({x})"
    return f


def _gpool(kind):
    def f(g, node, xs):
        nd = _nd(node.layer.in_shapes[0])
        return f"{g.module(node, f'nn.Adaptive{kind}Pool{nd}d(1)')}({xs[0]})"
    return f


def _mod(code):
    def f(g, node, xs):
        c = code(node.layer) if callable(code) else code
        return f"{g.module(node, c)}({xs[0]})"
    return f


def _bn(layer):
    nd = max(_nd(layer.in_shapes[0]), 1)
    a = layer.args
    return f"nn.BatchNorm{nd}d({layer.out_shape[-1]}, eps={a['eps']!r}, momentum={a['momentum']!r})"


def _split(g, node, xs):
    a = node.layer.args
    w = node.layer.in_shapes[0][-1] // a["parts"]
    return f"{xs[0]}[:, {a['part'] * w}:{(a['part'] + 1) * w}]"


def _pad_channels(g, node, xs):
    lay = node.layer
    nsp = len(lay.strides)
    x = xs[0]
    if any(s > 1 for s in lay.strides):
        x = f"{x}[:, :, " + ", ".join(f"::{s}" for s in lay.strides) + "]"
    lo = lay.added // 2 if lay.args["place"] == "both" else 0
    return f"F.pad({x}, {(0, 0) * nsp + (lo, lay.added - lo)})"


MODULES = {
    "conv": _conv, "dwconv": _conv, "deconv": _deconv, "fc": _fc,
    "flatten": lambda g, n, xs: f"torch.flatten({xs[0]}, 1)",
    "maxpool": _pool("Max"), "avgpool": _pool("Avg"),
    "global_maxpool": _gpool("Max"), "global_avgpool": _gpool("Avg"),
    "relu": _mod("nn.ReLU()"), "relu6": _mod("nn.ReLU6()"), "tanh": _mod("nn.Tanh()"),
    "sigmoid": _mod("nn.Sigmoid()"), "softmax": _mod("nn.Softmax(dim=1)"),
    "leakyrelu": _mod(lambda l: f"nn.LeakyReLU({l.args['alpha']!r})"),
    "dropout": _mod(lambda l: f"nn.Dropout({l.args['p']!r})"),
    "batchnorm": _mod(_bn),
    "lrn": _mod(lambda l: f"nn.LocalResponseNorm({l.args['size']}, alpha={l.args['alpha']!r}, "
                          f"beta={l.args['beta']!r}, k={l.args['k']!r})"),
    "concat": lambda g, n, xs: f"torch.cat([{', '.join(xs)}], 1)",
    "add": lambda g, n, xs: " + ".join(xs),
    "identity": _mod("nn.Identity()"),
    "split": _split, "channel_shuffle": _mod(lambda l: f"nn.ChannelShuffle({l.args['groups']})"),
    "pad_channels": _pad_channels,
}

ACTIVATIONS = {"relu": "torch.relu({})", "relu6": "F.relu6({})", "leakyrelu": "F.leaky_relu({}, 0.01)",
               "tanh": "torch.tanh({})", "sigmoid": "torch.sigmoid({})", "softmax": "torch.softmax({}, 1)"}


def torch_source(graph: Graph, *, class_name: str = "Net") -> str:
    """The Python source of a standalone ``nn.Module`` computing ``graph``."""
    graph.infer()
    bad = unsupported_layers(graph)
    if bad:
        raise InteropError(f"{graph.name}: cannot export {len(bad)} layer(s) to PyTorch — "
                           + "; ".join(f"{n}: {why}" for n, why in bad[:8]))
    g = _Gen(graph)
    for node in graph.layers:
        fn = MODULES.get(node.layer.kind)
        if fn is None:
            raise InteropError(f"{node.name}: no PyTorch code for layer type {node.layer.kind!r}")
        expr = fn(g, node, [g.vars[s] for s in node.inputs])
        if node.layer.activation:
            expr = ACTIVATIONS[node.layer.activation].format(expr)
        v = g.var(node.name)
        g.vars[node.name] = v
        g.fwd.append(f"{v} = {expr}  # {node.name}: {node.layer.describe()}")
    outs = [g.vars[o] for o in graph.outputs]
    ret = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"
    shape = graph.input_shape
    layout = ("N x C x H x W" if len(shape) == 3 else "N x C x L" if len(shape) == 2 else "N x F")
    dims = (shape[-1], *shape[:-1]) if len(shape) > 1 else shape
    example = ", ".join(map(str, (1, *dims)))
    head = [
        f'"""{graph.name} as a PyTorch module, written by `cnncalc export` from {graph.file or graph.name}.',
        "",
        f"Input: a float tensor {layout} = {example.replace(', ', ' x ')[4:]} per item (spec input "
        f"{'x'.join(map(str, shape))}).",
        "state_dict keys = cnncalc checkpoint keys with '/' -> '.' (batch norm: gamma -> weight, beta -> bias).",
        "",
        f">>> net = {class_name}()",
        f">>> tuple(net(torch.zeros({example})).shape)",
        f"{_out_example(graph)}",
        '"""',
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
        "",
        "",
        f"class {class_name}(nn.Module):",
        "    def __init__(self):",
        "        super().__init__()",
    ]
    body = [f"        {l}" for l in g.init] or ["        pass"]
    fwd = ["", "    def forward(self, x):"] + [f"        {l}" for l in g.fwd] + [f"        return {ret}", ""]
    return "\n".join(head + body + fwd)


def _out_example(graph):
    s = graph[graph.outputs[0]].shape
    return str(tuple([1, *((s[-1], *s[:-1]) if len(s) > 1 else s)]))


def torch_state_dict(graph: Graph, params: dict, state: dict):
    """{key: torch.Tensor} that ``load_state_dict`` of the generated module accepts."""
    import numpy as np
    import torch

    sd = {}
    for node in graph.layers:
        kind = node.layer.kind
        for t, a in params.get(node.name, {}).items():
            sd[state_dict_key(node.name, t, kind)] = torch.from_numpy(np.array(a, np.float32))
        for t, a in state.get(node.name, {}).items():
            sd[state_dict_key(node.name, t, kind)] = torch.from_numpy(np.array(a, np.float32))
        if kind == "batchnorm":
            sd[state_dict_key(node.name, "num_batches_tracked", kind)] = torch.tensor(0, dtype=torch.long)
    return sd
