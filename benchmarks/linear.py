"""linear_cross_entropy against the unfused loss, side by side (issue 12's table).

Run ``python benchmarks/linear.py`` (``--quick`` for small shapes, ``--only torch``
/ ``jax`` / ``dask`` for one section). Each row is measured in this process:
the median of a few forward+backward runs (``--repeats``), and the peak memory
that the run allocated beyond its inputs, measured (torch: the profiler's memory
events; JAX: the compiled program's temporary buffers from XLA's memory analysis;
NumPy: tracemalloc), never estimated. Logits of the default shapes are
N x C float32 = 512 MiB.

Sections:

* torch CPU (2 threads): ``F.cross_entropy(F.linear(h, W, b), t)``, torch's own
  ``F.linear_cross_entropy`` (its chunked options), ``xsoftmax.linear_cross_entropy``
  through autograd, and ``xsoftmax.linear_cross_entropy_with_grad``;
* JAX: ``jit(value_and_grad)`` of the unfused ``optax`` formulation against
  xsoftmax's custom VJP;
* Dask: N = 1e6 rows on a ``LocalCluster`` of two workers, checked against NumPy
  on a sample of rows.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _memory import torch_peak

import xsoftmax

MiB = 1 << 20


def _median_time(fn: Callable[[], Any], repeats: int, warm: bool = True) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls (after one warm-up call if ``warm``) and the last result."""
    if warm:
        fn()
    times = []
    out = None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _row(name: str, seconds: float, peak: float | None, extra: float | None, **more: Any) -> dict:
    return {
        "what": name,
        "seconds": round(seconds, 3),
        "peak_MiB": None if peak is None else round(peak / MiB, 1),
        "extra_MiB": None if extra is None else round(extra / MiB, 1),
        **more,
    }


def torch_section(n: int, d: int, c: int, repeats: int) -> list[dict]:
    """Forward+backward on torch CPU, float32, two threads."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    h0 = torch.randn(n, d, generator=gen) / d**0.5
    W0 = torch.randn(c, d, generator=gen) * 0.05
    b0 = torch.randn(c, generator=gen) * 0.05
    t = torch.randint(0, c, (n,), generator=gen)
    h, W, b = (a.clone().requires_grad_(True) for a in (h0, W0, b0))
    grads_bytes = 4 * (n * d + c * d + c)

    def fwd_bwd(loss_fn: Callable[[], Any]) -> Callable[[], float]:
        def run() -> float:
            for a in (h, W, b):
                a.grad = None
            loss = loss_fn()
            loss.backward()
            return float(loss.detach())

        return run

    cases: dict[str, Callable[[], Any]] = {
        "F.cross_entropy(F.linear(h, W, b), t)": fwd_bwd(
            lambda: F.cross_entropy(F.linear(h, W, b), t)
        ),
        "xsoftmax.linear_cross_entropy (autograd)": fwd_bwd(
            lambda: xsoftmax.linear_cross_entropy(h, W, t, linear_bias=b)
        ),
    }
    if hasattr(F, "linear_cross_entropy") and hasattr(torch.nn, "LinearCrossEntropyOptions"):
        cases["torch F.linear_cross_entropy (chunked options)"] = fwd_bwd(
            lambda: F.linear_cross_entropy(
                h, W, t, linear_bias=b, options=torch.nn.LinearCrossEntropyOptions()
            )
        )

    def with_grad() -> float:
        loss, *_ = xsoftmax.linear_cross_entropy_with_grad(h0, W0, t, linear_bias=b0)
        return float(loss)

    cases["xsoftmax.linear_cross_entropy_with_grad (no autograd)"] = with_grad
    # compile the numba kernels on small inputs: the timed runs are warm without a full-size call
    small = (h0[:16].clone().requires_grad_(True), W0[:300].clone().requires_grad_(True))
    xsoftmax.linear_cross_entropy(*small, t[:16] % 300).backward()
    xsoftmax.linear_cross_entropy(*small, t[:16] % 300, chunk_size=7).backward()
    rows = []
    for name, fn in cases.items():
        seconds, loss = _median_time(fn, repeats, warm=False)
        peak = torch_peak(fn)
        pk = None if peak is None else peak.peak_bytes
        extra = None if pk is None else max(pk - grads_bytes, 0)
        rows.append(_row(name, seconds, pk, extra, loss=round(loss, 6)))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for r in rows:
        r["time_ratio"] = round(r["seconds"] / base["seconds"], 3)
        if r["extra_MiB"] is not None:
            r["extra_over_logits"] = round(r["extra_MiB"] / (n * c * 4 / MiB), 4)
    return rows


def jax_section(n: int, d: int, c: int, repeats: int) -> list[dict]:
    """jit(value_and_grad) of the unfused optax formulation and of xsoftmax's custom VJP."""
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    h = jax.random.normal(k1, (n, d), jnp.float32) / d**0.5
    W = jax.random.normal(k2, (c, d), jnp.float32) * 0.05
    t = jax.random.randint(k3, (n,), 0, c)
    try:
        import optax

        def unfused(h: Any, W: Any) -> Any:
            return optax.softmax_cross_entropy_with_integer_labels(h @ W.T, t).mean()

        unfused_name = "optax.softmax_cross_entropy_with_integer_labels(h @ W.T, t)"
    except ImportError:

        def unfused(h: Any, W: Any) -> Any:
            logits = h @ W.T
            lse = jax.nn.logsumexp(logits, axis=-1)
            return jnp.mean(lse - jnp.take_along_axis(logits, t[:, None], axis=1)[:, 0])

        unfused_name = "unfused jnp (logsumexp - logit[t])"

    def fused(h: Any, W: Any) -> Any:
        return xsoftmax.linear_cross_entropy(h, W, t)

    rows = []
    for name, f in (
        (unfused_name, unfused),
        ("xsoftmax.linear_cross_entropy (custom_vjp)", fused),
    ):
        g = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
        compiled = g.lower(h, W).compile()
        mem = compiled.memory_analysis()
        temp = None if mem is None else int(mem.temp_size_in_bytes)

        def run(g: Any = g) -> Any:
            v, (dh, dW) = g(h, W)
            return jax.block_until_ready((v, dh, dW))

        seconds, res = _median_time(run, repeats)
        rows.append(_row(name, seconds, temp, temp, loss=round(float(res[0]), 6)))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for r in rows:
        r["time_ratio"] = round(r["seconds"] / base["seconds"], 3)
        if r["peak_MiB"] is not None and base["peak_MiB"]:
            r["memory_ratio"] = round(r["peak_MiB"] / base["peak_MiB"], 4)
    return rows


