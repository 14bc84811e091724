"""Class-index targets: range checks, safe gathering, the per-sample weights."""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import device

from xsoftmax._contract.namespaces import is_concrete

Array = Any


def index_dtype(xp: Any) -> Any:
    """The widest integer dtype the namespace holds now (int64; int32 for JAX without x64)."""
    info = getattr(xp, "__array_namespace_info__", None)
    if info is not None:
        try:
            if "int64" not in info().dtypes(kind="signed integer"):
                return xp.int32
        except Exception:  # an incomplete info object
            pass
    return xp.int64


def _bounds(xp: Any, dtype: Any) -> tuple[int, int]:
    """The smallest and largest value of the integer ``dtype``, as Python ints."""
    info = xp.iinfo(dtype)
    return int(info.min), int(info.max)


def classify_targets(
    func: str, target: Array, n_classes: int, ignore_index: int, xp: Any
) -> tuple[Array, Array, Array]:
    """``(safe, ignored, bad)``: indices safe to gather, the ignored mask, the out-of-range mask.

    On eager arrays an out-of-range index raises ``ValueError``; on lazy ones
    (Dask, JAX under ``jit``, torch ``meta``) ``bad`` marks the samples that the
    caller turns into NaN. ``safe`` is 0 wherever the index is ignored or bad.

    Every comparison is exact for any integer dtype and any Python int
    ``ignore_index``. The targets are compared in the index dtype (int64, or
    int32 for JAX without x64), where any other integer dtype converts exactly,
    except unsigned ones as wide as it (uint64; uint32 for int32): those wrap one
    to one, their values above the index dtype's maximum becoming negative, which
    is out of range and is matched against ``ignore_index`` wrapped the same way.
    An ``ignore_index`` that no value of the target's dtype can equal ignores
    nothing.
    """
    idt = index_dtype(xp)
    low, high = _bounds(xp, target.dtype)
    idt_high = _bounds(xp, idt)[1]
    wrap = 2 * (idt_high + 1) if high > idt_high else 0  # 2**64 (2**32), or no wrap
    t = xp.astype(target, idt)
    if low <= ignore_index <= high:
        key = ignore_index - wrap if ignore_index > idt_high else ignore_index
        ignored = t == key
    else:
        ignored = xp.zeros_like(t, dtype=xp.bool)
    out_of_range = t < 0
    if n_classes <= idt_high:
        out_of_range = xp.logical_or(out_of_range, t >= n_classes)
    bad = xp.logical_and(xp.logical_not(ignored), out_of_range)
    if is_concrete(bad) and bool(xp.any(bad)):
        _raise_out_of_range(func, t[bad], n_classes, ignore_index, wrap, xp)
    keep = xp.logical_not(xp.logical_or(ignored, bad))
    safe = xp.where(keep, t, xp.zeros_like(t))
    return safe, ignored, bad


def _raise_out_of_range(
    func: str, wrong: Array, n_classes: int, ignore_index: int, wrap: int, xp: Any
) -> None:
    """Raise the ``ValueError`` for the out-of-range indices ``wrong`` (eager, index dtype).

    Wrapped unsigned values (negative here) are shown as the caller's values.
    """
    count = int(wrong.shape[0])
    wrapped = wrong < 0 if wrap else None
    if wrapped is not None and bool(xp.any(wrapped)):
        high = int(xp.max(wrong[wrapped])) + wrap
        rest = wrong[xp.logical_not(wrapped)]
        low = int(xp.min(rest)) if int(rest.shape[0]) else int(xp.min(wrong[wrapped])) + wrap
    else:
        low, high = int(xp.min(wrong)), int(xp.max(wrong))
    if n_classes == 0:
        msg = (
            f"{func}: `target` has class indices but `logits` has 0 classes: every index "
            f"must equal ignore_index={ignore_index}; got {count} other value(s), e.g. {low}"
        )
    else:
        shown = f"{low}" if low == high else f"values from {low} to {high}"
        msg = (
            f"{func}: `target` class indices must lie in [0, {n_classes}) or equal "
            f"ignore_index={ignore_index}; got {count} out-of-range index(es): {shown}"
        )
    raise ValueError(msg)


def take_class(x: Array, safe: Array, axis: int, xp: Any) -> Array:
    """``x[..., safe, ...]`` along ``axis``: one value per sample (shape without ``axis``).

    Arrays of more than 3 dimensions are gathered as ``(before, C, after)``:
    NumPy's ``take_along_axis`` builds one index array per dimension and takes at
    most 63 of them, so 64-dimensional logits with the class axis not last fail.
    """
    if hasattr(xp, "take_along_axis") and not _is_dask(xp):
        if x.ndim > 3:
            shape = tuple(int(s) for s in x.shape)
            rows = (math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :]))
            idx = xp.reshape(safe, (rows[0], 1, rows[2]))
            out = xp.take_along_axis(xp.reshape(x, rows), idx, axis=1)
            return xp.reshape(out, tuple(safe.shape))
        idx = xp.expand_dims(safe, axis=axis)
        return xp.squeeze(xp.take_along_axis(x, idx, axis=axis), axis=axis)
    idx = xp.expand_dims(safe, axis=axis)
    classes = _class_positions(x, axis, safe.dtype, xp)
    return xp.sum(xp.where(classes == idx, x, xp.zeros_like(x)), axis=axis)


def one_hot(safe: Array, like: Array, axis: int, xp: Any) -> Array:
    """A one-hot array of ``like``'s shape and dtype with ones at ``safe`` along ``axis``."""
    classes = _class_positions(like, axis, safe.dtype, xp)
    return xp.astype(classes == xp.expand_dims(safe, axis=axis), like.dtype)


def _class_positions(like: Array, axis: int, dtype: Any, xp: Any) -> Array:
    """``0, 1, ..., C-1`` along ``axis`` of an array of ``like``'s rank (length 1 elsewhere).

    On Dask the positions are chunked as ``like`` is along ``axis``, so that the
    broadcast against it needs no rechunk (which Dask cannot do for arrays of
    more than 32 dimensions).
    """
    n = like.shape[axis]
    chunks = getattr(like, "chunks", None)
    if _is_dask(xp) and chunks is not None and all(isinstance(c, int) for c in chunks[axis]):
        positions = xp.arange(n, dtype=dtype, chunks=(chunks[axis],))
    else:
        positions = xp.arange(n, dtype=dtype, device=device(like))
    return xp.reshape(positions, tuple(-1 if i == axis else 1 for i in range(like.ndim)))


def _is_dask(xp: Any) -> bool:
    return "dask" in getattr(xp, "__name__", "")
