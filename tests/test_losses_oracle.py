"""cross_entropy, nll_loss and binary_cross_entropy_with_logits against torch.nn.functional.

Expected values: ``oracles.ref_cross_entropy`` / ``ref_nll`` / ``ref_bce_with_logits``,
torch's definitions in float64 (``test_oracle_*`` below prove them equal to
``torch.nn.functional`` on every case of the grid). The class axis is put anywhere with
``axis=``; the oracle moves it to torch's axis 1. Tolerances: the policy of
``oracles.py`` (rtol 1e-5 / 1e-12, atol ``4 eps max(C, 4)`` times the size of the terms).

The grid takes every (function, shape/axis, dtype, target kind) and, for each, one or two
option tuples (weight, ignore_index, reduction, label_smoothing, logit kind) drawn with a
fixed seed from their full product; ``XSOFTMAX_SLOW=1`` adds 12 more per combination
(the full product, ~70 000 cases, would take hours).
"""

from __future__ import annotations

import itertools
import math
import os
import random
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS
from oracles import (
    assert_close,
    check_array,
    draw_logits,
    grid_params,
    ref_bce_with_logits,
    ref_cross_entropy,
    ref_log_softmax,
    ref_nll,
    to_backend,
    tolerance,
    torch_bce_with_logits,
    torch_cross_entropy,
)

import xsoftmax

# Dask evaluates in to_numpy, outside the library's np.errstate (see test_softmax_oracle)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

SLOW = os.environ.get("XSOFTMAX_SLOW") == "1"

# (logits shape, class axis): torch layout (axis 1) and the class axis elsewhere
SHAPE_AXES: list[tuple[tuple[int, ...], int]] = [
    ((4, 3), 1),
    ((3, 4), 0),
    ((5,), 0),  # unbatched (C,), 0-d target
    ((5,), -1),
    ((2, 3, 4, 5), 1),  # (N, C, d1, d2)
    ((2, 3, 4, 5), -1),
    ((2, 3, 4, 5), 2),
    ((3, 4, 2), 1),
    ((7, 10), -1),
    ((6, 1), 1),  # one class
    ((0, 3), 1),  # empty batch
]
INT_TARGETS = ("int8", "int16", "int32", "int64", "uint8")
TARGETS = (*INT_TARGETS, "prob")
IGNORES = ("default", "in", "out", "neg")  # -100, a class index, C + 2, -1
REDUCTIONS = ("mean", "sum", "none")
SMOOTHINGS = (0.0, 0.1, 1.0)
KINDS = ("normal", "wide", "offset")


@dataclass(frozen=True)
class LossCase:
    """One cross_entropy / nll_loss oracle case."""

    func: str
    shape: tuple[int, ...]
    axis: int
    dtype: str
    target: str
    weight: bool
    ignore: str
    reduction: str
    smoothing: float
    kind: str
    out_dtype: str | None = None

    @property
    def id(self) -> str:
        sh = "x".join(map(str, self.shape))
        parts = [self.func, sh, f"ax{self.axis}", self.dtype, self.target, f"w{int(self.weight)}"]
        parts += [f"ii{self.ignore}", self.reduction, f"ls{self.smoothing}", self.kind]
        if self.out_dtype:
            parts.append(f"dt{self.out_dtype}")
        return "-".join(parts)


def _ignore_value(case: LossCase, c: int) -> int:
    return {"default": -100, "in": min(1, c - 1), "out": c + 2, "neg": -1}[case.ignore]


def build_cases(exhaustive: bool) -> list[LossCase]:
    """Every (func, shape/axis, dtype, target kind) with sampled (or all) option tuples."""
    rnd = random.Random(7)
    cases: list[LossCase] = []
    for func in ("cross_entropy", "nll_loss"):
        targets = TARGETS if func == "cross_entropy" else INT_TARGETS
        smooth = SMOOTHINGS if func == "cross_entropy" else (0.0,)
        for (shape, axis), dtype, target in itertools.product(
            SHAPE_AXES, ("float32", "float64"), targets
        ):
            ignores = IGNORES if target != "prob" else ("default", "neg")
            prod = list(itertools.product((False, True), ignores, REDUCTIONS, smooth, KINDS))
            if exhaustive:
                picks = rnd.sample(prod, min(len(prod), 14))
            else:
                k = 2 if target in ("int64", "prob") else 1
                picks = rnd.sample(prod, k)
            for w, ii, red, ls, kind in picks:
                kind = kind if func == "cross_entropy" else "normal"
                cases.append(LossCase(func, shape, axis, dtype, target, w, ii, red, ls, kind))
    # dtype=float64 on float32 logits: computed in float64 (as torch's softmax(dtype=))
    for shape, axis in SHAPE_AXES[:5]:
        for target, red in (("int64", "none"), ("prob", "mean")):
            cases.append(
                LossCase(
                    "cross_entropy",
                    shape,
                    axis,
                    "float32",
                    target,
                    True,
                    "default",
                    red,
                    0.1,
                    "normal",
                    "float64",
                )
            )
    return list(dict.fromkeys(cases))


