"""Drop-in Keras 3 losses: change ``keras.losses.`` to ``xsoftmax.keras.``.

``SparseCategoricalCrossentropy``, ``CategoricalCrossentropy`` and ``BinaryCrossentropy``
are ``keras.losses.Loss`` subclasses with Keras's arguments (``from_logits``,
``label_smoothing``, ``axis``, ``ignore_class``, ``reduction``, ``name``, ``dtype``),
``sample_weight``, Keras's masks and reductions (Keras's own ``Loss.__call__`` runs), and
``get_config``/``from_config``. They are registered with
``keras.saving.register_keras_serializable(package="xsoftmax")``, so a saved model that
uses them reloads with ``keras.models.load_model`` once this module is imported.

They run under ``KERAS_BACKEND`` ``jax``, ``torch`` and ``numpy``, whose tensors are
array-API arrays; TensorFlow tensors are not, and constructing a loss under the
``tensorflow`` backend raises ``ValueError``.

**Logits are the exact route.** With ``from_logits=True`` the loss is xsoftmax's exact
cross-entropy of the logits. With ``from_logits=False`` (Keras's default) ``y_pred`` holds
probabilities, whose small values were already rounded away when the softmax was taken;
the loss then follows Keras's formula (probabilities clipped to ``[1e-7, 1 - 1e-7]``,
normalised), with the same numbers as Keras. Put no softmax at the end of the model and
pass ``from_logits=True`` to get the exact loss.

Deliberate differences from Keras (listed in ``docs/dropin/keras.md``): exact values where
Keras loses digits (``BinaryCrossentropy(from_logits=True)`` under the numpy backend clips
at 16.1; large logits); a class index out of range raises ``ValueError`` on concrete
arrays (NaN for that sample inside a compiled ``jax`` step) where Keras silently gives 0 or
fails in the backend; ``label_smoothing`` outside ``[0, 1]`` raises ``ValueError``;
``SparseCategoricalCrossentropy`` also takes ``label_smoothing`` (default 0, as
``CategoricalCrossentropy``'s) and keeps ``axis`` in its config.

Examples
--------
>>> import numpy as np
>>> from xsoftmax import keras as xkeras  # was: keras.losses
>>> loss_fn = xkeras.SparseCategoricalCrossentropy(from_logits=True)
>>> logits = np.array([[2.0, 0.5, -1.0], [0.0, -40.0, 0.0]], dtype="float32")
>>> round(float(loss_fn(np.array([0, 0]), logits)), 4)
0.4672
"""

from __future__ import annotations

import contextlib
from typing import Any

import keras
from keras import ops

import xsoftmax

__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy"]

ARRAY_API_BACKENDS = ("jax", "torch", "numpy")

try:  # Keras >= 3.6 keeps masks of tensors that take no attributes (jax arrays) here
    from keras.src.backend.common.masking import set_keras_mask as _set_keras_mask
except ImportError:  # pragma: no cover - older Keras 3 reads the attribute

    def _set_keras_mask(x: Any, mask: Any) -> None:
        with contextlib.suppress(AttributeError):  # jax arrays take no attributes
            x._keras_mask = mask


def _check_backend(name: str) -> None:
    backend = keras.backend.backend()
    if backend not in ARRAY_API_BACKENDS:
        msg = (
            f"xsoftmax.keras.{name}: KERAS_BACKEND must be one of {ARRAY_API_BACKENDS}, "
            f"got {backend!r}: its tensors are not array-API arrays, which xsoftmax needs. "
            "Set KERAS_BACKEND=jax (or torch) before importing keras, or use keras.losses."
        )
        raise ValueError(msg)


def _check_smoothing(name: str, label_smoothing: Any) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, int | float):
        msg = (
            f"xsoftmax.keras.{name}: `label_smoothing` must be a real number in [0, 1], "
            f"got {label_smoothing!r}"
        )
        raise TypeError(msg)
    if not 0.0 <= label_smoothing <= 1.0:  # also refuses NaN
        msg = (
            f"xsoftmax.keras.{name}: `label_smoothing` must be in [0, 1], got {label_smoothing!r}"
        )
        raise ValueError(msg)
    return float(label_smoothing)


