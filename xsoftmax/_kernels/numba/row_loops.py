# mypy: ignore-errors
# (numba intrinsics and jitted functions are not typed for mypy)
"""The numba row kernels behind :mod:`xsoftmax._kernels.numba.rows` (imports numba: load lazily).

Every kernel makes three passes over a row of ``x`` (2-D, C-contiguous, rows on
the last axis), the mathematics of :mod:`xsoftmax._definition.rows`:

1. the maximum ``m`` (``llvm.maxnum``) and the index ``top`` of its first occurrence;
2. ``w_j = exp(x_j - m)`` with an exact shift: in float64 for float32 data, and
   ``exp(z) * (1 + e)`` with the TwoSum error ``e`` of ``z = x - m`` for float64
   data; the maximum's own term is left out of the sum ``rest`` (so that
   ``log Σ = log1p(rest)`` keeps a tiny ``rest``); float64 sums use Rump's
   extraction (an exact sum of the leading parts plus a sum of the remainders);
3. the output.

Only the accumulating loops (:func:`_sum`) may be reassociated (vectorised);
everything else is compiled without fast-math, which would break TwoSum and the
rounding tricks of :func:`_exp`. ``exp`` is written here on ``llvm.fma`` (numba
calls libm's scalar ``exp``, which does not vectorise): a 32-entry table and a
degree-6 polynomial, 0.51 ulp at most for normal results, 0 below ``-745.2``.

A row whose maximum is not finite (``+inf``, all ``-inf``, NaN only) or whose
sum is not finite (a NaN entry) is flagged in ``ok``; the caller recomputes
those rows with the generic kernel. Inputs are never written.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# --------------------------------------------------------------------------- intrinsics


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (``llvm.fma.f64``)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _maxnum(typingctx, a, b):
    """``llvm.maxnum`` (the larger, ignoring a NaN) of two floats of one type."""
    if a != b or a not in (types.float32, types.float64):
        return None
    sig = a(a, a)

    def codegen(context, builder, signature, args):
        ty = ir.FloatType() if signature.args[0] == types.float32 else ir.DoubleType()
        fnty = ir.FunctionType(ty, [ty, ty])
        name = "llvm.maxnum.f32" if signature.args[0] == types.float32 else "llvm.maxnum.f64"
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _bits(typingctx, a):
    """The bits of a float64 as an int64."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _from_bits(typingctx, a):
    """The float64 whose bits are the int64 ``a``."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


# --------------------------------------------------------------------------- exp

_N = 32  # table size: exp(z) = 2**(k / 32) * exp(r), |r| <= ln(2) / 64
_N_LOG2E = 46.16624130844683  # 32 / ln(2)
_SHIFT = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_SHIFT_BITS = 0x4338000000000000
# Cody-Waite: _LN2N_HI (ln(2) / 32) has 32 significant bits, so k * _LN2N_HI is exact for
# |k| < 2**21 and z - k * _LN2N_HI is exact (Sterbenz)
_LN2N_HI = 0.021660849393811077
_LN2N_LO = -1.312785960212839e-12
_LOWEST = -746.0  # exp(-746) rounds to 0
# 2**(j / 32) as double-doubles (hi + lo, to 2**-106; computed with mpmath)
_T_HI = np.array([
    1.0, 1.0218971486541166, 1.0442737824274138, 1.0671404006768237, 1.0905077326652577,
    1.1143867425958924, 1.1387886347566916, 1.1637248587775775, 1.189207115002721,
    1.215247359980469, 1.241857812073484, 1.2690509571917332, 1.2968395546510096,
    1.3252366431597413, 1.3542555469368927, 1.383909881963832, 1.4142135623730951,
    1.4451808069770467, 1.4768261459394993, 1.5091644275934228, 1.5422108254079407,
    1.5759808451078865, 1.6104903319492543, 1.645755478153965, 1.681792830507429,
    1.718619298122478, 1.7562521603732995, 1.7947090750031072, 1.8340080864093424,
    1.8741676341103, 1.9152065613971474, 1.9571441241754002,
])  # fmt: skip
_T_LO = np.array([
    0.0, 5.109225028973444e-17, 8.551889705537965e-17, -7.899853966841582e-17,
    -3.046782079812471e-17, 1.0410278456845571e-16, 8.912812676025408e-17,
    3.8292048369240935e-17, 3.982015231465646e-17, -7.712630692681488e-17,
    4.658027591836937e-17, 2.667932131342186e-18, 2.5382502794888315e-17,
    -2.8587312100388614e-17, 7.70094837980299e-17, -6.770511658794786e-17,
    -9.667293313452913e-17, -3.0237581349939873e-17, -3.483994556892796e-17,
    -1.016455327754295e-16, 7.949834809697621e-17, -1.0136916471278304e-17,
    2.4707192569797888e-17, -1.0125679913674773e-16, 8.199010020581497e-17,
    -1.851380418263111e-17, 2.960140695448873e-17, 1.8227458427912087e-17,
    3.283107224245627e-17, -6.122763413004143e-17, -1.0619946056195963e-16,
    8.960767791036668e-17,
])  # fmt: skip
# 1/k! for k = 6 .. 2 (Taylor; the truncation is below 4e-18 relative on |r| <= 0.0109)
_C6 = 1.0 / 720.0
_C5 = 1.0 / 120.0
_C4 = 1.0 / 24.0
_C3 = 1.0 / 6.0
_C2 = 0.5


@njit(cache=True, inline="always")
def _exp(z: float) -> float:
    """``exp(z)`` for ``z <= 0`` (NaN stays NaN), branch-free so that loops vectorise.

    ``z = (32 e + j) ln(2) / 32 + r`` (``r + c`` exact to about 2**-100), then
    ``exp(z) = 2**e * (T_j + T_j q)`` with ``q = exp(r + c) - 1``: the only large
    rounding is the last addition, so the error is 0.5 ulp and about a hundredth.
    """
    z = z if not z < _LOWEST else _LOWEST
    kd = _fma(z, _N_LOG2E, _SHIFT)
    k = _bits(kd) - _SHIFT_BITS
    nd = kd - _SHIFT
    hi = _fma(-nd, _LN2N_HI, z)  # exact
    lo = nd * _LN2N_LO
    r = hi - lo
    c = (hi - r) - lo
    p = _fma(_C6, r, _C5)
    p = _fma(p, r, _C4)
    p = _fma(p, r, _C3)
    p = _fma(p, r, _C2)
    q = r + _fma(r * r, p, _fma(c, r, c))
    j = k & (_N - 1)
    th = _T_HI[j]
    y = th + _fma(th, q, _T_LO[j])
    # 2**e in two normal factors: exact first product, one rounding into subnormals
    e = k >> 5
    e1 = e >> 1
    s1 = _from_bits((e1 + 1023) << 52)
    s2 = _from_bits((e - e1 + 1023) << 52)
    return (y * s1) * s2


# --------------------------------------------------------------------------- passes


@njit(cache=True, fastmath={"reassoc"})
def _sum(v: np.ndarray) -> float:
    """Σ v in any order (reassociated, vectorised): for exact or well-conditioned sums."""
    s = 0.0
    for j in range(v.shape[0]):
        s += v[j]
    return s


@njit(cache=True)
def _row_max(row: np.ndarray) -> tuple[float, int]:
    """The maximum of ``row`` (NaN ignored) and the index of its first occurrence (-1: none)."""
    m = row[0]
    for j in range(1, row.shape[0]):
        m = _maxnum(m, row[j])  # a NaN first entry is dropped by the next maxnum
    top = -1
    for j in range(row.shape[0]):
        if row[j] == m:
            top = j
            break
    return float(m), top


@njit(cache=True)
def _twosum_err(xj: float, m: float) -> tuple[float, float]:
    """``z = xj - m`` and its rounding error ``e`` (0 where ``z`` is ``-inf``)."""
    z = xj - m
    fin = z != -np.inf
    xs = xj if fin else m
    zs = z if fin else 0.0
    back = zs - xs
    e = (xs - (zs - back)) - (m + back)
    return z, e


@njit(cache=True)
def _rest32(row: np.ndarray, m: float, top: int, w: np.ndarray) -> float:
    """float32 row: ``w_j = exp(x_j - m)`` (float64, exact shift) and Σ without ``top``."""
    for j in range(row.shape[0]):
        w[j] = _exp(np.float64(row[j]) - m)
    w[top] = 0.0
    return _sum(w)


@njit(cache=True)
def _rest64(row: np.ndarray, m: float, top: int, w: np.ndarray, q: np.ndarray) -> float:
    """float64 row: ``w_j = exp(z) * (1 + e)`` and Σ without ``top``, to about 0.5 ulp.

    ``q`` is scratch; on return ``w`` holds the terms (``w[top] == 1``).
    """
    c = row.shape[0]
    sigma = 2.0 ** (int(math.log2(c)) + 2)
    for j in range(c):
        z, e = _twosum_err(row[j], m)
        t = _exp(z)
        w[j] = _fma(t, e, t)
    w[top] = 0.0
    for j in range(c):
        qj = (w[j] + sigma) - sigma
        q[j] = qj
    lead = _sum(q)
    for j in range(c):
        q[j] = w[j] - q[j]
    w[top] = 1.0
    return lead + _sum(q)


# --------------------------------------------------------------------------- row kernels
# Each works on rows [r0, r1) so that the parallel drivers can split the rows.


@njit(cache=True)
def _log_softmax_rows(x, out, ok, wide, r0, r1):
    c = x.shape[1]
    w = np.empty(c, np.float64)
    q = np.empty(c, np.float64)
    for i in range(r0, r1):
        row = x[i]
        m, top = _row_max(row)
        if top < 0 or not math.isfinite(m):
            ok[i] = False
            continue
        rest = _rest32(row, m, top, w) if wide else _rest64(row, m, top, w, q)
        if not math.isfinite(rest):
            ok[i] = False
            continue
        ok[i] = True
        lg = math.log1p(rest)
        o = out[i]
        if wide:
            for j in range(c):
                o[j] = (np.float64(row[j]) - m) - lg
        else:
            for j in range(c):
                z, e = _twosum_err(row[j], m)
                o[j] = (z - lg) + e


@njit(cache=True)
def _softmax_rows(x, out, ok, wide, r0, r1):
    c = x.shape[1]
    w = np.empty(c, np.float64)
    q = np.empty(c, np.float64)
    for i in range(r0, r1):
        row = x[i]
        m, top = _row_max(row)
        if top < 0 or not math.isfinite(m):
            ok[i] = False
            continue
        rest = _rest32(row, m, top, w) if wide else _rest64(row, m, top, w, q)
        if not math.isfinite(rest):
            ok[i] = False
            continue
        ok[i] = True
        w[top] = 1.0
        total = 1.0 + rest
        o = out[i]
        for j in range(c):
            o[j] = w[j] / total


@njit(cache=True)
def _logsumexp_rows(x, out, ok, wide, r0, r1):
    c = x.shape[1]
    w = np.empty(c, np.float64)
    q = np.empty(c, np.float64)
    for i in range(r0, r1):
        row = x[i]
        m, top = _row_max(row)
        if top < 0 or not math.isfinite(m):
            ok[i] = False
            continue
        rest = _rest32(row, m, top, w) if wide else _rest64(row, m, top, w, q)
        ok[i] = math.isfinite(rest)
        out[i] = m + math.log1p(rest)


@njit(cache=True)
def _target_z(row, t, m, wide):
    """``x_t - m`` exactly (float64; with its TwoSum error for float64 data)."""
    if wide:
        return np.float64(row[t]) - m, 0.0
    return _twosum_err(row[t], m)


@njit(cache=True)
def _target_nll_rows(x, target, nll, ok, wide, r0, r1):
    c = x.shape[1]
    w = np.empty(c, np.float64)
    q = np.empty(c, np.float64)
    for i in range(r0, r1):
        row = x[i]
        m, top = _row_max(row)
        if top < 0 or not math.isfinite(m):
            ok[i] = False
            continue
        rest = _rest32(row, m, top, w) if wide else _rest64(row, m, top, w, q)
        ok[i] = math.isfinite(rest)
        zt, et = _target_z(row, target[i], m, wide)
        nll[i] = (math.log1p(rest) - zt) - et


@njit(cache=True)
def _nll_and_grad_rows(x, target, scale, nll, grad, ok, wide, r0, r1):
    c = x.shape[1]
    w = np.empty(c, np.float64)
    q = np.empty(c, np.float64)
    for i in range(r0, r1):
        row = x[i]
        m, top = _row_max(row)
        if top < 0 or not math.isfinite(m):
            ok[i] = False
            continue
        rest = _rest32(row, m, top, w) if wide else _rest64(row, m, top, w, q)
        if not math.isfinite(rest):
            ok[i] = False
            continue
        ok[i] = True
        t = target[i]
        zt, et = _target_z(row, t, m, wide)
        nll[i] = (math.log1p(rest) - zt) - et
        w[top] = 1.0
        total = 1.0 + rest
        s = scale[i]
        g = grad[i]
        for j in range(c):
            g[j] = s * (w[j] / total)
        g[t] = s * (w[t] / total) - s


# --------------------------------------------------------------------------- drivers


@njit(cache=True)
def log_softmax(x, out, ok, wide):
    """Log-softmax of every row of ``x`` into ``out``; ``ok[i]`` False: recompute row ``i``."""
    _log_softmax_rows(x, out, ok, wide, 0, x.shape[0])


@njit(cache=True, parallel=True)
def log_softmax_par(x, out, ok, wide, bounds):
    """:func:`log_softmax` over the row ranges ``bounds[k]:bounds[k + 1]`` in parallel."""
    for k in prange(bounds.shape[0] - 1):
        _log_softmax_rows(x, out, ok, wide, bounds[k], bounds[k + 1])


@njit(cache=True)
def softmax(x, out, ok, wide):
    """Softmax of every row of ``x`` into ``out``; ``ok[i]`` False: recompute row ``i``."""
    _softmax_rows(x, out, ok, wide, 0, x.shape[0])


@njit(cache=True, parallel=True)
def softmax_par(x, out, ok, wide, bounds):
    """:func:`softmax` over the row ranges ``bounds[k]:bounds[k + 1]`` in parallel."""
    for k in prange(bounds.shape[0] - 1):
        _softmax_rows(x, out, ok, wide, bounds[k], bounds[k + 1])


@njit(cache=True)
def logsumexp(x, out, ok, wide):
    """Logsumexp (float64) of every row of ``x`` into ``out``."""
    _logsumexp_rows(x, out, ok, wide, 0, x.shape[0])


@njit(cache=True, parallel=True)
def logsumexp_par(x, out, ok, wide, bounds):
    """:func:`logsumexp` over the row ranges in parallel."""
    for k in prange(bounds.shape[0] - 1):
        _logsumexp_rows(x, out, ok, wide, bounds[k], bounds[k + 1])


@njit(cache=True)
def target_nll(x, target, nll, ok, wide):
    """``logsumexp(x_i) - x_i[target_i]`` (float64) of every row into ``nll``."""
    _target_nll_rows(x, target, nll, ok, wide, 0, x.shape[0])


@njit(cache=True, parallel=True)
def target_nll_par(x, target, nll, ok, wide, bounds):
    """:func:`target_nll` over the row ranges in parallel."""
    for k in prange(bounds.shape[0] - 1):
        _target_nll_rows(x, target, nll, ok, wide, bounds[k], bounds[k + 1])


@njit(cache=True)
def nll_and_grad(x, target, scale, nll, grad, ok, wide):
    """:func:`target_nll` and ``scale_i * (softmax(x_i) - onehot(target_i))`` into ``grad``."""
    _nll_and_grad_rows(x, target, scale, nll, grad, ok, wide, 0, x.shape[0])


@njit(cache=True, parallel=True)
def nll_and_grad_par(x, target, scale, nll, grad, ok, wide, bounds):
    """:func:`nll_and_grad` over the row ranges in parallel."""
    for k in prange(bounds.shape[0] - 1):
        _nll_and_grad_rows(x, target, scale, nll, grad, ok, wide, bounds[k], bounds[k + 1])


@njit(cache=True)
def exp_array(z, out):
    """:func:`_exp` elementwise (for tests of its accuracy)."""
    for j in range(z.shape[0]):
        out[j] = _exp(z[j])
