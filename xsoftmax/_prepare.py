"""Shared preparation of a floating input: dtype policy, ``where`` mask, empty axes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from array_api_compat import device

from ._dtypes import accumulation_dtype, compute_dtype
from ._validation import check_broadcastable, is_bool_dtype

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


def has_no_element(x: Array) -> bool:
    """Whether ``x`` has a zero-length axis: reductions over it need no kernel.

    Handled before any reduction, since ``max`` over no element raises (NumPy,
    and Dask at compute time).
    """
    return any(s == 0 for s in x.shape)  # an unknown length (Dask: NaN) is not 0


def cast(x: Array, dtype: Any, xp: Any) -> Array:
    """``x`` as ``dtype`` (no copy when it already is)."""
    return x if x.dtype == dtype else xp.astype(x, dtype)
