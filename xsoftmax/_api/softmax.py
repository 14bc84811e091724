"""softmax, log_softmax and logsumexp: validate, get the namespace once, run the kernel."""

from __future__ import annotations

from typing import Any

from xsoftmax._contract.array_types import Array as AnyArray
from xsoftmax._contract.array_types import ArrayT
from xsoftmax._contract.checks import (
    check_broadcastable,
    check_floating,
    check_known_axes,
    check_out_dtype,
    is_bool_dtype,
    is_integer_dtype,
    is_real_floating,
    namespace_of,
    normalize_axes,
    torch_keywords,
)
from xsoftmax._contract.prepare import (
    broadcast_shape,
    cast,
    cast_in_range,
    has_no_element,
    prepare_floating,
)
from xsoftmax._contract.quiet import quiet
from xsoftmax._definition import rows as _generic
from xsoftmax._kernels import dispatch as _dispatch

Array = Any  # inside the module; the public signatures use ._typing's types


def _softmax_family(
    func: str, x: Array, axis: Any, where: Array | None, dtype: Any
) -> tuple[Any, Any, tuple[int, ...]]:
    xp = namespace_of(func, x=x, where=where)
    check_floating(func, "x", x, xp)
    check_out_dtype(func, dtype, xp)
    axes = normalize_axes(func, axis, x.ndim, allow_none=False)
    check_known_axes(func, "x", x, axes)
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
) -> Array:
    """Validate, then run ``func`` along ``axis`` on the path :mod:`._dispatch` picks."""
    if where is None and dtype is None:
        lane = _dispatch.numpy_lane(func, x, axis)
        if lane is not None:
            return lane
    if getattr(x, "ndim", None) == 0 and _names_axis_0(axis):
        return _zero_d(func, x, where, dtype)
    xp, prep, axes = _softmax_family(func, x, axis, where, dtype)
    if has_no_element(prep.x):
        return xp.astype(prep.x, prep.out_dtype, copy=True)
    with quiet(xp):
        out = _dispatch.softmax_family(func, prep.x, axes, prep.acc, xp, prep.out_dtype)
        if where is not None and func == "log_softmax":
            # the masked outputs are the constant -inf: written as such, so that autograd
            # sends nothing back through them (the upstream gradient there is not counted)
            out = xp.where(where, out, xp.full_like(out, -xp.inf))
        return cast_in_range(out, prep.out_dtype, xp)


@torch_keywords
def softmax(
    x: ArrayT,
    /,
    *,
    axis: int | tuple[int, ...] = -1,
    where: AnyArray | None = None,
    dtype: Any = None,
) -> ArrayT:
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
    return _normalise("softmax", x, axis, where, dtype)


@torch_keywords
def log_softmax(
    x: ArrayT,
    /,
    *,
    axis: int | tuple[int, ...] = -1,
    where: AnyArray | None = None,
    dtype: Any = None,
) -> ArrayT:
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
    return _normalise("log_softmax", x, axis, where, dtype)


def _names_axis_0(axis: Any) -> bool:
    """Whether ``axis`` names the one axis a 0-d array is read as: 0 or -1 (or a 1-tuple)."""
    items = axis if isinstance(axis, tuple) and len(axis) == 1 else (axis,)
    return type(items[0]) is int and items[0] in (0, -1)


def _zero_d(func: str, x: Array, where: Array | None, dtype: Any) -> Array:
    """softmax / log_softmax of a 0-d ``x`` along axis 0: as a length-one row (torch, SciPy)."""
    xp = namespace_of(func, x=x, where=where)
    check_floating(func, "x", x, xp)
    if where is not None:
        check_broadcastable(func, "where", where, ())
        where = xp.expand_dims(where, axis=0)
    return xp.squeeze(_normalise(func, xp.expand_dims(x, axis=0), 0, where, dtype), axis=0)


def _check_b(func: str, b: Array, x: Array, xp: Any) -> tuple[Array, Array]:
    """Check ``b``'s dtype; ``x`` and ``b`` broadcast to their common shape (SciPy)."""
    if is_bool_dtype(xp, b.dtype) or not (
        is_real_floating(xp, b.dtype) or is_integer_dtype(xp, b.dtype)
    ):
        msg = f"{func}: `b` must be a real (floating or integer) array, got dtype {b.dtype}"
        raise TypeError(msg)
    shape = broadcast_shape(func, "b", tuple(b.shape), tuple(x.shape))
    if tuple(x.shape) != shape:
        x = xp.broadcast_to(x, shape)
    if tuple(b.shape) != shape:
        b = xp.broadcast_to(b, shape)
    return x, b


def _logsumexp_axes(func: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """The reduced axes; a 0-d ``x`` reduces over nothing for ``axis`` None, 0, -1 or ()."""
    if ndim == 0 and (axis is None or axis == () or _names_axis_0(axis)):
        return ()
    return normalize_axes(func, axis, ndim, allow_none=True)


@torch_keywords
def logsumexp(
    x: ArrayT,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    keepdims: bool = False,
    b: AnyArray | None = None,
    return_sign: bool = False,
    where: AnyArray | None = None,
) -> ArrayT | tuple[ArrayT, ArrayT]:
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
    if b is None and where is None and not return_sign and keepdims is False:
        lane = _dispatch.numpy_lane(func, x, axis)
        if lane is not None:
            return lane
    xp = namespace_of(func, x=x, b=b, where=where)
    check_floating(func, "x", x, xp)
    out_dtype = x.dtype
    if b is not None:
        x, b = _check_b(func, b, x, xp)
    axes = _logsumexp_axes(func, axis, x.ndim)
    check_known_axes(func, "x", x, axes)
    if b is not None and is_real_floating(xp, b.dtype):
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
        # -inf added to the sum over no element (0): autograd keeps its graph (torch)
        out = xp.astype(xp.sum(prep.x, axis=axes, keepdims=True), prep.acc) - xp.inf
        sign = xp.zeros_like(out)
    elif bc is None and not return_sign:
        with quiet(xp):
            out, sign = _dispatch.logsumexp(prep.x, axes, prep.acc, xp), None
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
