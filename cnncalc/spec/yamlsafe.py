"""Safe YAML loading that remembers where every mapping and item came from.

Only ``yaml.SafeLoader`` is used: a spec can never construct Python objects or run code.
Mappings come back as :class:`LineDict` (a dict with ``.line`` and per-key ``.key_lines``),
sequences as :class:`LineList` (with ``.line`` and per-item ``.item_lines``).
"""
from __future__ import annotations

import yaml

from cnncalc.errors import SpecError


class LineDict(dict):
    line: int | None = None
    key_lines: dict

    def line_of(self, key) -> int | None:
        return getattr(self, "key_lines", {}).get(key, self.line)


class LineList(list):
    line: int | None = None
    item_lines: list


class _Loader(yaml.SafeLoader):
    pass


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

# libyaml's parser (when PyYAML was built with it) reads ~9x faster, with the same marks and
# the same safe constructors; grading a class parses hundreds of files. Anything it rejects
# is parsed again by the pure-Python loader, so error messages do not depend on it.
_FastLoader = None
if getattr(yaml, "__with_libyaml__", False):
    class _FastLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        pass

    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str, file: str | None = None):
    """Parse YAML text safely; syntax errors become a SpecError with file and line."""
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - derives from CSafeLoader
        except (yaml.YAMLError, SpecError):
            pass                    # the pure-Python loader below says what is wrong, and where
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except SpecError as e:
        raise e.located(file=file)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        raise SpecError(f"YAML tags like {e.problem.split('tag ')[-1] if e.problem else '!!tag'} are not "
                        f"allowed: a spec is plain data and is loaded safely, it can never run code",
                        file=file, line=mark.line + 1 if mark else None,
                        hint="remove the '!!...' tag and write the value as plain YAML") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(str(p) for p in (e.context, e.problem) if p)
        raise SpecError(f"this is not valid YAML: {problem}", file=file, line=line,
                        hint="check indentation and that every '- ' list item and 'key: value' pair is well formed") from None
    except yaml.YAMLError as e:
        raise SpecError(f"this is not valid YAML: {e}", file=file) from None
