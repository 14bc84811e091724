"""NumPy fast path: the exact row kernels with in-place ufuncs on cache-sized blocks.

Same mathematics as :mod:`xsoftmax._definition.rows` (the maximum's term kept out of
the sum, an exact shift), written with NumPy's ``out=`` buffers so that a
block of rows is processed in cache without temporaries:

* float32: the shift ``x - m`` is done in float64 (exact), exponentials and
  sums in float64, one rounding to float32 at the end;
* float64: the shift's rounding error is recovered with TwoSum;
* the maximum's own term is removed by index (``argmax``), other equal maxima
  stay in the sum, where they make ``log1p`` of a sum >= 1 harmless.

Rows whose statistics come out non-finite (``-inf``, ``+inf`` or NaN entries,
empty rows, overflowing shifts) are recomputed by the generic kernel, so the
special values follow the contract exactly. Property tests hold every result
within 2 ulps of the generic path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from xsoftmax._contract.namespaces import numpy_namespace
from xsoftmax._definition import rows as _generic
from xsoftmax._definition.blocked import BLOCK_BYTES

Array = Any


def eligible(x: Any, axes: tuple[int, ...]) -> bool:
    """A float32/float64 ndarray of at least 2 dimensions, reduced over its last axis only."""
    return (
        type(x) is np.ndarray
        and x.dtype in (np.float32, np.float64)
        and x.ndim >= 1
        and axes == (x.ndim - 1,)
        and x.shape[-1] > 0
    )


@dataclass
class _Block:
    """Exact row statistics of one block of rows."""

    rows: np.ndarray  # arange(n)
    top: np.ndarray  # (n,) index of the first maximum
    m: np.ndarray  # (n,) the maximum, input dtype
    z: np.ndarray  # (n, C) x - m, float64 (exact for float32; rounded for float64)
    e: np.ndarray | None  # (n, C) rounding error of z (float64 input), else None
    w: np.ndarray  # (n, C) exp(x - m), with w[top] == 0
    rest: np.ndarray  # (n,) Σ exp(x - m) without the top term, float64
    log_sum: np.ndarray  # (n,) log Σ exp(x - m), float64
    ok: np.ndarray  # (n,) rows whose statistics are finite (others: generic kernel)


class _Buffers:
    """Scratch buffers reused across blocks."""

    def __init__(self, n: int, c: int, exact64: bool) -> None:
        self.z = np.empty((n, c), np.float64)
        self.w = np.empty((n, c), np.float64)
        self.e = np.empty((n, c), np.float64) if exact64 else None
        self.tmp = np.empty((n, c), np.float64) if exact64 else None
        self.rem = np.empty((n, c), np.float64) if exact64 else None


def _blocks(x2: np.ndarray) -> Iterator[tuple[int, int]]:
    n = x2.shape[0]
    step = _rows_per_block(x2)
    for start in range(0, n, step):
        yield start, min(start + step, n)


def _stats(xb: np.ndarray, buf: _Buffers) -> _Block:
    n = xb.shape[0]
    rows = np.arange(n)
    top = np.argmax(xb, axis=1)
    m = xb[rows, top]
    mcol = m[:, None]
    z = np.subtract(xb, mcol, out=buf.z[:n], dtype=np.float64)
    e = None
    w = buf.w[:n]
    if xb.dtype == np.float64:
        assert buf.e is not None
        assert buf.tmp is not None
        back = np.subtract(z, xb, out=w)
        tmp = np.subtract(z, back, out=buf.tmp[:n])
        np.subtract(xb, tmp, out=tmp)
        np.add(back, mcol, out=back)
        e = np.subtract(tmp, back, out=buf.e[:n])
        np.exp(z, out=w)
        np.multiply(w, e, out=tmp)
        np.add(w, tmp, out=w)
    else:
        np.exp(z, out=w)
    w[rows, top] = 0.0
    rest = _accurate_rest(w, buf) if xb.dtype == np.float64 else np.sum(w, axis=1)
    ok = np.isfinite(rest) & np.isfinite(m)
    log_sum = np.log1p(rest)
    return _Block(rows, top, m, z, e, w, rest, log_sum, ok)


def _accurate_rest(w: np.ndarray, buf: _Buffers) -> np.ndarray:
    """Row sums of ``w`` (entries in [0, 1]) to about 0.5 ulp (see ``_generic.accurate_sum``)."""
    n, c = w.shape
    assert buf.tmp is not None
    assert buf.rem is not None
    sigma = 2.0 ** (c.bit_length() + 1)
    q = np.add(w, sigma, out=buf.tmp[:n])
    np.subtract(q, sigma, out=q)
    remainder = np.subtract(w, q, out=buf.rem[:n])
    return np.sum(q, axis=1) + np.sum(remainder, axis=1)


def _fix_rows(out: np.ndarray, xb: np.ndarray, bad: np.ndarray, kernel: Any) -> None:
    """Recompute the rows ``bad`` of ``out`` with the generic kernel."""

    xp = numpy_namespace()

    idx = np.flatnonzero(bad)
    out[idx] = kernel(xb[idx], xp)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Exact log-softmax over the last axis, in ``x``'s dtype."""
    x2 = x.reshape(-1, x.shape[-1])
    out = np.empty(x2.shape, x.dtype)
    buf = _Buffers(min(x2.shape[0], _rows_per_block(x2)), x2.shape[1], x.dtype == np.float64)
    for a, b in _blocks(x2):
        xb = x2[a:b]
        s = _stats(xb, buf)
        ob = out[a:b]
        if s.e is None:
            np.subtract(s.z, s.log_sum[:, None], out=ob, casting="same_kind")
        else:
            np.subtract(s.z, s.log_sum[:, None], out=ob)
            np.add(ob, s.e, out=ob)
        ob[s.rows, s.top] = -s.log_sum
        if not s.ok.all():
            _fix_rows(
                ob, xb, ~s.ok, lambda r, xp: _generic.log_softmax(r, (1,), np.float64, xp=xp)
            )
    return out.reshape(x.shape)


