"""Standard-only kernels: the exact shifted-exponential row statistics.

Everything here uses the array API standard alone (``xp`` is a required
keyword), validates nothing and never writes into an array. The public
functions validate, pick the dtypes and call these.

The kernels keep every row within a few ulps of the correctly rounded value:

* ``z = x - m`` is rounded; its rounding error ``e`` is recovered exactly
  (TwoSum) and folded back in, so ``exp(x - m)`` is ``exp(z) * (1 + e)`` and
  ``x - m`` is ``z + e``;
* the maximum's own terms (``k`` of them, weight ``B``) are taken out of the
  sum, so ``log Σ exp(x - m) = log B + log1p(R / B)`` where ``R`` sums the
  other terms: a tiny ``R`` (a row with one dominant logit) is not lost in
  ``1 + R``;
* row sums of float32 data accumulate in float64 where the namespace has it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from xsoftmax._contract.prepare import matched
from xsoftmax._definition.special_values import nan_where

Array = Any


@dataclass(frozen=True)
class Shifted:
    """``x`` shifted by its row maximum, with the rounding error of the shift.

    ``x - m_safe == z + e`` exactly for finite entries; ``e`` is 0 where ``z`` is
    not finite, and None when ``z`` was computed in a wider dtype (exact). ``m_safe`` is the row maximum with ``-inf`` (an empty row)
    replaced by 0.
    """

    m: Array
    m_safe: Array
    z: Array
    e: Array | None

    def plus_e(self, value: Array) -> Array:
        """``value + e`` (``value`` itself when the shift was exact)."""
        return value if self.e is None else value + self.e


@dataclass(frozen=True)
class RowSums:
    """Per-row sums of the shifted exponentials, split at the row maximum.

    ``w`` is ``b * exp(x - m)`` for every entry (1 exactly at the maximum when
    ``b`` is None). ``top`` is the summed weight of the entries equal to the row
    maximum and ``rest`` the sum over every other entry, in the accumulation dtype.
    """

    w: Array
    top: Array
    rest: Array


def shift_by_max(x: Array, axes: tuple[int, ...], acc: Any, *, xp: Any) -> Shifted:
    """Subtract the row maximum over ``axes``, exactly.

    When ``acc`` is wider than ``x`` (float32 data, float64 available), the
    shift is done in ``acc``, where the difference of two float32 numbers is
    exact (to 2**-53 relative), and ``e`` is None. Otherwise ``z`` keeps ``x``'s
    dtype and its rounding error ``e`` is recovered with TwoSum.
    """
    m = xp.max(x, axis=axes, keepdims=True)
    m_safe = xp.where(m == -xp.inf, xp.zeros_like(m), m)
    if acc != x.dtype:
        z = xp.astype(x, acc) - xp.astype(m_safe, acc)
        return Shifted(m=m, m_safe=m_safe, z=z, e=None)
    z = x - m_safe
    # TwoSum of x and -m_safe: x - m_safe = z + e exactly. Entries whose shift is
    # not finite (-inf logits) are replaced by the maximum first, so that no
    # inf - inf is ever formed (lazy NumPy-backed arrays would warn at compute).
    finite = xp.isfinite(z)
    xs = xp.where(finite, x, m_safe)
    zs = xp.where(finite, z, xp.zeros_like(z))
    back = zs - xs
    e = (xs - (zs - back)) - (m_safe + back)
    return Shifted(m=m, m_safe=m_safe, z=z, e=e)


def row_sums(
    s: Shifted, axes: tuple[int, ...], acc: Any, *, xp: Any, b: Array | None = None
) -> RowSums:
    """Sum ``b * exp(x - m)`` over ``axes``, keeping the maximum's terms apart.

    ``top`` is the sum of the actual terms at the maximum (exactly the number of
    tied maxima when ``b`` is None), not a count: its derivative carries the
    maximum's, so that every derivative of ``m`` cancels, the second ones too.

    Terms below ``exp(-threshold)`` are exponentiated and summed in a domain
    scaled by a power of two (see :class:`_Scale`), so that no intermediate is
    subnormal where the result is normal (XLA on CPU and GPUs flush them to 0).
    """
    z = s.z
    sc = _scale_of(z.dtype, xp=xp)
    is_top = z == 0
    small = z < -sc.threshold
    zero = xp.zeros_like(z)
    # z + shift is exact for the small entries (both multiples of ulp(threshold))
    y = xp.where(small, z + sc.shift, z)
    corr = xp.where(small, xp.full_like(z, sc.delta), zero)
    if s.e is not None:
        corr = corr + s.e
    t = xp.exp(y)
    u = t + t * corr  # exp(z + e), times 2**(2 * half_bits) where small
    u = xp.where(small, u * sc.half, u)  # now times 2**half_bits where small
    if b is not None:
        bb, u = matched(b, u, xp)
        u = bb * u
    w = xp.where(small, u * sc.half, u)
    not_rest = xp.logical_or(is_top, small)
    others = xp.where(not_rest, xp.zeros_like(u), u)
    if b is None and acc == w.dtype:
        rest = accurate_sum(others, axes, xp=xp)
    else:
        rest = xp.sum(others, axis=axes, keepdims=True, dtype=acc)
    tiny = xp.sum(xp.where(small, u, xp.zeros_like(u)), axis=axes, keepdims=True, dtype=acc)
    rest = rest + tiny * sc.half
    top = xp.sum(xp.where(is_top, w, xp.zeros_like(w)), axis=axes, keepdims=True, dtype=acc)
    return RowSums(w=w, top=top, rest=rest)


@dataclass(frozen=True)
class _Scale:
    """How to exponentiate tiny terms without a subnormal intermediate.

    An entry with ``z < -threshold`` is exponentiated as ``exp(z + shift)``,
    where ``shift`` is ``2 * half_bits * log(2)`` rounded to a multiple of
    ``ulp(threshold)``: ``z + shift`` is then exact, ``delta`` (the rounding of
    ``shift``) joins the shift's own correction ``e``, and the result is brought
    back by two exact multiplications by ``half = 2**-half_bits``: the first
    before weights are applied and terms are summed, the second on the sum (or
    on the term itself), where the value is normal if the result is.
    """

    threshold: float
    shift: float
    delta: float
    half: float


def _make_scale(half_bits: int, ulp_exp: int, threshold: float) -> _Scale:
    with localcontext() as ctx:
        ctx.prec = 60
        exact = 2 * half_bits * _LN2
        shift = (exact * 2**ulp_exp).to_integral_value() / 2**ulp_exp
        return _Scale(threshold, float(shift), float(exact - shift), 2.0**-half_bits)


_LN2 = Decimal("0.693147180559945309417232121458176568075500134360255254120680")
# float64: entries below exp(-512), shifted by 1024 log 2 (ulp(512) = 2**-43);
# float32: below exp(-64), shifted by 128 log 2 (ulp(64) = 2**-17)
_SCALE64 = _make_scale(512, 43, 512.0)
_SCALE32 = _make_scale(64, 17, 64.0)


def _scale_of(dtype: Any, *, xp: Any) -> _Scale:
    return _SCALE64 if dtype == xp.float64 else _SCALE32


def accurate_sum(v: Array, axes: tuple[int, ...], *, xp: Any) -> Array:
    """Sum of ``v`` (entries in [0, 1], NaN/inf allowed) over ``axes`` to about 0.5 ulp.

    Rump's extraction: with ``sigma`` a power of two at least twice the number
    of terms, ``q = (sigma + v) - sigma`` keeps the leading bits of every term on
    a common grid, so ``Σ q`` is exact in any summation order; the remainders
    ``v - q`` are exact and tiny, and their rounding in the sum is negligible.
    Used where no wider accumulation dtype exists (float64 data; float32 on JAX
    without x64), since plain pairwise sums drift by several ulps on long rows.
    """
    n = math.prod([int(v.shape[a]) for a in axes])
    sigma = 2.0 ** (max(n, 1).bit_length() + 1)
    q = (v + sigma) - sigma
    remainder = v - q
    return xp.sum(q, axis=axes, keepdims=True) + xp.sum(remainder, axis=axes, keepdims=True)


def log_total(sums: RowSums, *, xp: Any) -> Array:
    """``log(top + rest)`` for a positive ``top`` (the unweighted case), exact for tiny ``rest``.

    Rows with no entry (``top == 0``) give 0, so that callers can use the value
    without producing NaN and mask the row afterwards.
    """
    top = xp.where(sums.top == 0, xp.ones_like(sums.top), sums.top)
    return xp.log(top) + xp.log1p(sums.rest / top)


def _log_of_nonnegative(v: Array, *, xp: Any) -> Array:
    """``log(v)`` for ``v >= 0``, giving ``-inf`` at 0 without evaluating ``log(0)``.

    Lazy NumPy-backed arrays (Dask) would warn at compute time, outside any
    ``errstate`` the caller set.
    """
    zero = v == 0
    return xp.where(zero, xp.full_like(v, -xp.inf), xp.log(xp.where(zero, xp.ones_like(v), v)))


def _sign(v: Array, xp: Any) -> Array:
    """``sign(v)`` (NaN for NaN) without writes: array_api_compat's torch ``sign`` writes
    NaN through a boolean mask, which ``torch.func.vmap`` cannot batch."""
    return xp.where(v > 0, xp.ones_like(v), xp.where(v < 0, -xp.ones_like(v), v * 0))


def log_abs_total(sums: RowSums, *, xp: Any) -> tuple[Array, Array]:
    """``(log|top + rest|, sign(top + rest))`` for weights of any sign.

    The larger of ``|top|`` and ``|rest|`` is taken out as the base, so that
    ``log|base| + log1p(other / base)`` never cancels (a tiny weight on the
    largest logit leaves ``rest`` in charge).
    """
    top, rest = sums.top, sums.rest
    big = xp.abs(rest) > xp.abs(top)
    base = xp.where(big, rest, top)
    other = xp.where(big, top, rest)
    base_zero = base == 0
    base_safe = xp.where(base_zero, xp.ones_like(base), base)
    q = other / base_safe  # |q| <= 1
    one_plus_q = 1 + q
    above = q > -1
    log_rel = xp.where(
        above,
        xp.log1p(xp.where(above, q, xp.zeros_like(q))),
        _log_of_nonnegative(xp.abs(one_plus_q), xp=xp),
    )
    log_abs = xp.where(base_zero, xp.full_like(base, -xp.inf), xp.log(xp.abs(base_safe)) + log_rel)
    sign = xp.where(base_zero, xp.zeros_like(base), _sign(base_safe, xp) * _sign(one_plus_q, xp))
    return log_abs, sign


def log_softmax(x: Array, axes: tuple[int, ...], acc: Any, *, xp: Any) -> Array:
    """``x - logsumexp(x)`` over ``axes`` as ``(z - log Σ) + e`` (dtype of the shift)."""
    s = shift_by_max(x, axes, acc, xp=xp)
    log_sum = xp.astype(log_total(row_sums(s, axes, acc, xp=xp), xp=xp), s.z.dtype)
    return s.plus_e(s.z - log_sum)


def softmax(x: Array, axes: tuple[int, ...], acc: Any, *, xp: Any) -> Array:
    """``exp(x - m) / Σ exp(x - m)`` over ``axes`` (dtype of the shift); empty rows give 0."""
    s = shift_by_max(x, axes, acc, xp=xp)
    sums = row_sums(s, axes, acc, xp=xp)
    total = sums.top + sums.rest
    total = xp.astype(xp.where(total == 0, xp.ones_like(total), total), sums.w.dtype)
    return sums.w / total


def logsumexp(
    x: Array,
    axes: tuple[int, ...],
    acc: Any,
    *,
    xp: Any,
    b: Array | None = None,
    return_sign: bool = False,
) -> tuple[Array, Array | None]:
    """``log Σ b exp(x)`` over ``axes`` with kept dims, in ``acc``; and its sign if asked.

    Entries with ``b == 0`` take no part. Without ``return_sign`` a negative sum
    gives NaN (scipy's semantics). A row with an infinite term (``x = +inf``, or
    an infinite weight) is ``+inf`` with the sign of those terms, NaN where
    they have both signs (``inf - inf``), as the direct sum gives (SciPy gh-23548).
    """
    if b is not None:
        x = xp.where(b != 0, x, xp.full_like(x, -xp.inf))
    s = shift_by_max(x, axes, acc, xp=xp)
    sums = row_sums(s, axes, acc, xp=xp, b=b)
    m = xp.astype(s.m, acc)
    m_safe = xp.astype(s.m_safe, acc)
    empty = m == -xp.inf
    if b is None:
        out = m_safe + log_total(sums, xp=xp)
        out = xp.where(m == xp.inf, m, out)  # an +inf entry: +inf
        out = xp.where(empty, m, out)  # no entry: -inf
        sign = xp.ones_like(out)
    else:
        log_abs, sign = log_abs_total(sums, xp=xp)
        out = xp.where(empty, m, m_safe + log_abs)  # no entry: -inf
        at_inf, inf_sign = _infinite_terms(x, b, axes, xp=xp)
        inf_sign = xp.astype(inf_sign, acc)
        out = xp.where(at_inf, xp.abs(inf_sign) * xp.inf, out)  # inf, or NaN
        sign = xp.where(at_inf, inf_sign, sign)
        if not return_sign:
            out = nan_where(sign < 0, out, xp)
    if return_sign:
        sign = xp.where(empty, xp.zeros_like(sign), sign)
        sign = xp.where(xp.isnan(out), out, sign)
        return out, sign
    return out, None


def _infinite_terms(x: Array, b: Array, axes: tuple[int, ...], *, xp: Any) -> tuple[Array, Array]:
    """Rows whose sum has an infinite or NaN term ``b * exp(x)``, and that sum's sign.

    ``x`` has ``-inf`` where ``b == 0``. The sign is +1 or -1 (the sign of the
    infinite terms), NaN where infinite terms of both signs meet (``inf - inf``)
    or a term is NaN: a NaN weight or entry, or an infinite weight on ``exp(-inf)``
    (``inf * 0``), as the direct sum gives.
    """
    b_inf = xp.isinf(b)
    term_inf = xp.logical_or(x == xp.inf, xp.logical_and(b_inf, x != -xp.inf))
    up = xp.any(xp.logical_and(term_inf, b > 0), axis=axes, keepdims=True)
    down = xp.any(xp.logical_and(term_inf, b < 0), axis=axes, keepdims=True)
    term_nan = xp.logical_or(
        xp.logical_or(xp.isnan(b), xp.isnan(x)), xp.logical_and(b_inf, x == -xp.inf)
    )
    bad = xp.logical_or(xp.any(term_nan, axis=axes, keepdims=True), xp.logical_and(up, down))
    sign = xp.astype(up, b.dtype) * 2 - 1  # +1 where a term is +inf, else -1
    sign = nan_where(bad, sign, xp)
    return xp.logical_or(xp.logical_or(up, down), bad), sign
