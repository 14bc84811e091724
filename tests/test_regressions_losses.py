"""Regression tests for the loss defects of issue 10 (and the 0-d results of issue 11).

Every expected value comes from an independent oracle: torch autograd through
``torch.nn.functional`` (or the textbook formula written in torch ops) in float64,
float64 / ``longdouble`` NumPy definitions, or Python integers. Each test names the
issue item it guards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS

import xsoftmax

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Dask: see conftest

AUTOGRAD = [pytest.param(b, id=b.name) for b in BACKENDS if b.autograd]
if not AUTOGRAD:
    AUTOGRAD = [pytest.param(None, marks=pytest.mark.skip(reason="no autograd backend loaded"))]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def backend_grad(backend: Any, fn: Callable[..., Any], args: list[Any], wrt: int) -> np.ndarray:
    """d fn(*args) / d args[wrt] by the backend's own autograd (``fn`` returns a 0-d array)."""
    arrs = [a if a is None else backend.asarray(a) for a in args]
    if backend.name.startswith("torch"):
        arrs[wrt].requires_grad_(True)
        fn(*arrs).backward()
        return arrs[wrt].grad.detach().cpu().numpy()
    jax = backend.extra["jax"]

    def f(v: Any) -> Any:
        a = list(arrs)
        a[wrt] = v
        return fn(*a)

    return np.asarray(jax.grad(f)(arrs[wrt]))


def torch_grad(fn: Callable[..., Any], args: list[Any], wrt: int) -> np.ndarray:
    """d fn(*args) / d args[wrt] by torch autograd in float64 (the oracle)."""
    import torch

    ts = [
        a if a is None else torch.from_numpy(np.array(a, dtype=np.float64, copy=True))
        for a in args
    ]
    ts[wrt].requires_grad_(True)
    fn(*ts).backward()
    return ts[wrt].grad.numpy()


def textbook_ce_index(x: Any, t: np.ndarray, w: Any, eps: float, reduction: str) -> Any:
    """torch's class-index cross-entropy, written in differentiable torch ops."""
    import torch

    lp = torch.log_softmax(x, dim=-1)
    tt = torch.from_numpy(t)
    c = x.shape[-1]
    w_t = w[tt]
    per = -w_t * lp.gather(-1, tt[:, None])[:, 0]
    if eps:
        per = (1 - eps) * per + (eps / c) * -(lp * w).sum(-1)
    return per.sum() / w_t.sum() if reduction == "mean" else per.sum()


def textbook_bce(x: Any, t: Any, w: Any, pw: Any, reduction: str) -> Any:
    """torch's BCE with logits as its formula in differentiable torch ops (torch's own
    function has no derivative for ``weight``): ``w [(1 - t) sp(x) + pw t sp(-x)]``."""
    import torch

    zero = torch.zeros_like(x)
    per = w * ((1 - t) * torch.logaddexp(zero, x) + pw * t * torch.logaddexp(zero, -x))
    return per.mean() if reduction == "mean" else per.sum()


# --------------------------------------------------------------------------------------
# item 2: gradient with respect to targets (and weights) at exact 0 / 1
# --------------------------------------------------------------------------------------
PROB_X = np.array([[10.0, 1.0, -2.0], [0.5, 0.5, 3.0], [-1.0, 2.0, 0.0]])
PROB_T = np.array([[0.0, 1.0, 0.0], [0.25, 0.0, 0.75], [1.0, 0.0, 0.0]])
PROB_W = np.array([0.0, 2.0, 0.5])


@pytest.mark.parametrize("backend", AUTOGRAD)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_prob_target_gradient_at_exact_zero(
    backend: Any, reduction: str, smoothing: float, weighted: bool
) -> None:
    """Item 2: dCE/dtarget is -w log_softmax also where a target entry is exactly 0."""
    import torch.nn.functional as F

    w = PROB_W if weighted else None
    kw = {"reduction": reduction, "label_smoothing": smoothing}
    got = backend_grad(
        backend,
        lambda x, t, w: xsoftmax.cross_entropy(x, t, weight=w, **kw),
        [PROB_X, PROB_T, w],
        1,
    )
    want = torch_grad(
        lambda x, t, w: F.cross_entropy(x, t, weight=w, **kw), [PROB_X, PROB_T, w], 1
    )
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    if weighted:  # and the weight's gradient where the weight is exactly 0
        got_w = backend_grad(
            backend,
            lambda x, t, w: xsoftmax.cross_entropy(x, t, weight=w, **kw),
            [PROB_X, PROB_T, w],
            2,
        )
        want_w = torch_grad(
            lambda x, t, w: F.cross_entropy(x, t, weight=w, **kw), [PROB_X, PROB_T, w], 2
        )
        np.testing.assert_allclose(got_w, want_w, rtol=1e-12, atol=1e-14)


