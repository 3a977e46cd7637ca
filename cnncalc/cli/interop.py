"""``cnncalc import`` (ONNX / PyTorch → spec) and ``cnncalc export`` (spec → PyTorch / ONNX).
They import onnx / torch only when run (optional extras)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from cnncalc.cli.common import fail, input_option, load_graph, rounding_option


def _write(path: str, data: bytes | str, force: bool, what: str):
    from cnncalc.fsutil import atomic_write_bytes, atomic_write_text

    p = Path(path)
    if p.exists() and not force:
        fail(f"{path} already exists; pass --force to overwrite it")
    if not p.parent.is_dir():
        fail(f"cannot write {what} to {path}: the folder {p.parent} does not exist")
    if isinstance(data, str):
        atomic_write_text(p, data)
    else:
        atomic_write_bytes(p, data)
    click.echo(f"wrote {what} {path}", err=True)


def _write_onnx(path: str, model, force: bool):
    """The model, and its weights as ONNX external data (``PATH.data``) when they pass
    protobuf's 2 GiB; both atomic, neither overwritten without --force."""
    from cnncalc.interop.onnx_export import data_path, save_onnx, tensor_bytes, EXTERNAL_ABOVE

    p = Path(path)
    external = tensor_bytes(model) > EXTERNAL_ABOVE
    for q in (p, data_path(p)) if external else (p,):
        if q.exists() and not force:
            fail(f"{q} already exists; pass --force to overwrite it")
    _onnx_files(p, lambda: (save_onnx(model, p, overwrite=force, external=external), None))


def _write_onnx_streamed(out: Path, graph, params, state, force: bool, *, rf: bool) -> dict:
    """The export of weights over protobuf's 2 GiB: the model and ``OUT.data`` written together,
    the weights going to the data file as the model is made (both atomic, as _write_onnx's)."""
    from cnncalc.interop.onnx_export import export_onnx_files

    return _onnx_files(out, lambda: export_onnx_files(graph, out, params, state, overwrite=force,
                                                      finish=lambda model: _annotate(graph, model, rf=rf))[1:])


def _onnx_files(path: Path, write):
    """``write()`` → (the data file or None, what to return): the ONNX writers' refusals (a
    missing folder, a file that appeared meanwhile, a disk error: exit 2) and their messages."""
    from cnncalc.interop.onnx_export import OPSET

    if not path.parent.is_dir():
        fail(f"cannot write the ONNX model to {path}: the folder {path.parent} does not exist")
    try:
        data, extra = write()
    except FileExistsError as e:  # (appeared meanwhile)
        fail(f"{e}; pass --force to overwrite it")
    except OSError as e:
        fail(f"cannot write the ONNX model to {path}: {e.strerror or e}")
    if data is not None:
        click.echo(f"wrote ONNX external data {data} ({data.stat().st_size / 2 ** 30:,.2f} GiB: the weights pass "
                   f"protobuf's 2 GiB; keep it next to {path.name})", err=True)
    click.echo(f"wrote ONNX model (opset {OPSET}) {path}", err=True)
    return extra


def _read_weights(graph, ckpt_path):
    """{layer: {tensor: array}} of a cnncalc checkpoint, checked against the graph."""
    from cnncalc.runtime import checkpoint as C

    ps = {f"{n.name}/{k}": s for n in graph.layers for k, (s, _) in n.layer.owned_param_shapes().items()}
    ss = {f"{n.name}/{k}": s for n in graph.layers for k, s in n.layer.state_shapes().items()}
    try:
        ck = C.load_checkpoint(ckpt_path, param_shapes=ps, state_shapes=ss)
    except C.CheckpointError as e:
        fail(str(e))
    params, state = {}, {}
    for key, a in ck.params.items():
        layer, t = key.rsplit("/", 1)
        params.setdefault(layer, {})[t] = a
    for key, a in ck.state.items():
        layer, t = key.rsplit("/", 1)
        state.setdefault(layer, {})[t] = a
    for n in graph.layers:
        params.setdefault(n.name, {})
        state.setdefault(n.name, {})
    return params, state


