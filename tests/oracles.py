"""Independent reference values for the xsoftmax tests (never the code under test).

Every reference is computed in float64 NumPy from the exact input values (float32 and
half-precision inputs are widened exactly), with the formulas spelled out here:

* ``logsumexp``: :func:`scipy.special.logsumexp` itself (it already removes the maximum's
  term and adds it back through ``log1p``).
* ``log_softmax`` / ``softmax``: ``z = x - max``, ``s' = sum of exp(z)`` over every entry but
  the (first) maximum, ``log_softmax = z - log1p(s')`` and ``softmax = exp(z) / (1 + s')``.
  Unlike the textbook ``z - log(s)`` used by torch and SciPy this keeps the top class's
  tiny log-probability to full relative precision, so the oracle's own error (a few
  float64 ulps) is far below every tolerance below.
* ``cross_entropy`` / ``nll_loss`` / ``binary_cross_entropy_with_logits``: torch's
  definitions (weights, ``ignore_index``, label smoothing, normalisers, see docs/contract/errors.md)
  written out on top of the log-probabilities above. ``test_*_oracle.py`` prove these
  definitions equal ``torch.nn.functional`` (and ``scipy.special``) on the whole grid, so the
  semantics are torch's and the precision is better than torch's.

Tolerance policy (:func:`tolerance`), the same in every test file:

``|got - want| <= rtol * |want| + atol`` with ``rtol`` = 1e-5 (float32), 1e-12 (float64),
one ulp (``eps``) for float16 / bfloat16 outputs, and

``atol = 4 * eps(dtype) * max(C, 4) * magnitude``

where ``C`` is the number of terms in the reduction and ``magnitude`` is the size of the
terms a value is built from (1 for a log-probability; the sum of ``|weight * target|`` for a
loss; ``sum|b exp(x - max)| / |sum b exp(x - max)|``, the condition number, for a signed
``logsumexp``; ``max |gradient|`` for a gradient). ``4 * eps * max(C, 4)`` is the bound
docs/contract/errors.md sets for a softmax row sum: the absolute error that the textbook
``log(sum(exp(z)))`` has in every anchor. It only matters where ``|want|`` is tiny (the top
class's log-probability, the loss of a confident correct prediction, a gradient entry
``p - 1`` near 0); the per-ulp accuracy there is held by the accuracy harness (issue 6),
not by this agreement grid. Probabilities (softmax) get no atol: their relative error is
small by construction.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import scipy.special

try:  # bfloat16 for NumPy; installed with jax
    import ml_dtypes

    _BFLOAT16: Any = ml_dtypes.bfloat16
except ImportError:  # pragma: no cover
    _BFLOAT16 = None

EPS = {
    "float16": 2.0**-10,
    "bfloat16": 2.0**-7,
    "float32": 2.0**-23,
    "float64": 2.0**-52,
}
RTOL = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 1e-5, "float64": 1e-12}
F64 = np.float64


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def f64(a: Any) -> np.ndarray:
    """Widen to float64 (exact for every float input)."""
    return np.asarray(a, dtype=F64)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence NumPy floating-point warnings (the infinities and NaNs are intended)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def norm_axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints (``None``: all)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % ndim for a in axis))


def _to_rows(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Move ``axes`` to the end and flatten them: (rows, K); also the moved shape."""
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, rest + list(axes))
    k = math.prod(x.shape[a] for a in axes)
    r = math.prod(x.shape[a] for a in rest)
    return moved.reshape(r, k), moved.shape


