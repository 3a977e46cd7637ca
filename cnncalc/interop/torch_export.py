"""Spec → a standalone PyTorch module (Python source), one generator per spec layer type
(the ``MODULES`` table).

The generated file imports only torch. Every spec layer that is a torch module becomes an
attribute named as the layer (module instances ``a/b`` become nested containers ``self.a.b``;
a name that is not a Python identifier is reached with ``getattr``); parameter-free plumbing
(concat, add, split, pad_channels, flatten) is written inline in ``forward``, commented with
the layer's name. The state_dict keys are the checkpoint's keys with ``/`` → ``.`` (a path
component named like an ``nn.Module`` attribute gets a trailing ``_``) and, for the norms,
``gamma`` → ``weight``, ``beta`` → ``bias`` (plus batch norm's ``num_batches_tracked``):
:func:`state_dict_key`. Layers torch has no module for (layer scale, a LayerNorm over the
channels of N x C x H x W) use small helper classes written into the file (``HELPERS``).
"""
from __future__ import annotations

import keyword
import re

from cnncalc.escape import comment_text, py_docstring_text
from cnncalc.graph import INPUT, Graph
from cnncalc.interop import InteropError
from cnncalc.interop.onnx_export import unsupported_layers, window_attrs
from cnncalc.interop.attention_export import torch_rows as token_rows
from cnncalc.interop.tensor_export import torch_rows
from cnncalc.shapes import Tensor, spatial, torch_order

_BN_KEYS = {"gamma": "weight", "beta": "bias"}
_NORMS = ("batchnorm", "layernorm", "groupnorm", "instancenorm")  # torch names γ, β weight, bias


def state_dict_key(layer: str, tensor: str, kind: str) -> str:
    """The PyTorch state_dict key of a cnncalc tensor ``layer/tensor``."""
    if kind in _NORMS:
        tensor = _BN_KEYS.get(tensor, tensor)
    return ".".join(_attr_path(layer)) + "." + tensor


def original_key(layer: str, tensor: str, kind: str) -> str:
    """The key a tensor has under the spec's own layer name (``layer1.0.conv1.weight``: for an
    import of a PyTorch module, the module's own state_dict key)."""
    if kind in _NORMS:
        tensor = _BN_KEYS.get(tensor, tensor)
    return layer.replace("/", ".") + "." + tensor


def key_map(graph: Graph) -> dict[str, str]:
    """{original key: the generated module's key} where they differ, or {} when two tensors
    would share an original key (then the module's own keys are used everywhere)."""
    pairs = []
    for node in graph.layers:
        kind = node.layer.kind
        names = [*node.layer.owned_param_shapes(), *node.layer.state_shapes()]
        if kind == "batchnorm":
            names.append("num_batches_tracked")
        pairs += [(original_key(node.name, t, kind), state_dict_key(node.name, t, kind)) for t in names]
    originals = [a for a, _ in pairs]
    attrs = {b for _, b in pairs}
    if len(set(originals)) != len(originals) or any(a in attrs and a != b for a, b in pairs):
        return {}
    return {a: b for a, b in pairs if a != b}


# attributes of nn.Module (and of the helper modules): a layer path component named like one
# (U-Net's ``up4/double/conv1``) would find the method, so it gets a trailing underscore
_MODULE_ATTRS = frozenset(
    "T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double "
    "dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half "
    "ipu load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters "
    "register_backward_hook register_buffer register_forward_hook register_forward_pre_hook "
    "register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook "
    "register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook "
    "register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to "
    "to_empty train training type xpu zero_grad weight bias gamma view".split())


def _attr_path(layer: str) -> list[str]:
    parts = [p.replace(".", "_") for p in layer.split("/")]
    return [p + "_" if p in _MODULE_ATTRS else p for p in parts]


