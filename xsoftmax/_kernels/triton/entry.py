"""What the dispatch calls for GPU memory: torch tensors (here) and CuPy arrays.

Each function returns ``None`` where its kernels do not apply (another layout,
another dtype), and the caller then takes the generic path. Nothing here
synchronises with the host: the denominators of means stay on the device, and a
target out of ``[0, C)`` that is not ``ignore_index`` makes that sample's loss NaN
(BEHAVIOUR.md, E27). Triton is imported on the first call that can use it.

Under ``TRITON_INTERPRET=1`` CPU tensors are accepted too, so that the kernels can
be tested without a GPU (``tests/test_triton.py``).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from xsoftmax._kernels.triton.cupy import (
    cupy_available,
    cupy_cross_entropy,
    cupy_cross_entropy_with_grad,
    cupy_logsumexp,
    cupy_softmax_family,
)

__all__ = [
    "available",
    "cross_entropy",
    "cupy_available",
    "cupy_cross_entropy",
    "cupy_cross_entropy_with_grad",
    "cupy_logsumexp",
    "cupy_softmax_family",
    "logsumexp",
    "softmax_family",
]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
REDUCTIONS = ("mean", "sum", "none")


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available(x: Any) -> bool:
    """Whether the Triton kernels can take ``x``.

    True for a torch tensor on a CUDA device (or, under ``TRITON_INTERPRET=1``,
    on the CPU) when triton is installed. Imports neither torch nor triton.

    Examples
    --------
    >>> import numpy as np
    >>> available(np.zeros(3))
    False
    """
    if type(x).__module__.split(".")[0] != "torch" or not hasattr(x, "device"):
        return False
    kind = x.device.type
    if not (kind == "cuda" or (kind == "cpu" and _interpreting())):
        return False
    return importlib.util.find_spec("triton") is not None


def _float_name(x: Any) -> str | None:
    name = str(x.dtype).rsplit(".", 1)[-1]
    return name if name in FLOAT_DTYPES else None


def _rows_of(x: Any) -> int:
    n = 1
    for s in x.shape[:-1]:
        n *= int(s)
    return n


def _last_axis(x: Any, axes: tuple[int, ...]) -> bool:
    return x.ndim >= 1 and tuple(a % x.ndim for a in axes) == (x.ndim - 1,)


def softmax_family(
    op: str, x: Any, axes: tuple[int, ...], acc: Any = None, *, block: int | None = None
) -> Any:
    """``softmax`` or ``log_softmax`` of a torch tensor along its last axis, in ``x.dtype``.

    Parameters
    ----------
    op : {"softmax", "log_softmax"}
    x : torch.Tensor
        Floating (float16, bfloat16, float32, float64), any shape with ``ndim >= 1``.
    axes : tuple of int
        Must name the last axis alone; otherwise ``None`` is returned.
    acc : dtype, optional
        Ignored: the kernels accumulate in float64 for every input dtype.
    block : int, optional
        Entries a program handles per step (a power of two; default: the row up to 512).

    Returns
    -------
    torch.Tensor or None
        The result (shape and dtype of ``x``), differentiable through the registered
        autograd; ``None`` where the kernels do not apply.

    Examples
    --------
    >>> import torch  # doctest: +SKIP
    >>> softmax_family("softmax", torch.tensor([[1e8, 1e8]], device="cuda"), (1,))  # doctest: +SKIP
    tensor([[0.5000, 0.5000]], device='cuda:0')
    """
    if op not in ("softmax", "log_softmax"):
        msg = f"softmax_family: `op` must be 'softmax' or 'log_softmax', got {op!r}"
        raise ValueError(msg)
    if not _last_axis(x, axes) or _float_name(x) is None:
        return None
    from xsoftmax._kernels.triton import ops
    from xsoftmax._kernels.triton.launch import block_size

    c = x.shape[-1]
    if x.numel() == 0:
        return x.clone()
    out, _, _ = ops.rows(x.reshape(_rows_of(x), c), op, block_size(c, block))
    return out.reshape(x.shape)


def logsumexp(x: Any, axes: tuple[int, ...], acc: Any = None, *, block: int | None = None) -> Any:
    """``logsumexp`` of a torch tensor over its last axis, the axis kept (length 1).

    An empty axis gives ``-inf``; a row with no finite maximum ``-inf``, ``+inf`` or
    NaN as SciPy. Returns ``None`` for other layouts (see :func:`softmax_family`).

    Examples
    --------
    >>> import torch  # doctest: +SKIP
    >>> logsumexp(torch.tensor([[1e8, 1e8]], device="cuda"), (1,))  # doctest: +SKIP
    tensor([[1.0000e+08]], device='cuda:0')
    """
    if not _last_axis(x, axes) or _float_name(x) is None:
        return None
    from xsoftmax._kernels.triton import ops
    from xsoftmax._kernels.triton.launch import block_size

    c = x.shape[-1]
    x2 = x.reshape(_rows_of(x), c)
    if x2.shape[0] == 0:
        return x.new_empty((*x.shape[:-1], 1))
    out, _, _ = ops.rows(x2, "logsumexp", block_size(c, block))
    return out.reshape((*x.shape[:-1], 1))


def _check_ce(logits: Any, target: Any, weight: Any, reduction: str) -> None:
    """Shape, dtype and option checks that need no values (no host synchronisation)."""
    if logits.ndim != 2:
        msg = f"cross_entropy: `logits` must be 2-D (N, C), got shape {tuple(logits.shape)}"
        raise ValueError(msg)
    if target.ndim != 1 or target.shape[0] != logits.shape[0]:
        msg = f"cross_entropy: `target` must have shape ({logits.shape[0]},), got {tuple(target.shape)}"
        raise ValueError(msg)
    if target.dtype.is_floating_point or str(target.dtype) == "torch.bool":
        msg = f"cross_entropy: `target` must hold integer class indices, got {target.dtype}"
        raise TypeError(msg)
    if weight is not None and tuple(weight.shape) != (logits.shape[1],):
        msg = f"cross_entropy: `weight` must have shape ({logits.shape[1]},), got {tuple(weight.shape)}"
        raise ValueError(msg)
    if reduction not in REDUCTIONS:
        msg = f"cross_entropy: `reduction` must be one of {REDUCTIONS}, got {reduction!r}"
        raise ValueError(msg)


def cross_entropy(
    logits2d: Any,
    target1d: Any,
    weight: Any = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    reduction: str = "mean",
    *,
    block: int | None = None,
) -> Any:
    """Cross entropy of torch logits ``(N, C)`` with class indices ``(N,)``, torch's semantics.

    ``softcap`` maps the logits to ``softcap * tanh(logits / softcap)`` first;
    ``z_loss`` adds ``z_loss * logsumexp**2`` per counted sample (averaged over the
    counted samples by ``"mean"``). Differentiable with respect to ``logits2d``.
    The mean's denominators stay on the device; a target out of range that is not
    ``ignore_index`` gives NaN for its sample (no check on the host).

    Returns
    -------
    torch.Tensor or None
        The loss in ``logits2d.dtype`` (0-d, or ``(N,)`` for ``"none"``); ``None``
        for a non-floating ``logits2d``.

    Examples
    --------
    >>> import torch  # doctest: +SKIP
    >>> x = torch.tensor([[1e8, 1e8]], device="cuda")  # doctest: +SKIP
    >>> cross_entropy(x, torch.tensor([0], device="cuda"))  # doctest: +SKIP
    tensor(0.6931, device='cuda:0')
    """
    if _float_name(logits2d) is None:
        return None
    _check_ce(logits2d, target1d, weight, reduction)
    import torch

    from xsoftmax._kernels.triton import ops
    from xsoftmax._kernels.triton.launch import block_size

    c = logits2d.shape[1]
    dev = logits2d.device
    target = target1d if target1d.dtype == torch.int64 else target1d.to(torch.int64)
    w = wsum = None
    if weight is not None:
        w = weight.to(device=dev, dtype=torch.float64).contiguous()
        wsum = w.sum().reshape(1)
    ce, zl, wt, _, _ = ops.cross_entropy(
        logits2d, target, w, wsum, int(ignore_index), float(label_smoothing),
        float(softcap or 0.0), float(z_loss), block_size(c, block),
    )  # fmt: skip
    with_z = float(z_loss) != 0.0
    if reduction == "none":
        loss = ce + zl if with_z else ce
    elif reduction == "sum":
        loss = ce.sum() + zl.sum() if with_z else ce.sum()
    else:
        loss = ce.sum() / wt.sum()
        if with_z:
            counted = (target != ignore_index).sum(dtype=torch.float64)
            loss = loss + zl.sum() / counted
    return loss.to(logits2d.dtype)
