"""The numba loops behind :mod:`xsoftmax._kernels.numba.linear` (imports numba: load lazily).

Both kernels run over the rows of one ``(n, K)`` block of logits in parallel and
write nothing but their outputs and the block itself (a temporary of the
caller's). The shift ``x - m`` is taken in float64 with its TwoSum error, so
``exp(x - m)`` is exact to float64 rounding for float32 and float64 data alike.
No fast-math: TwoSum must not be reassociated.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _exp_gap(a, b):
    """``exp(a - b)`` for finite float64 ``a <= b``, the difference's TwoSum error folded in."""
    z = a - b
    back = z - a
    e = (a - (z - back)) - (b + back)
    t = math.exp(z)
    return t + t * e


@njit(parallel=True, cache=True)
def fold_chunk(L, cap, local_t, a, a_prev, m_run, top_run, rest_run, xt_run, soft_run, ok):
    """Cap the block in place and fold its rows into the running statistics (in place).

    Per row: the maximum ``m_run``, the count ``top_run`` of logits equal to it,
    ``rest_run = Σ exp(x - m)`` over the others, the target's logit ``xt_run``
    (``local_t`` is its column in this block, -1 if elsewhere) and
    ``soft_run = Σ a_c (x_c - m)``; ``a_prev`` is ``Σ a`` over the earlier
    blocks. A row with a NaN or a non-finite maximum clears ``ok``.
    """
    n, k = L.shape
    has_a = a.shape[0] > 0
    a_chunk = 0.0
    for j in range(a.shape[0]):
        a_chunk += a[j]
    for i in prange(n):
        if cap > 0.0:
            for j in range(k):
                L[i, j] = cap * math.tanh(L[i, j] / cap)
        mx = -np.inf
        bad = False
        for j in range(k):
            v = L[i, j]
            if v > mx:
                mx = v
            elif v != v:
                bad = True
        if local_t[i] >= 0:
            xt_run[i] = L[i, local_t[i]]
        if bad or not math.isfinite(mx):
            ok[i] = False
            continue
        m = np.float64(mx)
        top = 0.0
        rest = 0.0
        soft = 0.0
        for j in range(k):
            x = np.float64(L[i, j])
            if x == -np.inf:  # probability 0: no term (TwoSum of -inf would give NaN)
                if has_a and a[j] != 0.0:
                    soft += a[j] * x
                continue
            z = x - m
            back = z - x
            e = (x - (z - back)) - (m + back)
            if z == 0.0 and e == 0.0:
                top += 1.0
            else:
                t = math.exp(z)
                rest += t + t * e
            if has_a:
                soft += a[j] * (z + e)
        old = np.float64(m_run[i])
        if old == -np.inf:  # the first block
            m_run[i] = mx
            top_run[i] = top
            rest_run[i] = rest
            soft_run[i] = soft
            continue
        if m > old:
            f = _exp_gap(old, m)
            rest_run[i] = (rest_run[i] + top_run[i]) * f + rest
            top_run[i] = top
            soft_run[i] = soft_run[i] - a_prev * (m - old) + soft
            m_run[i] = mx
        elif m < old:
            f = _exp_gap(m, old)
            rest_run[i] = rest_run[i] + (rest + top) * f
            soft_run[i] = soft_run[i] + soft - a_chunk * (old - m)
        else:
            top_run[i] = top_run[i] + top
            rest_run[i] = rest_run[i] + rest
            soft_run[i] = soft_run[i] + soft


@njit(parallel=True, cache=True)
def grad_chunk(L, cap, capped, m, inv_total, coef_p, coef_t, local_t, soft_rows, a):
    """Overwrite the block with dloss/dlogits, the cap's derivative included.

    ``capped``: the block holds capped logits already (else they are capped here).
    """
    n, k = L.shape
    has_a = a.shape[0] > 0
    for i in prange(n):
        mi = np.float64(m[i])
        scale = coef_p[i] * inv_total[i]
        for j in range(k):
            x = np.float64(L[i, j])
            u = 0.0
            if cap > 0.0:
                if capped:
                    u = x / cap
                else:
                    u = math.tanh(x / cap)
                    x = cap * u
            g = scale * math.exp(x - mi)
            if j == local_t[i]:
                g -= coef_t[i]
            if has_a:
                g -= soft_rows[i] * a[j]
            if cap > 0.0:
                g *= 1.0 - u * u
            L[i, j] = g
