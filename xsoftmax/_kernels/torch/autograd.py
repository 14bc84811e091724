"""torch autograd Functions for the softmax family, logsumexp and the target NLL.

Each operation is one :class:`torch.autograd.Function`:

* forward: the fused CPU kernel of :mod:`xsoftmax._kernels.numba.rows` on the tensor's
  own memory (a zero-copy NumPy view) for a plain CPU float32/float64 tensor
  reduced over its last axis, otherwise the generic kernels of
  :mod:`xsoftmax._definition.rows` with torch operations;
* backward and jvp: analytic, from the saved outputs, written with
  differentiable torch operations, so that double backward, ``torch.func``
  Hessians and forward-mode derivatives are right, also where the row maximum
  is tied (the derivative never goes through ``max``);
* ``generate_vmap_rule``: under ``torch.func.vmap`` (and inside ``torch.compile``)
  the forward takes the generic torch path, which both can trace.

A row whose entries are all ``-inf`` gets a zero gradient, never NaN.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import array_api_compat.torch as xpt
import torch
import torch.autograd.forward_ad as _forward_ad

from xsoftmax._contract.config import fast_paths_enabled
from xsoftmax._definition import rows as _generic

Array = Any

_FLOATS = (torch.float32, torch.float64)
_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)
_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_cpu_module: list[Any] = []  # [] not looked up yet; [None] unavailable; [module]


def _cpu() -> Any:
    """The numba kernel module, or None where it cannot be imported."""
    if not _cpu_module:
        module: Any = None
        with contextlib.suppress(ImportError):  # the module is missing
            from xsoftmax._kernels.numba import rows as module
        _cpu_module.append(module)
    return _cpu_module[0]


def _plain(x: torch.Tensor) -> bool:
    """Whether ``x`` holds concrete values now: not traced, compiled or transformed."""
    return (
        not torch.compiler.is_compiling()
        and type(x) in _PLAIN_TYPES
        and not _is_wrapped(x)
        and x.device.type != "meta"
    )


def _rows(x: torch.Tensor, axes: tuple[int, ...]) -> Any:
    """``x`` as a 2-D C-contiguous NumPy array of rows for the fused kernel, or None."""
    if (
        not _plain(x)
        or axes != (x.ndim - 1,)
        or x.dtype not in _FLOATS
        or x.device.type != "cpu"
        or x.layout != torch.strided
        or x.numel() == 0
        or not fast_paths_enabled()
    ):
        return None
    cpu = _cpu()
    if cpu is None or not cpu.available():
        return None
    t = x.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    rows = t.view(-1, int(x.shape[-1])).numpy()
    return rows if cpu.eligible(rows) else None


def _quiet() -> Any:
    """NumPy's errstate silencing the floating-point warnings of the kernels' fallbacks."""
    import numpy as np

    return np.errstate(all="ignore")


def _keep(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else int(n) for i, n in enumerate(shape))


def _dims(axes: tuple[int, ...]) -> list[int]:
    return list(axes)


# --------------------------------------------------------------------------------------
# forwards (no autograd recording)
# --------------------------------------------------------------------------------------
def _family_forward(op: str, x: torch.Tensor, axes: tuple[int, ...], acc: Any) -> torch.Tensor:
    rows = _rows(x, axes)
    if rows is not None:
        with _quiet():
            out = getattr(_cpu(), op)(rows)
        return torch.from_numpy(out).view(x.shape)
    if x.numel() == 0:
        return torch.zeros_like(x) if op == "softmax" else x.clone()
    with torch.no_grad():
        y = getattr(_generic, op)(x, axes, acc, xp=xpt)
    return y.to(x.dtype)


def _lse_forward(x: torch.Tensor, axes: tuple[int, ...], acc: Any) -> torch.Tensor:
    rows = _rows(x, axes)
    if rows is not None:
        with _quiet():
            out = torch.from_numpy(_cpu().logsumexp(rows))
        return out.to(acc).view(_keep(tuple(x.shape), axes))
    if any(int(x.shape[a]) == 0 for a in axes):
        return torch.full(_keep(tuple(x.shape), axes), -torch.inf, dtype=acc, device=x.device)
    with torch.no_grad():
        out = _generic.logsumexp(x, axes, acc, xp=xpt)[0]
    return out.to(acc)


def _take(x: torch.Tensor, target: torch.Tensor, axis: int) -> torch.Tensor:
    return torch.gather(x, axis, target.unsqueeze(axis)).squeeze(axis)


def _one_hot(target: torch.Tensor, like: torch.Tensor, axis: int) -> torch.Tensor:
    n = int(like.shape[axis])
    classes = torch.arange(n, device=like.device).view(
        [-1 if i == axis else 1 for i in range(like.ndim)]
    )
    return (classes == target.unsqueeze(axis)).to(like.dtype)


def _no_grad() -> torch.Tensor:
    """The placeholder for the gradient rows that no fused kernel computed."""
    return torch.empty(0)


def _nll_kernel(
    rows: Any, x: torch.Tensor, target: torch.Tensor, acc: Any, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused kernel's ``(nll, empty, softmax - onehot or empty)``."""
    cpu = _cpu()
    t = target.reshape(-1).to(torch.int64).contiguous().numpy()
    with _quiet():
        if with_grad:
            scale = torch.ones(rows.shape[0], dtype=torch.float64).numpy()
            nll_np, grad_np = cpu.nll_and_grad(rows, t, scale)
            nll = torch.from_numpy(nll_np)
            grad = torch.from_numpy(grad_np).view(x.shape)
            if bool(torch.isfinite(nll).all()):
                empty = torch.zeros(nll.shape, dtype=torch.bool)
            else:
                empty = torch.from_numpy(cpu.target_nll(rows, t)[1])
        else:
            nll_np, empty_np = cpu.target_nll(rows, t)
            nll, empty, grad = torch.from_numpy(nll_np), torch.from_numpy(empty_np), _no_grad()
    shape = tuple(target.shape)
    return nll.to(acc).view(shape), empty.view(shape), grad


