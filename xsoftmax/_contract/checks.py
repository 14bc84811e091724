"""Every argument check of the public API and its message.

Each check names the function, the argument, what was expected and what came,
and raises ``TypeError`` (wrong kind of thing) or ``ValueError`` (right kind,
wrong value). Nothing here computes a result.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import array_api_compat

from xsoftmax._contract.dtypes import is_real_floating
from xsoftmax._contract.namespaces import (
    is_known,
    numpy_namespace,
    unknown_lengths_namespace,
)

REDUCTIONS = ("mean", "sum", "none")

F = TypeVar("F", bound=Callable[..., Any])

TORCH_KEYWORDS = {"dim": "axis", "keepdim": "keepdims"}
"""torch's keyword names and ours (the array API's)."""


def torch_keywords(func: F) -> F:
    """Decorator: torch's ``dim=`` / ``keepdim=`` get a ``TypeError`` that names ``axis=`` /
    ``keepdims=`` instead of Python's generic "unexpected keyword argument".

    For a function of positional-only and keyword-only parameters (every public
    function) the wrapper is generated with the same parameters plus a catch-all
    ``**extra`` that is empty on every valid call, so a call costs one extra frame
    and no argument packing; ``__signature__`` shows ``func``'s own signature
    (``inspect.signature``, ``help()``, Sphinx) and ``__wrapped__`` is ``func``.
    Any other unexpected keyword still gets Python's own message.
    """
    sig = inspect.signature(func)
    params = sig.parameters
    name = func.__name__
    kinds = {p.kind for p in params.values()}
    if not kinds <= {inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.KEYWORD_ONLY}:
        msg = f"torch_keywords: {name} must take positional-only and keyword-only parameters"
        raise TypeError(msg)
    pos = [n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    kw = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    head = ", ".join([*pos, "/"] * bool(pos) + ["*", *kw] * bool(kw) + ["**_extra"])
    call = ", ".join([*pos, *(f"{k}={k}" for k in kw)])
    src = (
        f"def {name}({head}):\n"
        "    if _extra:\n"
        f"        _refuse({name!r}, _params, _extra)\n"
        f"    return _func({call})\n"
    )
    namespace: dict[str, Any] = {"_func": func, "_refuse": _refuse_keywords, "_params": params}
    exec(src, namespace)  # the source is built from the parameter names above
    wrapper = namespace[name]
    wrapper.__defaults__ = func.__defaults__
    wrapper.__kwdefaults__ = func.__kwdefaults__
    functools.update_wrapper(wrapper, func)
    wrapper.__signature__ = sig
    return wrapper


def _refuse_keywords(func: str, params: Any, extra: dict[str, Any]) -> None:
    """Raise the ``TypeError`` for keywords ``func`` does not take (torch's get a hint)."""
    for torch_name, ours in TORCH_KEYWORDS.items():
        if torch_name not in extra:
            continue
        if ours in params:
            hint = f"use `{ours}={extra[torch_name]!r}`"
            if torch_name == "dim" and func not in ("softmax", "log_softmax", "logsumexp"):
                hint += " (torch's (N, C, ...) layout has the classes at axis=1)"
        elif func.startswith("linear_cross_entropy"):
            hint = (
                f"{func} takes no `{ours}` either: the classes are the rows of "
                "`linear_weight`, the features the last axis of `input`"
            )
        else:
            hint = f"{func} is elementwise and takes no `{ours}` either"
        msg = (
            f"{func}: got an unexpected keyword argument `{torch_name}` (torch's name); "
            f"xsoftmax follows the array API: {hint}"
        )
        raise TypeError(msg)
    msg = f"{func}() got an unexpected keyword argument {next(iter(extra))!r}"
    raise TypeError(msg)


def _is_plain_ndarray(a: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and type(a) is numpy.ndarray


def _plain_tensors_on_one_device(torch: Any, arrays: Any) -> bool:
    """Dense ``torch.Tensor`` objects (not subclasses) all on one device."""
    tensors = list(arrays)
    if not all(type(a) is torch.Tensor and a.layout == torch.strided for a in tensors):
        return False
    return all(a.device == tensors[0].device for a in tensors)


def _library(x: Any) -> str:
    module = type(x).__module__.split(".")[0]
    return module or type(x).__name__


OPTIONAL_ARRAYS = frozenset({"where", "b", "weight", "pos_weight"})
"""The array arguments that may be ``None``; every other one is required."""

_HAS_WHERE = ("softmax", "log_softmax", "logsumexp")


def namespace_of(func: str, **arrays: Any) -> Any:
    """The one array namespace shared by the named arrays.

    ``None`` is skipped for the optional arrays (:data:`OPTIONAL_ARRAYS`) and is a
    ``TypeError`` for the others. Raises ``TypeError`` for something that is not a
    (dense, unmasked) array, or for arrays of two libraries, and ``ValueError`` for
    arrays on two devices; each message names the arguments.
    """
    named: dict[str, Any] = {}
    for name, a in arrays.items():
        if a is not None:
            named[name] = a
        elif name not in OPTIONAL_ARRAYS:
            msg = f"{func}: `{name}` is required and must be an array, got None"
            raise TypeError(msg)
    if all(_is_plain_ndarray(a) for a in named.values()):
        # the common case, without array_api_compat's general lookup: one library
        # (NumPy), one device (the CPU)
        return numpy_namespace()
    torch = sys.modules.get("torch")
    if torch is not None and named and _plain_tensors_on_one_device(torch, named.values()):
        import array_api_compat.torch as torch_namespace

        return torch_namespace
    spaces: dict[str, Any] = {}
    for name, a in named.items():
        _check_kind(func, name, a)
        if not array_api_compat.is_array_api_obj(a) or isinstance(a, (bool, int, float, complex)):
            msg = (
                f"{func}: `{name}` must be an array (NumPy, PyTorch, JAX, CuPy, Dask or any "
                f"array API library), got {type(a).__name__}"
            )
            raise TypeError(msg)
        try:
            spaces[name] = array_api_compat.array_namespace(a)
        except TypeError as exc:
            msg = f"{func}: `{name}` is not a supported array ({type(a).__name__}): {exc}"
            raise TypeError(msg) from exc
    names = list(spaces)
    first = names[0]
    for name in names[1:]:
        if spaces[name] is not spaces[first]:
            msg = (
                f"{func}: `{first}` and `{name}` come from different array libraries "
                f"({_library(named[first])} and {_library(named[name])}); pass arrays of one "
                "library (namespace)"
            )
            raise TypeError(msg)
    devices = {name: array_api_compat.device(named[name]) for name in names}
    known = [name for name in names if devices[name] is not None]  # tracers report None
    for name in known[1:]:
        if devices[name] != devices[known[0]]:
            first = known[0]
            msg = (
                f"{func}: `{first}` and `{name}` are on different devices "
                f"({devices[first]} and {devices[name]}); move them to one device"
            )
            raise ValueError(msg)
    xp = spaces[first]
    if any(not is_known(n) for a in named.values() for n in a.shape):
        return unknown_lengths_namespace(xp)
    return xp


def _check_kind(func: str, name: str, a: Any) -> None:
    """Refuse array kinds whose meaning the kernels would silently drop or cannot run.

    ``numpy.ma.MaskedArray``: its mask would be ignored (masked data would take
    part). Sparse torch tensors (COO, CSR, CSC, BSR, BSC): most operations are not
    implemented for them.
    """
    ma = sys.modules.get("numpy.ma")
    if ma is not None and isinstance(a, ma.MaskedArray):
        how = (
            f"pass `where=~np.ma.getmaskarray(...)` to {func}"
            if func in _HAS_WHERE
            else "express it with `where=` in softmax/log_softmax/logsumexp, or here with "
            "`ignore_index` or a zero `weight`"
        )
        msg = (
            f"{func}: `{name}` is a numpy.ma.MaskedArray, whose mask would be ignored; pass "
            f"the plain data (`np.ma.getdata({name})`) and give the mask explicitly: {how}"
        )
        raise TypeError(msg)
    module = type(a).__module__
    if module.startswith(("scipy.sparse", "jax.experimental.sparse", "cupyx.scipy.sparse")):
        msg = (
            f"{func}: `{name}` is a sparse array ({module}.{type(a).__name__}); pass a dense "
            f"array, e.g. `{name}.todense()`"
        )
        raise TypeError(msg)
    if array_api_compat.is_torch_array(a):
        torch = sys.modules["torch"]
        if a.layout != torch.strided:
            msg = (
                f"{func}: `{name}` is a sparse torch tensor (layout {a.layout}); pass a dense "
                f"(strided) tensor, e.g. `{name}.to_dense()`"
            )
            raise TypeError(msg)


def check_floating(func: str, name: str, x: Any, xp: Any) -> None:
    """``x`` must have a real floating dtype."""
    if not is_real_floating(xp, x.dtype):
        kind = "complex" if _is_complex(xp, x.dtype) else "non-floating"
        msg = (
            f"{func}: `{name}` must have a real floating dtype (float16, bfloat16, float32, "
            f"float64), got {kind} dtype {x.dtype}"
        )
        raise TypeError(msg)


def _is_complex(xp: Any, dtype: Any) -> bool:
    try:
        return bool(xp.isdtype(dtype, "complex floating"))
    except (TypeError, ValueError, AttributeError, KeyError):
        return False


def _real(func: str, name: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{func}: `{name}` must be {what}, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    return float(value)


def check_z_loss(func: str, z_loss: Any) -> float:
    """``z_loss`` must be a finite real number >= 0."""
    value = _real(func, "z_loss", z_loss, "a finite real number >= 0")
    if not (math.isfinite(value) and value >= 0):
        msg = f"{func}: `z_loss` must be a finite real number >= 0, got {value!r}"
        raise ValueError(msg)
    return value


def check_softcap(func: str, softcap: Any) -> float | None:
    """``softcap`` must be None or a finite real number > 0."""
    if softcap is None:
        return None
    value = _real(func, "softcap", softcap, "None or a finite real number > 0")
    if not (math.isfinite(value) and value > 0):
        msg = f"{func}: `softcap` must be None or a finite real number > 0, got {value!r}"
        raise ValueError(msg)
    return value


def is_integer_dtype(xp: Any, dtype: Any) -> bool:
    """Whether ``dtype`` is a (signed or unsigned) integer dtype of ``xp``."""
    try:
        return bool(xp.isdtype(dtype, "integral"))
    except (TypeError, ValueError, AttributeError, KeyError):
        return False


def is_bool_dtype(xp: Any, dtype: Any) -> bool:
    """Whether ``dtype`` is the boolean dtype of ``xp``."""
    try:
        return bool(xp.isdtype(dtype, "bool"))
    except (TypeError, ValueError, AttributeError, KeyError):
        return False


def check_out_dtype(func: str, dtype: Any, xp: Any) -> None:
    """``dtype=`` must be ``None`` or a real floating dtype of the input's library."""
    if dtype is not None and not is_real_floating(xp, dtype):
        msg = (
            f"{func}: `dtype` must be None or a real floating dtype of the input's library "
            f"(e.g. float32), got {dtype!r}"
        )
        raise TypeError(msg)


def normalize_axes(func: str, axis: Any, ndim: int, *, allow_none: bool) -> tuple[int, ...]:
    """``axis`` (None, int or tuple of ints) as a sorted tuple of non-negative axes."""
    if axis is None:
        if allow_none:
            return tuple(range(ndim))
        msg = f"{func}: `axis` must be an int or a tuple of ints, got None"
        raise TypeError(msg)
    items: Sequence[Any] = axis if isinstance(axis, tuple) else (axis,)
    out: list[int] = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            msg = f"{func}: `axis` must be an int or a tuple of ints, got {axis!r}"
            raise TypeError(msg)
        a = int(a)
        if not -ndim <= a < ndim:
            msg = (
                f"{func}: `axis` {a} is out of range for an array of {ndim} dimension(s) "
                f"(expected -{ndim} <= axis < {ndim})"
                if ndim
                else f"{func}: `axis` {a} is out of range: `x` is 0-dimensional"
            )
            raise ValueError(msg)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        msg = f"{func}: `axis` {axis!r} repeats an axis"
        raise ValueError(msg)
    return tuple(sorted(out))


def check_reduction(func: str, reduction: Any) -> str:
    """``reduction`` must be exactly one of ``'mean'``, ``'sum'``, ``'none'``."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        msg = f"{func}: `reduction` must be one of 'mean', 'sum', 'none', got {reduction!r}"
        raise ValueError(msg)
    return reduction


def check_label_smoothing(func: str, label_smoothing: Any) -> float:
    """``label_smoothing`` must be a real number in [0, 1]."""
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
        msg = (
            f"{func}: `label_smoothing` must be a real number in [0, 1], "
            f"got {type(label_smoothing).__name__} {label_smoothing!r}"
        )
        raise TypeError(msg)
    value = float(label_smoothing)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        msg = f"{func}: `label_smoothing` must be in [0, 1], got {value!r}"
        raise ValueError(msg)
    return value


def check_ignore_index(func: str, ignore_index: Any) -> int:
    """``ignore_index`` must be an int (not a bool, not a float)."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        msg = (
            f"{func}: `ignore_index` must be an int, got {type(ignore_index).__name__} "
            f"{ignore_index!r}"
        )
        raise TypeError(msg)
    return int(ignore_index)


def shapes_match(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal shapes, where an unknown length matches any length (checked at compute)."""
    return len(a) == len(b) and all(
        m == n or not (is_known(m) and is_known(n)) for m, n in zip(a, b, strict=True)
    )


def known_size(shape: tuple[Any, ...]) -> int | None:
    """The number of elements of ``shape``, or None when a length is unknown."""
    size = 1
    for n in shape:
        if not is_known(n):
            return None
        size *= int(n)
    return size


def check_known_axes(func: str, name: str, x: Any, axes: tuple[int, ...]) -> None:
    """The axes reduced over must have known lengths (Dask: unknown chunk sizes)."""
    unknown = [a for a in axes if not is_known(x.shape[a])]
    if unknown:
        msg = (
            f"{func}: `{name}` has unknown chunk sizes (shape {tuple(x.shape)}) along axis "
            f"{unknown[0]}, which is reduced over; call `{name}.compute_chunk_sizes()` first "
            "(other axes may stay unknown)"
        )
        raise ValueError(msg)


def check_ignore_index_for_kind(func: str, kind: str, ignore_index: int) -> None:
    """``ignore_index`` must be negative with probability targets (``kind == "prob"``), as torch."""
    if kind == "prob" and ignore_index >= 0:
        msg = (
            f"{func}: `ignore_index` ({ignore_index}) cannot be used with probability targets; "
            "leave it at a negative value such as the default -100"
        )
        raise ValueError(msg)


def class_axis(func: str, logits_name: str, logits: Any, axis: Any) -> int:
    """The class axis of ``logits`` as a non-negative int; 0-d logits are rejected."""
    if logits.ndim == 0:
        msg = (
            f"{func}: `{logits_name}` must have at least one dimension (the class axis), "
            "got a 0-dimensional array"
        )
        raise ValueError(msg)
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        msg = f"{func}: `axis` must be an int (the class axis), got {axis!r}"
        raise TypeError(msg)
    (ax,) = normalize_axes(func, int(axis), logits.ndim, allow_none=False)
    check_known_axes(func, logits_name, logits, (ax,))
    return ax


def target_kind(func: str, logits_name: str, logits: Any, target: Any, axis: int, xp: Any) -> str:
    """Classify ``target`` as ``"index"`` (class indices) or ``"prob"`` (probabilities).

    Checks its shape and dtype against ``logits``.
    """
    index_shape = tuple(s for i, s in enumerate(logits.shape) if i != axis)
    prob_shape = tuple(logits.shape)
    shape = tuple(target.shape)
    if is_bool_dtype(xp, target.dtype):
        msg = (
            f"{func}: `target` must hold integer class indices (shape {index_shape}) or "
            f"floating probabilities (shape {prob_shape}), got a bool array"
        )
        raise TypeError(msg)
    if shapes_match(shape, prob_shape):
        if not is_real_floating(xp, target.dtype):
            msg = (
                f"{func}: `target` with the shape of `{logits_name}` {prob_shape} is read as "
                f"class probabilities and must be floating, got dtype {target.dtype}; class "
                f"indices need shape {index_shape}"
            )
            raise TypeError(msg)
        return "prob"
    if shapes_match(shape, index_shape):
        if not is_integer_dtype(xp, target.dtype):
            msg = (
                f"{func}: `target` of shape {index_shape} holds class indices and must have "
                f"an integer dtype, got {target.dtype}; probabilities need the shape of "
                f"`{logits_name}` {prob_shape}"
            )
            raise TypeError(msg)
        return "index"
    msg = (
        f"{func}: `target` must have shape {index_shape} (class indices) or {prob_shape} "
        f"(probabilities), got {shape}"
    )
    fits = [
        a
        for a in range(len(prob_shape))
        if a != axis and shapes_match(shape, prob_shape[:a] + prob_shape[a + 1 :])
    ]
    if fits:
        msg += (
            f"; it fits class indices with the class axis at {fits[0]}: pass `axis={fits[0]}`"
            + (" (torch's (N, C, d...) layout)" if fits[0] == 1 else "")
        )
    raise ValueError(msg)


def check_weight(func: str, weight: Any, n_classes: int, xp: Any) -> None:
    """``weight`` must be a floating or integer array of shape ``(C,)``."""
    if tuple(weight.shape) != (n_classes,):
        msg = f"{func}: `weight` must have shape ({n_classes},) (C,), got {tuple(weight.shape)}"
        raise ValueError(msg)
    if not (is_real_floating(xp, weight.dtype) or is_integer_dtype(xp, weight.dtype)):
        msg = f"{func}: `weight` must be a real (floating or integer) array, got dtype {weight.dtype}"
        raise TypeError(msg)


def check_broadcastable(func: str, name: str, arr: Any, shape: tuple[int, ...]) -> None:
    """``arr`` must broadcast to ``shape`` without changing it."""
    ashape = tuple(arr.shape)
    ok = len(ashape) <= len(shape) and all(
        a == 1 or shapes_match((a,), (s,)) for a, s in zip(ashape[::-1], shape[::-1], strict=False)
    )
    if not ok:
        msg = (
            f"{func}: `{name}` of shape {ashape} is not broadcastable to the logits' shape {shape}"
        )
        raise ValueError(msg)