def _same_rank(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Keras's alignment of ranks: squeeze or expand a trailing axis of size 1."""
    r_true, r_pred = len(y_true.shape), len(y_pred.shape)
    if r_true == r_pred + 1 and y_true.shape[-1] == 1:
        if r_pred == 1:
            y_pred = ops.expand_dims(y_pred, -1)
        else:
            y_true = ops.squeeze(y_true, -1)
    elif r_pred == r_true + 1 and y_pred.shape[-1] == 1:
        if r_true == 1:
            y_true = ops.expand_dims(y_true, -1)
        else:
            y_pred = ops.squeeze(y_pred, -1)
    return y_true, y_pred


def _clipped_log(p: Any) -> Any:
    eps = keras.config.epsilon()
    return ops.log(ops.clip(p, eps, 1.0 - eps))


class _XLoss(keras.losses.Loss):
    """The shared part: backend check, options and config."""

    def __init__(
        self,
        *,
        from_logits: bool,
        label_smoothing: float,
        axis: int,
        reduction: str | None,
        name: str,
        dtype: Any,
    ) -> None:
        _check_backend(type(self).__name__)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = from_logits
        self.label_smoothing = _check_smoothing(type(self).__name__, label_smoothing)
        if isinstance(axis, bool) or not isinstance(axis, int):
            msg = f"xsoftmax.keras.{type(self).__name__}: `axis` must be an int, got {axis!r}"
            raise TypeError(msg)
        self.axis = axis

    def call(self, y_true: Any, y_pred: Any) -> Any:
        _check_backend(type(self).__name__)
        y_true, y_pred = _same_rank(y_true, y_pred)
        return self._losses(y_true, y_pred)

    def _losses(self, y_true: Any, y_pred: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Keras's config: ``name``, ``reduction`` and the loss's own arguments."""
        config = super().get_config()
        config.update(
            {
                "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing,
                "axis": self.axis,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="xsoftmax")
class CategoricalCrossentropy(_XLoss):
    """``keras.losses.CategoricalCrossentropy`` by :func:`xsoftmax.cross_entropy`.

    ``y_true`` holds probabilities (one-hot or soft) of ``y_pred``'s shape, the
    classes on ``axis``. With ``from_logits=True`` the loss per sample is

    .. math:: \\ell = -\\sum_c y'_c \\log \\operatorname{softmax}(x)_c,
              \\qquad y' = (1 - \\varepsilon)\\, y + \\varepsilon / C

    computed exactly; with ``from_logits=False``, Keras's formula on the clipped,
    normalised probabilities.

    Parameters
    ----------
    from_logits : bool, optional
        Whether ``y_pred`` holds logits (the exact route) or probabilities (default).
    label_smoothing : float, optional
        In [0, 1] (a ``ValueError`` outside, where Keras accepts anything).
    axis : int, optional
        The class axis, default -1.
    reduction : str or None, optional
        Keras's reductions: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"``,
        ``"mean_with_sample_weight"``, ``"none"`` or None.
    name : str, optional
        Default ``"categorical_crossentropy"``.
    dtype : str or keras.DTypePolicy, optional
        The computation dtype (default ``keras.config.floatx()``).

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax import keras as xkeras
    >>> loss_fn = xkeras.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    >>> y_true = np.array([[1.0, 0.0, 0.0]], dtype="float32")
    >>> round(float(loss_fn(y_true, np.array([[2.0, 0.5, -1.0]], dtype="float32"))), 4)
    0.3913
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_crossentropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )

    def _losses(self, y_true: Any, y_pred: Any) -> Any:
        if self.from_logits:
            return xsoftmax.cross_entropy(
                y_pred,
                ops.cast(y_true, y_pred.dtype),
                axis=self.axis,
                reduction="none",
                label_smoothing=self.label_smoothing,
            )
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.label_smoothing:  # the classes on `axis` (Keras: the last axis, always)
            n_classes = y_true.shape[self.axis]
            y_true = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / n_classes
        p = y_pred / ops.sum(y_pred, axis=self.axis, keepdims=True)
        return -ops.sum(y_true * _clipped_log(p), axis=self.axis)


@keras.saving.register_keras_serializable(package="xsoftmax")
class SparseCategoricalCrossentropy(_XLoss):
    """``keras.losses.SparseCategoricalCrossentropy`` by :func:`xsoftmax.cross_entropy`.

    ``y_true`` holds class indices: ``y_pred``'s shape without ``axis`` (or with a
    trailing axis of size 1, as Keras accepts). ``ignore_class`` samples contribute
    nothing and are left out of the mean, as in Keras (a Keras mask on the losses).

    Parameters
    ----------
    from_logits : bool, optional
        Whether ``y_pred`` holds logits (the exact route) or probabilities (default).
    ignore_class : int, optional
        A class index whose samples are ignored (e.g. -1 or 255 for "void").
    reduction : str or None, optional
        Keras's reductions, default ``"sum_over_batch_size"``.
    axis : int, optional
        The class axis, default -1.
    name : str, optional
        Default ``"sparse_categorical_crossentropy"``.
    dtype : str or keras.DTypePolicy, optional
        The computation dtype (default ``keras.config.floatx()``).
    label_smoothing : float, optional
        An xsoftmax extra (Keras's sparse loss has none): torch's definition, default 0.

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax import keras as xkeras
    >>> loss_fn = xkeras.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    >>> logits = np.array([[2.0, 0.5, -1.0], [9.0, 0.0, 0.0]], dtype="float32")
    >>> round(float(loss_fn(np.array([0, -1]), logits)), 4)  # the mean over one sample
    0.2413
    """

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        axis: int = -1,
        name: str = "sparse_categorical_crossentropy",
        dtype: Any = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )
        if ignore_class is not None and (
            isinstance(ignore_class, bool) or not isinstance(ignore_class, int)
        ):
            msg = (
                "xsoftmax.keras.SparseCategoricalCrossentropy: `ignore_class` must be an "
                f"int or None, got {ignore_class!r}"
            )
            raise TypeError(msg)
        self.ignore_class = ignore_class

    def _losses(self, y_true: Any, y_pred: Any) -> Any:
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[self.axis] == 1:
            y_true = ops.squeeze(y_true, axis=self.axis)
        target = ops.cast(y_true, "int32")  # Keras's Loss.__call__ made it floating
        ignore = -100 if self.ignore_class is None else self.ignore_class
        if self.from_logits:
            losses = xsoftmax.cross_entropy(
                y_pred,
                target,
                axis=self.axis,
                ignore_index=ignore,
                reduction="none",
                label_smoothing=self.label_smoothing,
            )
        else:
            p = y_pred / ops.sum(y_pred, axis=self.axis, keepdims=True)
            log_p = _clipped_log(p)
            losses = xsoftmax.nll_loss(
                log_p, target, axis=self.axis, ignore_index=ignore, reduction="none"
            )
            if self.label_smoothing:
                smooth = -ops.mean(log_p, axis=self.axis)
                losses = (1.0 - self.label_smoothing) * losses + self.label_smoothing * smooth
        if self.ignore_class is not None:
            valid = ops.not_equal(target, self.ignore_class)
            losses = ops.where(valid, losses, 0.0)
            _set_keras_mask(losses, valid)
        return losses

    def get_config(self) -> dict[str, Any]:
        """Keras's config (``from_logits``, ``ignore_class``) plus ``axis`` and ``label_smoothing``."""
        config = super().get_config()
        config["ignore_class"] = self.ignore_class
        return config


