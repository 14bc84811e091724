"""The chunked kernels of ``linear_cross_entropy``: one chunk of classes at a time.

The logits ``x @ W.T + b`` of a large vocabulary are never formed whole. A sweep
computes the logits of ``K`` classes for every row (an ``(N, K)`` block), folds
them into per-row running statistics and drops them:

* ``m``: the running maximum (compute dtype);
* ``top``: the number of logits equal to ``m``; ``rest``: ``Σ exp(x - m)`` over
  the others (accumulation dtype). When a later chunk raises the maximum both
  are rescaled by ``exp(m_old - m_new)`` and the old ``top`` joins ``rest``:
  the merge is exact up to one rounding per row and chunk, so the
  ``log(top) + log1p(rest / top)`` form of :mod:`xsoftmax._definition.rows` survives;
* ``x_t``: the target's logit, gathered from the chunk that holds it;
* ``soft``: ``Σ_c a_c (x_c - m)`` for the label-smoothing / probability-target
  coefficients ``a`` (all terms of one sign: no cancellation), and ``a_sum``.

A second sweep (:func:`grad_chunk`) recomputes each block of logits and turns it
into the block of ``dloss/dlogits``; the caller multiplies it into the
gradients of ``input``, ``linear_weight`` and ``linear_bias``.

Everything here is standard-only (``xp`` is passed in) and works unchanged on
eager arrays and JAX tracers; the loops over chunks live in the callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from array_api_compat import device

from xsoftmax._contract.linear_problem import Spec
from xsoftmax._contract.targets import take_class
from xsoftmax._definition import rows as _generic

Array = Any


@dataclass(frozen=True)
class Stats:
    """Running per-row statistics, each of shape ``(N, 1)``."""

    m: Array  # compute dtype; -inf for a row with no finite logit yet
    top: Array  # acc
    rest: Array  # acc
    x_t: Array | None  # compute dtype (index targets)
    soft: Array | None  # acc: Σ a_c (x_c - m)
    a_sum: Array | None  # acc: Σ a_c (probability targets; index targets know it up front)


def logits_chunk(
    x: Array, w_chunk: Array, b_chunk: Array | None, spec: Spec, *, xp: Any
) -> tuple[Array, Array | None]:
    """``(softcap(x @ w_chunk.T + b_chunk), tanh)`` in the compute dtype.

    The second value is ``tanh(logits / softcap)`` (for the derivative of the
    cap), None without a cap.
    """
    wc = w_chunk if w_chunk.dtype == spec.compute else xp.astype(w_chunk, spec.compute)
    out = xp.matmul(x, xp.permute_dims(wc, (1, 0)))
    if b_chunk is not None:
        bc = b_chunk if b_chunk.dtype == spec.compute else xp.astype(b_chunk, spec.compute)
        out = out + bc
    if spec.softcap is None:
        return out, None
    u = xp.tanh(out / spec.softcap)
    return spec.softcap * u, u


def _exp_diff(a: Array, b: Array, spec: Spec, *, xp: Any) -> Array:
    """``exp(a - b)`` in the accumulation dtype for ``a <= b`` (0 where ``a`` is ``-inf``).

    The difference is exact in a wider accumulation dtype; otherwise its rounding
    error is recovered (TwoSum) and folded back in.
    """
    b_ok = xp.isfinite(b)
    b_safe = xp.where(b_ok, b, xp.zeros_like(b))
    a_safe = xp.where(xp.isfinite(a), a, b_safe)
    if spec.acc != spec.compute:
        out = xp.exp(xp.astype(a_safe, spec.acc) - xp.astype(b_safe, spec.acc))
    else:
        d = a_safe - b_safe
        back = d - a_safe
        err = (a_safe - (d - back)) - (b_safe + back)
        t = xp.exp(d)
        out = t + t * err
    return xp.where(a == -xp.inf, xp.zeros_like(out), out)


def _gap(hi: Array, lo: Array, spec: Spec, *, xp: Any) -> Array:
    """``hi - lo >= 0`` in the accumulation dtype (0 where ``lo`` is ``-inf``: an empty row)."""
    ok = xp.isfinite(lo)
    hi_a = xp.astype(xp.where(ok, hi, xp.zeros_like(hi)), spec.acc)
    lo_a = xp.astype(xp.where(ok, lo, xp.zeros_like(lo)), spec.acc)
    return hi_a - lo_a


def chunk_stats(
    logits: Array,
    start: Any,
    target: Array | None,
    a: Array | None,
    spec: Spec,
    *,
    xp: Any,
) -> Stats:
    """Statistics of one ``(N, K)`` block of logits (classes ``start .. start + K``).

    ``target`` holds the safe class indices (index targets); ``a`` the soft
    coefficients of the block, ``(K,)`` or ``(N, K)`` (None without a soft term).
    """
    s = _generic.shift_by_max(logits, (1,), logits.dtype, xp=xp)
    sums = _generic.row_sums(s, (1,), spec.acc, xp=xp)
    x_t = None
    if target is not None:
        k = int(logits.shape[1])
        local = target - start
        inside = xp.logical_and(local >= 0, local < k)
        local = xp.where(inside, local, xp.zeros_like(local))
        picked = take_class(logits, local, 1, xp)
        x_t = xp.expand_dims(xp.where(inside, picked, xp.zeros_like(picked)), axis=1)
    soft = a_sum = None
    if a is not None:
        a_c = a if a.dtype == s.z.dtype else xp.astype(a, s.z.dtype)
        terms = xp.where(a_c == 0, xp.zeros_like(s.z), a_c * s.z)
        soft = xp.sum(terms, axis=1, keepdims=True, dtype=spec.acc)
        if a.ndim == 2:
            a_sum = xp.sum(a, axis=1, keepdims=True, dtype=spec.acc)
        else:
            a_sum = xp.sum(a, dtype=spec.acc)
    return Stats(m=s.m, top=sums.top, rest=sums.rest, x_t=x_t, soft=soft, a_sum=a_sum)


def merge(old: Stats, new: Stats, new_has_target: Array | None, spec: Spec, *, xp: Any) -> Stats:
    """Fold the statistics of a new chunk into the running ones, exactly.

    ``new_has_target`` marks the rows whose target lies in the new chunk.
    """
    m = xp.maximum(old.m, new.m)
    f_old = _exp_diff(old.m, m, spec, xp=xp)
    f_new = _exp_diff(new.m, m, spec, xp=xp)
    zero = xp.zeros_like(old.top)
    old_top_kept = old.m == m
    new_top_kept = new.m == m
    top = xp.where(old_top_kept, old.top, zero) + xp.where(new_top_kept, new.top, zero)
    rest = (old.rest + xp.where(old_top_kept, zero, old.top)) * f_old + (
        new.rest + xp.where(new_top_kept, zero, new.top)
    ) * f_new
    x_t = None
    if old.x_t is not None and new.x_t is not None:
        assert new_has_target is not None
        x_t = xp.where(new_has_target, new.x_t, old.x_t)
    soft = a_sum = None
    if old.soft is not None and new.soft is not None:
        assert old.a_sum is not None
        assert new.a_sum is not None
        # Σ a (x - m_new) = Σ a (x - m_old) - (Σ a) (m_new - m_old): terms of one sign
        soft = (
            old.soft
            - _scaled(old.a_sum, _gap(m, old.m, spec, xp=xp), xp=xp)
            + new.soft
            - _scaled(new.a_sum, _gap(m, new.m, spec, xp=xp), xp=xp)
        )
        a_sum = old.a_sum + new.a_sum
    return Stats(m=m, top=top, rest=rest, x_t=x_t, soft=soft, a_sum=a_sum)


def _scaled(coef: Array, gap: Array, *, xp: Any) -> Array:
    """``coef * gap``, 0 where ``gap`` is 0 (no ``0 * inf``)."""
    return xp.where(gap == 0, xp.zeros_like(gap), coef * gap)


@dataclass(frozen=True)
class Finished:
    """Per-row results of a finished forward sweep, each ``(N,)`` in the accumulation dtype."""

    m: Array  # (N, 1) compute dtype: the row maximum (0 for an empty row)
    total: Array  # (N, 1) acc: Σ exp(x - m)
    lse: Array
    nll: Array | None  # lse - x_t (index targets)
    soft: Array | None  # Σ_c a_c (lse - x_c)
    empty: Array  # bool: no finite logit in the row


def finish(st: Stats, a_total: Any, spec: Spec, *, xp: Any) -> Finished:
    """Turn the running statistics into ``lse``, the target's NLL and the soft term.

    ``a_total`` is ``Σ_c a_c`` for index targets (a number); probability targets
    carry it per row in ``st.a_sum``.
    """
    empty = st.m == -xp.inf
    m_safe = xp.where(empty, xp.zeros_like(st.m), st.m)
    top = xp.where(st.top == 0, xp.ones_like(st.top), st.top)
    log_total = xp.log(top) + xp.log1p(st.rest / top)
    lse = xp.astype(m_safe, spec.acc) + log_total
    lse = xp.where(st.m == xp.inf, xp.full_like(lse, xp.inf), lse)
    nll = None
    if st.x_t is not None:
        d = xp.astype(m_safe, spec.acc) - xp.astype(st.x_t, spec.acc)
        if spec.acc == spec.compute:  # TwoSum: the rounding error of m - x_t
            # on a finite target logit only (a -inf one gives d = inf, the loss +inf); the
            # others take m itself, so no NaN is ever formed
            finite_t = xp.isfinite(st.x_t)
            x_t = xp.where(finite_t, st.x_t, m_safe)
            d_fin = m_safe - x_t
            back = d_fin - m_safe
            d = xp.where(finite_t, d_fin + ((m_safe - (d_fin - back)) - (x_t + back)), d)
        nll = log_total + d
        nll = xp.squeeze(nll, axis=1)
    soft = None
    if st.soft is not None:
        a = st.a_sum if spec.kind == "prob" else a_total
        soft = xp.squeeze(_scaled(a, log_total, xp=xp) - st.soft, axis=1)
    return Finished(
        m=m_safe,
        total=st.top + st.rest,
        lse=xp.squeeze(lse, axis=1),
        nll=nll,
        soft=soft,
        empty=xp.squeeze(empty, axis=1),
    )


def grad_chunk(
    logits: Array,
    tanh: Array | None,
    start: Any,
    fin: Finished,
    coef_p: Array,
    coef_t: Array | None,
    target: Array | None,
    soft_rows: Array | None,
    a: Array | None,
    spec: Spec,
    *,
    xp: Any,
) -> Array:
    """``dloss/dlogits`` of one block (before the cap), in the compute dtype.

    ``coef_p * softmax - coef_t * onehot(target) - soft_rows * a``, times the
    derivative of the cap; ``coef_p``, ``coef_t``, ``soft_rows`` are ``(N, 1)``
    in the compute dtype.
    """
    z = logits - fin.m
    total = xp.astype(xp.where(fin.total == 0, xp.ones_like(fin.total), fin.total), spec.compute)
    g = coef_p * (xp.exp(z) / total)
    if target is not None and coef_t is not None:
        k = int(logits.shape[1])
        classes = xp.reshape(
            xp.arange(k, dtype=target.dtype, device=device(logits)) + start, (1, k)
        )
        hit = classes == xp.expand_dims(target, axis=1)
        g = g - xp.where(hit, coef_t, xp.zeros_like(g))
    if a is not None and soft_rows is not None:
        a_c = a if a.dtype == spec.compute else xp.astype(a, spec.compute)
        g = g - soft_rows * a_c
    if tanh is not None:
        g = g * (1 - tanh * tanh)
    return g
