"""Every row E1-E26 of docs/contract/errors.md, the "Not errors (MUST work)" list, and inputs that
are never mutated; on every loaded backend where the row applies.

For an error row the test checks the exception type (the recommended column of
docs/contract/errors.md; E12, E23 and E25 allow the alternatives the table gives) and that the
message names the argument as a whole word and contains the listed content.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import get_backend
from oracles import (
    assert_close,
    mentions_shape,
    names_argument,
    ref_bce_with_logits,
    ref_cross_entropy,
    ref_log_softmax,
    ref_logsumexp,
    ref_nll,
    ref_softmax,
    to_backend,
    tolerance,
)

import xsoftmax

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Dask: see softmax tests

N, C = 4, 3
LOSSES = ("cross_entropy", "nll_loss", "cross_entropy_with_grad")
LOGITS_NAME = {
    "cross_entropy": "logits",
    "cross_entropy_with_grad": "logits",
    "nll_loss": "log_probs",
    "binary_cross_entropy_with_logits": "logits",
    "softmax": "x",
    "log_softmax": "x",
    "logsumexp": "x",
}
ALL_FUNCS = tuple(LOGITS_NAME)
LINEAR_FUNCS = ("linear_cross_entropy", "linear_cross_entropy_with_grad")


def expect_error(
    exc: type[Exception] | tuple[type[Exception], ...],
    fn: Callable[..., Any],
    *args: Any,
    names: tuple[str, ...] = (),
    contains: tuple[str, ...] = (),
    shapes: tuple[tuple[int, ...], ...] = (),
    **kw: Any,
) -> str:
    """Call ``fn``; it must raise ``exc`` whose message names every argument in ``names``
    (whole word), contains every string in ``contains`` (case-insensitive) and shows every
    shape in ``shapes``. Returns the message."""
    with pytest.raises(exc) as info:
        fn(*args, **kw)
    # pytest.raises also accepts subclasses: IndexError etc. are not subclasses of these
    msg = str(info.value)
    for name in names:
        assert names_argument(msg, name), f"message does not name `{name}`: {msg!r}"
    for text in contains:
        assert text.lower() in msg.lower(), f"message lacks {text!r}: {msg!r}"
    for shape in shapes:
        assert mentions_shape(msg, shape), f"message does not show shape {shape}: {msg!r}"
    return msg


def _logits(backend: Any, dtype: str = "float64", shape: tuple[int, ...] = (N, C)) -> Any:
    x = np.random.default_rng(0).normal(size=shape)
    return to_backend(backend, x, dtype=dtype)


def _target(backend: Any, values: Any = (0, 2, 1, 2), dtype: str = "int64") -> Any:
    return to_backend(backend, np.asarray(values, dtype=dtype))


def _call(func: str, x: Any, backend: Any, **kw: Any) -> Any:
    """Call ``func`` with a valid second argument where it needs one."""
    fn = getattr(xsoftmax, func)
    if func in LINEAR_FUNCS:  # x is the input (N, d); the weight maps d = C features to C classes
        w = to_backend(backend, np.eye(C))
        return fn(x, w, _target(backend), **kw)
    if func in LOSSES:
        t = kw.pop("target", None)
        return fn(x, _target(backend) if t is None else t, axis=kw.pop("axis", 1), **kw)
    if func == "binary_cross_entropy_with_logits":
        t = kw.pop("target", None)
        return fn(x, to_backend(backend, np.full((N, C), 0.5)) if t is None else t, **kw)
    return fn(x, **kw)


# --------------------------------------------------------------------------------------
# E1-E3: non-floating logits
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", ALL_FUNCS)
@pytest.mark.parametrize(
    ("row", "dtype"), [("E1", "int64"), ("E1", "int32"), ("E2", "bool"), ("E3", "complex128")]
)
def test_non_floating_logits(backend: Any, func: str, row: str, dtype: str) -> None:
    """E1 integer, E2 bool, E3 complex logits: TypeError naming the argument, "floating"
    and the actual dtype (E3: naming the argument; the rest is a SHOULD)."""
    x = to_backend(backend, (np.arange(N * C).reshape(N, C) % 2).astype(dtype))
    name = LOGITS_NAME[func]
    contains = ("floating", dtype) if row != "E3" else ()
    expect_error(TypeError, _call, func, x, backend, names=(name,), contains=contains)


# --------------------------------------------------------------------------------------
# E4-E5: class indices out of range (eager: ValueError; lazy: NaN for that sample)
# --------------------------------------------------------------------------------------
E4_CASES = [
    # (logits shape, target, offending value, options)
    ((N, C), [0, 3, 1, 2], 3, {}),
    ((N, C), [0, -1, 1, 2], -1, {}),
    ((N, C), [0, 7, 1, 2], 7, {"label_smoothing": 0.1}),
    ((N, C), [0, 1, -5, 2], -5, {"ignore_index": 1}),
    ((2, C, 2), [[0, 1], [4, 2]], 4, {}),  # spatial target (N, d)
]


def _is_lazy(backend: Any) -> bool:
    return bool(backend.lazy)


@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize(("shape", "target", "bad", "opts"), E4_CASES)
def test_class_index_out_of_range(
    backend: Any, func: str, shape: Any, target: Any, bad: int, opts: dict
) -> None:
    """E4: ValueError naming `target`, the range [0, C), the offending value and
    `ignore_index` on eager arrays; on lazy arrays NaN for that sample, nothing computed."""
    if func == "nll_loss" and "label_smoothing" in opts:
        pytest.skip("nll_loss has no label_smoothing")
    x = _logits(backend, shape=shape)
    t_np = np.asarray(target, dtype=np.int64)
    t = to_backend(backend, t_np)
    fn = getattr(xsoftmax, func)
    if _is_lazy(backend):
        _check_lazy_nan(backend, fn, x, t, t_np, bad, opts)
        return
    msg = expect_error(ValueError, fn, x, t, axis=1, names=("target", "ignore_index"), **opts)
    assert re.search(rf"\[0,\s*({C}|C)\)", msg), f"message lacks the range [0, {C}): {msg!r}"
    rest = re.sub(r"\[0,\s*\w+\)|\([\d,\s]*\)", "", msg)  # without the range and shapes
    assert re.search(rf"(?<![\d.]){bad}(?![\d.])", rest), f"message lacks the value {bad}: {msg!r}"


def _check_lazy_nan(
    backend: Any, fn: Any, x: Any, t: Any, t_np: Any, bad: int, opts: dict
) -> None:
    """Lazy backend: the call builds a graph without computing; the bad sample is NaN."""
    import dask

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("xsoftmax computed a Dask graph inside the call")

    with dask.config.set(scheduler=refuse):
        res = fn(x, t, axis=1, reduction="none", **opts)
    loss = backend.to_numpy(res[0] if isinstance(res, tuple) else res)
    bad_mask = t_np == bad
    assert np.isnan(loss[bad_mask]).all(), f"out-of-range sample must be NaN, got {loss}"
    assert np.isfinite(loss[~bad_mask]).all(), f"other samples must stay finite, got {loss}"


@pytest.mark.parametrize("func", LOSSES)
def test_no_classes_with_target(backend: Any, func: str) -> None:
    """E5: C = 0 with a non-ignored target: ValueError naming `target` (lazy: NaN)."""
    x = to_backend(backend, np.zeros((N, 0)))
    t_np = np.array([0, -100, 0, -100])
    t = to_backend(backend, t_np)
    fn = getattr(xsoftmax, func)
    if _is_lazy(backend):
        _check_lazy_nan(backend, fn, x, t, t_np, 0, {})
        return
    expect_error(ValueError, fn, x, t, axis=1, names=("target",))


def test_out_of_range_under_jax_jit() -> None:
    """Under jax.jit a value check cannot raise: the bad sample is NaN, never a wrapped
    index (docs/contract/semantics.md); the mean is NaN."""
    b = get_backend("jax")
    if b is None:
        pytest.skip("jax backend not loaded")
    jax = b.extra["jax"]
    x = _logits(b)
    t = _target(b, [0, 3, 1, -1])

    @jax.jit
    def per_sample(x: Any, t: Any) -> Any:
        return xsoftmax.cross_entropy(x, t, axis=1, reduction="none")

    loss = np.asarray(per_sample(x, t))
    assert np.isnan(loss[[1, 3]]).all(), loss
    assert np.isfinite(loss[[0, 2]]).all(), loss
    mean = jax.jit(lambda x, t: xsoftmax.cross_entropy(x, t, axis=1))(x, t)
    assert np.isnan(float(mean))


# --------------------------------------------------------------------------------------
# E6-E10: target dtype and shape
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", LOSSES)
def test_float_target_with_index_shape(backend: Any, func: str) -> None:
    """E6: a floating target of the class-index shape: TypeError naming `target`,
    "integer", and that probabilities need the logits' shape."""
    t = to_backend(backend, np.array([0.0, 2.0, 1.0, 2.0]))
    msg = expect_error(
        TypeError,
        _call,
        func,
        _logits(backend),
        backend,
        target=t,
        names=("target",),
        contains=("integer",),
    )
    if func != "nll_loss":  # nll_loss takes no probabilities
        assert mentions_shape(msg, (N, C)) or "logits" in msg, f"no logits' shape: {msg!r}"


