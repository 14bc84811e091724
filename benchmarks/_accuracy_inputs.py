"""The input kinds of the accuracy harness: seeded rows of logits and integer targets.

Each kind stresses one weakness of the textbook ``x - max, exp, sum, log`` formula:

=============  ===========================================================================
kind           rows
=============  ===========================================================================
normal1        N(0, 1)
normal30       N(0, 30): many terms underflow, ``x - max`` large
normal1e4      N(0, 1e4): one or two terms dominate, ``x - max`` huge
offset1e4      +-1e4 + N(0, 1): ``x - logsumexp`` cancels, ``logsumexp`` large
offset1e6      +-1e6 + N(0, 1): the same, with float32 logits spaced 1/16 apart
dominant       N(0, 1) and one logit so far above that the top class's log-probability
               is ``-10**-u``, u uniform in [1, 30] (float32) or [1, 290] (float64)
neginf         N(0, 5) with 50% to 99% of the entries ``-inf`` (at least one finite)
small          N(0, 1e-3): nearly equal logits, softmax ~ 1/C; meant for long rows
=============  ===========================================================================

Targets are the top class half of the time (where a small loss is easy to lose)
and otherwise uniform over the finite entries.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["DTYPES", "KINDS", "Case", "cases", "make_logits", "make_targets", "sample"]

KINDS = (
    "normal1",
    "normal30",
    "normal1e4",
    "offset1e4",
    "offset1e6",
    "dominant",
    "neginf",
    "small",
)
DTYPES = ("float32", "float64")

# Largest u of the top class's log-probability -10**-u that stays a normal number
# above the exclusion threshold 2**(emin + p) of the dtype.
_DOMINANT_U = {"float32": 30.0, "float64": 290.0}


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator seeded by ``seed`` and a stable hash of ``key`` (independent streams)."""
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


def make_logits(
    kind: str, n_rows: int, n_classes: int, dtype: str, rng: np.random.Generator
) -> np.ndarray:
    """``(n_rows, n_classes)`` logits of ``kind`` in ``dtype``."""
    shape = (n_rows, n_classes)
    if kind == "normal1":
        x = rng.normal(0.0, 1.0, shape)
    elif kind == "normal30":
        x = rng.normal(0.0, 30.0, shape)
    elif kind == "normal1e4":
        x = rng.normal(0.0, 1e4, shape)
    elif kind in ("offset1e4", "offset1e6"):
        offset = 1e4 if kind == "offset1e4" else 1e6
        sign = rng.choice([-1.0, 1.0], size=(n_rows, 1))
        x = sign * offset + rng.normal(0.0, 1.0, shape)
    elif kind == "dominant":
        x = rng.normal(0.0, 1.0, shape)
        top = rng.integers(0, n_classes, n_rows)
        u = rng.uniform(1.0, _DOMINANT_U[dtype], n_rows)
        rows = np.arange(n_rows)
        x[rows, top] = -np.inf
        # log-probability of the top class = -log1p(s), s = sum_j exp(x_j - x_top) = 10**-u
        rest = np.logaddexp.reduce(x, axis=1)
        x[rows, top] = rest + u * np.log(10.0)
    elif kind == "neginf":
        x = rng.normal(0.0, 5.0, shape)
        frac = rng.uniform(0.5, 0.99, (n_rows, 1))
        x = np.where(rng.uniform(size=shape) < frac, -np.inf, x)
        keep = rng.integers(0, n_classes, n_rows)
        rows = np.arange(n_rows)
        x[rows, keep] = rng.normal(0.0, 5.0, n_rows)
    elif kind == "small":
        x = rng.normal(0.0, 1e-3, shape)
    else:
        msg = f"kind must be one of {KINDS}, got {kind!r}"
        raise ValueError(msg)
    return x.astype(dtype)


def make_targets(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int64 targets: the row's argmax half of the time, else a random finite entry."""
    n_rows = x.shape[0]
    top = np.argmax(x, axis=1)
    finite = np.isfinite(x)
    # a uniformly random finite entry: the argmax of random keys over finite entries
    keys = np.where(finite, rng.uniform(size=x.shape), -1.0)
    other = np.argmax(keys, axis=1)
    pick_top = rng.uniform(size=n_rows) < 0.5
    return np.where(pick_top, top, other).astype(np.int64)


def sample(
    kind: str, n_classes: int, n_rows: int, dtype: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded logits ``(n_rows, n_classes)`` of ``kind`` and ``dtype`` with their targets."""
    rng = _rng(seed, kind, n_classes, n_rows, dtype)
    x = make_logits(kind, n_rows, n_classes, dtype, rng)
    return x, make_targets(x, rng)


@dataclass(frozen=True)
class Case:
    """One block of rows of the harness: a kind, a dtype, a row length and a row count."""

    kind: str
    dtype: str
    n_classes: int
    n_rows: int

    def sample(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The logits and targets of this case."""
        return sample(self.kind, self.n_classes, self.n_rows, self.dtype, seed)


def cases(quick: bool = False) -> list[Case]:
    """The harness's cases: every kind and dtype, C from 2 to 32000.

    The number of rows per block is chosen so that each (kind, dtype, C) block has
    about 20000 entries (2000 with ``quick``), between 2 and 200 rows (20 with
    ``quick``).
    """
    if quick:
        sizes = (2, 10, 1000)
        long_sizes = (1000, 8192)
        budget, most = 2000, 20
    else:
        sizes = (2, 3, 10, 100, 1000, 32000)
        long_sizes = (1000, 8192, 32000)
        budget, most = 20000, 200
    out = []
    for dtype in DTYPES:
        for kind in KINDS:
            for c in long_sizes if kind == "small" else sizes:
                out.append(Case(kind, dtype, c, int(np.clip(budget // c, 2, most))))
    return out
