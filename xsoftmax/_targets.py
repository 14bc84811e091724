"""Class-index targets: range checks, safe gathering, the per-sample weights."""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from ._validation import is_concrete

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


def classify_targets(
    func: str, target: Array, n_classes: int, ignore_index: int, xp: Any
) -> tuple[Array, Array, Array]:
    """``(safe, ignored, bad)``: indices safe to gather, the ignored mask, the out-of-range mask.

    On eager arrays an out-of-range index raises ``ValueError``; on lazy ones
    (Dask, JAX under ``jit``, torch ``meta``) ``bad`` marks the samples that the
    caller turns into NaN. ``safe`` is 0 wherever the index is ignored or bad.
    """
    idt = index_dtype(xp)
    t = xp.astype(target, idt)
    ignored = t == ignore_index
    bad = xp.logical_and(xp.logical_not(ignored), xp.logical_or(t < 0, t >= n_classes))
    if is_concrete(bad) and bool(xp.any(bad)):
        wrong = t[bad]  # eager: boolean indexing is fine here
        low, high, count = int(xp.min(wrong)), int(xp.max(wrong)), int(wrong.shape[0])
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
    keep = xp.logical_not(xp.logical_or(ignored, bad))
    safe = xp.where(keep, t, xp.zeros_like(t))
    return safe, ignored, bad


def take_class(x: Array, safe: Array, axis: int, xp: Any) -> Array:
    """``x[..., safe, ...]`` along ``axis``: one value per sample (shape without ``axis``)."""
    idx = xp.expand_dims(safe, axis=axis)
    if hasattr(xp, "take_along_axis") and not _is_dask(xp):
        return xp.squeeze(xp.take_along_axis(x, idx, axis=axis), axis=axis)
    classes = xp.reshape(
        xp.arange(x.shape[axis], dtype=safe.dtype, device=device(x)),
        tuple(-1 if i == axis else 1 for i in range(x.ndim)),
    )
    return xp.sum(xp.where(classes == idx, x, xp.zeros_like(x)), axis=axis)


def one_hot(safe: Array, like: Array, axis: int, xp: Any) -> Array:
    """A one-hot array of ``like``'s shape and dtype with ones at ``safe`` along ``axis``."""
    classes = xp.reshape(
        xp.arange(like.shape[axis], dtype=safe.dtype, device=device(like)),
        tuple(-1 if i == axis else 1 for i in range(like.ndim)),
    )
    return xp.astype(classes == xp.expand_dims(safe, axis=axis), like.dtype)


def _is_dask(xp: Any) -> bool:
    return "dask" in getattr(xp, "__name__", "")
