"""Launching the Triton kernels on anything with ``data_ptr()`` and a ``dtype``.

Both lanes use these: :mod:`~xsoftmax._kernels.triton.ops` (torch tensors, the
kernels wrapped with ``torch.library.wrap_triton``) and
:mod:`~xsoftmax._kernels.triton.cupy` (CuPy arrays, behind a small pointer
object). Every launch compiles with ``enable_fp_fusion=False``: our exp and the
TwoSum steps rely on each product and sum being rounded as written.

Under ``TRITON_INTERPRET=1`` the kernels run on the CPU, one program after
another, with NumPy doing the arithmetic. NumPy warns where a GPU computes
silently (``inf - inf`` of a row with no finite entry, products that overflow in
discarded lanes); those warnings are silenced around each interpreted launch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import triton

from xsoftmax._kernels.triton.cross_entropy import (
    cross_entropy_backward_kernel,
    cross_entropy_forward_kernel,
)
from xsoftmax._kernels.triton.rows import rows_backward_kernel, rows_forward_kernel

OPS = {"softmax": 0, "log_softmax": 1, "logsumexp": 2}
MAX_BLOCK = 512  # with 8 warps: no register spill in any kernel (PTX audit)


def interpreting() -> bool:
    """Whether Triton runs its interpreter (``TRITON_INTERPRET=1``) instead of a GPU."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@contextmanager
def quiet() -> Iterator[None]:
    """Silence NumPy's floating-point warnings while the interpreter runs a kernel."""
    if interpreting():
        with np.errstate(all="ignore"):
            yield
    else:
        yield


def block_size(n_cols: int, block: int | None = None) -> int:
    """The block of a row program: ``block`` if given, else the row's length up to 512.

    Examples
    --------
    >>> block_size(10), block_size(5000), block_size(5000, block=64)
    (16, 512, 64)
    """
    if block is None:
        return min(max(triton.next_power_of_2(max(n_cols, 1)), 16), MAX_BLOCK)
    if block < 1 or block & (block - 1) or block > MAX_BLOCK:
        msg = f"block: expected a power of two up to {MAX_BLOCK}, got {block!r}"
        raise ValueError(msg)
    return block


def num_warps(block: int) -> int:
    """Warps of a row program: one per 64 entries of a block, 4 to 8.

    ``tests/test_triton_ptx.py`` checks at ``MAX_BLOCK`` that no kernel spills
    registers (blocks of 1024 spilled with 8 or 16 warps on sm_80).

    Examples
    --------
    >>> num_warps(16), num_warps(512)
    (4, 8)
    """
    return max(4, min(8, block // 64))


def _plain(kernel: Any) -> Any:
    return kernel


def launch_rows_forward(
    op: str,
    x: Any,
    out: Any,
    m: Any,
    lg: Any,
    shape: tuple[int, int],
    sx: tuple[int, int],
    so: tuple[int, int],
    *,
    block: int,
    wrap: Callable[[Any], Any] = _plain,
) -> None:
    """Run :func:`~xsoftmax._kernels.triton.rows.rows_forward_kernel` on every row."""
    n_rows, n_cols = shape
    if n_rows == 0:
        return
    with quiet():
        wrap(rows_forward_kernel)[(n_rows,)](
            x, out, m, lg, n_cols, sx[0], sx[1], so[0], so[1],
            OP=OPS[op], BLOCK=block, num_warps=num_warps(block), enable_fp_fusion=False,
        )  # fmt: skip


def launch_rows_backward(
    op: str,
    x: Any,
    g: Any,
    m: Any,
    lg: Any,
    dx: Any,
    shape: tuple[int, int],
    strides: tuple[tuple[int, int], tuple[int, int], tuple[int, int]],
    *,
    block: int,
    wrap: Callable[[Any], Any] = _plain,
) -> None:
    """Run :func:`~xsoftmax._kernels.triton.rows.rows_backward_kernel` on every row."""
    n_rows, n_cols = shape
    if n_rows == 0:
        return
    (sx_r, sx_c), (sg_r, sg_c), (sd_r, sd_c) = strides
    with quiet():
        wrap(rows_backward_kernel)[(n_rows,)](
            x, g, m, lg, dx, n_cols, sx_r, sx_c, sg_r, sg_c, sd_r, sd_c,
            OP=OPS[op], BLOCK=block, num_warps=num_warps(block), enable_fp_fusion=False,
        )  # fmt: skip


def ce_constants(
    weight: Any, label_smoothing: float, softcap: float | None, z_loss: float, block: int
) -> dict[str, Any]:
    """The compile-time options of the cross-entropy kernels."""
    return {
        "HAS_W": weight is not None,
        "SMOOTH": float(label_smoothing),
        "CAP": 0.0 if softcap is None else float(softcap),
        "ZLOSS": float(z_loss),
        "BLOCK": block,
        "num_warps": num_warps(block),
        "enable_fp_fusion": False,
    }


def launch_ce_forward(
    x: Any,
    target: Any,
    weight: Any,
    wsum: Any,
    outs: tuple[Any, Any, Any, Any, Any],
    shape: tuple[int, int],
    sx: tuple[int, int],
    ignore_index: int,
    constants: dict[str, Any],
    *,
    wrap: Callable[[Any], Any] = _plain,
) -> None:
    """Run the cross-entropy forward on every row; ``outs`` is ``(ce, zl, wt, m, lg)``.

    ``weight`` and ``wsum`` may be any tensor when ``HAS_W`` is False (they are not read).
    """
    n_rows, n_cols = shape
    if n_rows == 0:
        return
    ce, zl, wt, m, lg = outs
    with quiet():
        wrap(cross_entropy_forward_kernel)[(n_rows,)](
            x, target, weight, wsum, ce, zl, wt, m, lg, n_cols, sx[0], sx[1], ignore_index,
            **constants,
        )  # fmt: skip


def launch_ce_backward(
    x: Any,
    target: Any,
    weight: Any,
    wsum: Any,
    stats: tuple[Any, Any],
    grads: tuple[Any, Any],
    dx: Any,
    shape: tuple[int, int],
    strides: tuple[tuple[int, int], tuple[int, int]],
    ignore_index: int,
    constants: dict[str, Any],
    *,
    wrap: Callable[[Any], Any] = _plain,
) -> None:
    """Run the cross-entropy backward on every row; ``grads`` is ``(d ce, d zl)`` per row."""
    n_rows, n_cols = shape
    if n_rows == 0:
        return
    (sx_r, sx_c), (sd_r, sd_c) = strides
    with quiet():
        wrap(cross_entropy_backward_kernel)[(n_rows,)](
            x, target, weight, wsum, stats[0], stats[1], grads[0], grads[1], dx,
            n_cols, sx_r, sx_c, sd_r, sd_c, ignore_index, **constants,
        )  # fmt: skip
