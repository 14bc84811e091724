"""Accuracy harness: xsoftmax and the anchors against a correctly rounded mpmath reference.

Usage::

    python benchmarks/accuracy.py [--quick] [--out FILE.md] [--failures FILE.npz]

For every function (log_softmax, softmax, logsumexp, cross_entropy with integer
targets and ``reduction="none"``), dtype (float32, float64), input kind (see
``_accuracy_inputs``) and library, the error of every result is measured in ulps of
the dtype against the mpmath reference of ``_mpref`` (200 bits on the exact inputs,
correctly rounded), and the table shows the maximum and the 99th percentile.

Units: ``|result - reference| / ulp(reference)`` for log_softmax, softmax (a
relative error) and cross_entropy; ``|result - reference| / ulp(max(|reference|,
|row max|))`` for logsumexp. Results whose scale is below ``2**(emin + p)`` (float32:
2**-102, float64: 2**-969) are excluded: XLA on CPU flushes subnormals.

Libraries, all on the *same* rows: xsoftmax on NumPy, PyTorch, JAX (x64 enabled)
and array-api-strict; the anchors ``torch`` (``torch.log_softmax``,
``torch.softmax``, ``torch.logsumexp``, ``F.cross_entropy``), ``scipy``
(``scipy.special``; cross entropy as ``-log_softmax[t]``), ``jax`` (``jax.nn``;
cross entropy as ``-log_softmax[t]``) and ``optax``
(``softmax_cross_entropy_with_integer_labels``). A library that does not import is
skipped with a note.

Every xsoftmax result above 4 ulps, or worse than the best anchor on the same kind,
is listed after the table; ``--failures`` saves those rows (logits, target, result,
reference) to an ``.npz`` file.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _accuracy_inputs import DTYPES, KINDS, Case, cases
from _mpref import (
    BatchReference,
    ReferenceCache,
    batch_reference,
    cross_entropy_reference,
    ulp_errors,
)

FUNCTIONS = ("log_softmax", "softmax", "logsumexp", "cross_entropy")
GOAL_ULPS = 4.0
XSOFTMAX_BACKENDS = ("numpy", "torch", "jax", "array-api-strict")

Fn = Callable[[np.ndarray, np.ndarray], Any]


@dataclass
class Library:
    """A column of the table: a name and, per function, ``f(x, target) -> array``."""

    name: str
    funcs: dict[str, Fn]
    is_xsoftmax: bool = False
    versions: str = ""


def _take(logp: np.ndarray, t: np.ndarray) -> np.ndarray:
    return -np.take_along_axis(np.asarray(logp), t[:, None], axis=1)[:, 0]


def _xsoftmax_library(backend: str) -> Library:
    import xsoftmax

    if backend == "numpy":
        to, to_int, back = np.asarray, np.asarray, np.asarray
        version = f"numpy {np.__version__}"
    elif backend == "torch":
        import torch

        to = to_int = torch.from_numpy

        def back(a: Any) -> np.ndarray:
            return a.detach().cpu().numpy()

        version = f"torch {torch.__version__}"
    elif backend == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        to = to_int = jnp.asarray
        back = np.asarray
        version = f"jax {jax.__version__}"
    elif backend == "array-api-strict":
        import array_api_strict as xp

        to = to_int = xp.asarray

        def back(a: Any) -> np.ndarray:
            return np.asarray(np.from_dlpack(a))

        version = f"array-api-strict {xp.__version__}"
    else:
        msg = f"unknown xsoftmax backend {backend!r}"
        raise ValueError(msg)

    funcs: dict[str, Fn] = {
        "log_softmax": lambda x, t: back(xsoftmax.log_softmax(to(x), axis=-1)),
        "softmax": lambda x, t: back(xsoftmax.softmax(to(x), axis=-1)),
        "logsumexp": lambda x, t: back(xsoftmax.logsumexp(to(x), axis=-1)),
        "cross_entropy": lambda x, t: back(
            xsoftmax.cross_entropy(to(x), to_int(t), reduction="none")
        ),
    }
    return Library(f"xsoftmax[{backend}]", funcs, is_xsoftmax=True, versions=version)


def _torch_library() -> Library:
    import torch
    import torch.nn.functional as F

    def run(f: Callable[..., Any]) -> Fn:
        return lambda x, t: f(torch.from_numpy(x), torch.from_numpy(t)).numpy()

    return Library(
        "torch",
        {
            "log_softmax": run(lambda x, t: torch.log_softmax(x, dim=-1)),
            "softmax": run(lambda x, t: torch.softmax(x, dim=-1)),
            "logsumexp": run(lambda x, t: torch.logsumexp(x, dim=-1)),
            "cross_entropy": run(lambda x, t: F.cross_entropy(x, t, reduction="none")),
        },
        versions=f"torch {torch.__version__}",
    )


def _scipy_library() -> Library:
    import scipy
    from scipy import special

    return Library(
        "scipy",
        {
            "log_softmax": lambda x, t: special.log_softmax(x, axis=-1),
            "softmax": lambda x, t: special.softmax(x, axis=-1),
            "logsumexp": lambda x, t: special.logsumexp(x, axis=-1),
            "cross_entropy": lambda x, t: _take(special.log_softmax(x, axis=-1), t),
        },
        versions=f"scipy {scipy.__version__}",
    )


def _jax_library() -> Library:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def run(f: Callable[..., Any]) -> Fn:
        return lambda x, t: np.asarray(f(jnp.asarray(x), t))

    return Library(
        "jax",
        {
            "log_softmax": run(lambda x, t: jax.nn.log_softmax(x, axis=-1)),
            "softmax": run(lambda x, t: jax.nn.softmax(x, axis=-1)),
            "logsumexp": run(lambda x, t: jax.nn.logsumexp(x, axis=-1)),
            "cross_entropy": lambda x, t: _take(
                np.asarray(jax.nn.log_softmax(jnp.asarray(x), axis=-1)), t
            ),
        },
        versions=f"jax {jax.__version__}",
    )


def _optax_library() -> Library:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    def ce(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        f = optax.softmax_cross_entropy_with_integer_labels
        return np.asarray(f(jnp.asarray(x), jnp.asarray(t)))

    return Library("optax", {"cross_entropy": ce}, versions=f"optax {optax.__version__}")


def load_libraries(names: list[str] | None = None) -> tuple[list[Library], list[str]]:
    """The libraries to measure (all by default) and a note for each one skipped."""
    loaders: dict[str, Callable[[], Library]] = {
        f"xsoftmax[{b}]": (lambda b=b: _xsoftmax_library(b)) for b in XSOFTMAX_BACKENDS
    }
    loaders |= {
        "torch": _torch_library,
        "scipy": _scipy_library,
        "jax": _jax_library,
        "optax": _optax_library,
    }
    if names is None:
        names = list(loaders)
    unknown = [n for n in names if n not in loaders]
    if unknown:
        msg = f"--libs: unknown libraries {unknown}; known: {list(loaders)}"
        raise SystemExit(msg)
    libs, notes = [], []
    for name in names:
        try:
            libs.append(loaders[name]())
        except Exception as exc:  # a missing or broken library is a note, not a stop
            notes.append(f"{name} skipped: {type(exc).__name__}: {exc}")
    return libs, notes


@dataclass
class Worst:
    """The worst result of one cell: its error and the row it came from."""

    err: float = -1.0
    logits: np.ndarray | None = None
    target: int = 0
    computed: np.ndarray | None = None
    reference: np.ndarray | None = None
    n_classes: int = 0


@dataclass
class Cell:
    """Errors of one (function, dtype, kind, library)."""

    errors: list[np.ndarray] = field(default_factory=list)
    excluded: int = 0
    worst: Worst = field(default_factory=Worst)
    failed: str = ""  # the exception, if the library raised

    def add(
        self,
        err: np.ndarray,
        x: np.ndarray,
        t: np.ndarray,
        computed: np.ndarray,
        reference: np.ndarray,
    ) -> None:
        keep = ~np.isnan(err)
        self.excluded += int(err.size - keep.sum())
        self.errors.append(err[keep].ravel())
        if not keep.any():
            return
        flat = np.where(keep, err, -1.0)
        idx = np.unravel_index(int(np.argmax(flat)), flat.shape)
        if flat[idx] > self.worst.err:
            row = idx[0]
            self.worst = Worst(
                float(flat[idx]),
                x[row].copy(),
                int(t[row]),
                np.atleast_1d(computed[row]).copy(),
                np.atleast_1d(reference[row]).copy(),
                x.shape[1],
            )

    def stats(self) -> tuple[float, float] | None:
        """(max, p99) of the errors, or None when there is none."""
        if not self.errors:
            return None
        e = np.concatenate(self.errors)
        if e.size == 0:
            return None
        return float(e.max()), float(np.percentile(e, 99, method="higher"))


def _errors(
    func: str, out: np.ndarray, ref: BatchReference, x: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Errors in ulps of ``out`` and the reference they are measured against."""
    dtype = x.dtype
    out = np.asarray(out, dtype=np.float64)
    if func == "log_softmax":
        r = ref.log_softmax
        return ulp_errors(out, r, dtype), r
    if func == "softmax":
        r = ref.softmax
        return ulp_errors(out, r, dtype), r
    if func == "logsumexp":
        r = ref.logsumexp
        return ulp_errors(out, r, dtype, scale=ref.row_max), r
    r = cross_entropy_reference(ref, t)
    return ulp_errors(out, r, dtype), r


