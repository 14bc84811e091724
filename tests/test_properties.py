"""Property tests: every backend agrees with independent references, for random input.

References are independent of xsoftmax: careful NumPy definitions evaluated in
``np.longdouble`` (80-bit extended precision on x86-64, so float64 input is
represented exactly and ranges up to 1e4932 never overflow), ``scipy.special``
and, where torch imports, ``torch.nn.functional`` in float64. Tolerances derive
from the output dtype's machine epsilon.

Run with ``HYPOTHESIS_PROFILE=dev`` for 300 examples per property instead of the
CI profile's 25.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import scipy.special as sps
from conftest import get_backend
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (
    COMPUTE_DTYPE,
    FLOAT_INFO,
    PROPERTY_SETTINGS,
    REDUCTIONS,
    class_targets,
    class_weights,
    dyadic_logits,
    few_shapes,
    float_dtypes,
    ignore_indices,
    label_smoothings,
    logits,
    normalize_axes,
    probability_targets,
    shape_and_axis,
    sprinkle_mask,
)

import xsoftmax
from xsoftmax._contract.config import fast_paths_disabled

LD = np.longdouble

# --------------------------------------------------------------------------- references


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence NumPy/SciPy floating point warnings inside the references."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _to_rows(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, Callable]:
    """Move ``axes`` last and flatten them: (batch..., K); returns the inverse too."""
    rest = [a for a in range(x.ndim) if a not in axes]
    perm = rest + list(axes)
    y = np.transpose(x, perm)
    batch = y.shape[: len(rest)]
    red = y.shape[len(rest) :]
    rows = y.reshape((*batch, int(np.prod(red, dtype=np.int64))))

    def undo(r: np.ndarray) -> np.ndarray:
        back = r.reshape(batch + red)
        return np.transpose(back, np.argsort(perm))

    return rows, undo


def ref_log_softmax(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``(x - m) - log1p(sum of the other exp(x_j - m)))`` in long double (rows need a finite entry)."""
    with _quiet():
        r, undo = _to_rows(np.asarray(x, LD), axes)
        m = np.max(r, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, LD(0))
        z = r - m
        e = np.exp(z)
        top = np.argmax(z, axis=-1)[..., None]
        np.put_along_axis(e, top, LD(0), axis=-1)
        out = z - np.log1p(np.sum(e, axis=-1, keepdims=True))
    return undo(out)