CASES = build_cases(exhaustive=False)
GRID = grid_params(BACKENDS, CASES, exhaustive=SLOW)
if SLOW:
    SLOW_GRID = grid_params(
        BACKENDS, [c for c in build_cases(exhaustive=True) if c not in set(CASES)], True
    )
else:
    SLOW_GRID = [
        pytest.param(None, None, marks=pytest.mark.skip(reason="set XSOFTMAX_SLOW=1 to collect"))
    ]


def loss_inputs(case: LossCase) -> dict[str, Any]:
    """float64 / integer NumPy inputs of a case (seeded by its id)."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    shape, axis = case.shape, case.axis
    c = shape[axis]
    rest = tuple(n for a, n in enumerate(shape) if a != axis % len(shape))
    x = draw_logits(rng, shape, case.kind)
    if case.func == "nll_loss":
        x = ref_log_softmax(x, axis)
    ii = _ignore_value(case, c)
    out: dict[str, Any] = {"x": x, "ignore_index": ii}
    if case.target == "prob":
        t = ref_log_softmax(rng.normal(size=shape), axis)
        t = np.exp(t)
        if rng.random() < 0.5:  # torch accepts unnormalised non-negative targets as well
            t = t * rng.uniform(0.5, 2.0, size=shape)
        out["target"] = t
    else:
        t = rng.integers(0, c, size=rest)
        info = np.iinfo(case.target)
        if info.min <= ii <= info.max:
            t = np.where(rng.random(rest) < 0.3, ii, t)
        out["target"] = t.astype(case.target)
    if case.weight:
        out["weight"] = rng.uniform(0.2, 2.0, size=(c,))
    return out


def run_loss_case(backend: Any, case: LossCase) -> None:
    """Run one loss case on ``backend`` and compare with the oracle."""
    inp = loss_inputs(case)
    dt = case.dtype
    x_np = inp["x"].astype(dt)
    t_np = inp["target"].astype(dt) if case.target == "prob" else inp["target"]
    w_np = inp["weight"].astype(dt) if "weight" in inp else None
    kw: dict[str, Any] = {"axis": case.axis, "reduction": case.reduction}
    if case.ignore != "default":
        kw["ignore_index"] = inp["ignore_index"]
    if w_np is not None:
        kw["weight"] = to_backend(backend, w_np)
    out_dtype = case.out_dtype or dt
    if case.out_dtype:
        kw["dtype"] = backend.dtype(case.out_dtype)
    okw = {
        "axis": case.axis,
        "weight": w_np,
        "ignore_index": inp["ignore_index"],
        "reduction": case.reduction,
    }
    c = case.shape[case.axis]
    if case.func == "cross_entropy":
        res = xsoftmax.cross_entropy(
            to_backend(backend, x_np),
            to_backend(backend, t_np),
            label_smoothing=case.smoothing,
            **kw,
        )
        want, mag = ref_cross_entropy(x_np, t_np, label_smoothing=case.smoothing, **okw)
        _, atol = tolerance(out_dtype, c, mag)
    else:
        res = xsoftmax.nll_loss(to_backend(backend, x_np), to_backend(backend, t_np), **kw)
        want, _ = ref_nll(x_np, t_np, **okw)
        atol = 0.0  # a weighted sum of the given log-probabilities: relative error only
    check_array(backend, res, out_dtype, np.shape(want))
    assert_close(backend.to_numpy(res), want, dtype=out_dtype, atol=atol, what=case.id)


@pytest.mark.parametrize(("backend", "case"), GRID)
def test_loss_grid(backend: Any, case: LossCase) -> None:
    """cross_entropy and nll_loss agree with torch's definitions on the sampled grid."""
    run_loss_case(backend, case)


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "case"), SLOW_GRID)
def test_loss_exhaustive(backend: Any, case: LossCase) -> None:
    """The full option product on every backend (XSOFTMAX_SLOW=1)."""
    run_loss_case(backend, case)


