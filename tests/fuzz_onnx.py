"""Hostile ONNX graphs for the fuzz harness (issue 25): `python -m tests.fuzz --onnx-cases N`.

`onnx_case(seed, folder)` builds a small valid model with onnx.helper (a seeded chain of
Conv / Relu / BatchNormalization / MaxPool / AveragePool / Add and Concat branches /
GlobalAveragePool / Flatten / Reshape / Transpose / Gemm / MatMul), then breaks it with 1–3
mutations (attributes 0, negative, huge or of the wrong length; input dims; initializer dtypes
and sizes; dangling inputs; duplicate or empty node names; names with control characters,
quotes, newlines and `\"\"\"`; unknown op types and domains; opset versions; cycles; huge
Reshape targets; external data that points outside the folder) and writes M.onnx into FOLDER.
The runner (tests/fuzz.py: run_onnx_case) sends it through import / summarize / export.

A file SECRET (holding SECRET_VALUE as float32) sits next to FOLDER: external data may name it,
and no output may carry it.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

SECRET_NAME = "secret.bin"
SECRET_VALUE = 31337.25  # float32-exact: an output holding it read outside the folder

HOSTILE_NAMES = ["", " ", "a\nb", "a\rb", "\x00", "\x1b[2J", '"""', "'''", "x\"y", "a'b", "\\", "a\\nb",
                 "__import__('os').system('id')", "\u202e", "\ud7ff", "名前", "1abc", "-", ".", "..",
                 "../x", "/etc/passwd", "a" * 300, "${x}", "{{x}}", "<script>", "# c", "a:b", "- a",
                 "conv", "input", "output", "x" * 5000, "\t", "\u2028", "=1+1"]
ATTR_VALUES = [0, -1, -7, 2 ** 31, 2 ** 62, 10 ** 9, 1, 3]
OPSETS = [0, 1, 6, 7, 9, 11, 13, 17, 21, 99, 10 ** 6, -1]


def _attr_list(rnd: random.Random, n: int) -> list[int]:
    k = rnd.choice([0, 1, n - 1, n, n + 1, 2 * n, 9])
    return [rnd.choice(ATTR_VALUES) for _ in range(max(0, k))]


