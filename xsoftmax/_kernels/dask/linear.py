"""``linear_cross_entropy`` on Dask: blocks of rows on the workers, the weights broadcast.

Each block of rows of ``input`` becomes one task that runs the eager NumPy
sweeps of :mod:`xsoftmax._definition.linear_loss` with the whole ``linear_weight`` (one
graph node, shared by every task). Per-sample results come back as a Dask array
and are reduced lazily; nothing is computed behind the caller's back. For the
gradients, each task also returns its block of ``d_input`` and its partial
``d_linear_weight`` / ``d_linear_bias``, summed lazily over the blocks; the
mean's denominators are computed lazily from the targets first.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import array_api_compat.numpy as np_xp
import dask
import dask.array as da
import numpy as np

from xsoftmax._contract.linear_problem import Problem
from xsoftmax._contract.quiet import quiet
from xsoftmax._definition import linear_loss as _linear_loss
from xsoftmax._kernels import linear_sweeps

Array = Any

_ROWS = ("x", "target", "ignored", "bad", "w_t")
_WHOLE = ("w", "b", "weight", "a_class")


def _block_problem(
    p: Problem, rows: dict[str, Any], whole: dict[str, Any], a_total: Any
) -> Problem:
    n = int(rows["x"].shape[0])
    arrays: dict[str, Any] = {
        k: (None if v is None else np.asarray(v)) for k, v in {**rows, **whole}.items()
    }
    a_tot = a_total if isinstance(a_total, float) else float(np.asarray(a_total))
    return replace(p, xp=np_xp, lead=(n,), a_total=a_tot, **arrays)


def _block_loss(p: Problem, rows: dict[str, Any], whole: dict[str, Any], a_total: Any) -> Any:
    pb = _block_problem(p, rows, whole, a_total)
    with quiet(np_xp):
        fin = None if (pb.n_rows == 0 or pb.n_classes == 0) else linear_sweeps.forward(pb)
        ce, zt = _linear_loss.per_sample(pb, fin)
    return ce, zt


def _block_grad(
    p: Problem, rows: dict[str, Any], whole: dict[str, Any], a_total: Any, totals: Any
) -> Any:
    pb = _block_problem(p, rows, whole, a_total)
    den, count, n_all = totals
    with quiet(np_xp):
        fin = linear_sweeps.forward(pb)
        ce, zt = _linear_loss.per_sample(pb, fin)
        coefs = _linear_loss.grad_coefs(pb, fin, None, (np.asarray(den), np.asarray(count), n_all))
        dx, dw, db = linear_sweeps.backward(pb, fin, coefs)
    return ce, zt, dx, dw, db


def _row_blocks(p: Problem) -> tuple[list[dict[str, Any]], tuple[int, ...]]:
    """The row-aligned arrays cut into the blocks of rows of ``input`` (as delayed objects)."""
    x = p.x.rechunk({1: -1})
    row_chunks = x.chunks[0]
    per: dict[str, list[Any] | None] = {}
    for name in _ROWS:
        a = x if name == "x" else getattr(p, name)
        if a is None:
            per[name] = None
            continue
        a = a.rechunk({0: row_chunks, **dict.fromkeys(range(1, a.ndim), -1)})
        per[name] = list(a.to_delayed().reshape(-1))
    blocks = [
        {name: (None if per[name] is None else per[name][i]) for name in _ROWS}  # type: ignore[index]
        for i in range(len(row_chunks))
    ]
    return blocks, row_chunks


def _whole(p: Problem) -> dict[str, Any]:
    return {
        name: (None if getattr(p, name) is None else getattr(p, name).rechunk(-1))
        for name in _WHOLE
    }


def _per_sample_arrays(
    p: Problem, parts: list[Any], row_chunks: tuple[int, ...], index: int
) -> Any:
    acc = p.spec.acc
    pieces = [
        da.from_delayed(part[index], shape=(n,), dtype=acc)
        for part, n in zip(parts, row_chunks, strict=True)
    ]
    return da.concatenate(pieces) if pieces else da.zeros((0,), dtype=acc)


def loss(p: Problem) -> Array:
    """The reduced loss as a lazy Dask array."""
    if p.n_rows == 0 or p.n_classes == 0:
        return _linear_loss.reduce(p, *_linear_loss.per_sample(p, None))
    blocks, row_chunks = _row_blocks(p)
    whole = _whole(p)
    fn = dask.delayed(_block_loss, pure=True)
    parts = [fn(p_static(p), rows, whole, p.a_total) for rows in blocks]
    ce = _per_sample_arrays(p, parts, row_chunks, 0)
    zt = _per_sample_arrays(p, parts, row_chunks, 1) if p.z_loss > 0 else None
    return _linear_loss.reduce(p, ce, zt)


def p_static(p: Problem) -> Problem:
    """``p`` without its arrays (what each task needs besides its blocks)."""
    none: dict[str, Any] = dict.fromkeys((*_ROWS, *_WHOLE))
    return replace(p, xp=np_xp, **none)


def with_grad(p: Problem, input_shape: tuple[int, ...]) -> tuple[Array, ...]:
    """Loss and gradients as lazy Dask arrays."""
    xp = p.xp
    dt_in, dt_w, dt_b = p.dtypes
    d = int(p.x.shape[1])
    if p.n_rows == 0 or p.n_classes == 0:
        loss_value = _linear_loss.reduce(p, *_linear_loss.per_sample(p, None))
        db = None if p.b is None else da.zeros(tuple(p.b.shape), dtype=dt_b)
        return (
            loss_value,
            da.zeros(input_shape, dtype=dt_in),
            da.zeros(tuple(p.w.shape), dtype=dt_w),
            db,
        )
    if p.spec.kind == "index":
        den, count = _linear_loss.denominators(p)
    else:
        den = count = 0.0
    totals = (den, count, p.n_rows)
    blocks, row_chunks = _row_blocks(p)
    whole = _whole(p)
    fn = dask.delayed(_block_grad, pure=True, nout=5)
    parts = [fn(p_static(p), rows, whole, p.a_total, totals) for rows in blocks]
    ce = _per_sample_arrays(p, parts, row_chunks, 0)
    zt = _per_sample_arrays(p, parts, row_chunks, 1) if p.z_loss > 0 else None
    loss_value = _linear_loss.reduce(p, ce, zt)
    compute = p.spec.compute
    dx = da.concatenate(
        [
            da.from_delayed(part[2], shape=(n, d), dtype=compute)
            for part, n in zip(parts, row_chunks, strict=True)
        ]
    )
    c = p.n_classes
    dw = da.stack([da.from_delayed(part[3], shape=(c, d), dtype=compute) for part in parts]).sum(
        axis=0
    )
    db = None
    if p.b is not None:
        db = da.stack([da.from_delayed(part[4], shape=(c,), dtype=compute) for part in parts]).sum(
            axis=0
        )
        db = db if db.dtype == dt_b else db.astype(dt_b)
    dx = xp.reshape(dx if dx.dtype == dt_in else dx.astype(dt_in), input_shape)
    dw = dw if dw.dtype == dt_w else dw.astype(dt_w)
    return loss_value, dx, dw, db