@pytest.mark.parametrize("case", [c for c in CASES if c.dtype == "float64"], ids=lambda c: c.id)
def test_oracle_matches_torch(case: LossCase) -> None:
    """The float64 definitions of oracles.py equal torch.nn.functional on every case."""
    pytest.importorskip("torch")
    inp = loss_inputs(case)
    okw = {
        "weight": inp.get("weight"),
        "ignore_index": inp["ignore_index"],
        "reduction": case.reduction,
    }
    c = case.shape[case.axis]
    if case.func == "cross_entropy":
        ours, mag = ref_cross_entropy(
            inp["x"], inp["target"], axis=case.axis, label_smoothing=case.smoothing, **okw
        )
        theirs = torch_cross_entropy(
            inp["x"], inp["target"], axis=case.axis, label_smoothing=case.smoothing, **okw
        )
    else:
        ours, mag = ref_nll(inp["x"], inp["target"], axis=case.axis, **okw)
        theirs = torch_cross_entropy(inp["x"], inp["target"], axis=case.axis, nll=True, **okw)
    _, atol = tolerance("float64", c, mag)
    assert_close(ours, theirs, dtype="float64", atol=atol, what=case.id)


# --------------------------------------------------------------------------------------
# special reductions: every target ignored, all weights zero, empty batch, C = 0
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize(
    "what", ["all_ignored", "zero_weights", "empty_batch", "empty_spatial", "c0_ignored"]
)
def test_zero_normaliser(backend: Any, func: str, what: str) -> None:
    """mean -> NaN, sum -> 0, none -> zeros of the target's shape (torch parity)."""
    shape, tshape = {
        "all_ignored": ((4, 3), (4,)),
        "zero_weights": ((4, 3), (4,)),
        "empty_batch": ((0, 3), (0,)),
        "empty_spatial": ((2, 3, 0), (2, 0)),
        "c0_ignored": ((4, 0), (4,)),
    }[what]
    x = np.zeros(shape) if 0 in shape else np.random.default_rng(0).normal(size=shape)
    t = np.full(tshape, -100 if what in ("all_ignored", "c0_ignored") else 1, dtype=np.int64)
    kw: dict[str, Any] = {"axis": 1}
    w_np = None
    if what == "zero_weights":
        w_np = np.array([1.0, 0.0, 2.0])
        kw["weight"] = to_backend(backend, w_np)
    fn = getattr(xsoftmax, func)
    for red in REDUCTIONS:
        res = fn(to_backend(backend, x), to_backend(backend, t), reduction=red, **kw)
        want = torch_cross_entropy(
            x, t, axis=1, nll=func == "nll_loss", weight=w_np, reduction=red
        )
        check_array(backend, res, "float64", want.shape)
        got = backend.to_numpy(res)
        if red == "mean":
            assert np.isnan(got), f"{what} mean: expected NaN, got {got}"
        else:
            np.testing.assert_array_equal(got, np.zeros(want.shape), err_msg=f"{what} {red}")
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_probability_target_empty_batch(backend: Any) -> None:
    """Probability targets, (0, C): mean NaN (divides by N = 0), sum 0, none shape (0,)."""
    x = to_backend(backend, np.zeros((0, 3)))
    t = to_backend(backend, np.zeros((0, 3)))
    got = {
        r: backend.to_numpy(xsoftmax.cross_entropy(x, t, axis=1, reduction=r)) for r in REDUCTIONS
    }
    assert np.isnan(got["mean"])
    assert got["sum"] == 0
    assert got["none"].shape == (0,)


# --------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BceCase:
    """One binary_cross_entropy_with_logits oracle case."""

    shape: tuple[int, ...]
    dtype: str
    weight: str | None  # None, "full", "bcast"
    pos_weight: str | None  # None, "last" (per class, broadcast), "full"
    reduction: str
    target: str  # "soft" in [0, 1], "hard" in {0, 1}
    kind: str  # logits: normal, wide, huge (+-60)

    @property
    def id(self) -> str:
        sh = "x".join(map(str, self.shape))
        return f"bce-{sh}-{self.dtype}-w{self.weight}-pw{self.pos_weight}-{self.reduction}-{self.target}-{self.kind}"


