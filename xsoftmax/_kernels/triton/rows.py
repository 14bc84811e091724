# mypy: ignore-errors
# (Triton's language is not typed for mypy)
"""Row kernels: softmax, log_softmax and logsumexp, one program per row.

Each program loops over its row in blocks of ``BLOCK`` entries, three passes
(the mathematics of the CPU kernels, ``xsoftmax/_kernels/numba``):

1. the maximum ``m`` (NaN ignored), the index ``top`` of its first occurrence and
   whether the row holds a NaN (:func:`row_max`);
2. ``rest``, the sum of ``exp(x_j - m)`` over every ``j`` but ``top``, in float64,
   each term ``exp(z) (1 + e)`` with ``e`` the exact error of ``z = x - m`` and the
   sum compensated per lane and across lanes (:func:`row_rest`);
3. the output: ``log_softmax = (z - log1p(rest)) + e``, ``softmax = w / (1 + rest)``
   (a float64 division, correctly rounded), ``logsumexp = m + log1p(rest)``.

A row whose maximum is not finite (all ``-inf``, a ``+inf``, NaN only) gives NaN
in softmax and log_softmax and ``-inf`` / ``+inf`` / NaN in logsumexp, as the
definition does. The forward also stores ``m`` and ``log1p(rest)`` per row
(float64): the backward recomputes the probabilities from them.
"""

from __future__ import annotations

import triton
import triton.language as tl

from xsoftmax._kernels.triton.exp import (
    _f64,
    exact_sum,
    exp_neg,
    log1p_pos,
    shift,
    tanh,
    two_sum_add,
)

SOFTMAX = tl.constexpr(0)
LOG_SOFTMAX = tl.constexpr(1)
LOGSUMEXP = tl.constexpr(2)
NO_INDEX = tl.constexpr(2147483647)
SMOOTH_SCALE = tl.constexpr(2.0**-32)  # the smoothing sum is kept scaled: see row_rest


@triton.jit
def load_row(x_row, cols, n_cols, stride_c):
    """Entries ``cols`` of a row as float64 (``-inf`` past its end)."""
    x = tl.load(x_row + cols * stride_c, mask=cols < n_cols, other=-float("inf"))
    return x.to(tl.float64)


@triton.jit
def as_output(y, ptr):
    """Float64 ``y`` in ``ptr``'s element type (half precision through float32).

    float16 and bfloat16 go through float32: the interpreter's direct float64 ->
    bfloat16 cast is broken (NumPy has no bfloat16), and the contract computes half
    precision in float32 anyway (the double rounding is at most one half-precision ulp).
    """
    ty = ptr.dtype.element_ty
    if ty == tl.float16 or ty == tl.bfloat16:
        y = y.to(tl.float32)
    return y.to(ty)


@triton.jit
def capped(x, CAP: tl.constexpr):
    """``CAP * tanh(x / CAP)`` (float64; ``x`` itself for ``CAP == 0``)."""
    if CAP > 0:
        x = _f64(CAP) * tanh(x / _f64(CAP))
    return x


@triton.jit
def row_max(x_row, n_cols, stride_c, BLOCK: tl.constexpr):
    """The row's maximum (NaN ignored; ``-inf`` when none), its first index, and a NaN flag."""
    offs = tl.arange(0, BLOCK)
    mv = tl.full((BLOCK,), -float("inf"), tl.float64)
    iv = tl.full((BLOCK,), NO_INDEX, tl.int32)
    nv = tl.zeros((BLOCK,), tl.int32)
    for start in range(0, n_cols, BLOCK):
        cols = start + offs
        x = load_row(x_row, cols, n_cols, stride_c)
        better = x > mv
        iv = tl.where(better, cols, iv)
        mv = tl.where(better, x, mv)
        nv = tl.maximum(nv, (x != x).to(tl.int32))
    m = tl.max(mv, 0)
    top = tl.min(tl.where(mv == m, iv, NO_INDEX), 0)
    return m, top, tl.max(nv, 0) > 0


