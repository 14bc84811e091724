"""Fused CPU kernels for ``linear_cross_entropy`` (NumPy arrays, torch CPU tensors; numba).

Each block of logits comes out of one BLAS call and is then read once per
sweep, in place, by a compiled row loop, instead of a dozen array expressions
that each allocate and stream a block-sized temporary:

* :func:`stats`: the cap, the row maximum, ``top`` (how many logits equal it),
  ``rest = Σ exp(x - m)`` over the others with the shift done exactly (in
  float64 with TwoSum, so float32 and float64 data alike), the target's logit
  and ``Σ a_c (x_c - m)``: the statistics of :func:`xsoftmax._definition.linear_sweep.chunk_stats`;
* :func:`grad`: overwrites the block with ``dloss/dlogits``, which the caller
  multiplies into the gradients with BLAS calls that write into the outputs.

Rows whose maximum is not finite (or that hold NaN) are recomputed by the
generic kernels, so special values follow the contract. numba is optional (the
``fast`` extra), imported on the first call; ``XSOFTMAX_NO_NUMBA=1`` or
:func:`xsoftmax._contract.config.fast_paths_disabled` turn the kernels off, and the
generic sweeps give the same numbers (the tests hold them equal).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace
from typing import Any

import numpy as np

from xsoftmax._contract.config import fast_paths_enabled

Array = Any

_state: dict[str, Any] = {}


def _kernels() -> Any:
    """The compiled kernels (numba imported and the functions built on the first call)."""
    k = _state.get("kernels")
    if k is None:
        from xsoftmax._kernels.numba import linear_loops as _linear_numba
        from xsoftmax._kernels.numba.threads import GuardedKernels

        # every loop of the module is parallel=True
        k = _state["kernels"] = GuardedKernels(_linear_numba, ("fold_chunk", "grad_chunk"))
    return k


def _numba_available() -> bool:
    ok = _state.get("available")
    if ok is None:
        disabled = os.environ.get("XSOFTMAX_NO_NUMBA", "").strip() not in ("", "0")
        ok = _state["available"] = not disabled and importlib.util.find_spec("numba") is not None
    return bool(ok)


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``np.float32``, ``np.dtype("float32")`` and ``torch.float32`` alike."""
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]


def _plain(a: Any) -> bool:
    if a is None:
        return True
    if type(a) is np.ndarray:
        return True
    mod = type(a).__module__
    if mod.startswith("torch"):
        import torch

        if torch._C._functorch.is_functorch_wrapped_tensor(a):  # no storage (torch.func)
            return False
        return a.device.type == "cpu" and not a.is_sparse and not getattr(a, "is_meta", False)
    return False


def usable(p: Any) -> bool:
    """Whether the kernels may run on problem ``p``: index targets, float32/float64, CPU memory."""
    if not (fast_paths_enabled() and p.spec.kind == "index" and _numba_available()):
        return False
    if dtype_name(p.spec.compute) not in ("float32", "float64"):
        return False
    return all(_plain(a) for a in (p.x, p.w, p.b, p.target))


def _np(a: Any) -> np.ndarray:
    """A NumPy view of an array (a torch CPU tensor's own memory)."""
    if type(a) is np.ndarray:
        return a
    return a.detach().numpy()


def _is_torch(a: Any) -> bool:
    return type(a).__module__.startswith("torch")


def logits(p: Any, w: Array, b: Array | None) -> Array:
    """``x @ w.T + b`` as a fresh C-contiguous block (without the cap)."""
    if _is_torch(p.x):
        import torch

        if b is None:
            return torch.mm(p.x, w.T)
        return torch.addmm(b.to(p.x.dtype), p.x, w.T)
    out = np.matmul(p.x, w.T)
    if b is not None:
        out += b
    return out


def _local_target(p: Any, start: int, stop: int) -> np.ndarray:
    t = _np(p.target).astype(np.int64, copy=False)
    return np.where((t >= start) & (t < stop), t - start, -1)


def _a(p: Any, start: int, stop: int) -> np.ndarray:
    if p.a_class is None:
        return np.zeros(0, np.float64)
    return _np(p.a_class[start:stop]).astype(np.float64)


