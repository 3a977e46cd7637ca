"""What ``@dataclass`` writes for a class — ``repr``, ``==`` (and for a frozen one ``hash`` and
read-only attributes) — written once, for the classes every cold start imports.

``@dataclass`` compiles each class's methods from generated source when the module is
imported: about 2.5 M instructions (~1 ms) per class, paid by every ``cnncalc summarize``.
A class here lists its fields in ``_fields`` and writes its own ``__init__``; its repr and
equality are the dataclass ones (fields in order; equal only to the same class).
"""
from __future__ import annotations

from dataclasses import FrozenInstanceError


class Record:
    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}("
                + ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields) + ")")

    def _astuple(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._astuple() == other._astuple()
        return NotImplemented

    __hash__ = None  # mutable, compared by value: unhashable, as a dataclass


class FrozenRecord(Record):
    """Read-only fields, hashed by value (``@dataclass(frozen=True)``)."""
    __slots__ = ()

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash(self._astuple())


class _Factory:
    """A default meaning "a fresh one": what ``field(default_factory=...)`` gives a dataclass."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


FACTORY = _Factory()
