"""Silence NumPy's floating-point warnings inside the kernels.

The kernels evaluate both branches of ``where`` (e.g. ``log`` of an empty
row's zero sum) and handle inf/NaN deliberately; on NumPy-backed namespaces
those steps would otherwise emit ``RuntimeWarning`` or, under
``np.errstate(all='raise')``, ``FloatingPointError``. NumPy is never imported
here: if it is not loaded, no NumPy-backed array can exist.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

_NUMPY_BACKED = ("numpy", "array_api_strict", "array_api_compat.numpy", "dask")


def quiet(xp: Any) -> contextlib.AbstractContextManager[Any]:
    """``np.errstate(all='ignore')`` for NumPy-backed namespaces, a no-op otherwise."""
    np = sys.modules.get("numpy")
    name = getattr(xp, "__name__", "")
    if np is not None and any(name.startswith(prefix) for prefix in _NUMPY_BACKED):
        return np.errstate(all="ignore")
    return contextlib.nullcontext()