def test_prob_target_gradient_issue_example() -> None:
    """Item 2's example: x=[[10,1,-2]], t=[[0,1,0]] gives dCE/dt = -log_softmax(x)."""
    import torch

    x = torch.tensor([[10.0, 1.0, -2.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    xsoftmax.cross_entropy(x, t).backward()
    # -log_softmax(x) = (m - x) + log1p(sum of exp(x_j - m) over j != argmax), accurately
    rest = np.log1p(np.exp(-9.0) + np.exp(-12.0))
    want = np.array([[rest, 9.0 + rest, 12.0 + rest]])
    np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-14)


BCE_X = np.array([10.0, -2.0, 0.3, -40.0, 5.0, 0.0])
BCE_T = np.array([0.0, 0.0, 1.0, 1.0, 0.5, 1.0])
BCE_W = np.array([1.0, 0.0, 2.0, 0.5, 1.0, 3.0])
BCE_PW = np.array([0.0, 1.0, 2.0, 1.5, 0.0, 1.0])


@pytest.mark.parametrize("backend", AUTOGRAD)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("wrt", [1, 2, 3])
def test_bce_gradient_at_exact_zero_and_one(backend: Any, reduction: str, wrt: int) -> None:
    """Item 2: dBCE/d(target, weight, pos_weight) where targets or weights are exactly 0 or 1."""
    args = [BCE_X, BCE_T, BCE_W, BCE_PW]
    got = backend_grad(
        backend,
        lambda x, t, w, pw: xsoftmax.binary_cross_entropy_with_logits(
            x, t, weight=w, pos_weight=pw, reduction=reduction
        ),
        args,
        wrt,
    )
    want = torch_grad(lambda x, t, w, pw: textbook_bce(x, t, w, pw, reduction), args, wrt)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_bce_target_gradient_issue_example() -> None:
    """Item 2's example: BCE x=[10,-2], t=[0,0], summed: dL/dt = -x = [-10, 2]."""
    import torch

    x = torch.tensor([10.0, -2.0], dtype=torch.float64)
    t = torch.tensor([0.0, 0.0], dtype=torch.float64, requires_grad=True)
    xsoftmax.binary_cross_entropy_with_logits(x, t, reduction="sum").backward()
    np.testing.assert_allclose(t.grad.numpy(), -x.numpy(), rtol=1e-14)


@pytest.mark.parametrize("backend", AUTOGRAD)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2, 1.0])
def test_index_target_weight_gradient_at_zero_weight(
    backend: Any, reduction: str, smoothing: float
) -> None:
    """Item 2: dCE/dweight where a class weight is exactly 0 (index targets, smoothing)."""
    t = np.array([0, 1, 2, 0])
    x = np.array([[10.0, 1.0, -2.0], [0.5, 0.5, 3.0], [-1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    w = np.array([0.0, 2.0, 0.5])
    got = backend_grad(
        backend,
        lambda x, w: xsoftmax.cross_entropy(
            x, backend.asarray(t), weight=w, reduction=reduction, label_smoothing=smoothing
        ),
        [x, w],
        1,
    )
    want = torch_grad(lambda x, w: textbook_ce_index(x, t, w, smoothing, reduction), [x, w], 1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", AUTOGRAD)
def test_zero_coefficient_still_masks_infinite_terms(backend: Any) -> None:
    """Item 2 keeps the rule it narrows: 0 * inf contributes 0 (loss and gradient finite)."""
    x = np.array([[-np.inf, 0.0, 1.0], [2.0, -np.inf, 0.0]])
    t = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    fn = lambda x, t: xsoftmax.cross_entropy(x, t, reduction="sum")  # noqa: E731
    loss = float(backend.to_numpy(fn(backend.asarray(x), backend.asarray(t))))
    lp = np.where(t == 0, 0.0, np.log(np.exp(x) / np.exp(x).sum(-1, keepdims=True)))
    assert loss == pytest.approx(-(t * lp).sum(), rel=1e-14)
    g = backend_grad(backend, fn, [x, t], 0)
    assert np.isfinite(g).all()
    assert g[0, 0] == 0.0
    assert g[1, 1] == 0.0


# --------------------------------------------------------------------------------------
# item 10: empty inputs keep the autograd graph
# --------------------------------------------------------------------------------------
TORCH = [pytest.param(b, id=b.name) for b in BACKENDS if b.name.startswith("torch")]
if not TORCH:
    TORCH = [pytest.param(None, marks=pytest.mark.skip(reason="torch backend not loaded"))]


@pytest.mark.parametrize("backend", TORCH)
@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0)])
def test_logsumexp_of_empty_keeps_graph(backend: Any, shape: tuple[int, ...]) -> None:
    """Item 10: logsumexp over no element is -inf with a gradient function, as torch's."""
    import torch

    x = backend.asarray(np.empty(shape))
    x.requires_grad_(True)
    out = xsoftmax.logsumexp(x, axis=-1)
    ref_x = torch.empty(shape, dtype=torch.float64, requires_grad=True)
    ref = torch.logsumexp(ref_x, dim=-1)
    assert out.grad_fn is not None
    np.testing.assert_array_equal(backend.to_numpy(out), ref.detach().numpy())
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), ref_x.grad.numpy())


