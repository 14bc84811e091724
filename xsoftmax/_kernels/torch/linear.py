"""``linear_cross_entropy`` under torch autograd: forward keeps no logits, backward recomputes.

The forward pass keeps ``input`` (flattened, in the compute dtype),
``linear_weight``, ``linear_bias`` and three numbers per row (the maximum, the
sum of exponentials, logsumexp); the backward pass sweeps the class chunks
again and returns the exact gradients of the reduced loss.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from xsoftmax._contract.linear_problem import Problem
from xsoftmax._definition import linear_loss as _linear_loss
from xsoftmax._definition.linear_sweep import Finished
from xsoftmax._kernels import linear_sweeps
from xsoftmax._kernels.numba import linear as _linear_fast

Array = Any


def _empty(p: Problem) -> bool:
    return p.n_rows == 0 or p.n_classes == 0


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Any, w: Any, b: Any, p: Problem) -> Any:
        p = replace(p, x=x, w=w, b=b)
        ctx.problem = replace(p, x=None, w=None, b=None)
        ctx.grads = None
        if p.reduction != "none" and _linear_fast.fused_usable(p):
            fused = _linear_fast.fused_rows(p, None)
            if fused is not None:
                # one pass: the gradients of the loss are ready; backward only scales them
                ce, zt, dx, dw, db = fused
                ctx.grads = [dx, dw, db]
                ctx.save_for_backward(x, w, b)
                ctx.fin = None
                return _linear_loss.reduce(p, ce, zt)
        fin = None if _empty(p) else linear_sweeps.forward(p)
        loss = _linear_loss.reduce(p, *_linear_loss.per_sample(p, fin))
        if fin is None:
            ctx.save_for_backward(x, w, b)
            ctx.fin = None
        else:
            ctx.save_for_backward(x, w, b, fin.m, fin.total, fin.lse)
            ctx.fin = (fin.nll, fin.soft, fin.empty)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        saved = ctx.saved_tensors
        x, w, b = saved[:3]
        p = replace(ctx.problem, x=x, w=w, b=b)
        if ctx.grads is not None:
            dx, dw, db = ctx.grads
            ctx.grads = None  # scaled in place: a second backward (retain_graph) recomputes
            ctx.fin = "recompute"
            g = grad.to(dx.dtype)
            dx.mul_(g)
            dw.mul_(g)
            if db is not None:
                db.mul_(g)
        elif ctx.fin == "recompute":
            fin = linear_sweeps.forward(p)
            dx, dw, db = linear_sweeps.backward(p, fin, _linear_loss.grad_coefs(p, fin, grad))
        elif ctx.fin is None:
            dx, dw = torch.zeros_like(x), torch.zeros_like(w)
            db = None if b is None else torch.zeros_like(b)
        else:
            m, total, lse = saved[3:]
            nll, soft, empty = ctx.fin
            fin = Finished(m=m, total=total, lse=lse, nll=nll, soft=soft, empty=empty)
            coefs = _linear_loss.grad_coefs(p, fin, grad)
            dx, dw, db = linear_sweeps.backward(p, fin, coefs)
        dw = dw if dw.dtype == w.dtype else dw.to(w.dtype)
        if db is not None and b is not None and db.dtype != b.dtype:
            db = db.to(b.dtype)
        return dx, dw, db, None


def needs_autograd(p: Problem) -> bool:
    """Whether a torch problem must be differentiable (grad mode on, an input requiring grad)."""
    if not torch.is_grad_enabled():
        return False
    return any(getattr(a, "requires_grad", False) for a in (p.x, p.w, p.b))


def loss(p: Problem) -> Any:
    """The reduced loss, differentiable through a :class:`torch.autograd.Function`."""
    return _LinearCrossEntropy.apply(p.x, p.w, p.b, p)