def build_model(rnd: random.Random):
    """A small valid model: NCHW float input, a chain with branches, a flat head."""
    from onnx import TensorProto, helper, numpy_helper

    nrnd = np.random.default_rng(rnd.randrange(2 ** 32))
    c, h, w = rnd.choice([1, 3, 4]), rnd.choice([6, 8, 12]), rnd.choice([6, 8, 12])
    nodes, inits = [], []
    cur, shape = "input", [1, c, h, w]
    k = 0

    def name(prefix):
        nonlocal k
        k += 1
        return f"{prefix}{k}"

    def init(arr, prefix):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def conv(x, shp, out_c, kernel=3, stride=1, pad=1, group=1):
        wn = init(nrnd.standard_normal((out_c, shp[1] // group, kernel, kernel)).astype(np.float32) * 0.3, "w")
        ins = [x, wn]
        if rnd.random() < 0.6:
            ins.append(init(np.zeros(out_c, np.float32), "b"))
        y = name("conv")
        nodes.append(helper.make_node("Conv", ins, [y], name=y, kernel_shape=[kernel, kernel],
                                      strides=[stride, stride], pads=[pad] * 4, dilations=[1, 1], group=group))
        oh = (shp[2] + 2 * pad - kernel) // stride + 1
        ow = (shp[3] + 2 * pad - kernel) // stride + 1
        return y, [1, out_c, oh, ow]

    for _ in range(rnd.randint(1, 6)):
        op = rnd.choice(["conv", "conv", "relu", "bn", "pool", "add", "concat", "transpose"])
        if op == "conv":
            cur, shape = conv(cur, shape, rnd.choice([2, 4, 6]), kernel=rnd.choice([1, 3]),
                              stride=rnd.choice([1, 1, 2]) if min(shape[2:]) > 3 else 1)
            if rnd.random() < 0.3:  # a depthwise conv after it
                cur, shape = conv(cur, shape, shape[1], group=shape[1])
        elif op == "relu":
            y = name("relu")
            nodes.append(helper.make_node("Relu", [cur], [y], name=y))
            cur = y
        elif op == "bn":
            ch = shape[1]
            ins = [cur] + [init(v, "bn") for v in (np.ones(ch, np.float32), np.zeros(ch, np.float32),
                                                   np.zeros(ch, np.float32), np.ones(ch, np.float32))]
            y = name("bn")
            nodes.append(helper.make_node("BatchNormalization", ins, [y], name=y, epsilon=1e-5))
            cur = y
        elif op == "pool" and min(shape[2:]) >= 2:
            y = name("pool")
            nodes.append(helper.make_node(rnd.choice(["MaxPool", "AveragePool"]), [cur], [y], name=y,
                                          kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]))
            cur, shape = y, [1, shape[1], shape[2] // 2, shape[3] // 2]
        elif op == "add":
            a, _ = conv(cur, shape, shape[1], kernel=1, pad=0)
            y = name("add")
            nodes.append(helper.make_node("Add", [a, cur], [y], name=y))
            cur = y
        elif op == "concat":
            a, sa = conv(cur, shape, rnd.choice([2, 3]), kernel=1, pad=0)
            b, sb = conv(cur, shape, rnd.choice([2, 3]), kernel=3, pad=1)
            y = name("cat")
            nodes.append(helper.make_node("Concat", [a, b], [y], name=y, axis=1))
            cur, shape = y, [1, sa[1] + sb[1], shape[2], shape[3]]
        elif op == "transpose":  # there and back (NCHW -> NHWC -> NCHW)
            t = name("tr")
            nodes.append(helper.make_node("Transpose", [cur], [t], name=t, perm=[0, 2, 3, 1]))
            y = name("tr")
            nodes.append(helper.make_node("Transpose", [t], [y], name=y, perm=[0, 3, 1, 2]))
            cur = y
    # the head
    if rnd.random() < 0.5:
        y = name("gap")
        nodes.append(helper.make_node("GlobalAveragePool", [cur], [y], name=y))
        cur, shape = y, [1, shape[1], 1, 1]
    flat = shape[1] * shape[2] * shape[3]
    y = name("flat")
    if rnd.random() < 0.5:
        nodes.append(helper.make_node("Flatten", [cur], [y], name=y, axis=1))
    else:
        nodes.append(helper.make_node("Reshape", [cur, init(np.array([1, -1], np.int64), "shape")], [y], name=y))
    cur = y
    classes = rnd.choice([2, 5, 10])
    y = name("fc")
    if rnd.random() < 0.6:
        nodes.append(helper.make_node("Gemm", [cur, init(nrnd.standard_normal((classes, flat)).astype(np.float32) * 0.1, "w"),
                                               init(np.zeros(classes, np.float32), "b")], [y], name=y, transB=1))
    else:
        nodes.append(helper.make_node("MatMul", [cur, init(nrnd.standard_normal((flat, classes)).astype(np.float32) * 0.1, "w")],
                                      [y], name=y))
    cur = y
    if rnd.random() < 0.5:
        y = name("relu")
        nodes.append(helper.make_node("Relu", [cur], [y], name=y))
        cur = y
    graph = helper.make_graph(nodes, "fuzznet",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, h, w])],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, classes])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _rename(model, old: str, new: str):
    g = model.graph
    for n in g.node:
        n.input[:] = [new if x == old else x for x in n.input]
        n.output[:] = [new if x == old else x for x in n.output]
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.name == old:
            vi.name = new
    for t in g.initializer:
        if t.name == old:
            t.name = new