def _from_rows(r: np.ndarray, moved_shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    ndim = len(moved_shape)
    rest = [a for a in range(ndim) if a not in axes]
    perm = rest + list(axes)
    inv = np.argsort(perm)
    return np.transpose(r.reshape(moved_shape), inv)


def round_to(a: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values to ``dtype`` (overflow to inf as the dtype would), back in f64."""
    with _quiet():
        if dtype == "bfloat16":
            if _BFLOAT16 is None:  # no ml_dtypes (no JAX): round through torch
                import torch

                t = torch.as_tensor(np.array(a, dtype=F64, copy=True)).to(torch.bfloat16)
                return f64(t.to(torch.float64).numpy())
            return f64(np.asarray(a).astype(_BFLOAT16))
        return f64(np.asarray(a).astype(dtype))


def tolerance(dtype: str, n_terms: int = 1, magnitude: Any = 0.0) -> tuple[float, Any]:
    """``(rtol, atol)`` of the module policy for an output of ``dtype``."""
    atol = 4.0 * EPS[dtype] * max(n_terms, 4) * np.asarray(magnitude, dtype=F64)
    return RTOL[dtype], atol


def assert_close(
    got: Any,
    want: Any,
    *,
    dtype: str,
    rtol: float | None = None,
    atol: Any = 0.0,
    what: str = "",
) -> None:
    """Assert ``got`` (an output of ``dtype``) matches the float64 ``want``.

    ``want`` is first rounded to ``dtype`` (so a value beyond the dtype's range is
    expected as inf); NaN must be NaN at the same places and infinities identical.
    """
    got = f64(got)
    want = round_to(f64(want), dtype)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    rtol = RTOL[dtype] if rtol is None else rtol
    atol = np.broadcast_to(np.asarray(atol, dtype=F64), want.shape)
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    if not np.array_equal(nan_g, nan_w):
        idx = np.argwhere(nan_g != nan_w)[0]
        raise AssertionError(
            f"{what}: NaN pattern differs at {tuple(idx)}: got {got[tuple(idx)]!r}, "
            f"expected {want[tuple(idx)]!r}"
        )
    inf_w = np.isinf(want)
    if not np.array_equal(got[inf_w], want[inf_w]) or np.isinf(got[~inf_w]).any():
        bad = np.argwhere((np.isinf(got) | inf_w) & (got != want))[0]
        raise AssertionError(
            f"{what}: infinity differs at {tuple(bad)}: got {got[tuple(bad)]!r}, "
            f"expected {want[tuple(bad)]!r}"
        )
    fin = np.isfinite(want)
    with _quiet():
        err = np.where(fin, np.abs(got - want), 0.0)
        tol = np.where(fin, rtol * np.abs(want) + atol, 0.0)
    if (err > tol).any():
        ratio = np.where(tol > 0, err / np.where(tol > 0, tol, 1.0), np.inf)
        ratio = np.where(err > tol, ratio, 0.0)
        i = tuple(np.unravel_index(np.argmax(ratio), ratio.shape))
        raise AssertionError(
            f"{what}: {int((err > tol).sum())} of {want.size} values out of tolerance; worst "
            f"at {i}: got {got[i]!r}, expected {want[i]!r}, |err| {err[i]:.3g} > tol "
            f"{tol[i]:.3g} (rtol {rtol:g}, atol {atol[i]:.3g})"
        )


# --------------------------------------------------------------------------------------
# softmax family
# --------------------------------------------------------------------------------------
def _log_softmax_rows(r: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Accurate float64 log-softmax of each row of ``r`` (R, K); masked entries -inf."""
    with _quiet():
        if mask is not None:
            r = np.where(mask, r, -np.inf)
        out = np.full(r.shape, np.nan)
        if r.shape[1] == 0:
            return out
        m = r.max(axis=1, keepdims=True)
        z = r - m
        top = np.argmax(r, axis=1)
        e = np.exp(z)
        e[np.arange(r.shape[0]), top] = 0.0
        rest = e.sum(axis=1, keepdims=True)
        out = z - np.log1p(rest)
        finite_m = np.isfinite(m[:, 0])
        out[~finite_m] = np.nan  # all -inf, +inf or NaN rows: NaN (torch/SciPy parity)
        if mask is not None:
            dead = ~mask.any(axis=1)
            out[dead] = -np.inf  # a fully masked row is safe: -inf
        return out


def ref_log_softmax(x: Any, axis: int | Sequence[int] = -1, where: Any = None) -> np.ndarray:
    """log_softmax of ``x`` over ``axis`` with the ``where`` mask (float64)."""
    x = f64(x)
    if x.ndim == 0:
        return np.zeros(())
    axes = norm_axes(axis, x.ndim)
    rows, moved = _to_rows(x, axes)
    mask = None
    if where is not None:
        mask, _ = _to_rows(np.broadcast_to(np.asarray(where, bool), x.shape), axes)
    return _from_rows(_log_softmax_rows(rows, mask), moved, axes)


def ref_softmax(x: Any, axis: int | Sequence[int] = -1, where: Any = None) -> np.ndarray:
    """softmax of ``x`` over ``axis``; a fully masked row gives 0 (float64).

    ``exp(z) / (1 + s')`` is exp of the log-softmax above; its relative error is that of
    ``exp(z)``, about ``eps * |z|``.
    """
    with _quiet():
        return np.exp(ref_log_softmax(x, axis, where))


def ref_logsumexp(
    x: Any,
    axis: int | Sequence[int] | None = None,
    keepdims: bool = False,
    b: Any = None,
    return_sign: bool = False,
    where: Any = None,
) -> Any:
    """:func:`scipy.special.logsumexp` in float64; ``where`` enters as a 0/1 factor of ``b``.

    SciPy's own rule that ``b == 0`` removes an entry makes the mask independent of the
    code under test.
    """
    x = f64(x)
    bb = None if b is None else f64(b)
    if where is not None:
        wf = np.asarray(where, bool).astype(F64)
        bb = wf if bb is None else bb * wf
    if bb is not None:
        bb = np.broadcast_to(bb, np.broadcast_shapes(bb.shape, x.shape))
        x = np.broadcast_to(x, bb.shape)
    axes = norm_axes(axis, x.ndim)
    if x.size == 0 or x.ndim == 0:
        # SciPy 1.17 raises IndexError for an empty array with a tuple axis; an empty
        # reduction is -inf (sign 0), a 0-d input is itself
        y = x if bb is None else x + np.where(bb == 0, -np.inf, np.log(np.abs(bb)))
        val = np.full(_reduced_shape(x.shape, axes, keepdims), -np.inf) if y.size == 0 else y
        return (val, np.sign(np.exp(val))) if return_sign else val
    with _quiet():
        out = scipy.special.logsumexp(
            x, axis=axes, b=bb, keepdims=keepdims, return_sign=return_sign
        )
        if bb is not None:
            # SciPy returns NaN, not -inf, for an all-zero b row whose x overflows exp
            # (e.g. x = 1000): b == 0 removes every entry, an empty sum: -inf, sign 0
            dead = ~np.any(bb != 0, axis=axes, keepdims=keepdims)
            if return_sign:
                out = (np.where(dead, -np.inf, out[0]), np.where(dead, 0.0, out[1]))
            else:
                out = np.where(dead, -np.inf, out)
    return out


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if a in axes else n for a, n in enumerate(shape))
    return tuple(n for a, n in enumerate(shape) if a not in axes)


def lse_condition(x: Any, axis: Any = None, keepdims: bool = False, b: Any = None) -> Any:
    """``sum|b exp(x-m)| / |sum b exp(x-m)|`` (>= 1): the relative condition of the sum."""
    x = f64(x)
    bb = np.ones_like(x) if b is None else np.broadcast_to(f64(b), x.shape)
    bb = np.broadcast_to(bb, np.broadcast_shapes(bb.shape, x.shape))
    x = np.broadcast_to(x, bb.shape)
    ax = None if axis is None else (axis if isinstance(axis, int) else tuple(axis))
    with _quiet():
        m = np.max(np.where(bb != 0, x, -np.inf), axis=ax, keepdims=True) if x.size else 0.0
        m = np.where(np.isfinite(m), m, 0.0)
        t = bb * np.exp(x - m)
        num = np.sum(np.abs(t), axis=ax, keepdims=keepdims)
        den = np.abs(np.sum(t, axis=ax, keepdims=keepdims))
        k = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    return np.maximum(k, 1.0)


# --------------------------------------------------------------------------------------
# losses (torch's definitions)
# --------------------------------------------------------------------------------------
def _reduce(per: np.ndarray, mag: np.ndarray, norm: float, reduction: str) -> tuple[Any, Any]:
    with _quiet():
        if reduction == "none":
            return per, mag
        if reduction == "sum":
            return np.sum(per), np.sum(mag)
        return np.sum(per) / norm, np.sum(mag) / abs(norm)


def ref_nll(
    log_probs: Any,
    target: Any,
    *,
    axis: int = -1,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> tuple[Any, Any]:
    """torch's nll/cross-entropy on given log-probabilities: ``(value, magnitude)``.

    ``magnitude`` is the same expression with every ``|log p|`` replaced by 1 (the scale
    of :func:`tolerance`). Class axis ``axis``; the target's dims are the others in order.
    """
    lp = f64(log_probs)
    if lp.ndim == 0:
        raise ValueError("0-d log_probs")
    lpl = np.moveaxis(lp, axis, -1)
    c = lpl.shape[-1]
    w = np.ones(c) if weight is None else f64(weight)
    eps = float(label_smoothing)
    target = np.asarray(target)
    with _quiet():
        if target.dtype.kind in "iu":
            t = target.astype(np.int64)
            valid = t != ignore_index
            if c == 0:
                assert not valid.any()
                per = np.zeros(t.shape)
                return _reduce(per, per, 0.0, reduction)
            tc = np.where(valid, t, 0)
            assert ((tc >= 0) & (tc < c)).all(), "oracle: class index out of range"
            lpt = np.take_along_axis(lpl, tc[..., None], axis=-1)[..., 0]
            wt = np.where(valid, w[tc], 0.0)
            per = np.where(valid, -wt * lpt, 0.0)
            mag = np.abs(wt)
            if eps:
                smooth = np.where(valid, -(lpl * w).sum(axis=-1), 0.0)
                per = (1.0 - eps) * per + eps / c * smooth
                mag = (1.0 - eps) * mag + eps / c * np.where(valid, np.abs(w).sum(), 0.0)
            return _reduce(per, mag, float(wt.sum()), reduction)
        tp = np.moveaxis(f64(target), axis, -1)
        tq = tp * (1.0 - eps) + eps / c if c else tp
        terms = w * tq
        per = -np.where(terms == 0, 0.0, terms * lpl).sum(axis=-1)
        mag = np.abs(terms).sum(axis=-1)
        return _reduce(per, mag, float(per.size), reduction)


def ref_cross_entropy(logits: Any, target: Any, *, axis: int = -1, **kw: Any) -> tuple[Any, Any]:
    """torch's cross_entropy (class axis ``axis``): ``(value, magnitude)``."""
    lp = ref_log_softmax(logits, axis) if np.ndim(logits) else None
    if lp is None:
        raise ValueError("0-d logits")
    return ref_nll(lp, target, axis=axis, **kw)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) without overflow or cancellation."""
    with _quiet():
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def ref_bce_with_logits(
    logits: Any,
    target: Any,
    *,
    weight: Any = None,
    pos_weight: Any = None,
    reduction: str = "mean",
) -> tuple[Any, Any]:
    """``-w [pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]``: ``(value, magnitude)``.

    Written as ``w (pw t softplus(-x) + (1 - t) softplus(x))``, a sum of non-negative
    terms for ``0 <= t <= 1`` (no cancellation); a zero coefficient times an infinite
    softplus counts 0 (the limit at +-inf logits). ``magnitude`` is
    ``|w| (|pw t| + |1 - t|) (1 + |x|)``: torch's ``(1 - t) x + ...`` form loses
    ``eps * |x|`` absolutely.
    """
    x, t = f64(logits), f64(target)
    pw = np.ones(()) if pos_weight is None else f64(pos_weight)
    w = np.ones(()) if weight is None else f64(weight)
    with _quiet():
        a = pw * t
        bneg = 1.0 - t
        per = np.where(a == 0, 0.0, a * _softplus(-x)) + np.where(
            bneg == 0, 0.0, bneg * _softplus(x)
        )
        per = per * w
        per = np.broadcast_to(per, x.shape)
        mag = np.broadcast_to(np.abs(w) * (np.abs(a) + np.abs(bneg)) * (1.0 + np.abs(x)), x.shape)
    return _reduce(per, mag, float(per.size), reduction)


# --------------------------------------------------------------------------------------
# torch anchors (used to prove the definitions above are torch's)
# --------------------------------------------------------------------------------------
def torch_cross_entropy(
    logits: Any, target: Any, *, axis: int = -1, nll: bool = False, **kw: Any
) -> np.ndarray:
    """``torch.nn.functional.cross_entropy`` / ``nll_loss`` in float64, class axis moved to 1."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(f64(logits)))
    tn = np.asarray(target)
    integer = tn.dtype.kind in "iu"
    if x.ndim >= 2:
        x = torch.movedim(x, axis % x.ndim, 1)
    # (np.ascontiguousarray would turn a 0-d target into shape (1,))
    t = torch.from_numpy(np.array(tn.astype(np.int64) if integer else f64(tn), order="C"))
    if not integer and t.ndim >= 2:
        t = torch.movedim(t, axis % t.ndim, 1)
    if kw.get("weight") is not None:
        kw["weight"] = torch.from_numpy(f64(kw["weight"]))
    fn = F.nll_loss if nll else F.cross_entropy
    if x.ndim == 1:
        # torch 2.13 raises "output with shape [] doesn't match the broadcast shape [1]"
        # for an unbatched (C,) input whose 0-d target is ignore_index when
        # label_smoothing > 0; the unbatched form is by definition the batch of one
        out = fn(x[None], t[None], **kw)
        return (out[0] if kw.get("reduction") == "none" else out).numpy()
    return fn(x, t, **kw).numpy()


def torch_bce_with_logits(logits: Any, target: Any, **kw: Any) -> np.ndarray:
    """``torch.nn.functional.binary_cross_entropy_with_logits`` in float64."""
    import torch
    import torch.nn.functional as F

    for k in ("weight", "pos_weight"):
        if kw.get(k) is not None:
            kw[k] = torch.from_numpy(np.ascontiguousarray(f64(kw[k])))
    x = torch.from_numpy(np.ascontiguousarray(f64(logits)))
    t = torch.from_numpy(np.ascontiguousarray(f64(target)))
    return F.binary_cross_entropy_with_logits(x, t, **kw).numpy()


# --------------------------------------------------------------------------------------
# message checks
# --------------------------------------------------------------------------------------
def names_argument(msg: str, name: str) -> bool:
    """Whether ``name`` occurs in ``msg`` as a whole word (``x`` not inside ``exp``)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", msg) is not None


def mentions_shape(msg: str, shape: tuple[int, ...]) -> bool:
    """Whether ``msg`` shows ``shape`` as ``(a, b)``, ``(a,)``, ``[a, b]`` or ``()``."""
    inner = r",\s*".join(str(n) for n in shape)
    pats = [rf"\(\s*{inner}\s*,?\s*\)", rf"\[\s*{inner}\s*\]"]
    return any(re.search(p, msg) for p in pats)


# --------------------------------------------------------------------------------------
# drawing inputs and checking the kind of an output
# --------------------------------------------------------------------------------------
def draw_logits(
    rng: np.random.Generator, shape: tuple[int, ...], kind: str = "normal"
) -> np.ndarray:
    """float64 logits of a named ``kind``.

    ``normal``: N(0, 3); ``wide``: N(0, 10) (|x - max| up to ~60, no float32 subnormal
    probabilities); ``offset``: N(0, 3) + 1000 (a large common offset); ``small``: N(0, 0.01).
    """
    scale = {"normal": 3.0, "wide": 10.0, "offset": 3.0, "small": 0.01}[kind]
    x = rng.normal(size=shape) * scale
    if kind == "offset":
        x = x + 1000.0
    return x


def row_mask(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    axes: tuple[int, ...],
    *,
    p_true: float = 0.6,
    dead_rows: int = 0,
) -> np.ndarray:
    """Random boolean mask of ``shape``; every row over ``axes`` keeps a True entry except
    ``dead_rows`` rows (chosen at random) which are all False."""
    if math.prod(shape) == 0:
        return np.ones(shape, dtype=bool)
    probe = np.zeros(shape)
    rows, moved = _to_rows(probe, axes)
    m = rng.random(rows.shape) < p_true
    keep = rng.integers(0, rows.shape[1], size=rows.shape[0])
    m[np.arange(rows.shape[0]), keep] = True
    if dead_rows:
        dead = rng.choice(rows.shape[0], size=min(dead_rows, rows.shape[0]), replace=False)
        m[dead] = False
    return _from_rows(m, moved, axes)


def check_array(backend: Any, res: Any, dtype: str, shape: tuple[int, ...] | None = None) -> None:
    """``res`` is an array of ``backend``'s library with dtype ``dtype`` (and ``shape``)."""
    import array_api_compat

    ns = array_api_compat.array_namespace(res)
    assert ns is backend.xp, f"result namespace {ns.__name__} is not {backend.xp.__name__}"
    try:
        want = backend.dtype(dtype)
    except AttributeError:  # array_api_compat.dask.array has no float16 attribute
        want = np.dtype(dtype)
    assert res.dtype == want, f"result dtype {res.dtype} is not {dtype}"
    if shape is not None:
        assert tuple(res.shape) == tuple(shape), f"result shape {tuple(res.shape)} != {shape}"


# Backends whose calls are expensive (JAX compiles every primitive for every new shape,
# about a second per first call of a public function on a new shape; Dask builds and runs
# a graph) run a seeded sample of this many cases of each grid unless XSOFTMAX_SLOW=1;
# every case runs on NumPy, array-api-strict and torch.
HEAVY_SAMPLE = {"jax": 8, "dask": 24}


def grid_params(
    backends: Sequence[Any],
    cases: Sequence[Any],
    exhaustive: bool = False,
    sample: dict[str, int] | None = None,
) -> list:
    """``pytest.param(backend, case)`` pairs for a grid: every case on light backends, a
    seeded sample of ``sample[name]`` cases (default :data:`HEAVY_SAMPLE`; ten times as
    many with ``exhaustive``) on heavy ones."""
    import random

    import pytest

    sample = HEAVY_SAMPLE if sample is None else sample
    params = []
    for b in backends:
        k = min(len(cases), sample.get(b.name, len(cases)) * (10 if exhaustive else 1))
        keep = sorted(random.Random(f"{b.name}-{len(cases)}").sample(range(len(cases)), k))
        params += [pytest.param(b, cases[i], id=f"{b.name}-{cases[i].id}") for i in keep]
    if not params:
        params = [pytest.param(None, None, marks=pytest.mark.skip(reason="no backend loaded"))]
    return params


def to_backend(backend: Any, a: Any, dtype: str | None = None) -> Any:
    """``backend.asarray`` that keeps a 0-d array 0-d (the torch loader of _backends.py
    goes through ``np.ascontiguousarray``, which returns at least 1-d)."""
    a = np.asarray(a)
    out = backend.asarray(a, dtype=dtype)
    if tuple(out.shape) != a.shape:
        out = backend.xp.reshape(out, a.shape)
    return out


def torch_ce_value_and_grad(
    logits: Any, target: Any, *, axis: int = -1, **kw: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Loss of ``F.cross_entropy`` (float64, class axis moved to 1) and torch autograd's
    gradient of its sum with respect to the logits (for ``reduction='none'``: the
    gradient of the sum of the per-sample losses), in the caller's layout."""
    import torch
    import torch.nn.functional as F

    x0 = torch.from_numpy(np.array(f64(logits), order="C")).requires_grad_(True)
    x = torch.movedim(x0, axis % x0.ndim, 1) if x0.ndim >= 2 else x0
    tn = np.asarray(target)
    integer = tn.dtype.kind in "iu"
    t = torch.from_numpy(np.array(tn.astype(np.int64) if integer else f64(tn), order="C"))
    if not integer and t.ndim >= 2:
        t = torch.movedim(t, axis % t.ndim, 1)
    if kw.get("weight") is not None:
        kw["weight"] = torch.from_numpy(f64(kw["weight"]))
    if x.ndim == 1:  # see torch_cross_entropy: torch's unbatched form as a batch of one
        loss = F.cross_entropy(x[None], t[None], **kw)
        loss = loss[0] if kw.get("reduction") == "none" else loss
    else:
        loss = F.cross_entropy(x, t, **kw)
    loss.sum().backward()
    return loss.detach().numpy(), x0.grad.numpy()
