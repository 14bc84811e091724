"""Benchmark xsoftmax against the anchors (SciPy, PyTorch, JAX/optax) on the CPU.

Run from the repository root::

    python benchmarks/run.py            # full run, ~10 minutes on 2 cores
    python benchmarks/run.py --quick    # float32, fewer shapes and rounds, ~1 minute
    python benchmarks/run.py --libs numpy torch --shapes 4096x1000 --dtypes float32

Everything runs side by side in one process: each case (library, function, shape,
dtype) times xsoftmax, its anchor and ``np.copyto`` of the input in interleaved
rounds with a rotating order, and reports medians over rounds. torch runs on one
thread; ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are removed from the
environment (the script re-executes itself without them). Prints the table of
ratios (xsoftmax / anchor, and time / copy), per-call overhead, peak extra memory
and the issue's goals, met or not; writes ``latest.json``, ``latest.md`` and
``bench_cpu.png`` to ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
_SCRUBBED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REEXEC_MARK = "XSOFTMAX_BENCH_SCRUBBED"


def _scrub_environment() -> None:
    """Re-execute this script without the OpenBLAS tuning variables, if any is set."""
    found = [name for name in _SCRUBBED_ENV if name in os.environ]
    if not found:
        return
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env[_REEXEC_MARK] = ",".join(found)
    print(f"re-executing without {', '.join(found)}", flush=True)
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env)


# --------------------------------------------------------------------------- goals
@dataclass(frozen=True)
class Goal:
    """One line of the speed goals table.

    ``metric`` is ``"ratio"`` (worst xsoftmax/anchor over the selected shapes),
    ``"overhead_us"`` (xsoftmax minus native time at one shape, microseconds) or
    ``"first_call_ms"`` (the first NumPy call after ``import xsoftmax`` in a fresh
    process). ``variants``: measured with the fast extra (numba kernels), without
    it (``XSOFTMAX_NO_NUMBA=1``, in a child process), or both.
    """

    what: str
    library: str
    function: str
    limit: float
    metric: str = "ratio"
    classes_min: int = 0
    classes_max: int = 1 << 62
    shape: tuple[int, int] | None = None
    variants: tuple[str, ...] = ("with",)

    def selects(self, shape: Sequence[int]) -> bool:
        """Whether a case of this shape counts towards the goal."""
        if self.shape is not None:
            return tuple(shape) == self.shape
        return self.classes_min <= shape[1] <= self.classes_max


BOTH = ("with", "without")
GOALS: tuple[Goal, ...] = (
    Goal("NumPy log_softmax vs SciPy, every shape", "numpy", "log_softmax", 0.6, variants=BOTH),
    Goal("NumPy softmax vs SciPy, every shape", "numpy", "softmax", 0.6, variants=BOTH),
    Goal("NumPy logsumexp vs SciPy, C >= 1000", "numpy", "logsumexp", 0.25, classes_min=1000),
    Goal(
        "NumPy cross_entropy_with_grad vs F.cross_entropy fwd+bwd, C >= 1000",
        "numpy",
        "cross_entropy_with_grad",
        1.0,
        classes_min=1000,
    ),
    Goal(
        "torch CPU log_softmax forward vs torch, C >= 1000",
        "torch",
        "log_softmax",
        1.1,
        classes_min=1000,
    ),
    Goal(
        "torch CPU log_softmax forward+backward vs torch, C >= 1000",
        "torch",
        "log_softmax_fwd_bwd",
        1.2,
        classes_min=1000,
    ),
    Goal(
        "torch CPU cross_entropy forward+backward vs F.cross_entropy, C >= 1000",
        "torch",
        "cross_entropy_fwd_bwd",
        1.0,
        classes_min=1000,
    ),
    Goal(
        "torch (32, 10) log_softmax forward+backward overhead over native (us)",
        "torch",
        "log_softmax_fwd_bwd",
        20.0,
        metric="overhead_us",
        shape=(32, 10),
    ),
    Goal(
        "torch (32, 10) cross_entropy forward+backward overhead over native (us)",
        "torch",
        "cross_entropy_fwd_bwd",
        20.0,
        metric="overhead_us",
        shape=(32, 10),
    ),
    Goal(
        "JAX jit(value_and_grad) cross_entropy vs optax",
        "jax",
        "cross_entropy_value_and_grad",
        1.5,
    ),
    Goal("JAX jit log_softmax vs jax.nn.log_softmax", "jax", "log_softmax", 2.0),
    Goal(
        "first NumPy call after import xsoftmax, fresh process (ms)",
        "numpy",
        "log_softmax",
        20.0,
        metric="first_call_ms",
        variants=BOTH,
    ),
    Goal(
        "without the fast extra: NumPy log_softmax vs SciPy",
        "numpy",
        "log_softmax",
        1.75,
        variants=("without",),
    ),
)


def _measure_goal(
    goal: Goal, dtype: str, results: dict[str, Any] | None, first_call: dict[str, Any] | None
) -> tuple[float, str] | None:
    """The goal's measured value for ``dtype`` and where it was taken, or None."""
    if goal.metric == "first_call_ms":
        if first_call is None or dtype != "float64":
            return None
        return first_call["median_ms"], first_call["what"]
    if results is None:
        return None
    worst: tuple[float, str] | None = None
    for c in results["cases"]:
        if (c["library"], c["function"], c["dtype"]) != (goal.library, goal.function, dtype):
            continue
        if not goal.selects(c["shape"]):
            continue
        value = c["overhead_us"] if goal.metric == "overhead_us" else c["ratio"]
        where = "x".join(map(str, c["shape"]))
        if worst is None or value > worst[0]:
            worst = (value, where)
    return worst


