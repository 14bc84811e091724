"""``linear_cross_entropy`` under torch autograd: forward keeps no logits, backward recomputes.

The forward pass keeps ``input`` (flattened, in the compute dtype),
``linear_weight``, ``linear_bias`` and three numbers per row (the maximum, the
sum of exponentials, logsumexp); the backward pass sweeps the class chunks
again and returns the exact gradients of the reduced loss: those of ``input``,
``linear_weight`` and ``linear_bias``, and those of the class weights and of
probability targets in closed form (:func:`xsoftmax._definition.linear_loss.class_rows`).

The Function has a ``setup_context`` and ``generate_vmap_rule``, so
``torch.func.grad``, ``vjp`` and ``vmap`` work through it. Tensors that such a
transform wraps have no storage: they take the definition's sweeps with torch
operations (no numba, no writes into arrays). Autocast is turned off inside:
the loss and its gradients are computed in the inputs' own compute dtype
(float32 for float32 parameters under ``torch.autocast``), as autocast does for
``cross_entropy``, whose policy is float32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any

import torch

from xsoftmax._contract.linear_problem import Problem
from xsoftmax._definition import linear_loss as _linear_loss
from xsoftmax._definition.linear_sweep import Finished
from xsoftmax._kernels import linear_sweeps
from xsoftmax._kernels.numba import linear as _linear_fast

Array = Any

_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)
_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor

# the tensors of a Problem that enter the Function as inputs, in this order
_ARRAYS = ("x", "w", "b", "weight", "target", "ignored", "bad", "w_t", "a_class")
_N_ARRAYS = len(_ARRAYS)
_WEIGHT, _TARGET = _ARRAYS.index("weight"), _ARRAYS.index("target")


def _empty(p: Problem) -> bool:
    return p.n_rows == 0 or p.n_classes == 0


def _plain(a: Any) -> bool:
    """Whether ``a`` (a tensor or None) holds concrete values: not traced or transformed."""
    if a is None or not isinstance(a, torch.Tensor):
        return True
    return (
        not torch.compiler.is_compiling()
        and type(a) in _PLAIN_TYPES
        and not _is_wrapped(a)
        and a.device.type != "meta"
    )


def no_autocast(device_type: str) -> contextlib.AbstractContextManager[Any]:
    """Autocast turned off on ``device_type`` (a no-op where it is not on).

    Examples
    --------
    >>> import torch
    >>> from xsoftmax._kernels.torch.linear import no_autocast
    >>> with torch.autocast("cpu", dtype=torch.bfloat16), no_autocast("cpu"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.float32
    """
    try:
        on = torch.is_autocast_enabled(device_type)
    except (RuntimeError, TypeError, ValueError):  # a device type autocast does not know
        return contextlib.nullcontext()
    if not on:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


_NONE_SHAPE = (0, 0, 0)


def _none(like: torch.Tensor) -> torch.Tensor:
    """The placeholder output for a value the path did not compute (3-D: no real output is)."""
    return like.new_empty(_NONE_SHAPE)


def _is_none(t: torch.Tensor | None) -> bool:
    return t is None or t.ndim == len(_NONE_SHAPE)


@dataclass(frozen=True)
class _Static:
    """The Function's non-tensor argument: the problem without its arrays."""

    problem: Problem
    a_total_is_array: bool
    fused_allowed: bool


def _rebuild(static: _Static, arrays: tuple[Any, ...], a_total: Any) -> Problem:
    p = replace(static.problem, **dict(zip(_ARRAYS, arrays, strict=True)))
    if static.a_total_is_array:
        p = replace(p, a_total=a_total)
    return p


def _all_plain(p: Problem) -> bool:
    return all(_plain(getattr(p, name)) for name in _ARRAYS)


class _LinearCrossEntropy(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(*args: Any) -> Any:
        *arrays, a_total, static = args
        p = _rebuild(static, tuple(arrays), a_total)
        x = p.x
        nothing = (_none(x),) * 3
        plain = _all_plain(p)
        with no_autocast(x.device.type):
            if (
                plain
                and static.fused_allowed
                and p.reduction != "none"
                and _linear_fast.fused_usable(p)
            ):
                fused = _linear_fast.fused_rows(p, None)
                if fused is not None:
                    # one pass: the gradients of the loss are ready; backward only scales them
                    ce, zt, dx, dw, db = fused
                    loss = _linear_loss.reduce(p, ce, zt)
                    db = _none(x) if db is None else db
                    return (loss, dx, dw, db, *nothing, *nothing)
            if _empty(p):
                fin = None
            elif plain:
                fin = linear_sweeps.forward(p)
            else:
                fin = _linear_loss.forward(p)
            loss = _linear_loss.reduce(p, *_linear_loss.per_sample(p, fin))
        if fin is None:
            return (loss, *nothing, *nothing, *nothing)
        kept = tuple(
            _none(x) if v is None else v
            for v in (fin.m, fin.total, fin.lse, fin.nll, fin.soft, fin.empty)
        )
        return (loss, *nothing, *kept)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
        *arrays, a_total, static = inputs
        _, dx, dw, db, *kept = output
        ctx.mark_non_differentiable(dx, dw, db, *kept)
        ctx.static = static
        ctx.a_total = None if static.a_total_is_array else a_total
        fused = not _is_none(dx)
        ctx.grads = [dx, dw, None if _is_none(db) else db] if fused else None
        fin_kept = [] if _is_none(kept[0]) or fused else kept
        ctx.n_fin = len(fin_kept)
        extra = [a_total] if static.a_total_is_array else []
        ctx.save_for_backward(*arrays, *extra, *fin_kept)

    @staticmethod
    def backward(ctx: Any, grad: Any, *_: Any) -> Any:
        saved = ctx.saved_tensors
        arrays = saved[:_N_ARRAYS]
        static = ctx.static
        a_total = saved[_N_ARRAYS] if static.a_total_is_array else ctx.a_total
        fin_kept: tuple[Any, ...] = saved[len(saved) - ctx.n_fin :] if ctx.n_fin else ()
        p = _rebuild(static, arrays, a_total)
        x, w, b = p.x, p.w, p.b
        want = ctx.needs_input_grad
        rows_wanted = want[_WEIGHT] or want[_TARGET]
        plain = _all_plain(p) and _plain(grad)
        d_weight = d_target = None
        with no_autocast(x.device.type):
            if ctx.grads is not None and not rows_wanted and plain:
                dx, dw, db = ctx.grads
                ctx.grads = None  # scaled in place: a second backward (retain_graph) recomputes
                g = grad.to(dx.dtype)
                dx.mul_(g)
                dw.mul_(g)
                if db is not None:
                    db.mul_(g)
            elif _empty(p):
                dx, dw = torch.zeros_like(x), torch.zeros_like(w)
                db = None if b is None else torch.zeros_like(b)
                if want[_WEIGHT] and p.weight is not None:
                    d_weight = torch.zeros_like(p.weight)
                if want[_TARGET] and p.spec.kind == "prob":
                    d_target = torch.zeros_like(p.target)
            else:
                if ctx.n_fin:
                    m, total, lse, nll, soft, empty = fin_kept
                    fin = Finished(
                        m=m,
                        total=total,
                        lse=lse,
                        nll=None if _is_none(nll) else nll,
                        soft=None if _is_none(soft) else soft,
                        empty=empty,
                    )
                elif plain:  # after the fused forward
                    fin = linear_sweeps.forward(p)
                else:
                    fin = _linear_loss.forward(p)
                coefs = _linear_loss.grad_coefs(p, fin, grad)
                rows = None
                if rows_wanted:
                    rows = _linear_loss.class_rows(
                        p, fin, grad, weight=want[_WEIGHT], target=want[_TARGET]
                    )
                if rows is None and plain:
                    dx, dw, db = linear_sweeps.backward(p, fin, coefs)
                else:
                    dx, dw, db, d_weight, d_target = _linear_loss.backward_all(
                        p, fin, coefs, rows, functional=not plain
                    )
        dw = dw if dw.dtype == w.dtype else dw.to(w.dtype)
        if db is not None and b is not None and db.dtype != b.dtype:
            db = db.to(b.dtype)
        return (dx, dw, db, d_weight, d_target, *(None,) * (_N_ARRAYS - 5), None, None)


def _tracked(a: Any) -> bool:
    if a is None:
        return False
    if not _plain(a):
        return True
    return bool(getattr(a, "requires_grad", False))


def needs_autograd(p: Problem) -> bool:
    """Whether a torch problem must go through the autograd Function.

    True where grad mode is on and an input, a weight or a probability target
    requires grad, and where a ``torch.func`` transform (or ``torch.compile``)
    wraps one of the tensors.
    """
    arrays = [getattr(p, name) for name in _ARRAYS]
    if any(not _plain(a) for a in arrays):
        return True
    if not torch.is_grad_enabled():
        return False
    return any(_tracked(a) for a in (p.x, p.w, p.b, p.weight, p.target, p.a_total))


def loss(p: Problem) -> Any:
    """The reduced loss, differentiable through a :class:`torch.autograd.Function`."""
    a_total_is_array = isinstance(p.a_total, torch.Tensor)
    no_arrays: dict[str, Any] = dict.fromkeys(_ARRAYS)
    stripped = replace(p, **no_arrays, a_total=None if a_total_is_array else p.a_total)
    fused_allowed = not (
        torch.is_grad_enabled()
        and (_tracked(p.weight) or (p.spec.kind == "prob" and _tracked(p.target)))
    )
    static = _Static(stripped, a_total_is_array, fused_allowed)
    arrays = tuple(getattr(p, name) for name in _ARRAYS)
    with no_autocast(p.x.device.type):
        out = _LinearCrossEntropy.apply(*arrays, p.a_total, static)
    return out[0]
