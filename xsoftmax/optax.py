"""Drop-in JAX losses with optax's names: change ``optax.`` / ``optax.losses.`` to ``xsoftmax.optax.``.

``softmax_cross_entropy``, ``softmax_cross_entropy_with_integer_labels``,
``safe_softmax_cross_entropy`` and ``sigmoid_binary_cross_entropy`` take optax's
arguments (``axis``, ``where``) and return optax's per-example losses, computed by
xsoftmax's exact functions; they work eagerly, under ``jax.jit``, ``jax.grad`` and
``jax.vmap``. Bad label shapes and dtypes raise the error types optax raises
(``TypeError`` for labels that do not broadcast to the logits and for floating integer
labels, ``ValueError`` for integer labels of the wrong shape), naming ``labels``.

Deliberate differences from optax (listed in ``docs/dropin/jax.md``): exact values where
optax loses digits (``[[1e8, 1e8]]`` with label 0 is ``log 2``, optax gives 0); an integer
label out of ``[0, C)`` raises ``ValueError`` on concrete arrays and gives NaN under
``jax.jit`` (optax wraps ``-1`` to the last class and gives NaN or garbage for ``>= C``);
with an element-wise ``where`` that masks out a sample's labelled class, the integer-label
loss is ``inf`` (the class has probability 0), where optax subtracts the masked logit.

Examples
--------
>>> import jax.numpy as jnp
>>> from xsoftmax import optax  # was: import optax
>>> logits = jnp.array([[1.2, -0.8, -0.5], [1e8, 1e8, 0.0]])
>>> loss = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1]))
>>> [round(float(v), 4) for v in loss]  # optax: [0.2761, 0.0]
[0.2761, 0.6931]
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

import xsoftmax

__all__ = [
    "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]

Axis = int | tuple[int, ...] | None


def _check_floating(name: str, func: str, x: Any) -> None:
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        msg = f"{func}: `{name}` must be a floating array, got dtype {jnp.result_type(x)}"
        raise TypeError(msg)


def _axes(axis: Any, ndim: int, func: str) -> tuple[int, ...]:
    """``axis`` (int, tuple or None for all) as a tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if isinstance(axis, int) and not isinstance(axis, bool) else axis
    if not isinstance(items, tuple) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in items
    ):
        msg = f"{func}: `axis` must be an int or a tuple of ints, got {axis!r}"
        raise ValueError(msg)
    out = []
    for a in items:
        if not -ndim <= a < ndim:
            msg = f"{func}: `axis` {a} is out of bounds for logits of dimension {ndim}"
            raise ValueError(msg)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        msg = f"{func}: `axis` has a repeated axis: {axis!r}"
        raise ValueError(msg)
    return tuple(out)


