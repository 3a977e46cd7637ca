"""The imported spec as text (``spec_text``) or as the mapping it reads as (``spec_doc``):
names, ``inputs:`` only where the graph branches, arguments every layer of a type shares
factored into ``defaults``."""
from __future__ import annotations

from cnncalc.interop.onnx.common import Item
from cnncalc.shapes import fmt_shape


def _dump(v) -> str:
    import yaml
    return yaml.safe_dump(v, default_flow_style=True, sort_keys=False, width=10**9).strip().removesuffix("\n...")


def _factor_defaults(items: list[Item]) -> dict:
    by_kind: dict[str, list[Item]] = {}
    for it in items:
        by_kind.setdefault(it.kind, []).append(it)
    defaults = {}
    for kind, its in by_kind.items():
        if len(its) < 2 or kind == "opaque":
            continue
        keys = [k for k in its[0].args if k != kind and all(k in i.args for i in its)]
        shared = {k: its[0].args[k] for k in keys if all(i.args[k] == its[0].args[k] for i in its)}
        if shared:
            defaults[kind] = shared
            for i in its:
                for k in shared:
                    del i.args[k]
    return defaults


def _spec_parts(imp) -> tuple[dict, list[dict]]:
    """The spec's defaults and layer items (factoring the defaults out of the items' args)."""
    items = imp.items
    defaults = _factor_defaults(items)
    layers = []
    prev = "input"
    for it in items:
        d = {}
        for k, v in it.args.items():
            d[k] = v
        d["name"] = it.name
        if it.inputs != [prev]:
            d["inputs"] = it.inputs if len(it.inputs) != 1 else it.inputs[0]  # ([]: constants only)
        layers.append(d)
        prev = it.name
    return defaults, layers


def spec_text(imp, name: str) -> str:
    defaults, layers = _spec_parts(imp)
    from cnncalc.escape import comment_text  # a file name with a line break cannot add YAML keys

    lines = [f"# imported by cnncalc from {comment_text(imp.source)}", f"name: {_dump(name)}",
             f"source: {_dump(imp.source_text)}", f"input: {fmt_shape(imp.input_shape)}"]
    if defaults:
        lines.append("defaults:")
        lines += [f"  {k}: {_dump(v)}" for k, v in defaults.items()]
    lines.append("layers:")
    lines += [f"  - {_dump(d)}" for d in layers]
    return "\n".join(lines) + "\n"


def spec_doc(imp, name: str) -> dict:
    """What the safe YAML loader reads back from ``spec_text``: the same values (plain
    str/int/float/bool/None, lists and dicts: ``_dump`` can write nothing else), without
    writing and parsing the text (the YAML parser reads ~100 KB/s; a 50,000-layer model's
    spec is megabytes, over the spec_bytes limit meant for files people write)."""
    defaults, layers = _spec_parts(imp)
    doc = {"name": name, "source": imp.source_text, "input": fmt_shape(imp.input_shape)}
    if defaults:
        doc["defaults"] = defaults
    doc["layers"] = layers
    return doc

