"""Where a network's time goes on this machine: ``cnncalc bench`` (issue 27, item 6).

:func:`machine_ceilings` measures what one thread of this machine can do: the float32 GEMM
rate of the BLAS the runtime uses (a square product, the best of several) and the memory
bandwidth of a large copy (read + write). :func:`bench` times, on random inputs of the
spec's shape, the whole forward pass (inference: eval mode) and the whole training step
(forward, softmax cross-entropy, backward, SGD with momentum), then every layer's forward
and backward alone (the executor's public ``run_node`` / ``backward_node``, in graph order,
gradients flowing as in training), and sets each layer's measured time against the
analyzer's exact MACs and bytes:

* achieved GFLOP/s = 2 x MACs / time (forward; and forward + backward over the training MACs);
* arithmetic intensity = forward FLOPs / bytes the layer must move at least (its inputs, its
  output and its parameters, once each, in the analyzer's dtype);
* the roofline (Williams, Waterman & Patterson, CACM 2009): what the machine allows at that
  intensity, ``min(GEMM ceiling, intensity x bandwidth)``, whether the layer is memory- or
  compute-bound there, and the share of it the layer reaches.

All times are wall-clock seconds (``time.perf_counter``; ``clock="cpu"``: the process's CPU
time, which a shared machine's waits for a core do not inflate), min and median over ``rounds``.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from cnncalc.graph import INPUT
from cnncalc.shapes import numel


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _best(fn, reps: int, rounds: int, clock) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = clock()
        for _ in range(reps):
            fn()
        best = min(best, (clock() - t) / reps)
    return best


def machine_ceilings(rounds: int = 5, clock: str = "wall") -> dict:
    """{"gemm_gflops", "gemm_shape", "bandwidth_gbs", "copy_bytes"}: float32 ``512x512 @
    512x512`` (BLAS, the thread count in effect: one, as the runtime sets it) and a copy of
    64 MiB (bytes read + written per second)."""
    rng = np.random.default_rng(0)
    n = 512
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)
    now = CLOCKS[clock]
    t = _best(lambda: np.matmul(a, b, out=out), 4, rounds, now)
    size = 64 << 20
    src = np.ones(size // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    tc = _best(lambda: np.copyto(dst, src), 2, rounds, now)
    return {"gemm_gflops": 2 * n ** 3 / t / 1e9, "gemm_shape": f"{n}x{n}x{n} float32",
            "bandwidth_gbs": 2 * size / tc / 1e9, "copy_bytes": size}


def _stats(ts):
    return {"min": min(ts), "median": statistics.median(ts)}


def bench(graph, *, batch: int = 32, rounds: int = 5, conv_algo: str = "auto", seed: int = 0,
          ceilings: dict | None = None, clock: str = "wall") -> dict:
    """Measure ``graph`` (inferred) at ``batch``; see the module docstring. Returns a dict
    (the JSON of ``cnncalc bench``)."""
    import cnncalc
    from cnncalc.runtime import _numba
    from cnncalc.runtime.executor import Net, random_input
    from cnncalc.runtime.optim import SGD

    now = CLOCKS[clock]
    graph.infer()
    report = cnncalc.analyze(graph, batch=batch)
    net = Net(graph, dtype="float32", conv_algo=conv_algo, seed=seed)
    rng = np.random.default_rng(seed)
    x = random_input(graph.input_shape, batch, rng, "float32")
    outs = graph.outputs
    net.forward(x, train=False)  # (also compiles or loads the forward kernels)
    classes = min(net.logits(o).shape[1] for o in outs)
    labels = rng.integers(0, max(1, classes), batch)
    opt = SGD(0.01, momentum=0.9)

    def forward():
        net.forward(x, train=False)

    def train_step():
        net.loss(x, labels, input_grad=False)
        grads = {f"{n}/{k}": a for n, d in net.grads.items() for k, a in d.items()}
        opt.step({f"{n}/{k}": a for n, d in net.params.items() for k, a in d.items() if f"{n}/{k}" in grads},
                 grads)

    forward()  # warm-up: compiles or loads the kernels, sizes the caches
    train_step()
    _numba.compiles_done()
    fwd_t, step_t = [], []
    for _ in range(rounds):
        t = now()
        forward()
        fwd_t.append(now() - t)
        t = now()
        train_step()
        step_t.append(now() - t)

    # every layer alone, in graph order, as training runs it
    names = [n.name for n in graph.layers]
    lf = {n: [] for n in names}
    lb = {n: [] for n in names}
    for _ in range(rounds):
        vals = {INPUT: x}
        caches = {}
        for i, node in enumerate(graph.layers):
            xs = [vals[s] for s in node.inputs]
            t = now()
            y, cache = net.run_node(node.name, xs, train=True, index=i, rng=seed)
            lf[node.name].append(now() - t)
            vals[node.name], caches[node.name] = y, cache
        grads = {o: (rng.standard_normal(vals[o].shape) / batch).astype(np.float32) for o in outs}
        for node in reversed(graph.layers):
            g = grads.pop(node.name, None)
            if g is None:
                lb[node.name].append(0.0)
                continue
            t = now()
            dxs, _ = net.backward_node(node.name, g, caches.pop(node.name))
            lb[node.name].append(now() - t)
            for src, dx in zip(node.inputs, dxs):
                if dx is not None and src != INPUT:
                    grads[src] = dx if src not in grads else grads[src] + dx
        del vals, caches

    ceil = ceilings or machine_ceilings(clock=clock)
    peak, bw = ceil["gemm_gflops"], ceil["bandwidth_gbs"]
    rows_by_name = {r.name: r for r in report.layers}
    act_bytes = {r.name: r.activation_bytes for r in report.layers}
    act_bytes[INPUT] = x.nbytes
    step_median = statistics.median(step_t)
    layers = []
    for node in graph.layers:
        r = rows_by_name[node.name]
        f, b = statistics.median(lf[node.name]), statistics.median(lb[node.name])
        flops = 2 * r.macs
        train_flops = 2 * (r.macs + r.input_grad_macs + r.weight_grad_macs)
        # (a layer that shares another's parameters reads them too: the layer's own shapes, not
        # the report's count, which holds them once at their owner)
        params = sum(numel(sh) for sh, _ in node.layer.param_shapes().values())
        moved = sum(act_bytes.get(s, 0) for s in node.inputs) + r.activation_bytes + 4 * params
        intensity = flops / moved if moved and flops else None
        roof = min(peak, intensity * bw) if intensity else None
        achieved = flops / f / 1e9 if flops and f > 0 else None
        layers.append({
            "name": node.name, "type": r.type, "macs": r.macs, "training_macs": train_flops // 2,
            "forward_ms": f * 1e3, "backward_ms": b * 1e3,
            "share": (f + b) / sum(statistics.median(lf[n]) + statistics.median(lb[n]) for n in names),
            "forward_gflops": achieved,
            "training_gflops": train_flops / (f + b) / 1e9 if train_flops and f + b > 0 else None,
            "bytes": moved, "intensity": intensity, "roofline_gflops": roof,
            "bound": None if roof is None else ("compute" if intensity * bw >= peak else "memory"),
            "of_roofline": achieved / roof if achieved and roof else None})
    total_macs = report.totals["macs"]
    total_train = report.totals["training_macs"]
    fm = statistics.median(fwd_t)
    return {
        "spec": graph.name, "input": list(graph.input_shape), "batch": batch, "rounds": rounds,
        "threads": _numba.get_threads(), "conv_algo": conv_algo, "clock": clock,
        "forward": {"seconds": _stats(fwd_t), "images_per_second": batch / fm,
                    "gflops": 2 * total_macs / fm / 1e9, "macs": total_macs},
        "training_step": {"seconds": _stats(step_t), "images_per_second": batch / step_median,
                          "gflops": 2 * total_train / step_median / 1e9, "macs": total_train},
        "machine": ceil, "ridge_flop_per_byte": peak / bw,
        "layers": layers,
    }