def _mask(where: Any, logits: jax.Array, axes: tuple[int, ...]) -> jax.Array | None:
    """optax's ``where``: of the logits' shape, or of the batch shape (expanded on ``axes``)."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.ndim != logits.ndim:
        where = jnp.expand_dims(where, axes)
    return jnp.broadcast_to(where, logits.shape)


def _broadcast_labels(func: str, logits: jax.Array, labels: Any) -> jax.Array:
    labels = jnp.asarray(labels)
    try:
        shape = jnp.broadcast_shapes(labels.shape, logits.shape)
    except ValueError:
        shape = None
    if shape != logits.shape:
        msg = (
            f"{func}: `labels` of shape {labels.shape} must broadcast to the logits' "
            f"shape {logits.shape}"
        )
        raise TypeError(msg)
    return jnp.broadcast_to(labels, logits.shape)


def softmax_cross_entropy(
    logits: Any, labels: Any, axis: Axis = -1, where: Any = None
) -> jax.Array:
    """Cross-entropy of ``logits`` against probability ``labels``, as ``optax.softmax_cross_entropy``.

    .. math:: \\ell = -\\sum_c y_c \\log \\operatorname{softmax}(x)_c

    Parameters
    ----------
    logits : jax.Array
        Floating logits, the classes on ``axis``.
    labels : jax.Array
        Probabilities (one-hot or soft), broadcastable to ``logits``' shape.
    axis : int, tuple of int or None, optional
        The class axis or axes (None: all). Default -1.
    where : jax.Array, optional
        Boolean mask of ``logits``' shape or of the batch shape; masked entries take
        no part, and a sample with nothing left has loss 0.

    Returns
    -------
    jax.Array
        The loss per example: ``logits``' shape without ``axis``.

    Raises
    ------
    TypeError
        Non-floating ``logits``; ``labels`` that do not broadcast to the logits.
    ValueError
        ``axis`` out of bounds or repeated.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from xsoftmax import optax
    >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> [round(float(v), 4) for v in optax.softmax_cross_entropy(logits, labels)]
    [0.2761, 2.9518]
    """
    func = "softmax_cross_entropy"
    logits = jnp.asarray(logits)
    _check_floating("logits", func, logits)
    axes = _axes(axis, logits.ndim, func)
    labels = _broadcast_labels(func, logits, labels)
    mask = _mask(where, logits, axes)
    log_p = xsoftmax.log_softmax(logits, axis=axes, where=mask)
    terms = labels * log_p
    if mask is not None:  # masked entries are -inf: 0 * -inf must not make a NaN
        terms = jnp.where(mask, terms, 0)
    return -jnp.sum(terms, axis=axes)


def safe_softmax_cross_entropy(logits: Any, labels: Any) -> jax.Array:
    """``optax.safe_softmax_cross_entropy``: ``0 log 0 = 0`` where a label is 0.

    A ``-inf`` logit whose label is 0 contributes 0 (not NaN), to the value and to
    the gradient. Classes on the last axis.

    Parameters
    ----------
    logits : jax.Array
        Floating logits ``[..., C]``.
    labels : jax.Array
        Probabilities broadcastable to ``[..., C]``.

    Returns
    -------
    jax.Array
        The loss per example, shape ``[...]``.

    Raises
    ------
    TypeError
        Non-floating ``logits``; ``labels`` that do not broadcast to the logits.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from xsoftmax import optax
    >>> logits = jnp.array([[0.0, -jnp.inf, 0.0]])
    >>> loss = optax.safe_softmax_cross_entropy(logits, jnp.array([[0.5, 0.0, 0.5]]))
    >>> [round(float(v), 4) for v in loss]
    [0.6931]
    """
    func = "safe_softmax_cross_entropy"
    logits = jnp.asarray(logits)
    _check_floating("logits", func, logits)
    labels = _broadcast_labels(func, logits, labels)
    log_p = xsoftmax.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.where(labels != 0, labels * log_p, 0), axis=-1)


def _flatten_class_axes(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Move ``axes`` to the end (in order) and merge them into one axis, as optax does."""
    batch = tuple(a for a in range(x.ndim) if a not in axes)
    x = jnp.transpose(x, batch + axes)
    return jnp.reshape(x, (*x.shape[: len(batch)], math.prod(x.shape[len(batch) :])))


