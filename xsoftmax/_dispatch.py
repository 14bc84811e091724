"""Which path runs: the fused kernel of the array's memory, or one pure path.

The public functions validate and prepare their input, then call one function
here. For any one call there are at most two candidates:

* NumPy arrays reduced over their last axis: the numba CPU kernel
  (:mod:`xsoftmax._kernels.cpu`, when the ``fast`` extra is installed), else
  the NumPy fast path (:mod:`xsoftmax._numpy_fast`);
* torch tensors: :mod:`xsoftmax._kernels.torch_autograd` (autograd Functions
  with analytic derivatives; the CPU kernel on a plain CPU tensor's memory);
* JAX arrays: :mod:`xsoftmax._kernels.jax_rules` (custom JVP rules);
* anything else: the generic kernel (:mod:`xsoftmax._generic`), on cache-sized
  blocks of rows where that pays (:mod:`xsoftmax._blocked`).

:func:`xsoftmax._config.fast_paths_disabled` forces the generic kernel
everywhere (the oracle of the property tests). Nothing here imports torch,
JAX or numba.
"""

from __future__ import annotations

import sys
from typing import Any

import array_api_compat

from . import _generic, _numpy_fast
from ._blocked import can_block, map_row_blocks
from ._config import fast_paths_enabled
from ._kernels import cpu

Array = Any

_GENERIC = {"softmax": _generic.softmax, "log_softmax": _generic.log_softmax}