def build_bce_cases(exhaustive: bool) -> list[BceCase]:
    rnd = random.Random(11)
    cases = []
    prod = list(
        itertools.product(
            (None, "full", "bcast"),
            (None, "last", "full"),
            REDUCTIONS,
            ("soft", "hard"),
            ("normal", "wide", "huge"),
        )
    )
    for shape in ((5,), (4, 3), (2, 3, 4), (0, 3)):
        for dtype in ("float32", "float64"):
            picks = prod if exhaustive else rnd.sample(prod, 5)
            cases += [BceCase(shape, dtype, *p) for p in picks]
    return cases


BCE_CASES = build_bce_cases(exhaustive=False)
BCE_GRID = grid_params(BACKENDS, BCE_CASES, exhaustive=SLOW, sample={"jax": 4, "dask": 12})


def bce_inputs(case: BceCase) -> dict[str, Any]:
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    shape = case.shape
    scale = {"normal": 3.0, "wide": 15.0, "huge": 60.0}[case.kind]
    out: dict[str, Any] = {"x": rng.normal(size=shape) * scale}
    out["target"] = rng.random(shape) if case.target == "soft" else rng.integers(0, 2, shape) * 1.0
    last = shape[-1:]
    if case.weight:
        out["weight"] = rng.uniform(0.2, 2.0, size=shape if case.weight == "full" else last)
    if case.pos_weight:
        out["pos_weight"] = rng.uniform(
            0.2, 3.0, size=shape if case.pos_weight == "full" else last
        )
    return out


def run_bce_case(backend: Any, case: BceCase) -> None:
    inp = bce_inputs(case)
    dt = case.dtype
    arrs = {k: v.astype(dt) for k, v in inp.items()}
    kw = {k: to_backend(backend, arrs[k]) for k in ("weight", "pos_weight") if k in arrs}
    res = xsoftmax.binary_cross_entropy_with_logits(
        to_backend(backend, arrs["x"]),
        to_backend(backend, arrs["target"]),
        reduction=case.reduction,
        **kw,
    )
    okw = {k: arrs.get(k) for k in ("weight", "pos_weight")}
    want, mag = ref_bce_with_logits(arrs["x"], arrs["target"], reduction=case.reduction, **okw)
    check_array(backend, res, dt, np.shape(want))
    _, atol = tolerance(dt, 1, mag)
    assert_close(backend.to_numpy(res), want, dtype=dt, atol=atol, what=case.id)


@pytest.mark.parametrize(("backend", "case"), BCE_GRID)
def test_bce_grid(backend: Any, case: BceCase) -> None:
    """binary_cross_entropy_with_logits agrees with torch's definition on the grid."""
    run_bce_case(backend, case)


@pytest.mark.parametrize(
    "case", [c for c in BCE_CASES if c.dtype == "float64"], ids=lambda c: c.id
)
def test_bce_oracle_matches_torch(case: BceCase) -> None:
    """ref_bce_with_logits equals torch.nn.functional.binary_cross_entropy_with_logits."""
    pytest.importorskip("torch")
    inp = bce_inputs(case)
    kw = {k: inp[k] for k in ("weight", "pos_weight") if k in inp}
    ours, mag = ref_bce_with_logits(inp["x"], inp["target"], reduction=case.reduction, **kw)
    theirs = torch_bce_with_logits(inp["x"], inp["target"], reduction=case.reduction, **kw)
    assert_close(ours, theirs, dtype="float64", atol=tolerance("float64", 1, mag)[1])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_bce_extreme_logits(backend: Any, dtype: str) -> None:
    """docs/contract/errors.md: at (+max, -max), targets (1, 0) -> 0 and (0, 1) -> max (per element);
    logit -120 with pos_weight 1, target 1 -> 120 (pytorch#13773). Expected: the exact
    loss is softplus(-|max|) ~ 0 (exp(-max) underflows) or |max| + that, i.e. max."""
    if dtype not in backend.float_dtypes():
        pytest.skip(f"{backend.name} has no {dtype}")
    fmax = {"float16": 65504.0, "bfloat16": float.fromhex("0x1.fep127")}.get(dtype)
    fmax = fmax if fmax is not None else float(np.finfo(dtype).max)
    x = to_backend(backend, np.array([fmax, -fmax, fmax, -fmax, -120.0]), dtype=dtype)
    t = to_backend(backend, np.array([1.0, 0.0, 0.0, 1.0, 1.0]), dtype=dtype)
    pw = to_backend(backend, np.ones(5), dtype=dtype)
    got = backend.to_numpy(
        xsoftmax.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="none")
    )
    want = np.array([0.0, 0.0, fmax, fmax, 120.0])
    assert_close(got, want, dtype=dtype, what=f"bce extremes {dtype}")


