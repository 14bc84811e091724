"""The eager ``linear_cross_entropy`` sweeps: the numba chunk kernel where it applies, else the definition.

Both sweeps of :mod:`xsoftmax._definition.linear_loss` (the per-row statistics,
then the gradients) have a compiled counterpart in
:mod:`xsoftmax._kernels.numba.linear` for NumPy arrays and torch CPU tensors.
This module chooses, once per sweep, which of the two runs; the torch, Dask and
eager callers go through it, so the definition never imports a kernel.

Examples
--------
>>> import numpy as np
>>> from xsoftmax._contract.linear_problem import setup
>>> from xsoftmax._definition import linear_loss
>>> from xsoftmax._kernels import linear_sweeps
>>> p = setup("linear_cross_entropy", np.eye(2), np.eye(2), np.array([0, 1]))
>>> float(linear_loss.reduce(p, *linear_loss.per_sample(p, linear_sweeps.forward(p))))
0.31326168751822286
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from xsoftmax._contract.linear_problem import Problem
from xsoftmax._contract.quiet import quiet
from xsoftmax._definition import linear_loss
from xsoftmax._definition.linear_sweep import Finished, finish
from xsoftmax._kernels.numba import linear as numba_linear

Array = Any


def forward(p: Problem) -> Finished:
    """The first sweep (needs ``C >= 1``, ``N >= 1``): compiled where it applies."""
    if numba_linear.usable(p):
        fused = numba_linear.forward(p)
        if fused is not None:
            return finish(fused, p.a_total, p.spec, xp=p.xp)
    return linear_loss.forward(p)


def backward(
    p: Problem, fin: Finished, coefs: tuple[Array, Array | None, Array | None]
) -> tuple[Array, Array, Array | None]:
    """The second sweep, ``(d_input, d_linear_weight, d_linear_bias)``: compiled where it applies.

    The compiled kernel needs every row's maximum finite; otherwise the definition runs.
    """
    xp = p.xp
    if not (numba_linear.usable(p) and bool(xp.all(xp.isfinite(fin.m)))):
        return linear_loss.backward(p, fin, coefs)
    dx, dw, db = linear_loss.zero_grads(p)
    for start, stop in linear_loss.chunks(p):
        w, b = linear_loss.weight_chunk(p, start, stop)
        g = numba_linear.grad(p, numba_linear.logits(p, w, b), start, stop, fin, coefs)
        dx = numba_linear.accumulate(p, g, w, start, stop, dx, dw, db)
    return dx, dw, db


def _empty(p: Problem) -> bool:
    return p.n_rows == 0 or p.n_classes == 0


def _cast(a: Array | None, dtype: Any, xp: Any) -> Array | None:
    if a is None or a.dtype == dtype:
        return a
    return xp.astype(a, dtype)


def eager_loss(p: Problem) -> Array:
    """The reduced loss of an eager problem (no gradient kept)."""
    with quiet(p.xp):
        fin = None if _empty(p) else forward(p)
        return linear_loss.reduce(p, *linear_loss.per_sample(p, fin))


def eager_loss_and_grads(p: Problem, input_shape: tuple[int, ...]) -> tuple[Array, ...]:
    """``(loss, d_input, d_linear_weight, d_linear_bias)`` of an eager problem.

    One fused pass (loss and gradients together) where the numba kernel applies,
    else the two sweeps. The gradients come back in the caller's dtypes, and
    ``d_input`` in the caller's shape of ``input``.
    """
    xp = p.xp
    dt_in, dt_w, dt_b = p.dtypes
    with quiet(xp):
        if _empty(p):
            loss = linear_loss.reduce(p, *linear_loss.per_sample(p, None))
            d = int(p.x.shape[1])
            dev = device(p.x)
            dx = xp.zeros((p.n_rows, d), dtype=dt_in, device=dev)
            dw = xp.zeros(tuple(p.w.shape), dtype=dt_w, device=dev)
            db = None if p.b is None else xp.zeros(tuple(p.b.shape), dtype=dt_b, device=dev)
            return loss, xp.reshape(dx, input_shape), dw, db
        fused = numba_linear.fused_rows(p, None) if numba_linear.fused_usable(p) else None
        if fused is not None:
            ce, zt, dx, dw, db = fused
            loss = linear_loss.reduce(p, ce, zt)
        else:
            fin = forward(p)
            loss = linear_loss.reduce(p, *linear_loss.per_sample(p, fin))
            dx, dw, db = backward(p, fin, linear_loss.grad_coefs(p, fin, None))
    return (
        loss,
        xp.reshape(_cast(dx, dt_in, xp), input_shape),
        _cast(dw, dt_w, xp),
        _cast(db, dt_b, xp),
    )
