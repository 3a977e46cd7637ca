"""Activations: one rewrite per ONNX activation op (fused into the conv/fc before it when it is
its only reader), and the elementwise-region matcher that names a decomposed function
(GELU, SiLU, Mish, HardSwish, Softplus β, … as torch.onnx.export writes them)."""
from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np

from cnncalc.interop.onnx.common import Unmapped, nchw
from cnncalc.interop.onnx.rewrites import Rewrite, register, rewrite
from cnncalc.layers import REGISTRY


def _erf(v):
    import math
    return np.vectorize(math.erf)(v)


def _softplus(v):
    return np.logaddexp(0.0, v)


EW_EVAL: dict[str, Callable] = {
    "Mul": lambda a, b: a * b, "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Div": lambda a, b: a / b,
    "Pow": lambda a, b: a ** b, "Erf": _erf, "Tanh": np.tanh, "Sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "Softplus": _softplus, "Relu": lambda a: np.maximum(a, 0), "Exp": np.exp, "Log": np.log,
    "Neg": np.negative, "Sqrt": np.sqrt, "HardSwish": lambda a: a * np.clip(a + 3, 0, 6) / 6,
}
ELEMENTWISE = set(EW_EVAL) | {"HardSigmoid", "Clip"}

_PROBE = np.linspace(-6.0, 6.0, 97)
_SQRT2 = np.sqrt(2.0)
KNOWN_FUNCTIONS = [
    ("silu", {}, lambda x: x / (1 + np.exp(-x))),
    ("gelu", {}, lambda x: 0.5 * x * (1 + _erf(x / _SQRT2))),
    ("gelu", {"approximate": "tanh"}, lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    ("mish", {}, lambda x: x * np.tanh(_softplus(x))),
    ("hardswish", {}, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    ("hardsigmoid", {}, lambda x: np.clip(x / 6 + 0.5, 0, 1)),
]


def _eval_node(imp, n, vals):
    """One elementwise node on the probe values (scalar constants as numbers)."""
    ins = [vals[t] if t in vals else np.float64(imp.consts[t].reshape(-1)[0]) for t in n.input if t]
    if n.op_type == "HardSigmoid":
        return np.clip(imp.attr(n, "alpha", 0.2) * ins[0] + imp.attr(n, "beta", 0.5), 0, 1)
    if n.op_type == "Clip":
        lo = ins[1] if len(ins) > 1 else imp.attr(n, "min", -np.inf)
        hi = ins[2] if len(ins) > 2 else imp.attr(n, "max", np.inf)
        return np.clip(ins[0], lo, hi)
    return EW_EVAL[n.op_type](*ins)


_KNOWN_ON_PROBE = None
_QUICK = (5, 40, 48, 60, 90)


def _match(y):
    """(kind, args) of the known function whose values on the probe are ``y``, or None."""
    global _KNOWN_ON_PROBE
    if y.shape != _PROBE.shape:
        return None
    if _KNOWN_ON_PROBE is None:
        with np.errstate(all="ignore"):
            _KNOWN_ON_PROBE = [(kind, args, fn(_PROBE), [float(v) for v in fn(_PROBE)[list(_QUICK)]])
                               for kind, args, fn in KNOWN_FUNCTIONS]
    few = [float(y[k]) for k in _QUICK]  # a few points first: most chains are no known function
    for kind, args, ref, ref_few in _KNOWN_ON_PROBE:
        if all(abs(a - b) <= 1e-6 + 1e-5 * abs(b) for a, b in zip(few, ref_few)) and \
                np.all(np.isfinite(y)) and np.allclose(y, ref, rtol=1e-5, atol=1e-6):
            return kind, args
    if not np.isfinite(y[48]):
        return None
    beta = float(np.log(2.0) / y[48]) if y[48] > 0 else 0.0  # softplus_β(0) = ln 2 / β
    if beta > 0:
        with np.errstate(all="ignore"):
            pts = [float(np.logaddexp(0.0, beta * _PROBE[k]) / beta) for k in _QUICK]
            if all(abs(a - b) <= 1e-6 + 1e-5 * abs(b) for a, b in zip(few, pts)) and \
                    np.all(np.isfinite(y)) and np.allclose(y, _softplus(beta * _PROBE) / beta, rtol=1e-5, atol=1e-6):
                return "softplus", {"beta": float(f"{beta:.6g}")}
    return None


@rewrite(*sorted(ELEMENTWISE), family="activation", name="elementwise_function", stage="region",
         lifts="silu / gelu / gelu tanh / mish / hardswish / hardsigmoid / softplus")
def elementwise_function(imp, i) -> bool:
    """A chain of elementwise nodes of one tensor named by what it computes on sample values.

    Nodes from ``i`` on that compute an elementwise function of one mapped tensor x
    (with scalar constants): torch.onnx.export's GELU (Div, Erf, Add, Mul, Mul), SiLU
    (Sigmoid, Mul), Mish (Softplus, Tanh, Mul), Softplus(β) … . The longest such chain whose
    intermediate tensors are used only inside it is evaluated on sample values and named by
    what it computes (silu, gelu, gelu tanh, mish, hardswish, hardsigmoid, softplus β)."""
    first = imp.nodes[i]
    data = [t for t in first.input if t and t not in imp.consts]
    if len(set(data)) != 1 or data[0] not in imp.layer_of or data[0] in imp.pending:
        return False
    x = data[0]
    have, region = {x}, []
    for k in range(i, min(len(imp.nodes), i + 40)):
        n = imp.nodes[k]
        if k in imp.skip:
            continue
        if n.op_type == "Constant" and k > i:
            try:
                imp.constant(n)
            except Unmapped:
                break
            continue
        ins = [t for t in n.input if t]
        if n.op_type not in ELEMENTWISE or len(n.output) != 1:
            continue
        if not all(t in have or (t in imp.consts and imp.consts[t].size == 1) for t in ins):
            continue
        if not any(t in have for t in ins):
            continue
        region.append(k)
        have.add(n.output[0])
        if len(region) >= 12:  # the longest known function (GELU's tanh form) has 9 nodes
            break
    if len(region) < 2:
        return False
    # one pass: evaluate each node once on the probe, and note after which node every
    # intermediate tensor has all its consumers inside (a prefix that may be replaced)
    outs = imp.output_names
    vals, open_, uses, ends = {x: _PROBE}, set(), Counter(), []
    with np.errstate(all="ignore"):
        for j, k in enumerate(region):
            n = imp.nodes[k]
            try:
                vals[n.output[0]] = _eval_node(imp, n, vals)
            except (KeyError, TypeError, ValueError):
                break
            for t in n.input:
                if t in open_:
                    uses[t] += 1
                    if uses[t] == imp.n_consumers[t] and t not in outs:
                        open_.discard(t)
            open_.add(n.output[0])
            if j and open_ == {n.output[0]}:
                ends.append(j + 1)
    found = None
    for end in reversed(ends):
        part = region[:end]
        last = imp.nodes[part[-1]].output[0]
        found = _match(vals[last])
        if found is not None:
            break
    if found is not None:
        kind, args = found
        imp.skip.update(part)
        uses = sum(1 for k in part for t in imp.nodes[k].input if t == x)
        activation(kind, kind)(imp, imp.nodes[part[-1]], args or None, x=x, uses=uses)
        if x in imp.odd:  # elementwise: the layout it reads is the layout it gives
            imp.odd.add(last)
        if x in imp.batch_of:
            imp.batch_of[last] = imp.batch_of[x]
        return True
    return False


def activation(kind, op):
    def f(imp, node, args=None, x=None, uses=1):
        x = x or node.input[0]
        prod = imp.layer_of.get(x)
        it = imp.by_name.get(prod)
        fusable = (it is not None and REGISTRY[it.kind].takes_activation and not it.args.get("activation")
                   and imp.n_consumers[x] == uses and x not in {o.name for o in imp.g.output} and not args)
        if fusable and imp.cnncalc:
            fusable = node.name == f"{it.raw}/{kind}"
        if fusable:
            it.args["activation"] = kind
            imp.layer_of[node.output[0]] = it.name
            if imp.shape(x) is not None:
                imp.shapes[node.output[0]] = imp.shape(x)
            return
        imp.emit(node, kind, {kind: None, **(args or {})}, [x])
    return f


@rewrite("HardSigmoid", family="activation", lifts="hardsigmoid")
def hardsigmoid(imp, node):
    alpha, beta = float(imp.attr(node, "alpha", 0.2)), float(imp.attr(node, "beta", 0.5))
    if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-6:
        raise Unmapped("HardSigmoid", node.name, f"alpha {alpha:g}, beta {beta:g} (the layer is PyTorch's "
                        "relu6(x + 3)/6: alpha 1/6, beta 0.5)")
    activation("hardsigmoid", "HardSigmoid")(imp, node)


@rewrite("Elu", family="activation", lifts="elu")
def elu(imp, node):
    alpha = float(imp.attr(node, "alpha", 1.0))
    activation("elu", "Elu")(imp, node, None if abs(alpha - 1.0) < 1e-9 else {"alpha": float(f"{alpha:.6g}")})


@rewrite("Selu", family="activation", lifts="selu")
def selu(imp, node):
    a, g = float(imp.attr(node, "alpha", 1.67326319217681884765625)), float(imp.attr(node, "gamma", 1.05070102214813232421875))
    if abs(a - 1.6732632) > 1e-5 or abs(g - 1.0507010) > 1e-5:
        raise Unmapped("Selu", node.name, "alpha/gamma other than SELU's constants")
    activation("selu", "Selu")(imp, node)


@rewrite("Gelu", family="activation", lifts="gelu")
def gelu(imp, node):
    approx = imp.attr(node, "approximate", b"none")
    approx = approx.decode() if isinstance(approx, bytes) else approx
    activation("gelu", "Gelu")(imp, node, {"approximate": "tanh"} if approx == "tanh" else None)


@rewrite("PRelu", family="activation", lifts="prelu")
def prelu(imp, node):
    w = imp.const(node.input[1])
    xs = nchw(imp, node.input[0], node)
    if w is None or w.size not in (1, xs[1]):
        raise Unmapped("PRelu", node.name, "slopes that are neither one per channel nor one")
    args = {"prelu": "shared"} if w.size == 1 and xs[1] != 1 else {"prelu": None}
    imp.emit(node, "prelu", args, [node.input[0]], weight=node.input[1],
             params={"weight": w.reshape(-1).astype(np.float32)})


@rewrite("LeakyRelu", family="activation", lifts="leakyrelu")
def leaky(imp, node):
    alpha = float(imp.attr(node, "alpha", 0.01))
    args = None if abs(alpha - 0.01) < 1e-9 else {"alpha": round(alpha, 9)}
    activation("leakyrelu", "LeakyRelu")(imp, node, args)


@rewrite("Clip", family="activation", lifts="relu6")
def clip(imp, node):
    lo = imp.const(node.input[1]) if len(node.input) > 1 and node.input[1] else imp.attr(node, "min")
    hi = imp.const(node.input[2]) if len(node.input) > 2 and node.input[2] else imp.attr(node, "max")
    if lo is None or hi is None or float(lo) != 0.0 or float(hi) != 6.0:
        raise Unmapped("Clip", node.name, "only Clip(0, 6) is relu6")
    activation("relu6", "Clip")(imp, node)


@rewrite("Softmax", family="activation", lifts="softmax (over the channels)")
def softmax(imp, node):
    xs = nchw(imp, node.input[0], node)
    axis = imp.attr(node, "axis", -1 if imp.opset >= 13 else 1)
    if axis % len(xs) != 1 or (imp.opset < 13 and len(xs) > 2):
        raise Unmapped("Softmax", node.name, "softmax over an axis other than the channels")
    activation("softmax", "Softmax")(imp, node)


for _kind, _op in (("relu", "Relu"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh"), ("hardswish", "HardSwish"),
                   ("softplus", "Softplus"), ("mish", "Mish")):
    register(Rewrite(_kind, "activation", (_op,), activation(_kind, _op), lifts=_kind))
