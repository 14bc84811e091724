"""``xsoftmax.keras`` against ``keras.losses``: values, gradients, config and saved models.

Runs under one Keras backend per process (``KERAS_BACKEND``: ``jax``, ``torch`` or
``numpy``; ``nox -s dropin`` runs this file once per backend). The backend's array
library must be selected as an xsoftmax test backend (``XSOFTMAX_BACKENDS`` unset or
naming it). Unset, ``KERAS_BACKEND`` becomes the first of jax, torch, numpy that is
selected. Every loss is compared with its Keras namesake over a grid of its options;
the deliberate differences each have a test that says so; a model fit on the digits
gives the same loss curve with either loss (jax and torch backends: Keras's numpy
backend cannot train).
"""

from __future__ import annotations

import importlib
import itertools
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import get_backend

ARRAY_API_BACKENDS = ("jax", "torch", "numpy")

if "keras" not in sys.modules and not os.environ.get("KERAS_BACKEND"):
    for _name in ARRAY_API_BACKENDS:
        if get_backend(_name) is not None:
            os.environ["KERAS_BACKEND"] = _name
            break
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if BACKEND not in ARRAY_API_BACKENDS:
    pytest.skip(
        f"KERAS_BACKEND={BACKEND}: xsoftmax.keras runs on jax, torch and numpy only",
        allow_module_level=True,
    )
if get_backend(BACKEND) is None:
    pytest.skip(
        f"KERAS_BACKEND={BACKEND}, but the {BACKEND} test backend is not selected or not installed",
        allow_module_level=True,
    )
keras = pytest.importorskip(
    "keras", reason="keras is not installed (pip install 'xsoftmax[keras]')"
)
if keras.backend.backend() != BACKEND:
    pytest.skip(
        f"keras was imported with the {keras.backend.backend()} backend", allow_module_level=True
    )

xkeras = importlib.import_module("xsoftmax.keras")

pytestmark = [
    # Keras's own code: torch tensors and Keras variables to NumPy 2 (convert_to_numpy) ...
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras"
    ),
    # ... and, on its numpy backend, 0/0 in the ignored rows that it zeroes afterwards
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning:keras"),
]


def _value_and_grad(loss, y_true, y_pred, sample_weight):
    """The loss and d sum(loss) / d y_pred (None on numpy, which has no autograd)."""
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def total(p):
            value = loss(y_true, p, sample_weight=sample_weight)
            return jnp.sum(value), value

        (_, value), grad = jax.value_and_grad(total, has_aux=True)(jnp.asarray(y_pred))
        return np.asarray(value), np.asarray(grad)
    if BACKEND == "torch":
        import torch

        p = torch.tensor(y_pred, requires_grad=True)
        value = loss(y_true, p, sample_weight=sample_weight)
        value.sum().backward()
        return value.detach().numpy(), p.grad.numpy()
    return keras.ops.convert_to_numpy(loss(y_true, y_pred, sample_weight=sample_weight)), None


def _compare(ours, theirs, y_true, y_pred, sample_weight=None, rtol=2e-5):
    v1, g1 = _value_and_grad(ours, y_true, y_pred, sample_weight)
    v2, g2 = _value_and_grad(theirs, y_true, y_pred, sample_weight)
    assert v1.shape == v2.shape
    np.testing.assert_allclose(v1, v2, rtol=rtol, atol=rtol * 1e-2)
    if g1 is not None:
        np.testing.assert_allclose(g1, g2, rtol=rtol * 5, atol=rtol * 1e-1)


