"""CuPy arrays on the Triton kernels, without torch.

Triton launches on any object with ``data_ptr()`` and a ``dtype``: a CuPy array is
passed as a :class:`DevicePointer`; outputs are allocated with the caller's
namespace ``xp`` (array-api-compat's CuPy), so results are CuPy arrays on the
input's device. Triton launches on *its* current stream (torch's current stream
when torch is imported, else the device's default stream); where CuPy's current
stream or device differs, these functions return ``None`` and the caller takes
the generic path, so that no work is reordered across streams.

No autograd here (CuPy has none): :func:`cupy_cross_entropy_with_grad` returns the
loss and the analytic gradient from the same kernels.

Under ``TRITON_INTERPRET=1`` (the tests) the interpreter reads torch storages
only, so the arrays are viewed as CPU torch tensors through DLPack instead of
being wrapped in :class:`DevicePointer`; everything else runs as on the GPU.
"""

from __future__ import annotations

import importlib.util
from typing import Any

FLOAT_DTYPES = ("float16", "float32", "float64")
REDUCTIONS = ("mean", "sum", "none")


class DevicePointer:
    """A device array as Triton reads a pointer argument: ``data_ptr()`` and ``dtype``.

    Parameters
    ----------
    array : cupy.ndarray
        Any array with ``array.data.ptr`` (its first element's address) and a NumPy
        ``dtype``.

    Examples
    --------
    >>> import numpy as np
    >>> class Memory:
    ...     ptr = 4096
    >>> class Array:
    ...     data = Memory()
    ...     dtype = np.dtype("float32")
    >>> p = DevicePointer(Array())
    >>> p.data_ptr(), p.dtype
    (4096, dtype('float32'))
    """

    def __init__(self, array: Any) -> None:
        self._ptr = int(array.data.ptr)
        self.dtype = array.dtype

    def data_ptr(self) -> int:
        """The address of the first element."""
        return self._ptr


def _interpreting() -> bool:
    from xsoftmax._kernels.triton.launch import interpreting

    return interpreting()


def _pointer(a: Any) -> Any:
    if _interpreting():
        import torch

        return torch.from_dlpack(a)
    return DevicePointer(a)