@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("shape", [(N,), (N, C)])
def test_bool_target(backend: Any, func: str, shape: tuple[int, ...]) -> None:
    """E7: a bool target: TypeError naming `target`."""
    t = to_backend(backend, np.ones(shape, dtype=bool))
    expect_error(TypeError, _call, func, _logits(backend), backend, target=t, names=("target",))


@pytest.mark.parametrize("func", ["cross_entropy", "cross_entropy_with_grad"])
def test_integer_target_with_logits_shape(backend: Any, func: str) -> None:
    """E8: an integer target of the logits' shape: TypeError naming `target`, "floating"."""
    t = to_backend(backend, np.zeros((N, C), dtype=np.int64))
    expect_error(
        TypeError,
        _call,
        func,
        _logits(backend),
        backend,
        target=t,
        names=("target",),
        contains=("floating",),
    )


@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("tshape", [(N + 1,), (N, 1), (N, C + 1), ()])
def test_target_shape(backend: Any, func: str, tshape: tuple[int, ...]) -> None:
    """E9: a target shape that is neither logits.shape minus the class axis nor
    logits.shape: ValueError naming `target`, both accepted shapes and the actual one."""
    t = to_backend(backend, np.zeros(tshape, dtype=np.int64))
    shapes = ((N,), (N, C), tshape) if func != "nll_loss" else ((N,), tshape)
    expect_error(
        ValueError,
        _call,
        func,
        _logits(backend),
        backend,
        target=t,
        names=("target",),
        shapes=shapes,
    )


