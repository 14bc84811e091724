"""softmax, log_softmax and logsumexp against torch / scipy.special on a grid of cases.

Expected values come from ``oracles.py`` (float64 definitions whose agreement with
``scipy.special`` and ``torch`` is itself proven below, in ``test_oracle_*``). Each case
runs on every loaded backend: inputs go in through ``backend.asarray``, the result must
be an array of the backend's own library and of the expected dtype, and its values must
agree within the tolerance policy stated in ``oracles.py``.

The default grid takes, for every (function, shape, axis, dtype), one or two option
combinations drawn with a fixed seed from the full product of the options
(``where``, ``dtype=``, logit kind; for ``logsumexp`` also ``keepdims``, ``b`` and
``return_sign``); ``-m slow`` runs the full product.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import scipy.special
from conftest import BACKENDS
from oracles import (
    EPS,
    _from_rows,
    _to_rows,
    assert_close,
    check_array,
    draw_logits,
    grid_params,
    lse_condition,
    norm_axes,
    ref_log_softmax,
    ref_logsumexp,
    ref_softmax,
    row_mask,
    tolerance,
)

import xsoftmax

SHAPE_AXES: list[tuple[tuple[int, ...], list[Any]]] = [
    ((7,), [-1, 0]),
    ((1, 1), [-1]),
    ((4, 5), [1, -1, 0, -2, (0, 1)]),
    ((3, 4, 5), [-1, 1, 0, (0, 2), (-1, -2)]),
    ((2, 3, 4, 5), [1, -1, (1, 3), (0, 1, 2, 3)]),
    ((0, 5), [-1, 0]),  # empty batch; and a reduction over an empty axis
    ((5, 0), [-1, 0]),  # C = 0
    ((2, 0, 3), [-1, (0, 2)]),
]
FUNCS = ("softmax", "log_softmax", "logsumexp")
DTYPES = ("float32", "float64")
KINDS = ("normal", "wide", "offset", "neginf")
WHERES = (None, "mask", "mask_dead", "bcast")
OUT_DTYPES = (None, "other")
B_KINDS = (None, "pos", "zeros", "signed", "bcast")


@dataclass(frozen=True)
class Case:
    """One softmax-family oracle case."""

    func: str
    shape: tuple[int, ...]
    axis: Any
    dtype: str
    kind: str
    where: str | None
    out_dtype: str | None = None
    keepdims: bool = False
    b: str | None = None
    return_sign: bool = False

    @property
    def id(self) -> str:
        ax = "_".join(map(str, self.axis)) if isinstance(self.axis, tuple) else self.axis
        parts = [self.func, "x".join(map(str, self.shape)) or "0d", f"ax{ax}", self.dtype]
        parts += [self.kind, f"w{self.where}"]
        if self.func == "logsumexp":
            parts += [f"kd{int(self.keepdims)}", f"b{self.b}", f"s{int(self.return_sign)}"]
        else:
            parts += [f"dt{self.out_dtype}"]
        return "-".join(str(p) for p in parts)


def _option_product(func: str) -> list[tuple[Any, ...]]:
    if func == "logsumexp":
        return list(itertools.product(KINDS, WHERES, (False, True), B_KINDS, (False, True)))
    return list(itertools.product(KINDS, WHERES, OUT_DTYPES))


def _make(func: str, shape: tuple[int, ...], axis: Any, dtype: str, opts: tuple) -> Case:
    if func == "logsumexp":
        kind, where, keepdims, b, sign = opts
        return Case(func, shape, axis, dtype, kind, where, None, keepdims, b, sign)
    kind, where, out = opts
    if out == "other" and dtype == "float64":
        kind = "normal"  # narrowing: torch casts the input first; only benign logits
    return Case(func, shape, axis, dtype, kind, where, out)


def build_cases(exhaustive: bool) -> list[Case]:
    """The grid: every (func, shape, axis, dtype) with sampled (or all) option tuples."""
    rnd = random.Random(20240601)
    cases = []
    for func in FUNCS:
        prod = _option_product(func)
        for shape, axes in SHAPE_AXES:
            axes_f = [*axes, None] if func == "logsumexp" else axes
            for axis, dtype in itertools.product(axes_f, DTYPES):
                picks = prod if exhaustive else rnd.sample(prod, 2 if len(shape) >= 2 else 1)
                cases += [_make(func, shape, axis, dtype, o) for o in picks]
    cases += [
        Case("logsumexp", (), None, "float64", "normal", None),
        Case("logsumexp", (), None, "float32", "normal", None, b="pos", return_sign=True),
    ]
    return list(dict.fromkeys(cases))


# Dask evaluates the graph in ``to_numpy``, outside any ``np.errstate`` the library may set,
# so NumPy's RuntimeWarnings for intended inf/NaN intermediates surface there; the NumPy
# promise (no warning for finite input) is held by ``test_numpy_no_fp_warnings``.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

CASES = build_cases(exhaustive=False)
SLOW = os.environ.get("XSOFTMAX_SLOW") == "1"
GRID = grid_params(BACKENDS, CASES, exhaustive=SLOW)
# The exhaustive option product (~7000 cases per backend) is collected only when asked for
# (XSOFTMAX_SLOW=1), so that the default run stays fast with or without -m "not slow".
if SLOW:
    SLOW_GRID = grid_params(
        BACKENDS, [c for c in build_cases(exhaustive=True) if c not in set(CASES)], True
    )
else:
    SLOW_GRID = [
        pytest.param(None, None, marks=pytest.mark.skip(reason="set XSOFTMAX_SLOW=1 to collect"))
    ]


def _inputs(case: Case) -> dict[str, Any]:
    """float64 NumPy inputs of a case (seeded by the case id)."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    shape = case.shape
    axes = norm_axes(case.axis, len(shape)) if shape else ()
    kind = "normal" if case.kind == "neginf" else case.kind
    x = draw_logits(rng, shape, kind)
    if case.kind == "neginf" and x.size:
        keep = row_mask(rng, shape, axes, p_true=0.6)
        x = np.where(keep, x, -np.inf)
    out: dict[str, Any] = {"x": x}
    if case.where in ("mask", "mask_dead") and x.size:
        out["where"] = row_mask(rng, shape, axes, dead_rows=1 if case.where == "mask_dead" else 0)
    elif case.where == "bcast" and shape:
        bshape = tuple(n if a in axes else 1 for a, n in enumerate(shape))
        out["where"] = row_mask(rng, bshape, axes) if math.prod(bshape) else np.ones(bshape, bool)
    if case.b is not None:
        if case.b == "bcast":
            bshape = tuple(n if a in axes else 1 for a, n in enumerate(shape))
            out["b"] = rng.uniform(0.5, 2.0, size=bshape)
        else:
            b = rng.uniform(0.5, 2.0, size=shape)
            if case.b == "zeros":
                b = np.where(rng.random(shape) < 0.3, 0.0, b)
                if b.size and b.ndim:
                    b.reshape(-1)[: max(1, shape[-1])] = 0.0  # a whole row of zeros
            elif case.b == "signed":
                b = b * rng.choice([-1.0, 1.0], size=shape)
            out["b"] = b
    if case.kind == "neginf" and "where" in out and x.size:
        # a row that the mask keeps must keep a finite entry (an all -inf row is NaN
        # by parity, a fully masked one 0: keep the two apart)
        rows, moved = _to_rows(x, axes)
        wr, _ = _to_rows(np.broadcast_to(out["where"], shape), axes)
        lost = wr.any(axis=1) & ~(wr & np.isfinite(rows)).any(axis=1)
        first = np.argmax(wr, axis=1)
        rows[lost, first[lost]] = 0.5
        out["x"] = _from_rows(rows, moved, axes)
    return out