def measure(
    case_list: list[Case], libs: list[Library], seed: int, processes: int, log: Callable
) -> tuple[dict[tuple[str, str, str, str], Cell], ReferenceCache]:
    """Run every library on every case; cells keyed by (function, dtype, kind, library)."""
    data = [(c, *c.sample(seed)) for c in case_list]
    cache = ReferenceCache()
    t0 = time.perf_counter()
    n_elems = sum(x.size for _, x, _ in data)
    log(
        f"reference: {sum(len(x) for _, x, _ in data)} rows, {n_elems} entries, {processes} process(es)"
    )
    cache.fill((np.ascontiguousarray(r) for _, x, _ in data for r in x), processes=processes)
    log(f"reference done in {time.perf_counter() - t0:.1f} s")
    cells: dict[tuple[str, str, str, str], Cell] = {}
    for case, x, t in data:
        ref = batch_reference(x, cache)
        for lib in libs:
            for func, f in lib.funcs.items():
                cell = cells.setdefault((func, case.dtype, case.kind, lib.name), Cell())
                try:
                    out = np.asarray(f(x, t))
                except Exception as exc:
                    cell.failed = f"{type(exc).__name__}: {exc}"[:200]
                    continue
                err, r = _errors(func, out, ref, x, t)
                cell.add(err, x, t, out.astype(np.float64), r)
    log(f"libraries done in {time.perf_counter() - t0:.1f} s")
    return cells, cache


