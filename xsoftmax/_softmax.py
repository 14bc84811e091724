"""softmax, log_softmax and logsumexp: validate, get the namespace once, run the kernel."""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from . import _generic, _numpy_fast
from ._blocked import can_block, map_row_blocks
from ._config import fast_paths_enabled
from ._prepare import cast, has_no_element, prepare_floating
from ._quiet import quiet
from ._validation import (
    check_broadcastable,
    check_floating,
    check_out_dtype,
    is_bool_dtype,
    is_integer_dtype,
    is_real_floating,
    namespace_of,
    normalize_axes,
)

Array = Any


def _softmax_family(
    func: str, x: Array, axis: Any, where: Array | None, dtype: Any
) -> tuple[Any, Any, tuple[int, ...]]:
    xp = namespace_of(func, x=x, where=where)
    check_floating(func, "x", x, xp)
    check_out_dtype(func, dtype, xp)
    axes = normalize_axes(func, axis, x.ndim, allow_none=False)
    if not axes:
        msg = f"{func}: `axis` must name at least one axis, got {axis!r}"
        raise ValueError(msg)
    prep = prepare_floating(func, "x", x, xp, dtype=dtype, where=where)
    return xp, prep, axes


def _normalise(
    func: str,
    x: Array,
    axis: Any,
    where: Array | None,
    dtype: Any,
    generic: Any,
    numpy_fast: Any,
) -> Array:
    """Validate, then run ``generic`` (or its NumPy fast path / blocked form) along ``axis``."""
    xp, prep, axes = _softmax_family(func, x, axis, where, dtype)
    if has_no_element(prep.x):
        return xp.astype(prep.x, prep.out_dtype, copy=True)
    with quiet(xp):
        if fast_paths_enabled() and _numpy_fast.eligible(prep.x, axes):
            return cast(numpy_fast(prep.x), prep.out_dtype, xp)
        if can_block(prep.x, axes):
            return map_row_blocks(
                lambda rows: generic(rows, (1,), prep.acc, xp=xp),
                prep.x,
                int(prep.x.shape[-1]),
                prep.out_dtype,
                xp=xp,
            )
        return cast(generic(prep.x, axes, prep.acc, xp=xp), prep.out_dtype, xp)


def softmax(
    x: Array, /, *, axis: int | tuple[int, ...] = -1, where: Array | None = None, dtype: Any = None
) -> Array:
    r"""Softmax along ``axis``, stable and exact for finite logits of any magnitude.

    .. math:: \operatorname{softmax}(x)_i = \frac{\exp(x_i - m)}{\sum_j \exp(x_j - m)},
              \quad m = \max_j x_j

    Parameters
    ----------
    x : array
        Real floating logits of any shape, from any array API library.
    axis : int or tuple of int, optional
        The axis (or axes) that the probabilities sum over. Default -1.
    where : bool array, optional
        Broadcastable to ``x``; entries where it is False take no part (probability
        0). A row with no entry left gives 0 everywhere, not NaN.
    dtype : dtype, optional
        Output dtype (the input library's own dtype object); default ``x.dtype``.
        float16 and bfloat16 are computed in float32.

    Returns
    -------
    array
        Probabilities of the shape of ``x``, same library and device, summing to
        one along ``axis`` within a few ulps; each within 4 ulps of the correctly
        rounded value.

    Raises
    ------
    TypeError
        ``x`` is not a real floating array; ``where`` is not boolean.
    ValueError
        ``axis`` is out of range or repeated; ``x`` is 0-dimensional.

    Examples
    --------
    >>> import numpy as np
    >>> import xsoftmax
    >>> p = xsoftmax.softmax(np.asarray([[1.0, 2.0, 3.0], [1e30, -1e30, 0.0]]))
    >>> [round(float(v), 4) for v in p[0, :]]
    [0.09, 0.2447, 0.6652]
    >>> [float(v) for v in p[1, :]]
    [1.0, 0.0, 0.0]

    The same call on any array API library, here the standard's reference namespace:

    >>> import array_api_strict as xp
    >>> [round(float(v), 4) for v in xsoftmax.softmax(xp.asarray([1.0, 2.0, 3.0]))]
    [0.09, 0.2447, 0.6652]
    """
    return _normalise("softmax", x, axis, where, dtype, _generic.softmax, _numpy_fast.softmax)


def log_softmax(
    x: Array, /, *, axis: int | tuple[int, ...] = -1, where: Array | None = None, dtype: Any = None
) -> Array:
    r"""Log-softmax along ``axis``: ``x - logsumexp(x)``, stable and exact.

    .. math:: \log\operatorname{softmax}(x)_i = (x_i - m) - \log\sum_j \exp(x_j - m)

    Computed as ``(x - m) - log Σ exp(x - m)`` with the maximum's term taken out
    of the sum (``log1p``), so the top class of a row with one dominant logit
    gets its true, tiny log-probability (e.g. ``-4.2e-18``) instead of 0, and a
    large common offset costs no digit.

    Parameters
    ----------
    x : array
        Real floating logits of any shape.
    axis : int or tuple of int, optional
        The axis (or axes) normalised over. Default -1.
    where : bool array, optional
        Broadcastable to ``x``; entries where it is False get ``-inf``. A row with
        no entry left gives ``-inf`` everywhere and a zero gradient.
    dtype : dtype, optional
        Output dtype; default ``x.dtype``. Half precision is computed in float32.

    Returns
    -------
    array
        Log-probabilities of the shape of ``x``, same library and device; within 4
        ulps of the correctly rounded value.

    Raises
    ------
    TypeError
        ``x`` is not a real floating array; ``where`` is not boolean.
    ValueError
        ``axis`` is out of range or repeated; ``x`` is 0-dimensional.

    Examples
    --------
    >>> import numpy as np
    >>> import xsoftmax
    >>> y = xsoftmax.log_softmax(np.asarray([0.0, -40.0], dtype=np.float64))
    >>> float(y[0])  # torch and scipy return 0.0 here
    -4.248354255291589e-18
    >>> y = xsoftmax.log_softmax(np.asarray([1e8, 1e8, 1e8 - 64], dtype=np.float32))
    >>> [round(float(v), 4) for v in y]
    [-0.6931, -0.6931, -64.6931]
    """
    return _normalise(
        "log_softmax", x, axis, where, dtype, _generic.log_softmax, _numpy_fast.log_softmax
    )


