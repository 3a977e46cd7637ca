"""Training memory as PyTorch spends it, measured on the module ``cnncalc export --to torch``
writes: the second, independent method the memory model (cnncalc.analysis.memory) is
tested against. Imports torch (an optional extra).

- :func:`measured_saved_bytes`: the tensors autograd keeps for backward during one forward in
  train mode, seen through ``torch.autograd.graph.saved_tensors_hooks``: every packed tensor's
  storage, counted once (several tensors can view one storage), parameters and buffers left
  out. On the ``meta`` device (the default) nothing is computed or allocated, so a batch of 32
  at 224 x 224 costs nothing; the storages' sizes are what the CPU and CUDA kernels allocate.
- :func:`measured_peak_bytes`: the peak of one training step (forward, backward, optimizer
  step) on the CPU, from ``torch.profiler`` with ``profile_memory=True``: every allocation and
  free of the step (the Allocation nodes of the profiler's event tree) in time order, summed; the peak of the running sum over what was already
  allocated when the step began (parameters, and optimizer state from a first step).
"""
from __future__ import annotations

from cnncalc.graph import Graph
from cnncalc.interop.torch_export import torch_source
from cnncalc.shapes import torch_order


def frugal_source(source: str) -> str:
    """The exported source with each local of ``forward`` deleted after its last use, as a
    hand-written forward (``x = layer(x)``) drops its intermediates: the exported forward
    names every layer's output, and a local would keep its tensor alive to the end of the
    forward, which is not what a training step has to spend."""
    import ast

    tree = ast.parse(source)
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef) or cls.name != "Net":
            continue
        fwd = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward")
        local = {a.arg for a in fwd.args.args} - {"self"}
        local |= {t.id for st in fwd.body if isinstance(st, ast.Assign) for t in st.targets
                  if isinstance(t, ast.Name)}
        last: dict[str, int] = {}
        for i, st in enumerate(fwd.body):
            for n in ast.walk(st):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in local:
                    last[n.id] = i
        body = []
        for i, st in enumerate(fwd.body):
            body.append(st)
            dead = sorted(k for k, v in last.items() if v == i)
            if dead and not isinstance(st, ast.Return):
                body.append(ast.Delete(targets=[ast.Name(k, ast.Del()) for k in dead]))
        fwd.body = body
    return ast.unparse(ast.fix_missing_locations(tree))


def torch_module(graph: Graph, device: str = "cpu"):
    """The exported module of ``graph`` (its forward dropping each intermediate after its
    last use), built on ``device``, in train mode."""
    import torch

    ns: dict = {}
    exec(compile(frugal_source(torch_source(graph)), f"<{graph.name} exported>", "exec"), ns)
    with torch.device(device):
        net = ns["Net"]()
    return net.train()


def _input(graph: Graph, batch: int, device: str):
    import torch

    return torch.randn(batch, *torch_order(graph.input_shape), device=device)


def measured_saved_bytes(graph: Graph, batch: int, device: str = "meta", net=None) -> int:
    """Bytes of the distinct storages autograd keeps for backward in one training forward."""
    import torch

    net = torch_module(graph, device) if net is None else net
    own = {t.untyped_storage()._cdata for t in (*net.parameters(), *net.buffers())}
    kept: dict[int, int] = {}
    refs = []  # (keep the packed tensors alive: a freed storage's address could be reused)

    def pack(t):
        st = t.untyped_storage()
        if st._cdata not in own:
            kept.setdefault(st._cdata, st.nbytes())
        refs.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(_input(graph, batch, device))
    del out, refs
    return sum(kept.values())


def measured_peak_bytes(graph: Graph, batch: int, optimizer: str = "sgd", lr: float = 1e-3) -> dict:
    """One training step on the CPU (one thread) under torch.profiler: {'peak': the highest
    sum of bytes allocated during the step over what was allocated before it (the input batch,
    parameters, buffers and optimizer state from a first, unmeasured step), 'base': those
    parameters, buffers and optimizer state, 'steps': how many allocations and frees}."""
    import torch

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (a conv backward keeps a weight-gradient buffer per thread)
    try:
        return _peak(graph, batch, optimizer, lr)
    finally:
        torch.set_num_threads(threads)


def _peak(graph, batch, optimizer, lr):
    import torch
    from torch.profiler import ProfilerActivity, profile

    net = torch_module(graph, "cpu")
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=lr),
           "momentum": lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
           "adam": lambda p: torch.optim.Adam(p, lr=lr),
           "adamw": lambda p: torch.optim.AdamW(p, lr=lr),
           "rmsprop": lambda p: torch.optim.RMSprop(p, lr=lr),
           "adagrad": lambda p: torch.optim.Adagrad(p, lr=lr)}[optimizer]([p for p in net.parameters()
                                                                         if p.requires_grad])
    x = _input(graph, batch, "cpu")

    def step():
        opt.zero_grad(set_to_none=True)
        out = net(x)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # optimizer state exists from now on
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # every allocation and free (an Allocation node of the profiler's event tree, wherever it
    # sits: prof.events() keeps only those outside any op) in time order
    nodes, todo = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while todo:
        e = todo.pop()
        todo.extend(e.children)
        if e.tag.name == "Allocation":
            nodes.append((e.start_time_ns, e.extra_fields.alloc_size))
    events = sorted(nodes)
    run = peak = 0
    for _, size in events:
        run += size
        peak = max(peak, run)
    base = sum(p.numel() * p.element_size() for p in net.parameters())
    base += sum(b.numel() * b.element_size() for b in net.buffers())
    base += sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
                if torch.is_tensor(t))
    return {"peak": peak, "base": base, "steps": len(events)}
