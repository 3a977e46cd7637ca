"""Issue 25 item 10: one memory estimate (cnncalc.limits.check_memory) guards every command that
allocates, before anything is allocated: exit 2 with a message naming the limit. An ONNX model
whose weights exceed protobuf's 2 GiB is written with external data, a tensor at a time
(tests/interop/test_onnx_external.py)."""
import numpy as np
import pytest

from cnncalc import limits
from cnncalc.spec.loader import load_spec_text

from conftest import run_module  # noqa: E402

# 10^12 activation elements (and 10^10 parameters' worth of input): analysed in milliseconds
HUGE = "name: huge\ninput: 1000000x1000000x1\nlayers:\n  - {conv: 1, kernel: 1}\n  - {global_avgpool: }\n  - {fc: 10}\n"
# 10^10 parameters (40 GB of float32 weights): what an export has to make
HUGE_PARAMS = "name: huge\ninput: 1x1x100000\nlayers:\n  - {flatten: }\n  - {fc: 100000}\n"
TINY = "name: tiny\ninput: 8x8x1\nlayers:\n  - {conv: 2, kernel: 3, pad: 1}\n  - {flatten: }\n  - {fc: 10}\n"


@pytest.fixture
def huge(tmp_path):
    p = tmp_path / "huge.yaml"
    p.write_text(HUGE)
    return p


def _refused(res, command):
    assert res.returncode == 2, (res.returncode, res.stderr[-800:])
    assert f"{command} of huge" in res.stderr and "GiB" in res.stderr, res.stderr
    assert "runtime_bytes" in res.stderr and "CNNCALC_LIMIT_RUNTIME_BYTES" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("args,command", [
    (["train", "{spec}", "--epochs", "1", "--out", "{tmp}/run"], "train"),
    (["verify", "{spec}"], "verify"),
    (["gradcheck", "{spec}"], "gradcheck"),
    (["erf", "{spec}", "--layer", "conv1"], "erf"),
    (["export", "{spec}", "--to", "onnx", "-o", "{tmp}/h.onnx"], "export"),
    (["export", "{spec}", "--to", "torch", "-o", "{tmp}/h.py"], "export"),
])
def test_every_allocating_command_refuses_before_allocating(huge, tmp_path, args, command):
    if command == "export":
        huge.write_text(HUGE_PARAMS)
    res = run_module(*[a.format(spec=huge, tmp=tmp_path) for a in args],
                     env={"CNNCALC_LIMIT_RUNTIME_BYTES": str(2 ** 30)})  # (a peak over 1 GiB fails the run)
    _refused(res, command)
    assert not (tmp_path / "h.onnx").exists() and not (tmp_path / "h.py").exists()


def test_evaluate_refuses_a_checkpoint_whose_net_would_not_fit(tmp_path):
    from cnncalc.runtime import checkpoint as C

    g = load_spec_text(HUGE.replace("1000000x1000000x1", "8x8x1"), file="huge.yaml")
    g.infer()
    params = {f"{n.name}/{k}": np.zeros(s, np.float32) for n in g.layers for k, (s, _) in n.layer.param_shapes().items()}
    ck = tmp_path / "ck.npz"
    C.save_checkpoint(ck, C.Checkpoint("huge", C.spec_hash(HUGE), 0, params, state={},
                                       metadata={"spec_text": HUGE.replace("1000000x1000000x1", "8x8x1"),
                                                 "spec_file": "huge.yaml", "options": {"input": [100000, 100000, 1]}}))
    res = run_module("evaluate", "--checkpoint", ck, "--batch", "256")
    _refused(res, "evaluate")


def test_estimate_is_the_analyzer_count():
    g = load_spec_text(TINY, file="tiny.yaml")
    g.infer()
    # conv 3x3x1x2 + 2 = 20, fc 128*10 + 10 = 1290 params; input 64, activations conv 128 +
    # fc 10 (flatten is a view of the conv's output: summarize counts it 0)
    assert limits.memory_needed(g, batch=1, command="verify") == 8 * (3 * 1310 + 3 * (64 + 138))
    assert limits.memory_needed(g, batch=2, command="train") == 4 * (4 * 1310 + 3 * 2 * (64 + 138))
    assert limits.memory_needed(g, batch=1, command="export") == 4 * 3 * 1310


def test_the_lean_forward_floor_is_the_parameters_once_and_the_largest_layer():
    """import's check (forward only, one sample): the float32 parameters once, and at the layer
    where it is largest that layer's float64 parameters with its inputs and output — the fc
    (1,290 parameters, reads the conv's 128 values through the flatten view, writes 10) over the
    conv (20 parameters, reads the 64-value input, writes 128)."""
    g = load_spec_text(TINY, file="tiny.yaml")
    g.infer()
    assert limits.lean_forward_bytes(g) == 4 * 1310 + 8 * max(1290 + 128 + 10, 20 + 64 + 128)
    assert limits.lean_forward_bytes(g) < limits.memory_needed(g, batch=1, command="verify")


