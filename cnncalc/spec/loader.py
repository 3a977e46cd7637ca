"""Spec loader: safe YAML → validated, expanded layer graph.

A spec reads like the paper's table::

    name: VGG-16
    source: Simonyan & Zisserman 2015, Table 1, configuration D
    input: 224x224x3
    defaults:
      conv: {kernel: 3, stride: 1, pad: 1, activation: relu}
      maxpool: {kernel: 2, stride: 2}
    layers:
      - {conv: 64, repeat: 2, name: conv1}       # conv1_1, conv1_2
      - {maxpool: 2, name: pool1}
      ...

Each item in ``layers`` is a layer (``{TYPE: primary-or-args, other: args}`` or just
``TYPE``), a module instance (``{inception: [64, 96, 128, 16, 32, 32], name: inception_3a}``),
a merge of branches (``{concat: [[...], [...]]}``, ``{add: [[...], []]}``) or a block
(``{layers: [...], repeat: 3, name: stage}``). ``repeat``, ``when``, ``inputs``, ``name`` and
``bn`` work on every item; ``$arg`` / ``${expr}`` substitute module arguments, ``vars`` and
the repeat counters ``n`` (1-based) and ``i`` (0-based).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from cnncalc import limits
from cnncalc._gc import paused_gc
from cnncalc.errors import SpecError, short
from cnncalc.graph import INPUT, Graph, Node
from cnncalc.layers import ALIASES, REGISTRY
from cnncalc.layers.base import suggest, as_rounding
from cnncalc.shapes import parse_shape
from cnncalc.spec.expr import ExprError, names_read, substitute
from cnncalc.spec.yamlsafe import LineDict, load_yaml, read_text_file

TOP_KEYS = {"name", "source", "input", "rounding", "defaults", "modules", "layers", "vars",
            "description", "notes", "variant", "tables"}
ITEM_KEYS = {"name", "repeat", "when", "inputs", "bn", "output"}
MERGES = ("concat", "add", "mul")


def resolve_spec(ref: str | Path) -> Path | tuple[str, str]:
    """A path that exists, or the name of a spec shipped in the package's zoo.

    Returns the Path, or (name, text) for a packaged spec.
    """
    p = Path(ref)
    if p.exists() or p.is_symlink():
        if p.is_dir():
            raise SpecError(f"{short(str(ref))} is a folder, not a spec file", hint="name a .yaml file")
        return p
    name = str(ref)
    if "/" not in name and "\\" not in name:
        stem = name[:-5] if name.endswith(".yaml") else name
        zoo = resources.files("cnncalc") / "zoo"
        cand = zoo / f"{stem}.yaml"
        if cand.is_file():
            return (f"{stem}.yaml", cand.read_text(encoding="utf-8"))
    names = zoo_names()
    hint = suggest(Path(name).stem, names, "zoo spec") if names else None
    raise SpecError(f"no spec file {short(str(ref))} and no zoo spec of that name", hint=hint)


def zoo_names() -> list[str]:
    zoo = resources.files("cnncalc") / "zoo"
    if not zoo.is_dir():
        return []
    return sorted(p.name[:-5] for p in zoo.iterdir() if p.name.endswith(".yaml"))


def load_spec(ref: str | Path, *, input_shape=None) -> Graph:
    """Load a spec from a path or a zoo name into a Graph (shapes not yet inferred).

    An ``.onnx`` file is imported on the fly (needs the ``onnx`` extra; ``input_shape`` fixes
    a model's dynamic input size); a YAML spec never imports it."""
    if str(ref).lower().endswith(".onnx"):
        from cnncalc.interop.onnx_import import load_onnx_graph

        return load_onnx_graph(ref, input_shape=input_shape)
    res = resolve_spec(ref)
    if isinstance(res, tuple):
        return load_spec_text(res[1], file=res[0])
    return load_spec_text(read_text_file(res, "spec"), file=str(res))


def load_spec_text(text: str, file: str | None = "<spec>") -> Graph:
    if len(text) > limits.get("spec_bytes"):
        raise limits.exceeded("spec_bytes", f"the spec has {len(text):,} characters").located(file=file)
    with paused_gc():
        doc = load_yaml(text, file)
        return build_graph(doc, file)


def build_graph(doc, file: str | None = "<spec>") -> Graph:
    """Build a graph from an already-parsed spec mapping (e.g. a spec written inline in an
    answer file); errors point at ``file`` and the mapping's own line numbers."""
    return _Builder(file).build(doc)


# (plain classes, not dataclasses: each dataclass costs a cold start about 1 ms to create)
class _Module:
    __slots__ = ("name", "params", "defaults", "layers", "line", "layer_defaults")

    def __init__(self, name: str, params: list[str], defaults: dict, layers: list, line: int | None,
                 layer_defaults: dict | None = None):
        self.name, self.params, self.defaults, self.layers, self.line = name, params, defaults, layers, line
        self.layer_defaults = {} if layer_defaults is None else layer_defaults


class _Ctx:
    __slots__ = ("prefix", "scope", "counters", "defaults", "trace", "depth")

    def __init__(self, prefix: str, scope: dict, counters: dict, defaults: dict, trace: str = "",
                 depth: int = 0):
        self.prefix, self.scope, self.counters, self.defaults = prefix, scope, counters, defaults
        self.trace, self.depth = trace, depth


class _Builder:
    def __init__(self, file):
        self.file = file
        self.modules: dict[str, _Module] = {}
        self.graph: Graph | None = None
        self.steps = 0  # items expanded so far, including those 'when: false' drops
        self.max_steps = limits.get("expansion_steps")
        self.max_nodes = limits.get("layers")
        self.max_depth = limits.get("module_depth")
        self.calls = 0
        self.max_calls = limits.get("module_calls")
        # module instances expanded once per distinct (module, arguments, defaults, context) and
        # replayed under a new name prefix (cifar_resnet1202 has 600 identical 'basic' blocks)
        self._memo: dict = {}
        self._recording: list[list] = []   # [prefix, safe] of the instances being recorded
        self._keep: list = []
        self._order: list[Node] = []  # the nodes added, in order
        self._items: dict[int, tuple] = {}  # id(item) → (item, names its values read, copies)
        self._last_args: dict = {}  # layer class → the validated args of the last layer made

    # ---------------------------------------------------------------- errors
    def err(self, msg, line=None, layer=None, hint=None):
        return SpecError(msg, file=self.file, line=line, layer=layer, hint=hint)

    # ---------------------------------------------------------------- top level
    def build(self, doc) -> Graph:
        if not isinstance(doc, dict):
            raise self.err("a spec is a mapping with at least 'input' and 'layers'",
                           line=getattr(doc, "line", 1),
                           hint="start with 'input: 224x224x3' and a 'layers:' list")
        for key in doc:
            if key not in TOP_KEYS:
                raise self.err(f"unknown top-level field {short(key)}", line=doc.line_of(key),
                               hint=suggest(key, TOP_KEYS))
        for key in ("input", "layers"):
            if key not in doc:
                raise self.err(f"the spec has no '{key}'", line=1,
                               hint="add 'input: HxWxC' (e.g. 224x224x3)" if key == "input"
                               else "add a 'layers:' list")
        try:
            shape = parse_shape(doc["input"])
        except ValueError as e:
            raise self.err(str(e), line=doc.line_of("input")) from None
        try:
            rounding = as_rounding(doc.get("rounding")) or "exact"
        except SpecError as e:
            raise e.located(file=self.file, line=doc.line_of("rounding"))
        name = doc.get("name")
        if name is not None and not _valid_name(name):
            raise self.err(f"'name' is the network's name, a non-empty text, got {short(name)}",
                           line=doc.line_of("name"), hint="write e.g. 'name: VGG-16'")
        name = name or (Path(self.file).stem if self.file else "network")
        self.graph = Graph(name=str(name), input_shape=shape, source=_text(doc.get("source")),
                           file=self.file, rounding=rounding, description=_text(doc.get("description")))
        scope = doc.get("vars") or {}
        if not isinstance(scope, dict):
            raise self.err("'vars' must be a mapping of names to values", line=doc.line_of("vars"),
                           hint="write e.g. 'vars: {width: 64, blocks: 3}'")
        for k in scope:
            if not isinstance(k, str) or not k.isidentifier():
                raise self.err(f"a name in 'vars' must be a word like width or n_blocks, got {short(k)}",
                               line=scope.line_of(k) if isinstance(scope, LineDict) else doc.line_of("vars"))
        scope = dict(scope)
        defaults = self._read_defaults(doc.get("defaults"), doc.line_of("defaults"))
        self._read_modules(doc.get("modules"), doc.line_of("modules"))
        layers = doc["layers"]
        if not isinstance(layers, list) or not layers:
            raise self.err("'layers' must be a non-empty list", line=doc.line_of("layers"),
                           hint="write each layer as a '- ' item under 'layers:'")
        ctx = _Ctx(prefix="", scope=scope, counters={}, defaults=defaults)
        self._seq(layers, ctx, INPUT)
        return self.graph

    def _read_defaults(self, d, line) -> dict:
        if d is None:
            return {}
        if not isinstance(d, dict):
            raise self.err("'defaults' maps layer types to their default arguments", line=line)
        out = {}
        for kind, args in d.items():
            k = ALIASES.get(kind, kind)
            if k not in REGISTRY:
                raise self.err(f"defaults for unknown layer type {short(kind)}", line=d.line_of(kind),
                               hint=suggest(kind, REGISTRY, "layer type"))
            if not isinstance(args, dict):
                raise self.err(f"defaults for {kind} must be a mapping like {{kernel: 3, pad: 1}}",
                               line=d.line_of(kind))
            allowed = {**REGISTRY[k].common_fields, **REGISTRY[k].fields, "bn": None}
            for a in args:
                if a not in allowed:
                    raise self.err(f"unknown field {short(a)} in the defaults for {kind}",
                                   line=args.line_of(a) if isinstance(args, LineDict) else d.line_of(kind),
                                   hint=suggest(a, allowed))
            out[k] = dict(args)
        return out

    def _read_modules(self, mods, line):
        if mods is None:
            return
        if not isinstance(mods, dict):
            raise self.err("'modules' maps module names to {args, layers}", line=line)
        for mname, body in mods.items():
            mline = mods.line_of(mname)
            if mname in REGISTRY or mname in ALIASES or mname in MERGES or mname in ITEM_KEYS | {"layers"}:
                raise self.err(f"a module cannot be called {short(mname)}: that is a layer type or keyword",
                               line=mline, hint="rename the module")
            if not isinstance(mname, str) or not mname.strip() or len(mname) > 200:
                raise self.err(f"a module name is a word like inception or res_block, got {short(mname)}",
                               line=mline)
            if not isinstance(body, dict) or "layers" not in body:
                raise self.err(f"module {mname!r} needs a 'layers:' list", line=mline)
            for key in body:
                if key not in ("args", "layers", "defaults", "doc", "description"):
                    raise self.err(f"unknown field {short(key)} in module {mname!r}", line=body.line_of(key),
                                   hint=suggest(key, ("args", "layers", "defaults", "doc")))
            args = body.get("args") or []
            if isinstance(args, dict):
                params, pdefaults = list(args), {k: v for k, v in args.items() if v is not None}
            elif isinstance(args, list) and all(isinstance(a, str) for a in args):
                params, pdefaults = list(args), {}
            else:
                params = None
            if params is None or not all(isinstance(a, str) and a.isidentifier() for a in params):
                raise self.err(f"module {mname!r}: 'args' is a list of names or a mapping of names "
                               f"to defaults", line=body.line_of("args"),
                               hint="argument names are words like filters or stride")
            if not isinstance(body["layers"], list) or not body["layers"]:
                raise self.err(f"module {mname!r}: 'layers' must be a non-empty list",
                               line=body.line_of("layers"))
            self.modules[mname] = _Module(mname, params, pdefaults, body["layers"], mline,
                                          self._read_defaults(body.get("defaults"), body.line_of("defaults")))

    # ---------------------------------------------------------------- items
    def _seq(self, items, ctx: _Ctx, prev: str) -> str:
        lines = getattr(items, "item_lines", [None] * len(items))
        for item, line in zip(items, lines):
            prev = self._item(item, ctx, prev, line)
        return prev

    def _item(self, item, ctx: _Ctx, prev: str, line) -> str:
        fresh = isinstance(item, str)  # (made here: not worth remembering)
        if fresh:
            item = LineDict({item: None})
            item.line, item.key_lines = line, {}
        if not isinstance(item, dict):
            raise self.err(f"a layer is written as a mapping like {{conv: 64, kernel: 3}} or a type "
                           f"name like 'relu', not {short(item)}", line=line)
        line = getattr(item, "line", None) or line
        if ctx.depth > self.max_depth:
            raise self.err(f"modules nest more than {self.max_depth} deep (a module that calls itself?)",
                           line=line, hint=limits.LIMITS["module_depth"].how_to_raise())
        if "when" in item and _skipped(item, ctx.scope):
            return prev  # when: false — nothing else of the item is looked at
        kind = self._kind_of(item, line)
        repeat = item.get("repeat", 1)
        try:
            repeat = substitute(repeat, ctx.scope) if isinstance(repeat, str) else repeat
        except ExprError as e:
            raise self.err(str(e), line=line) from None
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
            raise self.err(f"'repeat' must be a whole number ≥ 0 (0: none), got {short(repeat)}", line=line)
        if self.steps + repeat > self.max_steps:  # refused before expanding anything
            raise self.err(f"expanding this item ({repeat:,} times) takes the spec over "
                           f"{self.max_steps:,} expansion steps", line=line,
                           hint=limits.LIMITS["expansion_steps"].how_to_raise())
        self.steps += repeat
        explicit = repeat > 1 or "repeat" in item or "n" not in ctx.scope
        has_when = "when" in item
        name_of = item.get("name")
        numbered = repeat > 1 and "$" not in str(name_of)  # (a fixed name: name_1, name_2, ...)
        loop: dict = {}  # what a module instance computes once for every n it does not read
        # an item that reads neither n nor i has the same copy for every n: made once
        names = None if fresh or repeat < 2 else self._item_info(item)[1]
        invariant = names is not None and "n" not in names and "i" not in names
        it = None
        for n in range(1, repeat + 1):
            scope = {**ctx.scope, "n": n, "i": n - 1} if explicit else ctx.scope
            try:
                when = substitute(item["when"], scope) if has_when else True
                if not isinstance(when, bool):
                    raise self.err(f"'when' must be true or false (or an expression), got {short(when)}",
                                   line=line)
                if not when:
                    continue
                if it is None or not invariant:
                    it = self._item_copy(item, scope, fresh)
                name = substitute(name_of, scope) if name_of is not None else None
            except ExprError as e:
                raise self.err(str(e), line=line) from None
            if name is not None:
                if not _valid_name(name):
                    raise self.err(f"'name' is a layer name (text like conv1), got {short(name)}",
                                   line=line, hint="write e.g. 'name: conv1'")
                name = str(name)
                if numbered:
                    name = f"{name}_{n}"
                if "/" in name:
                    raise self.err(f"a layer name cannot contain '/': {short(name)}", line=line,
                                   hint="'/' separates a module instance from its layers")
            sub = _Ctx(ctx.prefix, scope, ctx.counters, ctx.defaults, ctx.trace, ctx.depth)
            src = self._inputs(it, sub, prev, line)
            prev = self._one(kind, it, sub, src, name, line, loop)
        return prev

    def _item_info(self, item) -> tuple:
        """(item, the names it reads or None, its copies by their values)."""
        info = self._items.get(id(item))
        if info is None:  # (the item is kept in the entry: its id stays its own)
            info = self._items[id(item)] = (item, _item_names(item), {})
        return info

    def _item_copy(self, item, scope, fresh: bool):
        """``_substitute_item(item, scope)``, computed once per item and values of the names it
        reads (a repeated item's copy is the same for every n it does not read): the copy is
        shared, and nothing downstream changes it."""
        if fresh:
            return _substitute_item(item, scope)
        _, names, done = self._item_info(item)
        if names is None:
            return _substitute_item(item, scope)
        key = []
        for nm in names:
            v = scope.get(nm, _UNSET)
            cls = v.__class__
            if cls is not int and cls is not str and cls is not bool and v is not _UNSET:
                return _substitute_item(item, scope)  # (floats: 0.0 == -0.0; lists: unhashable)
            key.append(cls)
            key.append(v)
        key = tuple(key)
        out = done.get(key)
        if out is None:
            out = done[key] = _substitute_item(item, scope)
        return out

    def _kind_of(self, item, line) -> str:
        keys = [k for k in item if k not in ITEM_KEYS]
        types = [k for k in keys if k in REGISTRY or k in ALIASES or k in self.modules or k == "layers"]
        if len(types) > 1:
            raise self.err(f"one item names several layer types: {', '.join(types)}", line=line,
                           hint="put each layer in its own '- ' item")
        if not types:
            first = keys[0] if keys else next(iter(item), "?")
            known = set(REGISTRY) | set(self.modules)
            raise self.err(f"unknown layer type {short(first)}", line=line,
                           hint=suggest(first, known, "layer type"))
        return types[0]

    def _inputs(self, it, ctx, prev, line):
        if "inputs" not in it:
            return [prev]
        srcs = it["inputs"]
        srcs = [srcs] if isinstance(srcs, str) else srcs
        if not isinstance(srcs, list):
            raise self.err("'inputs' is a layer name or a list of layer names "
                           "([] for an op of constants only)", line=line)
        out = []
        for s in srcs:
            if not _valid_name(s):
                raise self.err(f"'inputs' names layers (text like conv1), got {short(s)}", line=line)
            s = str(s)
            for cand in (ctx.prefix + s, s):
                if cand in self.graph.nodes:
                    out.append(cand)
                    if cand is s and ctx.prefix:
                        # a name resolved outside the current prefix: an instance that names
                        # a layer of itself this way would not replay under another prefix
                        for rec in self._recording:
                            if s.startswith(rec[0]):
                                rec[1] = False
                    break
            else:
                raise self.err(f"'inputs' names {short(s)}, which is not a layer defined before this one",
                               line=line, hint=suggest(s, [n for n in self.graph.nodes], "layer"))
        return out

    def _auto_name(self, base: str, ctx: _Ctx) -> str:
        k = ctx.counters.get(base, 0) + 1
        while f"{ctx.prefix}{base}{k}" in self.graph.nodes:
            k += 1
        ctx.counters[base] = k
        return f"{base}{k}"

    def _one(self, kind, it, ctx: _Ctx, src: list[str], name, line, loop: dict | None = None) -> str:
        if kind == "layers" or kind in self.modules:  # a block or a module instance
            out = (self._block(it, ctx, src, name, line) if kind == "layers" else
                   self._module(self.modules[kind], it, ctx, src, name, line, loop))
            return self._bn_after(out, None, ctx, line) if self._bn_of(it, {}, line, name) else out
        kind = ALIASES.get(kind, kind)
        if kind in MERGES:
            return self._merge(kind, it, ctx, src, name, line)
        return self._layer(kind, it, ctx, src, name, line)

    def _bn_of(self, it, args, line, name) -> bool:
        """The item's ``bn`` (over the defaults' ``bn`` in ``args``, which is popped)."""
        bn = args.pop("bn", False)
        bn = it["bn"] if "bn" in it else bn  # the item's own bn overrides the defaults
        if not isinstance(bn, bool):
            raise self.err(f"'bn' must be true or false, got {short(bn)}", line=line, layer=name)
        return bn

    def _bn_after(self, full, activation, ctx, line) -> str:
        """``bn: true``: a batch norm after ``full``, carrying the item's activation (a prelu,
        which has parameters, becomes its own layer after it). Returns the new output."""
        bn_args = dict(ctx.defaults.get("batchnorm", {}))
        bn_prelu = _is_prelu(activation)
        if activation is not None and not bn_prelu:
            bn_args["activation"] = activation
        if _is_prelu(bn_args.get("activation")):
            bn_args.pop("activation")
            bn_prelu = True
        bn_args.pop("bn", None)
        try:
            bn_layer = REGISTRY["batchnorm"](full + "_bn", bn_args)
        except SpecError as e:
            raise e.located(file=self.file, line=line, layer=full + "_bn")
        self._add(Node(full + "_bn", bn_layer, [full], line, ctx.trace))
        full = full + "_bn"
        if bn_prelu:
            self._add(Node(full + "_prelu", REGISTRY["prelu"](full + "_prelu"), [full], line, ctx.trace))
            full = full + "_prelu"
        return full

    def _layer(self, kind, it, ctx, src, name, line) -> str:
        cls = REGISTRY[kind]
        raw_key = next(k for k in it if ALIASES.get(k, k) == kind)
        val = it[raw_key]
        args = dict(ctx.defaults.get(kind, {}))
        if isinstance(val, dict):
            args.update(val)
        elif val is not None:
            if cls.primary is None:
                raise self.err(f"{raw_key} takes no value; write just '{raw_key}'", line=line,
                               layer=name)
            args[cls.primary] = val
        for k, v in it.items():
            if k not in ITEM_KEYS and k != raw_key:
                args[k] = v
        bn = self._bn_of(it, args, line, name)
        local = name or self._auto_name(kind, ctx)
        full = ctx.prefix + local
        activation = args.pop("activation", None) if bn else None
        prelu = _is_prelu(args.get("activation"))
        if prelu:  # a learned activation has parameters: it becomes its own layer
            args.pop("activation")
        for ref in getattr(cls, "ref_fields", ()):  # a layer named for its shape: a second input
            if args.get(ref) is not None:
                src = src + self._inputs({"inputs": args[ref]}, ctx, None, line)
        try:
            layer = cls(full, args)
        except SpecError as e:
            raise e.located(file=self.file, line=line, layer=full)
        # a layer validated to the same args as the last one of its class (a repeated layer, a
        # chain) shares that args object, as replayed module instances do: inference and the
        # analysis passes then take its state and counts from the first (they key on it)
        last = self._last_args.get(cls)
        if last is not None and _same_args(layer.args, last):
            layer.args = last
        else:
            self._last_args[cls] = layer.args
        self._add(Node(full, layer, src, line, ctx.trace, is_output=bool(it.get("output"))))
        if prelu:
            self._add(Node(full + "_prelu", REGISTRY["prelu"](full + "_prelu"), [full], line, ctx.trace))
            full = full + "_prelu"
        if bn:
            full = self._bn_after(full, activation, ctx, line)
        return full

    def _add(self, node):
        if len(self.graph.nodes) >= self.max_nodes:
            raise self.err(f"the spec expands to more than {self.max_nodes:,} layers", line=node.line,
                           hint=limits.LIMITS["layers"].how_to_raise())
        self.graph.add(node)
        self._order.append(node)

    def _merge(self, kind, it, ctx, src, name, line) -> str:
        raw_key = next(k for k in it if ALIASES.get(k, k) == kind)
        branches = it[raw_key]
        # the spec's defaults for this merge kind apply as they do to every other layer
        extra = {**ctx.defaults.get(kind, {}),
                 **{k: v for k, v in it.items() if k not in ITEM_KEYS and k != raw_key}}
        bn = self._bn_of(it, extra, line, name)
        activation = extra.pop("activation", None) if bn else None
        if branches is None and ("inputs" in it or "const" in extra):
            outs = src  # merge of named layers: {add: null, inputs: [a, b]}; or of the previous
            # layer and a constant: {concat: null, axis: 0, const: …} (a class token)
        else:
            if not isinstance(branches, list) or not branches:
                raise self.err(f"{raw_key} takes a list of branches, each a list of layers "
                               f"([] for the identity path)", line=line, layer=name)
            if len(src) != 1:
                raise self.err(f"{raw_key} with branches takes one input", line=line, layer=name)
            outs = []
            blines = getattr(branches, "item_lines", [line] * len(branches))
            for b, bline in zip(branches, blines):
                if b is None or b == "identity" or b == []:
                    outs.append(src[0])
                elif isinstance(b, list):
                    outs.append(self._seq(b, ctx, src[0]))
                else:
                    outs.append(self._item(b, ctx, src[0], bline))
        local = name or self._auto_name(kind, ctx)
        full = ctx.prefix + local
        prelu = _is_prelu(extra.get("activation"))
        if prelu:  # a learned activation has parameters: it becomes its own layer
            extra = {**extra, "activation": None}
        try:
            layer = REGISTRY[kind](full, extra)
        except SpecError as e:
            raise e.located(file=self.file, line=line, layer=full)
        self._add(Node(full, layer, outs, line, ctx.trace, is_output=bool(it.get("output"))))
        if prelu:
            self._add(Node(full + "_prelu", REGISTRY["prelu"](full + "_prelu"), [full], line, ctx.trace))
            full = full + "_prelu"
        if bn:
            full = self._bn_after(full, activation, ctx, line)
        return full

    def _block(self, it, ctx, src, name, line) -> str:
        extra = [k for k in it if k not in ITEM_KEYS and k != "layers"]
        if extra:
            raise self.err(f"unknown field {short(extra[0])} in a block", line=line,
                           hint="a block takes layers, name, repeat, when and inputs")
        body = it["layers"]
        if not isinstance(body, list) or not body:
            raise self.err("a block's 'layers' must be a non-empty list", line=line)
        if len(src) != 1:
            raise self.err("a block takes one input", line=line)
        if name is None:
            return self._seq(body, ctx, src[0])
        sub = _Ctx(ctx.prefix + name + "/", ctx.scope, {}, ctx.defaults, ctx.trace, ctx.depth + 1)
        return self._seq(body, sub, src[0])

    def _module(self, mod: _Module, it, ctx, src, name, line, loop: dict | None = None) -> str:
        # one repeated item: its copy ``it`` is the same object for every n it does not read,
        # and so are the arguments, the scope (the caller's, without n and i) and the key
        done = None if loop is None else loop.get(id(mod))
        if done is not None and done[0] is it:
            self._count_call(src, line)
            scope, trace, key = done[1], done[2], done[3]
        else:
            scope, trace, key = self._instance(mod, it, ctx, src, line)
            if loop is not None:  # (``it`` is kept in the entry: its id stays its own)
                loop[id(mod)] = (it, scope, trace, key)
        local = name or self._auto_name(mod.name, ctx)
        prefix = ctx.prefix + local + "/"
        if key is not None:
            rec = self._memo.get(key)
            if rec is not None:
                out = self._replay(key, prefix, src[0])
                if out is not None:
                    return out
        defaults = {k: {**ctx.defaults.get(k, {}), **v} for k, v in mod.layer_defaults.items()}
        defaults = {**ctx.defaults, **defaults}
        sub = _Ctx(prefix, scope, {}, defaults, trace, ctx.depth + 1)
        n0, steps0, calls0 = len(self._order), self.steps, self.calls
        recording = [prefix, key is not None]
        self._recording.append(recording)
        try:
            out = self._seq(mod.layers, sub, src[0])
        finally:
            self._recording.pop()
        if recording[1] and key not in self._memo:
            self._keep.append(ctx.defaults)
            # kept as a slice of the nodes added; read into a recording when first replayed
            self._memo[key] = _Lazy(prefix, src[0], out, n0, len(self._order),
                                    self.steps - steps0, self.calls - calls0)
        return out

    def _count_call(self, src, line):
        if len(src) != 1:
            raise self.err("a module instance takes one input", line=line)
        self.calls += 1
        if self.calls > self.max_calls:
            raise self.err(f"the spec expands more than {self.max_calls:,} module instances "
                           f"(a module that calls itself?)", line=line,
                           hint=limits.LIMITS["module_calls"].how_to_raise())

    def _instance(self, mod: _Module, it, ctx, src, line):
        """A module instance's checked arguments: its scope, trace and replay key."""
        val = it[mod.name]
        extra = [k for k in it if k not in ITEM_KEYS and k != mod.name]
        if extra:
            raise self.err(f"unknown field {short(extra[0])} for module {mod.name!r}", line=line,
                           hint=f"module arguments go in {{{mod.name}: [...]}} or {{{mod.name}: {{arg: value}}}}; "
                                f"its arguments are {', '.join(mod.params) or 'none'}")
        self._count_call(src, line)
        args = dict(mod.defaults)
        if isinstance(val, list):
            if len(val) > len(mod.params):
                raise self.err(f"module {mod.name!r} takes {len(mod.params)} arguments "
                               f"({', '.join(mod.params)}), got {len(val)}", line=line)
            args.update(zip(mod.params, val))
        elif isinstance(val, dict):
            for k in val:
                if k not in mod.params:
                    raise self.err(f"module {mod.name!r} has no argument {short(k)}", line=line,
                                   hint=suggest(k, mod.params, "argument"))
            args.update(val)
        elif val is not None:
            if not mod.params:
                raise self.err(f"module {mod.name!r} takes no arguments", line=line)
            args[mod.params[0]] = val
        missing = [p for p in mod.params if p not in args]
        if missing:
            raise self.err(f"module {mod.name!r} needs {', '.join(repr(m) for m in missing)}", line=line,
                           hint=f"write {{{mod.name}: [{', '.join(mod.params)}]}}")
        scope = {k: v for k, v in ctx.scope.items() if k not in ("n", "i")}
        scope.update(args)
        trace = f"in module '{mod.name}' used at line {line}" + (f", {ctx.trace}" if ctx.trace else "")
        # the instance's nodes follow from the module, its scope, the caller's defaults (never
        # changed once built; kept alive below, so their id stays theirs), trace and depth
        frozen = _freeze_scope(scope)
        key = None if frozen is None else (id(mod), id(ctx.defaults), frozen, trace, ctx.depth)
        return scope, trace, key

    def _record(self, lazy: "_Lazy"):
        """The nodes an instance added, with names relative to its prefix (None if one of them
        cannot be renamed that way): per node its local name, layer class, the layer's
        attributes as a fresh copy starts them, inputs, line, trace and output mark."""
        prefix, src = lazy.prefix, lazy.src

        def rel(name):
            if name == src:
                return (0, None)
            if name.startswith(prefix):
                return (1, name[len(prefix):])
            return (2, name)

        items = []
        for node in self._order[lazy.start:lazy.stop]:
            if not node.name.startswith(prefix):
                return None
            layer = node.layer
            state = dict(layer.__dict__)
            state["out_shape"] = ()
            items.append((node.name[len(prefix):], type(layer), state, [rel(i) for i in node.inputs],
                          node.line, node.trace, node.is_output))
        return items, rel(lazy.out), lazy.steps, lazy.calls

    def _replay(self, key, prefix: str, src: str) -> str | None:
        """Add a recorded instance's nodes under ``prefix``: fresh, not yet inferred layer
        copies sharing the validated ``args`` (never changed after construction). None (expand
        it for real, which reports the error) when a limit would be crossed."""
        rec = self._memo[key]
        if rec.__class__ is _Lazy:
            rec = self._memo[key] = self._record(rec)
        if rec is None:
            return None
        items, out, steps, calls = rec
        if (self.steps + steps > self.max_steps or self.calls + calls > self.max_calls
                or len(self.graph.nodes) + len(items) > self.max_nodes):
            return None
        self.steps += steps
        self.calls += calls
        nodes, order, new = self.graph.nodes, self._order, object.__new__
        fulls = {}  # local name → the full name made for it (its readers share the string)
        for local, cls, state, inputs, line, trace, is_output in items:
            full = fulls[local] = prefix + local
            layer = new(cls)
            d = layer.__dict__
            d.update(state)
            d["name"] = full
            d["in_shapes"] = []
            d["_notes"] = []
            if len(inputs) == 1:
                k, v = inputs[0]
                ins = [src if k == 0 else ((fulls.get(v) or prefix + v) if k == 1 else v)]
            else:
                ins = [src if k == 0 else ((fulls.get(v) or prefix + v) if k == 1 else v) for k, v in inputs]
            node = Node(full, layer, ins, line, trace, is_output)
            if full in nodes:  # a name used twice: the error an expansion reports
                self._add(node)
            nodes[full] = node  # (its inputs are the source and nodes added before it)
            order.append(node)
        self.graph.inferred = False
        k, v = out
        return src if k == 0 else (prefix + v if k == 1 else v)


_UNSET = object()


def _same_args(a: dict, b: dict) -> bool:
    """Equal validated args, value types included (True == 1, but not as a layer argument)."""
    if a is b:
        return True
    if a.__class__ is not dict or b.__class__ is not dict or a.keys() != b.keys():
        return False
    for k, v in a.items():
        w = b[k]
        if v.__class__ is not w.__class__ or v != w:
            return False
        if v.__class__ in (list, tuple, dict) and repr(v) != repr(w):
            return False
    return True


class _Lazy:
    """A module instance's nodes, ``_order[start:stop]``, not yet read into a recording."""
    __slots__ = ("prefix", "src", "out", "start", "stop", "steps", "calls")

    def __init__(self, prefix: str, src: str, out: str, start: int, stop: int, steps: int, calls: int):
        self.prefix, self.src, self.out, self.start, self.stop = prefix, src, out, start, stop
        self.steps, self.calls = steps, calls


def _freeze(v):
    """A hashable stand-in for a YAML value (None when it has none)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return (type(v), v)
    if isinstance(v, (list, tuple)):
        parts = tuple(_freeze(x) for x in v)
        return None if None in parts else ("list", parts)
    if isinstance(v, dict):
        parts = tuple((_freeze(k), _freeze(x)) for k, x in v.items())
        return None if any(a is None or b is None for a, b in parts) else ("dict", parts)
    return None


def _freeze_scope(scope: dict):
    """``_freeze(scope)`` for a scope of names (a different, equally faithful stand-in):
    plain values as they are, anything else through ``_freeze``."""
    parts = []
    for k, v in scope.items():
        c = v.__class__
        if k.__class__ is not str:
            return _freeze(scope)
        if c is int or c is str or c is bool or v is None:
            parts.append((k, c, v))
        else:
            f = _freeze(v)
            if f is None:
                return None
            parts.append((k, f))
    return tuple(parts)


def _skipped(item, scope) -> bool:
    """True when the item's ``when`` is false before anything else of it is read. A ``when``
    that uses the item's own repeat counter (n, i) is decided per repetition instead."""
    own = {k: v for k, v in scope.items() if k not in ("n", "i")} if "repeat" in item else (
        scope if "n" in scope else {**scope, "n": 1, "i": 0})
    try:
        when = substitute(item["when"], own)
    except ExprError:
        return False
    return when is False


def _is_prelu(v) -> bool:
    return isinstance(v, str) and v.lower() == "prelu"


_UNREAD = frozenset(("name", "when", "repeat"))  # read off the item itself, never off its copy


def _kept(key) -> bool:
    """An item's value its copy keeps as written: its name, when and repeat (``_item`` reads
    them off the item itself) and nested layer lists (substituted when expanded, so that an
    inner ``repeat`` binds its own ``n``)."""
    return key in _UNREAD or key == "layers" or ALIASES.get(key, key) in MERGES


def _substitute_item(item, scope):
    """Substitute an item's own values; nested layer lists are substituted when expanded,
    so that an inner ``repeat`` binds its own ``n``. Its name, when and repeat are left as
    written: ``_item`` reads those off the item itself."""
    out = LineDict()
    out.line, out.key_lines = getattr(item, "line", None), getattr(item, "key_lines", {})
    for k, v in item.items():
        out[k] = v if _kept(k) else substitute(v, scope)
    return out


def _item_names(item) -> tuple | None:
    """The scope names ``_substitute_item(item, ·)`` reads, sorted (None: cannot tell)."""
    names: set = set()
    for k, v in item.items():
        if _kept(k):
            continue
        part = names_read(v)
        if part is None:
            return None
        names |= part
    return tuple(sorted(names))


def _valid_name(v) -> bool:
    """A name is a non-empty text (a plain number is accepted and read as text)."""
    if v.__class__ is str:
        return 0 < len(v) <= 200 and not v.isspace()
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        return False
    text = str(v)
    return 0 < len(text.strip()) and len(text) <= 200


def _text(v):
    if v is None:
        return None
    return " ".join(str(v).split())
