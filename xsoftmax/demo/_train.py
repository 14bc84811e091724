"""Softmax regression and minibatch SGD, written once against the array API standard.

The model is ``logits = x @ weight + bias``; the objective of one minibatch is

.. math::

    J(W, b) = \\frac{1}{n} \\sum_i \\mathrm{CE}_\\varepsilon(x_i W + b, y_i)
              + \\frac{\\lambda}{2} \\lVert W \\rVert_F^2

with :math:`\\mathrm{CE}_\\varepsilon` the cross entropy with label smoothing
:math:`\\varepsilon` and :math:`\\lambda` the weight decay (the bias is not decayed).
:func:`xsoftmax.cross_entropy_with_grad` gives the loss and
:math:`G = \\partial J / \\partial\\,\\mathrm{logits}` analytically, so no autograd is
needed: :math:`\\partial J / \\partial W = x^\\top G + \\lambda W` and
:math:`\\partial J / \\partial b = \\sum_i G_i`.

Everything random (the initial weights and the order of the samples in each epoch)
is drawn in NumPy from one seeded generator, so every backend sees the same batches
and, up to rounding, ends with the same weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import array_api_compat
import numpy as np

import xsoftmax
from xsoftmax.demo._backends import ArrayBackend
from xsoftmax.demo._data import Dataset

INIT_SCALE = 0.01
"""Standard deviation of the normal initial weights."""

LAZY_GRAPH_STEPS = 50
"""On a lazy backend (Dask), persist the parameters after this many SGD steps.