def _inputs(shape, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype("float32")


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype("float32")


def _sample_weight(kind, shape, axis):
    """None, or a weight per loss element (the shape without ``axis``)."""
    if kind is None:
        return None
    loss_shape = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
    return np.linspace(0.2, 2.0, int(np.prod(loss_shape))).reshape(loss_shape).astype("float32")


# each reduction once with and once without sample weights would be 16 cases per shape;
# these 5 cover every reduction and both weightings
WEIGHTED = [
    ("sum_over_batch_size", None),
    ("sum_over_batch_size", "per_sample"),
    ("sum", "per_sample"),
    ("mean_with_sample_weight", "per_sample"),
    ("none", None),
]
CASES = [(logits, *case) for logits, case in itertools.product([True, False], WEIGHTED)]
# Keras's jax and numpy backends take sparse labels with the classes last only
SPARSE_SHAPES = [((6, 5), -1), ((3, 4, 5), -1)] + ([((3, 5, 4), 1)] if BACKEND == "torch" else [])
SHAPES = [((6, 5), -1), ((3, 4, 5), -1), ((3, 5, 4), 1)]


@pytest.mark.parametrize(("from_logits", "reduction", "weights"), CASES)
@pytest.mark.parametrize(("shape", "axis"), SPARSE_SHAPES)
@pytest.mark.parametrize("ignore_class", [None, -1, 2])
def test_sparse_categorical_matches_keras(
    shape, axis, ignore_class, from_logits, reduction, weights
):
    logits = _inputs(shape)
    y_pred = logits if from_logits else _softmax(logits, axis)
    batch = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
    y_true = np.random.default_rng(1).integers(0, shape[axis], batch)
    if ignore_class is not None:
        y_true.flat[::3] = ignore_class
    kwargs = {"from_logits": from_logits, "ignore_class": ignore_class, "reduction": reduction}
    if axis != -1:
        kwargs["axis"] = axis
    _compare(
        xkeras.SparseCategoricalCrossentropy(**kwargs),
        keras.losses.SparseCategoricalCrossentropy(**kwargs),
        y_true,
        y_pred,
        _sample_weight(weights, shape, axis),
    )


@pytest.mark.parametrize(("from_logits", "reduction", "weights"), CASES)
@pytest.mark.parametrize(
    ("shape", "axis", "label_smoothing"),
    # with axis != -1 Keras smooths by the size of the last axis: see test_smoothing_class_count
    [
        (*shape, smoothing)
        for shape in SHAPES
        for smoothing in (0.0, 0.2)
        if shape[1] == -1 or not smoothing
    ],
)
def test_categorical_matches_keras(shape, axis, label_smoothing, from_logits, reduction, weights):
    logits = _inputs(shape)
    y_pred = logits if from_logits else _softmax(logits, axis)
    y_true = _softmax(_inputs(shape, seed=1), axis)
    kwargs = {
        "from_logits": from_logits,
        "label_smoothing": label_smoothing,
        "axis": axis,
        "reduction": reduction,
    }
    _compare(
        xkeras.CategoricalCrossentropy(**kwargs),
        keras.losses.CategoricalCrossentropy(**kwargs),
        y_true,
        y_pred,
        _sample_weight(weights, shape, axis),
    )


@pytest.mark.parametrize(("from_logits", "reduction", "weights"), CASES)
@pytest.mark.parametrize(("shape", "axis"), [((6, 1), -1), ((6, 5), -1), ((3, 4, 5), 1)])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_binary_matches_keras(shape, axis, label_smoothing, from_logits, reduction, weights):
    if from_logits and BACKEND == "numpy":
        logits = _inputs(shape, scale=2.0)  # Keras's numpy backend clips at |logit| ~ 16
    else:
        logits = _inputs(shape, scale=6.0)
    y_pred = logits if from_logits else (1.0 / (1.0 + np.exp(-logits))).astype("float32")
    y_true = np.random.default_rng(1).integers(0, 2, shape).astype("float32")
    kwargs = {
        "from_logits": from_logits,
        "label_smoothing": label_smoothing,
        "axis": axis,
        "reduction": reduction,
    }
    _compare(
        xkeras.BinaryCrossentropy(**kwargs),
        keras.losses.BinaryCrossentropy(**kwargs),
        y_true,
        y_pred,
        _sample_weight(weights, shape, axis),
    )


def test_rank_alignment_like_keras():
    """``y_true`` of shape ``(N,)`` against ``y_pred`` ``(N, 1)``, and ``(N, 1)`` labels."""
    y_pred = _inputs((6, 1))
    y_true = np.random.default_rng(1).integers(0, 2, 6).astype("float32")
    _compare(
        xkeras.BinaryCrossentropy(from_logits=True),
        keras.losses.BinaryCrossentropy(from_logits=True),
        y_true,
        y_pred,
    )
    logits = _inputs((6, 5))
    labels = np.random.default_rng(2).integers(0, 5, (6, 1))
    _compare(
        xkeras.SparseCategoricalCrossentropy(from_logits=True),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        labels,
        logits,
    )


# ----------------------------------------------------------------------- config, saving

CONFIGS = [
    (
        "SparseCategoricalCrossentropy",
        {"from_logits": True, "ignore_class": 0, "reduction": "sum"},
    ),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1, "axis": 1}),
    ("BinaryCrossentropy", {"label_smoothing": 0.2, "reduction": "none", "name": "bce"}),
]


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS)
def test_config_like_keras_and_round_trips(name, kwargs):
    ours, theirs = getattr(xkeras, name)(**kwargs), getattr(keras.losses, name)(**kwargs)
    config = ours.get_config()
    extras = {"axis": -1, "label_smoothing": 0.0} if name.startswith("Sparse") else {}
    assert config == {**theirs.get_config(), **extras}
    again = type(ours).from_config(config)
    assert again.get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(ours))
    assert type(restored) is type(ours)
    assert restored.get_config() == config


