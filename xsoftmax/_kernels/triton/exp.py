# mypy: ignore-errors
# (Triton's language is not typed for mypy)
"""Our own ``exp``, ``expm1``, ``log1p`` and ``tanh`` in float64, from fma and bit casts.

Triton's ``tl.exp``, ``tl.exp2``, ``tl.log`` and float32 ``/`` compile to
``ex2.approx``, ``lg2.approx`` and ``div.full`` on NVIDIA GPUs (8 to 64 ulps off),
and their float64 versions call libdevice, which the interpreter cannot run. Every
transcendental of the Triton kernels is therefore written here on ``tl.fma``,
integer arithmetic and ``bitcast``; the only other floating operations are
additions, multiplications and float64 divisions (``div.rn.f64``, correctly
rounded). The PTX audit (``tests/test_triton_ptx.py``) checks the compiled code.

Constants are float64 ``tl.constexpr`` values materialised with :func:`_f64`:
a bare Python float in a kernel is a float32 constant on the GPU (it would be
rounded to 24 bits) but a float64 one in the interpreter.

Measured against mpmath (a few thousand float64 points each, results compared with
the correctly rounded value): :func:`exp_neg`, :func:`expm1_neg` and
:func:`log1p_pos` (fdlibm's reduction) at most 1 ulp, :func:`tanh` at most 2 ulps.
"""

from __future__ import annotations

import triton
import triton.language as tl

# exp: z = n ln2 + r, |r| <= ln(2) / 2; ln2 split so that n * LN2_HI is exact for |n| < 2**11
LOG2E = tl.constexpr(1.4426950408889634)
SHIFT = tl.constexpr(6755399441055744.0)  # 1.5 * 2**52: adding it rounds to an integer
SHIFT_BITS = tl.constexpr(0x4338000000000000)
LN2_HI = tl.constexpr(6.93147180369123816490e-01)  # 0x3FE62E42FEE00000 (32 bits)
LN2_LO = tl.constexpr(1.90821492927058770002e-10)  # 0x3DEA39EF35793C76
LOWEST = tl.constexpr(-746.0)  # exp(-746) rounds to 0
# log1p: u = 2**k * f with f in [sqrt(2)/2, sqrt(2))
SQRT_HALF_BITS = tl.constexpr(0x3FE6A09E667F3BCD)
ONE_BITS = tl.constexpr(0x3FF0000000000000)
MANTISSA = tl.constexpr(0x000FFFFFFFFFFFFF)


@triton.jit
def _f64(value: tl.constexpr):
    """The float64 constant ``value`` (never rounded to float32, as a bare literal is)."""
    return tl.full((), value, tl.float64)


@triton.jit
def _pow2(k):
    """``2**k`` for int64 ``k`` in [-1022, 1023], from its bits."""
    return ((k + 1023) << 52).to(tl.float64, bitcast=True)


@triton.jit
def _reduce(z):
    """``z = n ln 2 + r`` and ``q = exp(r) - 1`` (float64 ``z``; ``n`` int64).

    Cody-Waite with the remainder ``r + c`` carried to about 2**-100, and a degree-13
    Taylor polynomial (truncation below 4e-18 relative on ``|r| <= 0.347``).
    """
    kd = tl.fma(z, _f64(LOG2E), _f64(SHIFT))
    n = kd.to(tl.int64, bitcast=True) - SHIFT_BITS
    nd = kd - _f64(SHIFT)
    hi = tl.fma(-nd, _f64(LN2_HI), z)  # exact
    lo = nd * _f64(LN2_LO)
    r = hi - lo
    c = (hi - r) - lo
    p = tl.fma(r, _f64(1.0 / 6227020800.0), _f64(1.0 / 479001600.0))  # 1/13!, 1/12!
    p = tl.fma(p, r, _f64(1.0 / 39916800.0))
    p = tl.fma(p, r, _f64(1.0 / 3628800.0))
    p = tl.fma(p, r, _f64(1.0 / 362880.0))
    p = tl.fma(p, r, _f64(1.0 / 40320.0))
    p = tl.fma(p, r, _f64(1.0 / 5040.0))
    p = tl.fma(p, r, _f64(1.0 / 720.0))
    p = tl.fma(p, r, _f64(1.0 / 120.0))
    p = tl.fma(p, r, _f64(1.0 / 24.0))
    p = tl.fma(p, r, _f64(1.0 / 6.0))
    p = tl.fma(p, r, _f64(0.5))
    q = r + tl.fma(r * r, p, tl.fma(c, r, c))
    return n, q


@triton.jit
def exp_neg(z):
    """``exp(z)`` for float64 ``z <= 0`` (``-inf`` gives 0, NaN stays NaN), at most 1 ulp.

    The result is ``2**n (1 + q)``, scaled in two exact steps so that a subnormal
    result is rounded once.
    """
    z = tl.where(z < _f64(LOWEST), _f64(LOWEST), z)
    n, q = _reduce(z)
    y = _f64(1.0) + q
    n1 = n >> 1
    return (y * _pow2(n1)) * _pow2(n - n1)


