"""The Triton kernels as a row of the dispatch table: torch tensors in GPU memory.

The dispatch (:mod:`xsoftmax._kernels.dispatch`) calls ``softmax_family``,
``logsumexp`` and ``target_nll`` here for a torch tensor on a CUDA device. Layouts the
kernels do not take (a reduction over other axes than the last) go to the torch
autograd kernels, which run the definition's composition on the device.

Under ``TRITON_INTERPRET=1`` *and* ``XSOFTMAX_TRITON_CPU=1`` the dispatch also sends
CPU tensors here, so that the whole public path is tested on the CPU through
Triton's interpreter (``tests/test_triton.py``); neither variable is meant for use.
"""

from __future__ import annotations

from typing import Any

from xsoftmax._kernels.torch import autograd as torch_kernels
from xsoftmax._kernels.triton import entry

Array = Any


def softmax_family(op: str, x: Array, axes: tuple[int, ...], acc: Any) -> Array:
    """``op`` over the last axis on the Triton row kernel, else the torch kernels."""
    out = entry.softmax_family(op, x, axes, acc)
    return torch_kernels.softmax_family(op, x, axes, acc) if out is None else out


def logsumexp(x: Array, axes: tuple[int, ...], acc: Any) -> Array:
    """``log Σ exp(x)`` over the last axis, kept, in ``acc`` (Triton), else the torch kernels."""
    out = entry.logsumexp(x, axes, acc)
    if out is None:
        return torch_kernels.logsumexp(x, axes, acc)
    return out if out.dtype == acc else out.to(acc)


def target_nll(x: Array, target: Array, axis: int, acc: Any) -> tuple[Array, Array]:
    """``(logsumexp(x) - x[target], rows with no finite logit)`` per sample.

    On the fused cross-entropy kernel (``reduction="none"``, no option: the caller
    applies weights, smoothing and the reduction) where the classes are the last axis;
    elsewhere on the torch kernels.
    """
    if x.ndim < 1 or axis % x.ndim != x.ndim - 1 or x.shape[-1] == 0:
        return torch_kernels.target_nll(x, target, axis, acc)
    c = x.shape[-1]
    rows = x.reshape(-1, c)
    nll = entry.cross_entropy(rows, target.reshape(-1), reduction="none", ignore_index=-(2**62))
    if nll is None:
        return torch_kernels.target_nll(x, target, axis, acc)
    empty = rows.amax(dim=1) == -float("inf")
    nll = nll if nll.dtype == acc else nll.to(acc)
    lead = x.shape[:-1]
    return nll.reshape(lead), empty.reshape(lead)


class CupyLane:
    """The Triton kernels as the dispatch row of CuPy arrays (no torch involved).

    CuPy has no autograd: the forward kernels serve ``softmax``, ``log_softmax``,
    ``logsumexp`` and the per-sample NLL of ``cross_entropy``. Where a kernel does not
    apply (another layout, another stream), ``None`` hands the call to the definition.
    """

    @staticmethod
    def softmax_family(op: str, x: Array, axes: tuple[int, ...], acc: Any) -> Array | None:
        """``op`` over the last axis, in ``x.dtype`` (None: not here)."""
        return entry.cupy_softmax_family(op, x, axes, acc, xp=_cupy_xp())

    @staticmethod
    def logsumexp(x: Array, axes: tuple[int, ...], acc: Any) -> Array | None:
        """``log Σ exp(x)`` over the last axis, kept, in ``acc`` (None: not here)."""
        xp = _cupy_xp()
        out = entry.cupy_logsumexp(x, axes, acc, xp=xp)
        if out is None or out.dtype == acc:
            return out
        return xp.astype(out, acc)

    @staticmethod
    def target_nll(x: Array, target: Array, axis: int, acc: Any) -> tuple[Array, Array] | None:
        """Per-sample ``(nll, rows with no finite logit)``, classes on the last axis (None: not here)."""
        if x.ndim < 1 or axis % x.ndim != x.ndim - 1 or x.shape[-1] == 0:
            return None
        xp = _cupy_xp()
        c = x.shape[-1]
        rows = xp.reshape(x, (-1, c))
        nll = entry.cupy_cross_entropy(
            rows, xp.reshape(target, (-1,)), reduction="none", ignore_index=-(2**62), xp=xp
        )
        if nll is None:
            return None
        empty = xp.max(rows, axis=1) == -xp.inf
        nll = nll if nll.dtype == acc else xp.astype(nll, acc)
        lead = tuple(x.shape[:-1])
        return xp.reshape(nll, lead), xp.reshape(empty, lead)


def _cupy_xp() -> Any:
    import array_api_compat.cupy as cupy_namespace

    return cupy_namespace
