"""Element-wise and channel activations, maxout and dropout.

These are memory-bound one-pass maps; numpy's ufuncs are already compiled loops, so
they are written in numpy (no JIT compile time, no numba dtype specialisations) -- except
float32 tanh: numpy's is a scalar libm call per element on CPUs without AVX-512 (~3 ns),
so float32 tanh is the rational approximation of :func:`_tanh1` in one vectorised numba
pass (~0.6 ns; at most 6.4 ulp / 3.9e-7 from the exact tanh; float64 keeps ``np.tanh``),
and the tanh backward is one numba pass (the numpy form's bits).

Public API (every ``*_forward`` returns ``(y, cache)``, every ``*_backward(dout, cache)``
returns ``dx``):

``relu_forward(x)``, ``relu6_forward(x)``, ``leaky_relu_forward(x, alpha=0.01)``,
``tanh_forward(x)``, ``sigmoid_forward(x)``  -- any shape
``softmax_forward(x)``  -- softmax over axis 1 of ``(N, C)`` (or ``(N, C, ...)``)
``maxout_forward(x, k)`` -- ``(N, C, ...)`` -> ``(N, C//k, ...)``; output channel j is the
    max of input channels ``j*k .. j*k+k-1``; the gradient goes to the first max.
``dropout_forward(x, p, train=True, rng=None)`` -- inverted dropout: in train mode keeps
    each element with probability ``1-p`` and scales it by ``1/(1-p)``; identity in eval
    mode.  ``rng`` is a ``numpy.random.Generator`` (reproducibility); default a fresh
    ``default_rng()``.
Generic dispatch: ``activation_forward(name, x, **kw)`` / ``activation_backward(name, dout, cache)``
with names ``relu relu6 leaky_relu tanh sigmoid softmax identity``.

dtype follows the input (float64 stays float64, everything else float32).
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime._numba import njit
from cnncalc.runtime.kernels._util import as_float


def relu_forward(x):
    x = as_float(x)
    return np.maximum(x, 0), x > 0


def relu_backward(dout, cache):
    if (dout.dtype in (np.float32, np.float64) and dout.shape == cache.shape and dout.flags.c_contiguous
            and cache.flags.c_contiguous and cache.dtype == np.bool_):
        out = np.empty_like(dout)
        # one pass (np.where with its broadcast and cast: ~3x slower)
        _mask_into(dout.reshape(-1), cache.reshape(-1), out.reshape(-1), dout.dtype.type(0))
        return out
    return np.where(cache, dout, 0).astype(dout.dtype, copy=False)


@njit
def _mask_into(d, m, out, zero):
    for i in range(d.size):
        out[i] = d[i] if m[i] else zero


def relu6_forward(x):
    x = as_float(x)
    return np.clip(x, 0, 6), (x > 0) & (x < 6)


relu6_backward = relu_backward


def leaky_relu_forward(x, alpha=0.01):
    x = as_float(x)
    pos = x > 0
    return np.where(pos, x, x * x.dtype.type(alpha)), (pos, alpha)


def leaky_relu_backward(dout, cache):
    pos, alpha = cache
    return np.where(pos, dout, dout * dout.dtype.type(alpha))


@njit(error_model="numpy")  # numpy's error model: no zero-division branch, so it vectorises
def _tanh1(v):
    """float32 tanh of one value: Eigen's single-precision rational approximation
    (Eigen/src/Core/MathFunctionsImpl.h, 3.4: an odd degree-13 numerator over an even
    degree-6 denominator on ``v`` clamped to +-7.9053111, where the float32 tanh is 1).
    Measured against float64 ``np.tanh`` over every float32 in [0, 10) (odd function: the
    negative half is the same): at most 6.4 ulp, 3.9e-7 absolute (numpy's float32 tanh:
    1.4 ulp); NaN stays NaN, +-inf gives +-1. For ``|v| < 4e-4`` it returns ``v``
    (Eigen's shortcut: tanh(v) = v to float32 there)."""
    c = np.float32(7.90531110763549805)
    tiny = np.float32(0.0004)
    a = c if v > c else v  # NaN compares false: it passes through
    a = -c if a < -c else a
    s = a * a
    p = s * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = s * p + np.float32(-8.60467152213735e-11)
    p = s * p + np.float32(5.12229709037114e-08)
    p = s * p + np.float32(1.48572235717979e-05)
    p = s * p + np.float32(6.37261928875436e-04)
    p = s * p + np.float32(4.89352455891786e-03)
    q = s * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = s * q + np.float32(2.26843463243900e-03)
    q = s * q + np.float32(4.89352518554385e-03)
    r = (p * a) / q
    return v if (v < tiny and v > -tiny) else r


@njit(error_model="numpy")
def _tanh32(x, out):
    """``out[i] = tanh(x[i])`` (:func:`_tanh1`) for flat float32 arrays that do not overlap."""
    for i in range(x.shape[0]):
        out[i] = _tanh1(x[i])


@njit(error_model="numpy")
def _tanh32_inplace(x):
    """:func:`_tanh32` into ``x`` itself (one array: LLVM's overlap check of two arguments
    that are the same array would send the loop down its scalar path)."""
    for i in range(x.shape[0]):
        x[i] = _tanh1(x[i])


def _tanh_into(x, out):
    """tanh of ``x`` into ``out`` (the same shape; may be ``x`` itself)."""
    if x.dtype == np.float32 and out.dtype == np.float32 and x.flags.c_contiguous and out.flags.c_contiguous:
        if out is x:
            _tanh32_inplace(x.reshape(-1))
        else:
            _tanh32(x.reshape(-1), out.reshape(-1))
    else:
        np.tanh(x, out=out)
    return out


def tanh_forward(x):
    x = as_float(x)
    y = _tanh_into(x, np.empty(x.shape, x.dtype))
    return y, y


@njit
def _tanh_grad(dout, y, dx):
    """``dx = (1 - y*y) * dout`` in one pass, each operation rounded as in the numpy form."""
    one = y.dtype.type(1)
    for i in range(dx.shape[0]):
        dx[i] = (one - y[i] * y[i]) * dout[i]


def tanh_backward(dout, cache):
    if (type(dout) is np.ndarray and dout.dtype == cache.dtype and dout.dtype in (np.float32, np.float64)
            and dout.shape == cache.shape and dout.flags.c_contiguous and cache.flags.c_contiguous):
        dx = np.empty_like(dout)
        _tanh_grad(dout.reshape(-1), cache.reshape(-1), dx.reshape(-1))
        return dx
    t = np.multiply(cache, cache)  # one temporary: dout * (1 - y²)
    np.subtract(1, t, out=t)
    return np.multiply(t, dout, out=t) if t.dtype == dout.dtype else dout * t


def sigmoid_forward(x):
    x = as_float(x)
    e = np.exp(-np.abs(x))  # never overflows
    y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    return y, y


def sigmoid_backward(dout, cache):
    t = np.subtract(1, cache)
    np.multiply(t, cache, out=t)
    return np.multiply(t, dout, out=t) if t.dtype == dout.dtype else dout * t


def softmax_forward(x):
    x = as_float(x)
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    y = e / e.sum(axis=1, keepdims=True)
    return y, y


def softmax_backward(dout, cache):
    y = cache
    return y * (dout - (dout * y).sum(axis=1, keepdims=True))


def identity_forward(x):
    return as_float(x), None


def identity_backward(dout, cache):
    return dout


def maxout_forward(x, k):
    x = as_float(x)
    N, C = x.shape[:2]
    if C % k:
        raise ValueError(f"maxout: {C} channels not divisible by k={k}")
    xr = x.reshape((N, C // k, k) + x.shape[2:])
    idx = xr.argmax(axis=2)  # first max on ties
    y = np.take_along_axis(xr, idx[:, :, None], axis=2)[:, :, 0]
    return y, (x.shape, idx, k)


def maxout_backward(dout, cache):
    shape, idx, k = cache
    N, C = shape[:2]
    dx = np.zeros((N, C // k, k) + tuple(shape[2:]), dtype=dout.dtype)
    np.put_along_axis(dx, idx[:, :, None], dout[:, :, None], axis=2)
    return dx.reshape(shape)


def dropout_forward(x, p, train=True, rng=None):
    x = as_float(x)
    if not train or p == 0:
        return x, None
    if not 0 <= p < 1:
        raise ValueError(f"dropout p must be in [0, 1), got {p}")
    rng = np.random.default_rng() if rng is None else rng
    mask = (rng.random(x.shape) >= p).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return x * mask, mask


def dropout_backward(dout, cache):
    return dout if cache is None else dout * cache


_FWD = {
    "relu": relu_forward, "relu6": relu6_forward, "leaky_relu": leaky_relu_forward,
    "tanh": tanh_forward, "sigmoid": sigmoid_forward, "softmax": softmax_forward,
    "identity": identity_forward, "linear": identity_forward,
}
_BWD = {
    "relu": relu_backward, "relu6": relu6_backward, "leaky_relu": leaky_relu_backward,
    "tanh": tanh_backward, "sigmoid": sigmoid_backward, "softmax": softmax_backward,
    "identity": identity_backward, "linear": identity_backward,
}


def activation_forward(name, x, **kw):
    return _FWD[name](x, **kw)


def _relu_inplace(x):
    if not x.flags.c_contiguous:
        mask = x > 0
        np.maximum(x, 0, out=x)
        return x, mask
    mask = np.empty(x.shape, np.bool_)
    # one pass for the mask and the ReLU (numpy's `x > 0` then `maximum` were two)
    _relu_mask_into(x.reshape(-1), mask.reshape(-1), x.dtype.type(0))
    return x, mask


@njit
def _relu_mask_into(x, mask, zero):
    """``mask = x > 0; x = maximum(x, 0)`` as numpy computes them (NaN kept, -0.0 -> 0.0)."""
    for i in range(x.size):
        v = x[i]
        p = v > zero
        mask[i] = p
        if not p and v == v:
            x[i] = zero


def _relu6_inplace(x):
    mask = (x > 0) & (x < 6)
    np.clip(x, 0, 6, out=x)
    return x, mask


def _tanh_inplace(x):
    _tanh_into(x, x)
    return x, x


#: activations with an in-place form (for the executor's fused activations on fresh outputs)
_INPLACE = {"relu": _relu_inplace, "relu6": _relu6_inplace, "tanh": _tanh_inplace}
IN_PLACE = frozenset(_INPLACE)


def activation_forward_inplace(name, x):
    """Like :func:`activation_forward`, overwriting ``x`` (a float array nobody else reads)."""
    if x.dtype not in (np.float32, np.float64) or not x.flags.writeable:
        return activation_forward(name, x)
    return _INPLACE[name](x)


def activation_backward(name, dout, cache):
    return _BWD[name](dout, cache)


# issue 10's activations live in activation_ext; the generic dispatch serves them too
from cnncalc.runtime.kernels import activation_ext as _ext  # noqa: E402

_FWD.update(_ext.FORWARD)
_BWD.update(_ext.BACKWARD)
