"""Regressions of issue 10 for the softmax family and logsumexp (items 3, 5, 6, 7, 15, 17, 20).

Each test fails on the code before its fix and compares with an independent oracle:
float64 definitions (``oracles.py``), SciPy 1.17's ``logsumexp`` or the correctly
rounded mpmath reference of ``benchmarks/_mpref.py``.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.special
from conftest import get_backend
from oracles import assert_close, ref_log_softmax, ref_logsumexp, ref_softmax

import xsoftmax
from xsoftmax._contract.config import fast_paths_disabled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _mpref import row_reference, ulp

ROWS = np.array([[0.3, 1.7, -2.2, 5.0], [1e3, -1e3, 0.0, 999.5], [-40.0, 0.0, 1e-8, -7.25]])


# --------------------------------------------------------------------------------------
# item 3: non-native byte order is still float64 / float32
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [">", "<"])
@pytest.mark.parametrize("kind", ["f8", "f4"])
def test_byte_order_dtype_policy(kind: str, order: str) -> None:
    """'>f8' was computed in float32 (relative error 8.5e-8): compared with float64 oracles."""
    dtype = np.dtype(order + kind)
    x = ROWS.astype(dtype)
    name = "float64" if kind == "f8" else "float32"
    for func, ref in (
        (xsoftmax.softmax, ref_softmax),
        (xsoftmax.log_softmax, ref_log_softmax),
    ):
        got = func(x)
        assert np.dtype(got.dtype).itemsize == dtype.itemsize
        assert_close(got, ref(x), dtype=name, rtol=16 * np.finfo(name).eps, atol=1e-300)
    got = xsoftmax.logsumexp(x, axis=1)
    assert_close(got, ref_logsumexp(x, axis=1), dtype=name, rtol=4 * np.finfo(name).eps)
    b = np.array([1.0, -0.5, 2.0, 0.25], dtype=dtype)
    got, sign = xsoftmax.logsumexp(x, axis=1, b=b, return_sign=True)
    want, wsign = ref_logsumexp(x, axis=1, b=b, return_sign=True)
    assert_close(got, want, dtype=name, rtol=16 * np.finfo(name).eps)
    np.testing.assert_array_equal(np.asarray(sign), wsign)


@pytest.mark.parametrize("kind", ["f8", "f4"])
def test_byte_order_losses(kind: str) -> None:
    x = ROWS.astype(">" + kind)
    name = "float64" if kind == "f8" else "float32"
    got = xsoftmax.cross_entropy(x, np.array([3, 0, 1]), reduction="none")
    want = -ref_log_softmax(x)[np.arange(3), [3, 0, 1]]
    assert_close(got, want, dtype=name, rtol=16 * np.finfo(name).eps, atol=1e-300)


def test_byte_order_dask() -> None:
    if get_backend("dask") is None:
        pytest.skip("dask backend not selected")
    import dask.array as da

    x = ROWS.astype(">f8")
    got = xsoftmax.log_softmax(da.from_array(x, chunks=(2, 2))).compute()
    assert_close(got, ref_log_softmax(x), dtype="float64", rtol=16 * 2.0**-52, atol=1e-300)


# --------------------------------------------------------------------------------------
# item 7: devices without float64
# --------------------------------------------------------------------------------------
def _no_float64() -> tuple[Any, Any]:
    if get_backend("array-api-strict") is None:
        pytest.skip("array-api-strict backend not selected")
    import array_api_strict as xp

    return xp, xp.Device("no_float64")


def test_no_float64_device_softmax_family() -> None:
    """float32 on a device without float64 (was: ValueError from an astype to float64)."""
    xp, dev = _no_float64()
    x_np = ROWS.astype(np.float32)
    x = xp.asarray(x_np, device=dev)
    mask_np = np.array([True, False, True, True])
    mask = xp.asarray(mask_np, device=dev)
    b_np = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    b = xp.asarray(b_np, device=dev)
    cases = {
        "softmax": (xsoftmax.softmax(x), ref_softmax(x_np)),
        "softmax_where": (xsoftmax.softmax(x, where=mask), ref_softmax(x_np, where=mask_np)),
        "log_softmax": (xsoftmax.log_softmax(x), ref_log_softmax(x_np)),
        "logsumexp": (xsoftmax.logsumexp(x, axis=1), ref_logsumexp(x_np, axis=1)),
        "logsumexp_b": (
            xsoftmax.logsumexp(x, axis=1, b=b, return_sign=True)[0],
            ref_logsumexp(x_np, axis=1, b=b_np, return_sign=True)[0],
        ),
        "logsumexp_all": (xsoftmax.logsumexp(x), ref_logsumexp(x_np)),
    }
    for what, (got, want) in cases.items():
        assert got.device == dev, what
        assert got.dtype == xp.float32, what
        assert_close(np.from_dlpack(got), want, dtype="float32", atol=1e-6, what=what)


def test_no_float64_device_losses() -> None:
    import torch
    import torch.nn.functional as F

    xp, dev = _no_float64()
    x_np = ROWS.astype(np.float32)
    x = xp.asarray(x_np, device=dev)
    t_np = np.array([3, 0, 1], dtype=np.int32)
    t = xp.asarray(t_np, device=dev)
    p_np = np.array([[0.1, 0.2, 0.3, 0.4]] * 3, dtype=np.float32)
    p = xp.asarray(p_np, device=dev)
    xt = torch.asarray(x_np.astype(np.float64))
    tt = torch.asarray(t_np.astype(np.int64))
    pt = torch.asarray(p_np.astype(np.float64))
    cases = {
        "cross_entropy": (xsoftmax.cross_entropy(x, t), F.cross_entropy(xt, tt)),
        "cross_entropy_probs": (xsoftmax.cross_entropy(x, p), F.cross_entropy(xt, pt)),
        "cross_entropy_smooth": (
            xsoftmax.cross_entropy(x, t, label_smoothing=0.1),
            F.cross_entropy(xt, tt, label_smoothing=0.1),
        ),
        "nll_loss": (
            xsoftmax.nll_loss(x, t, reduction="sum"),
            F.nll_loss(xt, tt, reduction="sum"),
        ),
        "cross_entropy_with_grad": (
            xsoftmax.cross_entropy_with_grad(x, t)[0],
            F.cross_entropy(xt, tt),
        ),
        "bce": (
            xsoftmax.binary_cross_entropy_with_logits(x, p),
            F.binary_cross_entropy_with_logits(xt, pt),
        ),
    }
    for what, (got, want) in cases.items():
        assert got.device == dev, what
        assert got.dtype == xp.float32, what
        assert_close(np.from_dlpack(got), want.numpy(), dtype="float32", atol=1e-5, what=what)
    _, g = xsoftmax.cross_entropy_with_grad(x, t)
    xt.requires_grad_(True)
    F.cross_entropy(xt, tt).backward()
    assert g.device == dev
    assert_close(np.from_dlpack(g), xt.grad.numpy(), dtype="float32", atol=1e-6)


def test_accumulation_dtype_asks_the_device() -> None:
    from xsoftmax._contract.dtypes import accumulation_dtype

    xp, dev = _no_float64()
    assert accumulation_dtype(xp, xp.float32, dev) == xp.float32
    assert accumulation_dtype(xp, xp.float32, xp.Device("CPU_DEVICE")) == xp.float64


# --------------------------------------------------------------------------------------
# item 15: no subnormal intermediate where the result is normal (XLA flushes them)
# --------------------------------------------------------------------------------------
SUBNORMAL_ROWS = {
    "float64": [
        [0.0, -708.0, -709.0],
        [0.0, -709.0, -709.0],
        [0.0, -700.0, -715.0, -720.0, -745.0],
        [3.0, 3.0, -705.0, -708.5],
    ],
    "float32": [[0.0, -87.0, -88.0], [0.0, -87.5, -87.5], [1.0, -86.0, -90.0, -100.0]],
}


def _mp_errors(func: str, got: Any, rows: np.ndarray, dtype: str) -> np.ndarray:
    """Errors in ulps of the correctly rounded result; subnormal results are excluded
    (flushing them is allowed), every normal one counts however small."""
    errs = []
    for row, g in zip(rows, got, strict=True):
        want = np.atleast_1d(np.asarray(getattr(row_reference(row), func), dtype=np.float64))
        g = np.atleast_1d(np.asarray(g, dtype=np.float64))
        normal = np.abs(want) >= np.finfo(dtype).tiny
        with np.errstate(invalid="ignore"):
            e = np.abs(g - want) / ulp(want, dtype)
        errs.append(np.where(normal, e, 0.0))
    return np.concatenate(errs)


@pytest.mark.parametrize("path", ["default", "generic"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("func", ["log_softmax", "softmax", "logsumexp"])
def test_tiny_terms_exact(backend: Any, func: str, dtype: str, path: str) -> None:
    """``log_softmax([0, -708, -709])[0]`` is -4.52e-308 (JAX gave -3.31e-308), within 4 ulps."""
    for row in SUBNORMAL_ROWS[dtype]:
        r = np.asarray([row], dtype=dtype)
        with fast_paths_disabled() if path == "generic" else contextlib.nullcontext():
            got = getattr(xsoftmax, func)(backend.asarray(r), axis=1)
        err = _mp_errors(func, backend.to_numpy(got), r, dtype)
        assert np.max(err) <= 4.0, (row, err)


@pytest.mark.parametrize("func", ["log_softmax", "softmax", "logsumexp"])
def test_tiny_terms_float32_only_kernel(func: str) -> None:
    """The float32-only kernels (JAX without x64): float32 ``[0, -87, -88]``."""
    if get_backend("jax") is None:
        pytest.skip("jax backend not selected")
    import jax.numpy as jnp

    from xsoftmax._definition import rows as _generic

    for row in SUBNORMAL_ROWS["float32"]:
        r = np.asarray([row], dtype=np.float32)
        x = jnp.asarray(r)
        if func == "logsumexp":
            got = _generic.logsumexp(x, (1,), jnp.float32, xp=jnp)[0][:, 0]
        else:
            got = getattr(_generic, func)(x, (1,), jnp.float32, xp=jnp)
        assert got.dtype == jnp.float32
        err = _mp_errors(func, np.asarray(got), r, "float32")
        assert np.max(err) <= 4.0, (row, err)


@pytest.mark.parametrize("path", ["default", "generic"])
@pytest.mark.parametrize("d", [100.0, 500.0, 650.0, 690.0, 700.0, 705.0])
def test_dominant_logit_softmax(backend: Any, d: float, path: str) -> None:
    """float64 softmax of ``[D, 0, 0.3, -1]``: 505 ulps off on JAX before (``t + t*e``)."""
    r = np.asarray([[d, 0.0, 0.3, -1.0]])
    with fast_paths_disabled() if path == "generic" else contextlib.nullcontext():
        got = backend.to_numpy(xsoftmax.softmax(backend.asarray(r), axis=1))
    err = _mp_errors("softmax", got, r, "float64")
    assert np.max(err) <= 4.0, err


def test_tiny_terms_gradient_jax() -> None:
    """The scaled terms keep their derivative: JAX gradient of logsumexp is the softmax."""
    if get_backend("jax") is None:
        pytest.skip("jax backend not selected")
    import jax
    import jax.numpy as jnp

    x = jnp.asarray([0.0, -600.0, -700.0, 1.0])
    g = jax.grad(lambda v: xsoftmax.logsumexp(v))(x)
    want = scipy.special.softmax(np.asarray(x))
    np.testing.assert_allclose(np.asarray(g), want, rtol=1e-13, atol=0)


# --------------------------------------------------------------------------------------
# item 5: logsumexp broadcasts x with b (SciPy's test_logsumexp_b_shape)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2), -1])
@pytest.mark.parametrize("return_sign", [False, True])
def test_b_broadcasts_with_x(backend: Any, axis: Any, return_sign: bool) -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 1, 2, 1))
    b = rng.normal(size=(3, 1, 5))
    got = xsoftmax.logsumexp(
        backend.asarray(a), b=backend.asarray(b), axis=axis, return_sign=return_sign
    )
    with np.errstate(all="ignore"):
        want = scipy.special.logsumexp(a, b=b, axis=axis, return_sign=return_sign)
    if return_sign:
        assert tuple(got[0].shape) == np.shape(want[0]) == tuple(got[1].shape)
        assert_close(backend.to_numpy(got[0]), want[0], dtype="float64", atol=1e-13)
        np.testing.assert_array_equal(backend.to_numpy(got[1]), want[1])
    else:
        assert tuple(got.shape) == np.shape(want)
        assert_close(backend.to_numpy(got), want, dtype="float64", atol=1e-13)


def test_b_broadcast_keepdims_and_where(backend: Any) -> None:
    a = np.linspace(-2, 3, 6).reshape(2, 1, 3)
    b = np.array([[1.0], [2.0], [0.5], [3.0]])  # (4, 1): x and b give (2, 4, 3)
    where = np.array([True, False, True])
    got = xsoftmax.logsumexp(
        backend.asarray(a),
        b=backend.asarray(b),
        axis=-1,
        keepdims=True,
        where=backend.asarray(where),
    )
    want = ref_logsumexp(np.broadcast_to(a, (2, 4, 3)), axis=-1, keepdims=True, b=b, where=where)
    assert tuple(got.shape) == (2, 4, 1)
    assert_close(backend.to_numpy(got), want, dtype="float64", atol=1e-13)


def test_b_not_broadcastable_names_b(backend: Any) -> None:
    with pytest.raises(ValueError, match=r"logsumexp: `b` of shape \(3,\)") as info:
        xsoftmax.logsumexp(backend.asarray(np.zeros((2, 4))), b=backend.asarray(np.ones(3)))
    assert "(2, 4)" in str(info.value)


# --------------------------------------------------------------------------------------
# item 6: infinite terms with weights, as SciPy (gh-23548)
# --------------------------------------------------------------------------------------
def _scipy_row(x: np.ndarray, b: np.ndarray, return_sign: bool) -> Any:
    """SciPy on the entries with ``b != 0`` (its documented rule: a zero weight removes
    the entry even where it is infinite or NaN; SciPy's direct-sum fallback forgets it)."""
    keep = b != 0
    if not keep.any():
        return (-np.inf, 0.0) if return_sign else -np.inf
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return scipy.special.logsumexp(x[keep], b=b[keep], return_sign=return_sign)


SPECIAL_X = [-np.inf, -1.0, 0.0, 2.0, np.inf, np.nan]
SPECIAL_B = [-2.0, -1.0, 0.0, 0.5, 1.0, np.inf, -np.inf, np.nan]


def _special_grid() -> tuple[np.ndarray, np.ndarray]:
    rows_x, rows_b = [], []
    for x0 in SPECIAL_X:
        for x1 in SPECIAL_X:
            for b0 in SPECIAL_B:
                for b1 in (-1.0, 0.0, 1.0, np.inf):
                    rows_x.append([x0, x1])
                    rows_b.append([b0, b1])
    return np.array(rows_x), np.array(rows_b)


@pytest.mark.parametrize("return_sign", [True, False])
def test_infinite_terms_with_weights_as_scipy(backend: Any, return_sign: bool) -> None:
    """``logsumexp([inf], b=[-1], return_sign=True)`` is ``(inf, -1)``; ``[inf, 1]`` with
    ``b=[-1, 1]`` and ``[inf, inf]`` with ``b=[-1, 1]`` are NaN: the whole grid as SciPy."""
    x, b = _special_grid()
    got = xsoftmax.logsumexp(
        backend.asarray(x), b=backend.asarray(b), axis=1, return_sign=return_sign
    )
    for i in range(x.shape[0]):
        want = _scipy_row(x[i], b[i], return_sign)
        if return_sign:
            g = (float(backend.to_numpy(got[0])[i]), float(backend.to_numpy(got[1])[i]))
            w = (float(want[0]), float(want[1]))
            if np.isnan(w[0]):  # SciPy's sign of a NaN result is NaN
                assert np.isnan(g[0]), (x[i], b[i], g, w)
                assert np.isnan(g[1]), (x[i], b[i], g, w)
                continue
        else:
            g, w = (float(backend.to_numpy(got)[i]),), (float(want),)
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=0, err_msg=f"x={x[i]}, b={b[i]}")


