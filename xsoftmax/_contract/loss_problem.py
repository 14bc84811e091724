"""A cross-entropy call's arguments, checked once and prepared: one validated problem.

:func:`setup_loss` serves ``cross_entropy``, ``cross_entropy_with_grad`` and
``nll_loss``: it checks every argument (naming it in the message), classifies the
targets (class indices or probabilities), and casts the logits to their compute
dtype (float32 for half precision). Nothing here computes a loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xsoftmax._contract.checks import (
    check_floating,
    check_ignore_index,
    check_ignore_index_for_kind,
    check_label_smoothing,
    check_out_dtype,
    check_reduction,
    check_softcap,
    check_weight,
    check_z_loss,
    class_axis,
    namespace_of,
    target_kind,
)
from xsoftmax._contract.prepare import cast, prepare_floating
from xsoftmax._contract.targets import classify_targets

Array = Any


@dataclass(frozen=True)
class LossProblem:
    """A validated cross-entropy problem, cast to its compute dtype."""

    xp: Any
    x: Array
    axis: int
    n_classes: int
    kind: str  # "index" or "prob"
    target: Array  # safe class indices, or probabilities in the compute dtype
    ignored: Array | None
    bad: Array | None
    weight: Array | None  # (C,) in the compute dtype
    eps: float
    reduction: str
    out_dtype: Any
    acc: Any
    in_dtype: Any  # the logits' own dtype: the gradient's dtype, as autograd gives it
    softcap: float | None = None  # checked; applied by the caller after the upcast
    z_loss: float = 0.0  # checked


def setup_loss(
    func: str,
    logits_name: str,
    logits: Array,
    target: Array,
    *,
    axis: Any,
    weight: Array | None,
    ignore_index: Any,
    reduction: Any,
    label_smoothing: Any,
    dtype: Any,
    allow_prob: bool = True,
    softcap: Any = None,
    z_loss: Any = 0.0,
) -> LossProblem:
    """Check every argument of a cross-entropy call once, and cast the logits to their compute dtype.

    Nothing transforms an argument before its check: ``softcap`` and ``z_loss`` are
    checked here and applied by the caller to the prepared (upcast) logits.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._contract.loss_problem import setup_loss
    >>> p = setup_loss("cross_entropy", "logits", np.zeros((2, 3)), np.array([0, 2]), axis=-1,
    ...                weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
    ...                dtype=None)
    >>> p.kind, p.n_classes, p.axis
    ('index', 3, 1)
    """
    xp = namespace_of(func, **{logits_name: logits, "target": target, "weight": weight})
    check_floating(func, logits_name, logits, xp)
    check_out_dtype(func, dtype, xp)
    reduction = check_reduction(func, reduction)
    eps = check_label_smoothing(func, label_smoothing)
    cap = check_softcap(func, softcap)
    zl = check_z_loss(func, z_loss)
    ignore_index = check_ignore_index(func, ignore_index)
    ax = class_axis(func, logits_name, logits, axis)
    kind = target_kind(func, logits_name, logits, target, ax, xp)
    n_classes = int(logits.shape[ax])
    if kind == "prob" and not allow_prob:
        msg = (
            f"{func}: `target` must hold class indices of shape "
            f"{tuple(s for i, s in enumerate(logits.shape) if i != ax)}; probability targets "
            "(the shape of `log_probs`) are not supported by nll_loss, use cross_entropy"
        )
        raise ValueError(msg)
    check_ignore_index_for_kind(func, kind, ignore_index)
    if weight is not None:
        check_weight(func, weight, n_classes, xp)
    prep = prepare_floating(func, logits_name, logits, xp, dtype=dtype)
    w = None if weight is None else cast(weight, prep.compute, xp)
    if kind == "index":
        safe, ignored, bad = classify_targets(func, target, n_classes, ignore_index, xp)
        tgt: Array = safe
    else:
        ignored = bad = None
        tgt = cast(target, prep.compute, xp)
    return LossProblem(
        xp=xp,
        x=prep.x,
        axis=ax,
        n_classes=n_classes,
        kind=kind,
        target=tgt,
        ignored=ignored,
        bad=bad,
        weight=w,
        eps=eps,
        reduction=reduction,
        out_dtype=prep.out_dtype,
        acc=prep.acc,
        in_dtype=logits.dtype,
        softcap=cap,
        z_loss=zl,
    )
