"""Safe YAML loading that remembers where every mapping and item came from.

Only ``yaml.SafeLoader`` is used: a spec can never construct Python objects or run code.
Mappings come back as :class:`LineDict` (a dict with ``.line`` and per-key ``.key_lines``),
sequences as :class:`LineList` (with ``.line`` and per-item ``.item_lines``).
"""
from __future__ import annotations

import yaml

from cnncalc import limits
from cnncalc.errors import SpecError


class LineDict(dict):
    line: int | None = None
    key_lines: dict

    def line_of(self, key) -> int | None:
        return getattr(self, "key_lines", {}).get(key, self.line)


class LineList(list):
    line: int | None = None
    item_lines: list


def unlined(value):
    """A plain mapping / list (made by a program, e.g. an importer) as the loader reads it from
    YAML: LineDict / LineList without line numbers; integers checked as YAML's are."""
    if value.__class__ is dict:
        out = LineDict((k, unlined(v)) for k, v in value.items())
        out.line, out.key_lines = None, {}
        return out
    if value.__class__ is list:
        out = LineList(unlined(v) for v in value)
        out.line, out.item_lines = None, [None] * len(out)
        return out
    if value.__class__ is int:
        return limits.check_int(value, "a number")
    return value


class _Loader(yaml.SafeLoader):
    """SafeLoader with bounds: nesting depth while composing, and the size of the document
    once aliases are expanded (an alias bomb is a few hundred bytes that mean billions of
    values) — both checked before any Python object is built."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > limits.get("yaml_depth"):
                mark = self.peek_event().start_mark
                raise limits.exceeded("yaml_depth", f"mappings and lists nest more than "
                                      f"{limits.get('yaml_depth')} deep").located(line=mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _check_expanded_size(node)
        return node


def _check_expanded_size(root) -> None:
    """Count the values of the document with every alias expanded, without expanding it:
    size(node) = 1 + sum(size(child)), memoised on node identity (aliases share nodes)."""
    cap = limits.get("yaml_nodes")
    memo: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being counted: meeting one again is a cycle
    # iterative post-order walk (the depth is already bounded, but stay off the C stack)
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in memo:
            continue
        if isinstance(node, yaml.ScalarNode):
            memo[id(node)] = 1
            continue
        children = ([c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if not done:
            if id(node) in open_:
                raise SpecError("a YAML alias (*name) refers to the mapping or list that contains "
                                "it: a spec cannot be infinitely deep", line=node.start_mark.line + 1,
                                hint="copy the values instead of the alias")
            memo_pending = [c for c in children if id(c) not in memo]
            if memo_pending:
                open_.add(id(node))
                stack.append((node, True))
                stack.extend((c, False) for c in memo_pending)
                continue
        open_.discard(id(node))
        total = 1 + sum(memo.get(id(c), 1) for c in children)
        if total > cap:
            raise limits.exceeded("yaml_nodes", "with its aliases (*name) expanded, the YAML has more "
                                  f"than {cap:,} values").located(line=node.start_mark.line + 1)
        memo[id(node)] = total


def _construct_int(loader, node):
    text = str(node.value)
    digits = sum(ch.isdigit() for ch in text)
    if digits > limits.get("int_digits") + 2:  # before int(): 0x/0o prefixes count as digits
        raise limits.exceeded("int_digits", f"the number {text[:20]}… has {digits} digits"
                              ).located(line=node.start_mark.line + 1)
    value = yaml.SafeLoader.construct_yaml_int(loader, node)
    return limits.check_int(value, "a number")




def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise SpecError(f"a mapping key must be a plain value, not {type(key).__name__}",
                            line=key_node.start_mark.line + 1) from None
        if key in out:
            raise SpecError(f"duplicate key {key!r} in the same mapping",
                            line=key_node.start_mark.line + 1,
                            hint="each key may appear once; remove or rename one of them")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

# libyaml's parser (when PyYAML was built with it) reads ~9x faster, with the same marks and
# the same safe constructors; grading a class parses hundreds of files. Anything it rejects
# is parsed again by the pure-Python loader, so error messages do not depend on it.
_FastLoader = None
if getattr(yaml, "__with_libyaml__", False):
    class _FastLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        pass

    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
    _FastLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _fast_ok(text: str) -> bool:
    """The libyaml parser composes in C, out of reach of _Loader's bounds (nesting depth, alias
    expansion): use it only for text that cannot hit them — no anchors or aliases at all, and
    flow brackets nested no deeper than the depth limit (an over-estimate: brackets inside
    quotes count too). Block nesting by indentation is bounded by the file-size limit."""
    if ("&" in text or "*" in text) and _may_alias(text):
        return False
    depth = top = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}":
            depth -= 1
    return top <= limits.get("yaml_depth")


_TOKEN_START = " \t[{,:"


def _may_alias(text: str) -> bool:
    """Could ``text`` hold a YAML anchor (&a) or alias (*a)? Those can only begin a token: at the
    start of a line or after whitespace, ``[``, ``{``, ``,`` or ``:``. A ``*`` inside an
    expression (``${4*w}``), a quoted scalar or a comment is none, so specs with arithmetic
    still take the fast path. Conservative: a line it cannot read for sure (a quoted scalar
    that does not close on its line) counts as a possible alias."""
    for line in text.splitlines():
        if "&" not in line and "*" not in line:
            continue
        quote = None
        prev = " "
        i, n = 0, len(line)
        while i < n:
            ch = line[i]
            if quote == '"':
                if ch == "\\":
                    i += 1
                elif ch == '"':
                    quote = None
            elif quote == "'":
                if ch == "'":
                    if i + 1 < n and line[i + 1] == "'":
                        i += 1
                    else:
                        quote = None
            elif prev in _TOKEN_START:
                if ch in "&*":
                    return True
                if ch in "\"'":
                    quote = ch
                elif ch == "#" and prev in " \t":
                    break                       # a comment, to the end of the line
            prev = ch if quote is None else "x"
            i += 1
        if quote is not None:
            return True
    return False


def load_yaml(text: str, file: str | None = None):
    """Parse YAML text safely; syntax errors become a SpecError with file and line."""
    if _FastLoader is not None and _fast_ok(text):
        try:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - derives from CSafeLoader
        except (yaml.YAMLError, SpecError):
            pass                    # the pure-Python loader below says what is wrong, and where
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except SpecError as e:
        raise e.located(file=file)
    except RecursionError:  # a safety net behind the yaml_depth limit
        raise limits.exceeded("yaml_depth", "the YAML nests too deeply").located(file=file) from None
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        raise SpecError(f"YAML tags like {e.problem.split('tag ')[-1] if e.problem else '!!tag'} are not "
                        f"allowed: a spec is plain data and is loaded safely, it can never run code",
                        file=file, line=mark.line + 1 if mark else None,
                        hint="remove the '!!...' tag and write the value as plain YAML") from None
    except yaml.reader.ReaderError as e:  # a NUL or another character YAML does not allow
        pos = e.position if isinstance(e.position, int) and 0 <= e.position <= len(text) else None
        line = text.count("\n", 0, pos) + 1 if pos is not None else None
        ch = e.character if isinstance(e.character, str) else chr(e.character) if isinstance(e.character, int) else "?"
        raise SpecError(f"this is not valid YAML: the character U+{ord(ch[:1] or '?'):04X} is not allowed in a YAML file"
                        + (f" (column {pos - text.rfind(chr(10), 0, pos)})" if pos is not None else ""),
                        file=file, line=line,
                        hint="remove it (inside a \"double-quoted\" string it can be written as an escape, e.g. \\x01)") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(str(p) for p in (e.context, e.problem) if p)
        raise SpecError(f"this is not valid YAML: {problem}", file=file, line=line,
                        hint="check indentation and that every '- ' list item and 'key: value' pair is well formed") from None
    except yaml.YAMLError as e:
        raise SpecError(f"this is not valid YAML: {e}", file=file) from None


def read_text_file(path, what: str = "spec") -> str:
    """Read a spec / answer file: a regular file (not a device, FIFO or folder) of at most
    ``spec_bytes`` bytes, UTF-8. Errors are SpecErrors naming the file."""
    import os
    import stat

    name = str(path)
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SpecError(f"no {what} file {name!r}") from None
    except OSError as e:
        raise SpecError(f"cannot read the file: {e.strerror}", file=name) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SpecError(f"{name} is a folder, not a {what} file", hint="name a .yaml file")
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"{name} is not a regular file (a device, a pipe or a socket)",
                            file=name, hint=f"a {what} is read only from a regular .yaml file")
        cap = limits.get("spec_bytes")
        if st.st_size > cap:
            raise limits.exceeded("spec_bytes", f"the file has {st.st_size:,} bytes").located(file=name)
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = None
            data = f.read(cap + 1)
    except OSError as e:
        raise SpecError(f"cannot read the file: {e.strerror}", file=name) from None
    finally:
        if fd is not None:
            os.close(fd)
    if len(data) > cap:
        raise limits.exceeded("spec_bytes", f"the file has more than {cap:,} bytes").located(file=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"the file is not UTF-8 text; is it really a YAML {what}?", file=name) from None