def ref_softmax(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``exp`` of the long double log-softmax."""
    with _quiet():
        return np.exp(ref_log_softmax(x, axes))


def ref_logsumexp(
    x: np.ndarray, axes: tuple[int, ...], b: np.ndarray | None = None, keepdims: bool = False
) -> np.ndarray:
    """log(sum(b * exp(x))) for non-negative ``b`` in long double, with the largest term out."""
    with _quiet():
        xb = np.asarray(x, LD)
        bb = np.ones_like(xb) if b is None else np.broadcast_to(np.asarray(b, LD), xb.shape)
        r, _ = _to_rows(xb, axes)
        br, _ = _to_rows(np.ascontiguousarray(bb), axes)
        live = (br != 0) & (r > -np.inf)
        masked = np.where(live, r, -np.inf)
        m = (
            np.max(masked, axis=-1, keepdims=True)
            if r.shape[-1]
            else np.full((*r.shape[:-1], 1), -np.inf, LD)
        )
        m = np.where(np.isfinite(m), m, LD(0))
        terms = np.where(live, br * np.exp(r - m), LD(0))
        top = np.argmax(masked, axis=-1)[..., None] if r.shape[-1] else None
        if top is None:
            out = np.full(r.shape[:-1], -np.inf, LD)
        else:
            t_top = np.take_along_axis(terms, top, axis=-1)
            np.put_along_axis(terms, top, LD(0), axis=-1)
            rest = np.sum(terms, axis=-1, keepdims=True)
            val = m + np.log(t_top) + np.log1p(rest / t_top)
            out = np.where(np.any(live, axis=-1, keepdims=True), val, -np.inf)[..., 0]
    if keepdims:
        out = np.expand_dims(out, axes)
    return out


def _smoothed(t: np.ndarray, eps: float, n_classes: int) -> np.ndarray:
    return t * (1 - LD(eps)) + LD(eps) / n_classes


def ref_cross_entropy(
    x: np.ndarray,
    target: np.ndarray,
    *,
    axis: int,
    weight: np.ndarray | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's cross entropy (class or probability targets) and its gradient, in long double.

    Returns ``(loss, dloss/dx, scale)`` with torch's reductions; for ``"none"`` the
    gradient is that of the sum of the per-sample losses. ``scale`` is the sum of the
    magnitudes of the terms that make up each gradient entry (rounding errors of a
    correct implementation are a few eps times it). A mean over no weight gives a
    NaN loss and a zero gradient.
    """
    axis = axis % x.ndim
    with _quiet():
        lp = np.moveaxis(ref_log_softmax(x, (axis,)), axis, -1)
        p = np.exp(lp)
        n_classes = lp.shape[-1]
        w = np.ones(n_classes, LD) if weight is None else np.asarray(weight, LD)
        eps = LD(label_smoothing)
        if target.shape == x.shape:  # probability targets
            t = _smoothed(
                np.moveaxis(np.asarray(target, LD), axis, -1), label_smoothing, n_classes
            )
            per = -np.sum(w * t * lp, axis=-1)
            grad = np.sum(w * t, axis=-1, keepdims=True) * p - w * t
            scale = np.sum(w * t, axis=-1, keepdims=True) * p + w * t
            norm = LD(per.size) if per.size else LD(np.nan)
        else:
            t = np.asarray(target, np.int64)
            valid = t != ignore_index
            tc = np.where(valid, t, 0)[..., None]
            w_t = np.where(valid, w[tc[..., 0]], LD(0))
            lp_t = np.take_along_axis(lp, tc, axis=-1)[..., 0]
            onehot = np.arange(n_classes) == tc
            per = (1 - eps) * (-w_t * lp_t)
            grad = (1 - eps) * w_t[..., None] * (p - onehot)
            scale = (1 - eps) * w_t[..., None] * (p + onehot)
            if label_smoothing:
                per = per + np.where(valid, eps / n_classes * -np.sum(w * lp, axis=-1), LD(0))
                smooth_grad = eps / n_classes * (np.sum(w) * p - w)
                grad = grad + np.where(valid[..., None], smooth_grad, LD(0))
                smooth_scale = eps / n_classes * (np.sum(w) * p + w)
                scale = scale + np.where(valid[..., None], smooth_scale, LD(0))
            norm = np.sum(w_t)
        if reduction == "none":
            loss = per
        elif reduction == "sum":
            loss = np.sum(per)
        else:
            # no weight counted (everything ignored, or zero weights): NaN, as torch
            loss = np.sum(per) / norm if norm else LD(np.nan)
            grad = grad / norm if norm else np.zeros_like(grad)
            scale = scale / norm if norm else np.zeros_like(scale)
    return loss, np.moveaxis(grad, -1, axis), np.moveaxis(scale, -1, axis)


def ref_nll_loss(
    lp: np.ndarray,
    target: np.ndarray,
    *,
    axis: int,
    weight: np.ndarray | None,
    ignore_index: int,
    reduction: str,
) -> np.ndarray:
    """torch's nll_loss in long double (log-probabilities taken as given)."""
    with _quiet():
        lp = np.moveaxis(np.asarray(lp, LD), axis % lp.ndim, -1)
        n_classes = lp.shape[-1]
        w = np.ones(n_classes, LD) if weight is None else np.asarray(weight, LD)
        t = np.asarray(target, np.int64)
        valid = t != ignore_index
        tc = np.where(valid, t, 0)[..., None]
        w_t = np.where(valid, w[tc[..., 0]], LD(0))
        per = -w_t * np.take_along_axis(lp, tc, axis=-1)[..., 0]
        per = np.where(valid, per, LD(0))
        if reduction == "none":
            return per
        if reduction == "sum":
            return np.sum(per)
        return np.sum(per) / np.sum(w_t)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def ref_bce_with_logits(
    x: np.ndarray,
    y: np.ndarray,
    *,
    weight: np.ndarray | None,
    pos_weight: np.ndarray | None,
    reduction: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``w * (pw * y * softplus(-x) + (1 - y) * softplus(x))`` in long double, and a scale.

    The scale, ``w * (pw + 1) * (|x| + 1)``, bounds the terms that torch's formula
    cancels; rounding errors of a correct implementation are eps times it.
    """
    with _quiet():
        x = np.asarray(x, LD)
        y = np.asarray(y, LD)
        w = LD(1) if weight is None else np.asarray(weight, LD)
        pw = LD(1) if pos_weight is None else np.asarray(pos_weight, LD)
        per = w * (pw * y * _softplus(-x) + (1 - y) * _softplus(x))
        scale = np.abs(w) * (np.abs(pw) + 1) * (np.abs(x) + 1) * np.ones_like(per)
        if reduction == "none":
            return per, scale
        if reduction == "sum":
            return np.sum(per), np.sum(scale)
        n = per.size
        return np.sum(per) / n, np.sum(scale) / n


# --------------------------------------------------------------------------- comparison


def _ld(a: Any) -> np.ndarray:
    """``a`` as long double (every float16/32/64 value is exact there)."""
    return np.asarray(a).astype(LD)


def assert_matches(
    got: np.ndarray,
    ref: np.ndarray,
    dtype: str,
    *,
    ulps: float = 8,
    atol: float | None = None,
    scale: np.ndarray | None = None,
    allow_inf: bool = False,
    what: str = "",
) -> None:
    """``got`` (in ``dtype``) equals the exact ``ref`` within ``ulps`` of ``dtype``.

    NaN must match NaN; an exact value beyond ``finfo(dtype).max`` must come back as
    +-inf or +-max of its sign; ``atol`` defaults to the smallest normal number
    (underflow); ``scale`` adds ``ulps * eps * scale`` to the tolerance; ``allow_inf``
    also accepts +-inf of the right sign (a mean whose intermediate sum overflows, which
    docs/contract/errors.md only advises against).
    """
    info = FLOAT_INFO[dtype]
    g = _ld(got)
    r = np.asarray(ref, LD)
    assert g.shape == r.shape, f"{what}: shape {g.shape}, expected {r.shape}"
    with _quiet():
        nan_r = np.isnan(r)
        bad_nan = np.isnan(g) != nan_r
        over = ~nan_r & (np.abs(r) > info.max)
        same_sign = np.sign(g) == np.sign(r)
        ok_over = same_sign & (np.isinf(g) | (np.abs(g) == LD(info.max)))
        exact_inf = np.isinf(r)
        ok_over = np.where(exact_inf, g == r, ok_over)
        tol = LD(ulps * info.eps) * np.abs(r)
        tol = tol + LD(info.smallest_normal if atol is None else atol)
        if scale is not None:
            tol = tol + LD(ulps * info.eps) * np.asarray(scale, LD)
        # +-inf is also right where the exact value is within the computation's error
        # (16 ulps of the compute dtype) of the rounding edge max + ulp(max)/2
        inf_edge = LD(info.max) * (1 + LD(info.eps) / 4)
        comp_eps = LD(FLOAT_INFO[COMPUTE_DTYPE[dtype]].eps)
        near_max = np.abs(r) * (1 + 16 * comp_eps) >= inf_edge
        inf_ok = near_max | allow_inf
        ok_in = (np.abs(g - r) <= tol) | (inf_ok & np.isinf(g) & same_sign)
        ok = ~bad_nan & np.where(nan_r, True, np.where(over, ok_over, ok_in))
    if not np.all(ok):
        idx = np.argwhere(~ok)[:5] if g.ndim else [()]
        rows = [
            f"  at {tuple(int(i) for i in j)}: got {g[tuple(j)]!r}, expected {r[tuple(j)]!r}"
            for j in idx
        ]
        n_bad = int(np.sum(~ok))
        raise AssertionError(
            f"{what} ({dtype}, {ulps} ulps): {n_bad} mismatches\n" + "\n".join(rows)
        )


def _overflows(exact: np.ndarray, dtype: str) -> bool:
    """Whether the exact value is beyond ``finfo(dtype).max`` in magnitude."""
    return bool(np.abs(np.asarray(exact, LD)) > FLOAT_INFO[dtype].max)


def check_dtype(backend: Any, out: Any, dtype: str, what: str = "") -> None:
    """The output's dtype is ``backend``'s ``dtype``."""
    try:
        expected = backend.dtype(dtype)
    except AttributeError:  # array_api_compat.dask.array has no float16 attribute
        expected = np.dtype(dtype)
    assert out.dtype == expected, f"{what}: dtype {out.dtype}, expected {dtype}"


def to_backend(backend: Any, a: Any, dtype: str | None = None) -> Any:
    """``backend.asarray(a, dtype)`` with ``a``'s shape kept.

    Works around tests/_backends.py's torch converter, whose ``np.ascontiguousarray``
    turns a 0-d array into shape (1,).
    """
    a = np.asarray(a)
    out = backend.asarray(a, dtype)
    if tuple(out.shape) != a.shape:
        out = backend.xp.reshape(out, a.shape)
    return out


def as_input(backend: Any, a: np.ndarray, dtype: str) -> tuple[Any, np.ndarray]:
    """The backend array for ``a`` in ``dtype``, and its exact values as NumPy."""
    arr = to_backend(backend, a, dtype)
    return arr, backend.to_numpy(arr)


def vjp(backend: Any, fn: Callable[[Any], Any], x: Any, cotangent: np.ndarray) -> np.ndarray:
    """Autograd's ``cotangent @ d fn(x) / dx`` on torch or JAX, as NumPy."""
    if "torch" in backend.extra:
        torch = backend.extra["torch"]
        xg = x.detach().clone().requires_grad_(True)
        out = fn(xg)
        ct_np = np.array(cotangent, dtype=np.float64, copy=True)  # writable, 0-d kept
        ct = torch.asarray(ct_np, device=out.device).to(out.dtype)
        (g,) = torch.autograd.grad(out, xg, grad_outputs=ct)
        return backend.to_numpy(g)
    jax = backend.extra["jax"]
    out, pullback = jax.vjp(fn, x)
    (g,) = pullback(jax.numpy.asarray(cotangent, dtype=out.dtype))
    return backend.to_numpy(g)


def _outputs(res: Any) -> list[Any]:
    return list(res) if isinstance(res, tuple) else [res]


# --------------------------------------------------------------------------- agreement


@PROPERTY_SETTINGS
@given(data=st.data())
def test_softmax_and_log_softmax_match_reference(backend: Any, data: st.DataObject) -> None:
    """softmax / log_softmax equal the long double reference and scipy, any axis, any dtype."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(tuple_axis=True, palette=few_shapes(backend)), label="shape, axis"
    )
    x, xn = as_input(backend, data.draw(logits(shape, dtype), label="x"), dtype)
    axes = normalize_axes(axis, len(shape))
    p = xsoftmax.softmax(x, axis=axis)
    lp = xsoftmax.log_softmax(x, axis=axis)
    check_dtype(backend, p, dtype, "softmax")
    check_dtype(backend, lp, dtype, "log_softmax")
    assert_matches(backend.to_numpy(p), ref_softmax(xn, axes), dtype, what="softmax")
    assert_matches(backend.to_numpy(lp), ref_log_softmax(xn, axes), dtype, what="log_softmax")
    # scipy as a second, independent oracle; it may lose the top class's tiny
    # log-probability, hence an absolute eps allowance in log space
    with _quiet():
        x64 = xn.astype(np.float64)
        sp_p = sps.softmax(x64, axis=axes)
        sp_lp = sps.log_softmax(x64, axis=axes)
    eps = FLOAT_INFO[dtype].eps
    assert_matches(
        backend.to_numpy(p), sp_p, dtype, ulps=16, atol=16 * eps, what="vs scipy softmax"
    )
    if (
        dtype != "float64"
    ):  # float64 log-probabilities beyond what scipy resolves are compared above
        assert_matches(
            backend.to_numpy(lp), sp_lp, dtype, ulps=16, atol=16 * eps, what="vs scipy log_softmax"
        )


@PROPERTY_SETTINGS
@given(data=st.data())
def test_logsumexp_matches_scipy(backend: Any, data: st.DataObject) -> None:
    """logsumexp (axis None/int/tuple, keepdims, b >= 0, return_sign) equals scipy's."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(tuple_axis=True, palette=few_shapes(backend)), label="shape, axis"
    )
    if data.draw(st.booleans(), label="axis=None"):
        axis = None
    keepdims = data.draw(st.booleans(), label="keepdims")
    return_sign = data.draw(st.booleans(), label="return_sign")
    x, xn = as_input(backend, data.draw(logits(shape, dtype), label="x"), dtype)
    kwargs: dict[str, Any] = {"axis": axis, "keepdims": keepdims, "return_sign": return_sign}
    bn = None
    if data.draw(st.booleans(), label="with b"):
        b_shape = data.draw(
            st.sampled_from([shape, shape[-1:], (1,) * len(shape)]), label="b shape"
        )
        b_vals = st.one_of(st.just(0.0), st.floats(0.0, 8.0, allow_subnormal=False))
        b, bn = as_input(
            backend, data.draw(hnp.arrays(np.float64, b_shape, elements=b_vals)), dtype
        )
        kwargs["b"] = b
    res = xsoftmax.logsumexp(x, **kwargs)
    outs = _outputs(res)
    assert len(outs) == (2 if return_sign else 1)
    axes = normalize_axes(axis, len(shape))
    expected = ref_logsumexp(xn, axes, bn, keepdims=keepdims)
    check_dtype(backend, outs[0], dtype, "logsumexp")
    assert_matches(backend.to_numpy(outs[0]), expected, dtype, what="logsumexp")
    with _quiet():
        sp_kwargs = {"axis": axis, "keepdims": keepdims, "return_sign": return_sign}
        sp = sps.logsumexp(
            xn.astype(np.float64), b=None if bn is None else bn.astype(np.float64), **sp_kwargs
        )
    sp_val = np.asarray(sp[0] if return_sign else sp)
    # scipy gives NaN where every b is 0 and exp(x) overflows float64 (0 * inf); the contract
    # (b == 0 masks its entry) and the reference say -inf: compare the rest
    sp_val = np.where(np.isnan(sp_val) & (expected == -np.inf), -np.inf, sp_val)
    eps = FLOAT_INFO[dtype].eps
    assert_matches(
        backend.to_numpy(outs[0]),
        np.asarray(sp_val),
        dtype,
        ulps=16,
        atol=16 * eps,
        what="vs scipy",
    )
    if return_sign:
        sign = backend.to_numpy(outs[1])
        assert sign.shape == np.shape(sp[1])
        assert np.array_equal(sign, np.where(expected == -np.inf, 0.0, 1.0).astype(sign.dtype)), (
            f"sign {sign}, expected 1 (0 where the sum is 0)"
        )


@PROPERTY_SETTINGS
@given(data=st.data())
def test_logsumexp_signed_b(backend: Any, data: st.DataObject) -> None:
    """With negative ``b`` and ``return_sign``, sign * exp(result) is the signed sum."""
    dtype = data.draw(st.sampled_from(["float32", "float64"]), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(max_dims=2, palette=few_shapes(backend)), label="shape, axis"
    )
    x, xn = as_input(backend, data.draw(logits(shape, dtype, extreme=False), label="x"), dtype)
    b_vals = st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    b, bn = as_input(backend, data.draw(hnp.arrays(np.float64, shape, elements=b_vals)), dtype)
    lse, sign = xsoftmax.logsumexp(x, axis=axis, b=b, return_sign=True)
    lse_n, sign_n = backend.to_numpy(lse), backend.to_numpy(sign)
    with _quiet():
        xl, bl = np.asarray(xn, LD), np.asarray(bn, LD)
        m = np.max(np.where(bl != 0, xl, -np.inf), axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, LD(0))
        exact = np.sum(bl * np.exp(xl - m), axis=axis)  # scaled by exp(-m)
        bound = np.sum(np.abs(bl) * np.exp(xl - m), axis=axis)
        m = np.squeeze(m, axis=axis)
        got = np.asarray(sign_n, LD) * np.exp(np.asarray(lse_n, LD) - m)
    eps = FLOAT_INFO[dtype].eps
    # backward-stable bound: the error is a few eps of the sum of |terms|
    assert np.all(np.abs(got - exact) <= 16 * eps * bound + 1e-300), (got, exact, bound)
    assert set(np.unique(sign_n)).issubset({-1.0, 0.0, 1.0})


def _loss_case(
    backend: Any, data: st.DataObject, *, prob: bool, extreme: bool = True
) -> dict[str, Any]:
    """Draw logits (class axis anywhere), targets, weight and options for a loss."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(min_dims=1, max_dims=3, palette=few_shapes(backend)), label="shape, axis"
    )
    n_classes = shape[axis]
    x, xn = as_input(
        backend, data.draw(logits(shape, dtype, extreme=extreme), label="logits"), dtype
    )
    case: dict[str, Any] = {"dtype": dtype, "axis": axis, "x": x, "xn": xn, "C": n_classes}
    if prob:
        tn = data.draw(probability_targets(shape, axis), label="target")
        t, tn = as_input(backend, tn, dtype)
        ignore_index = -100
    else:
        ignore_index = data.draw(ignore_indices(n_classes), label="ignore_index")
        batch = shape[: axis % len(shape)] + shape[axis % len(shape) + 1 :]
        tn, tdtype = data.draw(class_targets(batch, n_classes, ignore_index), label="target")
        t = to_backend(backend, tn, tdtype)
    wn = None
    if data.draw(st.booleans(), label="with weight"):
        w, wn = as_input(backend, data.draw(class_weights(n_classes), label="weight"), dtype)
        case["w"] = w
    case.update(t=t, tn=tn, wn=wn, ignore_index=ignore_index)
    case["reduction"] = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    return case


def _loss_tol_ulps(case: dict[str, Any]) -> float:
    """ulps of the output dtype allowed for a loss: rounding plus a sum over the batch."""
    n = max(4, case["xn"].size)
    dtype = case["dtype"]
    comp = FLOAT_INFO[COMPUTE_DTYPE[dtype]].eps
    return 8 + 8 * n * comp / FLOAT_INFO[dtype].eps


@pytest.mark.parametrize("prob", [False, True], ids=["class-targets", "prob-targets"])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_cross_entropy_and_grad_match_reference(
    backend: Any, prob: bool, data: st.DataObject
) -> None:
    """cross_entropy and cross_entropy_with_grad equal torch's definition (long double)."""
    case = _loss_case(backend, data, prob=prob)
    smoothing = data.draw(label_smoothings(), label="label_smoothing")
    kwargs: dict[str, Any] = {
        "axis": case["axis"],
        "reduction": case["reduction"],
        "label_smoothing": smoothing,
    }
    if "w" in case:
        kwargs["weight"] = case["w"]
    if not prob:
        kwargs["ignore_index"] = case["ignore_index"]
    loss = xsoftmax.cross_entropy(case["x"], case["t"], **kwargs)
    loss2, grad = xsoftmax.cross_entropy_with_grad(case["x"], case["t"], **kwargs)
    ref_kwargs: dict[str, Any] = {
        "axis": case["axis"],
        "weight": case["wn"],
        "ignore_index": case["ignore_index"],
        "reduction": case["reduction"],
        "label_smoothing": smoothing,
    }
    ref, ref_grad, grad_scale = ref_cross_entropy(case["xn"], case["tn"], **ref_kwargs)
    dtype = case["dtype"]
    ulps = _loss_tol_ulps(case)
    sum_kwargs = {**ref_kwargs, "reduction": "sum"}
    mean_overflows = case["reduction"] == "mean" and _overflows(
        ref_cross_entropy(case["xn"], case["tn"], **sum_kwargs)[0], dtype
    )
    check_dtype(backend, loss, dtype, "cross_entropy")
    check_dtype(backend, grad, dtype, "cross_entropy_with_grad grad")
    assert_matches(
        backend.to_numpy(loss),
        ref,
        dtype,
        ulps=ulps,
        allow_inf=mean_overflows,
        what="cross_entropy",
    )
    assert_matches(
        backend.to_numpy(loss2),
        ref,
        dtype,
        ulps=ulps,
        allow_inf=mean_overflows,
        what="cross_entropy_with_grad loss",
    )
    # gradient entries are differences of terms: errors of a few eps of the terms' magnitudes
    g_ulps = ulps + 8
    assert_matches(
        backend.to_numpy(grad), ref_grad, dtype, ulps=g_ulps, scale=grad_scale, what="grad"
    )
    if backend.autograd:
        auto = vjp(
            backend,
            lambda z: xsoftmax.cross_entropy(z, case["t"], **kwargs),
            case["x"],
            np.ones(np.shape(ref)),
        )
        assert_matches(auto, ref_grad, dtype, ulps=g_ulps, scale=grad_scale, what="autograd grad")


@PROPERTY_SETTINGS
@given(data=st.data())
def test_nll_loss_matches_reference(backend: Any, data: st.DataObject) -> None:
    """nll_loss equals torch's definition on log-probabilities (<= 0, any magnitude)."""
    case = _loss_case(backend, data, prob=False)
    lp_np = -np.abs(case["xn"])
    lp, lpn = as_input(backend, lp_np, case["dtype"])
    kwargs: dict[str, Any] = {
        "axis": case["axis"],
        "reduction": case["reduction"],
        "ignore_index": case["ignore_index"],
    }
    if "w" in case:
        kwargs["weight"] = case["w"]
    out = xsoftmax.nll_loss(lp, case["t"], **kwargs)
    ref_kwargs: dict[str, Any] = {
        "axis": case["axis"],
        "weight": case["wn"],
        "ignore_index": case["ignore_index"],
    }
    ref = ref_nll_loss(lpn, case["tn"], reduction=case["reduction"], **ref_kwargs)
    mean_overflows = case["reduction"] == "mean" and _overflows(
        ref_nll_loss(lpn, case["tn"], reduction="sum", **ref_kwargs), case["dtype"]
    )
    check_dtype(backend, out, case["dtype"], "nll_loss")
    assert_matches(
        backend.to_numpy(out),
        ref,
        case["dtype"],
        ulps=_loss_tol_ulps(case),
        allow_inf=mean_overflows,
        what="nll_loss",
    )


@PROPERTY_SETTINGS
@given(data=st.data())
def test_bce_with_logits_matches_reference(backend: Any, data: st.DataObject) -> None:
    """binary_cross_entropy_with_logits equals torch's definition, weights and pos_weight too."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, _ = data.draw(shape_and_axis(palette=few_shapes(backend)), label="shape")
    x, xn = as_input(backend, data.draw(logits(shape, dtype), label="logits"), dtype)
    y, yn = as_input(
        backend, data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0))), dtype
    )
    kwargs: dict[str, Any] = {
        "reduction": data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    }
    wn = pwn = None
    if data.draw(st.booleans(), label="with weight"):
        w_shape = data.draw(st.sampled_from([shape, shape[-1:]]), label="weight shape")
        w, wn = as_input(
            backend,
            data.draw(hnp.arrays(np.float64, w_shape, elements=st.floats(0.0, 4.0))),
            dtype,
        )
        kwargs["weight"] = w
    if data.draw(st.booleans(), label="with pos_weight"):
        pw_vals = st.floats(0.25, 4.0)
        pw, pwn = as_input(
            backend, data.draw(hnp.arrays(np.float64, shape[-1:], elements=pw_vals)), dtype
        )
        kwargs["pos_weight"] = pw
    out = xsoftmax.binary_cross_entropy_with_logits(x, y, **kwargs)
    ref, scale = ref_bce_with_logits(
        xn, yn, weight=wn, pos_weight=pwn, reduction=kwargs["reduction"]
    )
    mean_overflows = kwargs["reduction"] == "mean" and _overflows(
        ref_bce_with_logits(xn, yn, weight=wn, pos_weight=pwn, reduction="sum")[0], dtype
    )
    check_dtype(backend, out, dtype, "bce")
    n = max(4, xn.size)
    ulps = 8 + 8 * n * FLOAT_INFO[COMPUTE_DTYPE[dtype]].eps / FLOAT_INFO[dtype].eps
    assert_matches(
        backend.to_numpy(out),
        ref,
        dtype,
        ulps=ulps,
        scale=scale,
        allow_inf=mean_overflows,
        what="bce_with_logits",
    )


@PROPERTY_SETTINGS
@given(data=st.data())
def test_losses_match_torch(backend: Any, data: st.DataObject) -> None:
    """Every loss agrees with torch.nn.functional in float64 (skipped where torch is absent)."""
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    prob = data.draw(st.booleans(), label="probability targets")
    case = _loss_case(backend, data, prob=prob, extreme=False)
    axis = case["axis"] % case["xn"].ndim
    torch_axis = 1 if case["xn"].ndim > 1 else 0  # torch's class axis: moved there in the oracle

    def to_torch(a: np.ndarray) -> Any:
        return torch.from_numpy(np.moveaxis(a.astype(np.float64), axis, torch_axis).copy())

    x_t = to_torch(case["xn"])
    t_t = to_torch(case["tn"]) if prob else torch.from_numpy(np.asarray(case["tn"], np.int64))
    w_t = None if case["wn"] is None else torch.from_numpy(case["wn"].astype(np.float64))
    smoothing = data.draw(label_smoothings(), label="label_smoothing")
    kw: dict[str, Any] = {
        "axis": case["axis"],
        "reduction": case["reduction"],
        "label_smoothing": smoothing,
    }
    tkw: dict[str, Any] = {
        "reduction": case["reduction"],
        "label_smoothing": smoothing,
        "weight": w_t,
    }
    if not prob:
        kw["ignore_index"] = tkw["ignore_index"] = case["ignore_index"]
    if "w" in case:
        kw["weight"] = case["w"]
    dtype = case["dtype"]
    ulps = _loss_tol_ulps(case)
    with _quiet():
        expected = fn.cross_entropy(x_t, t_t, **tkw).numpy()
    got = backend.to_numpy(xsoftmax.cross_entropy(case["x"], case["t"], **kw))
    scale = np.abs(expected) + 1
    assert_matches(got, expected, dtype, ulps=ulps, scale=scale, what="vs torch cross_entropy")
    if not prob:
        del kw["label_smoothing"], tkw["label_smoothing"]
        lp_np = -np.abs(case["xn"]).astype(np.float64)
        lp, lpn = as_input(backend, lp_np, dtype)
        lp_t = to_torch(lpn)
        expected = fn.nll_loss(lp_t, t_t, **tkw).numpy()
        got = backend.to_numpy(xsoftmax.nll_loss(lp, case["t"], **kw))
        assert_matches(
            got, expected, dtype, ulps=ulps, scale=np.abs(expected) + 1, what="vs torch nll_loss"
        )
    y_np = np.clip(np.abs(case["xn"]) / (1 + np.abs(case["xn"])), 0, 1)
    y, yn = as_input(backend, y_np, dtype)
    red = case["reduction"]
    expected = fn.binary_cross_entropy_with_logits(
        torch.from_numpy(case["xn"].astype(np.float64)),
        torch.from_numpy(yn.astype(np.float64)),
        reduction=red,
    ).numpy()
    got = backend.to_numpy(xsoftmax.binary_cross_entropy_with_logits(case["x"], y, reduction=red))
    assert_matches(
        got, expected, dtype, ulps=ulps, scale=np.abs(expected) + 1, what="vs torch bce"
    )


# --------------------------------------------------------------------------- extreme input


@PROPERTY_SETTINGS
@given(data=st.data())
def test_extreme_finite_logits_are_safe(backend: Any, data: st.DataObject) -> None:
    """Finite logits up to +-finfo.max: probabilities in [0, 1] summing to one, nothing NaN/inf."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(min_dims=2, max_dims=2, max_side=6, palette=few_shapes(backend)),
        label="shape, axis",
    )
    x, xn = as_input(backend, data.draw(logits(shape, dtype), label="x"), dtype)
    info = FLOAT_INFO[dtype]
    n_classes = shape[axis]
    p = backend.to_numpy(xsoftmax.softmax(x, axis=axis)).astype(np.float64)
    assert np.all(np.isfinite(p)), p
    assert np.all((p >= 0) & (p <= 1)), p
    sums = np.sum(p, axis=axis)
    assert np.all(np.abs(sums - 1) <= 4 * info.eps * max(n_classes, 4)), sums
    lp = backend.to_numpy(xsoftmax.log_softmax(x, axis=axis)).astype(np.float64)
    assert not np.any(np.isnan(lp)), lp
    assert np.all(lp <= 0), lp
    exact_lp = ref_log_softmax(xn, (axis % 2,))
    assert np.all(np.isfinite(lp) | (exact_lp < -info.max)), (
        "log_softmax -inf where the exact value is in range"
    )
    lse = backend.to_numpy(xsoftmax.logsumexp(x, axis=axis))
    assert np.all(np.isfinite(lse)), lse
    # the loss gradient is finite and each row sums to zero
    t = to_backend(backend, np.zeros(shape[1 - axis % 2], np.int64))
    _loss, grad = xsoftmax.cross_entropy_with_grad(x, t, axis=axis, reduction="sum")
    g = backend.to_numpy(grad).astype(np.float64)
    assert np.all(np.isfinite(g)), g
    assert np.all(
        np.abs(np.sum(g, axis=axis)) <= 8 * info.eps * (np.sum(np.abs(g), axis=axis) + 1)
    )
    if backend.autograd:
        for fn in (
            lambda z: xsoftmax.softmax(z, axis=axis),
            lambda z: xsoftmax.log_softmax(z, axis=axis),
            lambda z: xsoftmax.logsumexp(z, axis=axis),
            lambda z: xsoftmax.cross_entropy(z, t, axis=axis, reduction="none"),
        ):
            out_shape = np.shape(backend.to_numpy(fn(x)))
            ct = np.ones(out_shape)
            if out_shape == shape:
                ct = ct * (
                    np.arange(shape[-1]) % 3 - 1
                )  # a cotangent that is not constant per row
            finite_out = np.isfinite(backend.to_numpy(fn(x)))
            ct = np.where(finite_out, ct, 0.0)
            ga = vjp(backend, fn, x, ct)
            assert np.all(np.isfinite(ga)), ga


