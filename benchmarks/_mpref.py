"""Correctly rounded references for log_softmax, softmax, logsumexp and cross entropy.

Every reference is computed with mpmath on the *exact* values of the float inputs
(a float32 or float64 number is converted to an mpmath number without rounding) and
then rounded to the nearest number of the input's dtype, ties to even, with
subnormals and overflow handled as IEEE 754 does.

How the row is computed, at a working precision of ``prec`` bits (200 by default):

* ``m`` is the row maximum (the first one, if several are equal) and
  ``d_j = x_j - m`` is formed exactly (no rounding at all).
* ``s = sum_{j != k} exp(d_j)`` leaves the maximum's own term, ``exp(0) = 1``, out,
  so that ``logsumexp = m + log1p(s)`` and ``log_softmax_j = d_j - log1p(s)``.
  ``log1p`` is evaluated on the exactly formed ``1 + s`` (mpmath's ``log`` raises its
  own precision by the cancellation near 1), or by its series when ``s`` is tiny, so a
  top-class log-probability like ``-2.8e-14`` or ``-1e-300`` keeps every bit (the
  plain ``log(1 + s)`` at a fixed precision would return 0).
* ``softmax_j = exp(d_j) / (1 + s)``.
* ``d_j - log1p(s)`` and ``m + log1p(s)`` are added exactly, so their only error is
  the relative error of ``log1p(s)``: a cancellation in ``m + log1p(s)`` costs
  nothing, and a log-probability that lies a hair (``log1p(s)`` = 1e-8000, say) off
  an exact rounding midpoint ``d_j`` is rounded to the correct side. (A
  ``log1p(s)`` below ``2**(emin - p - 1)`` is replaced by that power of two: ``d_j``,
  ``m`` and every rounding boundary are multiples of ``2**(emin - p)``, so the side
  is the same.)

Rounding is decided with an error bound (Ziv's strategy): each value carries a
bound on its distance from the exact result; when the computed value lies so close
to a rounding boundary (a midpoint between two floats) that the bound cannot tell
the side, the whole row is recomputed at twice the precision, up to
:data:`MAX_PREC` bits, where the computed value is taken as exact (ties to even).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpmath import libmp

__all__ = [
    "FORMATS",
    "MAX_PREC",
    "PREC",
    "BatchReference",
    "FloatFormat",
    "ReferenceCache",
    "RowReference",
    "batch_reference",
    "cross_entropy_reference",
    "float_format",
    "round_to_dtype",
    "row_reference",
    "ulp",
    "ulp_errors",
]

#: Working precision (bits) of the first attempt at every row.
PREC = 200
#: Highest working precision; a value still undecided there is taken as exact.
MAX_PREC = 3200
# Bits of the working precision not trusted by the error bound: the sum of up to
# 2**30 positive terms, the exp / log / division roundings, with room to spare.
_GUARD = 32


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: ``p`` significand bits, normal exponents ``emin..emax``."""

    name: str
    p: int
    emin: int
    emax: int

    @property
    def tiny(self) -> float:
        """``2**(emin + p)``: results smaller than this may be excluded from the error."""
        return math.ldexp(1.0, self.emin + self.p)


FORMATS = {
    "float32": FloatFormat("float32", 24, -126, 127),
    "float64": FloatFormat("float64", 53, -1022, 1023),
}


def float_format(dtype: Any) -> FloatFormat:
    """The :class:`FloatFormat` of a NumPy dtype, dtype name or :class:`FloatFormat`."""
    if isinstance(dtype, FloatFormat):
        return dtype
    name = np.dtype(dtype).name
    if name not in FORMATS:
        msg = f"dtype must be float32 or float64, got {name}"
        raise ValueError(msg)
    return FORMATS[name]


def _mag(v: tuple) -> int:
    """An integer ``M`` with ``|v| < 2**M`` (``v`` a nonzero finite mpf tuple)."""
    return v[2] + v[3]


