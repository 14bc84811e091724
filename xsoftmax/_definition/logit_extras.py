"""``softcap`` and ``z_loss``: the same function of the logits in ``cross_entropy`` and
``linear_cross_entropy``.

``softcap`` maps the logits to ``s * tanh(logits / s)`` before the loss (Gemma 2);
``z_loss`` adds ``z_loss * logsumexp(logits)**2`` per counted sample (PaLM),
ignored samples contributing nothing and class weights not scaling it, averaged
over the counted samples by ``reduction='mean'``. The arguments come checked
(:mod:`xsoftmax._contract.checks`); the logits come prepared, in their compute
dtype (float32 for half precision), so the cap is never evaluated in half precision.
"""

from __future__ import annotations

from typing import Any

from xsoftmax._definition.special_values import nan_where

Array = Any


def softcapped(x: Array, cap: float | None, *, xp: Any) -> Array:
    """``cap * tanh(x / cap)`` (``x`` itself for ``cap=None``).

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._definition.logit_extras import softcapped
    >>> [round(float(v), 4) for v in softcapped(np.asarray([0.0, 30.0]), 30.0, xp=np)]
    [0.0, 22.8478]
    """
    if cap is None:
        return x
    return cap * xp.tanh(x / cap)


def z_loss_total(
    lse: Array, ignored: Array | None, reduction: str, z_loss: float, *, xp: Any
) -> Array:
    """The z-loss term ``z_loss * lse**2`` per counted sample, reduced as ``reduction`` asks.

    ``lse`` is the per-sample logsumexp in the accumulation dtype; ``ignored`` marks the
    samples that count for nothing (None: every sample counts). ``'mean'`` divides by
    the number of counted samples (NaN where none counts, as torch's mean of nothing).

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._definition.logit_extras import z_loss_total
    >>> float(z_loss_total(np.asarray([1.0, 3.0]), None, "mean", 0.5, xp=np))
    2.5
    """
    term = z_loss * (lse * lse)
    if ignored is not None:
        term = xp.where(ignored, xp.zeros_like(term), term)
    if reduction == "none":
        return term
    if reduction == "sum":
        return xp.sum(term)
    # the count as an array: no Python int of the size (a method on torch, NaN on Dask
    # arrays of unknown length)
    counted = (
        xp.ones_like(term) if ignored is None else xp.astype(xp.logical_not(ignored), term.dtype)
    )
    count = xp.sum(counted)
    zero = count == 0
    total = xp.sum(term) / xp.where(zero, xp.ones_like(count), count)
    return nan_where(zero, total, xp)
