"""``softcap`` and ``z_loss`` for ``cross_entropy``: the same function of the logits as in
``linear_cross_entropy``.

``softcap`` maps the logits to ``s * tanh(logits / s)`` before the loss (Gemma 2);
``z_loss`` adds ``z_loss * logsumexp(logits)**2`` per counted sample (PaLM),
ignored samples contributing nothing and class weights not scaling it, averaged
over the counted samples by ``reduction='mean'``.
"""

from __future__ import annotations

from typing import Any

from ._linear_problem import check_softcap, check_z_loss
from ._softmax import logsumexp
from ._validation import check_floating, namespace_of

Array = Any


def softcapped(func: str, logits: Array, softcap: Any) -> Array:
    """``softcap * tanh(logits / softcap)`` (``logits`` itself for ``softcap=None``)."""
    cap = check_softcap(func, softcap)
    if cap is None:
        return logits
    xp = namespace_of(func, logits=logits)
    check_floating(func, "logits", logits, xp)
    return cap * xp.tanh(logits / cap)


def plus_z_loss(func: str, loss: Array, p: Any, z_loss: Any) -> Array:
    """``loss`` plus the z-loss term of the prepared problem ``p`` (of ``_losses._setup``)."""
    zl = check_z_loss(func, z_loss)
    if zl == 0:
        return loss
    xp = p.xp
    lse = xp.astype(logsumexp(p.x, axis=p.axis), p.acc)
    term = zl * (lse * lse)
    counted = None if p.ignored is None else xp.logical_not(p.ignored)
    if counted is not None:
        term = xp.where(counted, term, xp.zeros_like(term))
    if p.reduction == "none":
        total = term
    elif p.reduction == "sum":
        total = xp.sum(term)
    else:
        count = (
            xp.sum(xp.astype(counted, p.acc))
            if counted is not None
            else xp.asarray(float(term.size if isinstance(term.size, int) else 0), dtype=p.acc)
        )
        zero = count == 0
        total = xp.sum(term) / xp.where(zero, xp.ones_like(count), count)
        total = xp.where(zero, xp.full_like(total, xp.nan), total)
    total = total if total.dtype == loss.dtype else xp.astype(total, loss.dtype)
    return loss + total
