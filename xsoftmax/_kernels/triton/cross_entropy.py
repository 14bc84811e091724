# mypy: ignore-errors
# (Triton's language is not typed for mypy)
"""Cross-entropy kernels with class-index targets: the loss and its gradient, a row each.

Options are compile-time constants (one compiled kernel per combination):
``HAS_W`` (class weights), ``SMOOTH`` (label smoothing ``ε``), ``CAP`` (soft cap,
0 for none) and ``ZLOSS`` (the z-loss coefficient). With ``x' = CAP tanh(x / CAP)``,
``m = max x'``, ``z = x' - m`` carried with its error ``e``, ``rest`` the sum of
``exp(z) (1 + e)`` without the maximum's own term and ``lg = log1p(rest)``, a
counted row ``i`` with target ``t`` gives

.. math::

    nll = (lg - z_t) - e_t, \\qquad
    ce = (1 - ε) w_t\\, nll + \\frac{ε}{C} \\Big(lg \\sum_c w_c - \\sum_c w_c (z_c + e_c)\\Big),
    \\qquad zl = \\text{ZLOSS} (m + lg)^2,

never ``logsumexp - x_t`` (which cancels on confident rows). An ignored row
(``t == ignore_index``) gives 0; a target out of ``[0, C)`` that is not ignored
gives NaN, so no value check needs the host. The forward also stores ``m``,
``lg`` and the row's weight ``w_t`` (the mean's denominator, summed on the device).
"""

from __future__ import annotations

import triton
import triton.language as tl

from xsoftmax._kernels.triton.exp import _f64, log1p_pos, shift, tanh
from xsoftmax._kernels.triton.rows import (
    SMOOTH_SCALE,
    as_output,
    load_row,
    probability,
    row_max,
    row_rest,
)


@triton.jit
def _target(t_ptr, w_ptr, row, n_cols, ignore_index, HAS_W: tl.constexpr):
    """The row's target (clamped into range), whether it is ignored or invalid, its weight."""
    t = tl.load(t_ptr + row).to(tl.int64)
    ignored = t == ignore_index
    valid = (t >= 0) & (t < n_cols)
    tc = tl.where(valid, t, 0)
    if HAS_W:  # noqa: SIM108 (a compile-time branch: HAS_W is a constexpr)
        wt = tl.load(w_ptr + tc, mask=valid, other=0.0).to(tl.float64)
    else:
        wt = _f64(1.0)
    return tc, ignored, valid, wt


@triton.jit
def _class_weight_sum(w_ptr, wsum_ptr, n_cols, HAS_W: tl.constexpr):
    """``Σ_c w_c`` (read from ``wsum_ptr``, summed on the device beforehand) or ``C``."""
    if HAS_W:
        return tl.load(wsum_ptr).to(tl.float64)
    return n_cols.to(tl.float64)


