"""Test helpers: build small ONNX graphs with onnx.helper, lower them node by node with
cnncalc.interop.onnx_lower (a minimal importer: constants are kept, activations become spec
layers), run the spec on the runtime and the model on onnxruntime."""
from __future__ import annotations

import numpy as np
import yaml

onnx = __import__("pytest").importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnncalc.interop.onnx_lower import Operand, lower  # noqa: E402
from cnncalc.runtime.executor import Net  # noqa: E402
from cnncalc.spec.loader import load_spec_text  # noqa: E402

F32 = TensorProto.FLOAT


def model(nodes, x_shape, out_names, inits=(), opset=17, extra_inputs=()):
    """A model with one float input ``x`` of ``x_shape`` (batch first; the batch symbolic)."""
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", F32, ["N", *x_shape[1:]])],
                          [helper.make_tensor_value_info(o, F32, None) for o in out_names],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def lower_model(m, x_shape, spec_input, learned=(), opset=None, lifted=None):
    """(spec text, params, state, spec names of the outputs): every node lowered in order, but
    those in ``lifted`` ({node name: (spec item, its params)}: what an importer's pattern
    would write, e.g. a Conv)."""
    opset = opset or m.opset_import[0].version
    fixed = onnx.ModelProto()
    fixed.CopyFrom(m)
    d = fixed.graph.input[0].type.tensor_type.shape.dim[0]
    d.Clear()
    d.dim_value = x_shape[0]
    inferred = onnx.shape_inference.infer_shapes(fixed)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        dims = [x.dim_value for x in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = tuple(dims)
    consts = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    env = {"x": Operand(tuple(x_shape), name="input")}
    layers, params, state = [], {}, {}
    for node in m.graph.node:
        if node.name in (lifted or {}):
            item, tensors = lifted[node.name]
            layers.append({**item, "name": node.name, "inputs": [env[node.input[0]].name]})
            params[node.name], state[node.name] = tensors, {}
            env[node.output[0]] = Operand(shapes[node.output[0]], name=node.name)
            continue
        ins = []
        for t in node.input:
            if not t:
                ins.append(None)
            elif t in consts:
                ins.append(Operand(consts[t].shape, consts[t], learned=t in learned))
            else:
                ins.append(env[t])
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if "value" in attrs and hasattr(attrs["value"], "dims"):
            attrs["value"] = numpy_helper.to_array(attrs["value"])
        low = lower(node.op_type, attrs, ins, name=node.name or node.output[0], n_outputs=len(node.output),
                    opset=opset)
        for k, v in low.constants.items():
            consts[node.output[k]] = v
        for it in low.items:
            layers.append(it.as_spec())
            params[it.name] = it.params
            state[it.name] = it.state
        for out, (item, batch) in zip(node.output, low.outputs):
            env[out] = Operand(shapes[out], name=item, batch=batch)
    spec = {"name": "lowered", "input": spec_input, "layers": layers}
    return yaml.safe_dump(spec, sort_keys=False), params, state, [env[o.name].name for o in m.graph.output]


def run_both(m, x, spec_input, learned=(), opset=None, atol=1e-5, lifted=None):
    """Lower ``m``, run the spec (float64, the model's weights) and onnxruntime on the same
    batch ``x`` (onnxruntime one sample at a time: the spec is per sample); returns
    (graph, net, ours, theirs) with the outputs as lists."""
    ort = __import__("pytest").importorskip("onnxruntime")
    text, params, state, outs = lower_model(m, (1, *x.shape[1:]), spec_input, learned, opset, lifted)
    graph = load_spec_text(text)
    graph.infer()
    net = Net(graph, dtype="float64")
    for name, tensors in params.items():
        for k, v in tensors.items():
            net.params[name][k][...] = v
    for name, tensors in state.items():
        for k, v in tensors.items():
            net.state[name][k][...] = v
    xr = x if len(graph.input_shape) != 2 or graph.input_shape.__class__ is not tuple else x[:, :, None, :]
    net.forward(xr.astype(np.float64), keep=True)
    ours = [net.outputs_seen[o] for o in outs]
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = [np.concatenate([sess.run(None, {"x": x[i:i + 1].astype(np.float32)})[k] for i in range(len(x))])
              for k in range(len(outs))]
    for a, b in zip(ours, theirs):
        a = a.reshape(b.shape)
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol * scale)
    net.weights = (params, state)  # (for the tests that export the spec with them)
    return graph, net, ours, theirs
