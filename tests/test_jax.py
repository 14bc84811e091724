"""JAX: every public function under ``jax.jit`` and through ``jax.grad``.

Runs when the ``jax`` backend is loaded (``XSOFTMAX_BACKENDS=jax``, x64 enabled).
Eager results are held to the references by test_properties.py; here jitted
results are held to the eager ones, autograd to ``cross_entropy_with_grad`` and
to the long double reference, and lazy out-of-range targets to NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import get_backend
from hypothesis import given
from hypothesis import strategies as st
from strategies import FLOAT_INFO, PROPERTY_SETTINGS, class_weights, label_smoothings
from test_properties import assert_matches, ref_cross_entropy

import xsoftmax

BACKEND = get_backend("jax")
pytestmark = pytest.mark.skipif(
    BACKEND is None, reason="jax is not among the backends of this run (XSOFTMAX_BACKENDS)"
)

N, C = 4, 5
DTYPES = ("float32", "float64")


def _jax() -> Any:
    assert BACKEND is not None
    return BACKEND.extra["jax"]


def _inputs(dtype: str, seed: int = 0) -> dict[str, Any]:
    """Logits (N, C), class targets, probability targets, weights, a mask, BCE targets."""
    jnp = _jax().numpy
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(N, C)) < 0.7
    mask[0] = False  # one fully masked row
    return {
        "x": jnp.asarray(rng.normal(size=(N, C)) * 5, dtype=dtype),
        "t": jnp.asarray(rng.integers(0, C, size=N)),
        "pt": jnp.asarray(rng.dirichlet(np.ones(C), size=N), dtype=dtype),
        "w": jnp.asarray(rng.uniform(0.5, 2.0, size=C), dtype=dtype),
        "mask": jnp.asarray(mask),
        "y": jnp.asarray(rng.uniform(size=(N, C)), dtype=dtype),
    }


# name -> f(x, inputs) returning one array (a scalar for the losses' default "mean")
FUNCTIONS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "softmax": lambda x, a: xsoftmax.softmax(x),
    "softmax where": lambda x, a: xsoftmax.softmax(x, where=a["mask"]),
    "log_softmax": lambda x, a: xsoftmax.log_softmax(x, axis=0),
    "logsumexp": lambda x, a: xsoftmax.logsumexp(x, axis=-1, b=a["w"]),
    "logsumexp where": lambda x, a: xsoftmax.logsumexp(x, axis=-1, where=a["mask"]),
    "cross_entropy": lambda x, a: xsoftmax.cross_entropy(x, a["t"], weight=a["w"]),
    "cross_entropy prob": lambda x, a: xsoftmax.cross_entropy(x, a["pt"], label_smoothing=0.2),
    "cross_entropy_with_grad": lambda x, a: xsoftmax.cross_entropy_with_grad(x, a["t"])[0],
    "nll_loss": lambda x, a: xsoftmax.nll_loss(xsoftmax.log_softmax(x), a["t"], reduction="sum"),
    "bce": lambda x, a: xsoftmax.binary_cross_entropy_with_logits(x, a["y"], pos_weight=a["w"]),
}


def _np(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_under_jit(name: str, dtype: str) -> None:
    """jax.jit of each public function equals the eager call and returns a JAX array."""
    jax = _jax()
    a = _inputs(dtype)
    fn = FUNCTIONS[name]
    eager = fn(a["x"], a)
    jitted = jax.jit(lambda x, a: fn(x, a))(a["x"], a)
    assert isinstance(jitted, jax.Array)
    assert jitted.dtype == eager.dtype
    assert_matches(_np(jitted), _np(eager), dtype, ulps=8, what=f"{name} under jit")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_under_grad(name: str, dtype: str) -> None:
    """jax.grad of (a weighted sum of) each function is finite, eager and under jit."""
    jax = _jax()
    jnp = jax.numpy
    a = _inputs(dtype)
    fn = FUNCTIONS[name]
    weights = jnp.asarray(np.linspace(-1.0, 1.0, N * C).reshape(N, C), dtype=dtype)

    def scalar(x: Any) -> Any:
        out = fn(x, a)
        if out.ndim == 2:
            out = jnp.where(jnp.isfinite(out), out, 0) * weights
        return jnp.sum(jnp.where(jnp.isfinite(out), out, 0))

    g = jax.grad(scalar)(a["x"])
    gj = jax.jit(jax.grad(scalar))(a["x"])
    assert g.shape == (N, C)
    assert g.dtype == a["x"].dtype
    assert np.all(np.isfinite(_np(g))), g
    assert_matches(_np(gj), _np(g), dtype, ulps=16, atol=16 * FLOAT_INFO[dtype].eps, what=name)
    if name == "softmax where":  # the fully masked row 0 gets a zero gradient
        assert np.all(_np(g)[0] == 0)


@PROPERTY_SETTINGS
@given(
    dtype=st.sampled_from(["float16", "bfloat16", "float32", "float64"]),
    prob=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    smoothing=label_smoothings(),
    weight=st.one_of(st.none(), class_weights(C)),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1.0, 1e4, 1e30]),
)
def test_grad_matches_cross_entropy_with_grad(
    dtype: str,
    prob: bool,
    reduction: str,
    smoothing: float,
    weight: np.ndarray | None,
    seed: int,
    scale: float,
) -> None:
    """jax.grad(cross_entropy) == cross_entropy_with_grad's gradient == the reference."""
    assert BACKEND is not None
    jax = _jax()
    rng = np.random.default_rng(seed)
    fmax = FLOAT_INFO[dtype].max
    xn = np.clip(rng.normal(size=(N, C)) * scale, -fmax, fmax)
    x = BACKEND.asarray(xn, dtype)
    xn = BACKEND.to_numpy(x)
    if prob:
        tn = BACKEND.to_numpy(BACKEND.asarray(rng.dirichlet(np.ones(C), size=N), dtype))
        t = BACKEND.asarray(tn, dtype)
    else:
        tn = rng.integers(0, C, size=N)
        tn[0] = -100  # one ignored sample
        t = BACKEND.asarray(tn)
    kwargs: dict[str, Any] = {"reduction": reduction, "label_smoothing": smoothing}
    wn = None
    if weight is not None:
        kwargs["weight"] = BACKEND.asarray(weight, dtype)
        wn = BACKEND.to_numpy(kwargs["weight"])

    def total(z: Any) -> Any:
        return jax.numpy.sum(xsoftmax.cross_entropy(z, t, **kwargs))

    g_auto = jax.grad(total)(x)
    g_jit = jax.jit(jax.grad(total))(x)
    _, g_analytic = xsoftmax.cross_entropy_with_grad(x, t, **kwargs)
    _, g_ref, g_scale = ref_cross_entropy(
        xn,
        tn,
        axis=-1,
        weight=wn,
        ignore_index=-100,
        reduction=reduction,
        label_smoothing=smoothing,
    )
    for what, g in (("grad", g_auto), ("jit(grad)", g_jit), ("with_grad", g_analytic)):
        gn = BACKEND.to_numpy(g)
        assert g.dtype == x.dtype, what
        assert np.all(np.isfinite(gn)), f"{what}: {gn}"
        assert_matches(gn, g_ref, dtype, ulps=32, scale=g_scale, what=what)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_grad_finite_at_extreme_logits(dtype: str) -> None:
    """Gradients at logits +-finfo.max are finite, and equal the analytic gradient."""
    assert BACKEND is not None
    jax = _jax()
    fmax = FLOAT_INFO[dtype].max
    xn = np.array([[fmax, -fmax, 0.0], [fmax, fmax, 0.0], [-fmax, -fmax, -fmax], [1e4, 0, -1e4]])
    x = BACKEND.asarray(xn, dtype)
    t = BACKEND.asarray(np.array([1, 0, 2, 2]))
    for reduction in ("mean", "sum"):
        g = jax.grad(lambda z, r=reduction: xsoftmax.cross_entropy(z, t, reduction=r))(x)
        _, g2 = xsoftmax.cross_entropy_with_grad(x, t, reduction=reduction)
        gn, g2n = BACKEND.to_numpy(g), BACKEND.to_numpy(g2)
        assert np.all(np.isfinite(gn)), gn
        eps = FLOAT_INFO[dtype].eps
        assert_matches(gn, g2n.astype(np.float64), dtype, ulps=8, atol=4 * eps, what=reduction)
    for fn in (xsoftmax.logsumexp, xsoftmax.softmax, xsoftmax.log_softmax):
        g = jax.grad(lambda z, f=fn: jax.numpy.sum(f(z, axis=-1) * 0.5))(x)
        assert np.all(np.isfinite(BACKEND.to_numpy(g))), (fn.__name__, g)


