"""The numba CPU kernels (xsoftmax._kernels.numba.rows) held to the generic path, row by row.

Every kernel must give what the generic, standard-only kernel gives (the
definition) within 2 ulps on every row: finite values of any magnitude up to
``finfo.max``, ties, ``-inf``/``+inf``/NaN entries and rows of ``-inf`` only.
Float64 probabilities (softmax, the gradient) get 3 ulps: both sides round
``exp`` independently (0.5 and 0.54 ulp) and then divide, which measured up to
2.1 ulps apart on 900k random entries.

Skipped without numba (the optional ``fast`` extra).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("numba", reason="numba (the optional `fast` extra) is not installed")

import xsoftmax
from xsoftmax._contract.namespaces import numpy_namespace
from xsoftmax._definition import rows as _generic
from xsoftmax._kernels.numba import row_loops as _numba_rows
from xsoftmax._kernels.numba import rows as cpu

XP = numpy_namespace()


# --------------------------------------------------------------------------- oracle


def _close(
    got: np.ndarray,
    ref: np.ndarray,
    dtype: Any,
    ulps: float,
    what: str,
    scale: np.ndarray | None = None,
) -> None:
    """``got`` equals ``ref`` (both rounded to ``dtype``) within ``ulps`` relative ulps.

    ``scale`` (e.g. the row maximum of a logsumexp ``m + log Σ``) adds ``ulps`` ulps
    of it: both sides round the terms of a sum that may cancel.
    """
    info = np.finfo(dtype)
    with np.errstate(all="ignore"):
        g = np.asarray(got).astype(dtype).astype(np.float64)
        r = np.asarray(ref).astype(dtype).astype(np.float64)  # rounded as returned
    assert g.shape == r.shape, f"{what}: shape {g.shape}, expected {r.shape}"
    with np.errstate(all="ignore"):
        same = (g == r) | (np.isnan(g) & np.isnan(r))
        size = np.abs(r) if scale is None else np.abs(r) + np.abs(scale)
        # below the smallest normal number each rounding is to a fixed grid of
        # smallest_subnormal: `ulps` roundings there cost `ulps` of those steps
        tol = ulps * (float(info.eps) * size + float(info.smallest_subnormal))
        ok = same | (np.isfinite(r) & (np.abs(g - r) <= tol))
    if not ok.all():
        idx = np.argwhere(~ok)[:5]
        rows = [
            f"  at {tuple(int(i) for i in j)}: got {g[tuple(j)]!r}, generic {r[tuple(j)]!r}"
            for j in idx
        ]
        raise AssertionError(f"{what} ({np.dtype(dtype).name}, {ulps} ulps)\n" + "\n".join(rows))


def _generic_lsm(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _generic.log_softmax(x, (1,), np.float64, xp=XP)


def _generic_sm(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _generic.softmax(x, (1,), np.float64, xp=XP)


def _generic_lse(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _generic.logsumexp(x, (1,), np.float64, xp=XP)[0][:, 0]


def _generic_nll(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What cross_entropy's generic forward forms: ``log Σ - (z_t + e_t)`` and "no finite logit"."""
    with np.errstate(all="ignore"):
        s = _generic.shift_by_max(x, (1,), np.float64, xp=XP)
        log_sum = _generic.log_total(_generic.row_sums(s, (1,), np.float64, xp=XP), xp=XP)[:, 0]
        rows = np.arange(x.shape[0])
        nll = log_sum - s.z[rows, t].astype(np.float64)
        if s.e is not None:
            nll = nll - s.e[rows, t]
    return nll, s.m[:, 0] == -np.inf