def test_a_lean_forward_computes_the_same_and_keeps_nothing_for_a_backward():
    pytest.importorskip("numba")
    from cnncalc.runtime.executor import Net, random_input

    spec = ("name: branchy\ninput: 8x8x2\nlayers:\n  - {conv: 4, kernel: 3, pad: 1, activation: relu, name: a}\n"
            "  - {conv: 4, kernel: 3, pad: 1, name: b}\n  - {add: , inputs: [a, b], name: s}\n"
            "  - {global_avgpool: , name: g}\n  - {fc: 3, name: f}\n")
    g = load_spec_text(spec)
    g.infer()
    net = Net(g, dtype="float64")
    x = random_input(g.input_shape, 2, np.random.default_rng(1))
    want = net.forward(x, keep=True)["f"]
    full = dict(net.outputs_seen)
    assert net.caches
    got = net.forward(x, lean=True, keep={"s"})
    assert np.array_equal(got["f"], want) and np.array_equal(net.outputs_seen["s"], full["s"])
    assert set(net.outputs_seen) == {"s"} and not net.caches
    with pytest.raises(ValueError, match="lean"):
        net.forward(x, lean=True, train=True)


def test_a_net_given_its_weights_makes_each_layers_float64_copy_only_while_it_runs():
    """import's check ran a float64 Net whose parameters were all made up front: 2.15 GB of
    float32 weights held 4.3 GB more in float64 (with the other fixes: 8.55 -> 4.35 GB peak for
    `import --weights`). Net(weights=) keeps the weights given and makes a layer's float64
    tensors while that layer runs: the same outputs, to the bit, as the net filled up front;
    a shared conv (shares:) reads its owner's, batch norm its state."""
    pytest.importorskip("numba")
    from cnncalc.runtime.executor import Net, random_input

    spec = ("name: lazy\ninput: 8x8x2\nlayers:\n  - {conv: 4, kernel: 3, pad: 1, activation: relu, name: a}\n"
            "  - {conv: 4, kernel: 3, pad: 1, name: b}\n  - {conv: 4, kernel: 3, pad: 1, shares: b, name: b2}\n"
            "  - {batchnorm: , name: n}\n  - {add: , inputs: [a, n], name: s}\n"
            "  - {global_avgpool: , name: g}\n  - {fc: 3, name: f}\n")
    g = load_spec_text(spec)
    g.infer()
    ref = Net(g, dtype="float32", seed=3)
    for d in ref.state.values():  # (statistics that are not the initial ones)
        for a in d.values():
            a += np.float32(0.25)
    params = {n: {k: a.copy() for k, a in d.items()} for n, d in ref.params.items()}
    state = {n: {k: a.copy() for k, a in d.items()} for n, d in ref.state.items()}
    eager = Net(g, dtype="float64")
    for ours, given in ((eager.params, params), (eager.state, state)):
        for n, d in ours.items():
            for k, a in d.items():
                a[...] = given[n][k]
    lazy = Net(g, dtype="float64", weights=(params, state))
    assert dict(lazy.params) == {}  # nothing made up front
    x = random_input(g.input_shape, 2, np.random.default_rng(1))
    want = eager.forward(x, lean=True)["f"]
    got = lazy.forward(x, lean=True)["f"]
    assert got.dtype == np.float64 and np.array_equal(got, want) and np.abs(want).max() > 0
    assert dict(lazy.params) == {}  # and nothing kept after
    assert all(a.dtype == np.float32 for d in params.values() for a in d.values())  # (theirs untouched)
    with pytest.raises(ValueError, match="lean forwards only"):
        lazy.forward(x)
    del params["f"]["bias"]
    with pytest.raises(ValueError, match="f/bias: no such tensor"):
        Net(g, dtype="float64", weights=(params, state))


def test_an_onnx_export_over_2_gib_is_estimated_at_one_copy_of_the_weights(tmp_path):
    """Over 2 GiB the ONNX export writes each tensor to NAME.onnx.data as it makes the model: the
    weights are held once (the arrays), not three times; the estimate says so, and a spec whose
    three copies would pass the limit but whose one copy fits is exported."""
    g = load_spec_text(TINY, file="tiny.yaml")
    g.infer()
    assert limits.memory_needed(g, batch=1, command="export-external") == 4 * 1310
    big = tmp_path / "big.yaml"  # 2 x 16384^2 + 16384*10 weights = 2.15 GB of float32
    big.write_text("name: big\ninput: 1x1x16384\nlayers:\n  - {flatten: }\n  - {fc: 16384, bias: false}\n"
                   "  - {fc: 16384, bias: false}\n  - {fc: 10, bias: false}\n")
    # 3 GiB: under it for one copy (2.0 GiB), over it for three (6.0 GiB); nothing is written
    # (the data file exists: refused after the estimate, before any weight is made)
    (tmp_path / "big.onnx.data").write_bytes(b"keep")
    res = run_module("export", big, "--to", "onnx", "-o", tmp_path / "big.onnx",
                     env={"CNNCALC_LIMIT_RUNTIME_BYTES": str(3 * 2 ** 30)})
    assert res.returncode == 2 and "big.onnx.data already exists" in res.stderr, res.stderr
    res = run_module("export", big, "--to", "torch", "-o", tmp_path / "big.py",
                     env={"CNNCALC_LIMIT_RUNTIME_BYTES": str(3 * 2 ** 30)})
    assert res.returncode == 2 and "export of big" in res.stderr and "runtime_bytes" in res.stderr, res.stderr
