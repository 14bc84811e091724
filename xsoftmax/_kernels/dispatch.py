"""Which path runs: the fused kernel of the array's memory, or one pure path.

The public functions validate and prepare their input, then call one function
here. For any one call there are at most two candidates:

* NumPy arrays reduced over their last axis: the numba CPU kernel
  (:mod:`xsoftmax._kernels.numba.rows`, when the ``fast`` extra is installed), else
  the NumPy fast path (:mod:`xsoftmax._kernels.numpy_ufuncs`);
* torch tensors: :mod:`xsoftmax._kernels.torch.autograd` (autograd Functions
  with analytic derivatives; the CPU kernel on a plain CPU tensor's memory);
* JAX arrays: :mod:`xsoftmax._kernels.jax.rules` (custom JVP rules);
* anything else: the generic kernel (:mod:`xsoftmax._definition.rows`), on cache-sized
  blocks of rows where that pays (:mod:`xsoftmax._definition.blocked`).

:func:`xsoftmax._contract.config.fast_paths_disabled` forces the generic kernel
everywhere (the oracle of the property tests). Nothing here imports torch,
JAX or numba.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

import array_api_compat

from xsoftmax._contract.config import fast_paths_enabled
from xsoftmax._definition import rows as _generic
from xsoftmax._definition.blocked import can_block, map_row_blocks
from xsoftmax._kernels import linear_sweeps
from xsoftmax._kernels import numpy_ufuncs as _numpy_fast
from xsoftmax._kernels.numba import rows as cpu

Array = Any

_GENERIC = {"softmax": _generic.softmax, "log_softmax": _generic.log_softmax}


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


def _gpu_tensor(x: Array) -> bool:
    """A torch tensor in GPU memory, with triton installed (the ``gpu`` extra).

    Also a CPU tensor where ``TRITON_INTERPRET=1`` and ``XSOFTMAX_TRITON_CPU=1`` are both
    set: the tests run the Triton kernels through the interpreter that way.
    """
    if not _torch_tensor(x):
        return False
    kind = x.device.type
    if kind != "cuda":
        env = os.environ
        if not (
            kind == "cpu" and env.get("TRITON_INTERPRET") == env.get("XSOFTMAX_TRITON_CPU") == "1"
        ):
            return False
    return _has_triton()


def _has_triton() -> bool:
    found = _TRITON.get("found")
    if found is None:
        found = _TRITON["found"] = importlib.util.find_spec("triton") is not None
    return found


_TRITON: dict[str, bool] = {}


def _cupy_array(x: Array) -> bool:
    """A CuPy array, with triton installed (the ``gpu`` extra)."""
    return "cupy" in sys.modules and array_api_compat.is_cupy_array(x) and _has_triton()


def _triton_cupy_kernels() -> Any:
    from xsoftmax._kernels.triton.lane import CupyLane

    return CupyLane


def _triton_kernels() -> Any:
    from xsoftmax._kernels.triton import lane

    return lane


def _torch_kernels() -> Any:
    from xsoftmax._kernels.torch import autograd

    return autograd


def _jax_kernels() -> Any:
    from xsoftmax._kernels.jax import rules

    return rules


LANES: tuple[tuple[Callable[[Array], bool], Callable[[], Any]], ...] = (
    # (which arrays, the loader of the kernel module that serves them): the first row that
    # matches runs. A kernel module has softmax_family, logsumexp and target_nll with the
    # signatures of this module's functions (less xp); returning None hands the call to the
    # definition. Adding a technology is one folder and one row here (a more specific row
    # goes first). The loaders are plain import statements, which torch.compile traces.
    (_gpu_tensor, _triton_kernels),
    (_cupy_array, _triton_cupy_kernels),
    (_torch_tensor, _torch_kernels),
    (_jax_array, _jax_kernels),
)
"""The dispatch table of the array libraries with kernels of their own (NumPy's lane is above)."""


def _lane(x: Array) -> Any:
    """The kernel module of the first row of :data:`LANES` that serves ``x``, or None."""
    for serves, load in LANES:
        if serves(x):
            return load()
    return None


def _cpu() -> Any:
    """:mod:`xsoftmax._kernels.numba.rows` if its kernels may run, else None."""
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
    >>> from xsoftmax._kernels.dispatch import numpy_lane
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
    >>> from xsoftmax._contract.namespaces import numpy_namespace
    >>> from xsoftmax._kernels.dispatch import softmax_family
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
    lane = _lane(x)
    if lane is not None:
        out = lane.softmax_family(op, x, axes, acc)
        if out is not None:
            return out
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
    >>> from xsoftmax._contract.namespaces import numpy_namespace
    >>> from xsoftmax._kernels.dispatch import logsumexp
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
    lane = _lane(x)
    if lane is not None:
        out = lane.logsumexp(x, axes, acc)
        if out is not None:
            return out
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
    >>> from xsoftmax._contract.namespaces import numpy_namespace
    >>> from xsoftmax._kernels.dispatch import target_nll
    >>> nll, empty = target_nll(np.zeros((1, 2)), np.array([0]), 1, np.float64,
    ...                         numpy_namespace())
    >>> round(float(nll[0]), 4), empty.tolist()
    (0.6931, [False])
    """
    if not fast_paths_enabled():
        return None
    lane = _lane(x)
    if lane is not None:
        return lane.target_nll(x, target, axis, acc)
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
    >>> from xsoftmax._kernels.dispatch import fused_grad_applies
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
    >>> from xsoftmax._kernels.dispatch import fused_grad_applies, nll_and_grad
    >>> x = np.zeros((1, 2))
    >>> g = nll_and_grad(x, np.array([1]), 1, np.ones(1))[1] if fused_grad_applies(x, 1) else None
    >>> g is None or g.tolist() == [[0.5, -0.5]]
    True
    """
    lead = x.shape[:-1]
    nll, grad, empty = cpu.nll_grad_empty(_as_rows(x), target.reshape(-1), scale.reshape(-1))
    return nll.reshape(lead), grad.reshape(x.shape), empty.reshape(lead)


def linear_loss(p: Any) -> Array:
    """The reduced ``linear_cross_entropy`` of the validated problem ``p``.

    Dask arrays run row blocks on the workers, JAX arrays a ``lax.scan`` with a
    custom VJP, torch tensors that need gradients an ``autograd.Function``, and
    everything else the eager sweeps (numba's chunk kernel where it applies).

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._contract.linear_problem import setup
    >>> from xsoftmax._kernels.dispatch import linear_loss
    >>> p = setup("linear_cross_entropy", np.eye(2), np.eye(2), np.array([0, 1]))
    >>> round(float(linear_loss(p)), 4)
    0.3133
    """
    if array_api_compat.is_dask_namespace(p.xp):
        from xsoftmax._kernels.dask import linear as dask_linear

        return dask_linear.loss(p)
    if array_api_compat.is_jax_namespace(p.xp):
        from xsoftmax._kernels.jax import linear as jax_linear

        return jax_linear.loss(p)
    if array_api_compat.is_torch_namespace(p.xp):
        from xsoftmax._kernels.torch import linear as torch_linear

        if torch_linear.needs_autograd(p):
            return torch_linear.loss(p)
        with torch_linear.no_autocast(p.x.device.type):  # computed in the compute dtype
            return linear_sweeps.eager_loss(p)
    return linear_sweeps.eager_loss(p)


def linear_loss_and_grads(p: Any, input_shape: tuple[int, ...]) -> tuple[Array, ...]:
    """``(loss, d_input, d_linear_weight, d_linear_bias)`` of the validated problem ``p``.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._contract.linear_problem import setup
    >>> from xsoftmax._kernels.dispatch import linear_loss_and_grads
    >>> p = setup("linear_cross_entropy_with_grad", np.eye(2), np.eye(2), np.array([0, 1]))
    >>> loss, dx, dw, db = linear_loss_and_grads(p, (2, 2))
    >>> round(float(loss), 4), db is None
    (0.3133, True)
    """
    if array_api_compat.is_dask_namespace(p.xp):
        from xsoftmax._kernels.dask import linear as dask_linear

        return dask_linear.with_grad(p, input_shape)
    if array_api_compat.is_jax_namespace(p.xp):
        from xsoftmax._kernels.jax import linear as jax_linear

        return jax_linear.with_grad(p, input_shape)
    if array_api_compat.is_torch_namespace(p.xp):
        import torch

        from xsoftmax._kernels.torch import linear as torch_linear

        with torch.no_grad(), torch_linear.no_autocast(p.x.device.type):
            return linear_sweeps.eager_loss_and_grads(p, input_shape)
    return linear_sweeps.eager_loss_and_grads(p, input_shape)
