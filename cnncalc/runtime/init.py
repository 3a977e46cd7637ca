"""Parameter initialisation, deterministic from a ``numpy.random.Generator``.

Schemes (``fan_in``/``fan_out`` from :func:`fans`):

* ``he``     — Kaiming normal, fan_in mode, gain √2:  ``N(0, std²)``, ``std = √(2 / fan_in)``
* ``xavier`` — Glorot uniform:  ``U(-a, a)``, ``a = √(6 / (fan_in + fan_out))``
  (std ``a/√3 = √(2 / (fan_in + fan_out))``)
* ``lecun``  — LeCun normal:  ``N(0, 1 / fan_in)``

Weight layouts and fans (``g`` = groups, ``k = kh·kw``):

======================  ==========================  ======================  ===============
kind                    shape                       fan_in                  fan_out
======================  ==========================  ======================  ===============
``conv``                ``(F, C_in/g, kh, kw)``     ``C_in/g · k``          ``F/g · k``
``conv_transpose``      ``(C_in, F/g, kh, kw)``     ``C_in/g · k / (sh·sw)`` ``F/g · k``
``local``               ``(OH, OW, F, C_in, kh, kw)`` ``C_in · k``          ``F · k``
``fc``                  ``(out, in)``               ``in``                  ``out``
======================  ==========================  ======================  ===============

Fans count real connections: ``fan_in`` is how many weighted inputs are summed into one
output value, ``fan_out`` how many outputs one input value feeds.

* Grouped conv: PyTorch's ``fan_out`` is ``F · k`` (it ignores groups); ours is ``F/g · k``.
  With ``g = 1`` (and for ``fan_in`` always) the two agree.
* Transposed conv: each output pixel sums ``C_in/g`` channels times, on average,
  ``kh·kw / (sh·sw)`` kernel taps (exactly, when the kernel is a multiple of the stride),
  so that is our ``fan_in`` — pass ``stride``; with stride 1 it is ``C_in/g · k``.
  PyTorch instead uses ``weight.shape[1] · k = F/g · k`` (the fan-in of the convolution
  whose adjoint this is), which preserves the variance of gradients rather than of
  activations.  ``fan_out`` (each input pixel scatters into ``F/g`` channels × ``k``
  positions) is exact.
* Locally-connected: per output position the layer is a conv, so fans are those of an
  ungrouped conv; ``fan_out`` assumes stride 1 (overlap of ``k`` output positions).

Biases start at 0; batch-norm ``gamma = 1``, ``beta = 0``, running mean 0, running var 1.
All tensors are ``float32``.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["SCHEMES", "KINDS", "fans", "weight_std", "init_weight", "init_bias", "init_batchnorm"]

SCHEMES = ("he", "xavier", "lecun")
KINDS = ("conv", "conv_transpose", "local", "fc")


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def fans(kind: str, shape: tuple[int, ...], groups: int = 1, stride=1) -> tuple[float, float]:
    """``(fan_in, fan_out)`` of a weight tensor; see the module docstring for conventions."""
    shape = tuple(int(s) for s in shape)
    if kind == "fc":
        if len(shape) != 2:
            raise ValueError(f"fc weight must be (out, in), got shape {shape}")
        out, inp = shape
        return float(inp), float(out)
    if kind == "conv":
        if len(shape) != 4:
            raise ValueError(f"conv weight must be (F, C_in/g, kh, kw), got shape {shape}")
        f, cin_g, kh, kw = shape
        if f % groups:
            raise ValueError(f"conv with {f} filters cannot have {groups} groups")
        return float(cin_g * kh * kw), float(f // groups * kh * kw)
    if kind == "conv_transpose":
        if len(shape) != 4:
            raise ValueError(f"transposed conv weight must be (C_in, F/g, kh, kw), got shape {shape}")
        cin, f_g, kh, kw = shape
        if cin % groups:
            raise ValueError(f"transposed conv with {cin} input channels cannot have {groups} groups")
        sh, sw = _pair(stride)
        return cin // groups * kh * kw / (sh * sw), float(f_g * kh * kw)
    if kind == "local":
        if len(shape) != 6:
            raise ValueError(f"locally-connected weight must be (OH, OW, F, C_in, kh, kw), got {shape}")
        _, _, f, cin, kh, kw = shape
        return float(cin * kh * kw), float(f * kh * kw)
    raise ValueError(f"unknown weight kind {kind!r}; expected one of {', '.join(KINDS)}")


def weight_std(scheme: str, fan_in: float, fan_out: float) -> float:
    """Standard deviation the scheme gives a weight tensor."""
    if scheme == "he":
        return math.sqrt(2.0 / fan_in)
    if scheme == "xavier":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if scheme == "lecun":
        return math.sqrt(1.0 / fan_in)
    raise ValueError(f"unknown init scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def init_weight(rng: np.random.Generator, kind: str, shape: tuple[int, ...], scheme: str = "he",
                groups: int = 1, stride=1) -> np.ndarray:
    """A new float32 weight tensor drawn from ``rng`` (same rng state → same tensor)."""
    fan_in, fan_out = fans(kind, shape, groups, stride)
    std = weight_std(scheme, fan_in, fan_out)
    shape = tuple(int(s) for s in shape)
    if scheme == "xavier":
        a = math.sqrt(3.0) * std                     # = sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape).astype(np.float32)
    w = rng.standard_normal(size=shape, dtype=np.float32)
    w *= np.float32(std)
    return w


def init_bias(n: int | tuple[int, ...]) -> np.ndarray:
    """Zero bias (float32)."""
    return np.zeros(n, dtype=np.float32)


def init_batchnorm(channels: int) -> dict[str, np.ndarray]:
    """Batch-norm parameters (``gamma``, ``beta``) and running statistics."""
    return {
        "gamma": np.ones(channels, np.float32),
        "beta": np.zeros(channels, np.float32),
        "running_mean": np.zeros(channels, np.float32),
        "running_var": np.ones(channels, np.float32),
    }