@pytest.mark.parametrize("backend", TORCH)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("func", ["cross_entropy", "cross_entropy_prob", "nll_loss"])
def test_empty_batch_loss_keeps_graph(backend: Any, reduction: str, func: str) -> None:
    """Item 10: a (0, C) batch gives torch's value (NaN / 0 / empty) with a gradient function."""
    import torch
    import torch.nn.functional as F

    prob = func == "cross_entropy_prob"
    ours = xsoftmax.nll_loss if func == "nll_loss" else xsoftmax.cross_entropy
    theirs = F.nll_loss if func == "nll_loss" else F.cross_entropy
    t_np = np.empty((0, 4)) if prob else np.empty((0,), dtype=np.int64)
    x = backend.asarray(np.empty((0, 4)))
    x.requires_grad_(True)
    t = backend.asarray(t_np)
    if prob:
        t.requires_grad_(True)
    out = ours(x, t, reduction=reduction)
    ref_x = torch.empty((0, 4), dtype=torch.float64, requires_grad=True)
    ref = theirs(ref_x, torch.from_numpy(t_np), reduction=reduction)
    assert out.grad_fn is not None
    np.testing.assert_array_equal(backend.to_numpy(out), ref.detach().numpy())
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), ref_x.grad.numpy())
    if prob:
        assert t.grad is not None
        assert tuple(t.grad.shape) == (0, 4)


# --------------------------------------------------------------------------------------
# items 13 and 14: exact class-index comparisons for every integer dtype and ignore_index
# --------------------------------------------------------------------------------------
INT_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
IGNORE_VALUES = [-100, 2**70, -(2**63) - 1, 2**64 - 1, 2**63 + 5, 2**31, 255, -(2**31) - 1]
X4 = np.array([[2.0, 0.5, -1.0, 0.0], [0.0, 1.0, 3.0, -2.0], [1.0, 1.0, 1.0, 1.0]])


def ce_oracle(x: np.ndarray, t: list[int], ignore_index: int, **kw: Any) -> np.ndarray:
    """torch's float64 cross_entropy; the ignored samples found by Python int equality."""
    import torch
    import torch.nn.functional as F

    t64 = torch.tensor([-100 if v == ignore_index else v for v in t], dtype=torch.int64)
    return F.cross_entropy(torch.from_numpy(x), t64, ignore_index=-100, **kw).numpy()


def dtype_holds(dtype: str, value: int) -> bool:
    info = np.iinfo(dtype)
    return int(info.min) <= value <= int(info.max)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_ignore_index_any_python_int(backend: Any, dtype: str) -> None:
    """Items 13/14: any Python int ignore_index; equal targets (exactly) are ignored."""
    for ignore_index in IGNORE_VALUES[:4] if backend.lazy else IGNORE_VALUES:  # Dask: slow
        check_ignore_index(backend, dtype, ignore_index)