def _n_terms(shape: tuple[int, ...], axis: Any) -> int:
    return math.prod(shape[a] for a in norm_axes(axis, len(shape))) if shape else 1


def run_case(backend: Any, case: Case) -> None:
    """Run one case on ``backend`` and compare with the oracle."""
    if case.dtype not in backend.float_dtypes():  # pragma: no cover - every backend has f32/f64
        pytest.skip(f"{backend.name} has no {case.dtype}")
    inp = _inputs(case)
    x_np = inp["x"].astype(case.dtype)
    x = backend.asarray(x_np)
    kw: dict[str, Any] = {"axis": case.axis}
    where_np = inp.get("where")
    if where_np is not None:
        kw["where"] = backend.asarray(where_np)
    fn = getattr(xsoftmax, case.func)
    n = _n_terms(case.shape, case.axis)
    if case.func == "logsumexp":
        b_np = inp.get("b")
        if b_np is not None:
            b_np = b_np.astype(case.dtype)
            kw["b"] = backend.asarray(b_np)
        res = fn(x, keepdims=case.keepdims, return_sign=case.return_sign, **kw)
        want = ref_logsumexp(x_np, case.axis, case.keepdims, b_np, case.return_sign, where_np)
        bb = b_np
        if where_np is not None:
            wf = where_np.astype(np.float64)
            bb = wf if bb is None else bb * wf
        kappa = lse_condition(x_np, case.axis, case.keepdims, bb) if x_np.size else 1.0
        _, atol = tolerance(case.dtype, n, kappa)
        if case.return_sign:
            assert isinstance(res, tuple), "return_sign=True must return (value, sign)"
            assert len(res) == 2
            val, sign = res
            check_array(backend, val, case.dtype, np.shape(want[0]))
            got_v = backend.to_numpy(val)
            assert_close(got_v, want[0], dtype=case.dtype, atol=atol, what=f"{case.id} value")
            got_s = backend.to_numpy(sign).astype(np.float64)
            reliable = np.asarray(kappa) < 1.0 / (8 * max(n, 1) * EPS[case.dtype])
            np.testing.assert_array_equal(
                np.where(reliable, got_s, 0.0),
                np.where(reliable, want[1], 0.0),
                err_msg=f"{case.id}: sign",
            )
        else:
            check_array(backend, res, case.dtype, np.shape(want))
            assert_close(backend.to_numpy(res), want, dtype=case.dtype, atol=atol, what=case.id)
        return
    out_dtype = case.dtype
    if case.out_dtype == "other":
        out_dtype = "float64" if case.dtype == "float32" else "float32"
        kw["dtype"] = backend.dtype(out_dtype)
    res = fn(x, **kw)
    ref = ref_softmax if case.func == "softmax" else ref_log_softmax
    x_ref = x_np.astype(out_dtype) if out_dtype == "float32" else x_np
    want = ref(x_ref, case.axis, where_np)
    check_array(backend, res, out_dtype, case.shape)
    got = backend.to_numpy(res)
    if case.func == "softmax":
        assert_close(got, want, dtype=out_dtype, what=case.id)
    else:
        _, atol = tolerance(out_dtype, n, 1.0)
        assert_close(got, want, dtype=out_dtype, atol=atol, what=case.id)


