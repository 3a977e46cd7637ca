"""The runtime kernels of the tensor vocabulary: every op's forward and backward against a
PyTorch twin written independently (float64, relative 1e-9), and the same gradients against
centred differences (float64 gradcheck) — each through the executor's own row, so the layout
plumbing (batch first, PyTorch order, constants with a batch axis of 1) is checked too."""
from __future__ import annotations

import numpy as np
import pytest

import cnncalc
from cnncalc.runtime.executor import Net
from cnncalc.runtime.gradcheck import rel_error
from cnncalc.spec.loader import load_spec_text

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = 1e-9


def build(input_shape, layers):
    g = load_spec_text(f"name: one\ninput: {input_shape}\nlayers:\n" + "".join(f"  - {l}\n" for l in layers))
    return g.infer()


def layer_inputs(net, name, rng, positive):
    """Fresh runtime inputs of the layer's input shapes (one forward on a random input finds them)."""
    g = net.graph
    x = rng.standard_normal((2, *_runtime(g.input_shape)))
    net.forward(np.abs(x) + 0.5 if positive else x, keep=True)
    xs = []
    for src in g[name].inputs:
        a = rng.standard_normal(net.outputs_seen[src].shape)
        xs.append(np.abs(a) + 0.5 if positive else a)
    return xs


def _runtime(shape):
    return tuple(shape) if shape.__class__ is not tuple else (shape[-1], *shape[:-1])


def twin(input_shape, layers, torch_fn, *, positive=False, name=None, tol=TOL, mask=False):
    """Run the last layer's row forward and backward; compare with ``torch_fn(xs, params,
    buffers)`` and with centred differences. ``mask``: the buffers are 0/1 masks."""
    g = build(input_shape, layers)
    name = name or g.layers[-1].name
    net = Net(g, dtype="float64")
    rng = np.random.default_rng(5)
    for arr in (*net.params[name].values(), *net.state[name].values()):
        arr[...] = rng.uniform(0.5, 1.5, arr.shape) * (1 if positive else rng.choice([-1, 1], arr.shape))
    if mask:
        for arr in net.state[name].values():
            arr[...] = rng.random(arr.shape) > 0.5
    xs = layer_inputs(net, name, rng, positive)
    y, cache = net.run_node(name, xs, train=True)
    dy = rng.standard_normal(y.shape)
    dxs, dps = net.backward_node(name, dy, cache)
    xt = [torch.tensor(x, requires_grad=True) for x in xs]
    pt = {k: torch.tensor(v, requires_grad=True) for k, v in net.params[name].items()}
    bt = {k: torch.tensor(v) for k, v in net.state[name].items()}
    yt = torch_fn(xt, pt, bt)
    yt.backward(torch.tensor(dy.reshape(yt.shape)))
    close(y.reshape(yt.shape), yt, "y", tol)
    for i, (d, t) in enumerate(zip(dxs, xt)):
        close(d, t.grad, f"dx{i}", tol)
    for k, t in pt.items():
        close(dps[k], t.grad, "d" + k, tol)
    # float64 gradcheck: centred differences of Σ dy ⊙ y
    def f():
        return float(np.sum(dy * net.run_node(name, xs, train=True)[0]))
    for arr, ana in [*zip(xs, dxs), *((net.params[name][k], dps[k]) for k in dps)]:
        flat = arr.reshape(-1)
        idx = rng.choice(flat.size, min(flat.size, 12), replace=False)
        num = []
        for i in idx:
            old = flat[i]
            flat[i] = old + 1e-6
            fp = f()
            flat[i] = old - 1e-6
            fm = f()
            flat[i] = old
            num.append((fp - fm) / 2e-6)
        assert rel_error(np.array(num), ana.reshape(-1)[idx]) < 1e-7
    return g, net


def close(ours, theirs, what, tol=TOL):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, float(np.abs(theirs).max())),
                               err_msg=what)


# ----------------------------------------------------------------------------- matmul
def test_matmul_activation_constant_and_constant_activation():
    twin("7x8 tokens", ["{matmul: , const: {shape: [8, 5]}}"], lambda x, p, b: x[0] @ p["const1"])
    twin("7x8 tokens", ["{matmul: , const: {index: 0, shape: [3, 7]}}"], lambda x, p, b: p["const0"] @ x[0])
    twin("7x8 tokens", ["{matmul: , const: {shape: [2, 8, 5], learned: false}}"],
         lambda x, p, b: x[0][:, None] @ b["const1"])
    twin("8", ["{matmul: , const: {shape: [8, 5]}}"], lambda x, p, b: x[0] @ p["const1"])  # a vector: promoted
    twin("8", ["{matmul: , const: {shape: [8]}}"], lambda x, p, b: x[0] @ p["const1"])  # a dot product


