"""``linear_cross_entropy`` on eager arrays: the two sweeps, the losses and their reductions.

:func:`forward` sweeps the class chunks once and returns the per-row statistics;
:func:`per_sample` and :func:`reduce` turn them into the loss with torch's
semantics (plus ``z_loss``); :func:`backward` sweeps again, recomputing each
block of logits, and accumulates the gradients of ``input``, ``linear_weight``
and ``linear_bias``. At any time one ``(N, chunk)`` block of logits (and a few
temporaries of its size) is alive, besides the outputs.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from xsoftmax._contract.linear_problem import Problem
from xsoftmax._definition.linear_sweep import (
    Finished,
    Stats,
    chunk_stats,
    finish,
    grad_chunk,
    logits_chunk,
    merge,
)

Array = Any


def chunks(p: Problem) -> list[tuple[int, int]]:
    """``(start, stop)`` of every chunk of classes."""
    c, k = p.n_classes, p.chunk
    return [(start, min(start + k, c)) for start in range(0, c, k)]


def empty_stats(p: Problem) -> Stats:
    """The statistics of no logit at all (``m = -inf``): the identity of :func:`merge`."""
    xp, spec = p.xp, p.spec
    n = p.n_rows
    dev = device(p.x)
    zeros = xp.zeros((n, 1), dtype=spec.acc, device=dev)
    x_t = xp.zeros((n, 1), dtype=spec.compute, device=dev) if spec.kind == "index" else None
    soft = zeros if spec.soft else None
    a_sum = zeros if spec.soft else None
    return Stats(
        m=xp.full((n, 1), -xp.inf, dtype=spec.compute, device=dev),
        top=zeros,
        rest=zeros,
        x_t=x_t,
        soft=soft,
        a_sum=a_sum,
    )


def weight_chunk(p: Problem, start: int, stop: int) -> tuple[Array, Array | None]:
    xp, compute = p.xp, p.spec.compute
    w = p.w[start:stop, ...]
    w = w if w.dtype == compute else xp.astype(w, compute)
    b = None if p.b is None else p.b[start:stop]
    return w, b


def slicer(start: int, stop: int) -> Any:
    """``take(array, axis)``: classes ``start:stop`` of ``array`` along ``axis`` (0 or 1)."""

    def take(a: Array, axis: int) -> Array:
        return a[start:stop] if axis == 0 else a[:, start:stop]

    return take


def step(
    p: Problem,
    st: Stats,
    logits: Array,
    start: Any,
    stop: Any,
    take: Any,
    tgt_chunk: Array | None,
) -> Stats:
    """Fold one block of logits (classes ``start:stop``) into the running statistics.

    ``take`` cuts a chunk out of a class axis (see :func:`slicer`).
    """
    xp, spec = p.xp, p.spec
    index = spec.kind == "index"
    new = chunk_stats(
        logits,
        start,
        p.target if index else None,
        p.a_chunk(take, tgt_chunk),
        spec,
        xp=xp,
    )
    has = None
    if index:
        has = xp.expand_dims(xp.logical_and(p.target >= start, p.target < stop), axis=1)
    return merge(st, new, has, spec, xp=xp)


def forward(p: Problem) -> Finished:
    """The first sweep: per-row statistics of every logit (needs ``C >= 1``, ``N >= 1``)."""
    xp, spec = p.xp, p.spec
    st = empty_stats(p)
    for start, stop in chunks(p):
        w, b = weight_chunk(p, start, stop)
        logits, _ = logits_chunk(p.x, w, b, spec, xp=xp)
        tgt = p.target[:, start:stop] if spec.kind == "prob" else None
        st = step(p, st, logits, start, stop, slicer(start, stop), tgt)
    return finish(st, p.a_total, spec, xp=xp)


def per_sample(p: Problem, fin: Finished | None) -> tuple[Array, Array | None]:
    """Per-sample cross-entropy and z-loss terms, ``(N,)`` each in the accumulation dtype.

    ``fin`` is None for a problem with no logit (``N = 0`` or ``C = 0``): every
    loss is 0 there (NaN for a lazy out-of-range target).
    """
    xp, spec = p.xp, p.spec
    if fin is None:
        ce = xp.zeros((p.n_rows,), dtype=spec.acc, device=device(p.x))
        if p.bad is not None:
            ce = xp.where(p.bad, xp.full_like(ce, xp.nan), ce)
        return ce, None
    zt = None
    if p.z_loss > 0:
        zt = p.z_loss * (fin.lse * fin.lse)
    if spec.kind == "prob":
        assert fin.soft is not None
        ce = xp.where(fin.empty, xp.full_like(fin.soft, xp.nan), fin.soft)
        return ce, zt
    assert fin.nll is not None
    assert p.w_t is not None
    assert p.ignored is not None
    assert p.bad is not None
    coef = (1 - spec.eps) * p.w_t
    ce = xp.where(coef == 0, xp.zeros_like(fin.nll), coef * fin.nll)
    if fin.soft is not None:
        ce = ce + fin.soft
    ce = xp.where(p.ignored, xp.zeros_like(ce), ce)
    nan_rows = xp.logical_or(p.bad, xp.logical_and(fin.empty, xp.logical_not(p.ignored)))
    ce = xp.where(nan_rows, xp.full_like(ce, xp.nan), ce)
    if zt is not None:
        zt = xp.where(p.ignored, xp.zeros_like(zt), zt)
    return ce, zt


def _ratio(total: Array, denominator: Array, xp: Any, *, when_zero: float) -> Array:
    """``total / denominator``, ``when_zero`` where the denominator is 0 (no ``x / 0`` formed)."""
    zero = denominator == 0
    q = total / xp.where(zero, xp.ones_like(denominator), denominator)
    return xp.where(zero, xp.full_like(q, when_zero), q)


def denominators(p: Problem) -> tuple[Array, Array]:
    """``(Σ weight[target], number of counted samples)`` over the non-ignored samples."""
    xp = p.xp
    assert p.w_t is not None
    assert p.ignored is not None
    counted = xp.logical_not(p.ignored)
    den = xp.sum(xp.where(counted, p.w_t, xp.zeros_like(p.w_t)))
    count = xp.sum(xp.astype(counted, p.spec.acc))
    return den, count


def reduce(p: Problem, ce: Array, zt: Array | None) -> Array:
    """The reduced loss (``reduction``) in the output dtype, shaped like ``input[..., 0]`` for 'none'."""
    xp = p.xp
    if p.reduction == "none":
        out = ce if zt is None else ce + zt
        out = xp.reshape(out, p.lead)
    elif p.reduction == "sum":
        out = xp.sum(ce) if zt is None else xp.sum(ce) + xp.sum(zt)
    elif p.spec.kind == "prob":
        total = xp.sum(ce) if zt is None else xp.sum(ce) + xp.sum(zt)
        out = total / p.n_rows if p.n_rows else total * xp.nan
    else:
        den, count = denominators(p)
        out = _ratio(xp.sum(ce), den, xp, when_zero=xp.nan)
        if zt is not None:
            out = out + _ratio(xp.sum(zt), count, xp, when_zero=xp.nan)
    return out if out.dtype == p.out_dtype else xp.astype(out, p.out_dtype)


def row_scales(
    p: Problem, upstream: Array | None, totals: tuple[Any, Any, int] | None = None
) -> tuple[Array, Array]:
    """``(s_ce, s_z)``: d(reduced loss)/d(per-sample CE) and /d(per-sample z-loss term), ``(N,)``.

    ``upstream`` is the incoming gradient of the loss (None: 1), 0-d, or ``(N,)``
    for 'none' (already flattened). ``totals`` overrides the mean's
    ``(Σ weight[target], counted samples, samples)`` when ``p`` holds one block
    of rows of a larger problem.
    """
    xp, acc = p.xp, p.spec.acc
    n = p.n_rows
    g = xp.ones((n,), dtype=acc, device=device(p.x))
    if upstream is not None:
        up = xp.astype(upstream, acc)
        g = g * (xp.reshape(up, (n,)) if p.reduction == "none" else up)
    if p.spec.kind == "prob":
        n_all = n if totals is None else totals[2]
        s = g / n_all if (p.reduction == "mean" and n_all) else g
        return s, s
    assert p.ignored is not None
    assert p.bad is not None
    s_ce = s_z = g
    if p.reduction == "mean":
        den, count = denominators(p) if totals is None else totals[:2]
        s_ce = _ratio(g, den, xp, when_zero=0.0)
        s_z = _ratio(g, count, xp, when_zero=0.0)
    zero = xp.zeros_like(g)
    s_ce = xp.where(p.ignored, zero, s_ce)
    s_z = xp.where(p.ignored, zero, s_z)
    s_ce = xp.where(p.bad, xp.full_like(s_ce, xp.nan), s_ce)
    return s_ce, s_z


def grad_coefs(
    p: Problem,
    fin: Finished,
    upstream: Array | None,
    totals: tuple[Any, Any, int] | None = None,
) -> tuple[Array, Array | None, Array | None]:
    """``(coef_p, coef_t, soft_rows)`` of :func:`~xsoftmax._definition.linear_sweep.grad_chunk`, ``(N, 1)``.

    ``upstream`` and ``totals`` as for :func:`row_scales`.
    """
    xp, spec = p.xp, p.spec
    s_ce, s_z = row_scales(p, upstream, totals)
    if spec.kind == "prob":
        assert fin.soft is not None
        coef_p = s_ce * _prob_a_sum(p)
        coef_t = None
        soft_rows = s_ce
    else:
        assert p.w_t is not None
        coef_t = s_ce * ((1 - spec.eps) * p.w_t)
        coef_p = coef_t + s_ce * p.a_total if spec.eps > 0 else coef_t
        soft_rows = s_ce if spec.eps > 0 else None
    if p.z_loss > 0:
        coef_p = coef_p + s_z * (2 * p.z_loss) * fin.lse

    def col(v: Array | None) -> Array | None:
        return None if v is None else xp.expand_dims(xp.astype(v, spec.compute), axis=1)

    cp = col(coef_p)
    assert cp is not None
    return cp, col(coef_t), col(soft_rows)


def _prob_a_sum(p: Problem) -> Array:
    """``Σ_c w_c q'_c`` per row for probability targets, in the accumulation dtype."""
    xp, spec = p.xp, p.spec
    q = xp.astype(p.target, spec.acc)
    if spec.eps > 0:
        q = q * (1 - spec.eps) + spec.eps / spec.n_classes
    if p.weight is not None:
        q = xp.astype(p.weight, spec.acc) * q
    return xp.sum(q, axis=1)


