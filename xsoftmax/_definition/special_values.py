"""NaN written only where it is due: no NaN is formed on inputs that call for none.

The contract gives NaN for some samples (an out-of-range target on a lazy array, a
mean over no counted sample, a logsumexp of a negative weighted sum without
``return_sign``). ``where(cond, nan, x)`` forms a NaN array even where ``cond`` is
False everywhere, and JAX's ``debug_nans`` mode (which checks every operation's
output when run eagerly) then stops a call on finite input. :func:`nan_where`
skips the NaN array where it can see, on an eager JAX array, that no entry needs it;
traced and lazy arrays keep the ``where`` (their NaN checks see only outputs).
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from xsoftmax._contract.namespaces import is_concrete

Array = Any


def _surely_none(cond: Array, xp: Any) -> bool:
    """Whether ``cond`` is an eager JAX array that is False everywhere."""
    return array_api_compat.is_jax_array(cond) and is_concrete(cond) and not bool(xp.any(cond))


def nan_where(cond: Array, x: Array, xp: Any) -> Array:
    """``x`` with NaN where ``cond`` is True.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._definition.special_values import nan_where
    >>> nan_where(np.asarray([False, True]), np.asarray([1.0, 2.0]), np).tolist()
    [1.0, nan]
    """
    if _surely_none(cond, xp):
        return x
    return xp.where(cond, xp.full_like(x, xp.nan), x)