@click.command("import")
@click.argument("model", required=False, metavar="MODEL.onnx")
@click.option("--torch", "torch_ref", metavar="FILE.py:FACTORY",
              help="Build the model with FACTORY() from a Python file (needs --input). This executes "
                   "FILE.py: use files you trust.")
@click.option("-o", "--output", metavar="SPEC.yaml", help="Write the spec here (default: print it).")
@input_option
@click.option("--opaque", is_flag=True,
              help="Keep ops with no cnncalc layer type as opaque layers (parameters kept, MACs unknown).")
@click.option("--weights", metavar="CKPT.npz",
              help="Also write the model's weights as a cnncalc checkpoint (for evaluate / verify).")
@click.option("--no-check", is_flag=True,
              help="Skip running the spec against onnxruntime / the torch module (done with --weights "
                   "or --torch).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--list-rewrites", is_flag=True,
              help="List the patterns the importer lifts into readable layers (by family) and exit.")
def import_(model, torch_ref, output, input_shape, opaque, weights, no_check, force, list_rewrites):
    """Convert an ONNX model (or a PyTorch module) into a readable cnncalc spec.

    With --weights or --torch, the import proves itself: the spec runs on cnncalc's runtime
    with the model's weights on random inputs and is compared with onnxruntime (an ONNX file)
    or the PyTorch module (--torch). It prints the largest difference; a spec that does not
    compute the same network is exit 2 with nothing written (--no-check skips the run).

    --torch FILE.py:FACTORY executes FILE.py (and FACTORY()): use files you trust.

    \b
    Examples:
      cnncalc import net.onnx -o net.yaml
      cnncalc import net.onnx --input 224x224x3 --opaque
      cnncalc import --torch models.py:resnet18 --input 224x224x3 -o resnet18.yaml
      cnncalc import net.onnx -o net.yaml --weights net.npz
      cnncalc import --list-rewrites
    """
    if list_rewrites:
        from cnncalc.interop.onnx.rewrites import listing

        click.echo(listing())
        return
    if bool(model) == bool(torch_ref):
        fail("give either MODEL.onnx or --torch FILE.py:FACTORY")
    for path in (output, weights):
        if path and Path(path).exists() and not force:
            fail(f"{path} already exists; pass --force to overwrite it")
    if torch_ref:
        if input_shape is None:
            fail("--torch needs --input HxWxC (the size to trace the model at), e.g. --input 224x224x3")
        from cnncalc.interop.torch_import import import_torch

        imp = import_torch(torch_ref, input_shape, opaque=opaque)
    else:
        from cnncalc.interop.onnx_import import import_onnx

        imp = import_onnx(model, input_shape=input_shape, opaque=opaque)
    from cnncalc.spec.loader import load_spec_text

    graph = load_spec_text(imp.text, file=output or "<imported spec>")
    graph.infer()
    total = sum(math.prod(sh) for n in graph.layers for sh, _ in n.layer.owned_param_shapes().values())
    ckpt = _checkpoint_tensors(graph, imp) if weights else None  # validated before anything is written
    if (weights or torch_ref) and not no_check:
        from cnncalc.interop.check import check_import

        res = check_import(graph, imp)
        click.echo(res.line(), err=True)
        if not res.ok:
            fail(f"the imported spec does not compute the same network as {imp.source} (largest difference "
                 f"{res.max_diff:.3g} at output {res.worst!r}); nothing was written\n"
                 f"  hint: please report it; --no-check writes the spec anyway")
    if output:
        _write(output, imp.text, force, "spec")
    else:
        sys.stdout.write(imp.text)
    if imp.note:
        click.echo(f"note: {imp.note}", err=True)
    if imp.opaque:
        from cnncalc.escape import term_text

        click.echo(f"warning: {len(imp.opaque)} opaque layer(s) ({term_text(', '.join(imp.opaque[:5]))}"
                   f"{', ...' if len(imp.opaque) > 5 else ''}): their MACs are unknown, so every MAC "
                   f"total is a lower bound", err=True)
    if weights:
        _write_checkpoint(weights, graph, imp, ckpt, force)
    if imp.source_count is not None and imp.source_count != total:
        fail(_count_mismatch(graph, total, imp.source_count), 1)
    elif imp.source_count is not None:
        click.echo(f"parameters: {total:,} = sum(p.numel() for p in model.parameters())", err=True)