Building each operation of a task graph costs time that grows with the graph, so an
epoch of thousands of steps (MNIST at batch 32: 1875) would never finish building.
Epochs of at most this many steps (the digits at the default batch size: 45) are
computed exactly once, at the end of the epoch, together with the metrics.
"""


@dataclass(frozen=True)
class TrainConfig:
    """The hyperparameters of one run (the defaults are the CLI's defaults).

    The defaults reach a test accuracy of about 0.97 on the digits in a second or
    two on NumPy; see ``docs/demo.md`` for the measurements.
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.05
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class EpochResult:
    """Loss and accuracy on both splits after one epoch.

    The losses are the plain mean cross entropy over the whole split (no label
    smoothing, no weight decay), so that runs with different settings compare.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float


@dataclass
class TrainResult:
    """Final parameters (as NumPy arrays) and the per-epoch history."""

    weight: np.ndarray
    bias: np.ndarray
    history: list[EpochResult] = field(default_factory=list)


class Progress(Protocol):
    """What the training loop needs of a progress bar."""

    def update(self, n: int = 1) -> Any:
        """Advance by ``n`` steps."""

    def close(self) -> Any:
        """Finish the bar."""


ProgressFactory = Callable[[int, str], Progress]
"""``factory(total_steps, description)`` -> a new progress bar."""


def init_params(
    n_features: int, n_classes: int, rng: np.random.Generator, dtype: np.dtype | type
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded initial weight ``(n_features, n_classes)`` and zero bias, in NumPy."""
    weight = rng.normal(0.0, INIT_SCALE, size=(n_features, n_classes)).astype(dtype)
    bias = np.zeros(n_classes, dtype=dtype)
    return weight, bias


def loss_and_grad(
    weight: Any,
    bias: Any,
    x: Any,
    y: Any,
    *,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
) -> tuple[Any, Any, Any]:
    """The minibatch objective and its gradient with respect to ``weight`` and ``bias``.

    Parameters
    ----------
    weight : array, shape (d, C)
    bias : array, shape (C,)
    x : array, shape (n, d)
    y : integer array, shape (n,)
        Class labels in ``[0, C)``.
    weight_decay : float
        The L2 penalty :math:`\\lambda`, applied to ``weight`` only.
    label_smoothing : float
        In ``[0, 1]``, as in ``torch.nn.functional.cross_entropy``.

    Returns
    -------
    objective : array, 0-d
        Mean cross entropy plus :math:`\\frac{\\lambda}{2}\\lVert W\\rVert_F^2`.
    grad_weight : array, shape (d, C)
        :math:`x^\\top G + \\lambda W`, with :math:`G` from
        :func:`xsoftmax.cross_entropy_with_grad`.
    grad_bias : array, shape (C,)
        The sum of :math:`G` over the batch.
    """
    xp = array_api_compat.array_namespace(weight, bias, x, y)
    logits = x @ weight + bias
    loss, dlogits = xsoftmax.cross_entropy_with_grad(
        logits, y, reduction="mean", label_smoothing=label_smoothing
    )
    grad_weight = x.T @ dlogits
    grad_bias = xp.sum(dlogits, axis=0)
    if weight_decay:
        grad_weight = grad_weight + weight_decay * weight
        loss = loss + (0.5 * weight_decay) * xp.sum(weight * weight)
    return loss, grad_weight, grad_bias


def evaluate(weight: Any, bias: Any, x: Any, y: Any) -> tuple[Any, Any]:
    """Mean cross entropy and accuracy of the model on ``(x, y)``, as 0-d arrays."""
    xp = array_api_compat.array_namespace(weight, bias, x, y)
    logits = x @ weight + bias
    loss = xsoftmax.cross_entropy(logits, y)
    correct = xp.argmax(logits, axis=1) == y
    accuracy = xp.mean(xp.astype(correct, logits.dtype))
    return loss, accuracy


def train(
    data: Dataset,
    backend: ArrayBackend,
    config: TrainConfig,
    *,
    dtype: str = "float32",
    progress: ProgressFactory | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> TrainResult:
    """Train softmax regression on ``data`` with minibatch SGD on ``backend``.

    The data are cast to ``dtype`` and converted to the backend once. Each epoch
    visits every training sample once, in an order drawn in NumPy (the last batch
    may be smaller), then evaluates both splits. The only transfers back to NumPy
    are the four metrics (and, for a lazy backend, the parameters, which are
    computed together with the metrics: one ``compute`` per epoch, plus a
    ``persist`` of the parameters every :data:`LAZY_GRAPH_STEPS` steps in longer
    epochs).

    Parameters
    ----------
    data : Dataset
    backend : ArrayBackend
    config : TrainConfig
    dtype : {"float32", "float64"}
        Floating dtype of the data and the parameters.
    progress : callable, optional
        ``progress(total_steps, description)`` makes a bar for one epoch.
    on_epoch : callable, optional
        Called with each :class:`EpochResult` as soon as it is known.

    Returns
    -------
    TrainResult
    """
    np_dtype = np.dtype(dtype)
    rng = np.random.default_rng(config.seed)
    weight_np, bias_np = init_params(data.n_features, data.n_classes, rng, np_dtype)
    result = TrainResult(weight_np, bias_np)
    n = data.x_train.shape[0]
    steps = math.ceil(n / config.batch_size)

    def sgd_step(weight: Any, bias: Any, x: Any, y: Any, batch: Any) -> tuple[Any, Any]:
        xp = array_api_compat.array_namespace(weight, bias, x, y, batch)
        _, grad_weight, grad_bias = loss_and_grad(
            weight,
            bias,
            xp.take(x, batch, axis=0),
            xp.take(y, batch, axis=0),
            weight_decay=config.weight_decay,
            label_smoothing=config.label_smoothing,
        )
        return weight - config.lr * grad_weight, bias - config.lr * grad_bias

    def metrics(weight: Any, bias: Any, *splits: Any) -> tuple[Any, ...]:
        x_train, y_train, x_test, y_test = splits
        return (*evaluate(weight, bias, x_train, y_train), *evaluate(weight, bias, x_test, y_test))

    step_fn = backend.compile(sgd_step)
    metrics_fn = backend.compile(metrics)

    with backend.active():
        splits = (
            backend.asarray(data.x_train.astype(np_dtype)),
            backend.asarray(data.y_train),
            backend.asarray(data.x_test.astype(np_dtype)),
            backend.asarray(data.y_test),
        )
        weight, bias = backend.asarray(weight_np), backend.asarray(bias_np)

        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            order = backend.asarray(rng.permutation(n))
            bar = progress(steps, f"epoch {epoch}/{config.epochs}") if progress else None
            for step, first in enumerate(range(0, n, config.batch_size), start=1):
                batch = order[first : min(first + config.batch_size, n)]
                weight, bias = step_fn(weight, bias, splits[0], splits[1], batch)
                if backend.lazy and step % LAZY_GRAPH_STEPS == 0 and step < steps:
                    weight, bias = backend.persist(weight, bias)
                if bar is not None:
                    bar.update(1)
            values = metrics_fn(weight, bias, *splits)
            if backend.lazy:
                # one compute per epoch: the parameters and the metrics together,
                # then start the next epoch's graph from the computed parameters
                weight_np, bias_np, *numbers = backend.fetch(weight, bias, *values)
                weight, bias = backend.asarray(weight_np), backend.asarray(bias_np)
            else:
                numbers = list(backend.fetch(*values))
            if bar is not None:
                bar.close()
            seconds = time.perf_counter() - start
            train_loss, train_accuracy, test_loss, test_accuracy = (float(v) for v in numbers)
            record = EpochResult(
                epoch, train_loss, train_accuracy, test_loss, test_accuracy, seconds
            )
            result.history.append(record)
            if on_epoch is not None:
                on_epoch(record)

        if not backend.lazy:  # a lazy backend's were fetched with the last metrics
            weight_np, bias_np = backend.fetch(weight, bias)
    result.weight, result.bias = weight_np, bias_np
    return result
