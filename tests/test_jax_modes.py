"""Every public function under JAX's strictest modes: ``debug_nans`` and strict promotion.

JAX's own test suite runs under ``jax.numpy_dtype_promotion('strict')``, and users debug
with ``jax.debug_nans(True)``. On finite input neither may raise: no NaN is formed and
then masked, and no float32 meets float64 without an explicit cast. Each call runs on
the fast path and on the definition, eagerly, under ``jit`` and through ``grad``, in
64-bit mode (this process) and in 32-bit mode (a fresh process: the mode is global).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import get_backend

pytestmark = pytest.mark.skipif(get_backend("jax") is None, reason="jax backend not selected")


def calls() -> dict[str, Callable[[], Any]]:
    """The grid of public calls on finite float32 input (JAX imported by the caller)."""
    import jax
    import jax.numpy as jnp

    import xsoftmax

    rng = np.random.default_rng(0)

    def f32(a: Any) -> Any:
        return jnp.asarray(a, dtype=jnp.float32)

    x = f32(rng.standard_normal((4, 5)) * 3)
    t = jnp.asarray([0, 1, 4, 2])
    t_ign = jnp.asarray([0, -100, 4, 2])
    q = f32(rng.dirichlet(np.ones(5), 4))
    w = f32([1.0, 2.0, 3.0, 4.0, 5.0])
    m = jnp.asarray(rng.random((4, 5)) > 0.3).at[:, 0].set(True)
    b = f32(rng.random((4, 5)))
    h = f32(rng.standard_normal((4, 3)))
    lw = f32(rng.standard_normal((5, 3)))
    lb = f32(rng.standard_normal(5))
    ce_opts = {"weight": w, "label_smoothing": 0.1, "softcap": 3.0, "z_loss": 0.01}
    out: dict[str, Callable[[], Any]] = {
        "softmax": lambda: xsoftmax.softmax(x),
        "softmax where": lambda: xsoftmax.softmax(x, where=m),
        "log_softmax": lambda: xsoftmax.log_softmax(x),
        "log_softmax where": lambda: xsoftmax.log_softmax(x, where=m),
        "log_softmax dtype": lambda: xsoftmax.log_softmax(x, dtype=jnp.float32),
        "logsumexp": lambda: xsoftmax.logsumexp(x, axis=-1),
        "logsumexp b": lambda: xsoftmax.logsumexp(x, axis=-1, b=b),
        "logsumexp b sign": lambda: xsoftmax.logsumexp(x, axis=-1, b=b - 0.5, return_sign=True),
        "logsumexp 0-d b": lambda: xsoftmax.logsumexp(f32(1.0), b=f32(1.0)),
        "logsumexp where": lambda: xsoftmax.logsumexp(x, axis=-1, where=m),
        "cross_entropy": lambda: xsoftmax.cross_entropy(x, t),
        "cross_entropy ignore": lambda: xsoftmax.cross_entropy(x, t_ign, weight=w),
        "cross_entropy options": lambda: xsoftmax.cross_entropy(x, t, **ce_opts),
        "cross_entropy none": lambda: xsoftmax.cross_entropy(x, t, reduction="none", **ce_opts),
        "cross_entropy prob": lambda: xsoftmax.cross_entropy(x, q, z_loss=0.1, weight=w),
        "cross_entropy_with_grad": lambda: xsoftmax.cross_entropy_with_grad(x, t, **ce_opts),
        "cross_entropy_with_grad prob": lambda: xsoftmax.cross_entropy_with_grad(x, q),
        "nll_loss": lambda: xsoftmax.nll_loss(x, t_ign, weight=w),
        "bce": lambda: xsoftmax.binary_cross_entropy_with_logits(x, q, pos_weight=w),
        "linear": lambda: xsoftmax.linear_cross_entropy(h, lw, t, chunk_size=2, **ce_opts),
        "linear prob": lambda: xsoftmax.linear_cross_entropy(h, lw, q, linear_bias=lb),
        "linear_with_grad": lambda: xsoftmax.linear_cross_entropy_with_grad(
            h, lw, t_ign, linear_bias=lb, chunk_size=2
        ),
        "grad cross_entropy": lambda: jax.grad(
            lambda a: xsoftmax.cross_entropy(a, t_ign, weight=w, label_smoothing=0.1)
        )(x),
        "grad cross_entropy prob": lambda: jax.grad(lambda a: xsoftmax.cross_entropy(a, q))(x),
        "grad log_softmax where": lambda: jax.grad(
            lambda a: jnp.sum(jnp.where(m, xsoftmax.log_softmax(a, where=m), 0.0))
        )(x),
        "grad logsumexp b": lambda: jax.grad(lambda a: xsoftmax.logsumexp(a, b=b))(x),
        "grad linear": lambda: jax.grad(
            lambda a: xsoftmax.linear_cross_entropy(a, lw, t, chunk_size=2)
        )(h),
        "jit cross_entropy": lambda: jax.jit(lambda a: xsoftmax.cross_entropy(a, t, **ce_opts))(x),
        "jit log_softmax": lambda: jax.jit(xsoftmax.log_softmax)(x),
    }
    return out


def failures() -> list[str]:
    """Every (path, call) that raised under debug_nans and strict promotion, with the error."""
    import jax

    from xsoftmax._contract.config import fast_paths_disabled

    found = []
    for path in ("fast", "definition"):
        for name, call in calls().items():
            try:  # both modes at once: an error in either one shows
                with jax.debug_nans(True), jax.numpy_dtype_promotion("strict"):
                    if path == "fast":
                        jax.block_until_ready(call())
                    else:
                        with fast_paths_disabled():
                            jax.block_until_ready(call())
            except Exception as exc:
                first = str(exc).splitlines()[0][:200] if str(exc) else ""
                found.append(f"{path} {name}: {type(exc).__name__}: {first}")
    return found


def test_64_bit_mode() -> None:
    import jax

    assert jax.config.jax_enable_x64
    assert failures() == []


def test_32_bit_mode() -> None:
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import jax; "
        "jax.config.update('jax_enable_x64', False); import test_jax_modes as m; "
        "found = m.failures(); print('\\n'.join(found)); sys.exit(1 if found else 0)"
    )
    env = {**os.environ, "XSOFTMAX_BACKENDS": "jax"}
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run(
        [sys.executable, "-c", script, here],
        capture_output=True,
        text=True,
        env=env,
        cwd=here,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