def _count_mismatch(graph, total: int, source: int) -> str:
    """Why the spec's parameter count differs from the module's, as far as the spec shows it."""
    import math

    from cnncalc.escape import term_text

    head = (f"the spec has {total:,} parameters but sum(p.numel() for p in model.parameters()) is "
            f"{source:,}")
    if total < source:
        return (f"{head}: {source - total:,} of the module's parameters are not in the spec — parameters the "
                f"forward pass never uses (an unused head or auxiliary branch), or an op mapped unfaithfully")
    # (the suspects: learned constants an elementwise op adds or multiplies — a matmul's are weights)
    consts = sorted(((math.prod(sh), f"{n.name}.{t}") for n in graph.layers if n.kind == "binary"
                     for t, (sh, _) in n.layer.owned_param_shapes().items() if t.startswith("const")),
                    reverse=True)
    listed = ", ".join(f"{term_text(name)} ({k:,})" for k, name in consts[:3])
    return (f"{head}: the spec counts {total - source:,} more — a tensor torch.onnx.export computed from "
            f"parameters (a lookup read at fixed indices, such as a relative-position bias the rewrites "
            f"could not rebuild into its table, or a product of parameters) is a learned constant of its "
            f"own in the spec" + (f"; the largest learned constants added or multiplied: {listed}" if listed else ""))


def _annotate(graph, model, *, rf: bool = True) -> dict:
    """cnncalc's numbers in the model (doc_string per node, metadata_props) and as a dict."""
    from cnncalc.analysis.report import analyze_graph
    from cnncalc.errors import CnnCalcError
    from cnncalc.interop.onnx_metrics import annotate

    report = analyze_graph(graph)
    fields = None
    if rf:
        from cnncalc.analysis.rf import receptive_fields

        try:
            fields = {d["name"]: d for d in receptive_fields(graph).to_dict()["layers"]}
        except CnnCalcError:  # no spatial axes
            fields = None
    return annotate(model, report, fields)


def _checkpoint_tensors(graph, imp):
    """({layer/tensor: array} params, state) of the model's weights, each checked against the
    spec's shapes (exit 2 before anything is written)."""
    import numpy as np

    params, state = {}, {}
    for n in graph.layers:
        for t, (shape, _) in n.layer.owned_param_shapes().items():
            a = imp.params.get(n.name, {}).get(t)
            if a is None or tuple(a.shape) != tuple(shape):
                got = "missing" if a is None else "x".join(map(str, a.shape))
                fail(f"{n.name}/{t}: the model's weights do not fit the spec (the model has {got}, the "
                     f"layer needs {'x'.join(map(str, shape))}); nothing was written")
            params[f"{n.name}/{t}"] = np.asarray(a, np.float32)
        for t, shape in n.layer.state_shapes().items():
            a = imp.state.get(n.name, {}).get(t)
            if a is None or tuple(a.shape) != tuple(shape):
                fail(f"{n.name}/{t}: the model's statistics do not fit the spec; nothing was written")
            state[f"{n.name}/{t}"] = np.asarray(a, np.float32)
    return params, state


def _write_checkpoint(path, graph, imp, tensors, force):
    from cnncalc.runtime import checkpoint as C

    params, state = tensors
    if Path(path).exists() and not force:
        fail(f"{path} already exists; pass --force to overwrite it")
    meta = {"spec_text": imp.text, "spec_file": str(graph.file), "imported_from": imp.source,
            "options": {}}
    C.save_checkpoint(path, C.Checkpoint(graph.name, C.spec_hash(imp.text), 0, params, state=state, metadata=meta))
    click.echo(f"wrote checkpoint {path}", err=True)