def softmax_cross_entropy_with_integer_labels(
    logits: Any, labels: Any, axis: int | tuple[int, ...] = -1, where: Any = None
) -> jax.Array:
    """Cross-entropy against class indices, as ``optax.softmax_cross_entropy_with_integer_labels``.

    .. math:: \\ell = \\log \\sum_c e^{x_c} - x_y

    Parameters
    ----------
    logits : jax.Array
        Floating logits, the classes on ``axis``; a tuple of axes is flattened (in
        order) into one class axis, and a label is a flat index into it.
    labels : jax.Array
        Integer class indices, shape ``logits.shape`` without ``axis``; any integer dtype.
    axis : int or tuple of int, optional
        The class axis or axes. Default -1.
    where : jax.Array, optional
        Boolean mask of ``logits``' shape or of the batch shape. Masked classes have
        probability 0; a sample with nothing left has loss 0 (and gradient 0).

    Returns
    -------
    jax.Array
        The loss per example, shape ``labels.shape``.

    Raises
    ------
    TypeError
        Non-floating ``logits``; non-integer ``labels``.
    ValueError
        ``labels`` of the wrong shape; a label outside ``[0, C)`` (concrete arrays;
        under ``jax.jit`` that example's loss is NaN instead); a bad ``axis``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from xsoftmax import optax
    >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    >>> loss = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1]))
    >>> [round(float(v), 4) for v in loss]
    [0.2761, 2.9518]
    """
    func = "softmax_cross_entropy_with_integer_labels"
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    _check_floating("logits", func, logits)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        msg = (
            f"{func}: `labels` must be an integer array of class indices, got dtype {labels.dtype}"
        )
        raise TypeError(msg)
    given: Any = axis  # optax's check of the type, for callers without type checking
    if not isinstance(given, int | tuple) or isinstance(given, bool):
        msg = f"{func}: `axis` must be an int or a tuple of ints, got {type(axis).__name__}"
        raise ValueError(msg)
    axes = _axes(axis, logits.ndim, func)
    mask = _mask(where, logits, axes)
    if len(axes) > 1 or axes[0] != logits.ndim - 1:
        logits = _flatten_class_axes(logits, axes)
        mask = None if mask is None else _flatten_class_axes(mask, axes)
    if labels.shape != logits.shape[:-1]:
        msg = (
            f"{func}: `labels` must have the shape of the logits without the class "
            f"axis, {logits.shape[:-1]}; got {labels.shape}"
        )
        raise ValueError(msg)
    if mask is None:
        return _integer_loss(func, logits, labels)
    kept = jnp.any(mask, axis=-1)
    # masked classes -inf; a sample with nothing kept computes on zeros and returns 0, so
    # that neither its value nor its gradient is NaN
    masked = jnp.where(mask, logits, -jnp.inf)
    masked = jnp.where(kept[..., None], masked, 0)
    return jnp.where(kept, _integer_loss(func, masked, labels), 0)


def _integer_loss(func: str, logits: jax.Array, labels: jax.Array) -> jax.Array:
    try:
        return xsoftmax.cross_entropy(logits, labels, axis=-1, reduction="none")
    except ValueError as exc:  # a label out of range: name optax's argument
        msg = f"{func}: `labels` (xsoftmax's `target`): {exc}"
        raise ValueError(msg) from exc


def sigmoid_binary_cross_entropy(logits: Any, labels: Any) -> jax.Array:
    """Element-wise sigmoid cross-entropy, as ``optax.sigmoid_binary_cross_entropy``.

    .. math:: \\ell = -y \\log \\sigma(x) - (1 - y) \\log(1 - \\sigma(x))

    Finite for finite logits of any magnitude, and the limits (0 or ``inf``) at
    ``±inf`` logits.

    Parameters
    ----------
    logits : jax.Array
        Floating logits.
    labels : jax.Array
        Labels in {0, 1} or probabilities, broadcastable with ``logits`` (cast to the
        logits' dtype).

    Returns
    -------
    jax.Array
        The loss per element, of the broadcast shape.

    Raises
    ------
    TypeError
        Non-floating ``logits``; ``labels`` that do not broadcast with the logits.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from xsoftmax import optax
    >>> x, y = jnp.array([0.0, -120.0]), jnp.array([1.0, 1.0])
    >>> [round(float(v), 4) for v in optax.sigmoid_binary_cross_entropy(x, y)]
    [0.6931, 120.0]
    """
    func = "sigmoid_binary_cross_entropy"
    logits = jnp.asarray(logits)
    _check_floating("logits", func, logits)
    labels = jnp.asarray(labels).astype(logits.dtype)
    try:
        shape = jnp.broadcast_shapes(logits.shape, labels.shape)
    except ValueError as exc:
        msg = (
            f"{func}: `labels` of shape {labels.shape} does not broadcast with the "
            f"logits' shape {logits.shape}"
        )
        raise TypeError(msg) from exc
    return xsoftmax.binary_cross_entropy_with_logits(
        jnp.broadcast_to(logits, shape), jnp.broadcast_to(labels, shape), reduction="none"
    )