def _ident(name: str) -> bool:
    """An attribute name written as ``self.name``: ASCII only (Python NFKC-normalises other
    identifiers, so ``self.ﬁ`` would be ``self.fi``); any other name goes through repr()."""
    return name.isascii() and name.isidentifier() and not keyword.iskeyword(name)


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
        self.helpers: dict[str, str] = {}  # class name → source, for layers torch has no module for

    def var(self, name: str) -> str:
        v = re.sub(r"[^0-9A-Za-z_]", "_", name.replace("/", "__"))[:60]  # an ASCII identifier
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
    extra = _conv_extra(lay)
    owner = lay.args.get("shares")
    st = lay.standardize
    if owner:  # a module called again: the owner's weight (and bias), this layer's geometry
        ref = _ref(_attr_path(owner))
        bias = f"{ref}.bias" if lay.args["bias"] else "None"
        dil = f", dilation={_one(lay.dilation)}" if any(d != 1 for d in lay.dilation) else ""
        w = f"{ref}.standardized()" if st else f"{ref}.weight"
        return (f"F.conv{nd}d({x}, {w}, {bias}, stride={_one(lay.stride)}, padding={pad}{dil}, "
                f"groups={lay.groups})")
    if st:  # (timm's StdConv2d / ScaledStdConv2d, any rank: a helper class)
        cls = _helper(g, "StdConv")
        ref = g.module(node, f"{cls}({nd}, {lay.in_channels}, {lay.filters}, kernel_size={_one(lay.kernel)}, "
                             f"stride={_one(lay.stride)}, padding={pad}{extra}, eps={st['eps']!r}, "
                             f"scale={st['scale']!r}, gain={st['gain']})")
        return f"{ref}({x})"
    ref = g.module(node, f"nn.Conv{nd}d({lay.in_channels}, {lay.filters}, kernel_size={_one(lay.kernel)}, "
                         f"stride={_one(lay.stride)}, padding={pad}{extra})")
    return f"{ref}({x})"


def _conv_extra(lay, output_padding=False) -> str:
    """The keyword arguments of nn.Conv*/nn.ConvTranspose* that differ from PyTorch's defaults."""
    extra = "" if lay.groups == 1 else f", groups={lay.groups}"
    if output_padding and any(lay.output_padding):
        extra += f", output_padding={_one(lay.output_padding)}"
    if any(d != 1 for d in lay.dilation):
        extra += f", dilation={_one(lay.dilation)}"
    if not lay.args["bias"]:
        extra += ", bias=False"
    return extra


def _deconv(g, node, xs):
    lay = node.layer
    nd = _nd(lay.in_shapes[0])
    lo, hi = [w.pad_lo for w in lay.windows], [w.pad_hi for w in lay.windows]
    if lo != hi:
        raise InteropError(f"{node.name}: PyTorch's ConvTranspose has no asymmetric padding")
    extra = _conv_extra(lay, output_padding=True)
    ref = g.module(node, f"nn.ConvTranspose{nd}d({lay.in_channels}, {lay.filters}, kernel_size={_one(lay.kernel)}, "
                         f"stride={_one(lay.stride)}, padding={_one(lo)}{extra})")
    return f"{ref}({xs[0]})"


def _fc(g, node, xs):
    lay = node.layer
    b = "" if lay.args["bias"] else ", bias=False"
    ref = g.module(node, f"nn.Linear({lay.in_features}, {lay.units}{b})")
    x = xs[0] if len(lay.in_shapes[0]) == 1 or lay.in_shapes[0].__class__ is not tuple else f"torch.flatten({xs[0]}, 1)"
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


