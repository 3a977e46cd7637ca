"""Counting conventions: the number each popular counter prints, rebuilt from cnncalc's
separate counts (MACs, bias adds, activations, pooling, norms), layer by layer.

Every counter counts something different and calls it MACs, FLOPs or Mult-Adds. A rule here
is the counter's own code read and written down (the versions named in VERSIONS), for a
network written as torchvision writes it: every activation, pooling, norm and upsampling an
``nn`` module (``nn.ReLU(inplace=True)``), residual adds as ``out += identity``, flattening
with ``torch.flatten``. ``summarize --convention NAME`` shows the result and how it is made;
``tests/test_conventions.py`` checks the rules against the counters themselves when they
are installed.

* **cnncalc** — multiply-accumulates of conv, fc and matmul layers (what papers call
  multiply-adds); nothing else.
* **torchinfo** (``Mult-Adds``) — for each module with parameters: a conv's
  (weights + biases) × output positions, any other module's parameters × batch size
  (a linear layer: weights and biases once per sample; a batch norm: 2C per sample).
  Modules without parameters (activations, pooling, adds) count 0.
* **fvcore** (``FlopCountAnalysis``, one fused multiply-add = one flop) — conv, linear and
  matmul MACs without biases; eval-mode batch norm: 2 per element (1 without affine);
  layer/group/instance norm: 5 per element (4 without affine); 2-D adaptive (global) average
  pooling: 1 per input element; 2-D upsampling: 1 (nearest) or 4 (bilinear) per output
  element. Activations, max/avg pooling and adds are not counted.
* **ptflops** (``get_model_complexity_info``, its default pytorch backend) — conv MACs + 1
  per output element for a bias; linear MACs + biases; batch/group/instance norm 1 per
  element, 2 with affine (LayerNorm always 1: ptflops reads ``module.affine``, which
  LayerNorm does not have); ReLU, PReLU, ELU, GELU and LeakyReLU/ReLU6 modules 1 per output
  element; pooling modules 1 per input element; upsampling 1 per output element. Its
  functional hooks (on ``F.relu``, ``F.max_pool2d``, …) fire too when a module calls them,
  so ReLU, PReLU, ELU, GELU, every pooling and upsampling count twice; ``F.silu`` and
  ``F.softmax`` have only the functional hook (once); LeakyReLU, ReLU6 (``F.hardtanh``),
  sigmoid, tanh and hardswish modules call unhooked functions (LeakyReLU and ReLU6: the
  module hook only; the others: 0). ``out += identity`` is not counted.
* **thop** (``ultralytics-thop``: ``profile``) — conv and linear MACs without biases; any
  norm 2 per element, 4 with affine; PReLU 1 per element; ReLU-family activations and max
  pooling 0; average pooling one add per pooled input and one divide per output; upsampling
  0 (nearest) or 11 (bilinear) per output element; softmax 3 per element less 1 per vector.

Parameters are the same ``model.parameters()`` sum in all five (buffers such as BN running
statistics excluded). Every count is for the whole batch, except ptflops', which traces
one sample whatever the batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cnncalc.layers.base import ACTIVATIONS
from cnncalc.shapes import numel, spatial

CONVENTIONS = ("cnncalc", "torchinfo", "fvcore", "ptflops", "thop")
UNITS = {"cnncalc": "MACs", "torchinfo": "Mult-Adds", "fvcore": "flops (1 multiply-add = 1 flop)",
         "ptflops": "MACs", "thop": "MACs"}
VERSIONS = {"torchinfo": "1.8.0", "fvcore": "0.1.5.post20221221", "ptflops": "0.7.5",
            "thop": "ultralytics-thop 2.2.3"}
# what the tool itself prints, for each convention (the call that reproduces the number)
CALLS = {
    "cnncalc": "cnncalc summarize SPEC (MACs)",
    "torchinfo": "torchinfo.summary(model, input_size).total_mult_adds",
    "fvcore": "fvcore.nn.FlopCountAnalysis(model.eval(), x).total()",
    "ptflops": "ptflops.get_model_complexity_info(model, (C, H, W), as_strings=False)[0]",
    "thop": "thop.profile(model.eval(), inputs=(x,))[0]",
}
CONV = ("conv", "dwconv", "deconv")
MAC_KINDS = CONV + ("fc", "matmul")
NORMS = ("layernorm", "groupnorm", "instancenorm")
POOLS = ("maxpool", "avgpool", "global_maxpool", "global_avgpool", "adaptive_avgpool", "adaptive_maxpool")
# kinds every convention counts as 0 (views, merges, copies: torch ops no counter hooks)
FREE = ("flatten", "identity", "dropout", "concat", "add", "mul", "split", "crop", "padding",
        "channel_shuffle", "pad_channels", "reshape", "transpose", "slice", "gather", "expand", "tile",
        "stack", "linear")
# ptflops: activation modules it hooks, and those whose forward calls a hooked F.* function
PTF_MODULE = ("relu", "prelu", "elu", "gelu", "leakyrelu", "relu6")
PTF_FUNCTIONAL = ("relu", "prelu", "elu", "gelu", "silu", "softmax")
THOP_UPSAMPLE = {"nearest": 0, "linear": 5, "bilinear": 11, "trilinear": 31}


@dataclass
class ConventionCount:
    """One convention's count of a network: per layer, by part, and in total."""
    convention: str
    layers: dict[str, int]  # layer name → the count the tool gives that layer's module(s)
    parts: dict[str, int]  # what the total is made of ("conv/fc MACs", "batch norm", …)
    params: int
    unit: str
    not_modelled: list[str] = field(default_factory=list)  # layer kinds counted as cnncalc's MACs

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def to_dict(self) -> dict:
        return {"convention": self.convention, "unit": self.unit, "total": self.total, "params": self.params,
                "parts": dict(self.parts), "tool_call": CALLS[self.convention],
                **({"tool_version": VERSIONS[self.convention]} if self.convention in VERSIONS else {}),
                "not_modelled": list(self.not_modelled)}