def _model(loss, activation=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="tanh"),
            keras.layers.Dense(10, activation=activation),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.2), loss=loss)
    return model


def test_saved_model_reloads_with_the_loss(tmp_path):
    model = _model(xkeras.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1))
    path = tmp_path / "model.keras"
    model.save(path)
    # registered: no custom_objects needed once xsoftmax.keras is imported ...
    loaded = keras.models.load_model(path)
    assert type(loaded.loss) is xkeras.SparseCategoricalCrossentropy
    assert loaded.loss.get_config() == model.loss.get_config()
    x = _inputs((4, 64))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), rtol=1e-6
    )
    # ... and by custom_objects too
    loaded = keras.models.load_model(
        path,
        custom_objects={"SparseCategoricalCrossentropy": xkeras.SparseCategoricalCrossentropy},
    )
    assert type(loaded.loss) is xkeras.SparseCategoricalCrossentropy


def test_tensorflow_backend_is_refused(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    with pytest.raises(ValueError, match=r"KERAS_BACKEND.*tensorflow"):
        xkeras.SparseCategoricalCrossentropy(from_logits=True)


# ------------------------------------------------------------- deliberate differences


def test_exact_where_keras_rounds_to_zero():
    """Deliberate: the top class of ``[0, -40]`` has loss 4.25e-18 (float32); Keras gives 0."""
    logits = np.array([[0.0, -40.0]], dtype="float32")
    labels = np.array([0])
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    ours = xkeras.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(keras.ops.convert_to_numpy(theirs)) == 0.0
    assert float(keras.ops.convert_to_numpy(ours)) == pytest.approx(4.248354e-18, rel=1e-6)


def test_out_of_range_class_raises_value_error():
    """Deliberate: Keras gives 0 (jax, numpy: an all-zero one-hot) or raises in torch."""
    logits, labels = _inputs((3, 4)), np.array([0, 4, 1])
    with pytest.raises(ValueError, match="target"):
        xkeras.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)


