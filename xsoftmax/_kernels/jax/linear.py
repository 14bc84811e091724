"""``linear_cross_entropy`` on JAX: ``lax.scan`` over class chunks and a custom VJP.

The sweeps of :mod:`xsoftmax._definition.linear_loss` written as ``lax.scan`` loops (full
chunks, cut with ``lax.dynamic_slice``, then one static remainder chunk), so
that ``jit`` compiles one chunk body and XLA keeps one block of logits alive.
``jax.custom_vjp`` keeps only the inputs and three numbers per row as
residuals; the backward rule recomputes the chunks. It returns the cotangents of
``input``, ``linear_weight`` and ``linear_bias``, and those of the class weights
and of probability targets, in closed form
(:func:`xsoftmax._definition.linear_loss.class_rows`): ``jax.grad`` with
respect to any floating argument is exact.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import jax
from jax import lax

from xsoftmax._contract.linear_problem import Problem
from xsoftmax._definition import linear_loss as _linear_loss
from xsoftmax._definition.linear_sweep import Finished, Stats, finish, grad_chunk, logits_chunk

Array = Any


def _split(p: Problem) -> tuple[int, int]:
    """``(number of full chunks, size of the remainder chunk)``."""
    return p.n_classes // p.chunk, p.n_classes % p.chunk


def _dyn(start: Any, k: int) -> Any:
    def take(a: Array, axis: int) -> Array:
        return lax.dynamic_slice_in_dim(a, start, k, axis)

    return take


def _chunk_arrays(p: Problem, take: Any) -> tuple[Array, Array | None, Array | None]:
    xp, compute = p.xp, p.spec.compute
    w = take(p.w, 0)
    w = w if w.dtype == compute else xp.astype(w, compute)
    b = None if p.b is None else take(p.b, 0)
    tgt = take(p.target, 1) if p.spec.kind == "prob" else None
    return w, b, tgt


def _to_tuple(st: Stats) -> tuple[Any, ...]:
    return tuple(getattr(st, f.name) for f in fields(st))


def forward(p: Problem) -> Finished:
    """The statistics sweep as a scan (``N >= 1``, ``C >= 1``)."""
    xp, spec = p.xp, p.spec
    n_full, rem = _split(p)
    k = p.chunk

    def fold(carry: tuple[Any, ...], start: Any, size: int, take: Any) -> tuple[Any, ...]:
        w, b, tgt = _chunk_arrays(p, take)
        logits, _ = logits_chunk(p.x, w, b, spec, xp=xp)
        st = _linear_loss.step(p, Stats(*carry), logits, start, start + size, take, tgt)
        return _to_tuple(st)

    def body(carry: tuple[Any, ...], i: Any) -> tuple[tuple[Any, ...], None]:
        start = i * k
        return fold(carry, start, k, _dyn(start, k)), None

    carry = _to_tuple(_linear_loss.empty_stats(p))
    if n_full:
        carry, _ = lax.scan(body, carry, xp.arange(n_full))
    if rem:
        start = n_full * k
        carry = fold(carry, start, rem, _linear_loss.slicer(start, start + rem))
    return finish(Stats(*carry), p.a_total, spec, xp=xp)


def backward(
    p: Problem,
    fin: Finished,
    coefs: tuple[Array, Array | None, Array | None],
    rows: _linear_loss.ClassRows | None = None,
) -> tuple[Array, Array, Array | None, Array | None, Array | None]:
    """The gradient sweep as a scan: ``(d_input, d_linear_weight, d_linear_bias, d_weight, d_target)``.

    ``d_weight`` ``(C,)`` and ``d_target`` ``(N, C)`` are None unless ``rows``
    (:func:`xsoftmax._definition.linear_loss.class_rows`) asks for them.
    """
    xp, spec = p.xp, p.spec
    coef_p, coef_t, soft_rows = coefs
    n_full, rem = _split(p)
    k = p.chunk
    index = spec.kind == "index"
    n = p.n_rows

    def one(dx: Array, start: Any, take: Any) -> tuple[Array, tuple[Any, ...]]:
        w, b, tgt = _chunk_arrays(p, take)
        logits, tanh = logits_chunk(p.x, w, b, spec, xp=xp)
        d_weight = d_target = None
        if rows is not None:
            d_weight, d_target = _linear_loss.class_grad_chunk(p, rows, logits, start, take, tgt)
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
        dw = xp.matmul(xp.permute_dims(g, (1, 0)), p.x)
        return dx + xp.matmul(g, w), (dw, xp.sum(g, axis=0), d_weight, d_target)

    def body(dx: Array, i: Any) -> tuple[Array, tuple[Any, ...]]:
        start = i * k
        return one(dx, start, _dyn(start, k))

    d = int(p.x.shape[1])
    dx = xp.zeros((n, d), dtype=spec.compute)
    parts: list[tuple[Any, ...]] = []
    if n_full:
        dx, (dw_s, db_s, dwt_s, dtg_s) = lax.scan(body, dx, xp.arange(n_full))
        parts.append(
            (
                xp.reshape(dw_s, (n_full * k, d)),
                xp.reshape(db_s, (n_full * k,)),
                None if dwt_s is None else xp.reshape(dwt_s, (n_full * k,)),
                None
                if dtg_s is None
                else xp.reshape(xp.permute_dims(dtg_s, (1, 0, 2)), (n, n_full * k)),
            )
        )
    if rem:
        start = n_full * k
        dx, last = one(dx, start, _linear_loss.slicer(start, start + rem))
        parts.append(last)

    def joined(i: int, axis: int) -> Array | None:
        got = [part[i] for part in parts if part[i] is not None]
        if not got:
            return None
        return got[0] if len(got) == 1 else xp.concat(got, axis=axis)

    dw = joined(0, 0)
    db = joined(1, 0) if p.b is not None else None
    return dx, dw, db, joined(2, 0), joined(3, 1)


_AUX = ("target", "ignored", "bad", "weight", "w_t", "a_class", "a_total")
_WEIGHT, _TARGET, _A_TOTAL = _AUX.index("weight"), _AUX.index("target"), _AUX.index("a_total")


def _fin_tuple(fin: Finished) -> tuple[Any, ...]:
    return tuple(getattr(fin, f.name) for f in fields(fin))


def _is_array(a: Any) -> bool:
    return isinstance(a, jax.Array)


def _vjp_function(p: Problem) -> Any:
    """``f(x, w, b, aux) -> loss`` with a custom VJP; ``p``'s static parts are closed over.

    ``aux`` holds the problem's other arrays (``a_total`` too where it is one: it
    depends on the class weights); the cotangents of the class weights and of
    probability targets are computed, those of the arrays derived from them
    (``w_t``, ``a_class``, ``a_total``) are zero, their derivative being in the
    closed forms.
    """

    def rebuild(x: Array, w: Array, b: Array | None, aux: tuple[Any, ...]) -> Problem:
        named = dict(zip(_AUX, aux, strict=True))
        if named["a_total"] is None:
            del named["a_total"]  # a number, closed over
        return replace(p, x=x, w=w, b=b, **named)

    def value(pp: Problem) -> tuple[Array, Finished | None]:
        fin = None if _empty(pp) else forward(pp)
        return _linear_loss.reduce(pp, *_linear_loss.per_sample(pp, fin)), fin

    @jax.custom_vjp
    def f(x: Array, w: Array, b: Array | None, aux: tuple[Any, ...]) -> Array:
        return value(rebuild(x, w, b, aux))[0]

    def f_fwd(x: Array, w: Array, b: Array | None, aux: tuple[Any, ...]) -> Any:
        loss, fin = value(rebuild(x, w, b, aux))
        return loss, (x, w, b, aux, None if fin is None else _fin_tuple(fin))

    def f_bwd(res: Any, g: Array) -> Any:
        x, w, b, aux, fin_t = res
        pp = rebuild(x, w, b, aux)
        xp = pp.xp
        want_weight = pp.weight is not None
        want_target = pp.spec.kind == "prob"
        d_weight = d_target = None
        if fin_t is None:
            dx, dw = xp.zeros_like(x), xp.zeros_like(w)
            db = None if b is None else xp.zeros_like(b)
            d_weight = None if pp.weight is None else xp.zeros_like(pp.weight)
            d_target = xp.zeros_like(pp.target) if want_target else None
        else:
            fin = Finished(*fin_t)
            rows = None
            if want_weight or want_target:
                rows = _linear_loss.class_rows(pp, fin, g, weight=want_weight, target=want_target)
            coefs = _linear_loss.grad_coefs(pp, fin, g)
            dx, dw, db, d_weight, d_target = backward(pp, fin, coefs, rows)
        dw = dw if dw.dtype == w.dtype else xp.astype(dw, w.dtype)
        if db is not None and db.dtype != b.dtype:
            db = xp.astype(db, b.dtype)
        cotangents: list[Any] = [None] * len(aux)
        cotangents[_WEIGHT] = d_weight
        cotangents[_TARGET] = d_target
        return dx, dw, db, tuple(cotangents)

    f.defvjp(f_fwd, f_bwd)
    return f


def _empty(p: Problem) -> bool:
    return p.n_rows == 0 or p.n_classes == 0


def loss(p: Problem) -> Array:
    """The reduced loss, differentiable by ``jax.grad`` through the custom VJP."""
    aux = tuple(getattr(p, name) for name in _AUX)
    if not _is_array(p.a_total):
        aux = (*aux[:_A_TOTAL], None)
    return _vjp_function(p)(p.x, p.w, p.b, aux)


def with_grad(p: Problem, input_shape: tuple[int, ...]) -> tuple[Array, ...]:
    """Loss and gradients with the two scans, no autodiff."""
    xp = p.xp
    dt_in, dt_w, dt_b = p.dtypes
    if _empty(p):
        loss_value = _linear_loss.reduce(p, *_linear_loss.per_sample(p, None))
        dx = xp.zeros(input_shape, dtype=dt_in)
        db = None if p.b is None else xp.zeros(tuple(p.b.shape), dtype=dt_b)
        return loss_value, dx, xp.zeros(tuple(p.w.shape), dtype=dt_w), db
    fin = forward(p)
    loss_value = _linear_loss.reduce(p, *_linear_loss.per_sample(p, fin))
    dx, dw, db, _, _ = backward(p, fin, _linear_loss.grad_coefs(p, fin, None))
    return (
        loss_value,
        xp.reshape(xp.astype(dx, dt_in), input_shape),
        xp.astype(dw, dt_w),
        None if db is None else xp.astype(db, dt_b),
    )
