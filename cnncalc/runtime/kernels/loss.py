"""Softmax + cross-entropy with integer labels (mean over the batch).

``softmax_cross_entropy(logits, labels) -> (loss, dlogits)``
    ``logits (N, K)``, ``labels (N,)`` ints in ``[0, K)``; ``loss`` a Python float,
    ``dlogits = (softmax(logits) - onehot(labels)) / N`` in the logits' dtype.
    Computed with log-sum-exp, so large logits do not overflow.
"""
from __future__ import annotations

import numpy as np

from cnncalc.runtime.kernels._util import as_float


def softmax_cross_entropy(logits, labels):
    z = as_float(logits)
    labels = np.asarray(labels, dtype=np.int64)
    N = z.shape[0]
    if z.ndim != 2 or labels.shape != (N,):
        raise ValueError(f"softmax_cross_entropy: logits {z.shape}, labels {labels.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= z.shape[1]:
        raise ValueError("labels out of range")
    s = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(s).sum(axis=1, keepdims=True))
    logp = s - lse
    rows = np.arange(N)
    loss = float(-logp[rows, labels].astype(np.float64).mean())
    d = np.exp(logp)
    d[rows, labels] -= 1
    d /= N
    return loss, d.astype(z.dtype, copy=False)