def dask_section(n: int, d: int, c: int, rows_per_chunk: int) -> list[dict]:
    """N rows over a LocalCluster of two workers; the result against NumPy on a sample."""
    import dask.array as da
    import distributed

    rng = np.random.default_rng(0)
    W = (rng.standard_normal((c, d)) * 0.05).astype(np.float32)
    h = da.random.default_rng(1).standard_normal(
        (n, d), chunks=(rows_per_chunk, d), dtype=np.float32
    )
    t = da.random.default_rng(2).integers(0, c, n, chunks=rows_per_chunk)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        per = xsoftmax.linear_cross_entropy(h, da.from_array(W), t, reduction="none")
        mean = per.mean()
        t0 = time.perf_counter()
        per_v, mean_v, h_s, t_s = client.compute([per[:2000], mean, h[:2000], t[:2000]], sync=True)
        seconds = time.perf_counter() - t0
    want = xsoftmax.linear_cross_entropy(np.asarray(h_s), W, np.asarray(t_s), reduction="none")
    err = float(np.max(np.abs(np.asarray(per_v, np.float64) - want) / np.abs(want)))
    return [
        {
            "what": f"Dask LocalCluster(2 workers): N={n}, d={d}, C={c}, rows per chunk {rows_per_chunk}",
            "seconds": round(seconds, 1),
            "mean_loss": round(float(mean_v), 6),
            "max_rel_err_vs_numpy_first_2000_rows": err,
        }
    ]


def _print_table(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


def main(argv: list[str] | None = None) -> int:
    """Run the sections and print (and optionally save) the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (a smoke test)")
    parser.add_argument("--only", choices=["torch", "jax", "dask"], action="append")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    n, d, c = (256, 64, 4096) if args.quick else (2048, 512, 65536)
    dn, dd, dc, dchunk = (20_000, 32, 128, 5_000) if args.quick else (1_000_000, 64, 256, 50_000)
    sections = args.only or ["torch", "jax", "dask"]
    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}",
        "python": platform.python_version(),
        "shapes": {"N": n, "d": d, "C": c, "logits_MiB": n * c * 4 / MiB},
    }
    print(json.dumps(info))
    out: dict[str, Any] = {"info": info}
    if "torch" in sections:
        import torch

        info["torch"] = torch.__version__
        out["torch"] = torch_section(n, d, c, args.repeats)
        _print_table(f"torch CPU, float32, N={n}, d={d}, C={c}, 2 threads", out["torch"])
    if "jax" in sections:
        import jax

        info["jax"] = jax.__version__
        out["jax"] = jax_section(n, d, c, args.repeats)
        _print_table(f"JAX jit(value_and_grad), float32, N={n}, d={d}, C={c}", out["jax"])
    if "dask" in sections:
        out["dask"] = dask_section(dn, dd, dc, dchunk)
        _print_table("Dask", out["dask"])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
