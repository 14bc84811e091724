"""Cache-blocked driver: run a row kernel over blocks of rows that fit in cache.

For eager backends whose arrays accept writes (NumPy, CuPy, PyTorch without
autograd, array-api-strict), a full-size row kernel makes many passes over
memory and allocates several input-sized temporaries. Running the same kernel
on blocks of about 1 MiB and writing each block's result into the output keeps
the temporaries in cache and allocates only the output. Rows are independent,
so every block gives exactly what the kernel gives on the whole array.

Only standard operations are used (slicing and ``__setitem__``). JAX (immutable),
Dask (lazy) and arrays that need autograd take the unblocked generic path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import array_api_compat

from xsoftmax._contract.config import fast_paths_enabled
from xsoftmax._contract.namespaces import is_concrete

Array = Any

BLOCK_BYTES = 1 << 20
"""Target size of one block of input rows (about the L2 cache of one core)."""


def can_block(x: Array, axes: tuple[int, ...]) -> bool:
    """Whether ``x`` may be processed by :func:`map_row_blocks` along ``axes``.

    Needs fast paths enabled, an eager writable array without autograd, the
    reduction over the last axis only, and more than one block of data.
    """
    if not fast_paths_enabled() or axes != (x.ndim - 1,) or x.ndim < 2:
        return False
    if array_api_compat.is_jax_array(x) or array_api_compat.is_dask_array(x):
        return False
    if getattr(x, "requires_grad", False) or not is_concrete(x):
        return False
    size = math.prod([int(s) for s in x.shape])
    return size * _itemsize(x) > 2 * BLOCK_BYTES


def _itemsize(x: Array) -> int:
    size = getattr(x.dtype, "itemsize", None)
    if isinstance(size, int):
        return size
    return 8 if "64" in str(x.dtype) else 4


def row_blocks(x: Array) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of the blocks of rows of ``x`` viewed as ``(rows, x.shape[-1])``."""
    n_cols = int(x.shape[-1])
    n_rows = math.prod([int(s) for s in x.shape[:-1]])
    step = max(1, BLOCK_BYTES // max(1, n_cols * _itemsize(x)))
    for start in range(0, n_rows, step):
        yield start, min(start + step, n_rows)


def map_row_blocks(
    kernel: Callable[[Array], Array],
    x: Array,
    out_last: int | None,
    out_dtype: Any,
    *,
    xp: Any,
) -> Array:
    """Apply ``kernel`` (rows of a 2-D block in, rows out) to blocks of rows of ``x``.

    ``x`` is viewed as ``(rows, C)`` with ``C`` its last axis; ``kernel`` maps a
    ``(n, C)`` block to ``(n, out_last)`` (``out_last=None``: to ``(n,)``). The
    result has ``x``'s leading shape followed by ``out_last`` (if not None).
    """
    lead = tuple(int(s) for s in x.shape[:-1])
    n_cols = int(x.shape[-1])
    n_rows = math.prod(lead)
    flat = xp.reshape(x, (n_rows, n_cols))
    out_shape = (n_rows,) if out_last is None else (n_rows, out_last)
    out = xp.empty(out_shape, dtype=out_dtype, device=array_api_compat.device(x))
    for start, stop in row_blocks(x):
        block = kernel(flat[start:stop, ...])
        out[start:stop, ...] = block if block.dtype == out_dtype else xp.astype(block, out_dtype)
    final = lead if out_last is None else (*lead, out_last)
    return xp.reshape(out, final)
