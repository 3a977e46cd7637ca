"""Tiny ONNX graphs for the rewrite tests (tests/interop/rewrites/test_<family>.py): build one
with onnx.helper, import it, check that the spec computes what onnxruntime computes on random
inputs (cnncalc.interop.check, what `cnncalc import --weights` runs), and return the layer
types it became. ``@covers(name, …)`` names the registered rewrites a test exercises
(test_registry.py fails for a rewrite no test covers)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper as h

from cnncalc.interop.check import check_import
from cnncalc.interop.onnx import import_model
from cnncalc.spec.loader import load_spec_text

F32 = onnx.TensorProto.FLOAT
R = np.random.default_rng(23)


def covers(*names: str):
    """Mark a test as the test of the rewrites ``names`` (read by test_registry.py from the source)."""
    def deco(fn):
        fn.covers = names
        return fn
    return deco


def w(*shape, positive=False) -> np.ndarray:
    a = R.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


def node(op, ins, outs, name="", **attrs):
    return h.make_node(op, ins, outs, name=name or f"/{outs[0]}/{op}", **attrs)


def model(nodes, inits=None, *, x=(1, 3, 6, 6), outputs=("y",), opset=17, producer=""):
    """A model of one float input ``x`` (shape ``x``), the ``nodes``, the initializers ``inits``
    ({name: array}) and the outputs (their shapes left to the importer)."""
    g = h.make_graph(list(nodes), "m", [h.make_tensor_value_info("x", F32, list(x))],
                     [h.make_tensor_value_info(o, F32, None) for o in outputs],
                     [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name=producer)
    m.ir_version = 8
    return m


def lifted(m, **kw) -> list[str]:
    """The spec layer types ``m`` imports to, after checking that the spec computes the same outputs
    as onnxruntime (the check must run: every rewrite's layers have a runtime)."""
    imp = import_model(m, source="m.onnx", **kw)
    g = load_spec_text(imp.text)
    g.infer()
    res = check_import(g, imp)
    assert res.ran and res.ok, res.line() + "\n" + imp.text
    return [n.kind for n in g.layers]


def conv(x="x", out="a", c_in=3, c_out=4, k=3, name="c", **attrs):
    """A Conv node and its initializers (weight and bias named like a module's)."""
    attrs.setdefault("pads", [k // 2] * 4)
    n = h.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [out], name=f"/{name}/Conv", **attrs)
    g = attrs.get("group", 1)
    return n, {f"{name}.weight": w(c_out, c_in // g, k, k), f"{name}.bias": w(c_out)}