def check_ignore_index(backend: Any, dtype: str, ignore_index: int) -> None:
    t = [0, 3, 2]
    if dtype_holds(dtype, ignore_index) and ignore_index not in t:
        t[1] = ignore_index  # a target equal to ignore_index in the target's own dtype
    target = backend.asarray(np.array(t, dtype=dtype))
    for reduction in ("none", "mean"):
        got = xsoftmax.cross_entropy(
            backend.asarray(X4), target, ignore_index=ignore_index, reduction=reduction
        )
        want = ce_oracle(X4, t, ignore_index, reduction=reduction)
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-14)
    got = xsoftmax.nll_loss(
        backend.asarray(X4), target, ignore_index=ignore_index, reduction="sum"
    )
    lp = [0.0 if v == ignore_index else -X4[i, v] for i, v in enumerate(t)]
    assert float(backend.to_numpy(got)) == pytest.approx(sum(lp), rel=1e-14)


@pytest.mark.parametrize(
    ("dtype", "value"),
    [("uint64", 2**64 - 100), ("uint64", 2**63 + 1), ("uint64", 2**63), ("uint32", 2**32 - 1)],
)
def test_wide_unsigned_targets_do_not_wrap(backend: Any, dtype: str, value: int) -> None:
    """Item 13: [0, 3, 2**64-100] is out of range, not ignore_index -100; shown unwrapped."""
    target = backend.asarray(np.array([0, 3, value], dtype=dtype))
    x = backend.asarray(X4)
    if backend.lazy:  # no value check behind the caller's back: NaN for that sample
        got = backend.to_numpy(xsoftmax.cross_entropy(x, target, reduction="none"))
        assert np.isnan(got[2])
        want = ce_oracle(X4[:2], [0, 3], -100, reduction="none")
        np.testing.assert_allclose(got[:2], want, rtol=1e-14)
        return
    for fn in (xsoftmax.cross_entropy, xsoftmax.nll_loss, xsoftmax.cross_entropy_with_grad):
        with pytest.raises(ValueError, match=rf"out-of-range index\(es\): {value}$"):
            fn(x, target)


def test_out_of_range_message_range_with_wrapped_values() -> None:
    """Item 13: the message's range runs over the caller's values, wrapped ones included."""
    target = np.array([7, 2**63 + 1, 2**64 - 1, 1], dtype=np.uint64)
    with pytest.raises(ValueError, match=rf"3 out-of-range.*from 7 to {2**64 - 1}$"):
        xsoftmax.cross_entropy(np.zeros((4, 3)), target, ignore_index=2**64 - 1 - 1)


@pytest.mark.parametrize("backend", [b for b in AUTOGRAD if b.id == "jax"] or AUTOGRAD[:0])
def test_ignore_index_without_x64(backend: Any) -> None:
    """Item 14: 2**31 (and uint32 values) on JAX without x64 (int32 indices)."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(False):
        x = jnp.asarray(X4.astype(np.float32))
        for ignore_index in (2**31, -(2**31) - 1, 2**70):
            got = xsoftmax.cross_entropy(
                x, jnp.asarray([0, 3, 2], dtype=jnp.int32), ignore_index=ignore_index
            )
            want = ce_oracle(X4, [0, 3, 2], ignore_index)
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
        t = jnp.asarray(np.array([0, 2**32 - 1, 2], dtype=np.uint32))
        got = xsoftmax.cross_entropy(x, t, ignore_index=2**32 - 1, reduction="none")
        np.testing.assert_allclose(
            np.asarray(got), ce_oracle(X4, [0, -100, 2], -100, reduction="none"), rtol=1e-6
        )
        with pytest.raises(ValueError, match=f"index\\(es\\): {2**31 + 5}$"):
            xsoftmax.cross_entropy(x, jnp.asarray(np.array([0, 2**31 + 5, 1], dtype=np.uint32)))


# --------------------------------------------------------------------------------------
# item 19: 64-dimensional logits with the class axis not last
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 62, -1])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_64_dimensional_logits(backend: Any, axis: int, reduction: str) -> None:
    """Item 19: ndim 64 (NumPy's maximum), classes on any axis: torch's value on the 2-D view."""
    if backend.name == "dask":
        pytest.skip("Dask cannot rechunk arrays of more than 32 dimensions (its own limit)")
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(19)
    shape = [1] * 64
    shape[0], shape[1], shape[62], shape[63] = 2, 3, 2, 3
    x = rng.normal(size=shape) * 4
    c = shape[axis]
    t = rng.integers(0, c, size=tuple(s for i, s in enumerate(shape) if i != axis % 64))
    w = np.linspace(0.5, 2.0, c)
    x2 = np.moveaxis(x, axis, -1).reshape(-1, c)
    t1 = torch.from_numpy(t.reshape(-1))
    want_ce = F.cross_entropy(
        torch.from_numpy(x2), t1, weight=torch.from_numpy(w), reduction=reduction
    )
    want_nll = F.nll_loss(
        torch.from_numpy(x2), t1, weight=torch.from_numpy(w), reduction=reduction
    )
    xb, tb, wb = backend.asarray(x), backend.asarray(t), backend.asarray(w)
    kw = {"axis": axis, "weight": wb, "reduction": reduction}
    got_ce = backend.to_numpy(xsoftmax.cross_entropy(xb, tb, **kw))
    got_nll = backend.to_numpy(xsoftmax.nll_loss(xb, tb, **kw))
    loss, grad = xsoftmax.cross_entropy_with_grad(xb, tb, **kw)
    np.testing.assert_allclose(
        got_ce.reshape(-1), want_ce.numpy().reshape(-1), rtol=1e-13, atol=1e-15
    )
    np.testing.assert_allclose(
        got_nll.reshape(-1), want_nll.numpy().reshape(-1), rtol=1e-13, atol=1e-15
    )
    np.testing.assert_allclose(backend.to_numpy(loss), got_ce, rtol=1e-15)
    xt = torch.from_numpy(x2).requires_grad_(True)
    F.cross_entropy(xt, t1, weight=torch.from_numpy(w), reduction=reduction).sum().backward()
    want_grad = np.moveaxis(xt.grad.numpy().reshape(np.moveaxis(x, axis, -1).shape), -1, axis)
    np.testing.assert_allclose(backend.to_numpy(grad), want_grad, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------
# item 16: float64 means of finite per-sample losses near the float64 maximum
# --------------------------------------------------------------------------------------
def exact_mean(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Σ w v / Σ w in exact rational arithmetic, rounded once (the oracle)."""
    from fractions import Fraction

    w = np.ones_like(values) if weights is None else weights
    num = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(values, w, strict=True))
    return float(num / sum(Fraction(float(b)) for b in w))


