"""Hypothesis strategies for the property suite.

Everything is drawn in NumPy (float64 values that are exactly representable in the
target dtype, or rounded to it by the backend) and converted with
``Backend.asarray``. References are always computed from ``Backend.to_numpy`` of
the converted input, so the rounding of a draw to float16/bfloat16 never matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# The backend fixture is function scoped (parametrized, immutable), which is fine for @given.
PROPERTY_SETTINGS = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


@dataclass(frozen=True)
class FloatInfo:
    """The facts of a floating dtype that the strategies and tolerances need."""

    max: float
    eps: float
    smallest_normal: float


def _finfo(dt: Any) -> FloatInfo:
    fi = np.finfo(dt)
    return FloatInfo(float(fi.max), float(fi.eps), float(fi.smallest_normal))


FLOAT_INFO: dict[str, FloatInfo] = {
    "float16": _finfo(np.float16),
    "float32": _finfo(np.float32),
    "float64": _finfo(np.float64),
    # bfloat16: 8 significand bits and float32's exponent range (no ml_dtypes needed):
    # max = (2 - 2**-7) * 2**127, eps = 2**-7, smallest normal = 2**-126
    "bfloat16": FloatInfo((2.0 - 2.0**-7) * 2.0**127, 2.0**-7, 2.0**-126),
}

#: The dtype in which xsoftmax computes for each input dtype (half precision in float32).
COMPUTE_DTYPE = {"float16": "float32", "bfloat16": "float32", "float32": "float32"}
COMPUTE_DTYPE["float64"] = "float64"

INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8")


def float_dtypes(backend: Any, *, half: bool = True) -> st.SearchStrategy[str]:
    """A floating dtype name that ``backend`` supports."""
    names = backend.float_dtypes() if half else ("float32", "float64")
    return st.sampled_from(names)


# --------------------------------------------------------------------------- shapes and axes


#: The shapes drawn for backends that compile per shape (see :func:`few_shapes`).
SHAPE_PALETTE = ((1,), (4,), (1, 3), (3, 4), (4, 1), (2, 3, 4), (1, 4, 2))


def few_shapes(backend: Any) -> bool:
    """Whether to draw shapes from :data:`SHAPE_PALETTE` for ``backend``.

    Eager JAX compiles every primitive for every new shape and dtype (about 20 ms
    each, some 25 per public function), so unrestricted shapes would spend the CI
    budget compiling; a fixed palette lets the compilation cache do its work while
    the values, dtypes, axes and options stay as random as on every other backend.
    """
    return getattr(backend, "name", None) == "jax"


@st.composite
def shape_and_axis(
    draw: st.DrawFn,
    *,
    min_dims: int = 1,
    max_dims: int = 3,
    min_side: int = 1,
    max_side: int = 5,
    tuple_axis: bool = False,
    palette: bool = False,
) -> tuple[tuple[int, ...], int | tuple[int, ...]]:
    """A shape and a valid ``axis`` for it: an int (maybe negative) or a tuple of distinct ints.

    With ``palette`` the shape is one of :data:`SHAPE_PALETTE` that fits the bounds.
    """
    if palette:
        fits = [
            s
            for s in SHAPE_PALETTE
            if min_dims <= len(s) <= max_dims and min_side <= min(s) and max(s) <= max_side
        ]
        shape = draw(st.sampled_from(fits))
    else:
        shape = draw(
            hnp.array_shapes(
                min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
            )
        )
    ndim = len(shape)
    if tuple_axis and draw(st.booleans()):
        axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        return shape, tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    return shape, draw(st.integers(-ndim, ndim - 1))


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative ints (None: every axis)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % ndim for a in axes))


# --------------------------------------------------------------------------- logits


def logit_elements(dtype: str, *, extreme: bool = True) -> st.SearchStrategy[float]:
    """Finite logits: moderate values, and (``extreme``) anything up to +-finfo(dtype).max."""
    fmax = FLOAT_INFO[dtype].max
    moderate = st.floats(-30.0, 30.0, allow_nan=False, allow_infinity=False)
    if not extreme:
        return moderate
    return st.one_of(
        moderate,
        st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
        st.floats(-fmax, fmax, allow_nan=False, allow_infinity=False),
        st.sampled_from([fmax, -fmax, fmax / 2, -fmax / 2, 0.0, 1.0, -1.0]),
    )


def logits(
    shape: tuple[int, ...], dtype: str, *, extreme: bool = True
) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays of finite logits for ``dtype`` (values within its range)."""
    return hnp.arrays(np.float64, shape, elements=logit_elements(dtype, extreme=extreme))


