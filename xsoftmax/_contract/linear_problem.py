"""``linear_cross_entropy``'s arguments checked and cast: one validated problem.

Everything the chunked sweeps need is gathered here once: the input flattened to
``(N, d)`` in the compute dtype, the classified targets, the class weights and
the soft (label-smoothing / probability) coefficients, and the per-row weights
that the reductions divide by. Nothing here touches a logit.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from array_api_compat import device

from xsoftmax._contract.checks import (
    check_floating,
    check_ignore_index,
    check_ignore_index_for_kind,
    check_label_smoothing,
    check_out_dtype,
    check_reduction,
    check_softcap,
    check_weight,
    check_z_loss,
    namespace_of,
    target_kind,
)
from xsoftmax._contract.dtypes import accumulation_dtype, compute_dtype
from xsoftmax._contract.namespaces import is_known
from xsoftmax._contract.prepare import cast, wider
from xsoftmax._contract.targets import classify_targets

Array = Any

LOGITS = "input @ linear_weight.T"
"""How messages name the logits that are never formed."""

CHUNK_ELEMENTS = 3 << 21
"""Default size of one block of logits, ``N * chunk`` elements (24 MiB of float32: under 5% of the logits of 2048 x 65536)."""

MIN_CHUNK = 128
"""Smallest default chunk of classes (keeps the matmuls efficient for many rows)."""


@dataclass(frozen=True)
class Spec:
    """What a sweep needs besides the arrays: options and dtypes (all static)."""

    n_classes: int
    kind: str  # "index" or "prob"
    eps: float
    softcap: float | None
    compute: Any
    acc: Any

    @property
    def soft(self) -> bool:
        """Whether a label-smoothing / probability term is carried."""
        return self.kind == "prob" or self.eps > 0


@dataclass(frozen=True)
class Problem:
    """A validated ``linear_cross_entropy`` problem."""

    xp: Any
    spec: Spec
    x: Array  # (N, d) compute dtype
    w: Array  # (C, d) as given
    b: Array | None  # (C,) as given
    lead: tuple[int, ...]  # input.shape[:-1]
    target: Array  # (N,) safe class indices, or (N, C) probabilities (compute dtype)
    ignored: Array | None  # (N,) bool (index targets)
    bad: Array | None  # (N,) bool (index targets; lazy out-of-range)
    weight: Array | None  # (C,) compute dtype
    w_t: Array | None  # (N,) acc: weight[target] (index targets)
    a_class: Array | None  # (C,) compute: the smoothing coefficients (index targets)
    a_total: Any  # acc: Σ a_class (index targets)
    z_loss: float
    reduction: str
    chunk: int
    out_dtype: Any
    dtypes: tuple[Any, Any, Any]  # of input, linear_weight, linear_bias (None)

    @property
    def n_rows(self) -> int:
        """``N``: the number of samples."""
        return int(self.x.shape[0])

    @property
    def n_classes(self) -> int:
        """``C``: the number of classes."""
        return self.spec.n_classes

    def a_chunk(self, take: Any, target_chunk: Array | None) -> Array | None:
        """The soft coefficients of one chunk of classes: ``(K,)`` or ``(N, K)``.

        ``take(array, axis)`` cuts the chunk out of a class axis (a slice on eager
        arrays, a dynamic slice under JAX); ``target_chunk`` is the probability
        target's block (probability targets).
        """
        spec = self.spec
        if spec.kind == "prob":
            assert target_chunk is not None
            q = target_chunk
            if spec.eps > 0:
                q = q * (1 - spec.eps) + spec.eps / spec.n_classes
            if self.weight is not None:
                q = take(self.weight, 0) * q
            return q
        if self.a_class is None:
            return None
        return take(self.a_class, 0)


def check_chunk_size(func: str, chunk_size: Any) -> int | None:
    """``chunk_size`` must be None or an int >= 1."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        msg = (
            f"{func}: `chunk_size` must be None or an int >= 1 (classes per chunk), got "
            f"{type(chunk_size).__name__} {chunk_size!r}"
        )
        raise TypeError(msg)
    if int(chunk_size) < 1:
        msg = f"{func}: `chunk_size` must be None or an int >= 1, got {int(chunk_size)}"
        raise ValueError(msg)
    return int(chunk_size)