def fmt_ulps(v: float) -> str:
    """Compact ulps: 0, 0.5, 3, 28, 1.1e+05, inf."""
    if math.isinf(v):
        return "inf"
    if v == 0:
        return "0"
    if v < 100:
        return f"{v:.3g}"
    return f"{v:.2g}"


def _cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "—"
    if cell.failed:
        return "error"
    st = cell.stats()
    if st is None:
        return "—"
    return f"{fmt_ulps(st[0])} / {fmt_ulps(st[1])}"


def _worst_over(cells: dict, func: str, dtype: str, lib: str) -> Cell | None:
    merged = Cell()
    found = False
    for kind in KINDS:
        c = cells.get((func, dtype, kind, lib))
        if c is None:
            continue
        found = True
        if c.failed:
            merged.failed = c.failed
        merged.errors.extend(c.errors)
    return merged if found else None


def tables(cells: dict, libs: list[Library]) -> str:
    """The summary table (worst over kinds) and the per-kind table, in markdown."""
    names = [lib.name for lib in libs]
    head = "| function | dtype | " + " | ".join(names) + " |\n"
    rule = "| --- | --- | " + " | ".join("---:" for _ in names) + " |\n"
    out = ["### Worst over all input kinds: max / p99 ulps\n\n", head, rule]
    for func in FUNCTIONS:
        for dtype in DTYPES:
            row = [_cell_text(_worst_over(cells, func, dtype, n)) for n in names]
            out.append(f"| {func} | {dtype} | " + " | ".join(row) + " |\n")
    out += [
        "\n### Per input kind: max / p99 ulps\n\n",
        "| function | dtype | kind | " + " | ".join(names) + " |\n",
        "| --- | --- | --- | " + " | ".join("---:" for _ in names) + " |\n",
    ]
    for func in FUNCTIONS:
        for dtype in DTYPES:
            for kind in KINDS:
                if not any((func, dtype, kind, n) in cells for n in names):
                    continue
                row = [_cell_text(cells.get((func, dtype, kind, n))) for n in names]
                out.append(f"| {func} | {dtype} | {kind} | " + " | ".join(row) + " |\n")
    return "".join(out)