@pytest.mark.parametrize("bad", [C, C + 7, -1, -3])
def test_out_of_range_target_under_jit_is_nan(bad: int) -> None:
    """Under jit an out-of-range class index cannot raise: that sample's loss is NaN."""
    assert BACKEND is not None
    jax = _jax()
    a = _inputs("float32")
    tn = np.array([0, bad, 2, -100])
    t = jax.numpy.asarray(tn)
    eager_ok = np.asarray(
        xsoftmax.cross_entropy(a["x"], jax.numpy.asarray([0, 1, 2, -100]), reduction="none")
    )
    for fn in (xsoftmax.cross_entropy, xsoftmax.nll_loss):
        per = np.asarray(jax.jit(lambda x, t, f=fn: f(x, t, reduction="none"))(a["x"], t))
        assert np.isnan(per[1]), f"{fn.__name__}: sample with target {bad} gave {per[1]}"
        assert not np.any(np.isnan(per[[0, 2, 3]])), per
        if fn is xsoftmax.cross_entropy:
            np.testing.assert_allclose(per[[0, 2, 3]], eager_ok[[0, 2, 3]], rtol=1e-6)
        mean = jax.jit(lambda x, t, f=fn: f(x, t))(a["x"], t)
        assert np.isnan(float(mean))
    loss, _ = jax.jit(lambda x, t: xsoftmax.cross_entropy_with_grad(x, t, reduction="none"))(
        a["x"], t
    )
    assert np.isnan(np.asarray(loss)[1])
    # eager JAX arrays are checked and raise, like every eager backend
    with pytest.raises(ValueError, match="target"):
        xsoftmax.cross_entropy(a["x"], t)
