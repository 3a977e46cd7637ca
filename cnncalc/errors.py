"""Errors a user can fix. The CLI prints them as ``file:line: layer: message`` and exits 2."""
from __future__ import annotations


MAX_MESSAGE = 600  # characters of a message (or hint) before its middle is cut out


def short(value, n: int = 60) -> str:
    """``repr`` of a value a user wrote, cut to about ``n`` characters (never huge: a message
    must not echo a 1 GB string or a 5,000-digit number)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    if isinstance(value, str) and len(value) > 4 * n:
        value = value[:n]  # never repr a huge string whole
        return repr(value)[:n] + "…' (cut)"
    try:
        text = repr(value) if not isinstance(value, (list, dict)) or _small(value) else _brief(value)
    except (ValueError, RecursionError, MemoryError):
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= n else text[: n - 8] + "…(cut)"


def _small(v, budget: int = 200) -> bool:
    """True if a nested list/dict has at most ``budget`` parts (an alias bomb has billions)."""
    stack, seen = [v], 0
    while stack:
        x = stack.pop()
        seen += 1
        if seen > budget:
            return False
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return True


def _brief(v) -> str:
    return f"<a {type(v).__name__} of {len(v)} items>"


def shorten_text(text: str, n: int = MAX_MESSAGE) -> str:
    if len(text) <= n:
        return text
    return text[: n // 2] + " …(cut)… " + text[-n // 4:]


class CnnCalcError(Exception):
    """Base class: bad input that the user can correct (exit status 2)."""

    exit_code = 2


class SpecError(CnnCalcError):
    """A spec that cannot be loaded or does not make a consistent network."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 layer: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.layer = layer
        self.hint = hint

    def located(self, *, file: str | None = None, line: int | None = None,
                layer: str | None = None) -> "SpecError":
        """Fill in whatever location is still unknown (inner code knows less than outer)."""
        self.file = self.file or file
        self.line = self.line or line
        self.layer = self.layer or layer
        return self

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = shorten_text(str(self.file), 200) + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        who = f"{shorten_text(str(self.layer), 80)}: " if self.layer else ""
        text = f"{where}{who}{shorten_text(str(self.message))}"
        if self.hint:
            text += f"\n  hint: {shorten_text(str(self.hint))}"
        return text
