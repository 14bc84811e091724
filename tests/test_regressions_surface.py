"""Regressions on the newest surface: linear_cross_entropy, softcap, z_loss, the fused paths.

Each test reproduces a defect found by using the functions as a new user would, and
holds the fix to an independent oracle: the textbook formula in float64 NumPy, or
``cross_entropy`` of the full logits (itself held to torch by the grid tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import get_backend

import xsoftmax
from xsoftmax._contract.config import fast_paths_disabled

H = np.eye(2)
W = np.asarray([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
B = np.asarray([0.0, 0.0, -np.inf])


def _np_logsumexp(z: np.ndarray) -> np.ndarray:
    m = np.max(z, axis=-1, keepdims=True)
    return np.squeeze(m, -1) + np.log(np.sum(np.exp(z - m), axis=-1))


def _textbook_ce(z: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``logsumexp(z) - z[t]`` per row, in float64 (the definition, independently)."""
    return _np_logsumexp(z) - z[np.arange(len(t)), t]


def test_reduced_numpy_losses_are_0d_arrays() -> None:
    """Every reduced NumPy loss is a 0-d ``ndarray``, never a NumPy scalar."""
    t = np.asarray([0, 1])
    q = np.full((2, 3), 1 / 3)
    z = H @ W.T
    results = {
        "linear sum": xsoftmax.linear_cross_entropy(H, W, t, reduction="sum"),
        "linear mean": xsoftmax.linear_cross_entropy(H, W, t),
        "linear z_loss": xsoftmax.linear_cross_entropy(H, W, t, z_loss=0.01),
        "linear prob": xsoftmax.linear_cross_entropy(H, W, q),
        "linear with grad": xsoftmax.linear_cross_entropy_with_grad(H, W, t, reduction="sum")[0],
        "ce z_loss": xsoftmax.cross_entropy(z, t, z_loss=0.01),
        "ce softcap": xsoftmax.cross_entropy(z, t, softcap=2.0),
        "ce prob mean": xsoftmax.cross_entropy(z, q),
        "ce with grad": xsoftmax.cross_entropy_with_grad(z, t)[0],
        "ce with grad prob": xsoftmax.cross_entropy_with_grad(z, q, reduction="sum")[0],
        "nll": xsoftmax.nll_loss(z, t),
        "bce": xsoftmax.binary_cross_entropy_with_logits(z, np.ones_like(z)),
    }
    for name, value in results.items():
        assert type(value) is np.ndarray, f"{name}: {type(value).__name__}"
        assert value.shape == (), name


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "definition"])
def test_linear_minus_inf_logits(backend: Any, fast: bool) -> None:
    """A -inf bias gives probability 0 to its class (not NaN on the chunk kernels), and a
    target on that class costs +inf (not NaN), as cross_entropy of the full logits."""
    if backend.lazy and backend.name != "dask":
        pytest.skip("eager values compared")
    h, w, b = backend.asarray(H), backend.asarray(W), backend.asarray(B)
    z = H @ W.T + B
    for target in ([0, 1], [2, 0]):
        expected = _textbook_ce(np.where(np.isinf(z), -np.inf, z), np.asarray(target))
        t = backend.asarray(np.asarray(target))
        if fast:
            got = xsoftmax.linear_cross_entropy(h, w, t, linear_bias=b, reduction="none")
        else:
            with fast_paths_disabled():
                got = xsoftmax.linear_cross_entropy(h, w, t, linear_bias=b, reduction="none")
        np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-12)
        loss, *_ = xsoftmax.linear_cross_entropy_with_grad(
            h, w, t, linear_bias=b, reduction="none"
        )
        np.testing.assert_allclose(backend.to_numpy(loss), expected, rtol=1e-12)


