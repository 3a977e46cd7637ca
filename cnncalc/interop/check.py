"""An import proves itself: run the imported spec on the numba runtime with the model's own
weights and compare with the model (onnxruntime on the ONNX file, or the PyTorch module).

``check_import(graph, imp)`` → :class:`CheckResult` (``ok``, the max difference, the scale it
is judged against, what the reference was) or a reason the check could not run (no
onnxruntime/torch, an opaque layer, a layer the runtime does not execute). The spec runs in
float64 (lean: forward only, one sample at a time, nothing kept for a backward) and the
reference in float32, on ``batch`` standard-normal inputs; the outputs agree
when ``max |ours − theirs| ≤ RTOL · max(1, max |theirs|)``. A dropped ReLU after a residual add
(issue 23) differs by the size of the outputs themselves; float32 rounding over a ResNet-50
stays below 1e-5 of it.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RTOL = 1e-4


@dataclass
class CheckResult:
    ran: bool
    reference: str = ""  # "onnxruntime" | "the torch module"
    max_diff: float = 0.0
    scale: float = 1.0  # max |reference output| (at least 1)
    why_not: str = ""  # when not ran
    worst: str = ""  # the output that differed most

    @property
    def ok(self) -> bool:
        return not self.ran or self.max_diff <= RTOL * self.scale

    def line(self) -> str:
        if not self.ran:
            return f"check: not run ({self.why_not})"
        verdict = "same network" if self.ok else "DIFFERENT network"
        return (f"check: max |spec - {self.reference}| = {self.max_diff:.3g} on random inputs "
                f"(outputs up to {self.scale:.3g}; tolerance {RTOL:g} x that): {verdict}")


def _flat_outputs(y) -> list:
    if isinstance(y, dict):
        return [t for v in y.values() for t in _flat_outputs(v)]
    if isinstance(y, (list, tuple)):
        return [t for v in y for t in _flat_outputs(v)]
    return [y]


def _reference_outputs(imp, xs: np.ndarray):
    """(name of the reference, [outputs as float64 arrays, batch first]) or (None, why not)."""
    model = imp.reference
    if model is None and imp.reference_file is None:
        return None, "no reference model"
    if imp.reference_file is not None or hasattr(model, "graph"):  # an ONNX model with its weights
        if importlib.util.find_spec("onnxruntime") is None:
            return None, "onnxruntime is not installed"
        import onnxruntime as ort

        try:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            opts.intra_op_num_threads = 1
            # (no packed copies of the weights for faster GEMMs: two samples do not need them,
            # and they were the weights once more in memory)
            opts.add_session_config_entry("session.disable_prepacking", "1")
            from cnncalc.interop import onnx_export

            if imp.reference_file is not None:  # the model read from its file (external data)
                sess = ort.InferenceSession(imp.reference_file, opts, providers=["CPUExecutionProvider"])
            elif onnx_export.tensor_bytes(model) > onnx_export.EXTERNAL_ABOVE and Path(imp.source).is_file():
                # over protobuf's 2 GiB in memory (read with its external data): from its file
                sess = ort.InferenceSession(str(imp.source), opts, providers=["CPUExecutionProvider"])
            else:
                sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            name = sess.get_inputs()[0].name
            runs = [sess.run(None, {name: xs[i:i + 1].astype(np.float32)}) for i in range(len(xs))]
        except Exception as e:  # onnxruntime's own errors: the reference cannot run, not a mismatch
            return None, f"onnxruntime cannot run the model: {str(e).splitlines()[0][:200]}"
        return "onnxruntime", [np.concatenate([r[k] for r in runs]).astype(np.float64) for k in range(len(runs[0]))]
    import torch

    with torch.no_grad():
        model.eval()
        y = model(torch.from_numpy(xs.astype(np.float32)))
    return "the torch module", [t.detach().numpy().astype(np.float64) for t in _flat_outputs(y)]


def check_import(graph, imp, *, batch: int = 2, seed: int = 0) -> CheckResult:
    """Run ``graph`` (the imported spec, inferred) with ``imp``'s weights on the runtime and
    compare with ``imp.reference`` (see the module docstring)."""
    if imp.opaque:
        return CheckResult(False, why_not=f"{len(imp.opaque)} opaque layer(s) have no runtime")
    if importlib.util.find_spec("numba") is None:
        return CheckResult(False, why_not="numba is not installed")
    from cnncalc import limits

    # lean: the imported float32 parameters, one layer's float64 copy at a time, and the values alive at one point of one sample's
    # forward (no backward caches, no activation kept past its last reader, one sample at a
    # time); the per-command profiles (verify keeps three float64 copies of everything for its
    # gradients) would refuse a 300 M-parameter ViT at 224 px for memory a forward never uses
    need, cap = limits.lean_forward_bytes(graph), limits.get("runtime_bytes")
    if need > cap:  # a 10^12-pixel input: the spec is fine to analyse, running it is not
        return CheckResult(False, why_not=f"running it needs at least {need / 2 ** 30:,.1f} GiB, over the "
                                          f"{cap / 2 ** 30:,.0f} GiB runtime_bytes limit")
    from cnncalc.runtime.executor import Net, RuntimeUnsupported, random_input

    # the reference runs first and is gone before the runtime's float64 copy of the weights is
    # made: onnxruntime's session holds the weights again (2.15 GB of fc weights: the import
    # with --weights peaked at 11.7 GB with both alive)
    rng = np.random.default_rng(seed)
    x = random_input(graph.input_shape, batch, rng)
    onnx_x = x.reshape(batch, *imp.onnx_input_dims) if imp.onnx_input_dims else x
    ref, theirs = _reference_outputs(imp, onnx_x)
    if ref is None:
        return CheckResult(False, why_not=theirs)
    try:
        # (the imported float32 weights as they are: each layer's float64 copy is made while
        # that layer runs, so the check holds the weights once, not once more in float64)
        net = Net(graph, dtype="float64", weights=(imp.params, imp.state))
    except RuntimeUnsupported as e:
        return CheckResult(False, why_not=f"the runtime cannot run the spec: {e}")
    names = [layer for _, layer in imp.outputs]
    runs = []
    for i in range(batch):
        out = net.forward(x[i:i + 1], keep=set(names), lean=True)
        runs.append({**net.outputs_seen, **out})
    got = {n: np.concatenate([r[n] for r in runs]) for n in names if all(n in r for r in runs)}
    if len(theirs) != len(names):
        return CheckResult(True, ref, float("inf"), 1.0, worst=f"{len(names)} outputs vs {len(theirs)}")
    worst, diff, scale = "", 0.0, 1.0
    for (oname, layer), b in zip(imp.outputs, theirs):
        a = got[layer]
        if a.size != b.size:
            return CheckResult(True, ref, float("inf"), 1.0, worst=f"{oname}: {a.shape} vs {b.shape}")
        d = float(np.max(np.abs(a.reshape(b.shape) - b))) if b.size else 0.0
        if not np.isfinite(d):
            d = float("inf")
        scale = max(scale, float(np.max(np.abs(b))) if b.size else 0.0)
        if d >= diff:
            worst, diff = oname, d
    return CheckResult(True, ref, diff, scale, worst=worst)
