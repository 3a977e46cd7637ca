"""cnncalc's numbers where Netron shows them: each exported ONNX node's ``doc_string`` (Netron's
node "description") and ``metadata_props`` (its node "metadata"), the model's ``metadata_props``
(its model properties), and the same numbers as a JSON side file keyed by ONNX node name.

The exporter names a layer's main node after the layer (``conv1``) and its helpers and fused
activation ``<layer>/<what>`` (``conv1/relu``, ``fc/flatten``); a node belongs to the layer
whose name is the longest that equals it or prefixes it before a ``/``. The layer's numbers
go on its main node; the others say which layer they belong to.
"""
from __future__ import annotations

from cnncalc.shapes import fmt_int, fmt_shape

PREFIX = "cnncalc"


def _rf_text(v) -> str:
    return "x".join(map(str, v)) if isinstance(v, list) else str(v)


def layer_metrics(report, rf: dict | None = None) -> dict[str, dict]:
    """{layer: its numbers} (batch and dtype of ``report``; ``rf`` = {layer: {"r", "S", "P"}})."""
    out = {}
    for r in report.layers:
        d = {"type": r.type, "description": r.description, "shape": list(r.shape),
             "params": r.params, "weights": r.weights, "biases": r.biases, "nontrainable": r.nontrainable,
             "macs": r.macs, "flops": r.flops, "activations": r.activations,
             "activation_bytes": r.activation_bytes, "ops": dict(r.ops)}
        f = (rf or {}).get(r.name)
        if f is not None:
            d["receptive_field"] = {"r": f.get("r"), "S": f.get("S"), "P": f.get("P")}
        out[r.name] = d
    return out


def owner(node_name: str, layers: set[str]) -> str | None:
    """The layer an exported node belongs to: the longest layer name equal to the node's name or
    a prefix of it before a '/'."""
    name = node_name
    while True:
        if name in layers:
            return name
        if "/" not in name:
            return None
        name = name.rsplit("/", 1)[0]


def doc(name: str, m: dict, report) -> str:
    lines = [f"{PREFIX}: layer {name} ({m['description']})",
             f"output {fmt_shape(tuple(m['shape']))}"]
    if m["params"]:
        lines.append(f"params {fmt_int(m['params'])} (weights {fmt_int(m['weights'])} + biases {fmt_int(m['biases'])})"
                     + (f"; non-trainable {fmt_int(m['nontrainable'])}" if m["nontrainable"] else ""))
    else:
        lines.append("params 0")
    lines.append(f"MACs {fmt_int(m['macs'])}")
    lines.append(f"memory {fmt_int(m['activations'])} elements = {fmt_int(m['activation_bytes'])} B "
                 f"({report.dtype}, batch {report.batch})")
    if m["ops"]:
        lines.append("other ops: " + ", ".join(f"{k} {fmt_int(v)}" for k, v in m["ops"].items()))
    f = m.get("receptive_field")
    if f and f["r"] is not None:
        lines.append(f"receptive field r {_rf_text(f['r'])}, S {_rf_text(f['S'])}, P {_rf_text(f['P'])}")
    return "\n".join(lines)


def _set_props(field, props: dict) -> None:
    """Replace the ``cnncalc.*`` entries of a metadata_props field (ints written with commas)."""
    keep = [(p.key, p.value) for p in field if not p.key.startswith(PREFIX + ".")]
    del field[:]
    for k, v in keep + [(f"{PREFIX}.{k}", f"{v:,}" if isinstance(v, int) else str(v)) for k, v in props.items()]:
        p = field.add()
        p.key, p.value = k, v


def annotate(model, report, rf: dict | None = None) -> dict:
    """Write the numbers into ``model`` (in place) and return the side file's object."""
    per_layer = layer_metrics(report, rf)
    names = set(per_layer)
    nodes: dict[str, dict] = {}
    for node in model.graph.node:
        layer = owner(node.name, names)
        if layer is None:
            continue
        entry = {"layer": layer, "op_type": node.op_type}
        if node.name == layer:  # the layer's main node carries its numbers
            m = per_layer[layer]
            entry.update(m)
            node.doc_string = doc(layer, m, report)
            props = {"layer": layer, "output": fmt_shape(tuple(m["shape"])), "params": m["params"],
                     "macs": m["macs"], "activations": m["activations"], "activation_bytes": m["activation_bytes"]}
            f = m.get("receptive_field")
            if f and f["r"] is not None:
                props["receptive_field"] = f"r {_rf_text(f['r'])}, S {_rf_text(f['S'])}, P {_rf_text(f['P'])}"
            _set_props(node.metadata_props, props)
        else:
            entry["numbers_on"] = layer
            node.doc_string = f"{PREFIX}: part of layer {layer} (its numbers are on node {layer})"
        nodes[node.name] = entry
    t = report.totals
    props = {"params": t["params"], "trainable": t["trainable"], "nontrainable": t["nontrainable"],
             "macs": t["macs"], "flops": t["flops"], "activations": t["activations"], "layers": t["layers"],
             "input": fmt_shape(report.input_shape), "batch": report.batch, "dtype": report.dtype}
    if rf:
        last = report.layers[-1].name if report.layers else None
        f = rf.get(last) if last else None
        if f is not None and f.get("r") is not None:
            props["receptive_field"] = _rf_text(f["r"])
    _set_props(model.metadata_props, props)
    return {"model": report.name, "source": report.source, "input": list(report.input_shape),
            "batch": report.batch, "dtype": report.dtype,
            "convention": "MACs = multiply-accumulates of conv/fc/matmul; params = learned tensors "
                          "(model.parameters()); memory = output elements x batch (see docs/conventions.md)",
            "totals": {k: v for k, v in props.items() if isinstance(v, int)},
            "nodes": nodes}
