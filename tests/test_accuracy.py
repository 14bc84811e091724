"""xsoftmax within 4 ulps of the correctly rounded result, on a fixed sample of hard rows.

The goal of issue 6, held in CI so that a later speed-up that loses accuracy fails:
log_softmax, softmax (relative error, normal outputs), logsumexp (in ulps of
``max(|result|, |row max|)``) and ``cross_entropy(..., reduction="none")`` with integer
targets are within 4 ulps of the correctly rounded value, in float32 and float64, on
every loaded backend, through the default path and through the generic
(standard-only) kernels. Results below ``2**(emin + p)`` are excluded (XLA on CPU
flushes subnormals).

The reference is ``benchmarks/_mpref.py``: mpmath at 200 bits on the exact inputs,
correctly rounded, with the precision raised until every rounding is decided. The
first tests check that reference against independent computations (Python's
``decimal`` module and the IEEE rounding rules written out); the last ones prove the
assertion helper catches the textbook formula that torch, SciPy and JAX use.

The sample (``benchmarks/_accuracy_inputs.py``, fixed seed): every input kind
(normal at three scales, large common offsets, one dominant logit, many ``-inf``,
small values) at C = 2, 5, 64 and 300, and one row of 4096 classes per kind, in both
dtypes.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import pytest

import xsoftmax
from xsoftmax._contract.config import fast_paths_disabled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _accuracy_inputs import KINDS, sample
from _mpref import (
    BatchReference,
    ReferenceCache,
    batch_reference,
    cross_entropy_reference,
    round_to_dtype,
    row_reference,
    ulp_errors,
)

GOAL_ULPS = 4.0
SEED = 20261128
DTYPES = ("float32", "float64")
FUNCTIONS = ("log_softmax", "softmax", "logsumexp", "cross_entropy")
# (number of classes, rows per kind): short rows are cheap, so more of them
SIZES = ((2, 6), (5, 6), (64, 3), (300, 2), (4096, 1))


# --------------------------------------------------------------------------------------
# the sample and its reference


@dataclass(frozen=True)
class Block:
    """Rows of one length, from every kind, with their targets and reference."""

    dtype: str
    x: np.ndarray
    target: np.ndarray
    kinds: tuple[str, ...]
    ref: BatchReference


@cache
def hard_sample(dtype: str) -> tuple[Block, ...]:
    """The fixed sample in ``dtype``: one block per row length, all kinds stacked."""
    cache = ReferenceCache()
    blocks = []
    for n_classes, n_rows in SIZES:
        xs, ts, kinds = [], [], []
        for kind in KINDS:
            x, t = sample(kind, n_classes, n_rows, dtype, seed=SEED)
            xs.append(x)
            ts.append(t)
            kinds += [kind] * n_rows
        x = np.concatenate(xs)
        blocks.append(Block(dtype, x, np.concatenate(ts), tuple(kinds), batch_reference(x, cache)))
    return tuple(blocks)


def reference_of(func: str, block: Block) -> tuple[np.ndarray, np.ndarray | None]:
    """(reference, scale) of ``func`` on ``block``; scale is the logsumexp unit's magnitude."""
    if func == "log_softmax":
        return block.ref.log_softmax, None
    if func == "softmax":
        return block.ref.softmax, None
    if func == "logsumexp":
        return block.ref.logsumexp, block.ref.row_max
    return cross_entropy_reference(block.ref, block.target), None


def ulp_violations(
    func: str, computed: np.ndarray, block: Block, max_ulps: float = GOAL_ULPS
) -> tuple[float, list[str]]:
    """The largest error of ``computed`` in ulps, and a line per row above ``max_ulps``."""
    ref, scale = reference_of(func, block)
    computed = np.asarray(computed, dtype=np.float64)
    if computed.shape != ref.shape:
        return math.inf, [f"{func}: shape {computed.shape}, expected {ref.shape}"]
    err = ulp_errors(computed, ref, block.dtype, scale=scale)
    err = np.where(np.isnan(err), 0.0, err)  # excluded (tiny) results
    row_err = err.reshape(err.shape[0], -1).max(axis=1)
    lines = []
    for i in np.flatnonzero(row_err > max_ulps):
        j = int(np.argmax(err[i])) if err.ndim == 2 else None
        got = computed[i] if j is None else computed[i, j]
        want = ref[i] if j is None else ref[i, j]
        lines.append(
            f"{func} {block.dtype} {block.kinds[i]} C={block.x.shape[1]} row {i}"
            f" entry {j}: {row_err[i]:.3g} ulps, got {float(got)!r}, want {float(want)!r}"
            f" (target {int(block.target[i])}, row max {float(block.ref.row_max[i])!r})"
        )
    return float(row_err.max(initial=0.0)), lines