def _round_tuple(v: tuple, fmt: FloatFormat, err_exp: int | None) -> float | None:
    """Round the mpf tuple ``v`` to ``fmt`` (nearest, ties to even).

    ``err_exp``: the exact value lies within ``2**err_exp`` of ``v`` (None: ``v`` is
    exact). Returns None when that interval holds a rounding boundary, i.e. the
    correctly rounded result cannot be decided from ``v``.
    """
    sign, man, exp, bc = v
    if not man:
        if v == libmp.fzero:
            # the nearest boundaries are +-2**(emin - p), halfway to the smallest subnormal
            if err_exp is not None and err_exp >= fmt.emin - fmt.p:
                return None
            return 0.0
        if v == libmp.finf:
            return math.inf
        if v == libmp.fninf:
            return -math.inf
        return math.nan
    top = exp + bc - 1  # floor(log2 |v|)
    q = max(top, fmt.emin) - fmt.p + 1  # exponent of the ulp at v
    shift = q - exp
    if shift <= 0:
        n = man << -shift  # v is a float of the format (before overflow)
        if err_exp is not None and err_exp >= q - 1:
            return None
    else:
        n = man >> shift
        rem = man - (n << shift)
        half = 1 << (shift - 1)
        if err_exp is not None:
            gap = abs(rem - half)  # distance to the midpoint, in units of 2**exp
            # ambiguous when gap * 2**exp <= 2**err_exp
            if err_exp >= exp:
                if gap <= (1 << (err_exp - exp)):
                    return None
            elif (gap << (exp - err_exp)) <= 1:
                return None
        if rem > half or (rem == half and n & 1):
            n += 1
    if n >> fmt.p:  # rounded up to the next binade
        n >>= 1
        q += 1
    if q + fmt.p - 1 > fmt.emax:
        return -math.inf if sign else math.inf
    out = math.ldexp(float(n), q)  # n < 2**p: exact
    return -out if sign else out


def round_to_dtype(value: Any, dtype: Any) -> float:
    """Round an exact value to the nearest float of ``dtype``, ties to even.

    Parameters
    ----------
    value : mpmath.mpf, int or float
        Taken as exact (an mpmath number carries its own precision; ints and floats
        are converted without rounding).
    dtype : dtype
        float32 or float64.

    Returns
    -------
    float
        A Python float whose value belongs to ``dtype``; infinities on overflow.
    """
    import mpmath

    if isinstance(value, mpmath.mpf):
        v = value._mpf_
    elif isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"value must be an mpmath.mpf, int or float, got {type(value).__name__}"
        raise TypeError(msg)
    elif isinstance(value, int):
        v = libmp.from_int(value)
    else:
        v = libmp.from_float(value)
    out = _round_tuple(v, float_format(dtype), None)
    assert out is not None
    return out


def _log1p(s: tuple, wp: int) -> tuple:
    """``log(1 + s)`` for ``s >= 0`` to ``wp`` bits, accurate relative to the result."""
    if s == libmp.fzero:
        return libmp.fzero
    if _mag(s) < -2 * wp:
        # s - s**2 / 2: the next term is below 2**(-4 wp) relative
        return libmp.mpf_sub(s, libmp.mpf_shift(libmp.mpf_mul(s, s, wp), -1), wp)
    one_plus_s = libmp.mpf_add(libmp.fone, s, 0)  # exact
    return libmp.mpf_log(one_plus_s, wp)


@dataclass(frozen=True)
class RowReference:
    """Correctly rounded results for one row (values of the dtype, stored as float64)."""

    log_softmax: np.ndarray
    softmax: np.ndarray
    logsumexp: float
    row_max: float
    prec: int


