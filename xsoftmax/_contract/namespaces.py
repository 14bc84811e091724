"""Which array namespace an array belongs to, and what can be read of it now.

The lowest helpers of the package, shared by the checks, the definition and the
kernels: the NumPy namespace without array-api-compat's wrapping, whether an
axis length is known (Dask after boolean indexing gives NaN), whether an
array's values can be read without computing (:func:`is_concrete`), and the
namespace adapter for arrays of unknown axis lengths. Nothing here raises for
the caller's input: the checks are in :mod:`xsoftmax._contract.checks`.
"""

from __future__ import annotations

import sys
from typing import Any

import array_api_compat


def numpy_namespace() -> Any:
    """The array API namespace of plain NumPy arrays.

    NumPy itself from 2.1 on (its main namespace follows the standard: nothing
    to wrap, and nothing more to import); ``array_api_compat.numpy`` before.
    ``array_api_compat.numpy`` runs ``from numpy import *``, which imports
    ``numpy.testing``, ``numpy.f2py``, ``numpy.random`` and ``numpy.ma``: 150-300
    ms on the first call of a process.

    Examples
    --------
    >>> from xsoftmax._contract.namespaces import numpy_namespace
    >>> float(numpy_namespace().sum(numpy_namespace().ones(3)))
    3.0
    """
    space = _NUMPY_NAMESPACE.get("xp")
    if space is None:
        import numpy as np

        version = tuple(int(v) for v in np.__version__.split(".")[:2] if v.isdigit())
        if version >= (2, 1) and hasattr(np, "isdtype") and hasattr(np, "astype"):
            space = np
        else:
            import array_api_compat.numpy as space
        _NUMPY_NAMESPACE["xp"] = space
    return space


_NUMPY_NAMESPACE: dict[str, Any] = {}


def is_known(n: Any) -> bool:
    """Whether an axis length is known: Dask gives NaN (unknown chunk sizes), the
    standard allows None."""
    return n is not None and n == n  # NaN != NaN


class _UnknownLengths:
    """A namespace whose arrays have unknown axis lengths (Dask after boolean indexing).

    Dask implements ``expand_dims``, and every ``reshape``, through a reshape that
    needs known chunk sizes; here a new axis is inserted by indexing, and the no-op
    reshapes and broadcasts (to the array's own shape) return the array. Everything
    else is the wrapped namespace.
    """

    def __init__(self, xp: Any) -> None:
        self._xp = xp
        self.__name__ = xp.__name__

    def __getattr__(self, name: str) -> Any:
        return getattr(self._xp, name)

    def expand_dims(self, x: Any, /, *, axis: int = 0) -> Any:
        ax = axis if axis >= 0 else axis + x.ndim + 1
        return x[(slice(None),) * ax + (None,)]

    def reshape(self, x: Any, /, shape: tuple[int, ...], **kwargs: Any) -> Any:
        if _same_shape(tuple(shape), tuple(x.shape)) or (tuple(shape) == (-1,) and x.ndim == 1):
            return x
        return self._xp.reshape(x, shape, **kwargs)

    def broadcast_to(self, x: Any, /, shape: tuple[int, ...]) -> Any:
        if _same_shape(tuple(shape), tuple(x.shape)):
            return x
        return self._xp.broadcast_to(x, shape)

    def max(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        """``max`` over known axes, block by block.

        Dask's own ``max`` fails at compute time on a chunk that is empty along
        another axis (as boolean indexing leaves them): its chunk step replaces an
        empty chunk by a placeholder that the aggregation step cannot reduce.
        """
        axes = tuple(range(x.ndim)) if axis is None else axis
        axes = tuple(a % x.ndim for a in (axes if isinstance(axes, tuple) else (axes,)))
        if not all(is_known(x.shape[a]) for a in axes):
            return self._xp.max(x, axis=axis, keepdims=keepdims)
        whole = x.rechunk(dict.fromkeys(axes, -1))
        chunks = tuple((1,) if i in axes else c for i, c in enumerate(whole.chunks))
        out = whole.map_blocks(
            lambda b: b.max(axis=axes, keepdims=True), chunks=chunks, dtype=x.dtype
        )
        if keepdims:
            return out
        return out[tuple(0 if i in axes else slice(None) for i in range(x.ndim))]


_ADAPTERS: dict[int, _UnknownLengths] = {}


def unknown_lengths_namespace(xp: Any) -> _UnknownLengths:
    if id(xp) not in _ADAPTERS:
        _ADAPTERS[id(xp)] = _UnknownLengths(xp)
    return _ADAPTERS[id(xp)]


def _same_shape(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal shapes, an unknown length standing only for an unknown length."""
    return len(a) == len(b) and all(
        m == n if is_known(m) and is_known(n) else not (is_known(m) or is_known(n))
        for m, n in zip(a, b, strict=True)
    )


def is_concrete(x: Any) -> bool:
    """Whether the values of ``x`` can be read now, cheaply (not lazy, traced or meta).

    JAX tracers, lazy arrays (Dask), torch ``meta`` tensors and tensors wrapped by
    ``torch.func`` transforms (``vmap``, ``grad``: reading their values is
    data-dependent control flow there) are not concrete.
    """
    if getattr(x, "is_meta", False):
        return False
    if array_api_compat.is_torch_array(x):
        if sys.modules["torch"].compiler.is_compiling():  # dynamo: no data-dependent branch
            return False
        functorch = getattr(sys.modules["torch"]._C, "_functorch", None)
        return functorch is None or not functorch.is_functorch_wrapped_tensor(x)
    if array_api_compat.is_jax_array(x):
        # eager JAX arrays can be read; tracers (under jit/grad/vmap) cannot
        try:
            import jax.core

            return not isinstance(x, jax.core.Tracer)
        except ImportError:  # pragma: no cover
            return False
    return not array_api_compat.is_lazy_array(x)