def assert_within_ulps(
    func: str, computed: list[np.ndarray], blocks: tuple[Block, ...], max_ulps: float = GOAL_ULPS
) -> float:
    """Raise AssertionError listing every row of ``blocks`` above ``max_ulps``; return the max."""
    worst, lines = 0.0, []
    for out, block in zip(computed, blocks, strict=True):
        w, bad = ulp_violations(func, out, block, max_ulps)
        worst = max(worst, w)
        lines += bad
    if lines:
        shown = "\n".join(lines[:20])
        more = f"\n... and {len(lines) - 20} more rows" if len(lines) > 20 else ""
        raise AssertionError(
            f"{func}: {len(lines)} rows above {max_ulps:g} ulps (max {worst:.3g}):\n{shown}{more}"
        )
    return worst


# --------------------------------------------------------------------------------------
# independent checks of the reference


def nearest_float(exact: Fraction | Decimal, dtype: str) -> float:
    """The float of ``dtype`` nearest to ``exact``, by exact comparison of three candidates.

    Independent of ``_mpref``: NumPy's conversion gives a float within one ulp, and its
    neighbours are compared exactly with ``fractions``. A tie fails (none is expected).
    """
    t = np.dtype(dtype).type
    guess = t(float(exact))
    cands = [np.nextafter(guess, t(-np.inf)), guess, np.nextafter(guess, t(np.inf))]
    dist = [abs(Fraction(float(c)) - Fraction(exact)) for c in cands]
    best = min(dist)
    assert dist.count(best) == 1, "exact tie: not expected here"
    return float(cands[dist.index(best)])


def decimal_row(
    row: np.ndarray, digits: int = 400
) -> tuple[list[Fraction | None], list[Decimal], Fraction]:
    """log_softmax, softmax and logsumexp of ``row`` with ``decimal`` and ``fractions``.

    Written apart from ``_mpref``: every float converts to Decimal and Fraction exactly;
    ``r = sum_{j != k} exp(x_j - m)`` (``k`` the first maximum) at ``digits`` digits
    (Decimal's ``exp`` and ``ln`` are correctly rounded); ``L = log(1 + r)`` by
    ``ln`` or, for ``r < 1e-100``, by the series ``r - r**2/2 + r**3/3``; then
    ``log_softmax_j = (x_j - m) - L`` and ``logsumexp = m + L`` are formed exactly as
    Fractions, so their only error is L's (relative 1e-300 or better): a
    log-probability a hair off a rounding midpoint, or a cancelling logsumexp, still
    rounds correctly. ``softmax_j = exp(x_j - m) / (1 + r)`` in Decimal.
    ``-inf`` logits get log_softmax None (not compared) and softmax 0.
    """
    with localcontext() as ctx:
        ctx.prec = digits
        xs = [Decimal(float(v)) for v in row]
        k = xs.index(max(xs))
        m = xs[k]
        ez = [(x - m).exp() for x in xs]
        r = sum(ez[:k] + ez[k + 1 :], Decimal(0))
        big = r >= Decimal("1e-100")
        lg = (1 + r).ln() if big else r - r * r / 2 + r * r * r / 3
        lsm = [None if x.is_infinite() else Fraction(x) - Fraction(m) - Fraction(lg) for x in xs]
        return lsm, [e / (1 + r) for e in ez], Fraction(m) + Fraction(lg)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_two_equal_logits(dtype: str) -> None:
    # log_softmax([0, 0]) = -log 2, softmax = 1/2 exactly, logsumexp = log 2
    with localcontext() as ctx:
        ctx.prec = 60
        ln2 = Decimal(2).ln()
    ref = row_reference(np.zeros(2, dtype=dtype))
    want = nearest_float(ln2, dtype)
    assert list(ref.log_softmax) == [-want, -want]
    assert list(ref.softmax) == [0.5, 0.5]
    assert ref.logsumexp == want


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_tiny_top_log_probability(dtype: str) -> None:
    # top class of [0, -40]: -log1p(exp(-40)) ~ -4.2483542552915889e-18; the plain
    # log(1 + exp(-40)) at float64 (or any fixed precision below 60 bits) gives 0
    with localcontext() as ctx:
        ctx.prec = 80
        s = Decimal(-40).exp()
        want_top = -(1 + s).ln()
        want_other = Decimal(-40) + want_top
    ref = row_reference(np.array([0.0, -40.0], dtype=dtype))
    assert ref.log_softmax[0] == nearest_float(want_top, dtype)
    assert ref.log_softmax[0] != 0.0
    assert ref.log_softmax[1] == nearest_float(want_other, dtype)
    assert math.isclose(ref.log_softmax[0], -4.248354255291589e-18, rel_tol=1e-6)