def softmax(x: np.ndarray) -> np.ndarray:
    """Exact softmax over the last axis, in ``x``'s dtype."""
    x2 = x.reshape(-1, x.shape[-1])
    out = np.empty(x2.shape, x.dtype)
    buf = _Buffers(min(x2.shape[0], _rows_per_block(x2)), x2.shape[1], x.dtype == np.float64)
    for a, b in _blocks(x2):
        xb = x2[a:b]
        s = _stats(xb, buf)
        s.w[s.rows, s.top] = 1.0
        np.divide(s.w, (1.0 + s.rest)[:, None], out=out[a:b], casting="same_kind")
        if not s.ok.all():
            _fix_rows(
                out[a:b], xb, ~s.ok, lambda r, xp: _generic.softmax(r, (1,), np.float64, xp=xp)
            )
    return out.reshape(x.shape)


def logsumexp(x: np.ndarray) -> np.ndarray:
    """Exact logsumexp over the last axis (float64 result)."""
    x2 = x.reshape(-1, x.shape[-1])
    out = np.empty(x2.shape[0], np.float64)
    buf = _Buffers(min(x2.shape[0], _rows_per_block(x2)), x2.shape[1], x.dtype == np.float64)
    for a, b in _blocks(x2):
        xb = x2[a:b]
        s = _stats(xb, buf)
        np.add(s.m, s.log_sum, out=out[a:b], dtype=np.float64)
        if not s.ok.all():
            _fix_rows(
                out[a:b],
                xb,
                ~s.ok,
                lambda r, xp: _generic.logsumexp(r, (1,), np.float64, xp=xp)[0][:, 0],
            )
    return out.reshape(x.shape[:-1])


