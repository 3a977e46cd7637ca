"""``cnncalc bench SPEC``: how fast the runtime runs a spec here, and where the time goes.

The measuring is :mod:`cnncalc.runtime.bench`; this module parses options and renders."""
from __future__ import annotations

import click

from cnncalc.cli.common import (algo_option, batch_size_option, fail, format_option, input_option, load_graph,
                                require_kernels, rounding_option)
from cnncalc.cli.train import THREADS_HELP
from cnncalc.report.render import Column, TableView, emit_json, render


def _ms(v):
    return "" if v is None else f"{v:,.2f}"


def _g(v):
    return "" if v is None else f"{v:,.1f}"


def _pct(v):
    return "" if v is None else f"{v:.0%}"


@click.command()
@click.argument("spec")
@input_option
@rounding_option
@batch_size_option(32)
@click.option("--rounds", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Timed repetitions of each measurement (min and median are reported).")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N", help=THREADS_HELP)
@algo_option
@click.option("--clock", type=click.Choice(["wall", "cpu"]), default="wall", show_default=True,
              help="wall: elapsed time; cpu: this process's CPU time (on a busy shared machine, waits "
                   "for a core are not counted).")
@format_option()
def bench(spec, input_shape, batch, rounds, threads, conv_algo, clock, fmt):
    """Speed of SPEC on the runtime: forward and training step, then every layer against its
    analytic MACs and the machine's measured ceilings (a roofline).

    Forward (inference, eval mode) and training step (forward, softmax cross-entropy,
    backward, SGD with momentum) are timed whole on random inputs, as images/s and latency
    per batch. Each layer's forward and backward are then timed alone; with the analyzer's
    exact MACs that gives the GFLOP/s each layer achieves, and with the bytes it must move
    (inputs, output, parameters) its arithmetic intensity. The machine's ceilings are
    measured on the spot: a float32 512x512 GEMM (the BLAS the runtime uses, one thread) and
    a 64 MiB copy. A layer whose intensity is below ceiling / bandwidth is memory-bound.

    \b
    Examples:
      cnncalc bench lenet5
      cnncalc bench cifar_resnet20 --batch 128 --rounds 3
      cnncalc bench mobilenet_v2 --input 32x32x3 --format json > bench.json
      cnncalc bench vgg11-bn --input 32x32x3 --clock cpu --format csv
    """
    graph = load_graph(spec, input_shape)
    graph.infer(input_shape)
    require_kernels(graph)
    from cnncalc.runtime import _numba
    from cnncalc.runtime.bench import bench as run

    from cnncalc.cli.runtime import refuse_if_too_big

    refuse_if_too_big(graph, batch, "bench")
    _numba.set_threads(threads)
    try:
        r = run(graph, batch=batch, rounds=rounds, conv_algo=conv_algo, clock=clock)
    except MemoryError:
        fail(f"bench of {graph.name} at batch {batch} ran out of memory; try a smaller --batch or --input")
    if fmt == "json":
        emit_json(r)
        return
    m, f, t = r["machine"], r["forward"], r["training_step"]
    cols = [Column("name", "Layer", "left"), Column("type", "Type", "left", drop=6),
            Column("macs", "MACs", fmt=lambda v: f"{v:,}", drop=5),
            Column("forward_ms", "Fwd ms", fmt=_ms), Column("backward_ms", "Bwd ms", fmt=_ms),
            Column("share", "Share", fmt=_pct, drop=4),
            Column("forward_gflops", "Fwd GFLOP/s", fmt=_g), Column("training_gflops", "Train GFLOP/s", fmt=_g, drop=3),
            Column("intensity", "FLOP/B", fmt=_g, drop=2), Column("roofline_gflops", "Roof GFLOP/s", fmt=_g, drop=2),
            Column("bound", "Bound", "left", drop=1), Column("of_roofline", "Of roof", fmt=_pct, drop=1)]
    rows = [dict(L) for L in r["layers"]]
    if fmt == "csv":
        render(TableView(title="", columns=cols, rows=rows), fmt)
        return
    fs, ts = f["seconds"], t["seconds"]
    sections = [("whole network", [
        ("forward (inference)", f"{f['images_per_second']:,.1f} images/s; {fs['min'] * 1e3:,.1f} ms min, "
                                f"{fs['median'] * 1e3:,.1f} ms median per batch of {r['batch']}; "
                                f"{f['gflops']:,.1f} GFLOP/s of {f['macs']:,} MACs"),
        ("training step", f"{t['images_per_second']:,.1f} images/s; {ts['min'] * 1e3:,.1f} ms min, "
                          f"{ts['median'] * 1e3:,.1f} ms median per batch of {r['batch']}; "
                          f"{t['gflops']:,.1f} GFLOP/s of {t['macs']:,} training MACs"),
        ("GEMM ceiling", f"{m['gemm_gflops']:,.1f} GFLOP/s ({m['gemm_shape']}, BLAS, 1 thread)"),
        ("memory bandwidth", f"{m['bandwidth_gbs']:,.1f} GB/s (copy of {m['copy_bytes'] // 2**20} MiB, read + write)"),
        ("ridge point", f"{r['ridge_flop_per_byte']:,.1f} FLOP/byte: below it a layer is memory-bound"),
    ])]
    notes = [f"{r['threads']} thread(s), conv {r['conv_algo']}, {r['clock']} clock, {r['rounds']} round(s); layer "
             "times are medians of each layer run alone (forward in training mode), so they need not add up "
             "to the whole step",
             "Fwd GFLOP/s = 2 x MACs / forward time; Train GFLOP/s counts the backward MACs too; Roof = "
             "min(GEMM ceiling, FLOP/B x bandwidth); Of roof = Fwd GFLOP/s / Roof"]
    view = TableView(title=f"{r['spec']}: bench at batch {r['batch']}, input "
                           f"{'x'.join(map(str, r['input']))}", columns=cols, rows=rows,
                     sections=sections, notes=notes)
    render(view, fmt)