BIG = 1.7e308
BIG_X = np.array([[BIG, 0.0], [0.0, 1.5e308], [2.0, -1.0], [1e308, -5e307]])
BIG_T = np.array([1, 0, 1, 1])


@pytest.mark.parametrize("weighted", [False, True])
def test_mean_of_huge_finite_losses(backend: Any, weighted: bool) -> None:
    """Item 16: the mean of finite float64 losses near the maximum is finite and exact.

    Per-sample losses come from torch (float64, ``reduction='none'``); the expected
    mean is their exact rational mean, rounded once.
    """
    import torch
    import torch.nn.functional as F

    w = np.array([0.5, 0.75]) if weighted else None  # weighted per-sample losses finite
    tw = None if w is None else torch.from_numpy(w)
    xt, tt = torch.from_numpy(BIG_X), torch.from_numpy(BIG_T)
    per = F.cross_entropy(xt, tt, reduction="none").numpy()
    assert np.isfinite(per).all()
    w_t = None if w is None else w[BIG_T]
    want = exact_mean(per, w_t)
    xb, tb = backend.asarray(BIG_X), backend.asarray(BIG_T)
    wb = None if w is None else backend.asarray(w)
    got = {
        "cross_entropy": xsoftmax.cross_entropy(xb, tb, weight=wb),
        "nll_loss": xsoftmax.nll_loss(
            backend.asarray(torch.log_softmax(xt, -1).numpy()), tb, weight=wb
        ),
        "with_grad": xsoftmax.cross_entropy_with_grad(xb, tb, weight=wb)[0],
    }
    for name, value in got.items():
        assert float(backend.to_numpy(value)) == pytest.approx(want, rel=1e-15), name
    # probability targets: one-hot and soft rows
    q = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    per_q = F.cross_entropy(xt, torch.from_numpy(q), weight=tw, reduction="none").numpy()
    assert np.isfinite(per_q).all()
    got_q = xsoftmax.cross_entropy(xb, backend.asarray(q), weight=wb)
    assert float(backend.to_numpy(got_q)) == pytest.approx(exact_mean(per_q), rel=1e-15)


def test_bce_mean_of_huge_finite_losses(backend: Any) -> None:
    """Item 16: BCE's float64 mean of finite per-element losses near the maximum."""
    x = np.array([-BIG, -1.5e308, 3.0, BIG, -BIG])
    y = np.array([1.0, 1.0, 0.0, 0.0, 0.5])
    w = np.array([1.0, 0.5, 2.0, 0.25, 1.0])
    per = w * ((1 - y) * np.logaddexp(0.0, x) + y * np.logaddexp(0.0, -x))  # all finite
    assert np.isfinite(per).all()
    got = xsoftmax.binary_cross_entropy_with_logits(
        backend.asarray(x), backend.asarray(y), weight=backend.asarray(w)
    )
    assert float(backend.to_numpy(got)) == pytest.approx(exact_mean(per), rel=4e-16)


