"""cross_entropy, nll_loss and cross_entropy_with_grad, with torch's semantics.

Class-index targets never materialise the log-probabilities: the loss of a
sample is ``log Σ exp(x - m) - (x_t - m)``, built from the row statistics of
:mod:`xsoftmax._definition.rows` and the target's logit. Per-sample losses and their
reductions are formed in the accumulation dtype (float64 for float32 data), so
a mean of finite losses does not overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from array_api_compat import device

from xsoftmax._contract.array_types import Array as AnyArray
from xsoftmax._contract.array_types import ArrayT
from xsoftmax._contract.checks import (
    known_size,
    torch_keywords,
)
from xsoftmax._contract.loss_problem import LossProblem, setup_loss
from xsoftmax._contract.prepare import cast, has_no_element, matched
from xsoftmax._contract.quiet import quiet
from xsoftmax._contract.targets import one_hot, take_class
from xsoftmax._definition import rows as _generic
from xsoftmax._definition.blocked import can_block, row_blocks
from xsoftmax._definition.logit_extras import softcapped, z_loss_total
from xsoftmax._definition.reductions import divide, mean, times, zero_d
from xsoftmax._definition.special_values import nan_where
from xsoftmax._kernels import dispatch as _dispatch

Array = Any  # inside the module; the public signatures use ._typing's types


def _class_shape(p: LossProblem) -> tuple[int, ...]:
    """Shape that broadcasts a (C,) vector along the class axis."""
    return tuple(-1 if i == p.axis else 1 for i in range(p.x.ndim))


def _weight_of_targets(p: LossProblem) -> Array:
    """``weight[target]`` per sample in the accumulation dtype (ones without weights)."""
    xp = p.xp
    if p.weight is None:
        return xp.ones_like(p.target, dtype=p.acc)
    flat = xp.take(p.weight, xp.reshape(p.target, (-1,)), axis=0)
    return xp.astype(xp.reshape(flat, p.target.shape), p.acc)


def _reduce(
    p: LossProblem,
    per_sample: Array,
    denominator: Array | None,
    split: tuple[Array, Array] | None = None,
) -> Array:
    """Apply ``p.reduction`` to per-sample losses (accumulation dtype) and cast to the output.

    ``'mean'`` divides by the summed ``denominator`` (index targets) or the number
    of samples (probability targets), without overflow of a sum of finite losses
    (:func:`~xsoftmax._definition.reductions.mean`). A zero normaliser gives torch's value:
    NaN, or ``±inf`` for weights that sum to zero. torch divides its NLL and
    smoothing terms separately, so with label smoothing ``split`` holds the two
    per-sample parts of ``per_sample`` and each is divided by the zero apart.
    """
    xp = p.xp
    if p.reduction == "none":
        out = per_sample
    else:
        total = xp.sum(per_sample)
        if p.reduction == "sum":
            out = total
        elif denominator is None:  # probability targets: the number of samples
            n = known_size(tuple(per_sample.shape))
            count = (
                xp.sum(xp.ones_like(per_sample))  # unknown lengths (Dask): count lazily
                if n is None
                else xp.asarray(float(n), dtype=per_sample.dtype, device=device(per_sample))
            )
            out = mean(per_sample, count, xp, total=total)
        else:
            weight_sum = xp.sum(denominator)
            out = mean(per_sample, weight_sum, xp, total=total)
            if split is not None:
                by_zero = divide(xp.sum(split[0]), weight_sum, xp) + divide(
                    xp.sum(split[1]), weight_sum, xp
                )
                out = xp.where(weight_sum == 0, by_zero, out)
    return zero_d(cast(out, p.out_dtype, xp))


@dataclass(frozen=True)
class _Forward:
    per_sample: Array  # accumulation dtype
    denominator: Array | None  # per-sample weights of counted samples (index targets)
    shifted: _generic.Shifted
    sums: _generic.RowSums
    w_t: Array | None
    split: tuple[Array, Array] | None = None  # with smoothing: the NLL and smoothing parts


def _weight_total(p: LossProblem) -> Any:
    """``Σ_c w_c`` (C without weights), in the accumulation dtype."""
    if p.weight is None:
        return p.n_classes
    return p.xp.sum(p.xp.astype(p.weight, p.acc))


def _combine_index(
    p: LossProblem, nll: Array, smooth: Array | None, empty: Array
) -> tuple[Array, Array, Array]:
    """Per-sample losses from the target's NLL and the (already scaled) smoothing term.

    Returns ``(losses, mean denominators, weight[target])``; ignored samples give
    0, out-of-range (lazy) targets and rows with no finite logit give NaN.
    """
    xp = p.xp
    assert p.ignored is not None
    assert p.bad is not None
    w_t = _weight_of_targets(p)
    # coefficients first, and a zero coefficient (weight 0, or eps = 1) contributes 0
    # even against an infinite NLL, instead of 0 * inf = NaN
    coef = w_t if smooth is None else (1 - p.eps) * w_t
    per = times(coef, nll, xp)
    if smooth is not None:
        per = per + smooth
    per = xp.where(p.ignored, xp.zeros_like(per), per)
    nan_rows = xp.logical_or(p.bad, xp.logical_and(empty, xp.logical_not(p.ignored)))
    per = nan_where(nan_rows, per, xp)
    denominator = xp.where(p.ignored, xp.zeros_like(w_t), w_t)
    return per, denominator, w_t


def _split(
    p: LossProblem, nll: Array, smooth: Array, empty: Array, w_t: Array
) -> tuple[Array, Array]:
    """The NLL and smoothing parts of :func:`_combine_index`'s losses, masked alike.

    Only their signs matter, where the mean's normaliser is 0 (see :func:`_reduce`).
    """
    xp = p.xp
    assert p.ignored is not None
    assert p.bad is not None
    part = times((1 - p.eps) * w_t, nll, xp)
    nan_rows = xp.logical_or(p.bad, xp.logical_and(empty, xp.logical_not(p.ignored)))
    part = nan_where(nan_rows, part, xp)
    zero = xp.zeros_like(part)
    return xp.where(p.ignored, zero, part), xp.where(p.ignored, zero, smooth)


def _forward(p: LossProblem) -> _Forward:
    xp, ax, acc = p.xp, p.axis, p.acc
    s = _generic.shift_by_max(p.x, (ax,), acc, xp=xp)
    sums = _generic.row_sums(s, (ax,), acc, xp=xp)
    log_sum = _generic.log_total(sums, xp=xp)  # keepdims, acc
    empty = xp.squeeze(s.m == -xp.inf, axis=ax)
    w_row = None if p.weight is None else xp.reshape(p.weight, _class_shape(p))
    if p.kind == "index":
        z_t = xp.astype(take_class(s.z, p.target, ax, xp), acc)
        nll = xp.squeeze(log_sum, axis=ax) - z_t
        if s.e is not None:
            nll = nll - xp.astype(take_class(s.e, p.target, ax, xp), acc)
        smooth = None
        if p.eps > 0:
            # (eps / C) * Σ_c w_c (L - z_c - e_c), scaled term by term: the unscaled
            # sum of C huge -log p terms may overflow where the loss does not
            coef = p.eps / p.n_classes
            shifted = s.plus_e(s.z) * (-coef)
            # x - m below -finfo.max overflowed; scaled first, the term is finite
            over = xp.logical_and(s.z == -xp.inf, xp.isfinite(p.x))
            big = coef * xp.astype(s.m_safe, shifted.dtype) - coef * xp.astype(p.x, shifted.dtype)
            shifted = xp.where(over, big, shifted)
            if w_row is not None:
                shifted = times(w_row, shifted, xp)
            smooth = xp.squeeze(log_sum, axis=ax) * (_weight_total(p) * coef) + xp.sum(
                shifted, axis=ax, dtype=acc
            )
        per, denominator, w_t = _combine_index(p, nll, smooth, empty)
        split = None if smooth is None else _split(p, nll, smooth, empty, w_t)
        return _Forward(per, denominator, s, sums, w_t, split)
    t = p.target
    if p.eps > 0:
        t = t * (1 - p.eps) + p.eps / p.n_classes
    neg_log_p = xp.astype(log_sum, s.z.dtype) - s.z
    if s.e is not None:
        neg_log_p = neg_log_p - s.e
    wt = t if w_row is None else w_row * t
    terms = times(wt, neg_log_p, xp)
    per = xp.sum(terms, axis=ax, dtype=acc)
    per = nan_where(empty, per, xp)
    return _Forward(per, None, s, sums, None)


def _empty_per_sample(p: LossProblem) -> tuple[Array, Array | None]:
    """Per-sample losses of a problem with no logit: 0 (NaN for lazy out-of-range targets).

    With 0 classes every class index was ignored (anything else raised, or is
    ``bad`` on lazy arrays); with 0 samples there is nothing to sum. The zeros
    are sums over no element of the inputs, so autograd keeps its graph (torch
    returns a loss with a gradient function here too).
    """
    xp = p.xp
    per = xp.astype(xp.sum(p.x, axis=p.axis), p.acc)
    if p.kind == "prob":
        return per + xp.astype(xp.sum(p.target, axis=p.axis), p.acc), None
    assert p.bad is not None
    assert p.ignored is not None
    per = nan_where(p.bad, per, xp)
    w_t = _weight_of_targets(p) if p.n_classes else xp.ones_like(per)
    return per, xp.where(p.ignored, xp.zeros_like(w_t), w_t)


def _per_sample(p: LossProblem) -> tuple[Array, Array | None, tuple[Array, Array] | None]:
    """Per-sample losses, mean denominators and the smoothing split, by blocks of rows."""
    if has_no_element(p.x):
        return (*_empty_per_sample(p), None)
    fast = (
        None
        if p.kind != "index" or p.eps != 0
        else _dispatch.target_nll(p.x, p.target, p.axis, p.acc, p.xp)
    )
    if fast is not None:
        per, denominator, _ = _combine_index(p, fast[0], None, fast[1])
        return per, denominator, None
    if p.axis != p.x.ndim - 1 or not can_block(p.x, (p.axis,)):
        f = _forward(p)
        return f.per_sample, f.denominator, f.split
    xp = p.xp
    lead = tuple(int(s) for s in p.x.shape[:-1])
    n_rows = math.prod(lead)
    x2 = xp.reshape(p.x, (n_rows, p.n_classes))
    rows = (n_rows,) if p.kind == "index" else (n_rows, p.n_classes)
    target = xp.reshape(p.target, rows)
    masks = [None if m is None else xp.reshape(m, (n_rows,)) for m in (p.ignored, p.bad)]
    per = xp.empty((n_rows,), dtype=p.acc, device=device(p.x))
    den = xp.empty((n_rows,), dtype=p.acc, device=device(p.x)) if p.kind == "index" else None
    parts = None
    if p.kind == "index" and p.eps > 0:
        parts = tuple(xp.empty((n_rows,), dtype=p.acc, device=device(p.x)) for _ in range(2))
    for start, stop in row_blocks(p.x):
        sub = replace(
            p,
            axis=1,
            x=x2[start:stop, ...],
            target=target[start:stop, ...],
            ignored=None if masks[0] is None else masks[0][start:stop],
            bad=None if masks[1] is None else masks[1][start:stop],
        )
        f = _forward(sub)
        per[start:stop] = f.per_sample
        if den is not None and f.denominator is not None:
            den[start:stop] = f.denominator
        if parts is not None and f.split is not None:
            parts[0][start:stop], parts[1][start:stop] = f.split
    split = None if parts is None else (xp.reshape(parts[0], lead), xp.reshape(parts[1], lead))
    return xp.reshape(per, lead), None if den is None else xp.reshape(den, lead), split


def _gradient(p: LossProblem, f: _Forward) -> Array:
    """The analytic gradient of the reduced loss (of the sum for ``'none'``) w.r.t. logits."""
    xp, ax, dt = p.xp, p.axis, f.sums.w.dtype
    total = f.sums.top + f.sums.rest
    total = xp.astype(xp.where(total == 0, xp.ones_like(total), total), dt)
    prob = f.sums.w / total
    if p.kind == "index":
        assert f.w_t is not None
        assert f.denominator is not None
        assert p.ignored is not None
        if p.reduction == "mean":
            total = xp.sum(f.denominator)
            # no counted weight: the loss is NaN (torch) but the gradient is 0, not NaN
            scale = xp.where(
                total == 0,
                xp.zeros_like(total),
                1 / xp.where(total == 0, xp.ones_like(total), total),
            )
            scale = xp.where(p.ignored, xp.zeros_like(f.w_t), xp.ones_like(f.w_t) * scale)
        else:
            scale = xp.where(p.ignored, xp.zeros_like(f.w_t), xp.ones_like(f.w_t))
        assert p.bad is not None
        scale = nan_where(p.bad, scale, xp)
        coef_p = scale * ((1 - p.eps) * f.w_t + (p.eps / p.n_classes) * _weight_total(p))
        coef_t = scale * ((1 - p.eps) * f.w_t)
        grad = xp.expand_dims(xp.astype(coef_p, dt), axis=ax) * prob - xp.expand_dims(
            xp.astype(coef_t, dt), axis=ax
        ) * one_hot(p.target, prob, ax, xp)
        if p.eps > 0:
            w_row = (
                xp.ones(_ones_shape(p), dtype=dt, device=device(p.x))
                if p.weight is None
                else xp.reshape(xp.astype(p.weight, dt), _class_shape(p))
            )
            coef_w = xp.expand_dims(xp.astype(scale * (p.eps / p.n_classes), dt), axis=ax)
            grad = grad - coef_w * w_row
        return grad
    t = p.target
    if p.eps > 0:
        t = t * (1 - p.eps) + p.eps / p.n_classes
    wt = t if p.weight is None else xp.reshape(p.weight, _class_shape(p)) * t
    coef = xp.sum(wt, axis=ax, keepdims=True)
    coef, prob = matched(coef, prob, xp)
    coef, wt = matched(coef, wt, xp)
    grad = coef * prob - wt
    if p.reduction == "mean":
        n = known_size(tuple(s for i, s in enumerate(p.x.shape) if i != ax))
        if n is None:  # unknown lengths (Dask): count the samples lazily
            grad = grad / xp.sum(xp.ones_like(coef))
        elif n:
            grad = grad / n
    return grad


def _ones_shape(p: LossProblem) -> tuple[int, ...]:
    return tuple(p.n_classes if i == p.axis else 1 for i in range(p.x.ndim))


def _with_softcap(p: LossProblem) -> LossProblem:
    """``p`` with its prepared logits soft-capped (after the upcast of half precision)."""
    if p.softcap is None:
        return p
    return replace(p, x=softcapped(p.x, p.softcap, xp=p.xp))


def _row_lse(p: LossProblem) -> Array:
    """``logsumexp`` of the prepared logits along the class axis, kept, in ``p.acc``."""
    lse = _dispatch.logsumexp(p.x, (p.axis,), p.acc, p.xp)
    return lse if lse.dtype == p.acc else p.xp.astype(lse, p.acc)


def _plus_z_loss(p: LossProblem, loss: Array, lse: Array | None = None) -> Array:
    """``loss`` plus the reduced z-loss term of ``p`` (``loss`` itself for ``z_loss=0``).

    ``lse`` is :func:`_row_lse` of ``p`` where the caller has it already.
    """
    if p.z_loss == 0:
        return loss
    xp = p.xp
    lse = xp.squeeze(_row_lse(p) if lse is None else lse, axis=p.axis)
    total = z_loss_total(lse, p.ignored, p.reduction, p.z_loss, xp=xp)
    return zero_d(loss + (total if total.dtype == loss.dtype else xp.astype(total, loss.dtype)))


@torch_keywords
def cross_entropy(
    logits: ArrayT,
    target: AnyArray,
    /,
    *,
    axis: int = -1,
    weight: AnyArray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    dtype: Any = None,
    softcap: float | None = None,
    z_loss: float = 0.0,
) -> ArrayT:
    r"""Cross-entropy between logits and class indices or class probabilities.

    With ``axis=1`` this is ``torch.nn.functional.cross_entropy`` for every
    combination of options torch accepts; ``axis`` puts the class axis anywhere.

    .. math::
        \ell_n = -(1-\varepsilon)\, w_{t_n} \log p_{n,t_n}
                 - \frac{\varepsilon}{C} \sum_c w_c \log p_{n,c},
        \qquad p_n = \operatorname{softmax}(x_n)

    for class indices ``t``; for probabilities ``q``,
    :math:`\ell_n = -\sum_c w_c q'_{n,c} \log p_{n,c}` with
    :math:`q' = (1-\varepsilon) q + \varepsilon / C`.

    Parameters
    ----------
    logits : array
        Real floating logits, shape ``(..., C, ...)`` with the classes on ``axis``;
        ``(C,)`` for one unbatched sample.
    target : array
        Integer class indices (any integer dtype) with the shape of ``logits``
        without the class axis, or floating class probabilities with the shape of
        ``logits``.
    axis : int, optional
        The class axis. Default -1; torch's layout is ``axis=1``.
    weight : array, optional
        Per-class weights of shape ``(C,)``; cast to the compute dtype.
    ignore_index : int, optional
        Class-index targets equal to it contribute nothing (default -100); must be
        negative with probability targets.
    reduction : {'mean', 'sum', 'none'}, optional
        ``'mean'`` over class indices is the weighted mean over non-ignored samples,
        exactly as torch (NaN when nothing is counted, ``±inf`` for counted weights
        that sum to 0); over probabilities it divides by the number of samples. A
        mean of finite per-sample losses does not overflow unless its value does.
    label_smoothing : float, optional
        In [0, 1]; torch's definition, including its interplay with ``weight``
        and ``ignore_index``.
    dtype : dtype, optional
        Output dtype; default that of ``logits``. Half precision computes in float32.
    softcap : float, optional
        ``s > 0``: the logits become ``s * tanh(logits / s)`` first (Gemma 2).
    z_loss : float, optional
        Adds ``z_loss * logsumexp(logits)**2`` per counted sample (PaLM); ignored
        samples add nothing, class weights do not scale it, ``'mean'`` averages it
        over the counted samples. As in :func:`xsoftmax.linear_cross_entropy`.

    Returns
    -------
    array
        The loss: 0-d for ``'mean'``/``'sum'``, per sample for ``'none'``.

    Raises
    ------
    TypeError
        Non-floating logits; wrong target dtype; mixed libraries; bad option types.
    ValueError
        Wrong target or weight shape; class index out of range (eager arrays); bad
        ``reduction``/``label_smoothing``/``axis``; mixed devices.

    Notes
    -----
    The index range is checked on eager arrays (one device-to-host sync). On lazy
    arrays (Dask, JAX under ``jit``) nothing is computed behind the caller's back:
    an out-of-range index gives NaN for that sample instead.

    Examples
    --------
    >>> import numpy as np
    >>> import xsoftmax
    >>> logits = np.asarray([[2.0, 0.5, -1.0], [1e8, 1e8, 0.0]])
    >>> target = np.asarray([0, 1])
    >>> [round(float(v), 4) for v in xsoftmax.cross_entropy(logits, target, reduction="none")]
    [0.2413, 0.6931]
    >>> round(float(xsoftmax.cross_entropy(logits[:1, :], target[:1], label_smoothing=0.1)), 4)
    0.3913
    """
    p = setup_loss(
        "cross_entropy",
        "logits",
        logits,
        target,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        dtype=dtype,
        softcap=softcap,
        z_loss=z_loss,
    )
    p = _with_softcap(p)
    with quiet(p.xp):
        return _plus_z_loss(p, _reduce(p, *_per_sample(p)))


@torch_keywords
def cross_entropy_with_grad(
    logits: ArrayT,
    target: AnyArray,
    /,
    *,
    axis: int = -1,
    weight: AnyArray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    dtype: Any = None,
) -> tuple[ArrayT, ArrayT]:
    r"""Cross-entropy and its analytic gradient with respect to ``logits``.

    Takes exactly the arguments of :func:`cross_entropy` and returns
    ``(loss, dloss/dlogits)``; for backends without autograd (NumPy, CuPy).
    With ``reduction='none'`` the gradient is that of the sum of the per-sample
    losses. For class indices the gradient of sample ``n`` is

    .. math::
        s_n\Big[\big((1-\varepsilon) w_{t_n} + \tfrac{\varepsilon}{C} W\big)\, p_n
        - (1-\varepsilon) w_{t_n} e_{t_n} - \tfrac{\varepsilon}{C} w\Big]

    with :math:`W = \sum_c w_c` and :math:`s_n` the reduction's scale (0 for
    ignored samples). ``z_loss`` adds :math:`2 \lambda_z s'_n \operatorname{lse}(z_n)\, p_n`
    (:math:`s'_n` its own scale: 1 over the counted samples for ``'mean'``), and
    ``softcap`` multiplies the whole by the cap's derivative :math:`1 - \tanh^2(x / s)`.

    Parameters
    ----------
    logits, target : array
        As for :func:`cross_entropy`.
    axis, weight, ignore_index, reduction, label_smoothing, softcap, z_loss, dtype
        As for :func:`cross_entropy`.

    Returns
    -------
    loss : array
        As :func:`cross_entropy` returns it.
    grad : array
        Same shape and dtype as ``logits`` (as autograd gives it); rows sum to 0 without weights
        or smoothing corrections.

    Raises
    ------
    TypeError, ValueError
        As for :func:`cross_entropy`.

    Examples
    --------
    >>> import numpy as np
    >>> import xsoftmax
    >>> loss, grad = xsoftmax.cross_entropy_with_grad(
    ...     np.asarray([[0.0, 0.0]]), np.asarray([1]))
    >>> round(float(loss), 4), [float(g) for g in grad[0, :]]
    (0.6931, [0.5, -0.5])
    """
    p = setup_loss(
        "cross_entropy_with_grad",
        "logits",
        logits,
        target,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        dtype=dtype,
        softcap=softcap,
        z_loss=z_loss,
    )
    xp = p.xp
    with quiet(xp):
        if has_no_element(p.x):
            loss = _reduce(p, *_empty_per_sample(p))
            return loss, xp.zeros(p.x.shape, dtype=p.in_dtype, device=device(p.x))
        if p.softcap is None and p.z_loss == 0:
            fused = _fused_with_grad(p)
            if fused is not None:
                return fused
        raw = p.x
        p = _with_softcap(p)
        f = _forward(p)
        lse = _row_lse(p) if p.z_loss != 0 else None  # one pass serves loss and gradient
        loss = _plus_z_loss(p, _reduce(p, f.per_sample, f.denominator, f.split), lse)
        grad = _gradient(p, f)
        if lse is not None:
            grad = grad + _z_loss_gradient(p, grad.dtype, lse)
        if p.softcap is not None:
            u = xp.tanh(raw / p.softcap)
            grad = grad * xp.astype(1 - u * u, grad.dtype)
        grad = cast(grad, p.in_dtype, xp)
    return loss, grad


def _z_loss_gradient(p: LossProblem, dtype: Any, lse: Array) -> Array:
    """The gradient of the reduced z-loss term with respect to the (capped) logits (``lse``:
    :func:`_row_lse`).

    ``2 z_loss lse(z_n) softmax(z_n)`` per sample, times the reduction's scale: 0 for an
    ignored sample, 1 over the counted samples for ``'mean'`` (each sample's own for
    ``'none'``: the gradient of the sum).
    """
    xp = p.xp
    coef = (2 * p.z_loss) * lse  # kept dims: broadcasts along the class axis
    if p.ignored is not None:
        coef = xp.where(xp.expand_dims(p.ignored, axis=p.axis), xp.zeros_like(coef), coef)
    if p.reduction == "mean":
        counted = (
            xp.ones_like(coef)
            if p.ignored is None
            else xp.astype(xp.logical_not(xp.expand_dims(p.ignored, axis=p.axis)), p.acc)
        )
        count = xp.sum(counted)
        coef = coef / xp.where(count == 0, xp.ones_like(count), count)
    probs = _dispatch.softmax_family("softmax", p.x, (p.axis,), p.acc, xp)
    probs = xp.astype(probs, p.acc) if probs.dtype != p.acc else probs
    out = coef * probs
    return out if out.dtype == dtype else xp.astype(out, dtype)


def _fused_with_grad(p: LossProblem) -> tuple[Array, Array] | None:
    """``(loss, grad)`` in one pass of the fused CPU kernel, or None where it does not apply.

    Index targets without smoothing, the logits in their own dtype; the
    gradient of sample ``n`` is ``s_n w_{t_n} (softmax(x_n) - onehot(t_n))``, the
    same expression :func:`_gradient` evaluates.
    """
    if p.kind != "index" or p.eps != 0 or p.x.dtype != p.in_dtype:
        return None
    if not _dispatch.fused_grad_applies(p.x, p.axis):
        return None
    xp = p.xp
    assert p.ignored is not None
    assert p.bad is not None
    w_t = _weight_of_targets(p)
    if p.reduction == "mean":
        total = xp.sum(xp.where(p.ignored, xp.zeros_like(w_t), w_t))
        inv = xp.where(
            total == 0, xp.zeros_like(total), 1 / xp.where(total == 0, xp.ones_like(total), total)
        )
        scale = xp.where(p.ignored, xp.zeros_like(w_t), xp.ones_like(w_t) * inv)
    else:
        scale = xp.where(p.ignored, xp.zeros_like(w_t), xp.ones_like(w_t))
    scale = nan_where(p.bad, scale, xp) * w_t
    nll, grad, empty = _dispatch.nll_and_grad(p.x, p.target, p.axis, scale)
    per, denominator, _ = _combine_index(p, nll, None, empty)
    return _reduce(p, per, denominator), grad


@torch_keywords
def nll_loss(
    log_probs: ArrayT,
    target: AnyArray,
    /,
    *,
    axis: int = -1,
    weight: AnyArray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    dtype: Any = None,
) -> ArrayT:
    r"""Negative log-likelihood of class indices, as ``torch.nn.functional.nll_loss``.

    .. math:: \ell_n = -w_{t_n}\, y_{n, t_n}

    ``log_probs`` is used as given (not normalised).

    Parameters
    ----------
    log_probs : array
        Real floating log-probabilities with the classes on ``axis``.
    target : array
        Integer class indices, the shape of ``log_probs`` without the class axis.
    axis : int, optional
        The class axis (default -1; torch's layout is ``axis=1``).
    weight : array, optional
        Per-class weights of shape ``(C,)``.
    ignore_index : int, optional
        Targets equal to it contribute nothing (default -100).
    reduction : {'mean', 'sum', 'none'}, optional
        ``'mean'`` divides by the summed weights of the non-ignored targets (as
        torch: NaN when nothing is counted, ``±inf`` for weights that sum to 0).
    dtype : dtype, optional
        Output dtype; default that of ``log_probs``.

    Returns
    -------
    array
        The loss: 0-d for ``'mean'``/``'sum'``, per sample for ``'none'``.

    Raises
    ------
    TypeError, ValueError
        As for :func:`cross_entropy`; probability targets are a ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> import xsoftmax
    >>> lp = xsoftmax.log_softmax(np.asarray([[2.0, 0.5, -1.0]]))
    >>> round(float(xsoftmax.nll_loss(lp, np.asarray([0]))), 4)
    0.2413
    """
    p = setup_loss(
        "nll_loss",
        "log_probs",
        log_probs,
        target,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=0.0,
        dtype=dtype,
        allow_prob=False,
    )
    xp = p.xp
    with quiet(xp):
        if has_no_element(p.x):
            return _reduce(p, *_empty_per_sample(p))
        picked = xp.astype(take_class(p.x, p.target, p.axis, xp), p.acc)
        w_t = _weight_of_targets(p)
        assert p.ignored is not None
        assert p.bad is not None
        per = xp.where(p.ignored, xp.zeros_like(picked), -(w_t * picked))
        per = nan_where(p.bad, per, xp)
        denominator = xp.where(p.ignored, xp.zeros_like(w_t), w_t)
        return _reduce(p, per, denominator)