def default_chunk(n_rows: int, n_classes: int) -> int:
    """Classes per chunk: about :data:`CHUNK_ELEMENTS` logits per block."""
    k = max(MIN_CHUNK, CHUNK_ELEMENTS // max(n_rows, 1))
    return max(1, min(k, n_classes))


def _check_shapes(
    func: str, input: Array, linear_weight: Array, linear_bias: Array | None, target: Array
) -> None:
    if input.ndim == 0:
        msg = (
            f"{func}: `input` must have at least one dimension (the features, d), got a "
            "0-dimensional array"
        )
        raise ValueError(msg)
    for name, a in (("input", input), ("linear_weight", linear_weight), ("target", target)):
        if any(not is_known(n) for n in a.shape):
            msg = (
                f"{func}: `{name}` has axes of unknown length {tuple(a.shape)} (a Dask array "
                f"after boolean indexing); call `{name}.compute_chunk_sizes()` first: "
                "linear_cross_entropy splits the rows and classes into blocks of known size"
            )
            raise ValueError(msg)
    if linear_weight.ndim != 2:
        msg = (
            f"{func}: `linear_weight` must have shape (C, d) (2 dimensions), got "
            f"{tuple(linear_weight.shape)}"
        )
        raise ValueError(msg)
    d_in, d_w = int(input.shape[-1]), int(linear_weight.shape[1])
    if d_in != d_w:
        msg = (
            f"{func}: the last axis of `input` {tuple(input.shape)} must match the second axis "
            f"of `linear_weight` {tuple(linear_weight.shape)} (d): got {d_in} and {d_w}"
        )
        raise ValueError(msg)
    if linear_bias is not None and tuple(linear_bias.shape) != (int(linear_weight.shape[0]),):
        msg = (
            f"{func}: `linear_bias` must have shape ({int(linear_weight.shape[0])},) (C,) to "
            f"match `linear_weight` {tuple(linear_weight.shape)}, got {tuple(linear_bias.shape)}"
        )
        raise ValueError(msg)


def setup(
    func: str,
    input: Array,
    linear_weight: Array,
    target: Array,
    *,
    linear_bias: Array | None = None,
    weight: Array | None = None,
    ignore_index: Any = -100,
    reduction: Any = "mean",
    label_smoothing: Any = 0.0,
    z_loss: Any = 0.0,
    softcap: Any = None,
    chunk_size: Any = None,
    dtype: Any = None,
) -> Problem:
    """Validate every argument and build the :class:`Problem` (defaults: the public ones)."""
    optional = {"linear_bias": linear_bias, "weight": weight}
    xp = namespace_of(
        func,
        input=input,
        linear_weight=linear_weight,
        target=target,
        **{name: a for name, a in optional.items() if a is not None},
    )
    check_floating(func, "input", input, xp)
    check_floating(func, "linear_weight", linear_weight, xp)
    if linear_bias is not None:
        check_floating(func, "linear_bias", linear_bias, xp)
    check_out_dtype(func, dtype, xp)
    reduction = check_reduction(func, reduction)
    eps = check_label_smoothing(func, label_smoothing)
    ignore_index = check_ignore_index(func, ignore_index)
    zl = check_z_loss(func, z_loss)
    cap = check_softcap(func, softcap)
    chunk = check_chunk_size(func, chunk_size)
    _check_shapes(func, input, linear_weight, linear_bias, target)
    n_classes = int(linear_weight.shape[0])
    lead = tuple(int(s) for s in input.shape[:-1])
    logits_like = SimpleNamespace(shape=(*lead, n_classes))
    kind = target_kind(func, LOGITS, logits_like, target, len(lead), xp)
    check_ignore_index_for_kind(func, kind, ignore_index)
    if weight is not None:
        check_weight(func, weight, n_classes, xp)

    out_dtype = input.dtype if dtype is None else dtype
    compute = compute_dtype(xp, input.dtype)
    for dt in (linear_weight.dtype, out_dtype, None if linear_bias is None else linear_bias.dtype):
        if dt is not None:
            compute = wider(xp, compute, compute_dtype(xp, dt))
    acc = accumulation_dtype(xp, compute)
    n_rows = math.prod(lead)
    d = int(input.shape[-1])
    x = cast(xp.reshape(input, (n_rows, d)), compute, xp)
    w_c = None if weight is None else cast(weight, compute, xp)
    spec = Spec(n_classes=n_classes, kind=kind, eps=eps, softcap=cap, compute=compute, acc=acc)

    ignored = bad = w_t = a_class = None
    a_total: Any = 0.0
    if kind == "index":
        safe, ignored, bad = classify_targets(
            func, xp.reshape(target, (n_rows,)), n_classes, ignore_index, xp
        )
        tgt = safe
        if w_c is None:
            w_t = xp.ones((n_rows,), dtype=acc, device=device(x))
        else:
            w_t = xp.astype(xp.take(w_c, safe, axis=0), acc) if n_classes else None
            if w_t is None:
                w_t = xp.ones((n_rows,), dtype=acc, device=device(x))
        if eps > 0 and n_classes:
            coef = eps / n_classes
            if w_c is None:
                a_class = xp.full((n_classes,), coef, dtype=compute, device=device(x))
                a_total = eps
            else:
                a_class = coef * w_c
                a_total = coef * xp.sum(xp.astype(w_c, acc))
    else:
        tgt = cast(xp.reshape(target, (n_rows, n_classes)), compute, xp)
    return Problem(
        xp=xp,
        spec=spec,
        x=x,
        w=linear_weight,
        b=linear_bias,
        lead=lead,
        target=tgt,
        ignored=ignored,
        bad=bad,
        weight=w_c,
        w_t=w_t,
        a_class=a_class,
        a_total=a_total,
        z_loss=zl,
        reduction=reduction,
        chunk=chunk if chunk is not None else default_chunk(n_rows, n_classes),
        out_dtype=out_dtype,
        dtypes=(
            input.dtype,
            linear_weight.dtype,
            None if linear_bias is None else linear_bias.dtype,
        ),
    )