def test_linear_inf_class_weight_entry_is_not_nan_in_finite_classes(backend: Any) -> None:
    """An infinite logit column from ``weight`` entries: the rows' finite classes keep
    finite losses where the definition gives them."""
    w = W.copy()
    w[2] = [-np.inf, -np.inf]
    h = np.asarray([[1.0, 0.5], [0.25, 2.0]])
    z = h @ w.T
    expected = _textbook_ce(z, np.asarray([0, 1]))
    got = xsoftmax.linear_cross_entropy(
        backend.asarray(h),
        backend.asarray(w),
        backend.asarray(np.asarray([0, 1])),
        reduction="none",
    )
    np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_z_loss_with_probability_targets(backend: Any, reduction: str) -> None:
    """z_loss with probability targets: the textbook sum, on every backend (no NaN from
    reading a torch tensor's ``size`` method as the count)."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 5))
    q = rng.dirichlet(np.ones(5), 4)
    lse = _np_logsumexp(z)
    per = -np.sum(q * (z - lse[:, None]), axis=1) + 0.1 * lse**2
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    got = xsoftmax.cross_entropy(
        backend.asarray(z), backend.asarray(q), z_loss=0.1, reduction=reduction
    )
    np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-12)


def test_z_loss_on_dask_with_unknown_row_count() -> None:
    dask_backend = get_backend("dask")
    if dask_backend is None:
        pytest.skip("dask backend not selected")
    import dask.array as da

    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 4))
    q = rng.dirichlet(np.ones(4), 6)
    keep = np.asarray([1, 0, 1, 1, 0, 1], dtype=bool)
    zd = da.from_array(z, chunks=3)[da.from_array(keep, chunks=3)]
    qd = da.from_array(q, chunks=3)[da.from_array(keep, chunks=3)]
    lse = _np_logsumexp(z[keep])
    per = -np.sum(q[keep] * (z[keep] - lse[:, None]), axis=1) + 0.1 * lse**2
    got = xsoftmax.cross_entropy(zd, qd, z_loss=0.1)
    np.testing.assert_allclose(float(got.compute()), per.mean(), rtol=1e-12)


def test_softcap_on_half_precision_is_computed_after_the_upcast() -> None:
    """bfloat16 logits with softcap: the gradient is that of the float64 formula on the
    same (bfloat16) inputs, correctly rounded to bfloat16 up to a few ulps, as without
    softcap; before, the cap was evaluated in bfloat16 (up to 38 ulps, with smoothing 270x off)."""
    torch_backend = get_backend("torch")
    if torch_backend is None:
        pytest.skip("torch backend not selected")
    import torch

    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(64, 500, generator=gen) * 10).to(torch.bfloat16)
    t = torch.randint(0, 500, (64,), generator=gen)
    for smoothing in (0.0, 0.1):
        xr = x.detach().clone().requires_grad_(True)
        loss = xsoftmax.cross_entropy(
            xr, t, softcap=30.0, reduction="sum", label_smoothing=smoothing
        )
        loss.backward()
        x64 = x.double().requires_grad_(True)
        capped = 30.0 * torch.tanh(x64 / 30.0)
        ref = torch.nn.functional.cross_entropy(
            capped, t, reduction="sum", label_smoothing=smoothing
        )
        ref.backward()
        got = xr.grad.double()
        want = x64.grad.to(torch.bfloat16).double()  # the correctly rounded bfloat16 result
        spacing = torch.where(want == 0, torch.full_like(want, 2.0**-133), want.abs() * 2.0**-7)
        ulps = ((got - x64.grad).abs() / spacing).max().item()
        assert ulps <= 2, f"label_smoothing={smoothing}: {ulps:.1f} bfloat16 ulps"
        np.testing.assert_allclose(float(loss.detach()), float(ref.detach()), rtol=2**-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "options",
    [
        {"softcap": 3.0},
        {"z_loss": 0.1},
        {"softcap": 2.0, "z_loss": 0.3, "label_smoothing": 0.2, "weight": [1.0, 2.0, 3.0, 4.0]},
    ],
    ids=["softcap", "z_loss", "all"],
)
def test_cross_entropy_with_grad_takes_softcap_and_z_loss(
    backend: Any, reduction: str, options: dict[str, Any]
) -> None:
    """``cross_entropy_with_grad`` takes cross_entropy's options, softcap and z_loss
    included; loss and gradient equal torch autograd through the textbook formula."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 4)) * 5
    t = np.asarray([0, 1, -100, 3, 2])
    kw = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in options.items()}
    xt = torch.tensor(x, requires_grad=True)
    cap = kw.get("softcap")
    z = cap * torch.tanh(xt / cap) if cap else xt
    tt = torch.tensor(t)
    weight = torch.tensor(kw["weight"]) if "weight" in kw else None
    ce = F.cross_entropy(
        z, tt, weight=weight, reduction="none", label_smoothing=kw.get("label_smoothing", 0.0)
    )
    counted = tt != -100
    zl = kw.get("z_loss", 0.0) * torch.logsumexp(z, dim=1) ** 2 * counted
    if reduction == "mean":
        w_t = (weight[tt.clamp(min=0)] if weight is not None else torch.ones(5)) * counted
        ref = ce.sum() / w_t.sum() + zl.sum() / counted.sum()
    elif reduction == "sum":
        ref = ce.sum() + zl.sum()
    else:
        ref = ce + zl
    ref.sum().backward()
    arrays = {k: backend.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    loss, grad = xsoftmax.cross_entropy_with_grad(
        backend.asarray(x), backend.asarray(t), reduction=reduction, **arrays
    )
    np.testing.assert_allclose(backend.to_numpy(loss), ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(grad), xt.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_linear_on_dask_rows_of_unknown_length_names_the_argument() -> None:
    if get_backend("dask") is None:
        pytest.skip("dask backend not selected")
    import dask.array as da

    rng = np.random.default_rng(6)
    h = da.from_array(rng.standard_normal((6, 2)), chunks=3)
    t = da.from_array(np.asarray([0, 1, 2, 0, 1, 2]), chunks=3)
    w = da.from_array(rng.standard_normal((3, 2)))
    keep = h[:, 0] > 0
    with pytest.raises(
        ValueError, match=r"`input` has axes of unknown length.*compute_chunk_sizes"
    ):
        xsoftmax.linear_cross_entropy(h[keep], w, t[keep])
    hk, tk = h[keep], t[keep]
    hk.compute_chunk_sizes()
    tk.compute_chunk_sizes()
    kept = h[keep].compute()
    expected = _textbook_ce(kept @ w.compute().T, t[keep].compute()).mean()
    got = xsoftmax.linear_cross_entropy(hk, w, tk)
    np.testing.assert_allclose(float(got.compute()), expected, rtol=1e-12)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "definition"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_log_softmax_where_gradient_skips_masked_outputs(
    backend: Any, fast: bool, dtype: str
) -> None:
    """The gradient of ``log_softmax(x, where=mask)`` counts the upstream gradient only at
    unmasked entries (the masked outputs are the constant -inf), as
    ``torch.masked.log_softmax``: ``g_i - p_i Σ_{j unmasked} g_j`` on unmasked entries, 0 elsewhere."""
    if backend.name not in ("torch", "jax"):
        pytest.skip("needs autograd (torch, JAX)")
    if dtype not in backend.float_dtypes() and dtype != "bfloat16":
        pytest.skip(f"{backend.name} has no {dtype}")
    x = np.asarray([-8.5, -1.765625, -4.3125, -2.40625, -7.9375])
    mask = np.asarray([1, 1, 0, 1, 0], dtype=bool)
    g = np.asarray([0.3, -0.5, 2.0, 0.7, -1.0])
    z = np.where(mask, x, -np.inf)
    p = np.exp(z - np.max(z)) / np.sum(np.exp(z - np.max(z)))
    expected = np.where(mask, g - p * np.sum(np.where(mask, g, 0.0)), 0.0)
    tol = {"float32": 1e-6, "float64": 1e-12, "bfloat16": 2e-2}[dtype]

    def log_probs(xb: Any) -> Any:
        wb = backend.asarray(mask)
        if fast:
            return xsoftmax.log_softmax(xb, where=wb)
        with fast_paths_disabled():
            return xsoftmax.log_softmax(xb, where=wb)

    # the upstream gradient g is sent back whole, its masked entries included (as torch's
    # OpInfo samples for masked.log_softmax do)
    if backend.name == "torch":
        xb = backend.asarray(x, dtype=dtype).requires_grad_(True)
        log_probs(xb).backward(backend.asarray(g, dtype=dtype))
        got = xb.grad.double().numpy()
    else:
        if dtype == "bfloat16":
            pytest.skip("bfloat16 is checked on torch")
        import jax

        _, vjp = jax.vjp(log_probs, backend.asarray(x, dtype=dtype))
        got = np.asarray(vjp(backend.asarray(g, dtype=dtype))[0], dtype=np.float64)
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