def _generic_grad(x: np.ndarray, t: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``_losses._gradient`` for index targets: ``scale p - scale onehot`` in float64."""
    with np.errstate(all="ignore"):
        p = _generic_sm(x).astype(np.float64)
        onehot = np.zeros_like(p)
        onehot[np.arange(x.shape[0]), t] = 1.0
        return scale[:, None] * p - scale[:, None] * onehot


def _row_max(x: np.ndarray) -> np.ndarray:
    m = np.max(np.where(np.isfinite(x), x, 0), axis=1)
    return m.astype(np.float64)


def _prob_ulps(dtype: Any) -> float:
    return 3.0 if np.dtype(dtype) == np.float64 else 2.0


# --------------------------------------------------------------------------- inputs


@st.composite
def hostile_rows(draw: Any) -> np.ndarray:
    """A read-only C-contiguous (n, C) float32/float64 array with hostile rows."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(1, 6))
    c = draw(st.one_of(st.integers(1, 40), st.integers(500, 3000)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    info = np.finfo(dtype)
    kind = draw(st.sampled_from(["normal", "wide", "extreme", "ties", "offset"]))
    if kind == "normal":
        x = rng.standard_normal((n, c)) * draw(st.sampled_from([0.1, 1.0, 10.0, 300.0]))
    elif kind == "wide":
        x = rng.uniform(-800.0, 10.0, (n, c))
    elif kind == "extreme":
        x = rng.choice([-1.0, 1.0], (n, c)) * float(info.max) * rng.uniform(0.0, 1.0, (n, c))
    elif kind == "ties":
        x = rng.integers(-3, 1, (n, c)).astype(np.float64)
    else:  # a huge common offset: the shift must be exact
        x = 1e8 + rng.standard_normal((n, c)) * 30.0
    x = x.astype(dtype)
    # hypothesis-drawn entries: any float of the dtype, specials included
    floats = st.floats(
        width=32 if dtype == np.float32 else 64, allow_nan=True, allow_infinity=True
    )
    for _ in range(draw(st.integers(0, 4))):
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, c - 1))
        x[i, j] = draw(floats)
    if draw(st.booleans()):  # sprinkle specials over a few rows
        for special in draw(st.lists(st.sampled_from([-np.inf, np.inf, np.nan]), max_size=3)):
            x[draw(st.integers(0, n - 1)), draw(st.integers(0, c - 1))] = special
    if draw(st.booleans()):
        x[draw(st.integers(0, n - 1))] = -np.inf  # a row with no finite logit
    if draw(st.booleans()):
        x[draw(st.integers(0, n - 1)), :] = info.max  # all tied at the largest float
    x.flags.writeable = False
    return x


# --------------------------------------------------------------------------- kernels


@given(x=hostile_rows())
def test_log_softmax_kernel_equals_generic(x: np.ndarray) -> None:
    before = x.copy()
    _close(cpu.log_softmax(x), _generic_lsm(x), x.dtype, 2, "log_softmax")
    np.testing.assert_array_equal(x, before)


@given(x=hostile_rows())
def test_softmax_kernel_equals_generic(x: np.ndarray) -> None:
    _close(cpu.softmax(x), _generic_sm(x), x.dtype, _prob_ulps(x.dtype), "softmax")


@given(x=hostile_rows())
def test_logsumexp_kernel_equals_generic(x: np.ndarray) -> None:
    got = cpu.logsumexp(x)
    assert got.dtype == np.float64
    _close(got, _generic_lse(x), x.dtype, 2, "logsumexp", scale=_row_max(x))


@given(x=hostile_rows(), seed=st.integers(0, 2**32 - 1))
def test_target_nll_kernel_equals_generic(x: np.ndarray, seed: int) -> None:
    t = np.random.default_rng(seed).integers(0, x.shape[1], x.shape[0])
    nll, empty = cpu.target_nll(x, t)
    ref, ref_empty = _generic_nll(x, t)
    np.testing.assert_array_equal(empty, ref_empty)
    # float32 data: the NLL is formed in float64 by both, from exact shifts
    _close(nll, ref, np.float64, 2, "target_nll")


@given(x=hostile_rows(), seed=st.integers(0, 2**32 - 1))
def test_nll_and_grad_kernel_equals_generic(x: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, x.shape[1], x.shape[0])
    scale = rng.choice([0.0, 1.0, 1 / 7, 3.5], x.shape[0])
    nll, grad, empty = cpu.nll_grad_empty(x, t, scale)
    ref, ref_empty = _generic_nll(x, t)
    np.testing.assert_array_equal(empty, ref_empty)
    _close(nll, ref, np.float64, 2, "nll")
    assert grad.dtype == x.dtype
    ref_grad = _generic_grad(x, t, scale)
    _close(grad, ref_grad, x.dtype, _prob_ulps(x.dtype), "grad")
    nll2, grad2 = cpu.nll_and_grad(x, t, scale)
    np.testing.assert_array_equal(nll2, nll)
    np.testing.assert_array_equal(grad2, grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_rows_equal_generic(dtype: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs above the parallel threshold (rows split over threads), special rows included."""
    monkeypatch.setattr(cpu, "_PARALLEL_MIN_SIZE", 1 << 12)
    rng = np.random.default_rng(7)
    n, c = 8, 1000
    x = (rng.standard_normal((n, c)) * 20).astype(dtype)
    x[1] = -np.inf
    x[2, 5] = np.nan
    x[3, 7] = np.inf
    x[4, ::3] = -np.inf
    assert cpu._parallel(x) is not None
    t = rng.integers(0, c, n)
    scale = np.full(n, 0.125)
    _close(cpu.log_softmax(x), _generic_lsm(x), dtype, 2, "log_softmax")
    _close(cpu.softmax(x), _generic_sm(x), dtype, _prob_ulps(dtype), "softmax")
    _close(cpu.logsumexp(x), _generic_lse(x), dtype, 2, "logsumexp", scale=_row_max(x))
    nll, grad, empty = cpu.nll_grad_empty(x, t, scale)
    ref, ref_empty = _generic_nll(x, t)
    np.testing.assert_array_equal(empty, ref_empty)
    _close(nll, ref, np.float64, 2, "nll")
    _close(grad, _generic_grad(x, t, scale), dtype, _prob_ulps(dtype), "grad")
    np.testing.assert_array_equal(cpu.target_nll(x, t)[0], nll)


def test_exp_within_0_55_ulp_of_long_double() -> None:
    """The hand-written exp: 0.55 ulp on normal results, 0 below -745.2, NaN stays NaN."""
    rng = np.random.default_rng(3)
    z = np.concatenate(
        [
            -rng.exponential(1.0, 200_000),
            -rng.uniform(0.0, 708.0, 200_000),
            -rng.uniform(708.0, 746.0, 20_000),
            [0.0, -0.0, -1e-300, -745.2, -745.1, -746.0, -1e6, -np.inf, np.nan],
        ]
    )
    got = np.empty_like(z)
    _numba_rows.exp_array(z, got)
    with np.errstate(all="ignore"):
        ref = np.exp(z.astype(np.longdouble))
    if np.finfo(np.longdouble).nmant <= 52:
        ref = np.exp(z)  # no wider type: compare with libm within 1 ulp below
    normal = np.isfinite(ref) & (ref >= np.finfo(np.float64).tiny)
    ulp = np.spacing(ref[normal].astype(np.float64)).astype(ref.dtype)
    err = np.abs((got[normal] - ref[normal]) / ulp)
    bound = 0.55 if np.finfo(np.longdouble).nmant > 52 else 1.05
    assert float(err.max()) <= bound
    sub = np.isfinite(ref) & ~normal
    assert np.all(np.abs(got[sub] - ref[sub]) <= np.finfo(np.float64).smallest_subnormal)
    assert got[z <= -746.0].tolist() == [0.0] * int(np.sum(z <= -746.0))
    assert np.isnan(got[-1])
    assert got[-9] == 1.0  # exp(0)


# --------------------------------------------------------------------------- dispatch


def test_eligible() -> None:
    x = np.zeros((3, 4))
    assert cpu.eligible(x)
    assert cpu.eligible(x.astype(np.float32))
    assert not cpu.eligible(x.T)  # not C-contiguous
    assert not cpu.eligible(x[:, :0])  # no column
    assert not cpu.eligible(x.astype(np.float16))
    assert not cpu.eligible(np.zeros(4))
    assert not cpu.eligible(np.ma.masked_array(x))  # subclass


def test_public_functions_run_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy arrays reduced over the last axis take the fused kernel when numba may run."""
    if not cpu.available():
        pytest.skip("XSOFTMAX_NO_NUMBA is set: the kernels are disabled")
    calls: list[str] = []
    for name in ("log_softmax", "softmax", "logsumexp", "target_nll", "nll_grad_empty"):
        real = getattr(cpu, name)

        def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(cpu, name, spy)
    x = np.random.default_rng(0).standard_normal((2, 3, 5))
    t = np.array([[0, 1, 4], [2, 3, 0]])
    xsoftmax.log_softmax(x)
    xsoftmax.softmax(x)
    xsoftmax.logsumexp(x, axis=-1)
    xsoftmax.cross_entropy(x, t)
    xsoftmax.cross_entropy_with_grad(x, t)
    xsoftmax.log_softmax(x, axis=0)  # not the last axis: generic
    assert calls == ["log_softmax", "softmax", "logsumexp", "target_nll", "nll_grad_empty"]


def _fresh(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
        timeout=120,
    )
    return result.stdout.strip()


def test_import_loads_no_numba_torch_jax() -> None:
    code = (
        "import sys, xsoftmax; "
        "print(sorted(m for m in ('numba', 'torch', 'jax', 'array_api_compat.numpy') "
        "if m in sys.modules))"
    )
    assert _fresh(code) == "[]"


def test_first_numpy_call_skips_array_api_compat_numpy() -> None:
    """Plain ndarrays use NumPy's own namespace (NumPy >= 2.1): no 150-300 ms import."""
    if numpy_namespace() is not np:
        pytest.skip("NumPy < 2.1 uses array_api_compat.numpy")
    code = (
        "import sys, numpy as np, xsoftmax; "
        "x = np.ones((4, 3)); xsoftmax.log_softmax(x); xsoftmax.cross_entropy(x, np.zeros(4, int)); "
        "print('array_api_compat.numpy' in sys.modules)"
    )
    assert _fresh(code, XSOFTMAX_NO_NUMBA="1") == "False"