# helper modules written into the generated file when a spec uses them (torch has no module
# for a layer scale, nor for a LayerNorm over the channels of an N x C x H x W tensor)
HELPERS = {
    "LayerScale": '''class LayerScale(nn.Module):
    """A learned multiplier per channel (ConvNeXt's layer scale)."""

    def __init__(self, channels, init, spatial_axes):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), float(init)))
        self.view = (-1,) + (1,) * spatial_axes  # (C,) -> (C, 1, 1) broadcasts over N x C x H x W

    def forward(self, x):
        return x * self.gamma.view(self.view)
''',
    "StdConv": '''class StdConv(nn.Module):
    """A convolution whose weight is standardised per filter on every forward pass, as timm's
    StdConv2d / ScaledStdConv2d: F.batch_norm over the weight as (1, filters, -1) with its own
    statistics (mean, biased variance, eps), times gain * scale (the gain per filter, learned)."""

    def __init__(self, nd, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, eps=1e-6, scale=1.0, gain=False):
        super().__init__()
        conv = getattr(nn, f"Conv{nd}d")(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                         dilation=dilation, groups=groups, bias=bias)
        self.weight, self.bias = conv.weight, conv.bias
        self.gain = nn.Parameter(torch.ones(out_channels)) if gain else None
        self.conv = getattr(F, f"conv{nd}d")
        self.args = (conv.stride, conv.padding, conv.dilation, groups)
        self.eps, self.scale = eps, scale

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        g = state_dict.get(prefix + "gain")  # timm's gain is (F, 1, 1, 1): the same values
        if g is not None and self.gain is not None and g.shape != self.gain.shape and g.numel() == self.gain.numel():
            state_dict[prefix + "gain"] = g.reshape(self.gain.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def standardized(self):
        out = self.weight.shape[0]
        g = None if self.gain is None else self.gain * self.scale
        w = F.batch_norm(self.weight.reshape(1, out, -1), None, None, weight=g, training=True, momentum=0.0,
                         eps=self.eps).reshape_as(self.weight)
        return w * self.scale if self.gain is None and self.scale != 1.0 else w

    def forward(self, x):
        return self.conv(x, self.standardized(), self.bias, *self.args)
''',
    "ChannelsLastLayerNorm": '''class ChannelsLastLayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the channels at each position of an N x C x ... tensor: move the
    channels last, normalise them, move them back."""

    def forward(self, x):
        to_last = (0, *range(2, x.dim()), 1)
        back = (0, x.dim() - 1, *range(1, x.dim() - 1))
        return super().forward(x.permute(to_last)).permute(back)
''',
}


def _helper(g: _Gen, name: str) -> str:
    g.helpers[name] = HELPERS[name]
    return name


def _act_module(kind):
    def code(l):
        a = l.args
        if kind == "gelu":
            return "nn.GELU(approximate='tanh')" if a["approximate"] == "tanh" else "nn.GELU()"
        if kind == "elu":
            return f"nn.ELU({a['alpha']!r})"
        if kind == "softplus":
            return f"nn.Softplus(beta={a['beta']!r}, threshold={a['threshold']!r})"
        return {"silu": "nn.SiLU()", "hardswish": "nn.Hardswish()", "hardsigmoid": "nn.Hardsigmoid()",
                "mish": "nn.Mish()", "selu": "nn.SELU()"}[kind]
    return _mod(code)


def _prelu(layer):
    n = 1 if layer.args["slopes"] == "shared" else layer.out_shape[-1]
    return f"nn.PReLU({n}, init={layer.args['init']!r})"


def _mul(g, node, xs):
    rank = max(len(s) for s in node.layer.in_shapes)
    terms = []
    for x, s in zip(xs, node.layer.in_shapes):
        if len(s) < rank:  # a flat [C] gate: N x C → N x C x 1 x 1
            x = f"{x}[(...,) + (None,) * {rank - len(s)}]"
        terms.append(x)
    return " * ".join(terms)  # N x C x 1 x 1 broadcasts over N x C x H x W


def _scale(g, node, xs):
    lay = node.layer
    code = f"{_helper(g, 'LayerScale')}({lay.out_shape[-1]}, {lay.args['init']!r}, {_nd(lay.out_shape)})"
    return f"{g.module(node, code)}({xs[0]})"


