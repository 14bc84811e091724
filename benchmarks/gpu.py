"""GPU benchmark: xsoftmax on CuPy and torch CUDA against the native kernels and a copy.

Self-contained: needs only ``xsoftmax`` (with ``array-api-compat``) and CuPy and/or
PyTorch with CUDA; nothing else from this repository. Run on a GPU machine::

    python benchmarks/gpu.py                       # every GPU library that imports
    python benchmarks/gpu.py --libs torch --out /tmp/gpu

Times ``log_softmax`` and ``cross_entropy`` (integer targets, mean) at
(8192, 32000) and (65536, 1000), float32 and bfloat16 (CuPy has no bfloat16:
float16 there), with CUDA events, in interleaved rounds (rotating order), median
over rounds. Each function's effective bandwidth counts the bytes it must move at
least (log_softmax: read and write the logits; cross_entropy: read the logits and
targets) and is compared with the device-to-device copy bandwidth of the same input
measured in the same run (goal: >= 70%). Anchors: ``torch.log_softmax`` /
``F.cross_entropy``; ``cupyx.scipy.special.log_softmax`` where CuPy has it.

Without a GPU it prints why and exits with status 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHAPES = ((8192, 32000), (65536, 1000))
DRY_RUN_SHAPES = ((64, 3200), (1024, 100))
GOAL = 0.70


@dataclass
class Contender:
    """One timed call and the bytes it must move at least."""

    name: str
    fn: Callable[[], object]
    bytes_moved: int


class _Backend:
    """What differs between CuPy, torch CUDA (and the CPU dry run)."""

    name = ""

    def synchronize(self) -> None:
        raise NotImplementedError

    def time_inner(self, fn: Callable[[], object], inner: int) -> float:
        """Seconds for ``inner`` back-to-back calls, by device events."""
        raise NotImplementedError

    def contenders(self, xs: Any, shape: tuple[int, int], dtype: str) -> list[Contender]:
        raise NotImplementedError

    def peak_extra(self, fn: Callable[[], object]) -> int | None:
        """Peak device memory allocated by ``fn()`` (output included), if known."""
        return None

    def describe(self) -> str:
        raise NotImplementedError


class _Torch(_Backend):
    def __init__(self, device: str) -> None:
        import torch
        import torch.nn.functional as F

        self.torch, self.F, self.device = torch, F, device
        self.name = "torch-cuda" if device == "cuda" else "torch-cpu (dry run)"
        if device == "cpu":
            torch.set_num_threads(1)

    def synchronize(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def time_inner(self, fn: Callable[[], object], inner: int) -> float:
        if self.device != "cuda":
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            return time.perf_counter() - t0
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def contenders(self, xs: Any, shape: tuple[int, int], dtype: str) -> list[Contender]:
        torch, F = self.torch, self.F
        rows, classes = shape
        gen = torch.Generator(device=self.device).manual_seed(0)
        x32 = torch.randn(shape, device=self.device, dtype=torch.float32, generator=gen)
        x = (3.0 * x32).to(getattr(torch, dtype))
        del x32
        t = torch.randint(0, classes, (rows,), device=self.device, generator=gen)
        dst = torch.empty_like(x)
        n = x.numel() * x.element_size()
        ce_bytes = n + t.numel() * t.element_size()
        return [
            Contender("copy", lambda: dst.copy_(x), 2 * n),
            Contender("log_softmax: xsoftmax", lambda: xs.log_softmax(x), 2 * n),
            Contender("log_softmax: torch.log_softmax", lambda: torch.log_softmax(x, -1), 2 * n),
            Contender("cross_entropy: xsoftmax", lambda: xs.cross_entropy(x, t), ce_bytes),
            Contender("cross_entropy: F.cross_entropy", lambda: F.cross_entropy(x, t), ce_bytes),
        ]

    def peak_extra(self, fn: Callable[[], object]) -> int | None:
        if self.device != "cuda":
            return None
        cuda = self.torch.cuda
        cuda.synchronize()
        cuda.reset_peak_memory_stats()
        before = cuda.memory_allocated()
        out = fn()
        cuda.synchronize()
        peak = cuda.max_memory_allocated() - before
        del out
        return int(peak)

    def describe(self) -> str:
        if self.device != "cuda":
            return "CPU (dry run, torch one thread)"
        props = self.torch.cuda.get_device_properties(0)
        return (
            f"{props.name}, {props.total_memory / 2**30:.0f} GiB, torch {self.torch.__version__}"
        )


class _Cupy(_Backend):
    name = "cupy"

    def __init__(self) -> None:
        import cupy

        self.cp = cupy
        try:
            from cupyx.scipy import special

            self.special: Any = special if hasattr(special, "log_softmax") else None
        except ImportError:
            self.special = None

    def synchronize(self) -> None:
        self.cp.cuda.get_current_stream().synchronize()

    def time_inner(self, fn: Callable[[], object], inner: int) -> float:
        start, end = self.cp.cuda.Event(), self.cp.cuda.Event()
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return self.cp.cuda.get_elapsed_time(start, end) / 1e3

    def contenders(self, xs: Any, shape: tuple[int, int], dtype: str) -> list[Contender]:
        cp = self.cp
        rows, classes = shape
        cp.random.seed(0)
        x = (3.0 * cp.random.standard_normal(shape, dtype=cp.float32)).astype(dtype)
        t = cp.random.randint(0, classes, size=rows, dtype=cp.int64)
        dst = cp.empty_like(x)
        n = x.nbytes
        ce_bytes = n + t.nbytes
        out = [
            Contender("copy", lambda: cp.copyto(dst, x), 2 * n),
            Contender("log_softmax: xsoftmax", lambda: xs.log_softmax(x), 2 * n),
        ]
        if self.special is not None:
            special = self.special
            out.append(
                Contender(
                    "log_softmax: cupyx log_softmax",
                    lambda: special.log_softmax(x, axis=-1),
                    2 * n,
                )
            )
        out.append(Contender("cross_entropy: xsoftmax", lambda: xs.cross_entropy(x, t), ce_bytes))
        return out

    def describe(self) -> str:
        props = self.cp.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"{name}, cupy {self.cp.__version__}"


def _half_dtype(backend: _Backend) -> str:
    """bfloat16 where the library has it, else float16."""
    if isinstance(backend, _Cupy):
        return "bfloat16" if hasattr(backend.cp, "bfloat16") else "float16"
    return "bfloat16"


def find_backends(requested: Sequence[str], dry_run: bool) -> tuple[list[_Backend], list[str]]:
    """The GPU libraries that can run here, and a reason for each that cannot."""
    found: list[_Backend] = []
    why: list[str] = []
    if dry_run:
        return [_Torch("cpu")], why
    if "torch" in requested:
        try:
            import torch

            if torch.cuda.is_available():
                found.append(_Torch("cuda"))
            else:
                why.append(f"torch {torch.__version__}: torch.cuda.is_available() is False")
        except ImportError as exc:
            why.append(f"torch: cannot import ({exc})")
    if "cupy" in requested:
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                found.append(_Cupy())
            else:
                why.append("cupy: no CUDA device")
        except ImportError as exc:
            why.append(f"cupy: cannot import ({exc})")
        except Exception as exc:  # CUDARuntimeError when there is no driver or device
            why.append(f"cupy: no usable CUDA device ({type(exc).__name__}: {exc})")
    return found, why


def time_interleaved(
    backend: _Backend, contenders: list[Contender], rounds: int, min_sample_s: float
) -> dict[str, float]:
    """Median seconds per call of each contender over interleaved, rotating rounds."""
    for c in contenders:  # warm up: compile kernels, fill caches and memory pools
        c.fn()
        c.fn()
    backend.synchronize()
    inner: dict[str, int] = {}
    for c in contenders:
        n = 1
        while backend.time_inner(c.fn, n) < min_sample_s and n < 4096:
            n *= 2
        inner[c.name] = n
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    for r in range(rounds):
        k = r % len(contenders)
        for c in contenders[k:] + contenders[:k]:
            samples[c.name].append(backend.time_inner(c.fn, inner[c.name]) / inner[c.name])
    return {name: statistics.median(s) for name, s in samples.items()}


def _import_xsoftmax() -> Any:
    """The installed xsoftmax, else the one in the checkout this script sits in."""
    try:
        import xsoftmax
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        import xsoftmax
    return xsoftmax


def run(args: argparse.Namespace) -> dict[str, Any] | None:
    """Measure every backend, shape and dtype; None if there is no GPU."""
    backends, why = find_backends(args.libs, args.cpu_dry_run)
    if not backends:
        print("no GPU available, nothing to measure (exit 0):")
        for line in why:
            print(f"  {line}")
        return None
    xsoftmax = _import_xsoftmax()
    shapes = DRY_RUN_SHAPES if args.cpu_dry_run else SHAPES
    rows_out: list[dict[str, Any]] = []
    devices: dict[str, str] = {}
    for backend in backends:
        devices[backend.name] = backend.describe()
        print(f"{backend.name}: {devices[backend.name]}", flush=True)
        for shape in shapes:
            for dtype in ("float32", _half_dtype(backend)):
                contenders = backend.contenders(xsoftmax, shape, dtype)
                med = time_interleaved(backend, contenders, args.rounds, args.min_sample_s)
                copy_bw = contenders[0].bytes_moved / med["copy"]
                for c in contenders:
                    bw = c.bytes_moved / med[c.name]
                    row = {
                        "library": backend.name,
                        "shape": list(shape),
                        "dtype": dtype,
                        "contender": c.name,
                        "median_s": med[c.name],
                        "bytes": c.bytes_moved,
                        "GB_per_s": bw / 1e9,
                        "fraction_of_copy": bw / copy_bw,
                        "goal_met": None
                        if c.name == "copy" or "xsoftmax" not in c.name
                        else bw / copy_bw >= GOAL,
                    }
                    if "xsoftmax" in c.name and not args.no_memory:
                        peak = backend.peak_extra(c.fn)
                        row["peak_extra_over_input"] = (
                            None if peak is None else peak / (contenders[0].bytes_moved / 2)
                        )
                    rows_out.append(row)
                    _print_row(row)
                del contenders
    return {
        "date": time.strftime("%Y-%m-%d"),
        "devices": devices,
        "rounds": args.rounds,
        "goal_fraction_of_copy": GOAL,
        "dry_run": args.cpu_dry_run,
        "rows": rows_out,
    }


def _print_row(row: dict[str, Any]) -> None:
    shape = "x".join(map(str, row["shape"]))
    met = {None: "", True: "met", False: "NOT MET"}[row["goal_met"]]
    mem = row.get("peak_extra_over_input")
    mem_text = "" if mem is None else f"  peak {mem:.2f}x input"
    print(
        f"{row['library']:<19} {shape:<11} {row['dtype']:<9} {row['contender']:<32} "
        f"{row['median_s'] * 1e3:9.3f} ms {row['GB_per_s']:8.1f} GB/s "
        f"{100 * row['fraction_of_copy']:6.1f}% of copy  {met}{mem_text}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--libs", nargs="+", choices=("torch", "cupy"), default=["torch", "cupy"])
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (median over them)")
    p.add_argument("--min-sample-s", type=float, default=5e-3, help="least seconds per sample")
    p.add_argument("--out", type=Path, help="folder for gpu_latest.json")
    p.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    p.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="run the torch path on the CPU at small shapes (checks this script, no GPU)",
    )
    args = p.parse_args(argv)
    results = run(args)
    if results is None:
        return 0
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "gpu_latest.json"
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
