"""The Triton kernels as torch operators: ``torch.library.triton_op`` + ``register_autograd``.

Autograd and ``torch.compile`` see one operator per call (``xsoftmax_triton::rows``,
``xsoftmax_triton::cross_entropy``) whose backward is another Triton operator. The
forward stores two float64 statistics per row, the maximum ``m`` and
``lg = log1p(rest)``; the backward recomputes the probabilities from ``x``, ``m``
and ``lg`` instead of keeping them. Outputs are new tensors: no input is written.

Only the first derivative is registered (a second backward raises torch's error).
"""

# no `from __future__ import annotations`: torch.library infers the schema from the hints

import torch
from torch import Tensor
from torch.library import register_autograd, triton_op, wrap_triton

from xsoftmax._kernels.triton.launch import (
    ce_constants,
    launch_ce_backward,
    launch_ce_forward,
    launch_rows_backward,
    launch_rows_forward,
)

F64 = torch.float64


def _shape2(t: Tensor) -> tuple[int, int]:
    return (t.shape[0], t.shape[1])


def _stride2(t: Tensor) -> tuple[int, int]:
    return (t.stride(0), t.stride(1))


@triton_op("xsoftmax_triton::rows", mutates_args=())
def rows(x: Tensor, op: str, block: int) -> tuple[Tensor, Tensor, Tensor]:
    """softmax / log_softmax of each row of the 2-D ``x`` (or its logsumexp), ``m`` and ``lg``."""
    n, c = x.shape
    lse = op == "logsumexp"
    out = torch.empty((n,) if lse else (n, c), dtype=x.dtype, device=x.device)
    m = torch.empty(n, dtype=F64, device=x.device)
    lg = torch.empty(n, dtype=F64, device=x.device)
    so = (out.stride(0), 0) if lse else _stride2(out)
    launch_rows_forward(op, x, out, m, lg, (n, c), _stride2(x), so, block=block, wrap=wrap_triton)
    return out, m, lg


@triton_op("xsoftmax_triton::rows_backward", mutates_args=())
def rows_backward(x: Tensor, g: Tensor, m: Tensor, lg: Tensor, op: str, block: int) -> Tensor:
    """The gradient of :func:`rows` for the output gradient ``g``."""
    dx = torch.empty_like(x, memory_format=torch.contiguous_format)
    sg = (g.stride(0), 0) if op == "logsumexp" else _stride2(g)
    strides = (_stride2(x), sg, _stride2(dx))
    launch_rows_backward(op, x, g, m, lg, dx, _shape2(x), strides, block=block, wrap=wrap_triton)
    return dx


def _rows_setup(ctx, inputs, output) -> None:
    x, op, block = inputs
    _, m, lg = output
    ctx.save_for_backward(x, m, lg)
    ctx.op, ctx.block = op, block
    ctx.mark_non_differentiable(m, lg)


def _rows_grad(ctx, g, _gm, _glg):
    x, m, lg = ctx.saved_tensors
    return rows_backward(x, g, m, lg, ctx.op, ctx.block), None, None


register_autograd("xsoftmax_triton::rows", _rows_grad, setup_context=_rows_setup)


@triton_op("xsoftmax_triton::cross_entropy", mutates_args=())
def cross_entropy(
    x: Tensor,
    target: Tensor,
    weight: Tensor | None,
    wsum: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    softcap: float,
    z_loss: float,
    block: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per row of ``x`` (N, C): ``(ce, zl, w_t, m, lg)`` in float64 (``softcap`` 0: none)."""
    n, c = x.shape
    ce, zl, wt, m, lg = (torch.zeros(n, dtype=F64, device=x.device) for _ in range(5))
    consts = ce_constants(weight, label_smoothing, softcap or None, z_loss, block)
    w = x if weight is None else weight
    ws = x if wsum is None else wsum
    launch_ce_forward(
        x, target, w, ws, (ce, zl, wt, m, lg), (n, c), _stride2(x), ignore_index, consts,
        wrap=wrap_triton,
    )  # fmt: skip
    return ce, zl, wt, m, lg


@triton_op("xsoftmax_triton::cross_entropy_backward", mutates_args=())
def cross_entropy_backward(
    x: Tensor,
    target: Tensor,
    weight: Tensor | None,
    wsum: Tensor | None,
    m: Tensor,
    lg: Tensor,
    gce: Tensor,
    gzl: Tensor,
    ignore_index: int,
    label_smoothing: float,
    softcap: float,
    z_loss: float,
    block: int,
) -> Tensor:
    """The gradient of ``Σ gce_i ce_i + gzl_i zl_i`` (:func:`cross_entropy`) for ``x``."""
    dx = torch.empty_like(x, memory_format=torch.contiguous_format)
    consts = ce_constants(weight, label_smoothing, softcap or None, z_loss, block)
    w = x if weight is None else weight
    ws = x if wsum is None else wsum
    launch_ce_backward(
        x, target, w, ws, (m, lg), (gce, gzl), dx, _shape2(x), (_stride2(x), _stride2(dx)),
        ignore_index, consts, wrap=wrap_triton,
    )  # fmt: skip
    return dx


def _ce_setup(ctx, inputs, output) -> None:
    x, target, weight, wsum, ignore_index, label_smoothing, softcap, z_loss, block = inputs
    _, _, wt, m, lg = output
    ctx.save_for_backward(x, target, weight, wsum, m, lg)
    ctx.options = (ignore_index, label_smoothing, softcap, z_loss, block)
    ctx.mark_non_differentiable(wt, m, lg)


def _ce_grad(ctx, gce, gzl, _gwt, _gm, _glg):
    x, target, weight, wsum, m, lg = ctx.saved_tensors
    n = x.shape[0]
    gce = torch.zeros(n, dtype=F64, device=x.device) if gce is None else gce.contiguous()
    gzl = torch.zeros(n, dtype=F64, device=x.device) if gzl is None else gzl.contiguous()
    dx = cross_entropy_backward(x, target, weight, wsum, m, lg, gce, gzl, *ctx.options)
    return dx, None, None, None, None, None, None, None, None


register_autograd("xsoftmax_triton::cross_entropy", _ce_grad, setup_context=_ce_setup)