@triton.jit
def expm1_neg(z):
    """``exp(z) - 1`` for float64 ``z <= 0`` (``-inf`` gives -1), about 1 ulp."""
    z = tl.where(z < _f64(-60.0), _f64(-60.0), z)  # exp(-60) - 1 rounds to -1
    n, q = _reduce(z)
    s = _pow2(n)
    return tl.where(n == 0, q, tl.fma(s, q, s - _f64(1.0)))


@triton.jit
def _log1p_small(f):
    """``log(1 + f)`` for ``f`` in [sqrt(1/2) - 1, sqrt(2) - 1] (fdlibm's form).

    ``s = f / (2 + f)``, ``log(1 + f) = f - (f**2/2 - s (f**2/2 + R(s**2)))`` with
    ``R`` the series of ``2 atanh(s) - 2 s`` over ``s`` (10 terms, below 1e-17).
    """
    s = f / (_f64(2.0) + f)
    w = s * s
    r = tl.fma(w, _f64(2.0 / 21.0), _f64(2.0 / 19.0))
    r = tl.fma(r, w, _f64(2.0 / 17.0))
    r = tl.fma(r, w, _f64(2.0 / 15.0))
    r = tl.fma(r, w, _f64(2.0 / 13.0))
    r = tl.fma(r, w, _f64(2.0 / 11.0))
    r = tl.fma(r, w, _f64(2.0 / 9.0))
    r = tl.fma(r, w, _f64(2.0 / 7.0))
    r = tl.fma(r, w, _f64(2.0 / 5.0))
    r = tl.fma(r, w, _f64(2.0 / 3.0))
    r = r * w
    hfsq = _f64(0.5) * f * f
    return hfsq, s * (hfsq + r)


@triton.jit
def log1p_pos(x):
    """``log(1 + x)`` for float64 ``x >= -1`` (``-1`` gives ``-inf``, ``inf`` gives ``inf``).

    ``u = 1 + x`` with its exact rounding error ``err`` (TwoSum); ``u = 2**k (1 + f)``
    with ``f`` exact; ``log1p(x) = k ln 2 + log(1 + f) + err / u``. Below 1 ulp.
    """
    u = _f64(1.0) + x
    b = u - x
    err = (x - (u - b)) + (_f64(1.0) - b)
    hu = u.to(tl.int64, bitcast=True) + (ONE_BITS - SQRT_HALF_BITS)
    k = (hu >> 52) - 1023
    f = ((hu & MANTISSA) + SQRT_HALF_BITS).to(tl.float64, bitcast=True) - _f64(1.0)
    dk = k.to(tl.float64)
    hfsq, sr = _log1p_small(f)
    corr = err / tl.where(u > _f64(0.0), u, _f64(1.0))
    low = tl.fma(dk, _f64(LN2_LO), corr)
    res = tl.fma(dk, _f64(LN2_HI), f - (hfsq - (sr + low)))
    res = tl.where(u == _f64(0.0), -float("inf"), res)
    res = tl.where(x == float("inf"), x, res)
    return tl.where(x != x, x, res)


@triton.jit
def tanh(y):
    """``tanh(y)`` for float64 ``y`` from :func:`expm1_neg`, about 2 ulps."""
    a = tl.abs(y)
    em = expm1_neg(_f64(-2.0) * a)
    t = -em / (_f64(2.0) + em)
    return tl.where(y < _f64(0.0), -t, t)


@triton.jit
def shift(x, m):
    """``z = x - m`` (float64) and its exact rounding error ``e`` (0 where ``z`` is ``-inf``).

    TwoSum; where ``x`` is ``-inf``, ``x - m`` overflows to ``-inf`` or an intermediate
    step overflows (``|x|, |m|`` near ``finfo.max``) the error is 0, never NaN. A NaN
    ``x`` gives NaN in ``z``.
    """
    z = x - m
    fin = z != -float("inf")
    xs = tl.where(fin, x, m)
    zs = tl.where(fin, z, _f64(0.0))
    back = zs - xs
    e = (xs - (zs - back)) - (m + back)
    # near ±finfo.max the steps of TwoSum can overflow (NaN); exp(z) is 0 there anyway,
    # and a NaN ``x`` keeps its NaN in ``z``
    return z, tl.where(e == e, e, _f64(0.0))


@triton.jit
def two_sum_add(a_hi, a_lo, b_hi, b_lo):
    """``(a_hi + a_lo) + (b_hi + b_lo)`` as ``(hi, lo)``: TwoSum of the leading parts.

    The combine function of the compensated reductions (per lane and across lanes).
    """
    s = a_hi + b_hi
    bb = s - a_hi
    err = (a_hi - (s - bb)) + (b_hi - bb)
    lo = (a_lo + b_lo) + err
    return s, tl.where(s - s == 0, lo, _f64(0.0))  # an infinite (or NaN) sum: no error term


@triton.jit
def exact_sum(hi, lo):
    """The sum of a block of ``(hi, lo)`` pairs, compensated across the reduction tree."""
    s, e = tl.reduce((hi, lo), 0, two_sum_add)
    return s + e
