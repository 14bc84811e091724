"""Second derivatives of the softmax family and cross_entropy, ties included (issue 10, item 1).

At all-zero logits (every model at initialisation) and with two equal top logits the
row maximum is tied; the kernels' summed weight at the maximum must carry the
derivative of the maximum, or every second derivative comes out wrong. References:
``jax.hessian`` of ``jax.nn`` (which shifts by a ``stop_gradient`` maximum) and
``torch.autograd.functional.hessian`` of the textbook formulas (no maximum at all), in float64.
Both paths are held: the default dispatch (derivative rules of the torch / JAX kernels)
and the generic kernel (``fast_paths_disabled``), which label smoothing, probability
targets and every other namespace use.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest
from conftest import get_backend

import xsoftmax
from xsoftmax._contract.config import fast_paths_disabled

PATHS = ["default", "generic"]


def _path(path: str) -> Any:
    """The default dispatch (custom derivative rules on torch and JAX) or the generic kernel."""
    return fast_paths_disabled() if path == "generic" else contextlib.nullcontext()


POINTS = {
    "zeros": np.zeros(4),
    "two_top": np.array([1.0, 3.0, 3.0, 0.0]),
    "random": np.random.default_rng(7).normal(size=4) * 3,
}
MASK = np.array([True, True, False, True])
PROBS = np.array([0.1, 0.2, 0.3, 0.4])
TARGET = 2


def _close(got: Any, want: Any) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------------------
# JAX: against jax.nn
# --------------------------------------------------------------------------------------
def _jax() -> Any:
    if get_backend("jax") is None:
        pytest.skip("jax backend not selected")
    import jax

    return jax


def _jax_pairs(jnp: Any, jax: Any) -> dict[str, tuple[Any, Any]]:
    mask = jnp.asarray(MASK)
    probs = jnp.asarray(PROBS)
    return {
        "logsumexp": (xsoftmax.logsumexp, jax.nn.logsumexp),
        "logsumexp_where": (
            lambda v: xsoftmax.logsumexp(v, where=mask),
            lambda v: jax.nn.logsumexp(v, where=mask),
        ),
        "log_softmax": (xsoftmax.log_softmax, jax.nn.log_softmax),
        "log_softmax_where": (
            lambda v: xsoftmax.log_softmax(v, where=mask)[jnp.asarray([0, 1, 3])],
            lambda v: jax.nn.log_softmax(v[jnp.asarray([0, 1, 3])]),
        ),
        "softmax": (xsoftmax.softmax, jax.nn.softmax),
        "softmax_where": (
            lambda v: xsoftmax.softmax(v, where=mask),
            lambda v: jax.nn.softmax(v, where=mask),
        ),
        "cross_entropy_index": (
            lambda v: xsoftmax.cross_entropy(v[None, :], jnp.asarray([TARGET])),
            lambda v: -jax.nn.log_softmax(v)[TARGET],
        ),
        "cross_entropy_probs": (
            lambda v: xsoftmax.cross_entropy(v[None, :], probs[None, :]),
            lambda v: -jnp.sum(probs * jax.nn.log_softmax(v)),
        ),
        "nll_loss": (
            lambda v: xsoftmax.nll_loss(xsoftmax.log_softmax(v)[None, :], jnp.asarray([TARGET])),
            lambda v: -jax.nn.log_softmax(v)[TARGET],
        ),
    }


@pytest.mark.parametrize("point", sorted(POINTS))
@pytest.mark.parametrize(
    "func",
    [
        "logsumexp",
        "logsumexp_where",
        "log_softmax",
        "log_softmax_where",
        "softmax",
        "softmax_where",
        "cross_entropy_index",
        "cross_entropy_probs",
        "nll_loss",
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_jax_hessian(func: str, point: str, path: str) -> None:
    jax = _jax()
    import jax.numpy as jnp

    ours, ref = _jax_pairs(jnp, jax)[func]
    x = jnp.asarray(POINTS[point], dtype=jnp.float64)
    with _path(path):
        h, j = jax.hessian(ours)(x), jax.jacobian(ours)(x)
    _close(h, jax.hessian(ref)(x))
    _close(j, jax.jacobian(ref)(x))


@pytest.mark.parametrize("path", PATHS)
def test_jax_hessian_logsumexp_zeros_issue_example(path: str) -> None:
    """The issue's example: ``[[2/9, -1/9, -1/9], ...]`` at three zeros (was all zeros)."""
    jax = _jax()
    import jax.numpy as jnp

    with _path(path):
        got = jax.hessian(lambda v: xsoftmax.logsumexp(v))(jnp.zeros(3))
    _close(got, jax.hessian(jax.nn.logsumexp)(jnp.zeros(3)))
    assert float(got[0, 0]) == pytest.approx(2 / 9)


# --------------------------------------------------------------------------------------
# torch: against torch.func.hessian of the textbook formulas
# --------------------------------------------------------------------------------------
def _torch_pairs(torch: Any) -> dict[str, tuple[Any, Any]]:
    mask = torch.asarray(MASK)
    keep = torch.asarray([0, 1, 3])
    probs = torch.asarray(PROBS, dtype=torch.float64)
    target = torch.asarray([TARGET])

    def lse(v: Any) -> Any:
        return torch.log(torch.sum(torch.exp(v)))

    def log_sm(v: Any) -> Any:
        return v - lse(v)

    return {
        "logsumexp": (xsoftmax.logsumexp, lse),
        "logsumexp_where": (lambda v: xsoftmax.logsumexp(v, where=mask), lambda v: lse(v[keep])),
        "log_softmax": (xsoftmax.log_softmax, log_sm),
        "log_softmax_where": (
            lambda v: xsoftmax.log_softmax(v, where=mask)[keep],
            lambda v: log_sm(v[keep]),
        ),
        "softmax": (xsoftmax.softmax, lambda v: torch.exp(log_sm(v))),
        "softmax_where": (
            lambda v: xsoftmax.softmax(v, where=mask)[keep],
            lambda v: torch.exp(log_sm(v[keep])),
        ),
        "cross_entropy_index": (
            lambda v: xsoftmax.cross_entropy(v[None, :], target),
            lambda v: -log_sm(v)[TARGET],
        ),
        "cross_entropy_probs": (
            lambda v: xsoftmax.cross_entropy(v[None, :], probs[None, :]),
            lambda v: -torch.sum(probs * log_sm(v)),
        ),
    }


@pytest.mark.parametrize("point", sorted(POINTS))
@pytest.mark.parametrize(
    "func",
    [
        "logsumexp",
        "logsumexp_where",
        "log_softmax",
        "log_softmax_where",
        "softmax",
        "softmax_where",
        "cross_entropy_index",
        "cross_entropy_probs",
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_torch_hessian(func: str, point: str, path: str) -> None:
    if get_backend("torch") is None:
        pytest.skip("torch backend not selected")
    import torch

    ours, ref = _torch_pairs(torch)[func]
    x = torch.asarray(POINTS[point], dtype=torch.float64)
    with _path(path):
        h = _torch_hessian(torch, ours, x)
    _close(h, _torch_hessian(torch, ref, x))


def _torch_hessian(torch: Any, f: Any, x: Any) -> np.ndarray:
    """Hessian of each output of ``f`` (reverse over reverse; torch.func's forward mode
    would load TorchScript decompositions, a DeprecationWarning under -W error)."""
    hessian = torch.autograd.functional.hessian
    n_out = f(x).numel()
    if f(x).ndim == 0:
        return hessian(f, x).numpy()
    return np.stack([hessian(lambda v, i=i: f(v).reshape(-1)[i], x).numpy() for i in range(n_out)])
