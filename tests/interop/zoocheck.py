"""One real model through both import paths (issue 23), shared by tests/interop/test_zoo_import.py
and benchmarks/import_coverage.py so that the test and the published numbers judge alike.

``prepare(model, size)`` gives a model random values for every parameter its initialiser sets
to a constant and batch-norm statistics measured on a random batch (so that a dropped or
mis-wired norm, residual branch or layer scale shows on outputs), and eval mode; ``one_path(model, name, size, "torch"|"onnx")`` imports it
(`import --torch`: the in-memory export cnncalc makes; `onnx`: a file written by a default
`torch.onnx.export`, batch norm folded) and returns a dict with ``status``:

* ``exact``: imported, and every comparison holds: the spec on the runtime with the model's
  weights equals the torch module / onnxruntime on random inputs (cnncalc.interop.check), and on
  the torch path parameters = sum(p.numel()) and conv/linear MACs = a forward-hook count;
* ``refused``: the importer raised InteropError (an honest refusal that lists what it cannot map);
* ``wrong``: it imported but a number or an output differs (``wrong`` names which): the worst bug;
* ``unchecked``: imported, but the check could not run (``check`` says why);
* ``crash``: any other exception (a bug too).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
import warnings


def prepare(model, size: int = 96):
    """Eval mode, with every parameter tensor that its model initialises to one constant made
    random (BN/LN weights of ones and biases of zeros, timm's zero-initialised last BN of a
    residual branch, layer scale 1e-6, GRN's zero γ and β, NFNet's zero skip gain: with those a
    whole residual branch or block adds nothing, or 1e-6 of itself, to the output, so an import
    that got it wrong would still compute the same outputs and the check would be blind to it),
    and batch-norm statistics measured on one random batch of 8 at ``size`` px (not the identity
    statistics of an untrained model, so a folded or mis-wired BN shows; and measured, not drawn
    at random, so that a deep net stays well conditioned: with random statistics
    efficientnetv2_rw_t's float32 and float64 outputs differ by half their size)."""
    import torch

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and p.dtype.is_floating_point and bool((p == p.flatten()[0]).all()):
                if float(p.flatten()[0]) == 0.0:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.5 + torch.rand(p.shape, generator=g))
        bns = [m for m in model.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        if bns:
            saved = [m.momentum for m in bns]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # (a cumulative average: this batch's statistics exactly)
            model.train()
            model(torch.randn(8, 3, size, size, generator=g))
            for m, mo in zip(bns, saved):
                m.momentum = mo
                m.num_batches_tracked.zero_()  # (as an untrained model's: the count is not a weight)
                # a 1x1 map gives each channel 8 values only: one of nearly equal values would
                # divide by almost 0 on another input. The layer's mean variance added keeps each
                # channel's divisor at least that.
                m.running_var.add_(m.running_var.mean())
    return model.eval()


def hook_macs(model, size: int) -> int:
    """Conv and Linear MACs of one forward pass, counted by forward hooks (the second method)."""
    import torch

    macs = []

    def hook(mod, i, o):
        if isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            macs.append(o.numel() * mod.weight[0].numel())
        elif isinstance(mod, torch.nn.Linear):
            macs.append(o.numel() * mod.in_features)
    hs = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for h in hs:
            h.remove()
    return sum(macs)


def dispatch_macs(model, x, *, grad: bool = False) -> int:
    """Multiply-adds of the matrix products and convolutions as they run, counted at the
    dispatcher (aten convolution / mm / addmm / bmm / baddbmm), SDPA forced onto its math path:
    what forward hooks on an unfused implementation see, nn.MultiheadAttention's in-projection
    and matmuls included (with ``grad`` on, so that its fused inference path is not taken)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    products = (aten.mm, aten.addmm, aten.bmm, aten.baddbmm)

    class Count(TorchDispatchMode):
        macs = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            p = func.overloadpacket
            if p in products:
                a = args[1] if p in (aten.addmm, aten.baddbmm) else args[0]
                self.macs += out.numel() * a.shape[-1]
            elif p is aten.convolution:
                self.macs += out.numel() * args[1][0].numel()
            return out

    with torch.set_grad_enabled(grad), sdpa_kernel(SDPBackend.MATH), Count() as c:
        model(x)
    return c.macs


def one_path(model, name: str, size: int, path: str, *, want_params=None, want_macs=None,
             export_no_grad: bool = True) -> dict:
    """One import path (see the module docstring). ``export_no_grad=False`` writes the ONNX file
    with grad enabled: under no_grad torchvision's MultiheadAttention takes its fused fast path,
    aten::_native_multi_head_attention, which torch.onnx.export cannot write."""
    import contextlib

    import torch

    from cnncalc.analysis.report import analyze_graph
    from cnncalc.interop import InteropError
    from cnncalc.interop.check import check_import
    from cnncalc.interop.onnx_import import import_model, read_model
    from cnncalc.interop.torch_import import torch_to_onnx
    from cnncalc.spec.loader import load_spec_text

    t = time.time()
    r: dict = {}
    tmp = None  # the exported ONNX file's folder (up to 2.6 GB for the largest models): removed below
    try:
        if path == "torch":
            proto = torch_to_onnx(model, (size, size, 3))
            imp = import_model(proto, source=name, input_shape=(size, size, 3), name=name)
            imp.reference = model
        else:
            tmp = tempfile.mkdtemp(prefix="zoocheck-")
            f = os.path.join(tmp, name + ".onnx")
            with torch.no_grad() if export_no_grad else contextlib.nullcontext(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (torch.zeros(1, 3, size, size),), f, dynamo=False, opset_version=17)
            imp = import_model(read_model(f), source=f, input_shape=(size, size, 3))
        g = load_spec_text(imp.text)
        g.infer()
        tot = analyze_graph(g).totals
        r["params"], r["macs"] = tot["params"], tot["macs"]
        kinds: dict = {}
        for n in g.layers:
            kinds[n.kind] = kinds.get(n.kind, 0) + 1
        r["kinds"] = kinds
        res = check_import(g, imp)
        r["check"] = res.line()
        wrong = []
        if path == "torch" and want_params is not None and tot["params"] != want_params:
            wrong.append("params")
        if path == "torch" and want_macs is not None and tot["macs"] != want_macs:
            wrong.append("macs")
        if res.ran and not res.ok:
            wrong.append("outputs")
        r["status"] = "wrong" if wrong else ("exact" if res.ran else "unchecked")
        if wrong:
            r["wrong"] = wrong
    except InteropError as e:
        r["status"], r["why"] = "refused", str(e)[:2000]
    except Exception:
        r["status"], r["why"] = "crash", traceback.format_exc()[-2000:]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    r["seconds"] = round(time.time() - t, 1)
    return r


def both_paths(model, name: str, size: int, paths=("torch", "onnx")) -> dict:
    model = prepare(model, size)
    out = {"model": name, "size": size, "params": sum(p.numel() for p in model.parameters()),
           "hook_macs": hook_macs(model, size)}
    for p in paths:
        out[p] = one_path(model, name, size, p, want_params=out["params"], want_macs=out["hook_macs"])
    return out