@PROPERTY_SETTINGS
@given(data=st.data())
def test_neg_inf_entries_get_exactly_zero(backend: Any, data: st.DataObject) -> None:
    """-inf logits get probability exactly 0 and log-probability -inf; the rest as if absent."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(shape_and_axis(palette=few_shapes(backend)), label="shape, axis")
    axes = normalize_axes(axis, len(shape))
    base = data.draw(logits(shape, dtype), label="x")
    knock = data.draw(sprinkle_mask(shape, axes), label="-inf mask")
    x, xn = as_input(backend, np.where(knock, -np.inf, base), dtype)
    p = backend.to_numpy(xsoftmax.softmax(x, axis=axis))
    lp = backend.to_numpy(xsoftmax.log_softmax(x, axis=axis))
    assert np.all(p[knock] == 0), p
    assert np.all(lp[knock] == -np.inf), lp
    assert_matches(p, ref_softmax(xn, axes), dtype, what="softmax with -inf")
    assert_matches(lp, ref_log_softmax(xn, axes), dtype, what="log_softmax with -inf")
    lse = backend.to_numpy(xsoftmax.logsumexp(x, axis=axis))
    assert_matches(lse, ref_logsumexp(xn, axes), dtype, what="logsumexp with -inf")


# --------------------------------------------------------------------------- invariances


@PROPERTY_SETTINGS
@given(data=st.data())
def test_shift_invariance(backend: Any, data: st.DataObject) -> None:
    """Adding a constant per row leaves softmax and log_softmax unchanged (exact dyadic input)."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(shape_and_axis(palette=few_shapes(backend)), label="shape, axis")
    xn = data.draw(dyadic_logits(shape), label="x")
    # x: multiples of 1/16 with |x| <= 4 (7 significant bits). The shift c: multiples of 1/16
    # with |c| <= 2**(bits - 4), so that x + c needs at most the dtype's significand bits
    # (bfloat16 8, float16 11, float32 24, float64 53) and is exact.
    bits = {"bfloat16": 6, "float16": 10, "float32": 22, "float64": 40}[dtype]
    keep = list(shape)
    keep[axis] = 1
    shifts = st.integers(-(2**bits), 2**bits).map(lambda i: i / 16)
    c = data.draw(hnp.arrays(np.float64, tuple(keep), elements=shifts), label="shift")
    x, xn = as_input(backend, xn, dtype)
    xs, xsn = as_input(backend, xn + c, dtype)
    assert np.array_equal(xsn - c, xn), "the shifted input is not exact"
    for fn in (xsoftmax.softmax, xsoftmax.log_softmax):
        a = backend.to_numpy(fn(x, axis=axis))
        b = backend.to_numpy(fn(xs, axis=axis))
        assert_matches(b, a.astype(np.float64), dtype, ulps=4, what=f"{fn.__name__} shifted")


