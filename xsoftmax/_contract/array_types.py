"""Static types of the public API: what an array is, as far as xsoftmax needs to know.

xsoftmax accepts the arrays of any array API library (NumPy, PyTorch, JAX, CuPy,
Dask, array-api-strict), none of which share a base class. :class:`Array` is the
structural type they all satisfy: a ``shape``, a ``dtype`` and an ``ndim``.
:data:`ArrayT` is bound to it, so that a type checker sees the caller's own
array type come back (``np.ndarray`` in, ``np.ndarray`` out; ``torch.Tensor``
in, ``torch.Tensor`` out).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["Array", "ArrayT", "DType"]


@runtime_checkable
class Array(Protocol):
    """Anything with the array attributes xsoftmax reads before it dispatches.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._contract.array_types import Array
    >>> isinstance(np.zeros(3), Array), isinstance([0.0, 1.0], Array)
    (True, False)
    """

    @property
    def shape(self) -> Any:
        """The array's shape (a tuple of ints; Dask may hold NaN for unknown sizes)."""
        ...

    @property
    def dtype(self) -> Any:
        """The array's dtype, an object of its own library."""
        ...

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        ...


ArrayT = TypeVar("ArrayT", bound=Array)
"""An array type that a function returns as it was given (same library out as in)."""

DType = Any
"""A dtype object of the input's own library (``np.float32``, ``torch.float64``, ...)."""