def test_bce_infinite_logits_limits(backend: Any) -> None:
    """SHOULD of docs/contract/errors.md: +-inf logits give the limits 0 / +inf, not torch's NaN."""
    x = to_backend(backend, np.array([np.inf, np.inf, -np.inf, -np.inf]))
    t = to_backend(backend, np.array([1.0, 0.0, 1.0, 0.0]))
    got = backend.to_numpy(xsoftmax.binary_cross_entropy_with_logits(x, t, reduction="none"))
    np.testing.assert_array_equal(got, [0.0, np.inf, np.inf, 0.0])


# --------------------------------------------------------------------------------------
# half precision: float32 accumulation, half or float32 out
# --------------------------------------------------------------------------------------
HALF_CASES = [
    ("cross_entropy", "int64", "mean"),
    ("cross_entropy", "int64", "none"),
    ("cross_entropy", "prob", "sum"),
    ("nll_loss", "int64", "none"),
    ("bce", "soft", "none"),
    ("bce", "soft", "mean"),
]


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    ("func", "target", "reduction", "out"),
    [(*c, None) for c in HALF_CASES] + [(*c, "float32") for c in HALF_CASES[1::2]],
)
def test_half_precision(
    backend: Any, half: str, out: str | None, func: str, target: str, reduction: str
) -> None:
    """float16 / bfloat16 losses equal the float64 oracle of the half inputs at half
    precision (one ulp plus float32 accumulation), or at float32 precision with
    ``dtype=float32``."""
    if half not in backend.half_dtypes:
        pytest.skip(f"{backend.name} has no {half}")
    rng = np.random.default_rng(17)
    shape = (6, 4)
    c = 4
    kw: dict[str, Any] = {"reduction": reduction}
    if out:
        kw["dtype"] = backend.dtype(out)
    x_np = rng.normal(size=shape) * 3
    if func == "nll_loss":
        x_np = ref_log_softmax(x_np, -1)
    x = to_backend(backend, x_np, dtype=half)
    xe = backend.to_numpy(x).astype(np.float64)
    if target == "prob" or func == "bce":
        t = to_backend(backend, rng.random(shape), dtype=half)
        te: Any = backend.to_numpy(t).astype(np.float64)
    else:
        te = rng.integers(0, c, size=shape[:1])
        t = to_backend(backend, te)
    if func == "bce":
        res = xsoftmax.binary_cross_entropy_with_logits(x, t, **kw)
        want, mag = ref_bce_with_logits(xe, te, reduction=reduction)
    elif func == "nll_loss":
        res = xsoftmax.nll_loss(x, t, **kw)
        want, mag = ref_nll(xe, te, reduction=reduction)
    else:
        res = xsoftmax.cross_entropy(x, t, **kw)
        want, mag = ref_cross_entropy(xe, te, reduction=reduction)
    out_dtype = out or half
    check_array(backend, res, out_dtype, np.shape(want))
    _, atol = tolerance("float32", c, mag)
    assert_close(backend.to_numpy(res), want, dtype=out_dtype, atol=atol, what=f"{func} {half}")


# --------------------------------------------------------------------------------------
# extreme logits in cross_entropy (docs/contract/errors.md)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_extremes(backend: Any, dtype: str) -> None:
    """[[max, -max]] with target 1 -> +inf (exact loss 2 max > max); [[max, 0]], t=1 -> max;
    [[1e8, 1e8]], t=0 -> log 2; -inf on a non-target: no effect; on the target: +inf."""
    fmax = float(np.finfo(dtype).max)
    x = to_backend(
        backend,
        np.array(
            [[fmax, -fmax], [fmax, 0.0], [fmax, -fmax], [1e8, 1e8], [0.5, -np.inf], [0.5, -np.inf]]
        ),
        dtype=dtype,
    )
    t = to_backend(backend, np.array([1, 1, 0, 0, 0, 1]))
    got = backend.to_numpy(xsoftmax.cross_entropy(x, t, axis=1, reduction="none"))
    want = np.array([np.inf, fmax, 0.0, math.log(2.0), 0.0, np.inf])
    assert_close(got, want, dtype=dtype, what="cross_entropy extremes")