@dataclass
class Failure:
    """An xsoftmax cell that raised, is above the goal, or is worse than the best anchor."""

    key: tuple[str, str, str, str]
    max_ulps: float
    best_anchor: float
    above_goal: bool
    why: str
    worst: Worst


def failures(cells: dict, libs: list[Library]) -> list[Failure]:
    """Every xsoftmax cell that raised, is above :data:`GOAL_ULPS` or is worse than the best anchor."""
    anchors = [lib.name for lib in libs if not lib.is_xsoftmax]
    found = []
    for key, cell in cells.items():
        func, dtype, kind, name = key
        if not name.startswith("xsoftmax"):
            continue
        if cell.failed:
            found.append(
                Failure(key, math.inf, math.nan, True, f"raised {cell.failed}", cell.worst)
            )
            continue
        st = cell.stats()
        if st is None:
            continue
        anchor_max = [
            s[0]
            for a in anchors
            if (c := cells.get((func, dtype, kind, a))) is not None and (s := c.stats())
        ]
        best = min(anchor_max) if anchor_max else math.inf
        why = []
        if st[0] > GOAL_ULPS:
            why.append(f"above {GOAL_ULPS:g} ulps")
        if st[0] > best:
            why.append("worse than the best anchor")
        if why:
            found.append(Failure(key, st[0], best, st[0] > GOAL_ULPS, ", ".join(why), cell.worst))
    return found


def _failure_line(i: int, f: Failure) -> str:
    func, dtype, kind, name = f.key
    w = f.worst
    line = (
        f"- [{i}] {func} {dtype} {kind} {name}: max {fmt_ulps(f.max_ulps)} ulps"
        f" ({f.why}; best anchor {fmt_ulps(f.best_anchor)})"
    )
    if w.logits is not None and w.computed is not None and w.reference is not None:
        j = int(np.argmax(np.abs(w.computed - w.reference))) if w.computed.size > 1 else 0
        line += (
            f"; worst row: C={w.n_classes}, target={w.target}, entry {j}:"
            f" got {float(w.computed[j])!r}, want {float(w.reference[j])!r}"
        )
    return line + "\n"