def test_probability_target_to_nll(backend: Any) -> None:
    """E10: a probability target to nll_loss: ValueError naming `target`."""
    t = to_backend(backend, np.full((N, C), 1.0 / C))
    expect_error(
        ValueError, _call, "nll_loss", _logits(backend), backend, target=t, names=("target",)
    )


# --------------------------------------------------------------------------------------
# E11-E12: weight
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("wshape", [(C - 1,), (C + 1,), (1, C)])
def test_weight_shape(backend: Any, func: str, wshape: tuple[int, ...]) -> None:
    """E11: weight shape != (C,): ValueError naming `weight`, (C,) and the actual shape."""
    w = to_backend(backend, np.ones(wshape))
    expect_error(
        ValueError,
        _call,
        func,
        _logits(backend),
        backend,
        weight=w,
        names=("weight",),
        shapes=((C,), wshape),
    )


@pytest.mark.parametrize("func", [*LOSSES, "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize(
    ("xdt", "wdt"),
    [("float32", "int64"), ("float32", "float64"), ("float64", "float32"), ("float16", "float32")],
)
def test_weight_dtype(backend: Any, func: str, xdt: str, wdt: str) -> None:
    """E12: weight dtype != logits dtype: SHOULD be cast to the compute dtype (then the
    value equals the oracle with the cast weight); if rejected, TypeError naming `weight`."""
    if xdt not in backend.float_dtypes():
        pytest.skip(f"{backend.name} has no {xdt}")
    rng = np.random.default_rng(4)
    x_np = rng.normal(size=(N, C)).astype(xdt)
    w_np = np.array([1, 2, 3], dtype=wdt)
    t_np = np.array([0, 2, 1, 2])
    if func == "binary_cross_entropy_with_logits":
        t_np = np.full((N, C), 0.25, dtype=xdt)
    if func == "nll_loss":
        x_np = ref_log_softmax(x_np.astype(np.float64), 1).astype(xdt)
    x, t, w = to_backend(backend, x_np), to_backend(backend, t_np), to_backend(backend, w_np)
    rejected: TypeError | None = None
    try:
        res = _call(func, x, backend, target=t, weight=w)
    except TypeError as exc:
        rejected = exc
    if rejected is not None:
        assert names_argument(str(rejected), "weight"), f"does not name `weight`: {rejected}"
        return
    loss = res[0] if isinstance(res, tuple) else res
    got = backend.to_numpy(loss)
    wc = w_np.astype(xdt)  # cast to the compute dtype (exact for these values)
    if func == "binary_cross_entropy_with_logits":
        want, mag = ref_bce_with_logits(x_np, t_np, weight=wc)
    elif func == "nll_loss":
        want, mag = ref_nll(x_np, t_np, axis=1, weight=wc)
    else:
        want, mag = ref_cross_entropy(x_np, t_np, axis=1, weight=wc)
    acc = "float32" if xdt == "float16" else xdt
    assert_close(got, want, dtype=xdt, atol=tolerance(acc, C, mag)[1], what="cast weight")


# --------------------------------------------------------------------------------------
# E13-E17: label_smoothing, reduction, ignore_index
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", ["cross_entropy", "cross_entropy_with_grad"])
@pytest.mark.parametrize("prob", [False, True])
@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan, math.inf, -math.inf])
def test_label_smoothing_range(backend: Any, func: str, prob: bool, value: float) -> None:
    """E13: label_smoothing outside [0, 1] (NaN, +-inf too): ValueError naming it, "[0, 1]"
    and the value."""
    t = to_backend(backend, np.full((N, C), 1.0 / C)) if prob else None
    msg = expect_error(
        ValueError,
        _call,
        func,
        _logits(backend),
        backend,
        target=t,
        label_smoothing=value,
        names=("label_smoothing",),
    )
    assert re.search(r"\[0(\.0)?,\s*1(\.0)?\]", msg), f"message lacks [0, 1]: {msg!r}"
    assert str(value) in msg or repr(value) in msg, f"message lacks {value}: {msg!r}"


