"""Errors a user can fix. The CLI prints them as ``file:line: layer: message`` and exits 2."""
from __future__ import annotations


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
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        who = f"{self.layer}: " if self.layer else ""
        text = f"{where}{who}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