def _row_at(xs: Sequence[float], fmt: FloatFormat, wp: int, final: bool) -> RowReference | None:
    n = len(xs)
    finite = [i for i, v in enumerate(xs) if v != -math.inf]
    k = max(finite, key=xs.__getitem__)
    m = libmp.from_float(xs[k])
    d: list[tuple | None] = [None] * n
    e: list[tuple] = [libmp.fzero] * n
    s = libmp.fzero
    for i in finite:
        di = libmp.mpf_sub(libmp.from_float(xs[i]), m, 0)  # exact
        d[i] = di
        if i == k:
            e[i] = libmp.fone
        else:
            e[i] = libmp.mpf_exp(di, wp)
            s = libmp.mpf_add(s, e[i], wp)
    exact = s == libmp.fzero  # every other entry is -inf: all results exact
    lg = _log1p(s, wp)
    one_plus_s = libmp.mpf_add(libmp.fone, s, wp)
    trusted = wp - _GUARD
    # d_j - log1p(s) and m + log1p(s) are formed exactly, so that their only error is
    # the relative error of log1p(s). Below 2**(emin - p - 1) log1p(s) is replaced by
    # that power of two: d_j, m and every rounding boundary are multiples of
    # 2**(emin - p), so no boundary lies between d_j and d_j -+ anything smaller.
    lg_err: int | None = None if exact else _mag(lg) - trusted
    floor = fmt.emin - fmt.p - 1
    if not exact and _mag(lg) <= floor:
        lg, lg_err = (0, 1, floor, 1), None

    def rnd(v: tuple, err_exp: int | None) -> float | None:
        return _round_tuple(v, fmt, None if final else err_exp)

    lsm = np.empty(n)
    sm = np.empty(n)
    for i in range(n):
        di = d[i]
        if di is None:
            lsm[i] = -math.inf
            sm[i] = 0.0
            continue
        a = rnd(libmp.mpf_sub(di, lg, 0), lg_err)
        w = libmp.mpf_div(e[i], one_plus_s, wp)
        b = rnd(w, None if exact else _mag(w) - trusted)
        if a is None or b is None:
            return None
        lsm[i] = a
        sm[i] = b
    lse = rnd(libmp.mpf_add(m, lg, 0), lg_err)
    if lse is None:
        return None
    return RowReference(lsm, sm, lse, xs[k], wp)


def row_reference(row: Any, dtype: Any = None, prec: int = PREC) -> RowReference:
    """Correctly rounded log_softmax, softmax and logsumexp of one row.

    Parameters
    ----------
    row : array_like, shape (C,)
        The logits; their exact values are used. ``-inf`` entries are allowed as long
        as one entry is finite; NaN and ``+inf`` are not.
    dtype : dtype, optional
        The format to round to (float32 or float64); by default the row's dtype.
    prec : int
        Working precision of the first attempt, in bits.

    Returns
    -------
    RowReference
    """
    arr = np.asarray(row)
    if arr.ndim != 1 or arr.size == 0:
        msg = f"row must be a non-empty 1-D array, got shape {arr.shape}"
        raise ValueError(msg)
    fmt = float_format(arr.dtype if dtype is None else dtype)
    xs = [float(v) for v in arr.tolist()]
    if any(math.isnan(v) or v == math.inf for v in xs):
        msg = "row must not contain NaN or +inf"
        raise ValueError(msg)
    if all(v == -math.inf for v in xs):
        msg = "row must have a finite entry"
        raise ValueError(msg)
    wp = prec
    while True:
        out = _row_at(xs, fmt, wp, final=wp >= MAX_PREC)
        if out is not None:
            return out
        wp *= 2


@dataclass(frozen=True)
class BatchReference:
    """References for a batch of rows (shape ``(n, C)``)."""

    log_softmax: np.ndarray
    softmax: np.ndarray
    logsumexp: np.ndarray
    row_max: np.ndarray
    max_prec: int


def _row_job(args: tuple[np.ndarray, str]) -> RowReference:
    return row_reference(args[0], args[1])


