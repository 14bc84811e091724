"""The compute-dtype policy: half precision accumulates in float32.

float16 and bfloat16 inputs are computed in float32 and returned in the input
dtype (or the ``dtype=`` the caller asked for); float32 and float64 are
computed in their own dtype, with row reductions of float32 data accumulated in
float64 where the array's device has it.

Dtypes are classified by kind and width (``finfo(dtype).bits``), never by
``==``: a non-native byte order (NumPy ``'>f8'``) is still a 64-bit float and
is computed as float64, in native order.
"""

from __future__ import annotations

from typing import Any


def is_real_floating(xp: Any, dtype: Any) -> bool:
    """Whether ``dtype`` is a real floating dtype of namespace ``xp``."""
    try:
        return bool(xp.isdtype(dtype, "real floating"))
    except (TypeError, ValueError, AttributeError, KeyError):
        return False


def float_bits(xp: Any, dtype: Any) -> int:
    """The width in bits of the real floating ``dtype`` (0 for anything else).

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> float_bits(xp, np.dtype(">f8")), float_bits(xp, xp.float16)
    (64, 16)
    """
    if not is_real_floating(xp, dtype):
        return 0
    try:
        return int(xp.finfo(dtype).bits)
    except (TypeError, ValueError, AttributeError, KeyError):
        return 0


def compute_dtype(xp: Any, dtype: Any) -> Any:
    """The native dtype that arrays of ``dtype`` are computed in.

    64-bit floats (any byte order) in float64, everything narrower (float32,
    float16, bfloat16) in float32.
    """
    return xp.float64 if float_bits(xp, dtype) >= 64 else xp.float32


def has_float64(xp: Any, device: Any = None) -> bool:
    """Whether namespace ``xp`` can hold float64 arrays on ``device`` now.

    Asked of the inspection API (``__array_namespace_info__().dtypes``): JAX
    without x64, array-api-strict's ``'no_float64'`` device and torch's MPS
    device have no float64.
    """
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:
        return True
    try:
        found = info().dtypes(device=device, kind="real floating")
    except Exception:  # a namespace whose info object is incomplete or rejects the device
        try:
            found = info().dtypes(kind="real floating")
        except Exception:
            return True
    return "float64" in found


def accumulation_dtype(xp: Any, dtype: Any, device: Any = None) -> Any:
    """The dtype that row sums of ``dtype`` data accumulate in (float64 where available)."""
    if float_bits(xp, dtype) == 32 and has_float64(xp, device):
        return xp.float64
    return dtype
