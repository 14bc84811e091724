"""binary_cross_entropy_with_logits, stable for logits of any magnitude."""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from xsoftmax._contract.array_types import Array as AnyArray
from xsoftmax._contract.array_types import ArrayT
from xsoftmax._contract.checks import (
    check_broadcastable,
    check_floating,
    check_out_dtype,
    check_reduction,
    is_integer_dtype,
    known_size,
    namespace_of,
    shapes_match,
    torch_keywords,
)
from xsoftmax._contract.dtypes import is_real_floating
from xsoftmax._contract.prepare import cast, prepare_floating
from xsoftmax._contract.quiet import quiet
from xsoftmax._definition.reductions import mean, times, zero_d

Array = Any  # inside the module; the public signatures use ._typing's types


def _softplus(x: Array, xp: Any) -> Array:
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def _check_real(func: str, name: str, a: Array, xp: Any, shape: tuple[int, ...]) -> None:
    if not (is_real_floating(xp, a.dtype) or is_integer_dtype(xp, a.dtype)):
        msg = f"{func}: `{name}` must be a real (floating or integer) array, got dtype {a.dtype}"
        raise TypeError(msg)
    check_broadcastable(func, name, a, shape)


@torch_keywords
def binary_cross_entropy_with_logits(
    logits: ArrayT,
    target: AnyArray,
    /,
    *,
    weight: AnyArray | None = None,
    pos_weight: AnyArray | None = None,
    reduction: str = "mean",
    dtype: Any = None,
) -> ArrayT:
    r"""Binary cross-entropy on logits, as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    .. math::
        \ell = w\,\big[(1 - y)\,\operatorname{softplus}(x)
               + p\, y\, \operatorname{softplus}(-x)\big]

    with :math:`\operatorname{softplus}(x) = \max(x, 0) + \log(1 + e^{-|x|})`:
    finite for finite logits of any magnitude, and the limits (0 or ``inf``)
    at ``±inf`` logits where torch returns NaN.

    Parameters
    ----------
    logits : array
        Real floating logits of any shape.
    target : array
        Floating targets (probabilities) of exactly the shape of ``logits``.
    weight : array, optional
        Rescaling weight broadcastable to the shape of ``logits``.
    pos_weight : array, optional
        Weight of the positive term, broadcastable to ``logits`` (usually ``(C,)``).
    reduction : {'mean', 'sum', 'none'}, optional
        Mean over every element (default), sum, or per element.
    dtype : dtype, optional
        Output dtype; default that of ``logits``.

    Returns
    -------
    array
        The loss: 0-d for ``'mean'``/``'sum'``, the shape of ``logits`` for ``'none'``.

    Raises
    ------
    TypeError
        Non-floating logits; integer or bool target; non-real weights; mixed libraries.
    ValueError
        ``target`` shape differs from ``logits``; weights not broadcastable; bad
        ``reduction``; mixed devices.

    Examples
    --------
    >>> import numpy as np
    >>> import xsoftmax
    >>> x = np.asarray([3e38, -3e38, -120.0], dtype=np.float32)
    >>> y = np.asarray([1.0, 1.0, 1.0], dtype=np.float32)
    >>> [float(v) for v in xsoftmax.binary_cross_entropy_with_logits(x, y, reduction="none")]
    [0.0, 3.0000000054977558e+38, 120.0]
    """
    func = "binary_cross_entropy_with_logits"
    xp = namespace_of(func, logits=logits, target=target, weight=weight, pos_weight=pos_weight)
    check_floating(func, "logits", logits, xp)
    check_out_dtype(func, dtype, xp)
    reduction = check_reduction(func, reduction)
    if not is_real_floating(xp, target.dtype):
        msg = (
            f"{func}: `target` must be a floating array of probabilities, got dtype {target.dtype}"
        )
        raise TypeError(msg)
    shape = tuple(logits.shape)
    if not shapes_match(tuple(target.shape), shape):
        msg = (
            f"{func}: `target` must have the shape of `logits` {shape}, got {tuple(target.shape)}"
        )
        raise ValueError(msg)
    for name, arr in (("weight", weight), ("pos_weight", pos_weight)):
        if arr is not None:
            _check_real(func, name, arr, xp, shape)
    prep = prepare_floating(func, "logits", logits, xp, dtype=dtype)
    # elementwise in the accumulation dtype (float64 for float32 data where available):
    # weighted terms of extreme logits neither overflow nor lose a tiny weight
    work = prep.acc
    x = cast(prep.x, work, xp)
    with quiet(xp):
        y = cast(target, work, xp)
        positive = y if pos_weight is None else cast(pos_weight, work, xp) * y
        loss = times(1 - y, _softplus(x, xp), xp) + times(positive, _softplus(-x, xp), xp)
        if weight is not None:
            loss = cast(weight, work, xp) * loss
        if reduction == "none":
            return cast(loss, prep.out_dtype, xp)
        total = xp.sum(loss, dtype=prep.acc)
        if reduction == "mean":
            # no overflow of a sum of finite losses; NaN over no element
            n = known_size(shape)
            count = (
                xp.sum(xp.ones_like(x))  # unknown lengths (Dask): count lazily
                if n is None
                else xp.asarray(float(n), dtype=work, device=device(x))
            )
            total = mean(loss, count, xp, total=total)
        return zero_d(cast(total, prep.out_dtype, xp))