class ReferenceCache:
    """References per row, keyed by the row's dtype and bytes: each row computed once."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, bytes], RowReference] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, row: np.ndarray) -> RowReference:
        """The reference of ``row`` (computed on first request)."""
        key = (row.dtype.name, row.tobytes())
        ref = self._rows.get(key)
        if ref is None:
            ref = self._rows[key] = row_reference(row)
        return ref

    def fill(self, rows: Iterable[np.ndarray], processes: int = 1) -> None:
        """Compute the references of every row not cached yet (in ``processes`` workers)."""
        todo: dict[tuple[str, bytes], np.ndarray] = {}
        for row in rows:
            key = (row.dtype.name, row.tobytes())
            if key not in self._rows:
                todo[key] = row
        if not todo:
            return
        jobs = [(row, row.dtype.name) for row in todo.values()]
        if processes > 1 and len(jobs) > 1:
            import multiprocessing as mp

            # the longest rows first, so that the workers finish together
            order = sorted(range(len(jobs)), key=lambda j: -jobs[j][0].size)
            with mp.get_context("spawn").Pool(processes) as pool:
                results = pool.map(_row_job, [jobs[j] for j in order], chunksize=1)
            keys = list(todo)
            for j, ref in zip(order, results, strict=True):
                self._rows[keys[j]] = ref
        else:
            for key, job in zip(todo, jobs, strict=True):
                self._rows[key] = _row_job(job)


def batch_reference(x: np.ndarray, cache: ReferenceCache | None = None) -> BatchReference:
    """References for every row of the 2-D array ``x`` (rounded to ``x.dtype``)."""
    x = np.asarray(x)
    if x.ndim != 2:
        msg = f"x must be 2-D (rows, classes), got shape {x.shape}"
        raise ValueError(msg)
    cache = ReferenceCache() if cache is None else cache
    refs = [cache.get(np.ascontiguousarray(r)) for r in x]
    return BatchReference(
        np.stack([r.log_softmax for r in refs]),
        np.stack([r.softmax for r in refs]),
        np.array([r.logsumexp for r in refs]),
        np.array([r.row_max for r in refs]),
        max(r.prec for r in refs),
    )


def cross_entropy_reference(ref: BatchReference, target: np.ndarray) -> np.ndarray:
    """Correctly rounded ``-log_softmax[i, target[i]]`` (rounding is symmetric in sign)."""
    t = np.asarray(target)
    return -ref.log_softmax[np.arange(t.shape[0]), t]


def ulp(values: Any, dtype: Any) -> np.ndarray:
    """The ulp of ``dtype`` at each of ``values``: ``2**(max(floor(log2|v|), emin) - p + 1)``.

    Zero gets the smallest subnormal; non-finite values get NaN.
    """
    fmt = float_format(dtype)
    a = np.abs(np.asarray(values, dtype=np.float64))
    _, e = np.frexp(a)  # a = f * 2**e with f in [0.5, 1)
    top = np.where(a > 0, e - 1, fmt.emin)
    out = np.ldexp(1.0, np.maximum(top, fmt.emin) - fmt.p + 1)
    return np.where(np.isfinite(a), out, np.nan)


def ulp_errors(
    computed: Any,
    reference: Any,
    dtype: Any,
    *,
    scale: Any = None,
    exclude_tiny: bool = True,
) -> np.ndarray:
    """Errors ``|computed - reference| / ulp(scale)`` in ulps of ``dtype``, NaN where excluded.

    Parameters
    ----------
    computed, reference : array_like
        Results to judge and the correctly rounded references (same shape).
    dtype : dtype
        The format whose ulps count.
    scale : array_like, optional
        The magnitude whose ulp is the unit (logsumexp: ``max(|result|, |row max|)``);
        by default ``|reference|``.
    exclude_tiny : bool
        Exclude results whose scale lies in ``(0, 2**(emin + p))`` (subnormal flushing
        and the loss of relative accuracy there are allowed).

    Returns
    -------
    numpy.ndarray
        float64 errors; 0 where computed and reference are the same infinity; ``inf``
        where only one of them is infinite or the result is NaN.
    """
    fmt = float_format(dtype)
    y = np.asarray(computed, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    y, r = np.broadcast_arrays(y, r)
    sc = np.abs(r) if scale is None else np.maximum(np.abs(r), np.abs(np.asarray(scale)))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(y - r) / ulp(np.where(np.isfinite(sc), sc, 0.0), fmt)
    same = (y == r) | (np.isnan(y) & np.isnan(r))
    err = np.where(same, 0.0, err)
    err = np.where(~same & ~(np.isfinite(y) & np.isfinite(r)), np.inf, err)
    if exclude_tiny:
        err = np.where((sc > 0) & (sc < fmt.tiny), np.nan, err)
    return err