def test_reference_top_log_probability_near_1e_300() -> None:
    # exp(-690) ~ 2.2e-300: the top class's log-probability is about -2.2e-300, a
    # normal float64 that 200-bit log(1 + s) would round to 0
    row = np.array([0.0, -690.0])
    lsm, _, _ = decimal_row(row)
    ref = row_reference(row)
    assert lsm[0] is not None
    assert ref.log_softmax[0] == nearest_float(lsm[0], "float64")
    assert -3e-300 < ref.log_softmax[0] < -1e-300


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_logsumexp_cancellation(dtype: str) -> None:
    # two logits equal to fl(-log 2): logsumexp = fl(-log 2) + log 2, a tiny number
    # that only survives if the sum is formed without absolute rounding at ~1e-60
    a = np.array(-math.log(2.0), dtype=dtype)
    row = np.array([a, a])
    _, _, lse = decimal_row(row)
    ref = row_reference(row)
    assert ref.logsumexp == nearest_float(lse, dtype)
    assert 0 < abs(ref.logsumexp) < 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["normal1", "dominant", "offset1e6", "neginf", "normal1e4"])
def test_reference_matches_decimal(kind: str, dtype: str) -> None:
    x, _ = sample(kind, 7, 3, dtype, seed=SEED + 1)
    for row in x:
        lsm, sm, lse = decimal_row(row)
        ref = row_reference(row)
        finite = np.isfinite(row)
        for j in np.flatnonzero(finite):
            want = lsm[j]
            assert want is not None
            assert ref.log_softmax[j] == nearest_float(want, dtype)
            assert ref.softmax[j] == nearest_float(sm[j], dtype)
        assert np.all(ref.log_softmax[~finite] == -np.inf)
        assert np.all(ref.softmax[~finite] == 0.0)
        assert ref.logsumexp == nearest_float(lse, dtype)


def test_reference_raises_precision_until_decided() -> None:
    # at a 40-bit start every float64 rounding is undecided: the row must be redone at
    # higher precision and give the same correctly rounded results
    x, _ = sample("normal30", 50, 1, "float64", seed=SEED)
    low = row_reference(x[0], prec=40)
    high = row_reference(x[0])
    assert low.prec > 40
    np.testing.assert_array_equal(low.log_softmax, high.log_softmax)
    np.testing.assert_array_equal(low.softmax, high.softmax)
    assert low.logsumexp == high.logsumexp


@pytest.mark.parametrize(
    ("dtype", "p", "emin", "emax"), [("float32", 24, -126, 127), ("float64", 53, -1022, 1023)]
)
def test_round_to_dtype_ieee_rules(dtype: str, p: int, emin: int, emax: int) -> None:
    # expected values built from the IEEE 754 rules: round to nearest, ties to even;
    # the inputs are exact (mpmath at 3000 bits holds 2**-2000 next to 1 exactly)
    with mpmath.workprec(3000):
        _check_rounding(dtype, p, emin, emax)


def _check_rounding(dtype: str, p: int, emin: int, emax: int) -> None:
    two = mpmath.mpf(2)
    u = two ** (1 - p)  # ulp of 1
    assert round_to_dtype(1 + u / 2, dtype) == 1.0  # tie, 1 is even
    assert round_to_dtype(1 + 3 * u / 2, dtype) == 1 + 2 * float(u)  # tie, to even
    assert round_to_dtype(1 + u / 2 + two**-400, dtype) == 1 + float(u)  # just above
    assert round_to_dtype(-(1 + u / 2 + two**-400), dtype) == -(1 + float(u))
    sub = two ** (emin - p + 1)  # smallest subnormal
    assert round_to_dtype(sub / 2, dtype) == 0.0  # tie between 0 and sub: 0 is even
    assert round_to_dtype(3 * sub / 2, dtype) == float(2 * sub)
    assert round_to_dtype(sub / 2 + two**-2000, dtype) == float(sub)
    assert round_to_dtype(5 * sub / 4, dtype) == float(sub)
    top = (2 - 2 * u / 2) * two**emax  # the largest finite float
    assert round_to_dtype(top, dtype) == float(np.finfo(dtype).max)
    assert round_to_dtype(top + u / 2 * two**emax - two ** (emax - 300), dtype) == float(
        np.finfo(dtype).max
    )
    assert round_to_dtype(top + u / 2 * two**emax, dtype) == math.inf  # tie goes to 2**(emax+1)
    assert round_to_dtype(-(two ** (emax + 1)), dtype) == -math.inf
    assert round_to_dtype(mpmath.mpf(0), dtype) == 0.0


