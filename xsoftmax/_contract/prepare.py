"""Shared preparation of a floating input: dtype policy, ``where`` mask, empty axes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from array_api_compat import device

from xsoftmax._contract.checks import check_broadcastable, is_bool_dtype
from xsoftmax._contract.dtypes import accumulation_dtype, compute_dtype, float_bits
from xsoftmax._contract.namespaces import is_known

Array = Any


@dataclass(frozen=True)
class Prepared:
    """A floating input ready for a kernel: cast to ``compute`` and masked by ``where``."""

    x: Array
    out_dtype: Any
    compute: Any
    acc: Any


def wider(xp: Any, a: Any, b: Any) -> Any:
    """The wider of two native floating compute dtypes (float64 beats float32)."""
    return xp.float64 if xp.float64 in (a, b) else a


def matched(a: Array, b: Array, xp: Any) -> tuple[Array, Array]:
    """``a`` and ``b`` cast to one floating dtype, the wider of theirs (no implicit promotion).

    JAX's strict promotion mode refuses ``float32 * float64``; every mixed product in
    the package goes through here instead.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._contract.prepare import matched
    >>> [str(v.dtype) for v in matched(np.ones(1, np.float32), np.ones(1), np)]
    ['float64', 'float64']
    """
    if a.dtype == b.dtype:
        return a, b
    if a.dtype == xp.float64 or b.dtype == xp.float64:
        target = xp.float64
    elif a.dtype == xp.float32 or b.dtype == xp.float32:
        target = xp.float32
    else:
        target = a.dtype
    return (
        a if a.dtype == target else xp.astype(a, target),
        b if b.dtype == target else xp.astype(b, target),
    )


def prepare_floating(
    func: str, name: str, x: Array, xp: Any, *, dtype: Any = None, where: Array | None = None
) -> Prepared:
    """Cast ``x`` to its compute dtype (half precision to float32) and apply ``where``.

    ``dtype`` (already validated) is the requested output dtype; a wider request
    computes in the wider dtype. Entries where ``where`` is False become ``-inf``.
    """
    out_dtype = x.dtype if dtype is None else dtype
    compute = wider(xp, compute_dtype(xp, x.dtype), compute_dtype(xp, out_dtype))
    xc = x if x.dtype == compute else xp.astype(x, compute)
    if where is not None:
        if not is_bool_dtype(xp, where.dtype):
            msg = f"{func}: `where` must be a boolean array, got dtype {where.dtype}"
            raise TypeError(msg)
        check_broadcastable(func, "where", where, tuple(x.shape))
        xc = xp.where(where, xc, xp.full_like(xc, -xp.inf))
    return Prepared(
        x=xc,
        out_dtype=out_dtype,
        compute=compute,
        acc=accumulation_dtype(xp, compute, device(x)),
    )


def broadcast_shape(
    func: str, name: str, shape: tuple[int, ...], x_shape: tuple[int, ...]
) -> tuple[int, ...]:
    """The shape that ``shape`` (argument ``name``) and ``x``'s shape broadcast to.

    Raises a ValueError naming ``name`` and both shapes where they do not.

    Examples
    --------
    >>> broadcast_shape("logsumexp", "b", (3, 1, 5), (4, 1, 2, 1))
    (4, 3, 2, 5)
    """
    n = max(len(shape), len(x_shape))
    a = (1,) * (n - len(shape)) + tuple(shape)
    c = (1,) * (n - len(x_shape)) + tuple(x_shape)
    out = []
    for p, q in zip(a, c, strict=True):
        if p == q or q == 1:
            out.append(p)
        elif p == 1:
            out.append(q)
        elif not (is_known(p) and is_known(q)):  # Dask's unknown lengths: checked at compute
            out.append(q if is_known(p) else p)
        else:
            msg = (
                f"{func}: `{name}` of shape {tuple(shape)} does not broadcast with `x` of "
                f"shape {tuple(x_shape)}"
            )
            raise ValueError(msg)
    return tuple(out)


def has_no_element(x: Array) -> bool:
    """Whether ``x`` has a zero-length axis: reductions over it need no kernel.

    Handled before any reduction, since ``max`` over no element raises (NumPy,
    and Dask at compute time).
    """
    return any(s == 0 for s in x.shape)  # an unknown length (Dask: NaN) is not 0


def cast_in_range(x: Array, dtype: Any, xp: Any) -> Array:
    """``x`` as the floating ``dtype``, without an overflowing cast.

    Where ``dtype`` is narrower than ``x``'s dtype, entries that round beyond
    its largest finite value become ``±inf`` first (exactly what the cast
    gives), so that lazy NumPy-backed arrays (Dask) do not warn ``overflow in
    cast`` at compute time, outside any ``errstate`` the library sets.
    """
    if x.dtype == dtype:
        return x
    limit = overflow_threshold(xp, dtype)
    if limit is not None and float_bits(xp, x.dtype) > float_bits(xp, dtype):
        inf = xp.full_like(x, xp.inf)
        x = xp.where(xp.abs(x) >= limit, xp.where(x > 0, inf, -inf), x)
    return xp.astype(x, dtype)


def overflow_threshold(xp: Any, dtype: Any) -> float | None:
    """The smallest magnitude that rounds to infinity in ``dtype`` (``max + ulp(max) / 2``).

    Examples
    --------
    >>> import numpy as np
    >>> overflow_threshold(np, np.float32) == 2.0**128 - 2.0**103
    True
    """
    try:
        info = xp.finfo(dtype)
        top, eps = float(info.max), float(info.eps)
    except (TypeError, ValueError, AttributeError):
        return None
    _, e = math.frexp(top)  # top = f * 2**e, f in [0.5, 1): ulp(top) = eps * 2**(e - 1)
    return top + eps * 2.0 ** (e - 2)


def cast(x: Array, dtype: Any, xp: Any) -> Array:
    """``x`` as ``dtype`` (no copy when it already is)."""
    return x if x.dtype == dtype else xp.astype(x, dtype)