def dyadic_logits(shape: tuple[int, ...], *, bits: int = 6) -> st.SearchStrategy[np.ndarray]:
    """Multiples of 1/16 below 2**(bits-4) in magnitude: exact in every float dtype."""
    k = 2**bits
    return hnp.arrays(np.float64, shape, elements=st.integers(-k, k).map(lambda i: i / 16.0))


def first_along(shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Boolean array that is True at index 0 of every axis in ``axes`` (one entry per row)."""
    idx = tuple(slice(0, 1) if a in axes else slice(None) for a in range(len(shape)))
    out = np.zeros(shape, dtype=bool)
    out[idx] = True
    return out


@st.composite
def sprinkle_mask(
    draw: st.DrawFn, shape: tuple[int, ...], axes: tuple[int, ...], *, keep_one: bool = True
) -> np.ndarray:
    """A boolean mask of entries to knock out; with ``keep_one`` every row keeps an entry."""
    mask = draw(hnp.arrays(np.bool_, shape, elements=st.booleans()))
    if keep_one and mask.size:
        full = np.all(mask, axis=axes, keepdims=True)
        mask = mask & ~(full & first_along(shape, axes))
    return mask


# --------------------------------------------------------------------------- targets, weights


@st.composite
def class_targets(
    draw: st.DrawFn, batch_shape: tuple[int, ...], n_classes: int, ignore_index: int
) -> tuple[np.ndarray, str]:
    """Integer class targets in ``[0, C)``, some equal to ``ignore_index`` when representable.

    Returns the int64 values and the integer dtype name to send them in.
    """
    # uint8 included: it simply cannot hold a negative ignore_index
    fits = [name for name in INT_DTYPES if np.iinfo(name).max >= n_classes - 1]
    dtype = draw(st.sampled_from(fits))
    info = np.iinfo(dtype)
    values = st.integers(0, n_classes - 1)
    if info.min <= ignore_index <= info.max:
        values = st.one_of(values, st.just(ignore_index))
    t = draw(hnp.arrays(np.int64, batch_shape, elements=values))
    return t, dtype


@st.composite
def probability_targets(draw: st.DrawFn, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Non-negative targets with the logits' shape; rows sum to one, or (sometimes) do not."""
    t = draw(
        hnp.arrays(
            np.float64,
            shape,
            elements=st.one_of(st.just(0.0), st.floats(0.0, 1.0, allow_subnormal=False)),
        )
    )
    if draw(st.booleans()):
        s = np.sum(t, axis=axis, keepdims=True)
        t = np.where(s > 0, t / np.where(s > 0, s, 1.0), t)
    return t


def class_weights(n_classes: int) -> st.SearchStrategy[np.ndarray]:
    """Class weights ``(C,)`` in [0, 4], zeros included."""
    return hnp.arrays(
        np.float64,
        (n_classes,),
        elements=st.one_of(st.just(0.0), st.floats(0.0, 4.0, allow_subnormal=False)),
    )


def ignore_indices(n_classes: int) -> st.SearchStrategy[int]:
    """``ignore_index`` values: the default -100, one past the classes, or a real class."""
    return st.sampled_from([-100, n_classes, max(0, n_classes - 1), -1])


def label_smoothings() -> st.SearchStrategy[float]:
    """``label_smoothing`` in [0, 1], often exactly 0."""
    return st.one_of(st.just(0.0), st.floats(0.0, 1.0), st.just(1.0))


REDUCTIONS = ("mean", "sum", "none")