def _strides(a: Any) -> tuple[int, int]:
    """Element strides of a 2-D array (CuPy's ``strides`` are in bytes)."""
    s0, s1 = a.strides
    return (s0 // a.itemsize, s1 // a.itemsize)


def cupy_available(x: Any) -> bool:
    """Whether ``x`` is a CuPy array and triton is installed (imports neither).

    Examples
    --------
    >>> import numpy as np
    >>> cupy_available(np.zeros(3))
    False
    """
    if type(x).__module__.split(".")[0] != "cupy":
        return False
    return importlib.util.find_spec("triton") is not None


def _same_stream(x: Any) -> bool:
    """Whether Triton would launch on CuPy's current device and stream (always, interpreted)."""
    if _interpreting() or type(x).__module__.split(".")[0] != "cupy":
        return True
    import cupy
    from triton.runtime import driver

    dev = x.device.id
    active = driver.active
    if dev != active.get_current_device():
        return False
    return int(cupy.cuda.get_current_stream().ptr) == int(active.get_current_stream(dev))


def _rows(op: str, x: Any, axes: tuple[int, ...], xp: Any, block: int | None) -> Any:
    if x.ndim < 1 or tuple(a % x.ndim for a in axes) != (x.ndim - 1,):
        return None
    if str(x.dtype) not in FLOAT_DTYPES or not _same_stream(x):
        return None
    from xsoftmax._kernels.triton.launch import block_size, launch_rows_forward

    c = x.shape[-1]
    x2 = xp.reshape(x, (-1, c))
    n = x2.shape[0]
    lse = op == "logsumexp"
    out = xp.empty((n, 1) if lse else (n, c), dtype=x.dtype)
    m = xp.empty((n,), dtype=xp.float64)
    lg = xp.empty((n,), dtype=xp.float64)
    if n and (c or lse):
        launch_rows_forward(
            op, _pointer(x2), _pointer(out), _pointer(m), _pointer(lg), (n, c), _strides(x2),
            _strides(out), block=block_size(c, block),
        )  # fmt: skip
    return xp.reshape(out, (*x.shape[:-1], 1) if lse else x.shape)


def cupy_softmax_family(
    op: str, x: Any, axes: tuple[int, ...], acc: Any = None, *, xp: Any, block: int | None = None
) -> Any:
    """``softmax`` / ``log_softmax`` of a CuPy array along its last axis (``None``: not here).

    ``xp`` is the array's namespace (array-api-compat's CuPy); ``acc`` is ignored
    (float64 inside). float16, float32, float64.
    """
    if op not in ("softmax", "log_softmax"):
        msg = f"cupy_softmax_family: `op` must be 'softmax' or 'log_softmax', got {op!r}"
        raise ValueError(msg)
    return _rows(op, x, axes, xp, block)


def cupy_logsumexp(
    x: Any, axes: tuple[int, ...], acc: Any = None, *, xp: Any, block: int | None = None
) -> Any:
    """``logsumexp`` of a CuPy array over its last axis, kept (``None``: not here)."""
    return _rows("logsumexp", x, axes, xp, block)


def _ce_launch(
    logits: Any,
    target: Any,
    weight: Any,
    ignore_index: int,
    label_smoothing: float,
    softcap: float | None,
    z_loss: float,
    xp: Any,
    block: int | None,
) -> tuple[Any, ...] | None:
    if str(logits.dtype) not in FLOAT_DTYPES or logits.ndim != 2 or not _same_stream(logits):
        return None
    from xsoftmax._kernels.triton.launch import block_size, ce_constants, launch_ce_forward

    n, c = logits.shape
    if target.dtype != xp.int64:
        target = xp.astype(target, xp.int64)
    w = wsum = logits
    if weight is not None:
        w = xp.astype(weight, xp.float64)
        wsum = xp.reshape(xp.sum(w), (1,))
    outs = tuple(xp.zeros((n,), dtype=xp.float64) for _ in range(5))
    consts = ce_constants(weight, label_smoothing, softcap, z_loss, block_size(c, block))
    if n:
        launch_ce_forward(
            _pointer(logits), _pointer(target), _pointer(w), _pointer(wsum),
            tuple(_pointer(o) for o in outs), (n, c), _strides(logits), int(ignore_index), consts,
        )  # fmt: skip
    return (target, w, wsum, consts, *outs)


def cupy_cross_entropy(
    logits2d: Any,
    target1d: Any,
    weight: Any = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    reduction: str = "mean",
    *,
    xp: Any,
    block: int | None = None,
) -> Any:
    """Cross entropy of CuPy logits ``(N, C)`` and class indices ``(N,)`` (``None``: not here).

    Same options and semantics as :func:`xsoftmax._kernels.triton.entry.cross_entropy`;
    no host synchronisation.
    """
    res = cupy_cross_entropy_with_grad(
        logits2d, target1d, weight, ignore_index, label_smoothing, softcap, z_loss, reduction,
        xp=xp, block=block, grad=False,
    )  # fmt: skip
    return None if res is None else res[0]


def cupy_cross_entropy_with_grad(
    logits2d: Any,
    target1d: Any,
    weight: Any = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    reduction: str = "mean",
    *,
    xp: Any,
    block: int | None = None,
    grad: bool = True,
) -> tuple[Any, Any] | None:
    """``(loss, d loss / d logits)`` for CuPy arrays (``"none"``: the gradient of the sum).

    The gradient's scale per row is formed on the device (``1 / Σ w_t`` for
    ``"mean"``), then one backward kernel writes it. ``None``: not here.
    """
    if reduction not in REDUCTIONS:
        msg = f"cross_entropy: `reduction` must be one of {REDUCTIONS}, got {reduction!r}"
        raise ValueError(msg)
    got = _ce_launch(
        logits2d, target1d, weight, ignore_index, label_smoothing, softcap, z_loss, xp, block
    )
    if got is None:
        return None
    target, w, wsum, consts, ce, zl, wt, m, lg = got
    n = logits2d.shape[0]
    with_z = float(z_loss) != 0.0
    ones = xp.ones((n,), dtype=xp.float64)
    if reduction == "none":
        loss, gce, gzl = (ce + zl if with_z else ce), ones, ones
    elif reduction == "sum":
        loss, gce, gzl = (xp.sum(ce) + xp.sum(zl) if with_z else xp.sum(ce)), ones, ones
    else:
        denom = xp.sum(wt)
        loss, gce, gzl = xp.sum(ce) / denom, ones / denom, ones
        if with_z:
            count = xp.sum(xp.astype(target != ignore_index, xp.float64))
            loss, gzl = loss + xp.sum(zl) / count, ones / count
    loss = xp.astype(loss, logits2d.dtype)
    if not grad:
        return loss, None
    from xsoftmax._kernels.triton.launch import launch_ce_backward

    dx = xp.empty(logits2d.shape, dtype=logits2d.dtype)
    if n:
        launch_ce_backward(
            _pointer(logits2d), _pointer(target), _pointer(w), _pointer(wsum),
            (_pointer(m), _pointer(lg)), (_pointer(gce), _pointer(gzl)), _pointer(dx),
            tuple(logits2d.shape), (_strides(logits2d), _strides(dx)), int(ignore_index), consts,
        )  # fmt: skip
    return loss, dx
