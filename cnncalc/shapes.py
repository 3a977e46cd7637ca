"""Shapes as the lecture slides write them, and the kinds of tensors (docs/tensors.md).

A shape is a tuple of ints: ``(H, W, C)`` for images, ``(L, C)`` for 1-D signals (text CNNs),
``(D, H, W, C)`` for volumes and video clips (3-D convolutions), ``(N,)`` for flat vectors. Printed as ``224x224x64``, ``56x300`` and ``[4096]``.

Token sequences and generic tensors are :class:`Tensor` shapes: the per-sample dims in
PyTorch's order (no batch axis), printed ``196x768 tokens`` and ``(8, 49, 32)``, with a *role*
per axis that says which positions of the input image each axis enumerates (what keeps the
receptive field exact through transposes and reshapes). A plain tuple is an image (rank ≥ 2)
or a flat vector (rank 1), as it always was.
"""
from __future__ import annotations

import re

Shape = tuple[int, ...]

_SHAPE_RE = re.compile(r"^\s*\[?\s*(\d+(?:\s*[x×*,]\s*\d+)*)\s*\]?\s*$", re.IGNORECASE)


def parse_shape(text: object) -> Shape:
    """Parse ``224x224x3``, ``224×224×3``, ``[224, 224, 3]``, ``16x112x112x3``, ``56x300`` or ``4096``;
    ``196x768 tokens`` (a token sequence) and ``(8, 16, 32)`` (a generic tensor, PyTorch's order).

    Raises ValueError with a readable message.
    """
    if isinstance(text, str) and (_TOKENS_RE.match(text) or _TENSOR_RE.match(text)):
        return _parse_kind(text)
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
            raise ValueError(f"{text!r} is not a shape; write it like 224x224x3 (HxWxC), 56x300 (LxC), "
                             f"4096, 196x768 tokens or (8, 16, 32) (a tensor)")
        dims = [int(d) for d in re.split(r"\s*[x×*,]\s*", m.group(1), flags=re.IGNORECASE)]
    else:
        raise ValueError(f"{text!r} is not a shape; write it like 224x224x3")
    if not 1 <= len(dims) <= 4:
        raise ValueError(f"{text!r}: a shape has 1 to 4 dimensions (DxHxWxC, HxWxC, LxC or N)")
    if any(d <= 0 for d in dims):
        raise ValueError(f"{text!r}: every dimension must be positive")
    return tuple(dims)