@PROPERTY_SETTINGS
@given(data=st.data())
def test_permuting_classes_permutes_outputs(backend: Any, data: st.DataObject) -> None:
    """Permuting the classes permutes softmax/log_softmax and leaves logsumexp and losses alone."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(min_dims=2, max_dims=3, palette=few_shapes(backend)), label="shape, axis"
    )
    n_classes = shape[axis]
    perm = np.asarray(data.draw(st.permutations(range(n_classes)), label="perm"), np.int64)
    xn = data.draw(logits(shape, dtype), label="x")
    x, xn = as_input(backend, xn, dtype)
    xp_, _ = as_input(backend, np.take(xn, perm, axis=axis), dtype)
    for fn in (xsoftmax.softmax, xsoftmax.log_softmax):
        a = np.take(backend.to_numpy(fn(x, axis=axis)), perm, axis=axis)
        b = backend.to_numpy(fn(xp_, axis=axis))
        assert_matches(b, a.astype(np.float64), dtype, ulps=8, what=f"{fn.__name__} permuted")
    a = backend.to_numpy(xsoftmax.logsumexp(x, axis=axis))
    b = backend.to_numpy(xsoftmax.logsumexp(xp_, axis=axis))
    assert_matches(b, a.astype(np.float64), dtype, ulps=8, what="logsumexp permuted")
    # cross entropy: targets relabelled by the inverse permutation, weights permuted
    ax = axis % len(shape)
    batch = shape[:ax] + shape[ax + 1 :]
    tn = data.draw(class_targets(batch, n_classes, -100), label="target")[0]
    inv = np.argsort(perm)
    t = to_backend(backend, tn)
    tp = to_backend(backend, np.where(tn == -100, tn, inv[np.clip(tn, 0, None)]).astype(tn.dtype))
    w, wn = as_input(backend, data.draw(class_weights(n_classes), label="weight"), dtype)
    wp, _ = as_input(backend, wn[perm], dtype)
    a = backend.to_numpy(xsoftmax.cross_entropy(x, t, axis=axis, weight=w, reduction="none"))
    b = backend.to_numpy(xsoftmax.cross_entropy(xp_, tp, axis=axis, weight=wp, reduction="none"))
    assert_matches(b, a.astype(np.float64), dtype, ulps=8, what="cross_entropy permuted")


@PROPERTY_SETTINGS
@given(data=st.data())
def test_axis_argument_equals_moving_the_axis(backend: Any, data: st.DataObject) -> None:
    """f(x, axis=a) equals f(moveaxis(x, a, -1)) moved back, for every function with an axis."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(min_dims=2, max_dims=3, palette=few_shapes(backend)), label="shape, axis"
    )
    ax = axis % len(shape)
    x, xn = as_input(backend, data.draw(logits(shape, dtype), label="x"), dtype)
    xm, _ = as_input(backend, np.moveaxis(xn, ax, -1), dtype)
    for fn in (xsoftmax.softmax, xsoftmax.log_softmax):
        a = backend.to_numpy(fn(x, axis=axis))
        b = np.moveaxis(backend.to_numpy(fn(xm, axis=-1)), -1, ax)
        assert_matches(a, b.astype(np.float64), dtype, ulps=4, what=fn.__name__)
    a = backend.to_numpy(xsoftmax.logsumexp(x, axis=axis, keepdims=True))
    b = np.moveaxis(backend.to_numpy(xsoftmax.logsumexp(xm, axis=-1, keepdims=True)), -1, ax)
    assert_matches(a, b.astype(np.float64), dtype, ulps=4, what="logsumexp")
    batch = shape[:ax] + shape[ax + 1 :]
    tn = data.draw(class_targets(batch, shape[ax], -100), label="target")[0]
    t = to_backend(backend, tn)
    a = backend.to_numpy(xsoftmax.cross_entropy(x, t, axis=axis, reduction="none"))
    b = backend.to_numpy(xsoftmax.cross_entropy(xm, t, axis=-1, reduction="none"))
    assert_matches(a, b.astype(np.float64), dtype, ulps=4, what="cross_entropy")