def evaluate_goals(results: dict[str, Any], dtypes: Sequence[str]) -> list[dict[str, Any]]:
    """Every goal, per variant and dtype: the worst measured value, where, and met or not."""
    rows = []
    first = results.get("first_call", {})
    for goal in GOALS:
        for variant in goal.variants:
            source = results if variant == "with" else results.get("without_extra")
            for dtype in dtypes:
                if goal.metric == "first_call_ms" and dtype != "float64":
                    continue
                got = _measure_goal(goal, dtype, source, first.get(variant))
                rows.append(
                    {
                        "goal": goal.what,
                        "extra": variant,
                        "dtype": dtype,
                        "limit": goal.limit,
                        "metric": goal.metric,
                        "measured": None if got is None else got[0],
                        "at": None if got is None else got[1],
                        "met": None if got is None else got[0] <= goal.limit,
                    }
                )
    rows.append(
        {
            "goal": "accuracy, with and without the extra, every backend: <= 4 ulps",
            "extra": "both",
            "dtype": "-",
            "limit": 4,
            "metric": "accuracy",
            "measured": None,
            "at": "tests (test_kernels_cpu, test_properties) and benchmarks/accuracy.py",
            "met": None,
        }
    )
    return rows


def first_call_ms(no_numba: bool, repeats: int = 5) -> dict[str, Any]:
    """Median time of the first ``xsoftmax.log_softmax`` (32x10 float64) in fresh processes.

    Each process imports NumPy and xsoftmax, then times one call; with the fast
    extra this includes importing numba and loading the compiled kernels from its
    on-disk cache (a warm-up process fills the cache first).
    """
    code = (
        "import time, numpy as np; x = np.random.default_rng(0).standard_normal((32, 10)); "
        "t0 = time.perf_counter(); import xsoftmax; t1 = time.perf_counter(); "
        "xsoftmax.log_softmax(x); t2 = time.perf_counter(); print(t1 - t0, t2 - t1)"
    )
    env = {k: v for k, v in os.environ.items() if k != "XSOFTMAX_NO_NUMBA"}
    if no_numba:
        env["XSOFTMAX_NO_NUMBA"] = "1"
    runs = []
    for _ in range(repeats + 1):  # the first fills numba's cache
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        runs.append(tuple(float(v) for v in out.stdout.split()))
    runs = runs[1:]
    imports = sorted(r[0] for r in runs)
    calls = sorted(r[1] for r in runs)
    return {
        "median_ms": calls[len(calls) // 2] * 1e3,
        "import_median_ms": imports[len(imports) // 2] * 1e3,
        "calls_ms": [c * 1e3 for c in calls],
        "what": "log_softmax 32x10 f64, wall, median of 5 fresh processes",
    }


# --------------------------------------------------------------------------- formatting
def fmt_time(seconds: float) -> str:
    """Seconds with a unit that keeps three or four significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return (
                f"{seconds / scale:.3g} {unit}"
                if seconds / scale < 100
                else f"{seconds / scale:.0f} {unit}"
            )
    return f"{seconds * 1e9:.0f} ns"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


CASE_HEADERS = (
    "library",
    "function",
    "shape",
    "dtype",
    "xsoftmax",
    "anchor",
    "anchor time",
    "ratio",
    "xs/copy",
    "anchor/copy",
)


def case_row(c: dict[str, Any]) -> list[str]:
    """One row of the ratio table."""
    t = c["timings"]
    return [
        c["library"],
        c["function"],
        "x".join(map(str, c["shape"])),
        c["dtype"],
        fmt_time(t["xsoftmax"]["median_s"]),
        c["anchor"],
        fmt_time(t[c["anchor"]]["median_s"]),
        f"{c['ratio']:.2f}",
        f"{c['xsoftmax_over_copy']:.1f}",
        f"{c['anchor_over_copy']:.1f}",
    ]


def report_sections(
    results: dict[str, Any], markdown: bool, dtype: str | None = None
) -> dict[str, tuple[str, str]]:
    """Each table as (title, table): ``cases``, ``overhead``, ``memory``, ``goals``.

    ``dtype`` keeps only that dtype's cases (the other tables are unaffected).
    """
    sections: dict[str, tuple[str, str]] = {}
    cases = [c for c in results["cases"] if dtype is None or c["dtype"] == dtype]
    sections["cases"] = (
        "Every case (median times; ratio = xsoftmax / anchor; x/copy = time / np.copyto):",
        _table(CASE_HEADERS, [case_row(c) for c in cases], markdown),
    )
    small = [
        c for c in results["cases"] if c["library"] == "torch" and tuple(c["shape"]) == (32, 10)
    ]
    if small:
        rows = [
            [
                c["function"],
                c["dtype"],
                fmt_time(c["timings"]["xsoftmax"]["median_s"]),
                fmt_time(c["timings"][c["anchor"]]["median_s"]),
                f"{c['overhead_us']:+.2f}",
            ]
            for c in small
        ]
        sections["overhead"] = (
            "Per-call overhead at (32, 10), torch tensors:",
            _table(("function", "dtype", "xsoftmax", "native", "overhead (us)"), rows, markdown),
        )
    if results["memory"]:
        rows = [
            [
                m["library"],
                m["function"],
                "x".join(map(str, m["shape"])),
                m["dtype"],
                m["contender"],
                "n/a" if m["peak_over_input"] is None else f"{m['peak_over_input']:.3f}",
                "n/a" if m["scratch_over_input"] is None else f"{m['scratch_over_input']:.3f}",
            ]
            for m in results["memory"]
        ]
        sections["memory"] = (
            "Peak extra memory (x input size; 'peak' includes the output, "
            "'scratch' is peak minus output):",
            _table(
                ("library", "function", "shape", "dtype", "who", "peak", "scratch"), rows, markdown
            ),
        )
    rows = []
    for g in results["goals"]:
        measured = (
            "not measured"
            if g["measured"] is None
            else (f"{g['measured']:.3g}" + (" us" if g["metric"] == "overhead_us" else ""))
        )
        met = {None: "-", True: "met", False: "NOT MET"}[g["met"]]
        unit = {"overhead_us": " us", "first_call_ms": " ms"}.get(g["metric"], "")
        if g["measured"] is not None:
            measured = f"{g['measured']:.3g}{unit}"
        rows.append(
            [
                g["goal"],
                g.get("extra", "with"),
                g["dtype"],
                f"<= {g['limit']:g}",
                measured,
                g["at"] or "",
                met,
            ]
        )
    sections["goals"] = (
        "Speed goals (worst case over the shapes each goal covers; extra: with the "
        "numba kernels, or without them, XSOFTMAX_NO_NUMBA=1):",
        _table(("goal", "extra", "dtype", "limit", "measured", "at", "met"), rows, markdown),
    )
    without = results.get("without_extra")
    if without is not None:
        wcases = [c for c in without["cases"] if dtype is None or c["dtype"] == dtype]
        sections["without"] = (
            "Without the fast extra (XSOFTMAX_NO_NUMBA=1, a second process; JAX does not use "
            "numba and is not repeated):",
            _table(CASE_HEADERS, [case_row(c) for c in wcases], markdown),
        )
    first = results.get("first_call")
    if first:
        rows = [
            [
                variant,
                f"{f['import_median_ms']:.1f}",
                f"{f['median_ms']:.1f}",
                ", ".join(f"{v:.1f}" for v in f["calls_ms"]),
            ]
            for variant, f in first.items()
        ]
        sections["first_call"] = (
            "First NumPy call after import (fresh processes, log_softmax 32x10 float64, wall):",
            _table(
                ("fast extra", "import xsoftmax (ms)", "first call (ms)", "each (ms)"),
                rows,
                markdown,
            ),
        )
    return sections


def report(results: dict[str, Any], markdown: bool) -> str:
    """All tables: ratios, overhead, memory, goals."""
    sections = report_sections(results, markdown)
    return "\n\n".join(f"{title}\n{table}" for title, table in sections.values())


_DOCS_METHOD = """\
### How it is measured

```
python benchmarks/run.py                 # everything, about 6-10 minutes on 2 cores
python benchmarks/run.py --quick         # float32, four shapes, about a minute
python benchmarks/run.py --clock cpu     # on a machine shared with other jobs
python benchmarks/run.py --libs numpy --shapes 4096x1000 --dtypes float32 --functions log_softmax
python benchmarks/run.py --clock cpu --docs docs/performance.md   # refresh this page
```

- One process, side by side: each case (library, function, shape, dtype) times xsoftmax, its
  anchor and `np.copyto` of the input (the bandwidth reference: one read, one write) in
  interleaved rounds, the order rotating each round; the reported time is the **median over
  rounds** (7 to 31 rounds, each sample at least 2 ms of back-to-back calls).
- Anchors: `scipy.special.log_softmax` / `softmax` / `logsumexp(axis=-1)` for NumPy;
  `torch.log_softmax` / `torch.softmax` / `F.cross_entropy` (integer targets) for torch
  tensors, with `torch.set_num_threads(1)`; NumPy `cross_entropy` against `F.cross_entropy`
  on the same buffer; JAX: `jax.jit(xsoftmax.log_softmax)` against
  `jax.jit(jax.nn.log_softmax)`, and `cross_entropy` against the jitted mean of
  `optax.softmax_cross_entropy_with_integer_labels`, with `block_until_ready` (float32 in
  JAX's default 32-bit mode, float64 with `jax_enable_x64`).
- `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` are removed (the script re-executes itself
  without them).
- Ratio = xsoftmax / anchor; `xs/copy` and `anchor/copy` are the times over `np.copyto`.
- Peak extra memory: NumPy allocations are traced by `tracemalloc` (the peak during the call
  over what existed before it, output included); torch CPU by the profiler's memory events.
- Raw results: `benchmarks/results/latest.json` (both clocks, quartiles, rounds); tables in
  `benchmarks/results/latest.md`. GPU: `python benchmarks/gpu.py` on a machine with CuPy or
  torch CUDA reports GB/s against the device-to-device copy of the same run.
"""


def docs_section(results: dict[str, Any], image: str) -> str:
    """The README section (Markdown): date, machine, method, goals, plot, every table."""
    meta = results["meta"]
    v, git = meta["versions"], meta["git"]
    changes = _kernel_changes(git)
    commit = f"`{git['commit']}`" + (
        f" with uncommitted changes to {', '.join(changes)}" if changes else ""
    )
    clock = (
        "this process's **CPU time** (`--clock cpu`), which other processes on the cores do "
        "not inflate (wall-clock medians are in the JSON too)"
        if meta["timing"]["clock"] == "cpu"
        else "**wall-clock** time"
    )
    sections = report_sections(results, markdown=True)
    graded = [g for g in results["goals"] if g["met"] is not None]
    parts = [
        "## Performance",
        f"Latest measurement: **{meta['date']}**, {meta['contender']} at commit {commit}.",
        f"**Machine**: {meta.get('machine', meta['cpu'])}; Python {v.get('python')}, NumPy "
        f"{v.get('numpy')}, SciPy {v.get('scipy')}, torch {v.get('torch')} (one thread), JAX "
        f"{v.get('jax')}, optax {v.get('optax', 'not installed')}. Load average at the start "
        f"{meta['loadavg_start'][0]:.1f}. Times are {clock}.",
        _DOCS_METHOD.rstrip(),
        f"### Speed goals, as measured ({sum(g['met'] for g in graded)} of {len(graded)} "
        "met)\n\nWorst case over the shapes each goal covers; memory is the peak including the "
        "output, in multiples of the input size.\n\n" + sections["goals"][1],
        f"### Time per element against class count\n\n![time per element]({image})",
    ]
    if "overhead" in sections:
        parts.append(
            "### Per-call overhead at (32, 10), torch tensors\n\n" + sections["overhead"][1]
        )
    if "first_call" in sections:
        parts.append("### First call after import\n\n" + sections["first_call"][1])
    if "memory" in sections:
        parts.append("### Peak extra memory\n\n" + sections["memory"][1])
    if "without" in sections:
        parts.append("### Without the fast extra\n\n" + sections["without"][1])
    for dtype in sorted({c["dtype"] for c in results["cases"]}):
        table = report_sections(results, markdown=True, dtype=dtype)["cases"][1]
        parts.append(f"### Every case, {dtype}\n\n" + table)
    return "\n\n".join(parts) + "\n"


def _kernel_changes(git: dict[str, Any]) -> list[str]:
    """Uncommitted package files that can change the timings (the demo cannot)."""
    return [path for path in git["dirty"] if not path.startswith("xsoftmax/demo/")]


def describe(meta: dict[str, Any]) -> str:
    """One line: what was measured, where, when, on which clock."""
    git = meta["git"]
    changes = _kernel_changes(git)
    commit = f"commit {git['commit']}" + (" + uncommitted changes" if changes else "")
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    return (
        f"{meta['contender']} ({commit}); {meta['date']}; {meta['cpu']}, {meta['cores']} cores; "
        f"clock: {meta['timing']['clock']}; load average at start {meta['loadavg_start'][0]:.2f}; "
        f"{versions}"
    )


# --------------------------------------------------------------------------- run
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine() -> str:
    """CPU model, family/model, cores, caches and memory, from /proc and /sys where present."""
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    parts = [info.get("model name", platform.processor() or platform.machine())]
    if "cpu family" in info:
        parts.append(f"CPU family {info['cpu family']}, model {info.get('model', '?')}")
    parts.append(f"{os.cpu_count()} cores")
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        with contextlib.suppress(OSError):
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            if kind != "Instruction":
                caches.append(f"L{level} {(index / 'size').read_text().strip()}")
    if caches:
        parts.append(", ".join(caches) + " (per cache instance)")
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        parts.append(f"{kib / 2**20:.0f} GiB RAM")
    if "hypervisor" in info.get("flags", "").split():
        parts.append("virtual machine")
    return ", ".join(parts)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "torch", "jax", "jaxlib", "optax", "array-api-compat"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _git_state() -> dict[str, Any]:
    """The commit measured and the uncommitted changes to the package, if any."""
    state: dict[str, Any] = {"commit": None, "dirty": []}
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "xsoftmax"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return state
    state["commit"] = head.stdout.strip()
    state["dirty"] = [line[3:] for line in dirty.stdout.splitlines() if line.strip()]
    return state


def _case_record(case: Any, timings: dict[str, Any], input_bytes: int) -> dict[str, Any]:
    from benchmarks._cases import COPY, XSOFTMAX

    med = {name: t.median for name, t in timings.items()}
    return {
        "library": case.library,
        "function": case.function,
        "shape": list(case.shape),
        "dtype": case.dtype,
        "anchor": case.anchor_name,
        "elements": case.elements,
        "input_bytes": input_bytes,
        "timings": {name: t.to_dict() for name, t in timings.items()},
        "ratio": med[XSOFTMAX] / med[case.anchor_name],
        "xsoftmax_over_copy": med[XSOFTMAX] / med[COPY],
        "anchor_over_copy": med[case.anchor_name] / med[COPY],
        "overhead_us": (med[XSOFTMAX] - med[case.anchor_name]) * 1e6,
        "cpu_over_wall": min(
            t.to_dict()["cpu_median_s"] / t.to_dict()["wall_median_s"] for t in timings.values()
        ),
        "notes": case.notes,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every selected case and memory call; return the results dict."""
    from benchmarks import _cases, _memory
    from benchmarks._timing import TimingConfig, interleaved

    libs, skipped = _cases.available_libraries(tuple(args.libs))
    for lib, why in skipped.items():
        print(f"skipping {lib}: {why}", flush=True)
    settings = _cases.configure_libraries(libs)
    xs, xs_label = _cases.load_xsoftmax(args.placeholder)
    if args.quick or args.light:
        config = TimingConfig(
            rounds_min=5, rounds_max=9, budget_s=0.2, min_sample_s=1e-3, warmup=1, clock=args.clock
        )
    else:
        config = TimingConfig(clock=args.clock)
    load = os.getloadavg()
    if load[0] > 0.5:
        print(
            f"warning: load average {load[0]:.2f} before the run: other processes share the "
            "cores; ratios stay comparable (interleaved rounds), absolute times less so"
            + (
                "; --clock cpu (this process's CPU time) is steadier there"
                if args.clock == "wall"
                else ""
            ),
            flush=True,
        )
    meta: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "cpu": _cpu_model(),
        "machine": _machine(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "versions": _versions(),
        "git": _git_state(),
        "contender": xs_label,
        "argv": sys.argv[1:],
        "timing": vars(config),
        "settings": settings,
        "scrubbed_env": os.environ.get(_REEXEC_MARK, ""),
        "skipped": skipped,
        "loadavg_start": load,
    }
    print(describe(meta), flush=True)
    cases: list[dict[str, Any]] = []
    width = [len(h) for h in CASE_HEADERS]
    print("  ".join(h.ljust(w) for h, w in zip(CASE_HEADERS, width, strict=True)), flush=True)
    started = time.perf_counter()
    for dtype in args.dtypes:
        for shape in args.shapes:
            inp = _cases.make_inputs(shape, dtype)
            for lib in libs:
                for case in _cases.build_cases(lib, xs, inp, args.functions):
                    record = _case_record(
                        case, interleaved(case.contenders(), config), inp.logits.nbytes
                    )
                    cases.append(record)
                    print("  ".join(case_row(record)), flush=True)
            del inp
    memory: list[dict[str, Any]] = []
    if not args.no_memory:
        for dtype in args.dtypes:
            inp = _cases.make_inputs(_cases.MEMORY_SHAPE, dtype)
            for call in _cases.memory_calls(xs, inp, libs):
                if args.functions and call.function not in args.functions:
                    continue
                tracer = _memory.numpy_peak if call.tracer == "numpy" else _memory.torch_peak
                peak = tracer(call.fn)
                entry = {
                    "library": call.library,
                    "function": call.function,
                    "contender": call.contender,
                    "shape": list(inp.shape),
                    "dtype": dtype,
                    "tracer": call.tracer,
                    "input_bytes": inp.logits.nbytes,
                }
                if peak is None:
                    entry.update(peak_bytes=None, peak_over_input=None, scratch_over_input=None)
                else:
                    entry.update(peak.to_dict(inp.logits.nbytes))
                memory.append(entry)
            del inp
    meta["elapsed_s"] = time.perf_counter() - started
    meta["loadavg_end"] = os.getloadavg()
    results = {"meta": meta, "cases": cases, "memory": memory}
    results["goals"] = evaluate_goals(results, args.dtypes)
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    from benchmarks import _cases

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="float32 only, fewer shapes and rounds (about a minute)",
    )
    p.add_argument(
        "--libs",
        nargs="+",
        choices=_cases.LIBRARIES,
        default=list(_cases.LIBRARIES),
        help="libraries to time (default: all that import)",
    )
    p.add_argument(
        "--shapes",
        nargs="+",
        type=_cases.parse_shape,
        metavar="RxC",
        help="shapes ROWSxCLASSES (default: 32x10 ... 64x262144)",
    )
    p.add_argument(
        "--dtypes",
        nargs="+",
        choices=_cases.DTYPES,
        help="dtypes (default: float32 float64; --quick: float32)",
    )
    p.add_argument(
        "--functions",
        nargs="+",
        choices=sorted({f for fs in _cases.FUNCTIONS.values() for f in fs}),
        help="functions (default: all)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=_ROOT / "benchmarks" / "results",
        help="folder for latest.json, latest.md and bench_cpu.png",
    )
    p.add_argument(
        "--plot", type=Path, help="also write the PNG here (e.g. docs/img/bench_cpu.png)"
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="report wall time (default) or this process's CPU time (robust to other "
        "processes on a shared machine); both are recorded in the JSON",
    )
    p.add_argument(
        "--docs",
        type=Path,
        help="also write the README section (Markdown) here, e.g. docs/performance.md; the plot "
        "goes to img/bench_cpu.png next to it unless --plot says otherwise",
    )
    p.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="measure nothing: re-render tables, plot and --docs from a results JSON",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument(
        "--no-without",
        action="store_true",
        help="skip the second run without the fast extra (XSOFTMAX_NO_NUMBA=1) and the "
        "first-call measurements",
    )
    p.add_argument(
        "--light",
        action="store_true",
        help="the rounds of --quick (fewer, shorter) on the selected shapes and dtypes; the run "
        "without the fast extra uses it (the generic torch path takes seconds per call)",
    )
    p.add_argument("--child-json", type=Path, help=argparse.SUPPRESS)
    p.add_argument(
        "--placeholder",
        action="store_true",
        help="time a naive array-API implementation instead of xsoftmax "
        "(checks the harness before the library exists)",
    )
    args = p.parse_args(argv)
    if args.shapes is None:
        args.shapes = list(_cases.SHAPES_QUICK if args.quick else _cases.SHAPES_DEFAULT)
    if args.dtypes is None:
        args.dtypes = ["float32"] if args.quick else list(_cases.DTYPES)
    return args


def _run_without_extra(argv: Sequence[str] | None) -> dict[str, Any]:
    """The same run (NumPy and torch) in a child process with ``XSOFTMAX_NO_NUMBA=1``."""
    import tempfile

    given = list(sys.argv[1:] if argv is None else argv)
    libs = [lib for lib in ("numpy", "torch") if lib in parse_args(given).libs]
    if not libs:
        return {"cases": [], "memory": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "without.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), *given]
        cmd += ["--libs", *libs, "--no-memory", "--light", "--child-json", str(out)]
        env = {**os.environ, "XSOFTMAX_NO_NUMBA": "1"}
        print("\nrunning again without the fast extra (XSOFTMAX_NO_NUMBA=1)", flush=True)
        subprocess.run(cmd, env=env, check=True)
        return json.loads(out.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: measure, print the tables, write JSON, Markdown, the plot and the docs."""
    _scrub_environment()
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    from benchmarks._plot import plot

    args = parse_args(argv)
    from_file = args.from_json
    results = json.loads(from_file.read_text()) if from_file is not None else run(args)
    if args.child_json is not None:  # the run without the extra, for the parent
        args.child_json.write_text(json.dumps(results) + "\n")
        return 0
    if from_file is None and not args.no_without:
        results["first_call"] = {
            "with": first_call_ms(no_numba=False),
            "without": first_call_ms(no_numba=True),
        }
        results["without_extra"] = _run_without_extra(argv)
        results["goals"] = evaluate_goals(results, args.dtypes)
    print()
    print(report(results, markdown=False))
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if args.from_json is None:
        (args.out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
        written.append(args.out / "latest.json")
    (args.out / "latest.md").write_text(
        describe(results["meta"]) + "\n\n" + report(results, markdown=True) + "\n"
    )
    written.append(args.out / "latest.md")
    meta = results["meta"]
    title = (
        f"xsoftmax CPU benchmark, {meta['date']}, {meta['cpu']} ({meta['cores']} cores), "
        f"torch 1 thread, medians of interleaved rounds ({meta['timing']['clock']} clock)"
    )
    plots: list[Path] = [args.out / "bench_cpu.png"]
    if args.plot is None and args.docs is not None:
        args.plot = args.docs.parent / "img" / "bench_cpu.png"
    if args.plot is not None:
        plots.append(args.plot)
    for target in plots:
        plot(results["cases"], target, title)
    written += plots
    if args.docs is not None:
        image = os.path.relpath(plots[-1], args.docs.parent)
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        args.docs.write_text(docs_section(results, image))
        written.append(args.docs)
    elapsed = meta.get("elapsed_s", 0.0)
    print(f"\nwrote {', '.join(map(str, written))} (measured in {elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
