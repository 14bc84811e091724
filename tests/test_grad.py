"""Gradients: ``cross_entropy_with_grad`` and autograd (torch, JAX) against torch autograd.

The reference gradient is torch autograd through the anchor (``F.cross_entropy``,
``torch.softmax``, ...) in float64 on the exact input values; for ``reduction='none'``
it is the gradient of the sum of the per-sample losses (docs/contract/semantics.md). Tolerance for a
gradient: ``rtol`` of the dtype plus ``atol = 4 eps max(C, 4) max|g|``, the policy of
``oracles.py``: an entry ``p - 1`` of a confident prediction is a cancellation that every
implementation computes to an absolute, not relative, accuracy of a few ulps of the row.

Where the normaliser of a ``'mean'`` is zero (every target ignored, or all their weights
zero) the loss is NaN and the contract's gradient is 0 (docs/contract/errors.md); torch gives 0 for
all-ignored but NaN for all-zero weights, so there the expected gradient is 0, not torch's.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, get_backend
from oracles import (
    EPS,
    assert_close,
    check_array,
    draw_logits,
    grid_params,
    ref_cross_entropy,
    row_mask,
    to_backend,
    tolerance,
    torch_ce_value_and_grad,
)
from test_losses_oracle import CASES as LOSS_CASES
from test_losses_oracle import SLOW, LossCase, loss_inputs

import xsoftmax

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Dask: see softmax tests

CE_CASES = [c for c in LOSS_CASES if c.func == "cross_entropy"]
GRID = grid_params(BACKENDS, CE_CASES, exhaustive=SLOW, sample={"jax": 4, "dask": 24})


def grad_atol(dtype: str, c: int, g: np.ndarray) -> float:
    """Absolute tolerance for a gradient array ``g`` (see module docstring)."""
    gmax = float(np.max(np.abs(g[np.isfinite(g)]))) if g.size and np.isfinite(g).any() else 0.0
    return 4.0 * EPS[dtype] * max(c, 4) * gmax


def _expected(case: LossCase, inp: dict[str, Any], x_np: np.ndarray, t_np: Any, w_np: Any):
    okw: dict[str, Any] = {
        "weight": w_np,
        "ignore_index": inp["ignore_index"],
        "reduction": case.reduction,
        "label_smoothing": case.smoothing,
    }
    _, g = torch_ce_value_and_grad(x_np, t_np, axis=case.axis, **okw)
    want, mag = ref_cross_entropy(x_np, t_np, axis=case.axis, **okw)
    if case.reduction == "mean" and np.isnan(want):
        g = np.zeros_like(g)  # zero normaliser: the contract's gradient is 0
    return want, mag, g


def run_grad_case(backend: Any, case: LossCase) -> None:
    """cross_entropy_with_grad on ``backend`` vs torch autograd."""
    inp = loss_inputs(case)
    dt = case.dtype
    x_np = inp["x"].astype(dt)
    t_np = inp["target"].astype(dt) if case.target == "prob" else inp["target"]
    w_np = inp["weight"].astype(dt) if "weight" in inp else None
    kw: dict[str, Any] = {
        "axis": case.axis,
        "reduction": case.reduction,
        "label_smoothing": case.smoothing,
    }
    if case.ignore != "default":
        kw["ignore_index"] = inp["ignore_index"]
    if w_np is not None:
        kw["weight"] = to_backend(backend, w_np)
    out_dtype = case.out_dtype or dt
    if case.out_dtype:
        kw["dtype"] = backend.dtype(case.out_dtype)
    res = xsoftmax.cross_entropy_with_grad(
        to_backend(backend, x_np), to_backend(backend, t_np), **kw
    )
    assert isinstance(res, tuple), "cross_entropy_with_grad returns (loss, grad)"
    assert len(res) == 2, "cross_entropy_with_grad returns (loss, grad)"
    loss, grad = res
    want, mag, g_want = _expected(case, inp, x_np, t_np, w_np)
    c = case.shape[case.axis]
    check_array(backend, loss, out_dtype, np.shape(want))
    check_array(backend, grad, dt, case.shape)  # autograd's gradient has the logits' dtype
    _, atol = tolerance(out_dtype, c, mag)
    assert_close(backend.to_numpy(loss), want, dtype=out_dtype, atol=atol, what=f"{case.id} loss")
    g_got = backend.to_numpy(grad)
    assert_close(g_got, g_want, dtype=dt, atol=grad_atol(dt, c, g_want), what=f"{case.id} grad")


@pytest.mark.parametrize(("backend", "case"), GRID)
def test_cross_entropy_with_grad_grid(backend: Any, case: LossCase) -> None:
    """(loss, gradient) equal F.cross_entropy and torch autograd over the loss grid."""
    run_grad_case(backend, case)


# --------------------------------------------------------------------------------------
# torch autograd through every xsoftmax function vs autograd through the torch anchor
# --------------------------------------------------------------------------------------
def _torch_backend() -> Any:
    b = get_backend("torch")
    if b is None:
        pytest.skip("torch backend not loaded")
    return b


def _t(a: np.ndarray, dtype: Any, grad: bool = True) -> Any:
    import torch

    return torch.tensor(np.asarray(a), dtype=dtype, requires_grad=grad)


AUTOGRAD_FUNCS = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "logsumexp_b",
    "softmax_where",
    "log_softmax_where",
    "logsumexp_where",
    "ce_index",
    "ce_index_w_ls_ii",
    "ce_prob",
    "ce_prob_w_ls",
    "ce_spatial_axis",
    "nll",
    "nll_w_ii",
    "bce",
    "bce_w_pw",
]


def _autograd_pair(name: str, xs: list[Any], torch: Any, aux: dict[str, Any]) -> tuple[Any, Any]:
    """(xsoftmax value, torch anchor value) for inputs ``xs`` = [ours, anchor]."""
    F = torch.nn.functional
    x, xa = xs
    v = aux.get("v")
    if name == "softmax":
        return (xsoftmax.softmax(x, axis=1) * v).sum(), (torch.softmax(xa, 1) * v).sum()
    if name == "log_softmax":
        return (xsoftmax.log_softmax(x, axis=1) * v).sum(), (torch.log_softmax(xa, 1) * v).sum()
    if name == "logsumexp":
        return (xsoftmax.logsumexp(x, axis=1) * v[:, 0]).sum(), (
            torch.logsumexp(xa, 1) * v[:, 0]
        ).sum()
    if name == "logsumexp_b":
        b = aux["b"]
        ours = xsoftmax.logsumexp(x, axis=1, b=b.to(x.dtype))
        return (ours * v[:, 0]).sum(), (torch.logsumexp(xa + torch.log(b), 1) * v[:, 0]).sum()
    if name.endswith("_where"):
        w = aux["where"]
        xm = xa.masked_fill(~w, -math.inf)
        if name == "softmax_where":
            return (xsoftmax.softmax(x, axis=1, where=w) * v).sum(), (
                torch.softmax(xm, 1) * v
            ).sum()
        if name == "log_softmax_where":
            ours = xsoftmax.log_softmax(x, axis=1, where=w)
            theirs = torch.log_softmax(xm, 1)
            return (torch.where(w, ours, 0.0) * v).sum(), (torch.where(w, theirs, 0.0) * v).sum()
        ours = xsoftmax.logsumexp(x, axis=1, where=w)
        return (ours * v[:, 0]).sum(), (torch.logsumexp(xm, 1) * v[:, 0]).sum()
    t = aux["t"]
    tp = aux["tp"]
    wt = aux["w"]
    if name == "ce_index":
        return xsoftmax.cross_entropy(x, t, axis=1), F.cross_entropy(xa, t)
    if name == "ce_index_w_ls_ii":
        kw = {"ignore_index": 1, "label_smoothing": 0.2}
        return (
            xsoftmax.cross_entropy(x, t, axis=1, weight=wt.to(x.dtype), **kw),
            F.cross_entropy(xa, t, weight=wt, **kw),
        )
    if name == "ce_prob":
        return xsoftmax.cross_entropy(x, tp.to(x.dtype), axis=1), F.cross_entropy(xa, tp)
    if name == "ce_prob_w_ls":
        return (
            xsoftmax.cross_entropy(
                x, tp.to(x.dtype), axis=1, weight=wt.to(x.dtype), label_smoothing=0.3
            ),
            F.cross_entropy(xa, tp, weight=wt, label_smoothing=0.3),
        )
    if name == "ce_spatial_axis":
        # class axis last for xsoftmax, moved to 1 for torch; reduction 'none' summed
        xs3 = x.reshape(2, 2, 5)
        xa3 = xa.reshape(2, 2, 5)
        t3 = t.reshape(2, 2)
        ours = xsoftmax.cross_entropy(xs3, t3, axis=-1, reduction="none")
        return (ours * v[:2, :2]).sum(), (
            F.cross_entropy(xa3.movedim(-1, 1), t3, reduction="none") * v[:2, :2]
        ).sum()
    if name == "nll":
        return xsoftmax.nll_loss(x, t, axis=1), F.nll_loss(xa, t)
    if name == "nll_w_ii":
        return (
            xsoftmax.nll_loss(
                x, t, axis=1, weight=wt.to(x.dtype), ignore_index=2, reduction="sum"
            ),
            F.nll_loss(xa, t, weight=wt, ignore_index=2, reduction="sum"),
        )
    bt = aux["bt"]
    if name == "bce":
        return (
            xsoftmax.binary_cross_entropy_with_logits(x, bt.to(x.dtype)),
            F.binary_cross_entropy_with_logits(xa, bt),
        )
    pw = aux["pw"]
    return (
        xsoftmax.binary_cross_entropy_with_logits(
            x, bt.to(x.dtype), weight=wt.to(x.dtype), pos_weight=pw.to(x.dtype), reduction="sum"
        ),
        F.binary_cross_entropy_with_logits(xa, bt, weight=wt, pos_weight=pw, reduction="sum"),
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", AUTOGRAD_FUNCS)
def test_torch_autograd_matches_anchor(name: str, dtype: str) -> None:
    """torch autograd through xsoftmax equals autograd through the torch anchor (float64
    on the same values), for every public function."""
    _torch_backend()
    import torch

    rng = np.random.default_rng(zlib.crc32(name.encode()))
    n, c = 4, 5
    x_np = rng.normal(size=(n, c)).astype(dtype) * 3
    if name.startswith("nll"):
        x_np = (x_np - np.log(np.exp(x_np.astype(np.float64)).sum(1, keepdims=True))).astype(dtype)
    tdt = getattr(torch, dtype)
    f64 = torch.float64
    aux = {
        "v": torch.tensor(rng.normal(size=(n, c))),
        "b": torch.tensor(rng.uniform(0.5, 2.0, size=(n, c))),
        "where": torch.tensor(row_mask(rng, (n, c), (1,))),
        "t": torch.tensor(rng.integers(0, c, size=n)),
        "tp": torch.tensor(rng.dirichlet(np.ones(c), size=n)),
        "w": torch.tensor(rng.uniform(0.2, 2.0, size=c)),
        "bt": torch.tensor(rng.random((n, c))),
        "pw": torch.tensor(rng.uniform(0.5, 3.0, size=c)),
    }
    x = _t(x_np, tdt)
    xa = _t(x_np, f64)
    ours, theirs = _autograd_pair(name, [x, xa], torch, aux)
    ours.backward()
    theirs.backward()
    assert x.grad is not None, f"{name}: no gradient reached the logits"
    g_want = xa.grad.numpy()
    assert_close(
        float(ours.detach()),
        float(theirs.detach()),
        dtype=dtype,
        atol=tolerance(dtype, c, 1.0)[1] * max(1.0, abs(float(theirs.detach()))),
        what=f"{name} value",
    )
    assert_close(x.grad.numpy(), g_want, dtype=dtype, atol=grad_atol(dtype, c, g_want), what=name)


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_torch_fully_masked_row_zero_gradient(func: str) -> None:
    """A row that ``where`` masks entirely is safe: 0 / -inf and a zero (not NaN) gradient."""
    _torch_backend()
    import torch

    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[False, False, False], [True, False, True]])
    out = getattr(xsoftmax, func)(x, axis=1, where=w)
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)
    if func == "logsumexp":
        assert out[0].item() == -math.inf
        out.masked_fill(torch.isinf(out), 0.0).sum().backward()
    else:
        safe = 0.0 if func == "softmax" else -math.inf
        assert (out[0] == safe).all()
        (torch.where(torch.isfinite(out), out, 0.0) * v).sum().backward()
    g = x.grad.numpy()
    assert np.array_equal(g[0], np.zeros(3)), g[0]
    assert np.isfinite(g).all()
    assert g[1, 1] == 0.0


# --------------------------------------------------------------------------------------
# finite gradients at extreme logits
# --------------------------------------------------------------------------------------
def _extreme(dtype: str) -> np.ndarray:
    fmax = {"float16": 65504.0, "bfloat16": float.fromhex("0x1.fep127")}.get(dtype)
    fmax = fmax if fmax is not None else float(np.finfo(dtype).max)
    big = min(1e30, fmax)
    return np.array(
        [
            [fmax, -fmax, 0.0, 1.0],
            [fmax, fmax, 0.0, -1.0],
            [-fmax, -fmax, -fmax, -fmax],
            [big, -big, 0.0, 2.0],
            [1.0, -np.inf, 0.0, -np.inf],
        ]
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize(
    "func", ["softmax", "log_softmax", "logsumexp", "cross_entropy", "nll_loss", "bce"]
)
def test_torch_autograd_finite_at_extremes(func: str, dtype: str) -> None:
    """Finite logits up to +-finfo.max (and -inf entries) give finite gradients; exactly 0
    at -inf entries; cross-entropy gradient rows sum to 0."""
    b = _torch_backend()
    import torch

    x_np = _extreme(dtype)
    x = b.asarray(x_np, dtype=dtype).requires_grad_(True)
    t = torch.tensor([0, 1, 2, 3, 0])
    if func in ("softmax", "log_softmax"):
        out = getattr(xsoftmax, func)(x, axis=1)
        v = torch.linspace(-1, 1, 4, dtype=x.dtype)
        loss = torch.where(torch.isfinite(out), out, 0.0) * v
    elif func == "logsumexp":
        loss = xsoftmax.logsumexp(x, axis=1)
    elif func == "cross_entropy":
        loss = xsoftmax.cross_entropy(x, t, axis=1, reduction="none")
        loss = torch.where(torch.isfinite(loss), loss, 0.0)
    elif func == "nll_loss":
        loss = xsoftmax.nll_loss(x, t, axis=1, reduction="sum")
    else:
        bt = torch.tensor(np.tile([1.0, 0.0, 1.0, 0.0], (5, 1)), dtype=x.dtype)
        loss = xsoftmax.binary_cross_entropy_with_logits(x[:, :], bt, reduction="none")
        loss = torch.where(torch.isfinite(loss), loss, 0.0)
    loss.float().sum().backward()
    g = x.grad.float().numpy()
    neg_inf = np.isneginf(x_np)
    assert np.isfinite(g).all(), f"{func} {dtype}: non-finite gradient\n{g}"
    if func in ("softmax", "log_softmax", "logsumexp", "cross_entropy"):
        assert (g[neg_inf] == 0).all(), f"{func}: gradient at -inf entries {g[neg_inf]}"
    if func == "cross_entropy":
        c = x_np.shape[1]
        rows = np.abs(g.sum(axis=1))
        assert (rows <= 4 * EPS[dtype] * max(c, 4) * np.abs(g).max(axis=1) + 1e-30).all(), rows


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_with_grad_finite_at_extremes(backend: Any, dtype: str) -> None:
    """cross_entropy_with_grad on every backend: finite gradient, rows summing to 0."""
    x_np = _extreme(dtype)
    c = x_np.shape[1]
    t = np.array([0, 1, 2, 3, 0])
    _, g = xsoftmax.cross_entropy_with_grad(
        to_backend(backend, x_np, dtype=dtype), to_backend(backend, t), axis=1, reduction="sum"
    )
    g = backend.to_numpy(g).astype(np.float64)
    assert np.isfinite(g).all(), g
    assert (g[np.isneginf(x_np)] == 0).all()
    rows = np.abs(g.sum(axis=1))
    assert (rows <= 4 * EPS[dtype] * max(c, 4) * np.abs(g).max(axis=1)).all(), rows


@pytest.mark.parametrize(
    ("row", "want"),
    [
        # exact gradient of logsumexp = softmax: equal entries share 1 equally, and an entry
        # exp(-3.4e38) below the others contributes 0 (float32 values, exact)
        ([1e8, 1e8], [0.5, 0.5]),
        ([1e7, 1e7, 1e7, 1e7], [0.25, 0.25, 0.25, 0.25]),
        ([float(np.finfo(np.float32).max)] * 2 + [0.0], [0.5, 0.5, 0.0]),
    ],
)
def test_torch_logsumexp_gradient_is_softmax(row: list[float], want: list[float]) -> None:
    """docs/contract/errors.md: grad of logsumexp at float32 [1e8, 1e8] is [0.5, 0.5] (torch.logsumexp
    gives [1, 1])."""
    b = _torch_backend()
    x = b.asarray(np.array(row), dtype="float32").requires_grad_(True)
    xsoftmax.logsumexp(x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.array(want, dtype=np.float32))


# --------------------------------------------------------------------------------------
# jax.grad
# --------------------------------------------------------------------------------------
JAX_CASES = [
    ("ce", {"axis": 1, "label_smoothing": 0.2, "ignore_index": 1, "weight": True}),
    ("ce_prob", {"axis": 1, "label_smoothing": 0.1}),
    ("log_softmax", {"axis": 1}),
    ("bce", {}),
]


@pytest.mark.parametrize(
    ("name", "opts"), JAX_CASES, ids=lambda p: p if isinstance(p, str) else ""
)
def test_jax_grad_matches_torch(name: str, opts: dict[str, Any]) -> None:
    """jax.grad through xsoftmax (float64) equals torch autograd through the anchor."""
    b = get_backend("jax")
    if b is None:
        pytest.skip("jax backend not loaded")
    _torch_backend()
    import torch

    jax = b.extra["jax"]
    jnp = b.xp
    rng = np.random.default_rng(9)
    n, c = 4, 5
    x_np = rng.normal(size=(n, c)) * 3
    v = rng.normal(size=(n, c))
    t_np = rng.integers(0, c, size=n)
    tp_np = rng.dirichlet(np.ones(c), size=n)
    w_np = rng.uniform(0.2, 2.0, size=c)
    kw = dict(opts)
    tkw = {k: val for k, val in kw.items() if k != "axis"}
    if kw.pop("weight", None):
        kw["weight"] = jnp.asarray(w_np)
        tkw["weight"] = torch.tensor(w_np)
    F = torch.nn.functional
    xa = torch.tensor(x_np, requires_grad=True)
    vt = torch.tensor(v)
    if name == "ce":

        def f(x):
            return xsoftmax.cross_entropy(x, jnp.asarray(t_np), **kw)

        ref = F.cross_entropy(xa, torch.tensor(t_np), **tkw)
    elif name == "ce_prob":

        def f(x):
            return xsoftmax.cross_entropy(x, jnp.asarray(tp_np), **kw)

        ref = F.cross_entropy(xa, torch.tensor(tp_np), **tkw)
    elif name == "bce":

        def f(x):
            return xsoftmax.binary_cross_entropy_with_logits(x, jnp.asarray(tp_np))

        ref = F.binary_cross_entropy_with_logits(xa, torch.tensor(tp_np))
    elif name == "logsumexp":

        def f(x):
            return jnp.sum(xsoftmax.logsumexp(x, axis=1) * jnp.asarray(v[:, 0]))

        ref = (torch.logsumexp(xa, 1) * vt[:, 0]).sum()
    else:

        def f(x):
            return jnp.sum(getattr(xsoftmax, name)(x, axis=1) * jnp.asarray(v))

        ref = (getattr(torch, name)(xa, 1) * vt).sum()
    g = np.asarray(jax.grad(f)(jnp.asarray(x_np)))
    ref.backward()
    g_want = xa.grad.numpy()
    assert_close(g, g_want, dtype="float64", atol=grad_atol("float64", c, g_want), what=name)


def test_grad_oracle_sanity() -> None:
    """The torch reference gradient equals the closed form (softmax - onehot) / N."""
    rng = np.random.default_rng(2)
    x = draw_logits(rng, (6, 4))
    t = rng.integers(0, 4, size=6)
    _, g = torch_ce_value_and_grad(x, t, axis=1)
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    closed = (p - np.eye(4)[t]) / 6
    assert_close(g, closed, dtype="float64", atol=grad_atol("float64", 4, closed))
    assert math.isclose(float(np.abs(g.sum(1)).max()), 0.0, abs_tol=1e-15)
