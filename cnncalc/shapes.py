"""Shapes as the lecture slides write them.

A shape is a tuple of ints: ``(H, W, C)`` for images, ``(L, C)`` for 1-D signals (text CNNs),
``(D, H, W, C)`` for volumes and video clips (3-D convolutions), ``(N,)`` for flat vectors. Printed as ``224x224x64``, ``56x300`` and ``[4096]``.
"""
from __future__ import annotations

import re

Shape = tuple[int, ...]

_SHAPE_RE = re.compile(r"^\s*\[?\s*(\d+(?:\s*[x×*,]\s*\d+)*)\s*\]?\s*$", re.IGNORECASE)


def parse_shape(text: object) -> Shape:
    """Parse ``224x224x3``, ``224×224×3``, ``[224, 224, 3]``, ``16x112x112x3``, ``56x300`` or ``4096``.

    Raises ValueError with a readable message.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a shape")
    if isinstance(text, int):
        dims = [text]
    elif isinstance(text, (list, tuple)):
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in text):
            raise ValueError(f"{list(text)!r} is not a shape: every dimension must be a whole number")
        dims = list(text)
    elif isinstance(text, str):
        m = _SHAPE_RE.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a shape; write it like 224x224x3 (HxWxC), 56x300 (LxC) or 4096")
        dims = [int(d) for d in re.split(r"\s*[x×*,]\s*", m.group(1), flags=re.IGNORECASE)]
    else:
        raise ValueError(f"{text!r} is not a shape; write it like 224x224x3")
    if not 1 <= len(dims) <= 4:
        raise ValueError(f"{text!r}: a shape has 1 to 4 dimensions (DxHxWxC, HxWxC, LxC or N)")
    if any(d <= 0 for d in dims):
        raise ValueError(f"{text!r}: every dimension must be positive")
    return tuple(dims)


def fmt_shape(shape: Shape) -> str:
    """``(224, 224, 64)`` → ``224x224x64``; ``(4096,)`` → ``[4096]``."""
    if len(shape) == 1:
        return f"[{shape[0]}]"
    return "x".join(str(d) for d in shape)


def numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def spatial(shape: Shape) -> Shape:
    """The spatial axes: (D, H, W) of a volume, (H, W) of an image, (L,) of a signal, () of a
    flat vector."""
    return shape[:-1] if len(shape) > 1 else ()


def channels(shape: Shape) -> int:
    return shape[-1]


def fmt_int(n: int) -> str:
    """Exact integer with thousands separators: 138,357,544."""
    return f"{n:,}"


def human(n: float, base: int = 1000) -> str:
    """Rounded for reading: 138357544 → 138.4M (base 1000) — never used for checks."""
    units = ["", "K", "M", "G", "T", "P"]
    x = float(n)
    for u in units:
        if abs(x) < base or u == units[-1]:
            if u == "":
                return f"{int(n):,}" if float(n).is_integer() else f"{x:.3g}"
            return f"{x:.4g}{u}" if abs(x) < 100 else f"{x:.1f}{u}".replace(".0" + u, u)
        x /= base
    return str(n)  # pragma: no cover


def human_bytes(n: int) -> str:
    """Bytes in both unit systems, stated: ``61.0 MB (58.2 MiB)``."""
    return f"{n / 1e6:,.1f} MB ({n / 2**20:,.1f} MiB)"