@triton.jit
def row_rest(
    x_row,
    n_cols,
    stride_c,
    m,
    top,
    w_ptr,
    CAP: tl.constexpr,
    SMOOTH: tl.constexpr,
    HAS_W: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``rest = Σ_{j != top} exp(x_j - m)`` and, for ``SMOOTH``, ``2**-32 Σ_j w_j (x_j - m)``.

    Both sums are float64 and compensated (TwoSum per lane and in the tree).
    ``x`` is soft-capped first when ``CAP > 0``; ``w`` is 1 without ``HAS_W``.
    """
    offs = tl.arange(0, BLOCK)
    r_hi = tl.zeros((BLOCK,), tl.float64)
    r_lo = tl.zeros((BLOCK,), tl.float64)
    s_hi = tl.zeros((BLOCK,), tl.float64)
    s_lo = tl.zeros((BLOCK,), tl.float64)
    for start in range(0, n_cols, BLOCK):
        cols = start + offs
        inside = cols < n_cols
        x = capped(load_row(x_row, cols, n_cols, stride_c), CAP)
        z, e = shift(x, m)
        t = exp_neg(z)
        # past the row's end x is -inf, but capped it is -CAP: mask, never rely on exp(-inf)
        w = tl.where(inside & (cols != top), tl.fma(t, e, t), _f64(0.0))
        r_hi, r_lo = two_sum_add(r_hi, r_lo, w, tl.zeros_like(w))
        if SMOOTH:
            # Σ w_c (x_c - m) scaled by 2**-32 (exactly), so that it cannot overflow for
            # logits near ±finfo.max (C < 2**31 terms of at most 2 finfo.max each)
            zs, es = shift(x * _f64(SMOOTH_SCALE), m * _f64(SMOOTH_SCALE))
            if HAS_W:
                wc = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float64)
                zs = wc * zs
                es = wc * es
            zs = tl.where(inside, zs, _f64(0.0))
            es = tl.where(inside, es, _f64(0.0))
            s_hi, s_lo = two_sum_add(s_hi, s_lo, zs, es)
    return exact_sum(r_hi, r_lo), exact_sum(s_hi, s_lo)


@triton.jit
def row_stats(x_row, n_cols, stride_c, BLOCK: tl.constexpr):
    """``(m, top, fin, lse, lg, rest)`` of a row (no soft cap, no smoothing).

    ``m`` is the maximum, replaced by 0 where it is not finite (``fin`` False);
    ``lse`` is then ``-inf``, ``+inf`` or NaN as the definition gives.
    """
    m, top, has_nan = row_max(x_row, n_cols, stride_c, BLOCK)
    fin = (m > -float("inf")) & (m < float("inf"))
    mf = tl.where(fin, m, _f64(0.0))
    top = tl.where(fin, top, -1)
    rest, _ = row_rest(x_row, n_cols, stride_c, mf, top, x_row, 0.0, False, False, BLOCK)
    lg = log1p_pos(rest)
    special = tl.where(has_nan, float("nan"), m)  # logsumexp of a row with no finite max
    lse = tl.where(fin, mf + lg, special)
    return mf, top, fin, lse, lg, rest


@triton.jit
def rows_forward_kernel(
    x_ptr,
    out_ptr,
    m_ptr,
    lg_ptr,
    n_cols,
    sx_r,
    sx_c,
    so_r,
    so_c,
    OP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """softmax (``OP=0``), log_softmax (1) or logsumexp (2, ``out`` one value a row) of a row."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * sx_r
    mf, _, fin, lse, lg, rest = row_stats(x_row, n_cols, sx_c, BLOCK)
    tl.store(m_ptr + row, mf)
    tl.store(lg_ptr + row, tl.where(fin, lg, float("nan")))
    if OP == LOGSUMEXP:
        tl.store(out_ptr + row * so_r, as_output(lse, out_ptr))
    else:
        offs = tl.arange(0, BLOCK)
        total = _f64(1.0) + rest
        for start in range(0, n_cols, BLOCK):
            cols = start + offs
            z, e = shift(load_row(x_row, cols, n_cols, sx_c), mf)
            if OP == LOG_SOFTMAX:
                y = (z - lg) + e
            else:
                t = exp_neg(z)
                y = tl.fma(t, e, t) / total
            y = tl.where(fin, y, float("nan"))
            o = out_ptr + row * so_r + cols * so_c
            tl.store(o, as_output(y, out_ptr), mask=cols < n_cols)


@triton.jit
def probability(x, m, lg):
    """``p = exp(x - m - lg)`` to about 1 ulp: both shifts carried with their TwoSum errors."""
    z, e = shift(x, m)
    d, ed = shift(z, lg)
    t = exp_neg(d)
    return tl.fma(t, e + ed, t)


@triton.jit
def rows_backward_kernel(
    x_ptr,
    g_ptr,
    m_ptr,
    lg_ptr,
    dx_ptr,
    n_cols,
    sx_r,
    sx_c,
    sg_r,
    sg_c,
    sd_r,
    sd_c,
    OP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """The gradient of a row's softmax, log_softmax or logsumexp, ``p`` recomputed from ``x``.

    softmax: ``p (g - Σ g p)``; log_softmax: ``g - p Σ g``; logsumexp: ``g p``
    (``g`` one value a row). The row sums are float64 and compensated.
    """
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * sx_r
    g_row = g_ptr + row * sg_r
    m = tl.load(m_ptr + row)
    lg = tl.load(lg_ptr + row)
    offs = tl.arange(0, BLOCK)
    if OP == LOGSUMEXP:
        s = tl.load(g_row).to(tl.float64)
    else:
        s_hi = tl.zeros((BLOCK,), tl.float64)
        s_lo = tl.zeros((BLOCK,), tl.float64)
        for start in range(0, n_cols, BLOCK):
            cols = start + offs
            inside = cols < n_cols
            g = tl.load(g_row + cols * sg_c, mask=inside, other=0.0).to(tl.float64)
            if OP == SOFTMAX:
                g = tl.where(
                    inside, g * probability(load_row(x_row, cols, n_cols, sx_c), m, lg), 0.0
                )
            s_hi, s_lo = two_sum_add(s_hi, s_lo, g, tl.zeros_like(g))
        s = exact_sum(s_hi, s_lo)
    for start in range(0, n_cols, BLOCK):
        cols = start + offs
        inside = cols < n_cols
        p = probability(load_row(x_row, cols, n_cols, sx_c), m, lg)
        if OP == LOGSUMEXP:
            d = s * p
        else:
            g = tl.load(g_row + cols * sg_c, mask=inside, other=0.0).to(tl.float64)
            if OP == SOFTMAX:  # noqa: SIM108 (a compile-time branch: OP is a constexpr)
                d = p * (g - s)
            else:
                d = g - p * s
        o = dx_ptr + row * sd_r + cols * sd_c
        tl.store(o, as_output(d, dx_ptr), mask=inside)