def fmt_shape(shape: Shape) -> str:
    """``(224, 224, 64)`` → ``224x224x64``; ``(4096,)`` → ``[4096]``; tokens ``196x768 tokens``;
    a tensor ``(8, 49, 32)``."""
    if shape.__class__ is Tensor:
        if shape.kind == TOKENS:
            return f"{shape[0]}x{shape[1]} tokens"
        return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
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
    flat vector; of a Tensor, the units along each spatial axis of the input it came from
    (:func:`spatial_units`)."""
    if shape.__class__ is Tensor:
        return spatial_units(shape)
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


# ----------------------------------------------------------------------------- tensor kinds
IMAGE, FLAT, TOKENS, TENSOR = "image", "flat", "tokens", "tensor"
MAX_RANK = 8  # axes per sample of a generic tensor
C = "c"  # the component of a role that carries no spatial position (channels, heads, …)

_TOKENS_RE = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s+tokens?\s*$", re.IGNORECASE)
_TENSOR_RE = re.compile(r"^\s*\(\s*\d+(?:\s*,\s*\d+)*\s*,?\s*\)\s*$")


class Tensor(tuple):
    """A token sequence or a generic tensor: the dims of one sample in PyTorch's order (no
    batch axis), with a *role* per axis, and ``nsp``, the number of spatial axes of the input
    the tensor comes from.

    A role is a tuple of components ``(what, size)`` in row-major order, whose sizes multiply
    to the axis' size: ``what`` is a spatial axis index of the input (0 = H of an image, 1 =
    W) or ``C`` (no position: channels, heads, a size-1 axis). ``(("c", 96),)`` is a channel
    axis, ``((0, 56),)`` the H axis, ``((0, 14), (1, 14))`` tokens that flatten H and W,
    ``(("c", 8), (0, 7))`` an axis that flattens C and H. ``None``: the positions along the
    axis were scrambled (a reshape that cut a spatial axis): the receptive field past it is
    unknown. Roles compare with the shape: a Tensor never equals a plain tuple.

    ``strides``: None for a tensor laid out contiguously (batch first), else the runtime's
    element strides of the batch axis and of each axis — a view (a transpose, a strided
    slice, an expand) keeps its input's storage, and a later reshape is a view only where
    NumPy's and PyTorch's rule allows one (:func:`reshape_strides`).
    """

    def __new__(cls, dims, roles=None, nsp: int = 0, strides=None):
        t = tuple.__new__(cls, dims)
        t.roles = tuple(roles) if roles is not None else tuple(((C, d),) for d in t)
        t.nsp = nsp
        t.strides = None if strides is None or tuple(strides) == contiguous(t) else tuple(strides)
        return t

    @property
    def kind(self) -> str:
        r = self.roles
        return TOKENS if len(self) == 2 and is_channels(r[1]) and not is_channels(r[0]) else TENSOR

    def __eq__(self, other):
        return (other.__class__ is Tensor and tuple.__eq__(self, other) and self.roles == other.roles
                and self.nsp == other.nsp and self.strides == other.strides)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((tuple(self), self.roles, self.nsp, self.strides))

    def __reduce__(self):
        return (Tensor, (tuple(self), self.roles, self.nsp, self.strides))

    def __repr__(self):
        return f"Tensor({tuple(self)!r}, {self.roles!r}, nsp={self.nsp}" + (
            f", strides={self.strides!r})" if self.strides else ")")


def contiguous(dims) -> tuple[int, ...]:
    """Element strides (batch axis first) of a batch of samples of ``dims`` laid out densely."""
    out, step = [], 1
    for d in reversed(tuple(dims)):
        out.append(step)
        step *= d
    return (step, *reversed(out))


def reshape_strides(dims, strides, new_dims) -> tuple[int, ...] | None:
    """The strides of a batch of ``dims`` (strides batch first) reshaped to ``new_dims`` without
    a copy, or None when it needs one: NumPy's ``_attempt_nocopy_reshape`` (PyTorch's
    ``view`` rule), on a batch of 2."""
    old = [(d, st) for d, st in zip((2, *dims), strides) if d != 1]
    od, os_ = [d for d, _ in old], [st for _, st in old]
    nd = (2, *new_dims)
    ns = [0] * len(nd)
    oi = oj = ni = nj = 0
    while ni < len(nd) and oi < len(od):
        np_, op = nd[ni], od[oi]
        while np_ != op:
            if np_ < op:
                nj += 1
                np_ *= nd[nj]
            else:
                oj += 1
                op *= od[oj]
        for ok in range(oi, oj):
            if os_[ok] != od[ok + 1] * os_[ok + 1]:
                return None
        ns[nj] = os_[oj]
        for nk in range(nj - 1, ni - 1, -1):
            ns[nk] = ns[nk + 1] * nd[nk + 1]
        ni = nj = nj + 1
        oi = oj = oj + 1
    last = ns[ni - 1] if ni else 1
    for nk in range(ni, len(nd)):
        ns[nk] = last
    return tuple(ns)


def is_channels(role) -> bool:
    """True for a role without spatial positions (channels, heads, a size-1 axis)."""
    return role is not None and all(w == C for w, _ in role)


def kind(shape: Shape) -> str:
    """image (HxWxC, LxC, DxHxWxC), flat ([F]), tokens (N x C) or tensor (any rank)."""
    if shape.__class__ is Tensor:
        return shape.kind
    return FLAT if len(shape) == 1 else IMAGE


def from_json(dims, kind_: str | None = None) -> Shape:
    """A shape read back from JSON (``"shape"`` with its ``"kind"``, or ``"input"`` with
    ``"input_kind"``): tokens and tensors keep their kind (and print as such)."""
    dims = tuple(dims)
    if kind_ == TOKENS:
        return Tensor(dims, (((0, dims[0]),), ((C, dims[1]),)), nsp=1)
    if kind_ == TENSOR:
        return Tensor(dims)
    return dims


def kind_key(shape: Shape) -> dict:
    """``{"kind": ...}`` for a token sequence or a tensor, ``{}`` for images and flat vectors
    (whose JSON rows stay as they were: their kind follows from the rank)."""
    return {"kind": shape.kind} if shape.__class__ is Tensor else {}


def _parse_kind(text: str) -> Tensor:
    m = _TOKENS_RE.match(text)
    if m:
        n, c = int(m.group(1)), int(m.group(2))
        if n <= 0 or c <= 0:
            raise ValueError(f"{text!r}: every dimension must be positive")
        return Tensor((n, c), (((0, n),), ((C, c),)), nsp=1)
    dims = [int(d) for d in re.findall(r"\d+", text)]
    if not 1 <= len(dims) <= MAX_RANK:
        raise ValueError(f"{text!r}: a tensor has 1 to {MAX_RANK} dimensions per sample")
    if any(d <= 0 for d in dims):
        raise ValueError(f"{text!r}: every dimension must be positive")
    return Tensor(dims) if len(dims) > 1 else tuple(dims)


def torch_order(shape: Shape) -> Tensor:
    """Any shape as a Tensor in PyTorch's per-sample order: an image HxWxC is (C, H, W) with
    roles channels, H, W; a flat vector [F] is (F,) with unknown positions (a flat vector may
    mix channels and positions)."""
    if shape.__class__ is Tensor:
        return shape
    if len(shape) == 1:
        return Tensor(shape, (None,), nsp=0)
    nsp = len(shape) - 1
    return Tensor((shape[-1], *shape[:-1]), (((C, shape[-1]),), *(((s, n),) for s, n in enumerate(shape[:-1]))),
                  nsp=nsp)


def settle(dims, roles, nsp: int, strides=None) -> Shape:
    """The shape a low-level op's result is: an image when its axes are channels then each
    spatial axis of the input in order (PyTorch's C, H, W: a transpose back to channels-first
    gives an image again), a flat vector when it has one axis, else a Tensor. (Images and flat
    vectors are laid out contiguously: an op whose view would not be writes a copy.)"""
    dims = tuple(int(d) for d in dims)
    if len(dims) == 1:
        return dims
    if nsp and len(dims) == nsp + 1 and is_channels(roles[0]) and all(
            roles[1 + s] == ((s, dims[1 + s]),) for s in range(nsp)):
        return (*dims[1:], dims[0])
    return Tensor(dims, roles, nsp, strides)


def spatial_units(shape: Tensor) -> tuple[int, ...]:
    """Units along each spatial axis of the input (0 … nsp − 1) that a Tensor enumerates: the
    size of that axis' component in the roles, 1 where no role holds it (picked or reduced)."""
    units = [1] * shape.nsp
    for role in shape.roles:
        for what, n in role or ():
            if what != C:
                units[what] = n
    return tuple(units)


def image_view(shape: Shape, what: str) -> Shape:
    """How a layer that reads images (conv, pooling, BN, …) reads ``shape``: an image or a
    flat vector as it is; a generic tensor of 3 or 4 axes as C x H x W (C x D x H x W), as
    PyTorch's conv reads it, and one of 2 axes as C x L by a conv (PyTorch's Conv1d on
    (N, C, L): ECA's conv over the channel descriptor reshaped to (N, 1, C) reads a signal of
    C values, one channel). Anything else is a ValueError naming ``what`` reads it."""
    if shape.__class__ is not Tensor:
        return shape
    if shape.kind == TENSOR and (len(shape) in (3, 4) or (len(shape) == 2 and what in ("conv", "dwconv"))):
        return (*shape[1:], shape[0])
    raise ValueError(f"a {what} layer reads images (HxWxC) or flat vectors, not the "
                     f"{'token sequence' if shape.kind == TOKENS else 'tensor'} {fmt_shape(shape)}")
