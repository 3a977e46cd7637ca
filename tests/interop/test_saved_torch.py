"""The memory model against PyTorch's own accounting, on the module `cnncalc export --to torch`
writes (cnncalc.interop.torch_memory):

- what autograd keeps for backward (saved_tensors_hooks, distinct storages, parameters and
  buffers left out; on the meta device, so batch 32 at 224 x 224 costs nothing): equal, byte
  for byte, at batch 1 and 32;
- the peak of one training step measured on the CPU by torch.profiler (profile_memory=True:
  every allocation and free of the step, summed in time order), one thread."""
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from cnncalc.analysis.memory import saved_tensors, training_step  # noqa: E402
from cnncalc.interop.onnx_export import unsupported_layers  # noqa: E402
from cnncalc.interop.torch_memory import measured_peak_bytes, measured_saved_bytes  # noqa: E402
from cnncalc.spec.loader import load_spec, zoo_names  # noqa: E402

# the ten the issue names, and three more with other layer families (channel split and
# shuffle, SE gates with hardswish, TF-style asymmetric 'same' padding, LRN)
NETS = ["vgg16", "resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "inception_v3", "unet",
        "convnext_tiny", "shufflenet_v2", "mobilenet_v3_large", "mobilenet_v1", "xception", "googlenet"]


def _check(name, batches):
    g = load_spec(name)
    g.infer()
    for batch in batches:
        ours = saved_tensors(g, batch, 4).total
        theirs = measured_saved_bytes(g, batch)
        assert ours == theirs, (name, batch, ours, theirs, f"{100 * (ours - theirs) / theirs:+.3f}%")


@pytest.mark.parametrize("name", NETS)
def test_saved_equals_torch(name):
    _check(name, (1, 32))


def _exportable():
    out = []
    for name in zoo_names():
        g = load_spec(name)
        if not unsupported_layers(g):
            out.append(name)
    return out


@pytest.mark.slow
def test_saved_equals_torch_on_every_exportable_zoo_spec():
    names = _exportable()
    assert len(names) >= 55
    for name in names:
        if name in NETS:
            continue
        g = load_spec(name)
        g.infer()
        # batch norm in train mode refuses one value per channel (a 1x1 map at batch 1)
        tiny = any(n.kind == "batchnorm" and all(s == 1 for s in n.layer.out_shape[:-1]) for n in g.layers)
        _check(name, (2 if tiny else 1, 32))


@pytest.mark.parametrize("name,batch,optimizer", [("cifar_resnet20", 16, "sgd"), ("cifar_resnet20", 32, "adamw")])
def test_peak_equals_torch_measured_peak(name, batch, optimizer):
    """The walk's peak over parameters, buffers and optimizer state, less the input batch
    (allocated before the measured step), against the profiler's: within 1 %."""
    g = load_spec(name)
    g.infer()
    m = measured_peak_bytes(g, batch, optimizer)
    t = training_step(g, batch, optimizer=optimizer)
    lines = {k: v for k, v, _ in t.lines}
    const = lines["parameters"] + lines["buffers"] + lines["optimizer state"]
    assert abs(m["base"] - const) <= 8 * 19  # (torch adds an int64 num_batches_tracked per BN)
    ours = t.peak - const - batch * 32 * 32 * 3 * 4
    assert abs(ours - m["peak"]) <= 0.01 * m["peak"], (ours, m["peak"], f"{100 * (ours / m['peak'] - 1):+.2f}%")