def zero_grads(p: Problem) -> tuple[Array, Array, Array | None]:
    """Zeroed ``(d_input (N, d), d_linear_weight (C, d), d_linear_bias (C,))`` in the compute dtype."""
    xp, dev, compute = p.xp, device(p.x), p.spec.compute
    d = int(p.x.shape[1])
    dx = xp.zeros((p.n_rows, d), dtype=compute, device=dev)
    dw = xp.zeros((p.n_classes, d), dtype=compute, device=dev)
    db = None if p.b is None else xp.zeros((p.n_classes,), dtype=compute, device=dev)
    return dx, dw, db


def backward(
    p: Problem, fin: Finished, coefs: tuple[Array, Array | None, Array | None]
) -> tuple[Array, Array, Array | None]:
    """The second sweep: ``(d_input (N, d), d_linear_weight (C, d), d_linear_bias (C,))``.

    In the compute dtype; the blocks of ``linear_weight``'s and ``linear_bias``'s
    gradients are written into preallocated outputs (eager, writable namespaces).
    """
    xp, spec = p.xp, p.spec
    coef_p, coef_t, soft_rows = coefs
    dx, dw, db = zero_grads(p)
    index = spec.kind == "index"
    for start, stop in chunks(p):
        w, b = weight_chunk(p, start, stop)
        logits, tanh = logits_chunk(p.x, w, b, spec, xp=xp)
        tgt = None if index else p.target[:, start:stop]
        g = grad_chunk(
            logits,
            tanh,
            start,
            fin,
            coef_p,
            coef_t,
            p.target if index else None,
            soft_rows,
            p.a_chunk(slicer(start, stop), tgt),
            spec,
            xp=xp,
        )
        dx = dx + xp.matmul(g, w)
        dw[start:stop, ...] = xp.matmul(xp.permute_dims(g, (1, 0)), p.x)
        if db is not None:
            db[start:stop] = xp.sum(g, axis=0)
    return dx, dw, db