def _back(p: Any, a: np.ndarray) -> Array:
    if _is_torch(p.x):
        import torch

        return torch.from_numpy(a)
    return a


def forward(p: Any) -> Any:
    """The statistics sweep with the fused kernel: ``Stats``, or None where a row needs the generic one.

    Every block is folded into running per-row arrays inside the kernel (no
    array-library call per block besides the matmul). A row with a NaN or a
    non-finite maximum makes the caller run the generic sweep instead.
    """
    from xsoftmax._definition.linear_loss import chunks, weight_chunk
    from xsoftmax._definition.linear_sweep import Stats

    n = p.n_rows
    dt = np.float64 if dtype_name(p.spec.compute) == "float64" else np.float32
    m = np.full(n, -np.inf, dt)
    xt = np.zeros(n, dt)
    top = np.zeros(n, np.float64)
    rest = np.zeros(n, np.float64)
    soft = np.zeros(n, np.float64)
    ok = np.ones(n, np.bool_)
    cap = 0.0 if p.spec.softcap is None else float(p.spec.softcap)
    a_prev = 0.0
    fold = _kernels().fold_chunk
    for start, stop in chunks(p):
        w, b = weight_chunk(p, start, stop)
        a = _a(p, start, stop)
        fold(
            _np(logits(p, w, b)),
            cap,
            _local_target(p, start, stop),
            a,
            a_prev,
            m,
            top,
            rest,
            xt,
            soft,
            ok,
        )
        a_prev += float(a.sum())
    if not ok.all():
        return None

    def col(v: np.ndarray) -> Array:
        return _back(p, v.reshape(n, 1))

    soft_t = a_sum = None
    if p.spec.soft:
        soft_t = col(soft)
        a_sum = _back(p, np.asarray(a_prev))
    return Stats(m=col(m), top=col(top), rest=col(rest), x_t=col(xt), soft=soft_t, a_sum=a_sum)


def grad(
    p: Any,
    block: Array,
    start: int,
    stop: int,
    fin: Any,
    coefs: tuple[Array, Array | None, Array | None],
    *,
    capped: bool = False,
) -> Array:
    """Overwrite a block of uncapped logits with ``dloss/dlogits`` (the cap's derivative included)."""
    coef_p, coef_t, soft_rows = coefs
    L = _np(block)
    n = L.shape[0]

    def vec(v: Any) -> np.ndarray:
        if v is None:
            return np.zeros(n, np.float64)
        return np.ascontiguousarray(_np(v).reshape(n), dtype=np.float64)

    total = vec(fin.total)
    inv = np.where(total == 0, 1.0, 1.0 / np.where(total == 0, 1.0, total))
    cap = 0.0 if p.spec.softcap is None else float(p.spec.softcap)
    _kernels().grad_chunk(
        L,
        cap,
        capped,
        np.ascontiguousarray(_np(fin.m).reshape(n)),
        inv,
        vec(coef_p),
        vec(coef_t),
        _local_target(p, start, stop),
        vec(soft_rows),
        _a(p, start, stop),
    )
    return block


def accumulate(
    p: Any, g: Array, w: Array, start: int, stop: int, dx: Array, dw: Array, db: Array | None
) -> Array:
    """``dx += g @ w``, ``dw[start:stop] = g.T @ x``, ``db[start:stop] = Σ g``, into the outputs."""
    if _is_torch(p.x):
        import torch

        dx.addmm_(g, w)
        torch.mm(g.T, p.x, out=dw[start:stop])
        if db is not None:
            torch.sum(g, dim=0, out=db[start:stop])
        return dx
    dx += g @ w
    np.matmul(g.T, p.x, out=dw[start:stop])
    if db is not None:
        np.sum(g, axis=0, out=db[start:stop])
    return dx


MIN_BLOCK_ROWS = 16
"""Fewest rows per block for :func:`fused_rows` (below, its weight-gradient updates cost too much)."""