def target_terms(x: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: ``log Σ exp(x - m)``, ``x[target] - m`` (float64, exact) and "no finite logit".

    ``target`` holds safe class indices (already checked) of the rows of ``x``.
    Rows with non-finite statistics come from the generic kernel.
    """
    x2 = x.reshape(-1, x.shape[-1])
    t1 = target.reshape(-1)
    if x2.shape[1] * 8 > BLOCK_BYTES:
        return _long_row_terms(x2, t1, x.shape[:-1])
    log_sum = np.empty(x2.shape[0], np.float64)
    picked = np.empty(x2.shape[0], np.float64)
    empty = np.empty(x2.shape[0], bool)
    buf = _Buffers(min(x2.shape[0], _rows_per_block(x2)), x2.shape[1], x.dtype == np.float64)
    for a, b in _blocks(x2):
        xb = x2[a:b]
        s = _stats(xb, buf)
        tb = t1[a:b]
        zt = s.z[s.rows, tb]
        if s.e is not None:
            zt = zt + s.e[s.rows, tb]
        log_sum[a:b] = s.log_sum
        picked[a:b] = zt
        empty[a:b] = s.m == -np.inf
        if not s.ok.all():
            idx = np.flatnonzero(~s.ok)
            log_sum[a + idx], picked[a + idx] = _generic_target_terms(xb[idx], tb[idx])
    lead = x.shape[:-1]
    return log_sum.reshape(lead), picked.reshape(lead), empty.reshape(lead)


def _generic_target_terms(rows: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`target_terms` of rows with non-finite statistics, by the generic kernel."""

    xp = numpy_namespace()

    sh = _generic.shift_by_max(rows, (1,), np.float64, xp=xp)
    log_sum = _generic.log_total(_generic.row_sums(sh, (1,), np.float64, xp=xp), xp=xp)[:, 0]
    picked = sh.z[np.arange(rows.shape[0]), targets]
    if sh.e is not None:
        picked = picked + sh.e[np.arange(rows.shape[0]), targets]
    return log_sum, picked


def _long_row_terms(
    x2: np.ndarray, t1: np.ndarray, lead: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`target_terms` for rows longer than a block: column chunks, row by row.

    Memory stays at a few chunk buffers (no copy of a row), the price of a
    loss that needs only two numbers per row.
    """
    n, c = x2.shape
    chunk = max(1, BLOCK_BYTES // 32)
    exact64 = x2.dtype == np.float64
    zbuf, wbuf = np.empty(chunk), np.empty(chunk)
    ebuf, tbuf = (np.empty(chunk), np.empty(chunk)) if exact64 else (None, None)
    sigma = 2.0 ** (c.bit_length() + 1)
    log_sum, picked = np.empty(n), np.empty(n)
    empty = np.zeros(n, bool)
    for i in range(n):
        row = x2[i]
        top = int(np.argmax(row))
        m = row[top]
        rest = _chunked_rest(row, m, top, chunk, sigma, zbuf, wbuf, ebuf, tbuf)
        if not (np.isfinite(m) and np.isfinite(rest)):
            (log_sum[i],), (picked[i],) = _generic_target_terms(row[None, :], t1[i : i + 1])
            empty[i] = m == -np.inf
            continue
        log_sum[i] = np.log1p(rest)
        xt = np.float64(row[t1[i]])
        z = xt - np.float64(m)
        if exact64:  # TwoSum: the exact shift of the target's logit
            back = z - xt
            z = z + ((xt - (z - back)) - (m + back))
        picked[i] = z
    return log_sum.reshape(lead), picked.reshape(lead), empty.reshape(lead)


def _chunked_rest(
    row: np.ndarray,
    m: Any,
    top: int,
    chunk: int,
    sigma: float,
    zbuf: np.ndarray,
    wbuf: np.ndarray,
    ebuf: np.ndarray | None,
    tbuf: np.ndarray | None,
) -> float:
    """``Σ exp(row - m)`` without the ``top`` term, exact shift, over column chunks."""
    q_sum = r_sum = 0.0
    for c0 in range(0, row.shape[0], chunk):
        seg = row[c0 : c0 + chunk]
        k = seg.shape[0]
        z = np.subtract(seg, m, out=zbuf[:k], dtype=np.float64)
        w = wbuf[:k]
        if ebuf is not None and tbuf is not None:
            back = np.subtract(z, seg, out=w)
            tmp = np.subtract(z, back, out=tbuf[:k])
            np.subtract(seg, tmp, out=tmp)
            np.add(back, m, out=back)
            e = np.subtract(tmp, back, out=ebuf[:k])
            np.exp(z, out=w)
            np.multiply(w, e, out=tmp)
            np.add(w, tmp, out=w)
        else:
            np.exp(z, out=w)
        if c0 <= top < c0 + k:
            w[top - c0] = 0.0
        if ebuf is not None and tbuf is not None:
            q = np.add(w, sigma, out=zbuf[:k])
            np.subtract(q, sigma, out=q)
            q_sum += float(np.sum(q))
            r_sum += float(np.sum(np.subtract(w, q, out=w)))
        else:
            r_sum += float(np.sum(w))
    return q_sum + r_sum


def _rows_per_block(x2: np.ndarray) -> int:
    return max(1, BLOCK_BYTES // max(1, x2.shape[1] * 8))
