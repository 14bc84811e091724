"""Autograd rows of the speed goals: torch Functions and JAX rules against their native anchors.

Prints one line per case: median time of xsoftmax, of the anchor, and their ratio
(or, for the (32, 10) overhead row, the difference in microseconds). One torch
thread; the two sides are timed alternately in the same process.

Run: ``python benchmarks/autograd.py [--repeat N] [--quick]``.
"""

# ruff: noqa: B023  (each closure is timed inside the iteration that made it)
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import xsoftmax


def _median_us(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm up (compilation, caches)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _pair(ours: Callable[[], Any], anchor: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Medians of both, measured in alternating rounds (a shared machine drifts)."""
    a, b = [], []
    for _ in range(5):
        a.append(_median_us(ours, max(1, repeat // 5)))
        b.append(_median_us(anchor, max(1, repeat // 5)))
    return statistics.median(a), statistics.median(b)


def _row(what: str, ours: float, anchor: float, diff: bool = False) -> None:
    tail = f"+{ours - anchor:8.1f} us" if diff else f"ratio {ours / anchor:5.2f}"
    print(f"{what:52s} {ours:10.1f} us {anchor:10.1f} us  {tail}")


def torch_rows(shapes: list[tuple[int, int]], repeat: int) -> None:
    """log_softmax forward, forward+backward; cross_entropy forward+backward; (32, 10) overhead."""
    import torch

    torch.set_num_threads(1)
    f = torch.nn.functional
    for n, c in shapes:
        x = torch.randn(n, c) * 3
        t = torch.randint(0, c, (n,))
        xg = x.clone().requires_grad_(True)
        _row(
            f"torch log_softmax fwd ({n},{c}) f32",
            *_pair(lambda: xsoftmax.log_softmax(x), lambda: torch.log_softmax(x, -1), repeat),
        )

        def lsm_ours() -> None:
            xsoftmax.log_softmax(xg).sum().backward()

        def lsm_torch() -> None:
            torch.log_softmax(xg, -1).sum().backward()

        _row(f"torch log_softmax fwd+bwd ({n},{c}) f32", *_pair(lsm_ours, lsm_torch, repeat))

        def ce_ours() -> None:
            xsoftmax.cross_entropy(xg, t).backward()

        def ce_torch() -> None:
            f.cross_entropy(xg, t).backward()

        _row(f"torch cross_entropy fwd+bwd ({n},{c}) f32", *_pair(ce_ours, ce_torch, repeat))
    x = torch.randn(32, 10, requires_grad=True)
    t = torch.randint(0, 10, (32,))

    def small_ours() -> None:
        xsoftmax.cross_entropy(x, t).backward()

    def small_torch() -> None:
        f.cross_entropy(x, t).backward()

    _row(
        "torch cross_entropy fwd+bwd (32,10) overhead",
        *_pair(small_ours, small_torch, repeat * 4),
        diff=True,
    )

    def small_lsm() -> None:
        xsoftmax.log_softmax(x).sum().backward()

    def small_lsm_torch() -> None:
        torch.log_softmax(x, -1).sum().backward()

    _row(
        "torch log_softmax fwd+bwd (32,10) overhead",
        *_pair(small_lsm, small_lsm_torch, repeat * 4),
        diff=True,
    )


def jax_rows(shapes: list[tuple[int, int]], repeat: int) -> None:
    """jit log_softmax vs jax.nn; jit(value_and_grad) cross_entropy vs optax."""
    import jax
    import jax.numpy as jnp

    try:
        import optax
    except ImportError:  # pragma: no cover
        optax = None
    for n, c in shapes:
        x = jax.random.normal(jax.random.PRNGKey(0), (n, c), jnp.float32) * 3
        t = jax.random.randint(jax.random.PRNGKey(1), (n,), 0, c)
        ours = jax.jit(lambda v: xsoftmax.log_softmax(v))
        theirs = jax.jit(jax.nn.log_softmax)
        _row(
            f"jax jit log_softmax ({n},{c}) f32",
            *_pair(
                lambda: ours(x).block_until_ready(), lambda: theirs(x).block_until_ready(), repeat
            ),
        )
        if optax is None:
            continue
        vg_ours = jax.jit(jax.value_and_grad(lambda v: xsoftmax.cross_entropy(v, t)))
        vg_optax = jax.jit(
            jax.value_and_grad(
                lambda v: optax.softmax_cross_entropy_with_integer_labels(v, t).mean()
            )
        )
        _row(
            f"jax jit value_and_grad cross_entropy ({n},{c}) f32",
            *_pair(
                lambda: jax.block_until_ready(vg_ours(x)),
                lambda: jax.block_until_ready(vg_optax(x)),
                repeat,
            ),
        )


def main() -> None:
    """Print the torch and JAX rows."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="one shape per row")
    args = parser.parse_args()
    shapes = [(256, 1000)] if args.quick else [(256, 1000), (64, 32000)]
    print(f"{'case':52s} {'xsoftmax':>13s} {'anchor':>13s}")
    torch_rows(shapes, args.repeat)
    jax_rows(shapes, args.repeat)


if __name__ == "__main__":
    main()