@triton.jit
def cross_entropy_forward_kernel(
    x_ptr,
    t_ptr,
    w_ptr,
    wsum_ptr,
    ce_ptr,
    zl_ptr,
    wt_ptr,
    m_ptr,
    lg_ptr,
    n_cols,
    sx_r,
    sx_c,
    ignore_index,
    HAS_W: tl.constexpr,
    SMOOTH: tl.constexpr,
    CAP: tl.constexpr,
    ZLOSS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Per row: the (weighted, smoothed) loss ``ce``, the z-loss ``zl``, ``w_t``, ``m``, ``lg``."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * sx_r
    tc, ignored, valid, wt = _target(t_ptr, w_ptr, row, n_cols, ignore_index, HAS_W)
    m_raw, top, _ = row_max(x_row, n_cols, sx_c, BLOCK)
    m = m_raw
    if CAP > 0:  # the soft cap is increasing: the maximum of x' is the cap of the maximum
        m = _f64(CAP) * tanh(m_raw / _f64(CAP))
    fin = (m > -float("inf")) & (m < float("inf"))
    mf = tl.where(fin, m, _f64(0.0))
    top = tl.where(fin, top, -1)
    rest, sz = row_rest(x_row, n_cols, sx_c, mf, top, w_ptr, CAP, SMOOTH > 0, HAS_W, BLOCK)
    lg = tl.where(fin, log1p_pos(rest), float("nan"))
    xt = tl.load(x_row + tc * sx_c).to(tl.float64)
    if CAP > 0:
        xt = _f64(CAP) * tanh(xt / _f64(CAP))
    zt, et = shift(xt, mf)
    nll = (lg - zt) - et
    if SMOOTH > 0:
        wsum = _class_weight_sum(w_ptr, wsum_ptr, n_cols, HAS_W)
        # (ε / C)(lg W - Σ w_c z_c), with the sum scaled by 2**-32 (see row_rest)
        smooth = (lg * wsum) * _f64(SMOOTH_SCALE) - sz
        per_class = (_f64(SMOOTH) * smooth) / n_cols.to(tl.float64)
        ce = _f64(1.0 - SMOOTH) * (wt * nll) + per_class * _f64(1.0 / SMOOTH_SCALE)
    else:
        ce = wt * nll
    bad = (~ignored) & (~valid)
    ce = tl.where(ignored, _f64(0.0), tl.where(bad, float("nan"), ce))
    tl.store(ce_ptr + row, ce)
    tl.store(wt_ptr + row, tl.where(ignored, _f64(0.0), tl.where(bad, float("nan"), wt)))
    tl.store(m_ptr + row, mf)
    tl.store(lg_ptr + row, lg)
    if ZLOSS > 0:
        lse = mf + lg
        zl = _f64(ZLOSS) * (lse * lse)
        zl = tl.where(ignored, _f64(0.0), tl.where(bad, float("nan"), zl))
        tl.store(zl_ptr + row, zl)


@triton.jit
def cross_entropy_backward_kernel(
    x_ptr,
    t_ptr,
    w_ptr,
    wsum_ptr,
    m_ptr,
    lg_ptr,
    gce_ptr,
    gzl_ptr,
    dx_ptr,
    n_cols,
    sx_r,
    sx_c,
    sd_r,
    sd_c,
    ignore_index,
    HAS_W: tl.constexpr,
    SMOOTH: tl.constexpr,
    CAP: tl.constexpr,
    ZLOSS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``d/dx`` of ``gce_i ce_i + gzl_i zl_i`` for a row, ``p`` recomputed from ``m`` and ``lg``.

    ``d/dx'_j = gce ((1 - ε) w_t (p_j - [j = t]) + (ε / C)(W p_j - w_j))
    + gzl 2 ZLOSS (m + lg) p_j``, times ``1 - tanh(x_j / CAP)**2`` under a soft cap.
    """
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * sx_r
    tc, ignored, valid, wt = _target(t_ptr, w_ptr, row, n_cols, ignore_index, HAS_W)
    m = tl.load(m_ptr + row)
    lg = tl.load(lg_ptr + row)
    gce = tl.load(gce_ptr + row).to(tl.float64)
    hit = gce * (_f64(1.0 - SMOOTH) * wt)
    coef = hit
    if SMOOTH > 0:
        per_class = gce * (_f64(SMOOTH) / n_cols.to(tl.float64))
        coef += per_class * _class_weight_sum(w_ptr, wsum_ptr, n_cols, HAS_W)
    if ZLOSS > 0:
        gzl = tl.load(gzl_ptr + row).to(tl.float64)
        coef += gzl * (_f64(2.0 * ZLOSS) * (m + lg))
    offs = tl.arange(0, BLOCK)
    for start in range(0, n_cols, BLOCK):
        cols = start + offs
        inside = cols < n_cols
        x = load_row(x_row, cols, n_cols, sx_c)
        if CAP > 0:
            th = tanh(x / _f64(CAP))
            x = _f64(CAP) * th
        d = coef * probability(x, m, lg)
        d = tl.where(cols == tc, d - hit, d)
        if SMOOTH > 0:
            if HAS_W:
                wc = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float64)
                d -= per_class * wc
            else:
                d -= per_class
        if CAP > 0:
            d *= (_f64(1.0) - th) * (_f64(1.0) + th)
        d = tl.where(ignored, _f64(0.0), tl.where(valid, d, float("nan")))
        o = dx_ptr + row * sd_r + cols * sd_c
        tl.store(o, as_output(d, dx_ptr), mask=inside)