def test_matmul_of_two_constants_is_one_result_repeated_over_the_batch():
    """inputs: [] (EdgeNeXt's projection of its Fourier grid): the product of a learned (5, 6)
    and a buffer (6, 4) for each of the 2 samples; the weight's gradient sums the samples'."""
    g, _ = twin("7x8 tokens", ["{matmul: , inputs: [], const: [{index: 0, shape: [5, 6]}, "
                               "{index: 1, shape: [6, 4], learned: false}]}"],
                lambda x, p, b: (p["const0"] @ b["const1"]).expand(2, 5, 4))
    assert g.layers[-1].layer.macs() == 5 * 4 * 6


def test_binary_of_two_constants_is_one_result_repeated_over_the_batch():
    """inputs: [] on a binary op (Swin V2's logit scale clamped, min(s, log 100), and its qkv bias
    with the k third masked): one sample's result for each of the 2 samples; the learned
    constant's gradient sums the samples' (and a min passes it where s is the smaller)."""
    g, _ = twin("7x8 tokens", ["{binary: min, inputs: [], const: [{index: 0, shape: [3, 1, 1]}, {index: 1, value: 1.0}]}"],
                lambda x, p, b: torch.minimum(p["const0"], torch.tensor(1.0, dtype=torch.float64)).expand(2, 3, 1, 1))
    assert g.layers[-1].inputs == [] and tuple(g.layers[-1].shape) == (3, 1, 1)
    twin("7x8 tokens", ["{binary: mul, inputs: [], const: [{index: 0, shape: [6]}, {index: 1, shape: [6], learned: false}]}"],
         lambda x, p, b: (p["const0"] * b["const1"]).expand(2, 6), mask=True)


def test_matmul_of_two_activations_broadcast_batch():
    layers = ["{gather: 0, axis: 0, name: a}", "{transpose: [1, 0], name: at}", "{matmul: , inputs: [at, input]}"]
    twin("(3, 7, 4)", layers, lambda x, p, b: x[0][:, None] @ x[1])  # (4, 7) @ (3, 7, 4) → (3, 4, 4)
    layers = ["{transpose: [0, 2, 1], name: t}", "{matmul: , inputs: [input, t]}"]
    twin("(2, 5, 3)", layers, lambda x, p, b: x[0] @ x[1])


# ----------------------------------------------------------------------------- elementwise
BIN = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
       "max": torch.maximum, "min": torch.minimum}


@pytest.mark.parametrize("op", list(BIN))
def test_binary_between_activations_with_broadcasting(op):
    layers = ["{reduce: mean, axes: [0], keepdims: false, name: m}", f"{{binary: {op}, inputs: [input, m]}}"]
    twin("(3, 4, 5)", layers, lambda x, p, b: BIN[op](x[0], x[1][:, None]), positive=op == "pow")


@pytest.mark.parametrize("op", list(BIN))
def test_binary_with_constants(op):
    pos = op == "pow"
    twin("5x6x4", [f"{{binary: {op}, const: {{shape: [4, 1, 1]}}}}"], lambda x, p, b: BIN[op](x[0], p["const1"]),
         positive=pos)
    twin("5x6x4", [f"{{binary: {op}, const: {{index: 0, shape: [6], learned: false}}}}"],
         lambda x, p, b: BIN[op](b["const0"], x[0]), positive=pos)
    twin("7x8 tokens", [f"{{binary: {op}, const: 1.5}}"],
         lambda x, p, b: BIN[op](x[0], torch.tensor(1.5, dtype=torch.float64)), positive=pos)
    twin("7x8 tokens", [f"{{binary: {op}, const: {{shape: [3, 1, 8]}}}}"],  # a constant of higher rank
         lambda x, p, b: BIN[op](x[0][:, None], p["const1"]), positive=pos)