@PROPERTY_SETTINGS
@given(data=st.data())
def test_log_softmax_is_log_of_softmax_where_finite(backend: Any, data: st.DataObject) -> None:
    """log(softmax) == log_softmax wherever softmax is a normal (not underflowed) number."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(tuple_axis=True, palette=few_shapes(backend)), label="shape, axis"
    )
    x, _ = as_input(backend, data.draw(logits(shape, dtype), label="x"), dtype)
    p = backend.to_numpy(xsoftmax.softmax(x, axis=axis)).astype(np.float64)
    lp = backend.to_numpy(xsoftmax.log_softmax(x, axis=axis)).astype(np.float64)
    info = FLOAT_INFO[dtype]
    normal = p >= info.smallest_normal
    with _quiet():
        log_p = np.log(p)
    # a probability within a few ulps has a log within a few eps (absolute)
    assert np.all(np.abs(log_p[normal] - lp[normal]) <= 8 * info.eps * (1 + np.abs(lp[normal]))), (
        log_p,
        lp,
    )
    assert np.all(lp[~normal] <= np.log(info.smallest_normal) + 8 * info.eps * np.abs(lp[~normal]))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_exp_logsumexp_of_small_inputs_is_the_sum(backend: Any, data: st.DataObject) -> None:
    """exp(logsumexp(x)) equals sum(exp(x)) for moderate x (no overflow in the direct sum)."""
    dtype = data.draw(float_dtypes(backend, half=False), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(tuple_axis=True, palette=few_shapes(backend)), label="shape, axis"
    )
    xn = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-20, 20)), label="x")
    x, xn = as_input(backend, xn, dtype)
    lse = backend.to_numpy(xsoftmax.logsumexp(x, axis=axis)).astype(np.float64)
    direct = np.sum(np.exp(xn.astype(np.float64)), axis=axis)
    n = xn.size // max(1, direct.size)
    eps = FLOAT_INFO[dtype].eps
    np.testing.assert_allclose(np.exp(lse), direct, rtol=8 * eps * (20 + n))


# --------------------------------------------------------------------------- where masks


@PROPERTY_SETTINGS
@given(data=st.data())
def test_where_mask(backend: Any, data: st.DataObject) -> None:
    """Masked entries get exactly 0 / -inf; fully masked rows give 0, -inf and zero gradient."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(min_dims=2, max_dims=3, palette=few_shapes(backend)), label="shape, axis"
    )
    axes = normalize_axes(axis, len(shape))
    x, xn = as_input(backend, data.draw(logits(shape, dtype), label="x"), dtype)
    maskn = ~data.draw(sprinkle_mask(shape, axes, keep_one=False), label="where")
    mask = to_backend(backend, maskn)
    full = ~np.any(maskn, axis=axis, keepdims=True)  # rows with no entry left
    full_b = np.broadcast_to(full, shape)
    knocked = np.where(maskn | full_b, xn, -np.inf)  # reference on rows that keep something
    p = backend.to_numpy(xsoftmax.softmax(x, axis=axis, where=mask))
    lp = backend.to_numpy(xsoftmax.log_softmax(x, axis=axis, where=mask))
    lse = backend.to_numpy(xsoftmax.logsumexp(x, axis=axis, where=mask, keepdims=True))
    assert np.all(p[~maskn] == 0), p
    assert np.all(lp[~maskn] == -np.inf), lp
    assert np.all(lse[full] == -np.inf), lse
    live = ~full_b
    assert_matches(
        np.where(live, p, 0),
        np.where(live, ref_softmax(knocked, axes), 0),
        dtype,
        what="masked softmax",
    )
    assert_matches(
        np.where(live, lp, 0),
        np.where(live, ref_log_softmax(knocked, axes), 0),
        dtype,
        what="masked log_softmax",
    )
    ref_lse = ref_logsumexp(knocked, axes, keepdims=True)
    assert_matches(
        np.where(full, 0, lse), np.where(full, 0, ref_lse), dtype, what="masked logsumexp"
    )
    if backend.autograd:
        ct = np.broadcast_to((np.arange(shape[-1]) % 2) - 0.5, shape)
        for name, fn, c in (
            ("softmax", lambda z: xsoftmax.softmax(z, axis=axis, where=mask), ct),
            (
                "logsumexp",
                lambda z: xsoftmax.logsumexp(z, axis=axis, where=mask, keepdims=True),
                np.ones(full.shape),
            ),
        ):
            g = vjp(backend, fn, x, c)
            assert np.all(np.isfinite(g)), f"{name}: non-finite gradient {g}"
            assert np.all(g[full_b] == 0), f"{name}: gradient of a fully masked row {g[full_b]}"
            assert np.all(g[~maskn] == 0), f"{name}: gradient at masked entries"