def _layernorm(g, node, xs):
    lay = node.layer
    a = lay.args
    extra = f", eps={a['eps']!r}" + ("" if a["affine"] else ", elementwise_affine=False")
    if a["over"] == "all" and len(lay.out_shape) > 1:
        code = f"nn.LayerNorm({list(lay._affine_shape())}{extra})"  # [C, H, W]
    elif len(lay.out_shape) == 1:
        code = f"nn.LayerNorm({lay.out_shape[0]}{extra})"
    else:
        code = f"{_helper(g, 'ChannelsLastLayerNorm')}({lay.out_shape[-1]}{extra})"
    return f"{g.module(node, code)}({xs[0]})"


def _groupnorm(layer):
    a = layer.args
    return (f"nn.GroupNorm({a['groups']}, {layer.out_shape[-1]}, eps={a['eps']!r}"
            + ("" if a["affine"] else ", affine=False") + ")")


def _instancenorm(layer):
    a = layer.args
    return f"nn.InstanceNorm{_nd(layer.out_shape)}d({layer.out_shape[-1]}, eps={a['eps']!r}, affine={a['affine']!r})"


def _upsample(layer):
    a = layer.args
    nd = _nd(layer.out_shape)
    if a["factor"] is not None:
        fs = [o // i for o, i in zip(spatial(layer.out_shape), spatial(layer.in_shapes[0]))]
        how = f"scale_factor={_one(fs) if len(set(fs)) == 1 else tuple(float(f) for f in fs)}"
    else:
        how = f"size={_one(spatial(layer.out_shape)) if len(set(spatial(layer.out_shape))) == 1 else _t(spatial(layer.out_shape))}"
    if a["mode"] == "nearest":
        return f"nn.Upsample({how}, mode='nearest')"
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
    return f"nn.Upsample({how}, mode={mode!r}, align_corners={a['align_corners']!r})"


def _crop(g, node, xs):
    lay = node.layer
    sl = ", ".join(f"{lo}:{n - hi}" for n, (lo, hi) in zip(spatial(lay.in_shapes[0]), lay.crops))
    return f"{xs[0]}[:, :, {sl}]"


def _padding(g, node, xs):
    lay = node.layer
    mode = {"zero": "constant", "reflect": "reflect", "replicate": "replicate"}[lay.args["mode"]]
    p = []
    for lo, hi in reversed(lay.pads):  # F.pad: the last axis first
        p += [lo, hi]
    return f"F.pad({xs[0]}, {tuple(p)}, mode={mode!r})"


def _adaptive(kind):
    def code(layer):
        out = spatial(layer.out_shape)
        return f"nn.Adaptive{kind}Pool{_nd(layer.out_shape)}d({_one(out) if len(set(out)) == 1 else _t(out)})"
    return _mod(code)


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
    **{k: _act_module(k) for k in ("silu", "hardswish", "hardsigmoid", "gelu", "mish", "elu", "selu", "softplus")},
    "prelu": _mod(_prelu), "mul": _mul, "scale": _scale,
    "layernorm": _layernorm, "groupnorm": _mod(_groupnorm), "instancenorm": _mod(_instancenorm),
    "upsample": _mod(_upsample), "crop": _crop, "padding": _padding,
    "adaptive_avgpool": _adaptive("Avg"), "adaptive_maxpool": _adaptive("Max"),
}
MODULES.update(torch_rows(MODULES))  # the tensor vocabulary (interop/tensor_export.py)
MODULES.update(token_rows())  # the token layers (interop/attention_export.py)

ACTIVATIONS = {"relu": "torch.relu({})", "relu6": "F.relu6({})", "leakyrelu": "F.leaky_relu({}, 0.01)",
               "tanh": "torch.tanh({})", "sigmoid": "torch.sigmoid({})", "softmax": "torch.softmax({}, 1)",
               "silu": "F.silu({})", "hardswish": "F.hardswish({})", "hardsigmoid": "F.hardsigmoid({})",
               "gelu": "F.gelu({})", "mish": "F.mish({})", "elu": "F.elu({})", "selu": "F.selu({})",
               "softplus": "F.softplus({})"}


