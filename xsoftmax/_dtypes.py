"""The compute-dtype policy: half precision accumulates in float32.

float16 and bfloat16 inputs are computed in float32 and returned in the input
dtype (or the ``dtype=`` the caller asked for); float32 and float64 are
computed in their own dtype, with row reductions of float32 data accumulated in
float64 where the namespace has it.
"""

from __future__ import annotations

from typing import Any


def is_real_floating(xp: Any, dtype: Any) -> bool:
    """Whether ``dtype`` is a real floating dtype of namespace ``xp``."""
    try:
        return bool(xp.isdtype(dtype, "real floating"))
    except (TypeError, ValueError, AttributeError, KeyError):
        return False


def compute_dtype(xp: Any, dtype: Any) -> Any:
    """The dtype that arrays of ``dtype`` are computed in: float32 for half precision."""
    if dtype == xp.float32 or dtype == xp.float64:
        return dtype
    return xp.float32


def has_float64(xp: Any) -> bool:
    """Whether namespace ``xp`` can hold float64 arrays now (JAX without x64 cannot)."""
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:
        return True
    try:
        return "float64" in info().dtypes(kind="real floating")
    except Exception:  # a namespace whose info object is incomplete
        return True


def accumulation_dtype(xp: Any, dtype: Any) -> Any:
    """The dtype that row sums of ``dtype`` data accumulate in (float64 where available)."""
    if dtype == xp.float32 and has_float64(xp):
        return xp.float64
    return dtype