@click.command("export")
@click.argument("spec")
@click.option("--to", "target", type=click.Choice(["torch", "onnx"]), required=True)
@click.option("-o", "--output", metavar="PATH", help="Default: print the module (torch) / SPEC-NAME.onnx.")
@click.option("--weights", metavar="CKPT.npz",
              help="A cnncalc checkpoint (e.g. RUN_DIR/best.npz): ONNX initializers, or a .pt next to net.py.")
@input_option
@rounding_option
@click.option("--metrics", "metrics_path", metavar="FILE.json",
              help="ONNX: also write each node's numbers (params, MACs, memory, receptive field) as JSON "
                   "keyed by ONNX node name. The .onnx always carries them (node doc_string, model metadata: "
                   "Netron shows both).")
@click.option("--no-rf", is_flag=True, help="ONNX: leave receptive fields out of the numbers.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def export(spec, target, output, weights, input_shape, metrics_path, no_rf, force):
    """Write SPEC as a standalone PyTorch module or as an ONNX model (opset 17).

    \b
    Examples:
      cnncalc export lenet5 --to torch -o lenet5_net.py
      cnncalc export lenet5 --to torch -o lenet5_net.py --weights runs/lenet5/best.npz
      cnncalc export vgg16 --to onnx -o vgg16.onnx
      cnncalc export lenet5 --to onnx -o lenet5.onnx --weights runs/lenet5/best.npz
      cnncalc export resnet18 --to onnx -o resnet18.onnx --metrics resnet18.metrics.json
    """
    if metrics_path and target != "onnx":
        fail("--metrics annotates an ONNX model: add --to onnx")
    graph = load_graph(spec, input_shape)
    graph.infer(input_shape)
    from cnncalc import limits

    streamed = False
    if target == "onnx":
        from cnncalc.interop.onnx_export import EXTERNAL_ABOVE

        # over 2 GiB the weights go to OUT.data as the model is made: held once, not three times
        streamed = limits.onnx_weight_bytes(graph) > EXTERNAL_ABOVE
    # (before reading or making any weight)
    limits.check_memory(graph, batch=1, command="export-external" if streamed else "export")
    if target == "onnx":
        from cnncalc.interop.onnx_export import data_path

        # (refused before reading or building gigabytes: the weights decide whether a .data is written)
        out = Path(output or f"{Path(graph.file or graph.name).stem}.onnx")
        for q in (out, data_path(out)) if streamed else (out,):
            if q.exists() and not force:
                fail(f"{q} already exists; pass --force to overwrite it")
        if metrics_path and Path(metrics_path).exists() and not force:
            fail(f"{metrics_path} already exists; pass --force to overwrite it")
    params = state = None
    if weights:
        params, state = _read_weights(graph, weights)
    if target == "onnx":
        from cnncalc.interop.onnx_export import export_onnx

        if streamed:  # over 2 GiB: each tensor goes to OUT.data as it is made (its bytes held once)
            side = _write_onnx_streamed(out, graph, params, state, force, rf=not no_rf)
        else:
            model = export_onnx(graph, params, state)
            side = _annotate(graph, model, rf=not no_rf)
            _write_onnx(out, model, force)
        if metrics_path:
            import json

            _write(metrics_path, json.dumps(side, indent=1, ensure_ascii=False) + "\n", force,
                   "per-node numbers")
        return
    from cnncalc.interop.torch_export import torch_source, torch_state_dict

    src = torch_source(graph)
    if output:
        _write(output, src, force, "PyTorch module")
    else:
        sys.stdout.write(src)
    if weights:
        from cnncalc.interop import require

        torch = require("torch")
        pt = str(Path(output).with_suffix(".pt")) if output else f"{Path(graph.file or graph.name).stem}.pt"
        if Path(pt).exists() and not force:
            fail(f"{pt} already exists; pass --force to overwrite it")
        import io

        buf = io.BytesIO()
        torch.save(torch_state_dict(graph, params, state, original_names=True), buf)
        _write(pt, buf.getvalue(), True, "state_dict")