def test_label_smoothing_is_validated():
    """Deliberate: Keras accepts any ``label_smoothing``; xsoftmax wants [0, 1]."""
    keras.losses.CategoricalCrossentropy(label_smoothing=-0.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        xkeras.CategoricalCrossentropy(label_smoothing=-0.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        xkeras.BinaryCrossentropy(label_smoothing=1.5)


@pytest.mark.parametrize("from_logits", [True, False])
def test_smoothing_class_count(from_logits):
    """Deliberate: with ``axis != -1``, smoothing spreads over the classes on ``axis``.

    Keras divides ``label_smoothing`` by the size of the last axis whatever ``axis`` is.
    """
    logits = _inputs((3, 5, 4))
    y_pred = logits if from_logits else _softmax(logits, 1)
    y_true = _softmax(_inputs((3, 5, 4), seed=1), 1)
    kwargs = {"from_logits": from_logits, "axis": 1, "reduction": "none"}
    ours = xkeras.CategoricalCrossentropy(label_smoothing=0.2, **kwargs)(y_true, y_pred)
    smoothed = y_true * 0.8 + 0.2 / 5  # 5 classes on axis 1
    theirs = keras.losses.CategoricalCrossentropy(**kwargs)(smoothed, y_pred)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs), rtol=2e-5
    )


def test_sparse_label_smoothing_extra():
    """An xsoftmax extra: sparse labels with smoothing equal the one-hot loss with it."""
    logits = _inputs((6, 5))
    labels = np.random.default_rng(1).integers(0, 5, 6)
    onehot = np.eye(5, dtype="float32")[labels]
    sparse = xkeras.SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    dense = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(sparse(labels, logits)),
        keras.ops.convert_to_numpy(dense(onehot, logits)),
        rtol=2e-6,
    )


@pytest.mark.skipif(BACKEND != "numpy", reason="Keras's numpy backend only")
def test_binary_from_logits_not_clipped():
    """Deliberate: Keras's numpy backend clips sigmoid(logit) to [1e-7, 1 - 1e-7]."""
    y_pred, y_true = np.array([[-40.0]], dtype="float32"), np.array([[1.0]], dtype="float32")
    theirs = keras.losses.BinaryCrossentropy(from_logits=True)(y_true, y_pred)
    ours = xkeras.BinaryCrossentropy(from_logits=True)(y_true, y_pred)
    assert float(theirs) == pytest.approx(16.118, rel=1e-3)
    assert float(ours) == pytest.approx(40.0, rel=1e-6)


# -------------------------------------------------------------------- training curves


@pytest.mark.skipif(BACKEND == "numpy", reason="Keras's numpy backend cannot train")
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SparseCategoricalCrossentropy", {"from_logits": True}),
        ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}),
    ],
)
def test_fit_on_digits_gives_the_same_curve(name, kwargs):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    data = sklearn_datasets.load_digits()
    x = (data.data[:400] / 16.0).astype("float32")
    y = data.target[:400]
    if name.startswith("Categorical"):
        y = np.eye(10, dtype="float32")[y]
    curves = []
    for module in (xkeras, keras.losses):
        model = _model(getattr(module, name)(**kwargs))
        history = model.fit(x, y, batch_size=50, epochs=3, shuffle=False, verbose=0)
        curves.append(history.history["loss"])
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-4)
    assert curves[0][-1] < curves[0][0]


def _page_blocks(page: str) -> list[str]:
    """The ``python`` blocks of ``docs/dropin/<page>.md`` (scripts, no ``>>>``)."""
    text = (Path(__file__).parent.parent / "docs" / "dropin" / f"{page}.md").read_text("utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.skipif(BACKEND == "numpy", reason="Keras's numpy backend cannot train")
def test_docs_page_code_runs():
    """The page's import swap and example program run as printed."""
    blocks = _page_blocks("keras")
    assert len(blocks) >= 2
    namespace: dict[str, object] = {"__name__": f"dropin_{'keras'}"}
    for number, block in enumerate(blocks):
        exec(compile(block, f"docs/dropin/{'keras'}.md[{number}]", "exec"), namespace)