def failure_text(found: list[Failure]) -> str:
    """Markdown lists of the failures (goal missed; worse than an anchor), each with its worst row."""
    goal = [(i, f) for i, f in enumerate(found) if f.above_goal]
    anchor = [(i, f) for i, f in enumerate(found) if not f.above_goal]
    out = ["\n### xsoftmax against the goal\n\n"]
    if goal:
        out.append(f"Cells above {GOAL_ULPS:g} ulps (or raising):\n\n")
        out += [_failure_line(i, f) for i, f in goal]
    else:
        out.append(f"Every xsoftmax cell is within {GOAL_ULPS:g} ulps.\n")
    if anchor:
        out.append(
            f"\nCells within {GOAL_ULPS:g} ulps but with a larger max than the best anchor"
            " on the same kind:\n\n"
        )
        out += [_failure_line(i, f) for i, f in anchor]
    else:
        out.append("\nNo xsoftmax cell has a larger max than the best anchor on the same kind.\n")
    return "".join(out)


def save_failures(path: str, found: list[Failure]) -> None:
    """Save the worst row of every failure to ``path`` (``.npz``)."""
    arrays: dict[str, Any] = {}
    for i, f in enumerate(found):
        w = f.worst
        if w.logits is None:
            continue
        arrays[f"f{i}_logits"] = w.logits
        arrays[f"f{i}_target"] = np.array(w.target)
        arrays[f"f{i}_computed"] = w.computed
        arrays[f"f{i}_reference"] = w.reference
        arrays[f"f{i}_info"] = np.array(
            f"{' '.join(f.key)}: max {f.max_ulps:g} ulps, {f.why}; best anchor {f.best_anchor:g}"
        )
    np.savez(path, **arrays)


def header(
    libs: list[Library], notes: list[str], quick: bool, seed: int, case_list: list[Case]
) -> str:
    """What was run, on what."""
    import mpmath

    n_rows = sum(c.n_rows for c in case_list)
    n_entries = sum(c.n_rows * c.n_classes for c in case_list)
    kinds = [k for k in KINDS if any(c.kind == k for c in case_list)]
    lines = [
        "## Accuracy against a correctly rounded mpmath reference\n\n",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU core(s), {platform.system()}, Python {platform.python_version()}\n",
        f"- libraries: {', '.join(sorted({lib.versions for lib in libs if lib.versions}))}, mpmath {mpmath.__version__}\n",
        f"- sample: {'quick' if quick else 'default'}, seed {seed}, {n_rows} rows,"
        f" {n_entries} entries; kinds: {', '.join(kinds)}\n",
        "- cells: max / p99 of the error in ulps of the dtype; logsumexp in ulps of max(|result|, |row max|); results below 2**(emin + p) excluded; '—' not provided by the library\n",
    ]
    lines += [f"- note: {n}\n" for n in notes]
    return "".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the harness; returns 1 when an xsoftmax cell is above the goal or raises."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small sample (about 30 s on 2 cores)")
    p.add_argument("--out", help="also write the markdown report to this file")
    p.add_argument("--failures", help="save the failing xsoftmax rows to this .npz file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--libs", help="comma-separated libraries (default: all that import)")
    p.add_argument("--kinds", help=f"comma-separated subset of {','.join(KINDS)}")
    p.add_argument("--dtypes", help="comma-separated subset of float32,float64")
    p.add_argument(
        "--processes",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes computing the reference (default: min(2, CPUs))",
    )
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    case_list = cases(quick=args.quick)
    if args.kinds:
        case_list = [c for c in case_list if c.kind in args.kinds.split(",")]
    if args.dtypes:
        case_list = [c for c in case_list if c.dtype in args.dtypes.split(",")]
    libs, notes = load_libraries(args.libs.split(",") if args.libs else None)
    for n in notes:
        log(n)
    cells, _ = measure(case_list, libs, args.seed, args.processes, log)
    found = failures(cells, libs)
    report = header(libs, notes, args.quick, args.seed, case_list) + tables(cells, libs)
    report += failure_text(found)
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    if args.failures:
        save_failures(args.failures, found)
        log(f"saved {len(found)} failing rows to {args.failures}")
    return 1 if any(f.above_goal for f in found) else 0


if __name__ == "__main__":
    raise SystemExit(main())