# --------------------------------------------------------------------------- fast paths, inputs


def _public_calls(
    backend: Any, data: st.DataObject
) -> tuple[list[tuple[str, Callable[[], Any]]], list[Any], str]:
    """Every public function on one drawn case; returns the calls and every input array."""
    dtype = data.draw(float_dtypes(backend), label="dtype")
    shape, axis = data.draw(
        shape_and_axis(min_dims=2, max_dims=3, palette=few_shapes(backend)), label="shape, axis"
    )
    ax = axis % len(shape)
    n_classes = shape[ax]
    x, _xn = as_input(backend, data.draw(logits(shape, dtype), label="x"), dtype)
    batch = shape[:ax] + shape[ax + 1 :]
    ignore_index = data.draw(ignore_indices(n_classes), label="ignore_index")
    tn, tdtype = data.draw(class_targets(batch, n_classes, ignore_index), label="target")
    t = to_backend(backend, tn, tdtype)
    pt, _ = as_input(
        backend, data.draw(probability_targets(shape, ax), label="prob target"), dtype
    )
    w, _ = as_input(backend, data.draw(class_weights(n_classes), label="weight"), dtype)
    mask = to_backend(
        backend, ~data.draw(sprinkle_mask(shape, (ax,), keep_one=False), label="where")
    )
    y, _ = as_input(
        backend,
        data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)), label="y"),
        dtype,
    )
    b, _ = as_input(backend, data.draw(class_weights(shape[-1]), label="b"), dtype)
    red = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    eps = data.draw(label_smoothings(), label="label_smoothing")
    lp = to_backend(backend, -np.abs(backend.to_numpy(x)), dtype)
    ce = {"axis": axis, "weight": w, "reduction": red, "label_smoothing": eps}
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("softmax", lambda: xsoftmax.softmax(x, axis=axis)),
        ("softmax where", lambda: xsoftmax.softmax(x, axis=axis, where=mask)),
        ("log_softmax", lambda: xsoftmax.log_softmax(x, axis=axis)),
        ("log_softmax where", lambda: xsoftmax.log_softmax(x, axis=axis, where=mask)),
        ("logsumexp", lambda: xsoftmax.logsumexp(x, axis=axis)),
        ("logsumexp b", lambda: xsoftmax.logsumexp(x, axis=-1, b=b, return_sign=True)),
        ("logsumexp where", lambda: xsoftmax.logsumexp(x, axis=axis, where=mask)),
        ("cross_entropy", lambda: xsoftmax.cross_entropy(x, t, ignore_index=ignore_index, **ce)),
        ("cross_entropy prob", lambda: xsoftmax.cross_entropy(x, pt, **ce)),
        (
            "cross_entropy_with_grad",
            lambda: xsoftmax.cross_entropy_with_grad(x, t, ignore_index=ignore_index, **ce),
        ),
        ("cross_entropy_with_grad prob", lambda: xsoftmax.cross_entropy_with_grad(x, pt, **ce)),
        (
            "nll_loss",
            lambda: xsoftmax.nll_loss(
                lp, t, axis=axis, weight=w, reduction=red, ignore_index=ignore_index
            ),
        ),
        (
            "bce",
            lambda: xsoftmax.binary_cross_entropy_with_logits(
                x, y, weight=y, pos_weight=b, reduction=red
            ),
        ),
    ]
    return calls, [x, t, pt, w, mask, y, b, lp], dtype


