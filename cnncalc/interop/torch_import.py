"""A user's PyTorch model → spec: build it from ``FILE.py:FACTORY``, export it with
``torch.onnx.export`` (TorchScript exporter, eval mode, no Conv+BN fusion) to an in-memory
ONNX model, and import that (:mod:`cnncalc.interop.onnx_import`). The parameter count of
the spec is checked against ``sum(p.numel() for p in model.parameters())``.
"""
from __future__ import annotations

import importlib.util
import io
import warnings
from pathlib import Path

from cnncalc.interop import InteropError, require
from cnncalc.interop.onnx_export import OPSET


def load_factory(ref: str):
    """``path/to/file.py:make_model`` → the module the factory returns. This executes the file
(and the factory): use files you trust."""
    torch = require("torch")
    path, sep, attr = ref.rpartition(":")
    if not sep or not path or not attr:
        raise InteropError(f"--torch {ref!r}: write FILE.py:FACTORY, e.g. --torch models.py:resnet18")
    p = Path(path)
    if not p.is_file():
        raise InteropError(f"--torch: no such file {path}")
    spec = importlib.util.spec_from_file_location(f"_cnncalc_user_{p.stem}", p)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except (Exception, SystemExit) as e:  # (sys.exit() in the file: an error, not cnncalc's exit)
        raise InteropError(f"{path}: running the file raised {type(e).__name__}: {str(e)[:300]}") from None
    fn = getattr(mod, attr, None)
    if fn is None or not callable(fn):
        raise InteropError(f"{path} has no function {attr!r}",)
    try:
        model = fn()
    except (Exception, SystemExit) as e:
        raise InteropError(f"{path}:{attr}() raised {type(e).__name__}: {str(e)[:300]}") from None
    if not isinstance(model, torch.nn.Module):
        raise InteropError(f"{path}:{attr}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


BUFFERS_KEY = "cnncalc.torch_buffers"  # (the importer reads it: cnncalc/interop/onnx/importer.py)


def torch_to_onnx(model, input_shape):
    """An in-memory ONNX ModelProto of ``model`` for one input of spec shape ``input_shape``; its
    ``metadata_props`` entry ``BUFFERS_KEY`` lists the module's float buffers (newline-separated)."""
    torch = require("torch")
    onnx = require("onnx")
    dims = (input_shape[-1], *input_shape[:-1]) if len(input_shape) > 1 else tuple(input_shape)
    model.eval()
    from cnncalc.interop.onnx_export import EXTERNAL_ABOVE

    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    if size > EXTERNAL_ABOVE:  # one protobuf message cannot hold it: through a file and its external data
        proto = _torch_to_onnx_via_file(torch, onnx, model, dims, input_shape)
    else:
        buf = io.BytesIO()
        _export(torch, model, dims, input_shape, buf)
        proto = onnx.load_from_string(buf.getvalue())
    # which initializers are buffers, not parameters: the importer cannot tell them apart by
    # name (both are named after their module), and counts buffers as non-trainable state
    buffers = sorted(n for n, b in model.named_buffers() if b.is_floating_point())
    entry = proto.metadata_props.add()
    entry.key, entry.value = BUFFERS_KEY, "\n".join(buffers)
    return proto


def _torch_to_onnx_via_file(torch, onnx, model, dims, input_shape):
    """A model over 2 GiB of weights: exported into a private temporary folder with external
    data, read back whole (a ModelProto in memory may pass 2 GiB; only serialising it may not)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cnncalc-torch-onnx-") as tmp:
        path = f"{tmp}/model.onnx"
        _export(torch, model, dims, input_shape, path, external_data=True)
        return onnx.load(path, load_external_data=True)


def _export(torch, model, dims, input_shape, dest, **extra):
    """``torch.onnx.export`` of ``model`` in eval mode for one input of ``dims`` into ``dest``
    (a buffer or a path); a failure is an InteropError naming the input size."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.zeros(1, *dims),), dest, dynamo=False, opset_version=OPSET,
                              input_names=["input"], do_constant_folding=True,
                              training=torch.onnx.TrainingMode.PRESERVE,
                              keep_initializers_as_inputs=False, **extra)
    except Exception as e:
        raise InteropError(f"torch.onnx.export failed for input {'x'.join(map(str, input_shape))}: "
                           f"{type(e).__name__}: {str(e).splitlines()[0][:300]}") from None


def import_torch(ref: str, input_shape, *, opaque: bool = False):
    from cnncalc.interop.onnx_import import import_model

    model = load_factory(ref)
    proto = torch_to_onnx(model, input_shape)
    name = ref.rpartition(":")[2]
    shape = "x".join(map(str, input_shape))
    imp = import_model(proto, source=ref, input_shape=input_shape, opaque=opaque, name=name,
                       opaque_command=f"cnncalc import --torch {ref} --input {shape} --opaque")
    imp.source_count = sum(p.numel() for p in model.parameters())
    imp.reference = model
    return imp