def numpy_namespace() -> Any:
    """The array API namespace of plain NumPy arrays.

    NumPy itself from 2.1 on (its main namespace follows the standard: nothing
    to wrap, and nothing more to import); ``array_api_compat.numpy`` before.
    ``array_api_compat.numpy`` runs ``from numpy import *``, which imports
    ``numpy.testing``, ``numpy.f2py``, ``numpy.random`` and ``numpy.ma``: 150-300
    ms on the first call of a process.

    Examples
    --------
    >>> from xsoftmax._dispatch import numpy_namespace
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


def _numpy_rows(x: Array, axes: tuple[int, ...]) -> bool:
    """A float32/float64 NumPy array reduced over its last axis only, with columns."""
    np = sys.modules.get("numpy")
    return (
        np is not None
        and type(x) is np.ndarray
        and x.dtype in (np.float32, np.float64)
        and axes == (x.ndim - 1,)
        and x.shape[-1] > 0
    )


def _torch_tensor(x: Array) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _jax_array(x: Array) -> bool:
    return "jax" in sys.modules and array_api_compat.is_jax_array(x)


def _cpu() -> Any:
    """:mod:`xsoftmax._kernels.cpu` if its kernels may run, else None."""
    return cpu if cpu.available() else None


def _as_rows(x: Array) -> Array:
    """``x`` as a C-contiguous ``(rows, C)`` array (a view where it already is)."""
    import numpy as np

    return np.ascontiguousarray(x.reshape(-1, x.shape[-1]))


def numpy_lane(op: str, x: Array, axis: Any) -> Array | None:
    """The whole call for the commonest case, before any validation, or None.

    A native-order float32/float64 ``np.ndarray`` (not a subclass) of at least
    one dimension with columns, reduced over its last axis given as an int (or
    None for the logsumexp of a vector), with
    no other option (the caller checks ``where``, ``dtype``, ``b``...): every
    check of the full path would pass, and the full path would run the same
    kernel. ``op`` is "softmax", "log_softmax" or "logsumexp" (result in ``x``'s
    dtype, the last axis dropped).

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._dispatch import numpy_lane
    >>> numpy_lane("softmax", np.zeros((1, 2)), -1).tolist()
    [[0.5, 0.5]]
    >>> numpy_lane("softmax", np.zeros((1, 2)), 0) is None
    True
    """
    np = sys.modules.get("numpy")
    if np is None or type(x) is not np.ndarray:
        return None
    if axis is None and op == "logsumexp" and x.ndim == 1:
        axis = 0  # every axis of a vector: its last
    if (
        type(axis) is not int
        or x.dtype not in _LANE_DTYPES
        or x.ndim == 0
        or axis not in (-1, x.ndim - 1)
        or x.shape[-1] == 0
        or not fast_paths_enabled()
    ):
        return None
    if cpu.available():
        rows = _as_rows(x)
        if op == "logsumexp":
            return cpu.logsumexp(rows).astype(x.dtype, copy=False).reshape(x.shape[:-1])
        return getattr(cpu, op)(rows).reshape(x.shape)
    with np.errstate(all="ignore"):
        if op == "logsumexp":
            return _numpy_fast.logsumexp(x).astype(x.dtype, copy=False)
        return getattr(_numpy_fast, op)(x)


_LANE_DTYPES = ("float32", "float64")


def softmax_family(
    op: str, x: Array, axes: tuple[int, ...], acc: Any, xp: Any, out_dtype: Any = None
) -> Array:
    """``op`` ("softmax" or "log_softmax") of the prepared ``x`` over ``axes``.

    The result may be in another dtype than ``out_dtype`` (default ``x.dtype``);
    the caller casts. Blocked results are written in ``out_dtype`` directly.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._dispatch import numpy_namespace, softmax_family
    >>> y = softmax_family("softmax", np.zeros((1, 2)), (1,), np.float64, numpy_namespace())
    >>> y.tolist()
    [[0.5, 0.5]]
    """
    generic = _GENERIC[op]
    if not fast_paths_enabled():
        return generic(x, axes, acc, xp=xp)
    if _numpy_rows(x, axes):
        cpu = _cpu()
        if cpu is not None:
            return getattr(cpu, op)(_as_rows(x)).reshape(x.shape)
        return getattr(_numpy_fast, op)(x)
    if _torch_tensor(x):
        from ._kernels import torch_autograd

        return torch_autograd.softmax_family(op, x, axes, acc)
    if _jax_array(x):
        from ._kernels import jax_rules

        return jax_rules.softmax_family(op, x, axes, acc)
    if can_block(x, axes):
        return map_row_blocks(
            lambda rows: generic(rows, (1,), acc, xp=xp),
            x,
            int(x.shape[-1]),
            x.dtype if out_dtype is None else out_dtype,
            xp=xp,
        )
    return generic(x, axes, acc, xp=xp)


def logsumexp(x: Array, axes: tuple[int, ...], acc: Any, xp: Any) -> Array:
    """``log Σ exp(x)`` over ``axes`` with kept dims, in ``acc`` (no ``b``, no sign).

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._dispatch import logsumexp, numpy_namespace
    >>> r = logsumexp(np.zeros((2, 2)), (1,), np.float64, numpy_namespace())
    >>> [round(float(v), 4) for v in r[:, 0]]
    [0.6931, 0.6931]
    """
    if not fast_paths_enabled():
        return _generic.logsumexp(x, axes, acc, xp=xp)[0]
    if _numpy_rows(x, axes):
        cpu = _cpu()
        if cpu is not None:
            out = cpu.logsumexp(_as_rows(x)).reshape(x.shape[:-1])
        else:
            out = _numpy_fast.logsumexp(x)
        return xp.expand_dims(out, axis=-1)
    if _torch_tensor(x):
        from ._kernels import torch_autograd

        return torch_autograd.logsumexp(x, axes, acc)
    if _jax_array(x):
        from ._kernels import jax_rules

        return jax_rules.logsumexp(x, axes, acc)
    if can_block(x, axes):
        out = map_row_blocks(
            lambda rows: xp.squeeze(_generic.logsumexp(rows, (1,), acc, xp=xp)[0], axis=1),
            x,
            None,
            acc,
            xp=xp,
        )
        return xp.expand_dims(out, axis=-1)
    return _generic.logsumexp(x, axes, acc, xp=xp)[0]


def target_nll(
    x: Array, target: Array, axis: int, acc: Any, xp: Any
) -> tuple[Array, Array] | None:
    """``(logsumexp(x) - x[target], no finite logit)`` per sample by a fast path, or None.

    ``target`` holds safe class indices (ignored and bad ones replaced by 0),
    the shape of ``x`` without ``axis``. The NLL is differentiable on torch and
    JAX. None: no fast path applies, the caller runs the generic forward (which
    also serves label smoothing and probabilities).

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._dispatch import numpy_namespace, target_nll
    >>> nll, empty = target_nll(np.zeros((1, 2)), np.array([0]), 1, np.float64,
    ...                         numpy_namespace())
    >>> round(float(nll[0]), 4), empty.tolist()
    (0.6931, [False])
    """
    if not fast_paths_enabled():
        return None
    if _torch_tensor(x):
        from ._kernels import torch_autograd

        return torch_autograd.target_nll(x, target, axis, acc)
    if _jax_array(x):
        from ._kernels import jax_rules

        return jax_rules.target_nll(x, target, axis, acc)
    if not _numpy_rows(x, (axis,)):
        return None
    lead = x.shape[:-1]
    cpu = _cpu()
    if cpu is not None:
        nll, empty = cpu.target_nll(_as_rows(x), target.reshape(-1))
        return nll.reshape(lead), empty.reshape(lead)
    log_sum, picked, empty = _numpy_fast.target_terms(x, target)
    return log_sum - picked, empty


def fused_grad_applies(x: Array, axis: int) -> bool:
    """Whether :func:`nll_and_grad` has a fused kernel for ``x`` with classes on ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._dispatch import fused_grad_applies
    >>> fused_grad_applies(np.zeros((2, 3)), 0)
    False
    """
    return fast_paths_enabled() and _numpy_rows(x, (axis,)) and _cpu() is not None


def nll_and_grad(x: Array, target: Array, axis: int, scale: Array) -> tuple[Array, Array, Array]:
    """The fused loss-and-gradient kernel for ``cross_entropy_with_grad``.

    Call only where :func:`fused_grad_applies`. ``scale`` is the per-sample factor
    of the gradient (float64, the shape of ``target``). Returns ``(nll, grad, empty)``:
    ``logsumexp - x_t`` (float64), ``scale * (softmax(x) - onehot(target))`` in
    ``x``'s dtype and the rows with no finite logit.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._dispatch import fused_grad_applies, nll_and_grad
    >>> x = np.zeros((1, 2))
    >>> g = nll_and_grad(x, np.array([1]), 1, np.ones(1))[1] if fused_grad_applies(x, 1) else None
    >>> g is None or g.tolist() == [[0.5, -0.5]]
    True
    """
    lead = x.shape[:-1]
    nll, grad, empty = cpu.nll_grad_empty(_as_rows(x), target.reshape(-1), scale.reshape(-1))
    return nll.reshape(lead), grad.reshape(x.shape), empty.reshape(lead)