@pytest.mark.parametrize(("backend", "case"), GRID)
def test_softmax_family_grid(backend: Any, case: Case) -> None:
    """Every function of the softmax family agrees with the oracle on the sampled grid."""
    run_case(backend, case)


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "case"), SLOW_GRID)
def test_softmax_family_exhaustive(backend: Any, case: Case) -> None:
    """The full option product on every backend (XSOFTMAX_SLOW=1)."""
    run_case(backend, case)


# --------------------------------------------------------------------------------------
# the oracle itself equals scipy.special and torch (no backend involved)
# --------------------------------------------------------------------------------------
# (empty inputs left out: scipy.special.softmax/log_softmax raise on them, no max)
@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.func != "logsumexp" and math.prod(c.shape)],
    ids=lambda c: c.id,
)
def test_oracle_matches_scipy_and_torch(case: Case) -> None:
    """ref_softmax/ref_log_softmax equal scipy.special and torch.softmax (float64)."""
    torch = pytest.importorskip("torch")
    inp = _inputs(case)
    x = inp["x"]
    where = inp.get("where")
    axes = norm_axes(case.axis, x.ndim)
    n = _n_terms(case.shape, case.axis)
    ours = (ref_softmax if case.func == "softmax" else ref_log_softmax)(x, case.axis, where)
    xm = x if where is None else np.where(np.broadcast_to(where, x.shape), x, -np.inf)
    sp = getattr(scipy.special, case.func)
    with np.errstate(all="ignore"):
        theirs = sp(xm, axis=axes)
    # torch reduces over one dim: flatten the reduced axes into the last one
    rows, _ = _to_rows(xm, axes)
    fn = torch.softmax if case.func == "softmax" else torch.log_softmax
    t_rows = fn(torch.from_numpy(np.ascontiguousarray(rows)), dim=-1).numpy()
    ours_rows, _ = _to_rows(ours, axes)
    # anchors give NaN on a fully masked row; the contract's safe value is 0 / -inf
    dead = np.isnan(t_rows).all(axis=1) if rows.size else np.zeros(rows.shape[0], bool)
    safe = 0.0 if case.func == "softmax" else -np.inf
    assert (ours_rows[dead] == safe).all()
    _, atol = tolerance("float64", n, 0.0 if case.func == "softmax" else 1.0)
    assert_close(ours_rows[~dead], t_rows[~dead], dtype="float64", atol=atol, what="torch")
    theirs_rows, _ = _to_rows(theirs, axes)
    assert_close(ours_rows[~dead], theirs_rows[~dead], dtype="float64", atol=atol, what="scipy")