def torch_source(graph: Graph, *, class_name: str = "Net") -> str:
    """The Python source of a standalone ``nn.Module`` computing ``graph``. Names (the graph's,
    its file's, the layers') reach the source only escaped in comments and the docstring, as
    repr() string literals, or reduced to ASCII identifiers."""
    if not (class_name.isascii() and class_name.isidentifier()) or keyword.iskeyword(class_name):
        raise InteropError(f"class name {class_name!r} is not a Python identifier")
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
        g.fwd.append(f"{v} = {expr}  # {comment_text(node.name)}: {comment_text(node.layer.describe())}")
    outs = [g.vars[o] for o in graph.outputs]
    ret = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"
    shape = graph.input_shape
    layout = ("N x " + " x ".join(map(str, shape)) if shape.__class__ is Tensor else
              {4: "N x C x D x H x W", 3: "N x C x H x W", 2: "N x C x L"}.get(len(shape), "N x F"))
    dims = tuple(torch_order(shape))
    example = ", ".join(map(str, (1, *dims)))
    head = [
        # names reach the source only escaped (no quote, backslash or line break can end the string)
        f'"""{py_docstring_text(graph.name)} as a PyTorch module, written by `cnncalc export` from '
        f'{py_docstring_text(graph.file or graph.name)}.',
        "",
        f"Input: a float tensor of shape (N, {', '.join(map(str, dims))}){_axes(layout, dims)} (spec input "
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
        *[line for src in g.helpers.values() for line in (*src.splitlines(), "", "")],
        f"class {class_name}(nn.Module):",
    ]
    keys = key_map(graph)
    if keys:
        head += ["    # the spec's layer names -> this module's attributes ('.' cannot name a submodule):",
                 "    # load_state_dict accepts a state_dict under either name (the .pt of `cnncalc export --weights`",
                 "    # uses the spec's names, e.g. those of the imported PyTorch module)",
                 "    KEYS = {", *[f"        {a!r}: {b!r}," for a, b in keys.items()], "    }", ""]
    head += ["    def __init__(self):", "        super().__init__()"]
    body = [f"        {l}" for l in g.init] or ["        pass"]
    if keys:
        body += ["", "    def load_state_dict(self, state_dict, *args, **kwargs):",
                 "        state_dict = {self.KEYS.get(k, k): v for k, v in state_dict.items()}",
                 "        return super().load_state_dict(state_dict, *args, **kwargs)"]
    fwd = ["", "    def forward(self, x):"] + [f"        {l}" for l in g.fwd] + [f"        return {ret}", ""]
    return "\n".join(head + body + fwd)


def _axes(layout: str, dims) -> str:
    """': N x C x H x W with C = 3, H = 32, W = 32' (nothing for a tensor of no named axes)."""
    names = layout.split(" x ")[1:]
    if not names or not all(n.isalpha() for n in names):
        return ""
    return f": {layout} with " + ", ".join(f"{n} = {d}" for n, d in zip(names, dims))


def _out_example(graph):
    return str(tuple([1, *torch_order(graph[graph.outputs[0]].shape)]))


def torch_state_dict(graph: Graph, params: dict, state: dict, *, original_names: bool = False):
    """{key: torch.Tensor} that ``load_state_dict`` of the generated module accepts; with
    ``original_names``, keyed by the spec's layer names where :func:`key_map` allows it."""
    import numpy as np
    import torch

    sd = {}
    if original_names:
        back = {b: a for a, b in key_map(graph).items()}
        return {back.get(k, k): v for k, v in torch_state_dict(graph, params, state).items()}
    for node in graph.layers:
        kind = node.layer.kind
        for t, a in params.get(node.name, {}).items():
            sd[state_dict_key(node.name, t, kind)] = torch.from_numpy(np.array(a, np.float32))
        for t, a in state.get(node.name, {}).items():
            sd[state_dict_key(node.name, t, kind)] = torch.from_numpy(np.array(a, np.float32))
        if kind == "batchnorm":  # (InstanceNorm/GroupNorm/LayerNorm keep no running statistics)
            sd[state_dict_key(node.name, "num_batches_tracked", kind)] = torch.tensor(0, dtype=torch.long)
    return sd