def _check_b(func: str, b: Array, x: Array, xp: Any) -> None:
    if is_bool_dtype(xp, b.dtype) or not (
        is_real_floating(xp, b.dtype) or is_integer_dtype(xp, b.dtype)
    ):
        msg = f"{func}: `b` must be a real (floating or integer) array, got dtype {b.dtype}"
        raise TypeError(msg)
    check_broadcastable(func, "b", b, tuple(x.shape))


def logsumexp(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    keepdims: bool = False,
    b: Array | None = None,
    return_sign: bool = False,
    where: Array | None = None,
) -> Array | tuple[Array, Array]:
    r"""``log Σ b·exp(x)`` over ``axis``, with ``scipy.special.logsumexp`` semantics.

    .. math:: \operatorname{logsumexp}(x) = m + \log\sum_i b_i \exp(x_i - m)

    Parameters
    ----------
    x : array
        Real floating input (complex and integer input raise ``TypeError``).
    axis : None, int or tuple of int, optional
        Axes reduced over; None (default) reduces over every axis.
    keepdims : bool, optional
        Keep the reduced axes with length one.
    b : array, optional
        Weights broadcastable to ``x``, of any sign; ``b == 0`` masks its entry.
    return_sign : bool, optional
        If True return ``(log|Σ b exp(x)|, sign)``; otherwise a negative sum gives NaN.
    where : bool array, optional
        Broadcastable to ``x``; entries where it is False take no part.

    Returns
    -------
    array or (array, array)
        The result (``-inf`` for an empty or fully masked reduction, ``+inf`` where
        an entry is ``+inf``), and with ``return_sign`` its sign in {-1, 0, +1}.
        Same library and device as ``x``; float16/bfloat16 are computed in float32.

    Raises
    ------
    TypeError
        ``x`` is not real floating; ``b`` or ``where`` of the wrong kind.
    ValueError
        ``axis`` out of range or repeated; ``b`` or ``where`` not broadcastable.

    Examples
    --------
    >>> import numpy as np
    >>> import xsoftmax
    >>> x = np.asarray([[1e8, 1e8], [0.0, 0.0]], dtype=np.float32)
    >>> [round(float(v), 4) for v in xsoftmax.logsumexp(x, axis=1)]
    [100000000.0, 0.6931]
    >>> r, s = xsoftmax.logsumexp(np.asarray([0.0, 0.0]), b=np.asarray([1.0, -2.0]),
    ...                           return_sign=True)
    >>> float(r), float(s)
    (0.0, -1.0)
    """
    func = "logsumexp"
    xp = namespace_of(func, x=x, b=b, where=where)
    check_floating(func, "x", x, xp)
    axes = normalize_axes(func, axis, x.ndim, allow_none=True)
    out_dtype = x.dtype
    if b is not None:
        _check_b(func, b, x, xp)
        if is_real_floating(xp, b.dtype):
            out_dtype = xp.result_type(x.dtype, b.dtype)
    if not axes:  # reduce over no axis: add a length-one axis to reduce
        x = xp.expand_dims(x, axis=0)
        b = None if b is None else xp.expand_dims(b, axis=0)
        where = None if where is None else xp.expand_dims(where, axis=0)
        axes, squeeze = (0,), True
    else:
        squeeze = False
    prep = prepare_floating(func, "x", x, xp, dtype=out_dtype, where=where)
    bc = None
    if b is not None:
        bc = xp.broadcast_to(cast(b, prep.compute, xp), tuple(x.shape))
    if has_no_element(prep.x):
        shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        out = xp.full(shape, -xp.inf, dtype=prep.acc, device=device(x))
        sign = xp.zeros_like(out)
    elif (
        bc is None
        and not return_sign
        and fast_paths_enabled()
        and _numpy_fast.eligible(prep.x, axes)
    ):
        with quiet(xp):
            out, sign = xp.expand_dims(_numpy_fast.logsumexp(prep.x), axis=-1), None
    elif bc is None and not return_sign and can_block(prep.x, axes):
        with quiet(xp):
            out = map_row_blocks(
                lambda rows: xp.squeeze(
                    _generic.logsumexp(rows, (1,), prep.acc, xp=xp)[0], axis=1
                ),
                prep.x,
                None,
                prep.acc,
                xp=xp,
            )
        out, sign = xp.expand_dims(out, axis=-1), None
    else:
        with quiet(xp):
            out, sign = _generic.logsumexp(
                prep.x, axes, prep.acc, xp=xp, b=bc, return_sign=return_sign
            )
    if squeeze or not keepdims:
        out = xp.squeeze(out, axis=axes)
        sign = None if sign is None else xp.squeeze(sign, axis=axes)
    out = cast(out, prep.out_dtype, xp)
    if return_sign:
        return out, cast(sign, prep.out_dtype, xp)
    return out