@pytest.mark.parametrize("func", ["cross_entropy", "cross_entropy_with_grad"])
@pytest.mark.parametrize("value", ["0.1", None, [0.1], 0.1j])
def test_label_smoothing_type(backend: Any, func: str, value: Any) -> None:
    """E14: label_smoothing not a real number: TypeError naming it."""
    expect_error(
        TypeError,
        _call,
        func,
        _logits(backend),
        backend,
        label_smoothing=value,
        names=("label_smoothing",),
    )


@pytest.mark.parametrize("func", [*LOSSES, "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("value", ["bogus", "MEAN", "", None])
def test_reduction_value(backend: Any, func: str, value: Any) -> None:
    """E15: reduction not exactly 'mean'/'sum'/'none': ValueError naming it, the allowed
    values and the given one."""
    msg = expect_error(
        ValueError,
        _call,
        func,
        _logits(backend),
        backend,
        reduction=value,
        names=("reduction",),
        contains=("mean", "sum", "none"),
    )
    assert repr(value) in msg or (value and str(value) in msg), f"no value {value!r}: {msg!r}"


@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("value", [1.0, True, "1", None])
def test_ignore_index_type(backend: Any, func: str, value: Any) -> None:
    """E16: ignore_index not an int: TypeError naming it."""
    expect_error(
        TypeError,
        _call,
        func,
        _logits(backend),
        backend,
        ignore_index=value,
        names=("ignore_index",),
    )


@pytest.mark.parametrize("func", ["cross_entropy", "cross_entropy_with_grad"])
@pytest.mark.parametrize("value", [0, 2, 5])
def test_ignore_index_with_probabilities(backend: Any, func: str, value: int) -> None:
    """E17: ignore_index >= 0 with probability targets: ValueError naming it."""
    t = to_backend(backend, np.full((N, C), 1.0 / C))
    expect_error(
        ValueError,
        _call,
        func,
        _logits(backend),
        backend,
        target=t,
        ignore_index=value,
        names=("ignore_index",),
    )


# --------------------------------------------------------------------------------------
# E18-E20: binary_cross_entropy_with_logits
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("tshape", [(N, 1), (C,), (1, C), (N, C, 1)])
def test_bce_target_shape(backend: Any, tshape: tuple[int, ...]) -> None:
    """E18: BCE target.shape != logits.shape (even broadcastable): ValueError naming
    `target` and both shapes."""
    t = to_backend(backend, np.full(tshape, 0.5))
    expect_error(
        ValueError,
        _call,
        "binary_cross_entropy_with_logits",
        _logits(backend),
        backend,
        target=t,
        names=("target",),
        shapes=((N, C), tshape),
    )


@pytest.mark.parametrize(
    ("arg", "shape"),
    [("weight", (2,)), ("weight", (N,)), ("pos_weight", (N,)), ("pos_weight", (N, C, 2))],
)
def test_bce_weight_broadcast(backend: Any, arg: str, shape: tuple[int, ...]) -> None:
    """E19: BCE weight / pos_weight not broadcastable to the logits: ValueError naming it."""
    w = to_backend(backend, np.ones(shape))
    expect_error(
        ValueError,
        _call,
        "binary_cross_entropy_with_logits",
        _logits(backend),
        backend,
        names=(arg,),
        **{arg: w},
    )


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_bce_non_floating_target(backend: Any, dtype: str) -> None:
    """E20: BCE integer / bool target: TypeError naming `target`."""
    t = to_backend(backend, np.ones((N, C), dtype=dtype))
    expect_error(
        TypeError,
        _call,
        "binary_cross_entropy_with_logits",
        _logits(backend),
        backend,
        target=t,
        names=("target",),
    )


# --------------------------------------------------------------------------------------
# E21-E22: mixed libraries and devices
# --------------------------------------------------------------------------------------
MIX_PAIRS = [
    ("numpy", "torch"),
    ("torch", "numpy"),
    ("numpy", "array-api-strict"),
    ("array-api-strict", "numpy"),
    ("torch", "array-api-strict"),
    ("array-api-strict", "torch"),
    ("numpy", "jax"),
    ("jax", "numpy"),
    ("numpy", "dask"),
    ("dask", "numpy"),
    ("torch", "jax"),
]
MIX_ARGS = [
    ("cross_entropy", "target"),
    ("cross_entropy", "weight"),
    ("nll_loss", "target"),
    ("cross_entropy_with_grad", "target"),
    ("binary_cross_entropy_with_logits", "target"),
    ("binary_cross_entropy_with_logits", "weight"),
    ("binary_cross_entropy_with_logits", "pos_weight"),
    ("logsumexp", "b"),
    ("softmax", "where"),
]


def _second_arg(b: Any, func: str, arg: str) -> Any:
    if arg == "target" and func in LOSSES:
        return _target(b)
    if arg == "where":
        return to_backend(b, np.ones((N, C), dtype=bool))
    if arg == "weight" and func in LOSSES:
        return to_backend(b, np.ones(C))
    return to_backend(b, np.full((N, C), 0.5))


@pytest.mark.parametrize(("first", "second"), MIX_PAIRS)
@pytest.mark.parametrize(("func", "arg"), MIX_ARGS)
def test_mixed_libraries(first: str, second: str, func: str, arg: str) -> None:
    """E21: arrays from two libraries: TypeError naming both arguments and saying
    "namespace" or "library" (torch silently accepts NumPy in arithmetic)."""
    b1, b2 = get_backend(first), get_backend(second)
    if b1 is None or b2 is None:
        pytest.skip(f"needs backends {first} and {second}")
    x = _logits(b1)
    other = _second_arg(b2, func, arg)
    name = LOGITS_NAME[func]
    msg = expect_error(TypeError, _call, func, x, b1, names=(name, arg), **{arg: other})
    assert re.search(r"namespace|librar", msg, re.I), f"no 'namespace'/'library': {msg!r}"


def _device_pairs() -> list[Any]:
    pairs = []
    if get_backend("torch") is not None:
        pairs.append(pytest.param("torch", "cpu", "meta", id="torch-cpu-meta"))
        pairs.append(pytest.param("torch", "meta", "cpu", id="torch-meta-cpu"))
    if get_backend("array-api-strict") is not None:
        pairs.append(
            pytest.param("array-api-strict", "CPU_DEVICE", "device1", id="strict-cpu-device1")
        )
        pairs.append(
            pytest.param("array-api-strict", "device1", "CPU_DEVICE", id="strict-device1-cpu")
        )
    return pairs or [
        pytest.param(None, None, None, marks=pytest.mark.skip(reason="no torch/strict"))
    ]


def _on_device(lib: str, a: np.ndarray, dev: str) -> Any:
    if lib == "torch":
        import torch

        return torch.asarray(np.array(a), device=dev)
    import array_api_strict as xps

    device = xps.Device("device1") if dev == "device1" else xps.Device("CPU_DEVICE")
    return xps.asarray(np.array(a), device=device)


@pytest.mark.parametrize(("lib", "dev1", "dev2"), _device_pairs())
@pytest.mark.parametrize(("func", "arg"), MIX_ARGS)
def test_mixed_devices(lib: str, dev1: str, dev2: str, func: str, arg: str) -> None:
    """E22: arrays on two devices: ValueError naming the arguments and the devices."""
    x = _on_device(lib, np.random.default_rng(0).normal(size=(N, C)), dev1)
    b = get_backend(lib)
    kw = {arg: _on_device(lib, b.to_numpy(_second_arg(b, func, arg)), dev2)}
    if arg != "target" and func in LOSSES:
        kw["target"] = _on_device(lib, np.array([0, 2, 1, 2]), dev1)
    if arg != "target" and func == "binary_cross_entropy_with_logits":
        kw["target"] = _on_device(lib, np.full((N, C), 0.5), dev1)
    name = LOGITS_NAME[func]
    msg = expect_error(ValueError, _call, func, x, b, names=(name, arg), **kw)
    for dev in (dev1, dev2):
        assert dev.split("_")[0].lower() in msg.lower(), f"message lacks device {dev}: {msg!r}"


# --------------------------------------------------------------------------------------
# E23-E26: axis, 0-d inputs, non-arrays
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", [f for f in ALL_FUNCS if f != "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("axis", [2, -3, (0, 0), (1, -1), 1.0, "1"])
def test_axis(backend: Any, func: str, axis: Any) -> None:
    """E23: axis out of range, repeated or not an int: ValueError or TypeError naming it
    (losses take one int: any tuple is an error there)."""
    expect_error(
        (ValueError, TypeError), _call, func, _logits(backend), backend, axis=axis, names=("axis",)
    )


@pytest.mark.parametrize("func", LOSSES)
def test_zero_dim_logits(backend: Any, func: str) -> None:
    """E24: 0-d logits to a loss: ValueError naming the logits argument."""
    x = to_backend(backend, np.array(1.5))
    t = to_backend(backend, np.array(0))
    expect_error(ValueError, getattr(xsoftmax, func), x, t, names=(LOGITS_NAME[func],))


@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_zero_dim_x(backend: Any, func: str) -> None:
    """E25: 0-d x to softmax/log_softmax: ValueError naming `x` or `axis`, or exactly
    1.0 / 0.0 (torch/SciPy)."""
    x = to_backend(backend, np.array(1.5))
    try:
        res = getattr(xsoftmax, func)(x)
    except ValueError as exc:
        msg = str(exc)
        assert names_argument(msg, "x") or names_argument(msg, "axis"), msg
        return
    assert backend.to_numpy(res) == (1.0 if func == "softmax" else 0.0)


@pytest.mark.parametrize("func", ALL_FUNCS)
@pytest.mark.parametrize("what", ["list", "scalar"])
def test_not_an_array(backend: Any, func: str, what: str) -> None:
    """E26: a Python list or scalar in place of the logits: TypeError naming it."""
    x = [[0.5, 1.0, 2.0]] * N if what == "list" else 1.5
    expect_error(TypeError, _call, func, x, backend, names=(LOGITS_NAME[func],))


@pytest.mark.parametrize(
    ("func", "arg"),
    [
        ("cross_entropy", "target"),
        ("nll_loss", "target"),
        ("cross_entropy", "weight"),
        ("binary_cross_entropy_with_logits", "target"),
        ("binary_cross_entropy_with_logits", "pos_weight"),
        ("logsumexp", "b"),
        ("softmax", "where"),
    ],
)
def test_not_an_array_argument(backend: Any, func: str, arg: str) -> None:
    """E26: a Python list in place of another array argument: TypeError naming it."""
    value: Any = [0, 2, 1, 2] if arg == "target" and func in LOSSES else [1.0, 1.0, 1.0]
    if arg == "where":
        value = [True, False, True]
    if func == "binary_cross_entropy_with_logits" and arg == "target":
        value = [[0.5] * C] * N
    expect_error(TypeError, _call, func, _logits(backend), backend, names=(arg,), **{arg: value})


# --------------------------------------------------------------------------------------
# Not errors (MUST work)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ignore_index", "tdtype"),
    [
        (-100, "int8"),
        (-1, "int16"),
        (5, "int32"),
        (255, "uint8"),
        (2**40, "int64"),
        (-(2**40), "int64"),
        (-100, "uint8"),
        (-1, "int64"),
        (5, "int8"),
    ],
)
def test_any_ignore_index_any_integer_dtype(backend: Any, ignore_index: int, tdtype: str) -> None:
    """ignore_index anywhere outside [0, C) and any integer target dtype work (torch
    rejects int8/int16/int32 targets); entries equal to ignore_index are ignored."""
    info = np.iinfo(tdtype)
    t_np = np.array([0, 2, 1, 2])
    if info.min <= ignore_index <= info.max:
        t_np = np.array([0, ignore_index, 1, 2])
    t_np = t_np.astype(tdtype)
    x_np = np.random.default_rng(1).normal(size=(N, C))
    x, t = to_backend(backend, x_np), to_backend(backend, t_np)
    for red in ("mean", "none"):
        got = backend.to_numpy(
            xsoftmax.cross_entropy(x, t, axis=1, ignore_index=ignore_index, reduction=red)
        )
        want, mag = ref_cross_entropy(x_np, t_np, axis=1, ignore_index=ignore_index, reduction=red)
        assert_close(got, want, dtype="float64", atol=tolerance("float64", C, mag)[1], what=red)


def _layouts(backend: Any, x_np: np.ndarray) -> dict[str, Any]:
    """Transposed, strided and stride-0 views of the backend's own kind; all (N, C)."""
    xp = backend.xp
    out = {}
    if backend.name == "numpy":
        out["transposed"] = np.ascontiguousarray(x_np.T).T
        out["strided"] = np.repeat(x_np, 2, axis=1)[:, ::2]
        out["stride0"] = np.broadcast_to(x_np[:1], x_np.shape)
        for v in out.values():
            if v.flags.writeable:
                v.setflags(write=False)
        return {k: (v, np.asarray(v)) for k, v in out.items()}
    if backend.name.startswith("torch"):
        t = to_backend(backend, np.ascontiguousarray(x_np.T))
        out["transposed"] = (t.T, x_np)
        t2 = to_backend(backend, np.repeat(x_np, 2, axis=1))
        out["strided"] = (t2[:, ::2], x_np)
        t3 = to_backend(backend, x_np[:1])
        out["stride0"] = (t3.expand(*x_np.shape), np.broadcast_to(x_np[:1], x_np.shape))
        return out
    t = to_backend(backend, np.ascontiguousarray(x_np.T))
    out["transposed"] = (xp.permute_dims(t, (1, 0)), x_np)
    t2 = to_backend(backend, np.repeat(x_np, 2, axis=1))
    out["strided"] = (t2[:, ::2], x_np)
    t3 = to_backend(backend, x_np[:1])
    out["stride0"] = (xp.broadcast_to(t3, x_np.shape), np.broadcast_to(x_np[:1], x_np.shape))
    return out


def test_views_and_read_only(backend: Any) -> None:
    """Transposed, strided and stride-0 (expand / broadcast_to) inputs, read-only NumPy
    arrays, work in every function and give the oracle's values."""
    x_np = np.random.default_rng(2).normal(size=(N, C))
    t_np = np.array([0, 2, 1, 2])
    _, atol = tolerance("float64", C, 1.0)
    for layout, (x, xv) in _layouts(backend, x_np).items():
        xv = np.asarray(xv, dtype=np.float64)
        what = f"{backend.name} {layout}"
        assert_close(
            backend.to_numpy(xsoftmax.softmax(x, axis=1)),
            ref_softmax(xv, 1),
            dtype="float64",
            what=what,
        )
        assert_close(
            backend.to_numpy(xsoftmax.log_softmax(x, axis=1)),
            ref_log_softmax(xv, 1),
            dtype="float64",
            atol=atol,
            what=what,
        )
        assert_close(
            backend.to_numpy(xsoftmax.logsumexp(x, axis=1)),
            ref_logsumexp(xv, 1),
            dtype="float64",
            atol=atol,
            what=what,
        )
        want, mag = ref_cross_entropy(xv, t_np, axis=1)
        t = to_backend(backend, t_np)
        got = backend.to_numpy(xsoftmax.cross_entropy(x, t, axis=1))
        assert_close(got, want, dtype="float64", atol=tolerance("float64", C, mag)[1], what=what)
        got = backend.to_numpy(xsoftmax.cross_entropy_with_grad(x, t, axis=1)[0])
        assert_close(got, want, dtype="float64", atol=tolerance("float64", C, mag)[1], what=what)
        bt = to_backend(backend, np.full((N, C), 0.25))
        got = backend.to_numpy(xsoftmax.binary_cross_entropy_with_logits(x, bt, weight=x))
        want, mag = ref_bce_with_logits(xv, np.full((N, C), 0.25), weight=xv)
        assert_close(got, want, dtype="float64", atol=tolerance("float64", 1, mag)[1], what=what)


def test_empty_inputs_work(backend: Any) -> None:
    """Empty batches in every function and C = 0 in the softmax family."""
    e = to_backend(backend, np.zeros((0, C)))
    c0 = to_backend(backend, np.zeros((N, 0)))
    assert backend.to_numpy(xsoftmax.softmax(e, axis=1)).shape == (0, C)
    assert backend.to_numpy(xsoftmax.log_softmax(c0, axis=1)).shape == (N, 0)
    np.testing.assert_array_equal(
        backend.to_numpy(xsoftmax.logsumexp(c0, axis=1)), np.full(N, -np.inf)
    )
    t0 = to_backend(backend, np.zeros((0,), dtype=np.int64))
    assert backend.to_numpy(xsoftmax.cross_entropy(e, t0, axis=1, reduction="none")).shape == (0,)
    assert backend.to_numpy(xsoftmax.nll_loss(e, t0, axis=1, reduction="sum")) == 0
    _, g = xsoftmax.cross_entropy_with_grad(e, t0, axis=1, reduction="sum")
    assert backend.to_numpy(g).shape == (0, C)
    got = xsoftmax.binary_cross_entropy_with_logits(e, e, reduction="none")
    assert backend.to_numpy(got).shape == (0, C)


# --------------------------------------------------------------------------------------
# inputs are never modified
# --------------------------------------------------------------------------------------
def _mutation_calls(backend: Any) -> list[tuple[str, Callable[[], Any], list[Any]]]:
    rng = np.random.default_rng(3)
    x = to_backend(backend, rng.normal(size=(N, C)) * 5)
    xi = to_backend(backend, np.array([[0.5, -np.inf, 1.0]] * N))
    t = _target(backend, [0, -100, 1, 2])
    tp = to_backend(backend, rng.dirichlet(np.ones(C), size=N))
    w = to_backend(backend, np.array([0.5, 1.0, 2.0]))
    bt = to_backend(backend, rng.random((N, C)))
    where = to_backend(backend, np.array([[True, False, True]] * N))
    b = to_backend(backend, rng.uniform(-1, 1, size=(N, C)))
    lp = to_backend(backend, ref_log_softmax(rng.normal(size=(N, C)), 1))
    X = xsoftmax
    return [
        ("softmax", lambda: X.softmax(xi, axis=1, where=where), [xi, where]),
        ("log_softmax", lambda: X.log_softmax(x, axis=0, where=where), [x, where]),
        ("logsumexp", lambda: X.logsumexp(x, axis=1, b=b, return_sign=True), [x, b]),
        (
            "cross_entropy",
            lambda: X.cross_entropy(x, t, axis=1, weight=w, label_smoothing=0.1),
            [x, t, w],
        ),
        ("cross_entropy prob", lambda: X.cross_entropy(x, tp, axis=1, weight=w), [x, tp, w]),
        ("nll_loss", lambda: X.nll_loss(lp, t, axis=1, weight=w, reduction="none"), [lp, t, w]),
        (
            "with_grad",
            lambda: X.cross_entropy_with_grad(xi, t, axis=1, weight=w, reduction="none"),
            [xi, t, w],
        ),
        (
            "with_grad prob",
            lambda: X.cross_entropy_with_grad(x, tp, axis=1, label_smoothing=0.2),
            [x, tp],
        ),
        (
            "bce",
            lambda: X.binary_cross_entropy_with_logits(x, bt, weight=bt, pos_weight=w),
            [x, bt, w],
        ),
    ]


def test_inputs_never_mutated(backend: Any) -> None:
    """Every input is unchanged after every call (values; for torch also the tensor's
    version counter, which any in-place write increments; NumPy inputs are read-only)."""
    for name, call, inputs in _mutation_calls(backend):
        before = [np.array(backend.to_numpy(a), copy=True) for a in inputs]
        versions = [getattr(a, "_version", None) for a in inputs]
        res = call()
        for r in res if isinstance(res, tuple) else (res,):
            backend.to_numpy(r)  # evaluate lazy results
        for i, (a, old) in enumerate(zip(inputs, before, strict=True)):
            np.testing.assert_array_equal(backend.to_numpy(a), old, err_msg=f"{name}: input {i}")
            assert getattr(a, "_version", None) == versions[i], f"{name}: input {i} written"


def test_torch_requires_grad_inputs_not_mutated() -> None:
    """torch tensors that require grad go through every function untouched."""
    b = get_backend("torch")
    if b is None:
        pytest.skip("torch backend not loaded")
    import torch

    for name, call, inputs in _mutation_calls(b):
        floats = [a for a in inputs if a.is_floating_point()]
        for a in floats:
            a.requires_grad_(True)
        versions = [a._version for a in inputs]
        res = call()
        out = res[0] if isinstance(res, tuple) else res
        out[torch.isfinite(out)].sum().backward()
        assert [a._version for a in inputs] == versions, name


# --------------------------------------------------------------------------------------
# torch and SciPy habits
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", ALL_FUNCS + LINEAR_FUNCS)
def test_torch_dim_keyword(backend: Any, func: str) -> None:
    """torch's ``dim=``: a TypeError naming ``dim`` that says to use ``axis=`` (BCE has
    neither: it says so), not Python's generic unexpected-keyword error."""
    msg = expect_error(TypeError, _call, func, _logits(backend), backend, dim=1, names=("dim",))
    if func == "binary_cross_entropy_with_logits":
        assert "elementwise" in msg, msg
    elif func in LINEAR_FUNCS:
        assert "rows of `linear_weight`" in msg, msg
    else:
        assert "axis=1" in msg, msg


def test_torch_keepdim_keyword(backend: Any) -> None:
    """torch's ``keepdim=`` on logsumexp: a TypeError that says to use ``keepdims=``."""
    msg = expect_error(
        TypeError, xsoftmax.logsumexp, _logits(backend), axis=1, keepdim=True, names=("keepdim",)
    )
    assert "keepdims=True" in msg, msg


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_signatures_stay_visible(func: str) -> None:
    """The keyword check keeps each function's own signature (inspect, help()) and its
    docstring examples (doctest still finds them in their module)."""
    import doctest
    import inspect
    import pydoc

    fn = getattr(xsoftmax, func)
    params = inspect.signature(fn).parameters
    assert LOGITS_NAME[func] in params
    assert not any(p.kind is p.VAR_KEYWORD or p.kind is p.VAR_POSITIONAL for p in params.values())
    assert "dim" not in params
    if func != "binary_cross_entropy_with_logits":
        assert "axis" in params
    shown = pydoc.plain(pydoc.render_doc(fn))
    assert f"{func}({LOGITS_NAME[func]}" in shown, shown[:300]
    assert "**kwargs" not in shown, shown[:300]
    module = inspect.getmodule(fn)
    name = f"{module.__name__}.{func}"
    tests = [t for t in doctest.DocTestFinder().find(module) if t.name == name]
    assert tests, f"{func}: its docstring examples are no longer collected"
    assert tests[0].examples


@pytest.mark.parametrize("func", LOSSES)
def test_torch_layout_hint(backend: Any, func: str) -> None:
    """torch's (N, C, d) layout with the default axis=-1: the target shape error says to
    pass ``axis=1``, and with axis=1 the result is torch's."""
    x_np = np.random.default_rng(5).normal(size=(N, C, 2))
    t_np = np.random.default_rng(6).integers(0, C, size=(N, 2))
    x = to_backend(backend, x_np)
    t = to_backend(backend, t_np)
    fn = getattr(xsoftmax, func)
    expect_error(ValueError, fn, x, t, names=("target",), contains=("axis=1",))
    if func == "nll_loss":
        x_np = ref_log_softmax(x_np, 1)
        x = to_backend(backend, x_np)
    res = fn(x, t, axis=1, reduction="none")
    got = backend.to_numpy(res[0] if isinstance(res, tuple) else res)
    if func == "nll_loss":
        want = ref_nll(x_np, t_np, axis=1, reduction="none")
        want = want[0] if isinstance(want, tuple) else want
        assert_close(got, want, dtype="float64")
    else:
        want, mag = ref_cross_entropy(x_np, t_np, axis=1, reduction="none")
        assert_close(got, want, dtype="float64", atol=tolerance("float64", C, mag)[1])


@pytest.mark.parametrize("func", ALL_FUNCS)
def test_other_unexpected_keyword(backend: Any, func: str) -> None:
    """Any other unknown keyword is still a TypeError naming it; the defaults of the real
    signature still apply through the keyword check."""
    expect_error(TypeError, _call, func, _logits(backend), backend, axes=1, names=("axes",))
    fn = getattr(xsoftmax, func)
    import inspect

    assert fn.__wrapped__.__kwdefaults__ == fn.__kwdefaults__
    assert inspect.signature(fn) == inspect.signature(fn.__wrapped__)