def test_round_to_dtype_exact_ints() -> None:
    # ints are taken exactly: the ulp of 2**60 is 2**8 in float64, 2**37 in float32
    assert round_to_dtype(2**60 + 2**7, "float64") == 2.0**60  # tie, to even
    assert round_to_dtype(2**60 + 2**7 + 1, "float64") == 2.0**60 + 2**8
    assert round_to_dtype(2**60 + 2**36 + 1, "float32") == 2.0**60 + 2**37
    with pytest.raises(TypeError, match="value"):
        round_to_dtype("0.1", "float64")


def test_ulp_errors_units() -> None:
    r = np.array([1.0, 1.0, -0.75, -np.inf, -np.inf, 2.0**-1070, 0.0])
    y = np.array(
        [
            1.0,
            np.nextafter(np.nextafter(1.0, 2.0), 2.0),
            np.nextafter(-0.75, 0.0),
            -np.inf,
            -1.0,
            0.0,
            0.0,
        ]
    )
    err = ulp_errors(y, r, "float64")
    np.testing.assert_array_equal(err[:5], [0.0, 2.0, 1.0, 0.0, np.inf])
    assert np.isnan(err[5])  # below 2**(emin + p): excluded
    assert err[6] == 0.0
    # logsumexp unit: ulps of max(|result|, |row max|); ulp(1024) = 2**-42 = 2**11 ulp(1)
    e = ulp_errors([1.0 + 2.0**-44], [1.0], "float64", scale=[1024.0])
    assert e[0] == 0.25
    # float32 ulps, counted on float32 values held in float64
    e32 = ulp_errors([float(np.nextafter(np.float32(3.0), np.float32(4.0)))], [3.0], "float32")
    assert e32[0] == 1.0


# --------------------------------------------------------------------------------------
# the goal, on every backend


def call(func: str, backend: Any, x: np.ndarray, t: np.ndarray) -> Any:
    """xsoftmax's ``func`` on ``backend`` (class axis last)."""
    xx = backend.asarray(x)
    if func == "log_softmax":
        return xsoftmax.log_softmax(xx, axis=-1)
    if func == "softmax":
        return xsoftmax.softmax(xx, axis=-1)
    if func == "logsumexp":
        return xsoftmax.logsumexp(xx, axis=-1)
    return xsoftmax.cross_entropy(xx, backend.asarray(t), reduction="none")


@pytest.mark.parametrize("path", ["default", "generic"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("func", FUNCTIONS)
def test_within_4_ulps(backend: Any, func: str, dtype: str, path: str) -> None:
    blocks = hard_sample(dtype)
    ctx = fast_paths_disabled() if path == "generic" else contextlib.nullcontext()
    outs = []
    with ctx:
        for block in blocks:
            out = call(func, backend, block.x, block.target)
            outs.append(backend.to_numpy(out))
    for out in outs:
        assert out.dtype == np.dtype(dtype), f"{func} returned {out.dtype} for {dtype} input"
    assert_within_ulps(func, outs, blocks)


# --------------------------------------------------------------------------------------
# the assertion can fail


def textbook(func: str, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The stable textbook formulas (torch, SciPy, JAX): ``x - max``, exp, sum, log."""
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.max(x, axis=-1, keepdims=True)
        z = x - m
        ez = np.exp(z)
        total = np.sum(ez, axis=-1, keepdims=True)
        lse = m + np.log(total)
        if func == "log_softmax":
            return x - lse
        if func == "softmax":
            return ez / total
        if func == "logsumexp":
            return lse[:, 0]
        return -np.take_along_axis(x - lse, t[:, None], axis=1)[:, 0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("func", ["log_softmax", "softmax", "cross_entropy"])
def test_assertion_catches_textbook_formula(func: str, dtype: str) -> None:
    blocks = hard_sample(dtype)
    outs = [textbook(func, b.x, b.target) for b in blocks]
    with pytest.raises(AssertionError, match="ulps"):
        assert_within_ulps(func, outs, blocks)


def _shift_ulps(values: np.ndarray, dtype: str, k: int) -> np.ndarray:
    """``values`` moved ``k`` floats of ``dtype`` towards +inf (finite entries only)."""
    t = np.dtype(dtype).type
    out = values.astype(dtype)
    for _ in range(k):
        out = np.where(np.isfinite(out), np.nextafter(out, t(np.inf)), out)
    return out.astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_assertion_threshold_is_4_ulps(dtype: str) -> None:
    # every log-probability moved 4 floats up passes, 5 floats fails (no step goes
    # further than one ulp of the reference; a step past a power of two counts half)
    blocks = hard_sample(dtype)
    four = [_shift_ulps(b.ref.log_softmax, dtype, 4) for b in blocks]
    five = [_shift_ulps(b.ref.log_softmax, dtype, 5) for b in blocks]
    assert assert_within_ulps("log_softmax", four, blocks) <= 4.0
    with pytest.raises(AssertionError, match="above 4 ulps"):
        assert_within_ulps("log_softmax", five, blocks)