@PROPERTY_SETTINGS
@given(data=st.data())
def test_fast_paths_equal_generic_path(backend: Any, data: st.DataObject) -> None:
    """Each public function gives the same answer with and without its native fast path."""
    calls, _, dtype = _public_calls(backend, data)
    for name, call in calls:
        fast = [backend.to_numpy(o) for o in _outputs(call())]
        with fast_paths_disabled():
            generic = [backend.to_numpy(o) for o in _outputs(call())]
        for f, g in zip(fast, generic, strict=True):
            assert_matches(f, g.astype(np.float64), dtype, ulps=8, what=f"{name}: fast vs generic")


@PROPERTY_SETTINGS
@given(data=st.data())
def test_inputs_are_never_modified(backend: Any, data: st.DataObject) -> None:
    """No public function writes into any of its inputs (values and torch's version counter)."""
    calls, inputs, _ = _public_calls(backend, data)
    before = [backend.to_numpy(a).copy() for a in inputs]
    versions = [getattr(a, "_version", None) for a in inputs]
    for name, call in calls:
        call()
        for k, (a, b0, v0) in enumerate(zip(inputs, before, versions, strict=True)):
            assert np.array_equal(backend.to_numpy(a), b0, equal_nan=True), (
                f"{name} changed input {k}"
            )
            assert getattr(a, "_version", None) == v0, f"{name} wrote in place into input {k}"


