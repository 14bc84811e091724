"""``xsoftmax.optax`` against optax: same per-example values, gradients and error types.

Each function is compared with its optax namesake on the same inputs over a grid of
``axis``, ``where``, shapes and dtypes, eagerly and under ``jax.jit``. The deliberate
differences (exact values where optax cancels, errors or NaN instead of wrapped labels,
the masked labelled class) each have a test that says so. A small JAX classifier
trains to the same curve with either import.

Runs where the jax backend is selected (``XSOFTMAX_BACKENDS`` unset, ``all`` or naming
``jax``; ``nox -s dropin``) and optax is installed.
"""

from __future__ import annotations

import importlib
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import get_backend

if get_backend("jax") is None:
    pytest.skip("the jax backend is not selected or not installed", allow_module_level=True)
optax = pytest.importorskip("optax", reason="optax is not installed (pip install 'xsoftmax[jax]')")

jax = importlib.import_module("jax")
jnp = importlib.import_module("jax.numpy")
xoptax = importlib.import_module("xsoftmax.optax")

RTOL = {"float32": 2e-6, "float64": 1e-13}


def _close(ours, theirs, dtype: str, scale: float = 1.0) -> None:
    """Equal to rounding; ``scale`` widens the tolerance (gradients: optax's own rounding)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype
    tol = RTOL[dtype] * scale
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * np.abs(theirs).max(initial=1))


def _logits(shape, dtype, seed=0, scale=3.0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype=dtype)


def _value_and_grad(fn, logits, *args, **kwargs):
    """The per-example losses and the gradient of their weighted sum, in one jitted call."""

    def weighted(x):
        value = fn(x, *args, **kwargs)
        return jnp.sum(value * jnp.arange(1, value.size + 1).reshape(value.shape)), value

    (_, value), grad = jax.jit(jax.value_and_grad(weighted, has_aux=True))(logits)
    return value, grad


def _compare(name, logits, *args, dtype, **kwargs):
    ours = _value_and_grad(getattr(xoptax, name), logits, *args, **kwargs)
    theirs = _value_and_grad(getattr(optax, name), logits, *args, **kwargs)
    _close(ours[0], theirs[0], dtype)
    _close(ours[1], theirs[1], dtype, scale=10.0)


def _where(kind, logits_shape, axes, seed=7):
    """None, a batch-shaped mask, or an element mask that keeps the first class."""
    if kind is None:
        return None
    rng = np.random.default_rng(seed)
    if kind == "batch":
        batch = tuple(n for i, n in enumerate(logits_shape) if i not in axes)
        mask = rng.random(batch) > 0.3
        mask.flat[0] = False  # one example dropped entirely
        return jnp.asarray(mask)
    mask = rng.random(logits_shape) > 0.3
    first = tuple(slice(0, 1) if i in axes else slice(None) for i in range(len(logits_shape)))
    mask[first] = True  # every example keeps a class
    return jnp.asarray(mask)


AXES = [((4, 5), -1), ((4, 5), 0), ((2, 3, 5), 1), ((2, 3, 5), (1, 2)), ((2, 3, 5), None)]


WHERE = [None, "batch", "element"]
# every axis and mask in float32; float64 on the last axis
GRID = [(*case, "float32") for case in itertools.product(AXES, WHERE)] + [
    (AXES[0], where, "float64") for where in WHERE
]


@pytest.mark.parametrize(
    ("shape_axis", "where", "dtype"),
    [case for case in GRID if not (case[0][1] is None and case[1] == "batch")],  # no batch axis
)
def test_softmax_cross_entropy_matches_optax(shape_axis, where, dtype):
    shape, axis = shape_axis
    axes = tuple(range(len(shape))) if axis is None else np.atleast_1d(axis) % len(shape)
    logits = _logits(shape, dtype)
    labels = jax.nn.softmax(_logits(shape, dtype, seed=1), axis=axis)
    mask = _where(where, shape, tuple(axes))
    _compare("softmax_cross_entropy", logits, labels, dtype=dtype, axis=axis, where=mask)


def test_softmax_cross_entropy_broadcast_labels():
    logits = _logits((4, 5), "float64")
    labels = jnp.asarray([0.1, 0.2, 0.3, 0.4, 0.0])
    _compare("softmax_cross_entropy", logits, labels, dtype="float64")
    _compare("safe_softmax_cross_entropy", logits, labels, dtype="float64")


@pytest.mark.parametrize(
    ("shape_axis", "where", "dtype"), [case for case in GRID if case[0][1] is not None]
)
def test_integer_labels_match_optax(shape_axis, where, dtype):
    shape, axis = shape_axis
    axes = tuple(int(a) for a in np.atleast_1d(axis) % len(shape))
    logits = _logits(shape, dtype)
    batch = tuple(n for i, n in enumerate(shape) if i not in axes)
    n_classes = int(np.prod([shape[a] for a in axes]))
    labels = np.random.default_rng(2).integers(0, n_classes, batch)
    if where == "element":
        labels[...] = 0  # the element mask keeps the first class: the labelled one
    labels = jnp.asarray(labels, dtype=jnp.int32)
    mask = _where(where, shape, axes)
    _compare(
        "softmax_cross_entropy_with_integer_labels",
        logits,
        labels,
        dtype=dtype,
        axis=axis,
        where=mask,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_safe_softmax_cross_entropy_matches_optax(dtype):
    logits = _logits((4, 5), dtype)
    logits = logits.at[:, 1].set(-jnp.inf)  # -inf logits where the label is 0
    labels = jax.nn.softmax(_logits((4, 5), dtype, seed=1)).at[:, 1].set(0.0)
    _compare("safe_softmax_cross_entropy", logits, labels, dtype=dtype)
    value, grad = _value_and_grad(xoptax.safe_softmax_cross_entropy, logits, labels)
    assert bool(jnp.all(jnp.isfinite(value)))
    assert bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize(
    ("logits_shape", "labels_shape", "dtype"),
    [((4, 3), (4, 3), "float64"), ((4, 3), (3,), "float32"), ((4, 1), (4, 3), "float32")],
)
def test_sigmoid_binary_cross_entropy_matches_optax(logits_shape, labels_shape, dtype):
    logits = _logits(logits_shape, dtype, scale=10.0)
    labels = jnp.asarray(np.random.default_rng(3).random(labels_shape), dtype=dtype)
    _compare("sigmoid_binary_cross_entropy", logits, labels, dtype=dtype)
    integer = jnp.asarray(np.random.default_rng(4).integers(0, 2, labels_shape))
    _compare("sigmoid_binary_cross_entropy", logits, integer, dtype=dtype)


def test_eager_calls_match_optax():
    """The grid runs jitted; eager calls (where the label range is checked) agree too."""
    logits = _logits((6, 5), "float64")
    labels = jnp.asarray([0, 4, 2, 1, 3, 0], dtype=jnp.int64)
    soft = jax.nn.softmax(logits[::-1])
    mask = jnp.asarray([True, True, False, True, True, True])
    for name, target, kwargs in [
        ("softmax_cross_entropy_with_integer_labels", labels, {}),
        ("softmax_cross_entropy_with_integer_labels", labels, {"where": mask}),
        ("softmax_cross_entropy", soft, {"where": mask}),
        ("safe_softmax_cross_entropy", soft, {}),
        ("sigmoid_binary_cross_entropy", soft, {}),
    ]:
        ours = getattr(xoptax, name)(logits, target, **kwargs)
        _close(ours, getattr(optax, name)(logits, target, **kwargs), "float64")


def test_any_integer_label_dtype():
    """uint8 and int16 labels work too (optax takes any integer dtype as well)."""
    logits = _logits((6, 5), "float32")
    labels = jnp.asarray([0, 4, 2, 1, 3, 0])
    reference = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    for dtype in (jnp.uint8, jnp.int16, jnp.int64):
        ours = xoptax.softmax_cross_entropy_with_integer_labels(logits, labels.astype(dtype))
        _close(ours, reference, "float32")


def test_under_jit_and_vmap():
    logits = _logits((6, 5), "float32")
    labels = jnp.asarray([0, 4, 2, 1, 3, 0])
    for name in ("softmax_cross_entropy_with_integer_labels",):
        ours = jax.jit(getattr(xoptax, name))(logits, labels)
        _close(ours, getattr(optax, name)(logits, labels), "float32")
        ours = jax.vmap(getattr(xoptax, name))(logits, labels)
        _close(ours, getattr(optax, name)(logits, labels), "float32")
    soft = jax.nn.softmax(logits[::-1])
    _close(
        jax.jit(xoptax.softmax_cross_entropy)(logits, soft),
        optax.softmax_cross_entropy(logits, soft),
        "float32",
    )
    _close(
        jax.jit(xoptax.sigmoid_binary_cross_entropy)(logits, soft),
        optax.sigmoid_binary_cross_entropy(logits, soft),
        "float32",
    )


# ---------------------------------------------------------------------- error types

LOGITS = jnp.zeros((4, 3))
ERRORS = [
    # (function, labels, kwargs, optax's error type)
    ("softmax_cross_entropy", jnp.zeros((4, 2)), {}, TypeError),
    ("softmax_cross_entropy", jnp.zeros((5, 3)), {}, TypeError),
    ("safe_softmax_cross_entropy", jnp.zeros((4, 2)), {}, TypeError),
    ("sigmoid_binary_cross_entropy", jnp.zeros((4, 2)), {}, TypeError),
    ("softmax_cross_entropy_with_integer_labels", jnp.zeros((5,), int), {}, ValueError),
    ("softmax_cross_entropy_with_integer_labels", jnp.zeros((4, 1), int), {}, ValueError),
    ("softmax_cross_entropy_with_integer_labels", jnp.zeros((4, 3), int), {}, ValueError),
    ("softmax_cross_entropy_with_integer_labels", jnp.zeros((4,)), {}, TypeError),
    ("softmax_cross_entropy_with_integer_labels", jnp.zeros((4,), int), {"axis": 2}, ValueError),
    ("softmax_cross_entropy_with_integer_labels", jnp.zeros((4,), int), {"axis": 1.0}, ValueError),
]


@pytest.mark.parametrize(("name", "labels", "kwargs", "error"), ERRORS)
def test_bad_labels_raise_optax_error_types(name, labels, kwargs, error):
    with pytest.raises(error):
        getattr(optax, name)(LOGITS, labels, **kwargs)
    with pytest.raises(error, match=r"labels|axis"):
        getattr(xoptax, name)(LOGITS, labels, **kwargs)


@pytest.mark.parametrize(
    "name", ["softmax_cross_entropy", "safe_softmax_cross_entropy", "sigmoid_binary_cross_entropy"]
)
def test_integer_logits_raise_type_error(name):
    with pytest.raises(TypeError):
        getattr(optax, name)(jnp.zeros((4, 3), int), jnp.zeros((4, 3)))
    with pytest.raises(TypeError, match="logits"):
        getattr(xoptax, name)(jnp.zeros((4, 3), int), jnp.zeros((4, 3)))


# ------------------------------------------------------------- deliberate differences


def test_exact_where_optax_cancels():
    """Deliberate: float32 ``[[1e8, 1e8]]`` with label 0 is log 2; optax gives 0."""
    logits = jnp.asarray([[1e8, 1e8]], dtype=jnp.float32)
    labels = jnp.asarray([0])
    assert float(optax.softmax_cross_entropy_with_integer_labels(logits, labels)[0]) == 0.0
    ours = xoptax.softmax_cross_entropy_with_integer_labels(logits, labels)
    assert float(ours[0]) == pytest.approx(np.log(2.0), rel=1e-7)


def test_out_of_range_labels_raise_eagerly_and_are_nan_under_jit():
    """Deliberate: optax wraps -1 to the last class and gives NaN for C; we never wrap."""
    logits = _logits((4, 3), "float32")
    labels = jnp.asarray([0, 1, 3, -1])
    theirs = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    assert np.isfinite(float(theirs[3]))  # -1 silently read as class 2
    with pytest.raises(ValueError, match="labels"):
        xoptax.softmax_cross_entropy_with_integer_labels(logits, labels)
    jitted = jax.jit(xoptax.softmax_cross_entropy_with_integer_labels)(logits, labels)
    assert np.isnan(np.asarray(jitted)[2:]).all()
    _close(jitted[:2], theirs[:2], "float32")


def test_sigmoid_limits_at_infinite_logits():
    """Deliberate: ``±inf`` logits give the limits; optax gives NaN."""
    logits = jnp.asarray([jnp.inf, -jnp.inf, jnp.inf])
    labels = jnp.asarray([1.0, 0.0, 0.0])
    assert np.isnan(np.asarray(optax.sigmoid_binary_cross_entropy(logits, labels))).any()
    assert np.asarray(xoptax.sigmoid_binary_cross_entropy(logits, labels)).tolist() == [
        0.0,
        0.0,
        np.inf,
    ]


def test_masked_out_labelled_class_is_infinite():
    """Deliberate: a labelled class masked out by ``where`` has probability 0: loss inf."""
    logits = _logits((2, 3), "float64")
    labels = jnp.asarray([1, 0])
    mask = jnp.asarray([[True, False, True], [True, True, True]])
    ours = xoptax.softmax_cross_entropy_with_integer_labels(logits, labels, where=mask)
    theirs = optax.softmax_cross_entropy_with_integer_labels(logits, labels, where=mask)
    assert np.isinf(float(ours[0]))
    assert np.isfinite(float(theirs[0]))
    _close(ours[1], theirs[1], "float64")


def test_fully_masked_example_has_zero_gradient():
    logits = _logits((2, 3), "float64")
    mask = jnp.asarray([False, True])
    for name, labels in [
        ("softmax_cross_entropy_with_integer_labels", jnp.asarray([1, 0])),
        ("softmax_cross_entropy", jax.nn.softmax(logits)),
    ]:
        fn = getattr(xoptax, name)
        grad = jax.grad(lambda x, fn=fn, labels=labels: jnp.sum(fn(x, labels, where=mask)))(logits)
        assert np.asarray(grad)[0].tolist() == [0.0, 0.0, 0.0]
        assert np.isfinite(np.asarray(grad)).all()


# ------------------------------------------------------------------- training curve


def _train(loss_fn, steps: int = 20) -> list[float]:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    data = sklearn_datasets.load_digits()
    x = jnp.asarray(data.data[:500] / 16.0, dtype=jnp.float32)
    y = jnp.asarray(data.target[:500], dtype=jnp.int32)
    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    params = {
        "w1": jax.random.normal(key1, (64, 32), jnp.float32) * 0.1,
        "w2": jax.random.normal(key2, (32, 10), jnp.float32) * 0.1,
    }
    opt = optax.adam(1e-2)
    state = opt.init(params)

    def loss_of(p, xb, yb):
        return jnp.mean(loss_fn(jnp.tanh(xb @ p["w1"]) @ p["w2"], yb))

    @jax.jit
    def step(p, s, xb, yb):
        loss, grads = jax.value_and_grad(loss_of)(p, xb, yb)
        updates, s = opt.update(grads, s)
        return optax.apply_updates(p, updates), s, loss

    curve = []
    for i in itertools.islice(itertools.cycle(range(5)), steps):
        params, state, loss = step(
            params, state, x[i * 100 : (i + 1) * 100], y[i * 100 : (i + 1) * 100]
        )
        curve.append(float(loss))
    return curve


def test_classifier_trains_to_the_same_curve():
    ours = _train(xoptax.softmax_cross_entropy_with_integer_labels)
    theirs = _train(optax.softmax_cross_entropy_with_integer_labels)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert ours[-1] < 0.5 * ours[0]


def _page_blocks(page: str) -> list[str]:
    """The ``python`` blocks of ``docs/dropin/<page>.md`` (scripts, no ``>>>``)."""
    text = (Path(__file__).parent.parent / "docs" / "dropin" / f"{page}.md").read_text("utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_docs_page_code_runs():
    """The page's import swap and example program run as printed."""
    blocks = _page_blocks("jax")
    assert len(blocks) >= 2
    namespace: dict[str, object] = {"__name__": f"dropin_{'jax'}"}
    for number, block in enumerate(blocks):
        exec(compile(block, f"docs/dropin/{'jax'}.md[{number}]", "exec"), namespace)