UN = {"neg": torch.neg, "abs": torch.abs, "sqrt": torch.sqrt, "exp": torch.exp, "log": torch.log,
      "reciprocal": torch.reciprocal, "erf": torch.erf, "sin": torch.sin, "cos": torch.cos,
      "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "sign": torch.sign}


@pytest.mark.parametrize("op", list(UN))
def test_unary(op):
    twin("(3, 4, 5)", [f"{{unary: {op}}}"], lambda x, p, b: UN[op](x[0]), positive=op in ("sqrt", "log", "reciprocal"))


def test_where_with_a_constant_mask():
    layers = ["{sigmoid: , name: s}",
              "{where: , const: {index: 0, shape: [4, 5], learned: false}, inputs: [input, s]}"]
    twin("(3, 4, 5)", layers, lambda x, p, b: torch.where(b["const0"] != 0, x[0], x[1]), mask=True)
    layers = ["{where: , const: [{index: 0, shape: [5], learned: false}, {index: 2, value: -3.0}]}"]
    twin("(3, 4, 5)", layers, lambda x, p, b: torch.where(b["const0"] != 0, x[0],
                                                          torch.tensor(-3.0, dtype=torch.float64)), mask=True)


# ----------------------------------------------------------------------------- reductions
RED = {"sum": lambda x, d, k: x.sum(d, keepdim=k), "mean": lambda x, d, k: x.mean(d, keepdim=k),
       "max": lambda x, d, k: x.amax(d, keepdim=k), "min": lambda x, d, k: x.amin(d, keepdim=k),
       "prod": lambda x, d, k: _prod(x, d, k), "l1": lambda x, d, k: x.abs().sum(d, keepdim=k),
       "l2": lambda x, d, k: torch.linalg.vector_norm(x, 2, d, keepdim=k),
       "sumsquare": lambda x, d, k: (x * x).sum(d, keepdim=k), "logsumexp": lambda x, d, k: torch.logsumexp(x, d, k)}


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = x.prod(d, keepdim=True)
    return x if keep else x.squeeze(dims)


@pytest.mark.parametrize("op", list(RED))
@pytest.mark.parametrize("axes,keep", [([0], True), ([1, 2], False), ([-1], True)])
def test_reduce(op, axes, keep):
    dims = tuple(a + 1 if a >= 0 else a for a in axes)
    twin("(3, 4, 5)", [f"{{reduce: {op}, axes: {axes}, keepdims: {str(keep).lower()}}}"],
         lambda x, p, b: RED[op](x[0], dims, keep))


@pytest.mark.parametrize("kind,fn", [("softmax", torch.softmax), ("logsoftmax", torch.log_softmax)])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_any_axis(kind, fn, axis):
    twin("5x6x4", [f"{{{kind}: {{axis: {axis}}}}}"], lambda x, p, b: fn(x[0], axis + 1 if axis >= 0 else axis))


def test_layernorm_over_trailing_axes():
    twin("7x8 tokens", ["{layernorm: }"],
         lambda x, p, b: F.layer_norm(x[0], (8,), p["gamma"], p["beta"], 1e-5))
    twin("5x6x4", ["{layernorm: {axis: 1}}"],  # over H and W of each channel: (C, H, W) from axis 1
         lambda x, p, b: F.layer_norm(x[0], (5, 6), p["gamma"], p["beta"], 1e-5))


# ----------------------------------------------------------------------------- moving values
def test_reshape_transpose_flatten():
    twin("5x6x4", ["{reshape: [4, 30]}"], lambda x, p, b: x[0].reshape(2, 4, 30))
    twin("(3, 4, 5)", ["{transpose: [2, 0, 1]}"], lambda x, p, b: x[0].permute(0, 3, 1, 2))
    twin("(3, 4, 5)", ["{flatten: }"], lambda x, p, b: x[0].flatten(1))


def test_gather_by_swins_relative_index():
    """`relative: [3, 2]`: Swin's relative position index on a 3 x 2 key grid, computed here as
    torchvision computes its relative_position_index (meshgrid, offsets shifted by w − 1, the
    first axis times 2·w₂ − 1): 36 rows of the (5·3, 4) input taken."""
    coords = torch.stack(torch.meshgrid(torch.arange(3), torch.arange(2), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel[:, :, 0] += 3 - 1
    rel[:, :, 1] += 2 - 1
    rel[:, :, 0] *= 2 * 2 - 1
    index = rel.sum(-1).flatten()
    g, _ = twin("(15, 4)", ["{gather: , relative: [3, 2], axis: 0}"], lambda x, p, b: x[0][:, index])
    assert tuple(g.layers[-1].shape) == (36, 4)


def test_slice_gather_split():
    twin("(3, 4, 5)", ["{slice: , starts: [4, 1], ends: [-6, 3], axes: [2, 0], steps: [-2, 1]}"],
         lambda x, p, b: x[0][:, 1:3, :, [4, 2, 0]])
    twin("(3, 4, 5)", ["{gather: [[1, 0], [3, 3]], axis: 1}"], lambda x, p, b: x[0][:, :, [[1, 0], [3, 3]]])
    twin("7x8 tokens", ["{gather: -1, axis: 0}"], lambda x, p, b: x[0][:, -1])
    twin("(3, 4, 5)", ["{split: [1, 3, 1], part: 1, axis: 2}"], lambda x, p, b: x[0][:, :, :, 1:4])


def test_expand_tile_concat_stack():
    layers = ["{reduce: mean, axes: [1, 2], name: m}", "{expand: [2, 3, 4, 5]}"]
    twin("(3, 4, 5)", layers, lambda x, p, b: x[0][:, None].expand(-1, 2, 3, 4, 5))
    twin("(3, 4, 5)", ["{tile: [2, 1, 3]}"], lambda x, p, b: x[0].repeat(1, 2, 1, 3))
    layers = ["{sigmoid: , name: s}", "{concat: , inputs: [input, s], axis: 1, const: {index: 1, shape: [3, 2, 5]}}"]
    twin("(3, 4, 5)", layers,
         lambda x, p, b: torch.cat([x[0], p["const1"].expand(2, 3, 2, 5), x[1]], 2))
    layers = ["{sigmoid: , name: s}", "{stack: , inputs: [input, s], axis: -1, const: {shape: [3, 4, 5]}}"]
    twin("(3, 4, 5)", layers,
         lambda x, p, b: torch.stack([x[0], x[1], p["const2"].expand(2, 3, 4, 5)], -1))


@pytest.mark.parametrize("mode,tmode", [("zero", "constant"), ("reflect", "reflect"), ("replicate", "replicate")])
def test_padding_of_any_axis(mode, tmode):
    # torch pads reflect/replicate on the last axes only: the twin pads a permuted tensor
    twin("(3, 4, 5)", [f"{{padding: [[1, 2], [2, 1]], axes: [1, 2], mode: {mode}}}"],
         lambda x, p, b: F.pad(x[0], (2, 1, 1, 2), mode=tmode))
    twin("(3, 4, 5)", [f"{{padding: [[1, 2]], axes: [0], mode: {mode}}}"],  # the first axis
         lambda x, p, b: F.pad(x[0].permute(0, 2, 3, 1).reshape(40, 1, 3), (1, 2), mode=tmode)
         .reshape(2, 4, 5, 6).permute(0, 3, 1, 2))
    if mode == "zero":
        twin("5x6x4", ["{padding: [[1, 2]], axes: [0], mode: constant, value: 0.5}"],
             lambda x, p, b: F.pad(x[0], (0, 0, 0, 0, 1, 2), value=0.5))


def test_1d_image_through_tensor_ops():
    """A 1-D image (LxC, the runtime's N x C x 1 x L) read in PyTorch's (C, L) order."""
    g, net = twin("9x4", ["{transpose: [1, 0], name: t}", "{matmul: , const: {shape: [4, 3]}}",
                          "{transpose: [1, 0], name: layer3}"],
                  lambda x, p, b: x[0].transpose(1, 2), name="layer3")
    assert g["layer3"].shape == (9, 3) and g["t"].shape.kind == "tokens"
    twin("9x4", ["{transpose: [1, 0], name: t}"], lambda x, p, b: x[0][:, :, 0, :].transpose(1, 2))


def test_allocation_of_the_vocabulary_spec_equals_the_analysis():
    """The code that counts is the code that allocates: learned constants are parameters,
    buffers state (the whole spec's gradcheck is tests/runtime/test_executor.py's)."""
    graph = cnncalc.load("tests/runtime/specs/tensor.yaml")
    rep = cnncalc.analyze(graph)
    net = Net(graph)
    assert net.param_count() == rep.totals["params"] and net.state_count() == rep.totals["nontrainable"]
    for node in graph.layers:
        assert net.param_count(node.name) == rep[node.name].params
