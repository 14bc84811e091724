"""Fused row kernels on CPU memory, compiled with numba (the optional ``fast`` extra).

Each function takes a 2-D C-contiguous float32/float64 NumPy array ``x2`` (rows
on the last axis; a torch CPU tensor gets here as a zero-copy view) and gives
the generic path's answer within 2 ulps, in one pass of three loops per row
(see :mod:`xsoftmax._kernels.numba.row_loops`). Rows the kernel does not finish
(``+inf`` or NaN entries, all ``-inf``) are recomputed by the generic kernel, so
special values follow the contract exactly.

numba is imported, and the kernels compiled (or loaded from numba's on-disk
cache), on the first call, never at ``import xsoftmax``. ``XSOFTMAX_NO_NUMBA=1``
in the environment disables the kernels.

Examples
--------
>>> import numpy as np
>>> from xsoftmax._kernels.numba import rows as cpu
>>> x = np.array([[0.0, -40.0]])
>>> float(cpu.log_softmax(x)[0, 0]) if cpu.available() else -4.248354255291589e-18
-4.248354255291589e-18
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from xsoftmax._contract.namespaces import numpy_namespace
from xsoftmax._definition import rows as _generic

_PARALLEL_MIN_SIZE = 1 << 24
"""Elements of input from which rows are split over threads. Measured on the
2-core development machine (shared): threads were slower than one thread, in
wall and CPU time, at every size up to 2M elements ((8, 262144), (64, 8192),
(4096, 1000)); only inputs far above that may gain."""

_state: dict[str, Any] = {}


def available() -> bool:
    """Whether the numba kernels may run: numba is installed and ``XSOFTMAX_NO_NUMBA`` is unset.

    Does not import numba; the answer is kept after the first call.

    Examples
    --------
    >>> from xsoftmax._kernels.numba import rows as cpu
    >>> isinstance(cpu.available(), bool)
    True
    """
    ok = _state.get("available")
    if ok is None:
        disabled = os.environ.get("XSOFTMAX_NO_NUMBA", "").strip() not in ("", "0")
        ok = not disabled and importlib.util.find_spec("numba") is not None
        _state["available"] = ok
    return bool(ok)


def eligible(x2: Any) -> bool:
    """A 2-D C-contiguous float32/float64 ``np.ndarray`` with at least one column.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._kernels.numba import rows as cpu
    >>> cpu.eligible(np.zeros((2, 3))), cpu.eligible(np.zeros((2, 3)).T)
    (True, False)
    """
    return (
        type(x2) is np.ndarray
        and x2.ndim == 2
        and x2.dtype in (np.float32, np.float64)
        and x2.flags.c_contiguous
        and x2.shape[1] > 0
    )


def _kernels() -> Any:
    mod = _state.get("kernels")
    if mod is None:
        from xsoftmax._kernels.numba import row_loops as _numba_rows
        from xsoftmax._kernels.numba.threads import GuardedKernels

        parallel = tuple(name for name in dir(_numba_rows) if name.endswith("_par"))
        mod = _state["kernels"] = GuardedKernels(_numba_rows, parallel)
    return mod


def _numpy_xp() -> Any:
    """NumPy's array API namespace for the generic kernel (numpy itself from 2.1)."""
    return numpy_namespace()


def _parallel(x2: np.ndarray) -> np.ndarray | None:
    """Row bounds of the thread chunks, or None for one thread."""
    n = x2.shape[0]
    if n < 2 or x2.size < _PARALLEL_MIN_SIZE:
        return None
    import numba

    parts = min(n, 4 * numba.get_num_threads())
    if parts < 2:
        return None
    return np.linspace(0, n, parts + 1).astype(np.int64)


def _wide(x2: np.ndarray) -> bool:
    return bool(x2.dtype == np.float32)


def log_softmax(x2: np.ndarray) -> np.ndarray:
    """Exact log-softmax of the rows of ``x2``, in its dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._kernels.numba import rows as cpu
    >>> y = cpu.log_softmax(np.array([[1e8, 1e8, 1e8 - 64]], np.float32))
    >>> [round(float(v), 4) for v in y[0]]
    [-0.6931, -0.6931, -64.6931]
    """
    k = _kernels()
    out = np.empty(x2.shape, x2.dtype)
    ok = np.empty(x2.shape[0], np.bool_)
    bounds = _parallel(x2)
    if bounds is None:
        k.log_softmax(x2, out, ok, _wide(x2))
    else:
        k.log_softmax_par(x2, out, ok, _wide(x2), bounds)
    if np.count_nonzero(ok) != ok.shape[0]:
        idx = np.flatnonzero(~ok)
        with np.errstate(all="ignore"):
            out[idx] = _generic.log_softmax(x2[idx], (1,), np.float64, xp=_numpy_xp())
    return out


def softmax(x2: np.ndarray) -> np.ndarray:
    """Exact softmax of the rows of ``x2``, in its dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._kernels.numba import rows as cpu
    >>> [float(v) for v in cpu.softmax(np.array([[1e30, -1e30, 0.0]]))[0]]
    [1.0, 0.0, 0.0]
    """
    k = _kernels()
    out = np.empty(x2.shape, x2.dtype)
    ok = np.empty(x2.shape[0], np.bool_)
    bounds = _parallel(x2)
    if bounds is None:
        k.softmax(x2, out, ok, _wide(x2))
    else:
        k.softmax_par(x2, out, ok, _wide(x2), bounds)
    if np.count_nonzero(ok) != ok.shape[0]:
        idx = np.flatnonzero(~ok)
        with np.errstate(all="ignore"):
            out[idx] = _generic.softmax(x2[idx], (1,), np.float64, xp=_numpy_xp())
    return out