def _nll_forward(
    x: torch.Tensor, target: torch.Tensor, axis: int, acc: Any, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(nll, empty, grad rows)``: softmax - onehot from the fused kernel, else empty."""
    ax = axis % x.ndim
    rows = _rows(x, (ax,))
    if rows is not None:
        return _nll_kernel(rows, x, target, acc, with_grad)
    with torch.no_grad():
        nll, empty = _generic_nll(x, target, ax, acc)
    return nll, empty, _no_grad()


def _generic_nll(
    x: torch.Tensor, target: torch.Tensor, ax: int, acc: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(nll, empty)`` by the generic kernels, with plain torch operations."""
    s = _generic.shift_by_max(x, (ax,), acc, xp=xpt)
    log_sum = _generic.log_total(_generic.row_sums(s, (ax,), acc, xp=xpt), xp=xpt)
    safe = target.to(torch.int64)
    nll = log_sum.squeeze(ax) - _take(s.z, safe, ax).to(acc)
    if s.e is not None:
        nll = nll - _take(s.e, safe, ax).to(acc)
    return nll, (s.m == -torch.inf).squeeze(ax)


# --------------------------------------------------------------------------------------
# the Functions
# --------------------------------------------------------------------------------------
def _empty_rows(y: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor | None:
    """Mask of the rows of a log_softmax output that are all ``-inf`` (None: no such row)."""
    # a cheap necessary condition first: the row's first entry is -inf
    if _plain(y) and axes == (y.ndim - 1,) and not bool(torch.isneginf(y[..., :1]).any()):
        return None
    return torch.amax(y, dim=_dims(axes), keepdim=True) == -torch.inf


@dataclass(frozen=True)
class _Spec:
    """The non-tensor arguments of a Function."""

    op: str
    axes: tuple[int, ...]
    acc: Any


# A Function gets its spec as an int key: one pytree leaf (the vmap rule of a jvp needs
# that, a tuple of axes is not one), and a constant that torch.compile can trace.
_SPECS: list[_Spec] = []
_KEYS: dict[_Spec, int] = {}


def _key(op: str, axes: tuple[int, ...], acc: Any) -> int:
    spec = _Spec(op, axes, acc)
    key = _KEYS.get(spec)
    if key is None:
        key = _KEYS[spec] = len(_SPECS)
        _SPECS.append(spec)
    return key


class _SoftmaxFamilyVJP(torch.autograd.Function):
    """Without ``jvp``: the form ``torch.compile`` can trace."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, key: int) -> torch.Tensor:
        spec = _SPECS[key]
        return _family_forward(spec.op, x, spec.axes, spec.acc)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        spec = _SPECS[inputs[1]]
        ctx.op, ctx.axes = spec.op, spec.axes
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        (y,) = ctx.saved_tensors
        return _family_vjp(ctx.op, ctx.axes, y, g), None


class _SoftmaxFamily(_SoftmaxFamilyVJP):
    """With ``jvp``: forward-mode AD and ``torch.func.hessian`` / ``jacfwd``."""

    @staticmethod
    def jvp(ctx: Any, x_t: torch.Tensor, *_: Any) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        dims = _dims(ctx.axes)
        t = x_t.to(y.dtype)
        if ctx.op == "softmax":
            return y * (t - (y * t).sum(dim=dims, keepdim=True))
        out = t - (torch.exp(y) * t).sum(dim=dims, keepdim=True)
        empty = _empty_rows(y, ctx.axes)
        return out if empty is None else torch.where(empty, torch.zeros_like(out), out)


def _family_vjp(op: str, axes: tuple[int, ...], y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``J^T g`` of softmax / log_softmax from the output ``y``, differentiable."""
    g = g.to(y.dtype)
    dims = _dims(axes)
    if op == "softmax":
        if len(axes) == 1:
            return torch._softmax_backward_data(g, y, axes[0], y.dtype)
        return y * (g - (g * y).sum(dim=dims, keepdim=True))
    if len(axes) == 1:
        gx = torch._log_softmax_backward_data(g, y, axes[0], y.dtype)
    else:
        gx = g - torch.exp(y) * g.sum(dim=dims, keepdim=True)
    empty = _empty_rows(y, axes)
    return gx if empty is None else torch.where(empty, torch.zeros_like(gx), gx)


def _softmax_of(x: torch.Tensor, axes: tuple[int, ...], acc: Any) -> torch.Tensor:
    """softmax(x) along ``axes``, differentiable through :class:`_SoftmaxFamily`."""
    return _apply(_SoftmaxFamily, _SoftmaxFamilyVJP, x, _key("softmax", axes, acc))


class _LogSumExpVJP(torch.autograd.Function):
    """Without ``jvp``: the form ``torch.compile`` can trace."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, key: int) -> torch.Tensor:
        spec = _SPECS[key]
        return _lse_forward(x, spec.axes, spec.acc)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, key = inputs
        spec = _SPECS[key]
        ctx.axes, ctx.acc = spec.axes, spec.acc
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    # the weights are softmax(x), not exp(x - out): out = m + log Σ rounds away what
    # x - m keeps (float32 [3e38, 3e38] would give [1, 1] instead of [0.5, 0.5])
    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        p = _softmax_of(x, ctx.axes, ctx.acc)
        return g.to(p.dtype) * p, None


class _LogSumExp(_LogSumExpVJP):
    """With ``jvp``: forward-mode AD and ``torch.func.hessian`` / ``jacfwd``."""

    @staticmethod
    def jvp(ctx: Any, x_t: torch.Tensor, *_: Any) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        p = _softmax_of(x, ctx.axes, ctx.acc)
        return (p * x_t.to(p.dtype)).sum(dim=_dims(ctx.axes), keepdim=True).to(ctx.acc)


def _zero_empty_rows(gx: torch.Tensor, empty: torch.Tensor, ax: int) -> torch.Tensor:
    """``gx`` with 0 in the rows that have no finite logit (not -onehot)."""
    if _plain(empty) and not bool(empty.any()):
        return gx
    return torch.where(empty.unsqueeze(ax), torch.zeros_like(gx), gx)


class _TargetNLLVJP(torch.autograd.Function):
    """Without ``jvp``: the form ``torch.compile`` can trace."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: torch.Tensor, target: torch.Tensor, key: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        spec = _SPECS[key]
        return _nll_forward(x, target, spec.axes[0], spec.acc, with_grad=True)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
        x, target, key = inputs
        spec = _SPECS[key]
        ctx.acc = spec.acc
        ctx.axis = spec.axes[0] % x.ndim
        _, empty, grad = output
        ctx.mark_non_differentiable(empty, grad)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, target, grad, empty)
        ctx.save_for_forward(x, target, empty)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor | None, *_: Any) -> tuple[Any, ...]:
        if g is None:
            return None, None, None
        x, target, grad, empty = ctx.saved_tensors
        ax = ctx.axis
        gu = g.unsqueeze(ax)
        if grad.numel() and not torch.is_grad_enabled() and _plain(x):
            gx = gu.to(grad.dtype) * grad  # the fused kernel's softmax - onehot
        else:  # generic forward, double backward, transforms: differentiable
            p = _softmax_of(x, (ax,), ctx.acc)
            gx = gu.to(p.dtype) * (p - _one_hot(target, p, ax))
        return _zero_empty_rows(gx, empty, ax).to(x.dtype), None, None


