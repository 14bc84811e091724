"""Side-by-side timing: interleaved rounds, medians.

Every contender of a case runs once per round, in an order that rotates from round
to round (round ``r`` starts with contender ``r mod n``), so that slow drifts of the
machine (frequency, cache, other processes) fall on every contender alike. One
sample is ``inner`` back-to-back calls, with ``inner`` chosen per contender so that
a sample lasts at least ``min_sample_s`` (a few microseconds per call cannot be
timed one call at a time). The reported time is the median over rounds of the
time per call.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to time one case.

    Parameters
    ----------
    rounds_min, rounds_max : int
        At least ``rounds_min`` rounds; more while the case's time budget lasts,
        but never more than ``rounds_max``.
    budget_s : float
        Seconds a case may spend in its rounds once ``rounds_min`` are done.
    min_sample_s : float
        Least duration of one sample; sets each contender's inner repeat count.
    warmup : int
        Untimed calls of each contender before calibration (JIT compilation,
        first-touch page faults, lazy imports).
    clock : {"wall", "cpu"}
        Which clock the medians are reported on (both are recorded).
    """

    rounds_min: int = 7
    rounds_max: int = 31
    budget_s: float = 2.0
    min_sample_s: float = 2e-3
    warmup: int = 2
    clock: str = "wall"


@dataclass
class Timing:
    """Per-call times of one contender, one sample per round (seconds).

    ``wall`` is elapsed time; ``cpu`` is the CPU time of this process (every
    thread, user and system) over the same calls. On a quiet machine they agree
    for single-threaded work; ``cpu`` well below ``wall`` means the process was
    waiting (other processes on the cores, or I/O).
    """

    name: str
    inner: int
    clock: str = "wall"
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def samples(self) -> list[float]:
        """The samples of the reported clock."""
        return self.cpu if self.clock == "cpu" else self.wall

    @property
    def median(self) -> float:
        """Median time per call over rounds, on the reported clock."""
        return statistics.median(self.samples)

    @property
    def iqr(self) -> tuple[float, float]:
        """First and third quartile of the time per call over rounds."""
        if len(self.samples) < 2:
            return (self.samples[0], self.samples[0])
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return (q[0], q[2])

    def to_dict(self) -> dict[str, float | int | str]:
        """A JSON-ready summary."""
        q1, q3 = self.iqr
        return {
            "median_s": self.median,
            "q1_s": q1,
            "q3_s": q3,
            "min_s": min(self.samples),
            "clock": self.clock,
            "wall_median_s": statistics.median(self.wall),
            "cpu_median_s": statistics.median(self.cpu),
            "rounds": len(self.samples),
            "inner": self.inner,
        }


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect once, then keep the cyclic garbage collector off (as ``timeit`` does)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _run(fn: Callable[[], object], inner: int) -> tuple[float, float]:
    """Wall and process CPU seconds for ``inner`` back-to-back calls of ``fn``."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    t1 = time.perf_counter()
    return t1 - t0, time.process_time() - c0


def calibrate(fn: Callable[[], object], min_sample_s: float, clock: str = "wall") -> int:
    """Smallest repeat count (1, 2, 5, 10, 20, ...) whose sample lasts ``min_sample_s``.

    A sample shorter than twenty times the target is measured three times and the
    shortest kept, so that one preemption during calibration cannot leave a
    microsecond call with a single repeat.
    """
    pick = 1 if clock == "cpu" else 0
    inner = 1
    while True:
        elapsed = _run(fn, inner)[pick]
        if elapsed < 20 * min_sample_s:
            elapsed = min(elapsed, *(_run(fn, inner)[pick] for _ in range(2)))
        if elapsed >= min_sample_s or inner >= 1_000_000:
            break
        # jump close to the target, then round up to a 1-2-5 step
        want = max(inner * 2, math.ceil(inner * min_sample_s / max(elapsed, 1e-9)))
        exponent = 10 ** math.floor(math.log10(want))
        inner = next(m * exponent for m in (1, 2, 5, 10) if m * exponent >= want)
    return inner


def interleaved(
    contenders: Mapping[str, Callable[[], object]], config: TimingConfig
) -> dict[str, Timing]:
    """Time every contender side by side in rotating interleaved rounds.

    Parameters
    ----------
    contenders : mapping of str to callable
        Zero-argument callables; each must finish its work before returning
        (block on lazy or asynchronous results inside the callable).
    config : TimingConfig
        Rounds, budget and sample length.

    Returns
    -------
    dict of str to Timing
        One entry per contender, in the order given.
    """
    names = list(contenders)
    with gc_paused():
        for fn in contenders.values():
            for _ in range(config.warmup):
                fn()
        timings = {
            name: Timing(
                name, calibrate(contenders[name], config.min_sample_s, config.clock), config.clock
            )
            for name in names
        }
        start = time.perf_counter()
        rounds = 0
        while rounds < config.rounds_max and (
            rounds < config.rounds_min or time.perf_counter() - start < config.budget_s
        ):
            k = rounds % len(names)
            for name in names[k:] + names[:k]:
                t = timings[name]
                wall, cpu = _run(contenders[name], t.inner)
                t.wall.append(wall / t.inner)
                t.cpu.append(cpu / t.inner)
            rounds += 1
    return timings