def test_infinite_terms_issue_examples() -> None:
    inf = np.inf
    r, s = xsoftmax.logsumexp(np.array([inf]), b=np.array([-1.0]), return_sign=True)
    assert (float(r), float(s)) == (inf, -1.0)
    assert np.isnan(xsoftmax.logsumexp(np.array([inf, 1.0]), b=np.array([-1.0, 1.0])))
    assert np.isnan(xsoftmax.logsumexp(np.array([inf, inf]), b=np.array([-1.0, 1.0])))
    assert np.isnan(xsoftmax.logsumexp(np.array([inf]), b=np.array([-1.0])))


# --------------------------------------------------------------------------------------
# item 17: no overflowing cast at compute time (Dask)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_dask_log_softmax_no_overflow_warning(dtype: str) -> None:
    """``[max, -max, 0]``: the float64 shift is cast to the data's dtype without a warning."""
    if get_backend("dask") is None:
        pytest.skip("dask backend not selected")
    import dask.array as da

    top = float(np.finfo(dtype).max)
    x = np.array([[top, -top, 0.0], [1.0, 2.0, 3.0]], dtype=dtype)
    lazy = xsoftmax.log_softmax(da.from_array(x, chunks=(1, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = lazy.compute()
    assert got.dtype == np.dtype(dtype)
    with np.errstate(over="ignore"):
        want = ref_log_softmax(x).astype(dtype)
    np.testing.assert_array_equal(got, want)


def test_cast_in_range_rounds_like_the_cast() -> None:
    """Values beyond the narrow dtype's range become inf exactly where the cast would."""
    from xsoftmax._contract.prepare import cast_in_range

    top = float(np.finfo(np.float32).max)
    limit = 2.0**128 - 2.0**103  # max + ulp(max) / 2: the first value that rounds to inf
    v = np.array([top, np.nextafter(limit, 0), limit, -limit, 1e300, -np.inf, np.nan, 0.0])
    with np.errstate(over="ignore"):
        want = v.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = cast_in_range(v, np.float32, np)
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------
# item 20: 0-d inputs (docs/contract/errors.md E23, E25)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0, -1, (), (0,)])
@pytest.mark.parametrize("value", [2.5, -np.inf, np.inf, np.nan])
def test_zero_d_logsumexp_returns_x(backend: Any, axis: Any, value: float) -> None:
    x = np.asarray(value)
    got = xsoftmax.logsumexp(backend.asarray(x), axis=axis)
    assert tuple(got.shape) == ()
    np.testing.assert_array_equal(backend.to_numpy(got), x)  # SciPy 1.17 gives x
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(backend.to_numpy(got), scipy.special.logsumexp(x))


def test_zero_d_logsumexp_with_b(backend: Any) -> None:
    got, sign = xsoftmax.logsumexp(
        backend.asarray(np.asarray(1.5)), b=backend.asarray(np.asarray(-2.0)), return_sign=True
    )
    want, wsign = scipy.special.logsumexp(np.asarray(1.5), b=-2.0, return_sign=True)
    assert tuple(got.shape) == ()
    assert_close(backend.to_numpy(got), want, dtype="float64")
    assert float(backend.to_numpy(sign)) == wsign


@pytest.mark.parametrize("axis", [0, -1, (0,), (-1,)])
@pytest.mark.parametrize("value", [2.5, -1e300, -np.inf, np.nan])
def test_zero_d_softmax_family(backend: Any, axis: Any, value: float) -> None:
    """torch and SciPy: 1 / 0 (NaN for NaN), 0-d, the input's dtype; -inf is a row with
    no entry: 0 / -inf (docs/contract/errors.md E25 and its empty-row rule; torch gives NaN)."""
    import torch

    x = np.asarray(value)
    for func, ref in (
        (xsoftmax.softmax, torch.softmax),
        (xsoftmax.log_softmax, torch.log_softmax),
    ):
        got = func(backend.asarray(x), axis=axis)
        assert tuple(got.shape) == ()
        assert backend.to_numpy(got).dtype == np.float64
        if value == -np.inf:
            want = 0.0 if func is xsoftmax.softmax else -np.inf
        else:
            want = ref(torch.asarray(x), 0).numpy()
        np.testing.assert_array_equal(backend.to_numpy(got), want)


def test_zero_d_softmax_family_where(backend: Any) -> None:
    x = backend.asarray(np.asarray(3.0))
    off = backend.asarray(np.asarray(False))
    on = backend.asarray(np.asarray(True))
    assert float(backend.to_numpy(xsoftmax.softmax(x, axis=0, where=off))) == 0.0
    assert float(backend.to_numpy(xsoftmax.log_softmax(x, axis=0, where=off))) == -np.inf
    assert float(backend.to_numpy(xsoftmax.softmax(x, axis=0, where=on))) == 1.0
    assert float(backend.to_numpy(xsoftmax.log_softmax(x, axis=-1, where=on))) == 0.0


@pytest.mark.parametrize("axis", [1, -2, (0, -1), ()])
def test_zero_d_other_axis_is_an_error(backend: Any, axis: Any) -> None:
    x = backend.asarray(np.asarray(1.0))
    for func in (xsoftmax.softmax, xsoftmax.log_softmax):
        with pytest.raises(ValueError, match="axis"):
            func(x, axis=axis)
    if axis != ():
        with pytest.raises(ValueError, match="axis"):
            xsoftmax.logsumexp(x, axis=axis)


def test_zero_d_where_must_be_zero_d(backend: Any) -> None:
    x = backend.asarray(np.asarray(1.0))
    with pytest.raises(ValueError, match="where"):
        xsoftmax.softmax(x, axis=0, where=backend.asarray(np.array([True, False])))