class _TargetNLL(_TargetNLLVJP):
    """With ``jvp``: forward-mode AD and ``torch.func.hessian`` / ``jacfwd``."""

    @staticmethod
    def jvp(ctx: Any, x_t: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        x, target, empty = ctx.saved_tensors
        ax = ctx.axis
        p = _softmax_of(x, (ax,), ctx.acc)
        t = x_t.to(p.dtype)
        d = (p * t).sum(dim=ax) - _take(t, target, ax)
        return torch.where(empty, torch.zeros_like(d), d).to(ctx.acc), None, None


# --------------------------------------------------------------------------------------
# the interface of KERNELS.md
# --------------------------------------------------------------------------------------
def _apply(full: Any, vjp_only: Any, *args: Any) -> Any:
    """``full.apply(*args)``; under ``torch.compile`` the form without ``jvp`` (dynamo traces
    no custom ``jvp``)."""
    if torch.compiler.is_compiling():
        return vjp_only.apply(*args)
    return full.apply(*args)


def _tracked(x: torch.Tensor) -> bool:
    """Whether a derivative may be taken through ``x`` (autograd, forward AD or a transform)."""
    if not _plain(x):
        return True
    if x.requires_grad and torch.is_grad_enabled():
        return True
    return _forward_ad._current_level >= 0  # inside a dual_level(): forward-mode AD


def softmax_family(op: str, x: Array, axes: tuple[int, ...], acc: Any) -> Array:
    """``op`` ("softmax" or "log_softmax") of ``x`` over ``axes``, in ``x``'s dtype.

    Examples
    --------
    >>> import torch
    >>> from xsoftmax._kernels.torch import autograd as torch_autograd
    >>> x = torch.tensor([[0.0, 0.0]], requires_grad=True)
    >>> torch_autograd.softmax_family("log_softmax", x, (1,), torch.float64).exp()
    tensor([[0.5000, 0.5000]], grad_fn=<ExpBackward0>)
    """
    if not _tracked(x):
        return _family_forward(op, x, axes, acc)
    return _apply(_SoftmaxFamily, _SoftmaxFamilyVJP, x, _key(op, tuple(axes), acc))


def logsumexp(x: Array, axes: tuple[int, ...], acc: Any) -> Array:
    """``log Σ exp(x)`` over ``axes`` with kept dims, in ``acc``.

    Examples
    --------
    >>> import torch
    >>> from xsoftmax._kernels.torch import autograd as torch_autograd
    >>> torch_autograd.logsumexp(torch.zeros(1, 4), (1,), torch.float64)
    tensor([[1.3863]], dtype=torch.float64)
    """
    if not _tracked(x):
        return _lse_forward(x, axes, acc)
    _key("softmax", tuple(axes), acc)  # registered here, read in backward (no mutation there)
    return _apply(_LogSumExp, _LogSumExpVJP, x, _key("logsumexp", tuple(axes), acc))


def target_nll(x: Array, target: Array, axis: int, acc: Any) -> tuple[Array, Array]:
    """``(logsumexp(x) - x[target], empty)`` per sample along the class axis ``axis``.

    ``target`` holds valid class indices (ignored ones replaced by 0). The NLL is
    in ``acc`` and has gradient ``g * (softmax(x) - onehot(target))``; ``empty``
    marks the rows whose maximum is ``-inf``.

    Examples
    --------
    >>> import torch
    >>> from xsoftmax._kernels.torch import autograd as torch_autograd
    >>> x = torch.zeros(1, 2, requires_grad=True)
    >>> nll, empty = torch_autograd.target_nll(x, torch.tensor([1]), 1, torch.float64)
    >>> nll.sum().backward()
    >>> x.grad
    tensor([[ 0.5000, -0.5000]])
    """
    if not _tracked(x):
        nll, empty, _ = _nll_forward(x, target, axis, acc, with_grad=False)
        return nll, empty
    axis = axis % x.ndim
    _key("softmax", (axis,), acc)  # registered here, read in backward (no mutation there)
    nll, empty, _ = _apply(_TargetNLL, _TargetNLLVJP, x, target, _key("nll", (axis,), acc))
    return nll, empty