def rows_per_block(p: Any) -> int:
    """Rows of the ``(R, C)`` blocks that hold as many logits as an ``(N, chunk)`` block."""
    return min(p.n_rows, (p.n_rows * p.chunk) // max(p.n_classes, 1))


def fused_usable(p: Any) -> bool:
    """Whether :func:`fused_rows` may run: torch CPU tensors of one compute dtype, blocks big enough."""
    if not (usable(p) and _is_torch(p.x)) or p.n_rows == 0 or p.n_classes == 0:
        return False
    if p.w.dtype != p.x.dtype or (p.b is not None and p.b.dtype != p.x.dtype):
        return False
    return rows_per_block(p) >= min(MIN_BLOCK_ROWS, p.n_rows)


def fused_rows(p: Any, upstream: Any) -> Any:
    """Loss terms and gradients in one pass over blocks of whole rows (three matmuls in all).

    Each block of ``R`` rows gets all ``C`` logits from one BLAS call; their
    statistics are exact at once (a single chunk), the block is overwritten
    with ``dloss/dlogits`` and multiplied into ``d_input`` (its rows) and
    ``d_linear_weight`` / ``d_linear_bias`` (accumulated in place). ``upstream``
    is the loss's incoming gradient (None: 1). Returns
    ``(ce, zt, dx, dw, db)``, or None when a row needs the generic kernels.
    """
    import torch

    from xsoftmax._definition.linear_loss import denominators, grad_coefs, per_sample
    from xsoftmax._definition.linear_sweep import Stats, finish

    spec = p.spec
    xp = p.xp
    n_all, c = p.n_rows, p.n_classes
    d = int(p.x.shape[1])
    r = rows_per_block(p)
    den, count = denominators(p)
    totals = (den, count, n_all)
    w, b = p.w, p.b
    dx = torch.empty((n_all, d), dtype=p.x.dtype)
    dw = torch.zeros((c, d), dtype=p.x.dtype)
    db = None if b is None else torch.zeros((c,), dtype=p.x.dtype)
    a = _a(p, 0, c)
    a_total = float(a.sum())
    cap = 0.0 if spec.softcap is None else float(spec.softcap)
    kernels = _kernels()
    dt = np.float64 if p.x.dtype == torch.float64 else np.float32
    ces, zts = [], []
    for r0 in range(0, n_all, r):
        r1 = min(n_all, r0 + r)
        n = r1 - r0
        xr = p.x[r0:r1]
        block = torch.mm(xr, w.T) if b is None else torch.addmm(b, xr, w.T)
        m = np.full(n, -np.inf, dt)
        xt = np.zeros(n, dt)
        top, rest, soft = np.zeros(n), np.zeros(n), np.zeros(n)
        ok = np.ones(n, np.bool_)
        pb = replace(
            p,
            x=xr,
            target=p.target[r0:r1],
            ignored=p.ignored[r0:r1],
            bad=p.bad[r0:r1],
            w_t=p.w_t[r0:r1],
            lead=(n,),
        )
        L = _np(block)
        kernels.fold_chunk(L, cap, _local_target(pb, 0, c), a, 0.0, m, top, rest, xt, soft, ok)
        if not ok.all():
            return None

        def col(v: np.ndarray, n: int = n) -> Array:
            return torch.from_numpy(v.reshape(n, 1))

        st = Stats(
            m=col(m),
            top=col(top),
            rest=col(rest),
            x_t=col(xt),
            soft=col(soft) if spec.soft else None,
            a_sum=torch.tensor(a_total, dtype=torch.float64) if spec.soft else None,
        )
        fin = finish(st, p.a_total, spec, xp=xp)
        ce, zt = per_sample(pb, fin)
        ces.append(ce)
        if zt is not None:
            zts.append(zt)
        up = upstream
        if up is not None and p.reduction == "none":
            up = xp.reshape(up, (n_all,))[r0:r1]
        grad(pb, block, 0, c, fin, grad_coefs(pb, fin, up, totals), capped=True)
        torch.mm(block, w, out=dx[r0:r1])
        dw.addmm_(block.T, xr)
        if db is not None:
            db.add_(block.sum(dim=0))
        del block
    ce_all = torch.cat(ces)
    zt_all = torch.cat(zts) if zts else None
    return ce_all, zt_all, dx, dw, db
