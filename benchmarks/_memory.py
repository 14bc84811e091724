"""Peak extra memory of one call.

NumPy reports its data allocations to :mod:`tracemalloc`, so the peak of the traced
memory during a call, over what was allocated before it, is the call's peak extra
memory: scratch arrays plus the output. PyTorch CPU tensors are not traced there;
for them the profiler's ``[memory]`` events (signed allocation sizes, in time
order) give the same running peak.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Peak:
    """Peak memory a call allocated, in bytes, beyond what existed before it.

    Attributes
    ----------
    peak_bytes : int
        Highest total of live allocations made during the call, output included.
    output_bytes : int
        Size of the returned array's data (0 if not an array).
    """

    peak_bytes: int
    output_bytes: int

    @property
    def scratch_bytes(self) -> int:
        """Peak minus the output: temporaries that did not survive the call."""
        return max(self.peak_bytes - self.output_bytes, 0)

    def to_dict(self, input_bytes: int) -> dict[str, float | int]:
        """A JSON-ready summary with ratios to ``input_bytes``."""
        return {
            "peak_bytes": self.peak_bytes,
            "output_bytes": self.output_bytes,
            "peak_over_input": self.peak_bytes / input_bytes,
            "scratch_over_input": self.scratch_bytes / input_bytes,
        }


def _nbytes(out: Any) -> int:
    """Bytes of an array result (tensors included), 0 for anything else."""
    if hasattr(out, "nbytes"):
        return int(out.nbytes)
    if hasattr(out, "element_size") and hasattr(out, "numel"):
        return int(out.element_size() * out.numel())
    return 0


def numpy_peak(fn: Callable[[], Any]) -> Peak:
    """Peak extra memory of ``fn()`` for NumPy, through :mod:`tracemalloc`.

    Parameters
    ----------
    fn : callable
        Zero-argument call whose inputs already exist.

    Returns
    -------
    Peak
        The call's peak allocation and the size of its output.
    """
    gc.collect()
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not already:
            tracemalloc.stop()
    return Peak(peak - before, _nbytes(out))


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ start/stop lines)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def torch_peak(fn: Callable[[], Any]) -> Peak | None:
    """Peak extra CPU memory of ``fn()`` for PyTorch, from the profiler's memory events.

    Parameters
    ----------
    fn : callable
        Zero-argument call whose input tensors already exist.

    Returns
    -------
    Peak or None
        ``None`` where this torch build's profiler gives no memory events.
    """
    try:
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        return None
    gc.collect()
    try:
        with (
            _stderr_silenced(),
            profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
        ):
            out = fn()
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        steps = sorted((e.start_ns(), e.nbytes()) for e in events)
    except (AttributeError, RuntimeError):
        return None
    if not steps:
        return None
    live = peak = 0
    for _, nbytes in steps:
        live += nbytes
        peak = max(peak, live)
    return Peak(peak, _nbytes(out))