def _activation(layer) -> str | None:
    """The activation a layer applies: its own kind for an activation layer, else its fused one."""
    if layer.kind in ACTIVATIONS:
        return layer.kind if layer.kind != "linear" else None
    a = layer.activation
    return a if a and a != "linear" else None


def _affine(row) -> bool:
    return row.weights + row.biases > 0


def _avgpool_windows(layer) -> int:
    """Σ over outputs of the input values each averages (padding included when the layer counts
    it), per channel and sample: thop's adds."""
    ins = spatial(layer.in_shapes[0])
    outs = spatial(layer.out_shape)
    include = layer.args.get("count_include_pad", True)
    total = 1
    for n, o, w in zip(ins, outs, layer.windows):
        lo, hi = (-w.pad_lo, n + w.pad_hi) if include else (0, n)
        total *= sum(max(min(i * w.stride - w.pad_lo + w.kernel, hi) - max(i * w.stride - w.pad_lo, lo), 0)
                     for i in range(o))
    return total


def _adaptive_windows(layer) -> int:
    """Σ of the windows an adaptive average pool reads (PyTorch's ⌊jI/O⌋ … ⌈(j+1)I/O⌉)."""
    total = 1
    for i, o in zip(spatial(layer.in_shapes[0]), spatial(layer.out_shape)):
        total *= sum(-(-(j + 1) * i // o) - j * i // o for j in range(o))
    return total


def _parts(conv: str, layer, row, batch: int, parts: dict) -> bool:
    """Add one layer's count to ``parts``; False when the convention has no rule for its kind."""
    k = layer.kind
    out = numel(layer.out_shape) * batch
    inp = numel(layer.in_shapes[0]) * batch if layer.in_shapes else 0
    act = _activation(layer)

    def add(part, v):
        if v:
            parts[part] = parts.get(part, 0) + v

    if conv == "cnncalc":
        add("conv/fc/matmul MACs", row.macs)
        return True
    # ----------------------------------------------------------------- the layer itself
    if k in MAC_KINDS:
        if conv == "torchinfo":
            if k in CONV:
                positions = numel(spatial(layer.out_shape)) * batch
                add("conv: (weights + biases) × positions", (row.weights + row.biases) * positions)
            elif k == "fc":
                add("fc: (weights + biases) × N", (row.weights + row.biases) * batch)
            # (torch.matmul is no module: 0)
        elif conv == "fvcore":
            add("conv/fc/matmul MACs", row.macs)
        elif conv == "ptflops":
            add("conv/fc/matmul MACs", row.macs)
            if row.biases and k in CONV:
                add("conv bias: 1/output", out)
            elif row.biases and k == "fc":
                add("fc bias", row.biases * batch)
        elif conv == "thop":
            if k != "matmul":  # torch.matmul: no module, no hook
                add("conv/fc MACs", row.macs)
    elif k == "batchnorm":
        if conv == "torchinfo":
            add("batch norm: params × N", (row.weights + row.biases) * batch)
        elif conv == "fvcore":
            add("batch norm: 2/element", out * (2 if _affine(row) else 1))
        elif conv == "ptflops":
            add("batch norm: 2/element", out * (2 if _affine(row) else 1))
        elif conv == "thop":
            add("batch norm: 4/element", out * (4 if _affine(row) else 2))
    elif k in NORMS:
        if conv == "torchinfo":
            add("norm: params × N", (row.weights + row.biases) * batch)
        elif conv == "fvcore":
            add("norm: 5/element", out * (5 if _affine(row) else 4))
        elif conv == "ptflops":
            add("norm: 1-2/element", out * (2 if _affine(row) and k != "layernorm" else 1))
        elif conv == "thop":
            add("norm: 4/element", out * (4 if _affine(row) else 2))
    elif k in POOLS:
        if conv == "ptflops":
            add("pooling: 2/input", 2 * inp)
        elif conv == "fvcore":
            if k in ("global_avgpool", "adaptive_avgpool") and len(spatial(layer.out_shape)) == 2:
                add("global avg pool: 1/input", inp)
        elif conv == "thop":
            if k == "avgpool":
                c = layer.out_shape[-1] * batch
                add("avg pool: adds + divides", c * _avgpool_windows(layer) + out)
            elif k == "global_avgpool":
                add("avg pool: adds + divides", inp + out)
            elif k == "adaptive_avgpool":
                c = layer.out_shape[-1] * batch
                add("avg pool: adds + divides", c * _adaptive_windows(layer) + out)
    elif k == "upsample":
        mode = layer.args.get("mode", "nearest")
        if conv == "fvcore" and len(spatial(layer.out_shape)) == 2:
            add("upsampling", out * (1 if mode == "nearest" else 4 if mode == "bilinear" else 0))
        elif conv == "ptflops":
            add("upsampling: 2/output", 2 * out)
        elif conv == "thop":
            add("upsampling", out * THOP_UPSAMPLE.get(mode, 0))
    elif k == "prelu":
        if conv == "torchinfo":
            add("prelu: params × N", (row.weights + row.biases) * batch)
    elif k in ACTIVATIONS or k in FREE:
        pass  # activations below; the rest no counter counts
    elif row.macs or row.weights or row.biases or row.ops:
        return False
    # ----------------------------------------------------------------- its activation
    if act:
        if conv == "ptflops":
            n = (act in PTF_MODULE) + (act in PTF_FUNCTIONAL)
            add("activations: 1-2/element", n * out)
        elif conv == "thop":
            if act == "prelu":
                add("prelu: 1/element", out)
            elif act == "softmax":  # exp and divide per element, n − 1 adds per vector (over channels)
                add("softmax: 3/element − 1/vector", 3 * out - out // layer.out_shape[-1])
    return True


def count(graph, report, convention: str) -> ConventionCount:
    """``convention``'s count of an analysed network (``report`` = analyze_graph(graph, ...))."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; one of {', '.join(CONVENTIONS)}")
    batch = report.batch
    parts: dict[str, int] = {}
    per_layer: dict[str, int] = {}
    missing: list[str] = []
    for row in report.layers:
        layer = graph[row.name].layer
        before = sum(parts.values())
        if not _parts(convention, layer, row, batch, parts):
            if layer.kind not in missing:
                missing.append(layer.kind)
            if row.macs:
                parts["no rule: cnncalc's MACs"] = parts.get("no rule: cnncalc's MACs", 0) + row.macs
        per_layer[row.name] = sum(parts.values()) - before
    if convention == "ptflops" and batch > 1:  # it traces one sample, whatever the batch
        per_layer = {k: v // batch for k, v in per_layer.items()}
        parts = {k: v // batch for k, v in parts.items()}
    return ConventionCount(convention, per_layer, parts, report.totals["trainable"], UNITS[convention], missing)