# --------------------------------------------------------------------------- devices


def _device_calls(
    x: Any, t: Any, pt: Any, w: Any, mask: Any
) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("softmax", lambda: xsoftmax.softmax(x, where=mask)),
        ("log_softmax", lambda: xsoftmax.log_softmax(x, axis=0)),
        ("logsumexp", lambda: xsoftmax.logsumexp(x, axis=-1, b=w, return_sign=True)),
        ("cross_entropy", lambda: xsoftmax.cross_entropy(x, t, weight=w)),
        ("cross_entropy prob", lambda: xsoftmax.cross_entropy(x, pt, reduction="none")),
        (
            "cross_entropy_with_grad",
            lambda: xsoftmax.cross_entropy_with_grad(x, t, label_smoothing=0.1),
        ),
        ("nll_loss", lambda: xsoftmax.nll_loss(x, t, reduction="sum")),
        ("bce", lambda: xsoftmax.binary_cross_entropy_with_logits(x, pt, pos_weight=w)),
    ]


@PROPERTY_SETTINGS
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 5)),
    seed=st.integers(0, 2**16),
)
def test_outputs_on_strict_extra_device(shape: tuple[int, int], seed: int) -> None:
    """array-api-strict arrays on Device('device1') give outputs on Device('device1')."""
    if get_backend("array-api-strict") is None:
        pytest.skip("array-api-strict is not among the backends of this run (XSOFTMAX_BACKENDS)")
    import array_api_strict as xs

    dev = xs.Device("device1")
    rng = np.random.default_rng(seed)
    n, c = shape
    x = xs.asarray(rng.normal(size=shape) * 10, device=dev)
    t = xs.asarray(rng.integers(0, c, size=n), device=dev)
    pt = xs.asarray(rng.uniform(size=shape), device=dev)
    w = xs.asarray(rng.uniform(size=c), device=dev)
    mask = xs.asarray(rng.uniform(size=shape) < 0.7, device=dev)
    for name, call in _device_calls(x, t, pt, w, mask):
        for out in _outputs(call()):
            assert out.device == dev, f"{name}: output on {out.device}, input on {dev}"


@pytest.mark.parametrize(
    "name",
    [
        "softmax",
        "log_softmax",
        "logsumexp",
        "cross_entropy",
        "cross_entropy prob",
        "cross_entropy_with_grad",
        "nll_loss",
        "bce",
    ],
)
def test_outputs_on_torch_meta_device(name: str) -> None:
    """torch tensors on the 'meta' device (no data) give outputs on 'meta'."""
    backend = get_backend("torch")
    if backend is None:
        pytest.skip("torch (CPU) is not among the backends of this run (XSOFTMAX_BACKENDS)")
    torch = backend.extra["torch"]
    meta = torch.device("meta")
    n, c = 3, 4
    x = torch.empty((n, c), device=meta)
    t = torch.empty((n,), dtype=torch.int64, device=meta)
    pt = torch.empty((n, c), device=meta)
    w = torch.empty((c,), device=meta)
    mask = torch.empty((n, c), dtype=torch.bool, device=meta)
    call = dict(_device_calls(x, t, pt, w, mask))[name]
    for out in _outputs(call()):
        assert out.device == meta, f"{name}: output on {out.device}"