def mutate(model, rnd: random.Random, folder: Path) -> str:
    """One mutation in place; returns what it did (for the report)."""
    from onnx import TensorProto, helper

    g = model.graph
    op = rnd.randrange(13)
    if op in (0, 1):  # an attribute broken
        nodes = [n for n in g.node if n.attribute]
        if nodes:
            n = rnd.choice(nodes)
            a = rnd.choice(list(n.attribute))
            if a.type == a.INTS:
                vals = _attr_list(rnd, len(a.ints))
                del a.ints[:]
                a.ints.extend(vals)
                return f"{n.op_type}.{a.name} = {vals}"
            if a.type == a.INT:
                a.i = rnd.choice(ATTR_VALUES)
                return f"{n.op_type}.{a.name} = {a.i}"
            if a.type == a.FLOAT:
                a.f = rnd.choice([0.0, -1.0, float("nan"), float("inf"), 1e38])
                return f"{n.op_type}.{a.name} = {a.f}"
        n = rnd.choice(list(g.node))
        extra = rnd.choice(["strides", "pads", "dilations", "kernel_shape", "group", "axis", "perm", "bogus"])
        if extra in ("group", "axis"):
            n.attribute.append(helper.make_attribute(extra, rnd.choice(ATTR_VALUES)))
        else:
            n.attribute.append(helper.make_attribute(extra, _attr_list(rnd, 2) or [0]))
        return f"{n.op_type} gets {extra}"
    if op == 2:  # the input's dims
        dims = g.input[0].type.tensor_type.shape.dim
        i = rnd.randrange(len(dims))
        choice = rnd.choice([0, -1, 2 ** 40, 10 ** 12, "N", "", None, "drop", "add"])
        if choice == "drop":
            del dims[i]
        elif choice == "add":
            dims.add().dim_value = rnd.choice([1, 3])
        elif choice is None:
            dims[i].Clear()
        elif isinstance(choice, str):
            dims[i].dim_param = choice
        else:
            dims[i].dim_value = choice
        return f"input dim {i} -> {choice!r}"
    if op == 3:  # an initializer's dtype, size or dims
        t = rnd.choice(list(g.initializer))
        how = rnd.randrange(5)
        if how == 0:
            t.data_type = rnd.choice([TensorProto.STRING, TensorProto.INT64, TensorProto.FLOAT16, TensorProto.DOUBLE,
                                      TensorProto.BOOL, TensorProto.UINT8, TensorProto.COMPLEX64, 0, 999])
        elif how == 1 and t.raw_data:
            t.raw_data = t.raw_data[:rnd.randrange(len(t.raw_data))]
        elif how == 2:
            dims = list(t.dims)
            if dims:
                dims[rnd.randrange(len(dims))] = rnd.choice([0, -1, 2 ** 40, 10 ** 12, 3])
            del t.dims[:]
            t.dims.extend(dims)
        elif how == 3:
            t.data_type = TensorProto.STRING
            t.raw_data = b""
            t.string_data.extend([b"x", b"\xff\xfe"])
        else:
            del t.dims[:]
        return f"initializer {t.name}: dtype {t.data_type}, dims {list(t.dims)}"
    if op == 4:  # a dangling input
        n = rnd.choice(list(g.node))
        i = rnd.randrange(len(n.input))
        n.input[i] = rnd.choice(["nope", "", "input2"])
        return f"{n.name} input {i} dangling"
    if op == 5:  # node names duplicated or empty
        a, b = rnd.choice(list(g.node)), rnd.choice(list(g.node))
        b.name = rnd.choice([a.name, ""])
        return f"node name {b.name!r} twice"
    if op == 6:  # a hostile node name
        n = rnd.choice(list(g.node))
        n.name = rnd.choice(HOSTILE_NAMES) + rnd.choice(["", n.name])
        return f"node name {n.name[:40]!r}"
    if op == 7:  # a hostile tensor name (value, initializer, input or output)
        names = {x for n in g.node for x in list(n.input) + list(n.output) if x}
        old = rnd.choice(sorted(names))
        new = rnd.choice(HOSTILE_NAMES) + rnd.choice(["", old])
        _rename(model, old, new)
        return f"tensor {old} -> {new[:40]!r}"
    if op == 8:  # an unknown op type or domain
        n = rnd.choice(list(g.node))
        if rnd.random() < 0.5:
            n.op_type = rnd.choice(["Bogus", "", "conv", "Conv2d", "Loop", "If", "Scan", "\x1bConv", "Custom\n"])
        else:
            n.domain = rnd.choice(["com.evil", "ai.onnx.ml", "com.microsoft", "\n", "ai.onnx"])
        return f"{n.name}: op {n.op_type!r} domain {n.domain!r}"
    if op == 9:  # opset versions
        if rnd.random() < 0.3:
            model.opset_import.append(helper.make_opsetid(rnd.choice(["com.evil", "", "ai.onnx.ml"]), rnd.choice(OPSETS)))
        else:
            model.opset_import[0].version = rnd.choice(OPSETS)
        if rnd.random() < 0.2:
            model.ir_version = rnd.choice([0, 1, 3, 99])
        return f"opsets {[(o.domain, o.version) for o in model.opset_import]} ir {model.ir_version}"
    if op == 10:  # a cycle
        ns = list(g.node)
        if len(ns) >= 2:
            i = rnd.randrange(len(ns) - 1)
            j = rnd.randrange(i + 1, len(ns))
            ns[i].input[0] = ns[j].output[0]
            return f"cycle {ns[i].name} <- {ns[j].name}"
        ns[0].input[0] = ns[0].output[0]
        return "self loop"
    if op == 11:  # a huge (or wrong) Reshape target
        from onnx import numpy_helper

        target = rnd.choice([[1, 2 ** 62], [1, -1, -1], [0], [], [2 ** 62, 2 ** 62], [1, 0], [-2], [1, 7],
                             [1] * 40, [3, -1]])
        rs = [n for n in g.node if n.op_type == "Reshape"]
        tn = "rshape_t"
        g.initializer.append(numpy_helper.from_array(np.array(target, np.int64), tn))
        if rs:
            rs[0].input[1] = tn
        else:
            nodes = list(g.node)
            idx = rnd.randrange(len(nodes))
            y = nodes[idx].output[0]
            mid = y + "_pre"
            nodes[idx].output[0] = mid
            new = helper.make_node("Reshape", [mid, tn], [y], name="reshape_fuzz")
            nodes = [type(n)().__class__.FromString(n.SerializeToString()) for n in nodes]  # copies: del g.node frees them
            del g.node[:]
            for k, n in enumerate(nodes):
                g.node.append(n)
                if k == idx:
                    g.node.append(new)
        return f"reshape to {target}"
    # op 12: external data pointing outside the folder (or at a device)
    t = max(g.initializer, key=lambda t: len(t.raw_data) if t.raw_data else 0)
    loc = rnd.choice([f"../{SECRET_NAME}", str((folder.parent / SECRET_NAME).resolve()), f"sub/../../{SECRET_NAME}",
                      "/dev/zero", "/dev/urandom", "missing.bin", "", "/etc/passwd", "."])
    n_bytes = len(t.raw_data) if t.raw_data else 4 * int(np.prod(t.dims) if len(t.dims) else 1)
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.ClearField("int64_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", loc), ("offset", "0"), ("length", str(n_bytes))):
        e = t.external_data.add()
        e.key, e.value = key, value
    return f"external data of {t.name} at {loc!r}"


def onnx_case(seed: int, folder: Path) -> tuple[Path, str]:
    """Write a mutated model to FOLDER/M.onnx (and the secret next to FOLDER); (path, what was done)."""
    import onnx

    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    secret = folder.parent / SECRET_NAME
    if not secret.exists():
        secret.write_bytes(np.full(1 << 16, SECRET_VALUE, np.float32).tobytes())
    model = build_model(rnd)
    done = []
    if rnd.random() < 0.9:  # a tenth stay valid: the import must work on them
        for _ in range(rnd.choice([1, 1, 1, 2, 3])):
            try:
                done.append(mutate(model, rnd, folder))
            except (IndexError, ValueError) as e:  # a mutation that does not apply to this graph
                done.append(f"(skipped: {type(e).__name__})")
    path = folder / "M.onnx"
    path.write_bytes(model.SerializeToString())
    del onnx
    return path, "; ".join(done) or "valid"