def test_mean_overflows_only_when_the_mean_does(backend: Any) -> None:
    """Item 16: losses whose true mean exceeds the maximum still give inf."""
    x = np.array([[BIG, -BIG], [BIG, -BIG]])  # per-sample loss 3.4e308 > max: inf each
    got = xsoftmax.cross_entropy(backend.asarray(x), backend.asarray(np.array([1, 1])))
    assert float(backend.to_numpy(got)) == np.inf
    x = np.array([[BIG, -1e308], [-1e308, BIG]])  # finite losses, mean 2.7e308 > max
    got = xsoftmax.cross_entropy(backend.asarray(x), backend.asarray(np.array([1, 0])))
    assert float(backend.to_numpy(got)) == np.inf


# --------------------------------------------------------------------------------------
# item 18: class weights that sum to zero over the counted targets (torch's value)
# --------------------------------------------------------------------------------------
ZERO_SUM_CASES = [
    ([1.0, -1.0, 2.0], [0, 1]),
    ([1.0, -1.0, 2.0], [1, 0]),
    ([0.0, 0.0, 1.0], [0, 1]),
    ([1.0, -1.0, 0.0], [0, 1]),
    ([-0.0, -0.0, 1.0], [0, 1]),
    ([1.0, -1.0, 2.0], [2, 2]),
    ([2.0, -1.0, 1.0], [0, 1, 1]),
]


@pytest.mark.parametrize(("weight", "target"), ZERO_SUM_CASES)
def test_weights_summing_to_zero_follow_torch(
    backend: Any, weight: list[float], target: list[int]
) -> None:
    """Item 18: the 'mean' over weights that sum to 0 is torch's (±inf or NaN), smoothing too."""
    import torch
    import torch.nn.functional as F

    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [-2.0, 0.0, 4.0]])[: len(target)]
    w, t = np.array(weight), np.array(target)
    xt, tt, wt = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(w)
    xb, tb, wb = backend.asarray(x), backend.asarray(t), backend.asarray(w)
    for eps in (0.0, 0.1, 1.0):
        want = F.cross_entropy(xt, tt, weight=wt, label_smoothing=eps).numpy()
        got = xsoftmax.cross_entropy(xb, tb, weight=wb, label_smoothing=eps)
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-14)
        got = xsoftmax.cross_entropy_with_grad(xb, tb, weight=wb, label_smoothing=eps)[0]
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-14)
    want = F.nll_loss(xt, tt, weight=wt).numpy()
    np.testing.assert_allclose(
        backend.to_numpy(xsoftmax.nll_loss(xb, tb, weight=wb)), want, rtol=1e-14
    )


# --------------------------------------------------------------------------------------
# issue 11: 'mean' / 'sum' results are 0-d arrays of the backend, never NumPy scalars
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reduced_losses_are_0d_arrays(backend: Any, reduction: str, dtype: str) -> None:
    """Issue 11: every loss returns a 0-d array of the backend's own type for mean/sum."""
    kind = type(backend.asarray(np.zeros(2)))
    x = backend.asarray(np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]), dtype)
    t = backend.asarray(np.array([0, 2]))
    q = backend.asarray(np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]]), dtype)
    kw = {"reduction": reduction}
    results = {
        "cross_entropy index": xsoftmax.cross_entropy(x, t, **kw),
        "cross_entropy prob": xsoftmax.cross_entropy(x, q, **kw),
        "cross_entropy smoothing": xsoftmax.cross_entropy(x, t, label_smoothing=0.1, **kw),
        "nll_loss": xsoftmax.nll_loss(x, t, **kw),
        "with_grad index": xsoftmax.cross_entropy_with_grad(x, t, **kw)[0],
        "with_grad prob": xsoftmax.cross_entropy_with_grad(x, q, **kw)[0],
        "bce": xsoftmax.binary_cross_entropy_with_logits(x, q, **kw),
        "empty": xsoftmax.cross_entropy(x[:0, ...], t[:0], **kw),
    }
    for name, out in results.items():
        assert isinstance(out, kind), (name, type(out))
        assert tuple(out.shape) == (), name
        assert out.dtype == backend.dtype(dtype), name