def test_oracle_logsumexp_where_is_masking() -> None:
    """``where`` as a 0/1 factor of ``b`` equals dropping the entries (vs torch.logsumexp)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5)) * 3
    w = row_mask(rng, x.shape, (1,), dead_rows=1)
    ours = ref_logsumexp(x, 1, where=w)
    theirs = torch.logsumexp(torch.from_numpy(np.where(w, x, -np.inf)), dim=1).numpy()
    assert_close(ours, theirs, dtype="float64", atol=tolerance("float64", 5, 1.0)[1])


# --------------------------------------------------------------------------------------
# half precision: float32 accumulation, input dtype or dtype= out
# --------------------------------------------------------------------------------------
HALF_CASES = [
    (func, shape, axis, out)
    for func in FUNCS
    for shape, axis in (((4, 5), -1), ((3, 4, 5), 1))
    for out in ((None, "float32") if func != "logsumexp" else (None,))
]


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize(("func", "shape", "axis", "out"), HALF_CASES)
def test_half_precision(
    backend: Any, half: str, func: str, shape: Any, axis: int, out: Any
) -> None:
    """float16/bfloat16 inputs agree with the float64 oracle at half precision, or at float32
    precision with ``dtype=float32`` (the float32 accumulation shows there)."""
    if half not in backend.half_dtypes:
        pytest.skip(f"{backend.name} has no {half}")
    rng = np.random.default_rng(7)
    x = backend.asarray(draw_logits(rng, shape), dtype=half)
    x_exact = backend.to_numpy(x).astype(np.float64)  # the half values, exactly
    fn = getattr(xsoftmax, func)
    n = _n_terms(shape, axis)
    out_dtype = out or half
    if func == "logsumexp":
        res = fn(x, axis=axis)
        want = ref_logsumexp(x_exact, axis)
        shape_out = want.shape
    else:
        res = fn(x, axis=axis, **({"dtype": backend.dtype(out)} if out else {}))
        want = (ref_softmax if func == "softmax" else ref_log_softmax)(x_exact, axis)
        shape_out = shape
    check_array(backend, res, out_dtype, shape_out)
    # float32 accumulation: the error before the final rounding is float32's
    _, atol = tolerance("float32", n, 0.0 if func == "softmax" else 1.0)
    if out_dtype == "float16":
        atol = atol + 2.0**-24  # float16 subnormal spacing (tiny probabilities)
    assert_close(backend.to_numpy(res), want, dtype=out_dtype, atol=atol, what=f"{func} {half}")


def test_float16_many_classes(backend: Any) -> None:
    """float16, C = 70 000 zeros: 1/C each, log_softmax -log(C) = -11.156, logsumexp 11.156
    (docs/contract/errors.md; anchors give inf). Expected: -log(70000) in float64, rounded to float16."""
    if "float16" not in backend.half_dtypes:
        pytest.skip(f"{backend.name} has no float16")
    c = 70_000
    x = backend.asarray(np.zeros((1, c)), dtype="float16")
    ls = backend.to_numpy(xsoftmax.log_softmax(x, axis=-1))
    assert_close(ls, np.full((1, c), -math.log(c)), dtype="float16", what="log_softmax")
    lse = backend.to_numpy(xsoftmax.logsumexp(x, axis=-1))
    assert_close(lse, np.array([math.log(c)]), dtype="float16", what="logsumexp")
    sm = backend.to_numpy(xsoftmax.softmax(x, axis=-1)).astype(np.float64)
    assert np.isfinite(sm).all()
    assert abs(sm.sum() - 1.0) <= 2e-2


# --------------------------------------------------------------------------------------
# extreme and special logits (docs/contract/errors.md, "Numeric results")
# --------------------------------------------------------------------------------------
def _extreme_rows(dtype: str) -> np.ndarray:
    fmax = float(np.finfo(np.float16).max) if dtype == "float16" else None
    if dtype == "bfloat16":
        fmax = float.fromhex("0x1.fep127")
    if fmax is None:
        fmax = float(np.finfo(dtype).max)
    rows = [
        [fmax, -fmax, 0.0, 1.0],
        [fmax, fmax, 0.0, -1.0],
        [-fmax, -fmax, -fmax, -fmax],
        [fmax, fmax, fmax, fmax],
    ]
    if dtype in ("float32", "float64", "bfloat16"):
        rows.append([1e30, -1e30, 0.0, 2.0])
    rng = np.random.default_rng(3)
    f32max = float(np.finfo(np.float32).max)
    lim = f32max if dtype != "float16" else fmax
    rows.append(list(rng.uniform(-lim, lim, size=4)))
    return np.array(rows)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_extreme_finite_logits(backend: Any, dtype: str) -> None:
    """Finite logits up to +-finfo.max: probabilities in [0, 1] summing to 1 within
    4 eps max(C, 4), no NaN; log_softmax <= 0, -inf only where the exact value is below
    -finfo.max; logsumexp finite; all equal to the oracle rounded to the dtype."""
    if dtype not in backend.float_dtypes():
        pytest.skip(f"{backend.name} has no {dtype}")
    x = backend.asarray(_extreme_rows(dtype), dtype=dtype)
    xe = backend.to_numpy(x).astype(np.float64)
    c = xe.shape[1]
    sm = backend.to_numpy(xsoftmax.softmax(x, axis=-1)).astype(np.float64)
    assert np.isfinite(sm).all(), sm
    assert ((sm >= 0) & (sm <= 1)).all(), sm
    acc = "float32" if dtype in ("float16", "bfloat16") else dtype
    row_tol = 4 * EPS[dtype] * max(c, 4)
    assert (np.abs(sm.sum(axis=1) - 1) <= row_tol).all(), sm.sum(axis=1)
    assert_close(sm, ref_softmax(xe), dtype=dtype, atol=0.0, what="softmax")
    ls = backend.to_numpy(xsoftmax.log_softmax(x, axis=-1)).astype(np.float64)
    assert not np.isnan(ls).any(), ls
    assert (ls <= 0).all(), ls
    assert_close(ls, ref_log_softmax(xe), dtype=dtype, atol=tolerance(acc, c, 1.0)[1], what="ls")
    lse = backend.to_numpy(xsoftmax.logsumexp(x, axis=-1)).astype(np.float64)
    assert np.isfinite(lse).all(), lse
    assert_close(lse, ref_logsumexp(xe, -1), dtype=dtype, atol=tolerance(acc, c, 1.0)[1])


def test_large_common_offset(backend: Any) -> None:
    """float32 [1e8, 1e8, 1e8 - 64]: log_softmax = (x - m) - log(sum exp(x - m)), exactly
    [-log 2, -log 2, -64 - log 2] (the three values are exact float32 numbers)."""
    x = backend.asarray(np.array([[1e8, 1e8, 1e8 - 64]]), dtype="float32")
    ls = backend.to_numpy(xsoftmax.log_softmax(x, axis=-1))
    log2 = math.log(2.0)
    want = np.array([[-log2, -log2, -64 - log2]])  # exact: exp(-64) << float32 eps
    assert_close(ls, want, dtype="float32", what="log_softmax")
    sm = backend.to_numpy(xsoftmax.softmax(x, axis=-1))
    assert_close(sm, ref_softmax(want), dtype="float32", what="softmax")
    lse = backend.to_numpy(xsoftmax.logsumexp(x, axis=-1))
    assert_close(lse, [1e8], dtype="float32", what="logsumexp")


@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(backend: Any, dtype: str) -> None:
    """-inf entries, an all -inf row, a +inf entry and a NaN entry (docs/contract/errors.md)."""
    ninf, inf, nan = -np.inf, np.inf, np.nan
    rows = np.array(
        [
            [0.5, ninf, 2.0, ninf],  # -inf entries, row has finite entries
            [ninf, ninf, ninf, ninf],  # all -inf
            [1.0, inf, 0.0, -1.0],  # +inf entry
            [1.0, nan, 0.0, -1.0],  # NaN entry
            [0.1, 0.2, 0.3, 0.4],  # plain row: must stay untouched by its neighbours
        ]
    )
    x = backend.asarray(rows, dtype=dtype)
    sm = backend.to_numpy(xsoftmax.softmax(x, axis=-1)).astype(np.float64)
    ls = backend.to_numpy(xsoftmax.log_softmax(x, axis=-1)).astype(np.float64)
    lse = backend.to_numpy(xsoftmax.logsumexp(x, axis=-1)).astype(np.float64)
    _, atol = tolerance(dtype, 4, 1.0)
    # row 0: exactly 0 / -inf at -inf entries, the rest as if they were absent
    assert (sm[0, [1, 3]] == 0).all()
    assert (ls[0, [1, 3]] == -np.inf).all()
    assert_close(sm[0, [0, 2]], ref_softmax(rows[0, [0, 2]]), dtype=dtype)
    assert_close(ls[0, [0, 2]], ref_log_softmax(rows[0, [0, 2]]), dtype=dtype, atol=atol)
    assert_close(lse[0], ref_logsumexp(rows[0, [0, 2]]), dtype=dtype, atol=atol)
    # row 1: all -inf -> softmax all NaN or all 0; log_softmax all NaN or all -inf; lse -inf
    assert np.isnan(sm[1]).all() or (sm[1] == 0).all(), sm[1]
    assert np.isnan(ls[1]).all() or (ls[1] == -np.inf).all(), ls[1]
    assert lse[1] == -np.inf
    # row 2: +inf entry -> NaN somewhere, or the one-hot limit; logsumexp +inf
    onehot = np.array([0.0, 1.0, 0.0, 0.0])
    assert np.isnan(sm[2]).any() or np.array_equal(sm[2], onehot), sm[2]
    assert lse[2] == np.inf
    # row 3: NaN entry -> NaN, confined to its row
    assert np.isnan(sm[3]).any()
    assert np.isnan(ls[3]).any()
    assert np.isnan(lse[3])
    # row 4 and row 0 unaffected by the others
    assert_close(sm[4], ref_softmax(rows[4]), dtype=dtype)
    assert_close(ls[4], ref_log_softmax(rows[4]), dtype=dtype, atol=atol)
    assert_close(lse[4], ref_logsumexp(rows[4]), dtype=dtype, atol=atol)


def test_where_ignores_masked_nonfinite(backend: Any) -> None:
    """Entries masked out by ``where`` take no part even when they hold +inf or NaN."""
    x_np = np.array([[1.0, np.inf, 2.0], [np.nan, 0.5, -1.0]])
    w_np = np.array([[True, False, True], [False, True, True]])
    x = backend.asarray(x_np)
    w = backend.asarray(w_np)
    clean = np.where(w_np, x_np, 0.0)
    _, atol = tolerance("float64", 3, 1.0)
    got = backend.to_numpy(xsoftmax.softmax(x, axis=-1, where=w))
    assert_close(got, ref_softmax(clean, -1, w_np), dtype="float64", what="softmax")
    got = backend.to_numpy(xsoftmax.log_softmax(x, axis=-1, where=w))
    assert_close(got, ref_log_softmax(clean, -1, w_np), dtype="float64", atol=atol)
    got = backend.to_numpy(xsoftmax.logsumexp(x, axis=-1, where=w))
    assert_close(got, ref_logsumexp(clean, -1, where=w_np), dtype="float64", atol=atol)


def test_numpy_no_fp_warnings() -> None:
    """SHOULD of docs/contract/errors.md: finite input (extremes included) raises no NumPy
    RuntimeWarning / FloatingPointError under ``np.errstate(all='raise')``."""
    rng = np.random.default_rng(5)
    inputs = [draw_logits(rng, (4, 6), "wide"), _extreme_rows("float64")]
    inputs += [_extreme_rows("float32").astype(np.float32)]
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in inputs:
            for fn in (xsoftmax.softmax, xsoftmax.log_softmax, xsoftmax.logsumexp):
                fn(x, axis=-1)
            xsoftmax.logsumexp(x, axis=-1, b=np.ones_like(x), return_sign=True)
            xsoftmax.softmax(x, axis=-1, where=np.arange(x.shape[-1]) % 3 != 1)
