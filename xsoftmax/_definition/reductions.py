"""Products and reductions of loss terms, shared by the cross-entropy family and BCE.

* :func:`times` -- ``coef * value`` where a zero coefficient against an infinite
  value contributes 0, and the derivative with respect to ``coef`` stays ``value``;
* :func:`divide` -- ``total / denominator`` as IEEE and torch define it, also for a
  zero denominator, without forming ``x / 0`` (lazy NumPy-backed arrays would warn);
* :func:`mean` -- a mean that does not overflow where the plain sum of finite terms
  does, and is the plain ``sum / denominator`` wherever that sum is finite;
* :func:`zero_d` -- 0-d arrays, never NumPy scalars.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from xsoftmax._contract.prepare import matched
from xsoftmax._definition.special_values import nan_where

Array = Any


def times(coef: Array, value: Array, xp: Any) -> Array:
    """``coef * value`` with ``0 * ±inf`` read as 0 (the limit of the loss).

    Only the product of a zero coefficient and an infinite value is replaced;
    everywhere else it is the plain product, so autograd's derivative with respect
    to ``coef`` is ``value`` also where ``coef`` is exactly 0 (a one-hot target that
    is itself differentiated). The infinite value is replaced before the product,
    so neither the product nor its derivative forms ``0 * inf``: there the
    derivative with respect to ``coef`` is 0 (not the infinite ``value``). A NaN
    value stays NaN.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> coef = xp.asarray([0.0, 0.0, 2.0])
    >>> [float(v) for v in times(coef, xp.asarray([xp.inf, 3.0, 3.0]), xp)]
    [0.0, 0.0, 6.0]
    """
    void = xp.logical_and(coef == 0, xp.isinf(value))
    if hasattr(coef, "dtype"):
        coef, value = matched(coef, value, xp)
    return coef * xp.where(void, xp.zeros_like(value), value)


def divide(total: Array, denominator: Array, xp: Any) -> Array:
    """``total / denominator`` (0-d arrays), with IEEE's (torch's) value where it is 0.

    A zero denominator gives ``±inf`` by the signs of ``total`` and of the zero,
    and NaN for a zero or NaN ``total``: a weighted mean over weights that sum to
    zero is ``±inf`` in torch, one over no counted weight NaN. No ``x / 0`` is
    formed, and the derivative there is 0 (the contract's gradient of a mean
    over a zero normaliser).
    """
    zero = denominator == 0
    quotient = total / xp.where(zero, xp.ones_like(denominator), denominator)
    flip = xp.logical_and(zero, xp.signbit(denominator))
    signed = xp.where(flip, -total, total)
    inf = xp.full_like(quotient, xp.inf)
    out = xp.where(zero, xp.where(signed > 0, inf, -inf), quotient)
    # NaN for a zero or NaN total over a zero denominator (`not signed != 0` holds for both)
    return nan_where(xp.logical_and(zero, xp.logical_not(signed != 0)), out, xp)


def _scale_exponent(per: Array) -> int:
    """``k`` with ``2**k`` above the number of terms (64 where a size is unknown)."""
    try:
        n = math.prod([int(s) for s in per.shape])
    except (TypeError, ValueError):  # an unknown (NaN or None) size
        return 64
    return max(n, 1).bit_length()


def mean(per: Array, denominator: Array, xp: Any, *, total: Array | None = None) -> Array:
    """``Σ per / denominator`` over every element of ``per``, without spurious overflow.

    Where the plain sum is finite this is exactly ``divide(Σ per, denominator)``.
    Where it is not (finite terms near the dtype's maximum overflow it), the sum
    is taken over ``per * 2**-k`` with ``2**k`` above the number of terms, which
    cannot overflow for finite terms, and the quotient is scaled back by ``2**k``:
    powers of two scale exactly, so the result is the exact mean rounded, or
    ``inf`` only where the mean itself exceeds the maximum. ``total`` is ``Σ per``
    when the caller has it already.
    """
    if total is None:
        total = xp.sum(per)
    k = _scale_exponent(per)
    scaled = xp.sum(per * 2.0**-k)
    plain = divide(total, denominator, xp)
    rescued = divide(scaled, denominator, xp) * 2.0**k
    return xp.where(xp.isfinite(total), plain, rescued)


def zero_d(a: Array) -> Array:
    """``a`` as an array: a NumPy scalar (what NumPy reductions return) becomes 0-d."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(a, numpy.generic):
        return numpy.asarray(a)
    return a