@keras.saving.register_keras_serializable(package="xsoftmax")
class BinaryCrossentropy(_XLoss):
    """``keras.losses.BinaryCrossentropy`` by :func:`xsoftmax.binary_cross_entropy_with_logits`.

    The element-wise loss, averaged over ``axis`` (Keras's definition); labels are
    smoothed towards 0.5 by ``label_smoothing``. With ``from_logits=True`` it is
    finite for finite logits of any magnitude and the limit at ``±inf``.

    Parameters
    ----------
    from_logits : bool, optional
        Whether ``y_pred`` holds logits (the exact route) or probabilities (default).
    label_smoothing : float, optional
        In [0, 1]: labels become ``y (1 - s) + s / 2``.
    axis : int, optional
        The axis the element-wise losses are averaged over, default -1.
    reduction : str or None, optional
        Keras's reductions, default ``"sum_over_batch_size"``.
    name : str, optional
        Default ``"binary_crossentropy"``.
    dtype : str or keras.DTypePolicy, optional
        The computation dtype (default ``keras.config.floatx()``).

    Examples
    --------
    >>> import numpy as np
    >>> from xsoftmax import keras as xkeras
    >>> loss_fn = xkeras.BinaryCrossentropy(from_logits=True, reduction="none")
    >>> y_pred = np.array([[-120.0], [40.0]], dtype="float32")
    >>> [round(float(v), 4) for v in loss_fn(np.array([[1.0], [0.0]]), y_pred)]
    [120.0, 40.0]
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_crossentropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            reduction=reduction,
            name=name,
            dtype=dtype,
        )

    def _losses(self, y_true: Any, y_pred: Any) -> Any:
        if tuple(y_true.shape) != tuple(y_pred.shape):
            msg = (
                "xsoftmax.keras.BinaryCrossentropy: `y_true` must have the shape of `y_pred`, "
                f"{tuple(y_pred.shape)}; got {tuple(y_true.shape)}"
            )
            raise ValueError(msg)
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            elementwise = xsoftmax.binary_cross_entropy_with_logits(
                y_pred, y_true, reduction="none"
            )
        else:
            eps = keras.config.epsilon()
            p = ops.clip(y_pred, eps, 1.0 - eps)
            elementwise = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        return ops.mean(elementwise, axis=self.axis)