def logsumexp(x2: np.ndarray) -> np.ndarray:
    """Exact logsumexp of the rows of ``x2``, shape ``(n,)``, float64.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._kernels.numba import rows as cpu
    >>> [round(float(v), 4) for v in cpu.logsumexp(np.array([[0.0, 0.0], [1e8, -np.inf]]))]
    [0.6931, 100000000.0]
    """
    k = _kernels()
    out = np.empty(x2.shape[0], np.float64)
    ok = np.empty(x2.shape[0], np.bool_)
    bounds = _parallel(x2)
    if bounds is None:
        k.logsumexp(x2, out, ok, _wide(x2))
    else:
        k.logsumexp_par(x2, out, ok, _wide(x2), bounds)
    if np.count_nonzero(ok) != ok.shape[0]:
        idx = np.flatnonzero(~ok)
        with np.errstate(all="ignore"):
            lse, _ = _generic.logsumexp(x2[idx], (1,), np.float64, xp=_numpy_xp())
        out[idx] = lse[:, 0]
    return out


def _generic_nll(rows: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(logsumexp - x_t, no finite logit)`` of ``rows`` by the generic kernel."""
    xp = _numpy_xp()
    with np.errstate(all="ignore"):
        sh = _generic.shift_by_max(rows, (1,), np.float64, xp=xp)
        log_sum = _generic.log_total(_generic.row_sums(sh, (1,), np.float64, xp=xp), xp=xp)
        pick = np.arange(rows.shape[0])
        nll = log_sum[:, 0] - sh.z[pick, targets].astype(np.float64)
        if sh.e is not None:
            nll = nll - sh.e[pick, targets]
    return nll, sh.m[:, 0] == -np.inf


def target_nll(x2: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``logsumexp(x_n) - x_n[t_n]`` (float64) and whether the row has no finite logit.

    ``target`` is int64 ``(n,)`` with every index valid.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._kernels.numba import rows as cpu
    >>> nll, empty = cpu.target_nll(np.array([[0.0, 0.0], [-np.inf, -np.inf]]), np.array([1, 0]))
    >>> round(float(nll[0]), 4), empty.tolist()
    (0.6931, [False, True])
    """
    k = _kernels()
    n = x2.shape[0]
    nll = np.empty(n, np.float64)
    ok = np.empty(n, np.bool_)
    t = np.ascontiguousarray(target, dtype=np.int64)
    bounds = _parallel(x2)
    if bounds is None:
        k.target_nll(x2, t, nll, ok, _wide(x2))
    else:
        k.target_nll_par(x2, t, nll, ok, _wide(x2), bounds)
    empty = np.zeros(n, np.bool_)
    if np.count_nonzero(ok) != ok.shape[0]:
        idx = np.flatnonzero(~ok)
        nll[idx], empty[idx] = _generic_nll(x2[idx], t[idx])
    return nll, empty


def nll_and_grad(
    x2: np.ndarray, target: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row NLL (float64) and ``scale_n * (softmax(x_n) - onehot(t_n))`` in ``x2``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._kernels.numba import rows as cpu
    >>> nll, grad = cpu.nll_and_grad(np.array([[0.0, 0.0]]), np.array([1]), np.array([1.0]))
    >>> round(float(nll[0]), 4), grad[0].tolist()
    (0.6931, [0.5, -0.5])
    """
    nll, grad, _ = nll_grad_empty(x2, target, scale)
    return nll, grad


def nll_grad_empty(
    x2: np.ndarray, target: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`nll_and_grad` and the rows with no finite logit (as :func:`target_nll` gives).

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax._kernels.numba import rows as cpu
    >>> x = np.array([[0.0, 0.0], [-np.inf, -np.inf]])
    >>> cpu.nll_grad_empty(x, np.array([1, 0]), np.array([1.0, 1.0]))[2].tolist()
    [False, True]
    """
    k = _kernels()
    n = x2.shape[0]
    nll = np.empty(n, np.float64)
    grad = np.empty(x2.shape, x2.dtype)
    ok = np.empty(n, np.bool_)
    t = np.ascontiguousarray(target, dtype=np.int64)
    s = np.ascontiguousarray(scale, dtype=np.float64)
    bounds = _parallel(x2)
    if bounds is None:
        k.nll_and_grad(x2, t, s, nll, grad, ok, _wide(x2))
    else:
        k.nll_and_grad_par(x2, t, s, nll, grad, ok, _wide(x2), bounds)
    empty = np.zeros(n, np.bool_)
    if np.count_nonzero(ok) != ok.shape[0]:
        idx = np.flatnonzero(~ok)
        rows = x2[idx]
        nll[idx], empty[idx] = _generic_nll(rows, t[idx])
        with np.errstate(all="ignore"):
            prob = _generic.softmax(rows, (1,), np.float64, xp=_numpy_xp())
            g = s[idx][:, None] * prob
            g[np.arange(idx.size), t[idx]] -= s[idx]
            grad[idx] = g
    return nll, grad, empty
