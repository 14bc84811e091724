"""JAX derivative rules (``jax.custom_jvp``) for the softmax family, logsumexp and the NLL.

Each rule gives the analytic tangent in terms of the primal outputs, computed
by the custom functions themselves, so that every higher derivative is the
analytic one too: ``jax.hessian`` is right where the row maximum is tied
(there the derivative of ``max`` splits over the ties, which the count of tied
maxima in the forward cannot follow), and a row with no finite entry gets a
zero tangent, never NaN.

The forward is the generic kernel's arithmetic (:mod:`xsoftmax._definition.rows`),
written for XLA on the CPU, where a reduction is a vectorised library call that
does not fuse with the elementwise work around it: one reduction for the
maximum and two sums, in the data's dtype even where x64 is on (float64
reductions are not vectorised there). The shift ``x - m`` keeps its rounding
error ``e`` (TwoSum), the terms are ``exp(x - m) (1 + e)``, and the sum is
Rump's error-free extraction (see :func:`_stats`), so every result stays within
a few ulps. Results that the contract gives in ``acc`` (logsumexp, the NLL)
are cast to it at the end.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from xsoftmax._definition.rows import _scale_of

Array = Any


def _stats(x: Array, axes: tuple[int, ...]) -> tuple[Array, ...]:
    """``(m, m_safe, z, e, w, total, log_total)`` of the rows of ``x`` over ``axes`` (kept dims).

    ``x - m_safe == z + e`` exactly (finite entries) and ``w = exp(z) (1 + e)``,
    all in ``x``'s dtype. ``total = Σ w`` and ``log_total = log Σ w`` (0 for a
    row with no entry) come from Rump's extraction: with ``sigma`` a power of two
    at least twice the row length, ``q`` (``w`` cut to multiples of ``ulp(sigma)``)
    keeps the leading bits of every term on one grid, so ``Q = Σ q`` is exact in any order and
    ``Σ w = Q + Σ (w - q)``. Each maximum contributes exactly 1 to ``Q``, so
    ``log Σ w = log1p((Q - 1) + Σ (w - q))`` keeps a tiny sum of the other terms
    (a row with one dominant logit) and counts tied maxima, with two sums that
    XLA runs as vectorised reductions in the data's dtype.
    """
    m = jnp.max(x, axis=axes, keepdims=True)
    m_safe = jnp.where(m == -jnp.inf, jnp.zeros_like(m), m)
    z = x - m_safe
    finite = jnp.isfinite(z)
    xs = jnp.where(finite, x, m_safe)
    zs = jnp.where(finite, z, jnp.zeros_like(z))
    back = zs - xs
    e = (xs - (zs - back)) - (m_safe + back)
    # terms below exp(-threshold) are exponentiated scaled by an exact power of two
    # (the generic kernel's _Scale): XLA on the CPU flushes subnormal intermediates
    sc = _scale_of(z.dtype, xp=jnp)
    tiny = z < -sc.threshold
    y = jnp.where(tiny, z + sc.shift, z)
    corr = jnp.where(tiny, jnp.full_like(z, sc.delta), jnp.zeros_like(z)) + e
    t = jnp.exp(y)
    # t + t corr is the more exact form; near underflow t corr would flush to zero
    v = jnp.where(t > _FLUSH[x.dtype], t + t * corr, t * (1 + corr))
    # every term times 2**half_bits (exact: tiny ones come 2**(2 half_bits) too large),
    # so that no summand is subnormal; the sums are brought back by exact multiplications
    scaled = v * jnp.where(tiny, jnp.full_like(v, sc.half), jnp.full_like(v, 1 / sc.half))
    w = scaled * sc.half
    # q: the scaled terms cut to the grid of spacing ulp(sigma) 2**half_bits, sigma =
    # 2**k >= 2n (floor, not the textbook (w + sigma) - sigma, which XLA simplifies to w
    # under jit)
    n = math.prod([int(x.shape[a]) for a in axes])
    bits = jnp.finfo(x.dtype).nmant
    grid = 2.0 ** (bits - max(n, 1).bit_length() - 1) * sc.half  # 1 / spacing
    q = jnp.floor(scaled * grid) * (1 / grid)
    big = jnp.sum(q, axis=axes, keepdims=True) * sc.half
    small = jnp.sum(scaled - q, axis=axes, keepdims=True) * sc.half
    total = big + small
    log_total = jnp.log1p((big - 1) + small)
    log_total = jnp.where(big == 0, jnp.zeros_like(log_total), log_total)
    return m, m_safe, z, e, w, total, log_total


_FLUSH = {jnp.dtype(jnp.float32): 2.0**-90, jnp.dtype(jnp.float64): 2.0**-960}
"""Below these, ``exp(z) * e`` may flush to zero while ``e`` still matters (``|e| >= 2**-36``
in float32, ``2**-60`` in float64); there ``exp(z) * (1 + e)`` is used instead."""


# --------------------------------------------------------------------------------------
# softmax and log_softmax
# --------------------------------------------------------------------------------------
@partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _family(x: Array, op: str, axes: tuple[int, ...], acc: Any) -> Array:
    _, _, z, e, w, total, log_sum = _stats(x, axes)
    if op == "softmax":
        return w / jnp.where(total == 0, jnp.ones_like(total), total)
    return (z - log_sum) + e


@_family.defjvp
def _family_jvp(
    op: str, axes: tuple[int, ...], acc: Any, primals: tuple[Array], tangents: tuple[Array]
) -> tuple[Array, Array]:
    (x,), (x_dot,) = primals, tangents
    y = _family(x, op, axes, acc)
    t = x_dot.astype(y.dtype)
    if op == "softmax":
        return y, y * (t - jnp.sum(y * t, axis=axes, keepdims=True))
    y_dot = t - jnp.sum(jnp.exp(y) * t, axis=axes, keepdims=True)
    empty = jnp.max(y, axis=axes, keepdims=True) == -jnp.inf
    return y, jnp.where(empty, jnp.zeros_like(y_dot), y_dot)


def softmax_family(op: str, x: Array, axes: tuple[int, ...], acc: Any) -> Array:
    """``op`` ("softmax" or "log_softmax") of ``x`` over ``axes``, in ``x``'s dtype.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from xsoftmax._kernels.jax import rules as jax_rules
    >>> f = lambda v: jax_rules.softmax_family("log_softmax", v, (0,), jnp.float32)[0]
    >>> [round(float(g), 4) for g in jax.grad(f)(jnp.zeros(2))]
    [0.5, -0.5]
    """
    return _family(x, op, tuple(axes), acc)


# --------------------------------------------------------------------------------------
# logsumexp
# --------------------------------------------------------------------------------------
@partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _logsumexp(x: Array, axes: tuple[int, ...], acc: Any) -> Array:
    m, m_safe, _, _, _, _, log_sum = _stats(x, axes)
    m = m.astype(acc)
    out = m_safe.astype(acc) + log_sum.astype(acc)
    out = jnp.where(m == -jnp.inf, m, out)  # no entry: -inf
    return jnp.where(m == jnp.inf, m, out)  # an +inf entry: +inf


@_logsumexp.defjvp
def _logsumexp_jvp(
    axes: tuple[int, ...], acc: Any, primals: tuple[Array], tangents: tuple[Array]
) -> tuple[Array, Array]:
    (x,), (x_dot,) = primals, tangents
    out = _logsumexp(x, axes, acc)
    p = _family(x, "softmax", axes, acc)  # 0 in a row with no finite entry
    return out, jnp.sum(p.astype(acc) * x_dot.astype(acc), axis=axes, keepdims=True)


def logsumexp(x: Array, axes: tuple[int, ...], acc: Any) -> Array:
    """``log Σ exp(x)`` over ``axes`` with kept dims, in ``acc``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from xsoftmax._kernels.jax import rules as jax_rules
    >>> round(float(jax_rules.logsumexp(jnp.zeros((1, 4)), (1,), jnp.float32)[0, 0]), 4)
    1.3863
    """
    return _logsumexp(x, tuple(axes), acc)


# --------------------------------------------------------------------------------------
# the NLL of class-index targets
# --------------------------------------------------------------------------------------
def _take(v: Array, target: Array, axis: int) -> Array:
    return jnp.squeeze(jnp.take_along_axis(v, jnp.expand_dims(target, axis), axis=axis), axis)


@partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _nll(x: Array, target: Array, axis: int, acc: Any) -> Array:
    _, _, z, e, _, _, log_sum = _stats(x, (axis,))
    log_sum = jnp.squeeze(log_sum, axis).astype(acc)
    return (log_sum - _take(z, target, axis).astype(acc)) - _take(e, target, axis).astype(acc)


@_nll.defjvp
def _nll_jvp(
    axis: int, acc: Any, primals: tuple[Array, Array], tangents: tuple[Array, Array]
) -> tuple[Array, Array]:
    x, target = primals
    x_dot = tangents[0].astype(acc)
    nll = _nll(x, target, axis, acc)
    p = _family(x, "softmax", (axis,), acc).astype(acc)
    empty = jnp.max(x, axis=axis) == -jnp.inf
    nll_dot = jnp.sum(p * x_dot, axis=axis) - _take(x_dot, target, axis)
    return nll, jnp.where(empty, jnp.zeros_like(nll_dot), nll_dot)


def target_nll(x: Array, target: Array, axis: int, acc: Any) -> tuple[Array, Array]:
    """``(logsumexp(x) - x[target], empty)`` per sample along the class axis ``axis``.

    ``target`` holds valid class indices (ignored ones replaced by 0); the NLL is
    in ``acc`` with tangent ``Σ softmax(x) ẋ - ẋ[target]``; ``empty`` marks the
    rows whose maximum is ``-inf`` (their tangent is 0).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from xsoftmax._kernels.jax import rules as jax_rules
    >>> f = lambda v: jax_rules.target_nll(v, jnp.array([1]), 1, jnp.float32)[0].sum()
    >>> [float(g) for g in jax.grad(f)(jnp.zeros((1, 2)))[0]]
    [0.5, -0.5]
    """
    axis = axis % x.ndim
    nll = _nll(x, target, axis, acc)
    return nll, jnp.max(x, axis=axis) == -jnp.inf
