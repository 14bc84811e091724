"""``linear_cross_entropy`` on eager arrays: the two sweeps, the losses and their reductions.

:func:`forward` sweeps the class chunks once and returns the per-row statistics;
:func:`per_sample` and :func:`reduce` turn them into the loss with torch's
semantics (plus ``z_loss``); :func:`backward` sweeps again, recomputing each
block of logits, and accumulates the gradients of ``input``, ``linear_weight``
and ``linear_bias``; :func:`backward_all` adds those of the class weights and
of probability targets (closed forms from the per-row statistics, see
:func:`class_rows`). At any time one ``(N, chunk)`` block of logits (and a few
temporaries of its size) is alive, besides the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from xsoftmax._definition.special_values import nan_where

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
            ce = nan_where(p.bad, ce, xp)
        return ce, None
    zt = None
    if p.z_loss > 0:
        zt = p.z_loss * (fin.lse * fin.lse)
    if spec.kind == "prob":
        assert fin.soft is not None
        ce = nan_where(fin.empty, fin.soft, xp)
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
    ce = nan_where(nan_rows, ce, xp)
    if zt is not None:
        zt = xp.where(p.ignored, xp.zeros_like(zt), zt)
    return ce, zt


def _ratio(total: Array, denominator: Array, xp: Any, *, when_zero: float) -> Array:
    """``total / denominator``, ``when_zero`` where the denominator is 0 (no ``x / 0`` formed)."""
    zero = denominator == 0
    q = total / xp.where(zero, xp.ones_like(denominator), denominator)
    if when_zero != when_zero:  # NaN: formed only where it is due
        return nan_where(zero, q, xp)
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
    s_ce = nan_where(p.bad, s_ce, xp)
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
    dx, dw, db, _, _ = backward_all(p, fin, coefs)
    return dx, dw, db


@dataclass(frozen=True)
class ClassRows:
    """Per-row coefficients of the gradients of the class weights and probability targets.

    ``s`` is d(reduced loss)/d(per-sample cross-entropy) (:func:`row_scales`),
    ``r`` (index targets) the coefficient of the target's class weight,
    ``lse`` the row's logsumexp; each ``(N, 1)`` in the accumulation dtype.
    ``weight`` and ``target`` say which of the two gradients are wanted.
    """

    s: Array
    r: Array | None
    lse: Array
    weight: bool
    target: bool


def class_rows(
    p: Problem,
    fin: Finished,
    upstream: Array | None,
    *,
    weight: bool,
    target: bool,
    totals: tuple[Any, Any, int] | None = None,
) -> ClassRows:
    r"""The per-row part of the gradients of the class weights and probability targets.

    With :math:`s_n` = d(reduced loss)/d(cross-entropy of sample :math:`n`) and
    :math:`\ell_{nc} = \operatorname{lse}_n - z_{nc}` (:math:`z` the capped logits),
    index targets :math:`t_n` with label smoothing :math:`\varepsilon` give

    .. math::
        \frac{\partial L}{\partial w_c} = \sum_{n: t_n = c} r_n
        + \frac{\varepsilon}{C} \sum_n s_n \ell_{nc}, \qquad
        r_n = s_n \big((1 - \varepsilon)\,\mathrm{nll}_n - \mu\big),

    where :math:`\mu` is the reduced cross-entropy for ``'mean'`` (its denominator
    :math:`\sum_n w_{t_n}` depends on the weights) and 0 otherwise. Probability
    targets :math:`q` (smoothed: :math:`q' = (1 - \varepsilon) q + \varepsilon / C`) give

    .. math::
        \frac{\partial L}{\partial w_c} = \sum_n s_n q'_{nc} \ell_{nc}, \qquad
        \frac{\partial L}{\partial q_{nc}} = s_n (1 - \varepsilon)\, w_c\, \ell_{nc}.

    The z-loss does not depend on either. :func:`class_grad_chunk` takes the
    sums over one block of logits. ``upstream`` and ``totals`` as for
    :func:`row_scales`.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._contract.linear_problem import setup
    >>> from xsoftmax._definition import linear_loss
    >>> p = setup("linear_cross_entropy", np.eye(2), np.eye(2), np.array([0, 1]),
    ...           weight=np.ones(2), reduction="sum")
    >>> fin = linear_loss.forward(p)
    >>> rows = linear_loss.class_rows(p, fin, None, weight=True, target=False)
    >>> take = linear_loss.slicer(0, 2)
    >>> dw, _ = linear_loss.class_grad_chunk(p, rows, p.x @ p.w.T, 0, take, None)
    >>> np.round(dw, 4).tolist()  # the nll of each class's sample
    [0.3133, 0.3133]
    """
    xp, spec = p.xp, p.spec
    s, _ = row_scales(p, upstream, totals)
    r = None
    if spec.kind == "index" and weight:
        assert fin.nll is not None
        mu: Any = 0.0
        if p.reduction == "mean":
            ce, _ = per_sample(p, fin)
            den = denominators(p)[0] if totals is None else totals[0]
            mu = _ratio(xp.sum(ce), den, xp, when_zero=0.0)
        r = xp.where(s == 0, xp.zeros_like(s), s * ((1 - spec.eps) * fin.nll - mu))
        r = xp.expand_dims(r, axis=1)
    return ClassRows(
        s=xp.expand_dims(s, axis=1),
        r=r,
        lse=xp.expand_dims(fin.lse, axis=1),
        weight=weight and p.weight is not None,
        target=target and spec.kind == "prob",
    )


def class_grad_chunk(
    p: Problem,
    rows: ClassRows,
    logits: Array,
    start: Any,
    take: Any,
    tgt_chunk: Array | None,
) -> tuple[Array | None, Array | None]:
    """One block's ``(d_weight (K,), d_target (N, K))`` in the compute dtype (None: not wanted).

    ``logits`` is the capped ``(N, K)`` block of classes ``start .. start + K``,
    ``take`` cuts that chunk out of a class axis (:func:`slicer`), ``tgt_chunk``
    is the probability target's block. A term whose coefficient is 0 is 0 (no
    ``0 * inf`` from a ``-inf`` logit).
    """
    xp, spec = p.xp, p.spec
    acc, compute = spec.acc, spec.compute
    ell = rows.lse - xp.astype(logits, acc)  # (N, K): -log softmax
    zero = xp.zeros_like(ell)
    d_weight = d_target = None
    if spec.kind == "index":
        if rows.weight:
            assert rows.r is not None
            k = int(logits.shape[1])
            classes = xp.arange(k, dtype=p.target.dtype, device=device(logits)) + start
            hit = xp.reshape(classes, (1, k)) == xp.expand_dims(p.target, axis=1)
            d_weight = xp.sum(xp.where(hit, rows.r, zero), axis=0)
            if spec.eps > 0:
                smooth = xp.where(rows.s == 0, zero, rows.s * ell)
                d_weight = d_weight + (spec.eps / spec.n_classes) * xp.sum(smooth, axis=0)
    else:
        assert tgt_chunk is not None
        if rows.weight:
            q = xp.astype(tgt_chunk, acc)
            if spec.eps > 0:
                q = q * (1 - spec.eps) + spec.eps / spec.n_classes
            coef = rows.s * q
            d_weight = xp.sum(xp.where(coef == 0, zero, coef * ell), axis=0)
        if rows.target:
            coef = rows.s * (1 - spec.eps)
            if p.weight is not None:
                coef = coef * xp.astype(take(p.weight, 0), acc)
            d_target = xp.astype(xp.where(coef == 0, zero, coef * ell), compute)
    if d_weight is not None:
        d_weight = xp.astype(d_weight, compute)
    return d_weight, d_target


def backward_all(
    p: Problem,
    fin: Finished,
    coefs: tuple[Array, Array | None, Array | None],
    rows: ClassRows | None = None,
    *,
    functional: bool = False,
) -> tuple[Array, Array, Array | None, Array | None, Array | None]:
    """The second sweep with every gradient: ``(d_input, d_linear_weight, d_linear_bias, d_weight, d_target)``.

    ``d_weight`` ``(C,)`` and ``d_target`` ``(N, C)`` (probability targets) are
    None unless ``rows`` (:func:`class_rows`) asks for them. In the compute
    dtype. ``functional=True`` writes into no array (the blocks are
    concatenated): the form that ``torch.func.vmap`` and other tracers take.
    """
    xp, spec = p.xp, p.spec
    coef_p, coef_t, soft_rows = coefs
    dx: Any
    dw: Any
    db: Any
    dx, dw, db = zero_grads(p) if not functional else (None, None, None)
    index = spec.kind == "index"
    dws: list[Array] = []
    dbs: list[Array] = []
    dweights: list[Array] = []
    dtargets: list[Array] = []
    for start, stop in chunks(p):
        w, b = weight_chunk(p, start, stop)
        logits, tanh = logits_chunk(p.x, w, b, spec, xp=xp)
        tgt = None if index else p.target[:, start:stop]
        take = slicer(start, stop)
        if rows is not None:
            d_weight, d_target = class_grad_chunk(p, rows, logits, start, take, tgt)
            if d_weight is not None:
                dweights.append(d_weight)
            if d_target is not None:
                dtargets.append(d_target)
        g = grad_chunk(
            logits,
            tanh,
            start,
            fin,
            coef_p,
            coef_t,
            p.target if index else None,
            soft_rows,
            p.a_chunk(take, tgt),
            spec,
            xp=xp,
        )
        step_dx = xp.matmul(g, w)
        dx = step_dx if dx is None else dx + step_dx
        step_dw = xp.matmul(xp.permute_dims(g, (1, 0)), p.x)
        if functional:
            dws.append(step_dw)
            if p.b is not None:
                dbs.append(xp.sum(g, axis=0))
        else:
            dw[start:stop, ...] = step_dw
            if db is not None:
                db[start:stop] = xp.sum(g, axis=0)
    if functional:
        dw = _joined(dws, 0, xp)
        db = _joined(dbs, 0, xp) if p.b is not None else None
    return dx, dw, db, _joined(dweights, 0, xp), _joined(dtargets, 1, xp)


def _joined(parts: list[Array], axis: int, xp: Any) -> Array | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=axis)
