"""SciPy's own ``scipy/special/tests/test_logsumexp.py``, run against xsoftmax.

The installed SciPy test classes (``TestLogSumExp``, ``TestSoftmax``,
``TestLogSoftmax``) are subclassed unchanged; only the module globals
``logsumexp``, ``softmax`` and ``log_softmax`` that their methods call are
replaced by thin adapters around xsoftmax, and the ``xp`` / ``devices`` fixtures
that SciPy's conftest would provide are defined here over the backends of this
session (``XSOFTMAX_BACKENDS``).

The adapters do only what SciPy's own front end does before its kernel, so that
the semantics under test are xsoftmax's:

* inputs are promoted as ``scipy._lib._array_api.xp_promote(a, b,
  force_floating=True)`` does (xsoftmax rejects integer ``x`` by contract, E1);
* SciPy's ``axis=None`` of softmax / log_softmax (the whole array) is every axis;
* a 0-d NumPy result is returned as a NumPy scalar (SciPy's ``out[()]``).

Deselected, each with its reason (see :data:`DESELECTED`): complex input, Python
lists and scalars (xsoftmax takes real floating arrays only). SciPy's
module-level ``test_wrap_radians`` tests a private SciPy helper, not these
functions, and is not collected. torch runs with float64 as its default dtype,
as SciPy's conftest sets it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _backends import CPU_BACKENDS
from conftest import BACKENDS

import xsoftmax

scipy_tests = pytest.importorskip("scipy.special.tests.test_logsumexp")
_array_api = pytest.importorskip("scipy._lib._array_api")

COMPLEX = "complex input: xsoftmax takes real floating arrays only (TypeError by contract)"
LIST_OR_SCALAR = (
    "a Python list or scalar: xsoftmax takes arrays only (docs/contract/errors.md E26)"
)

DESELECTED: dict[str, str] = {
    # complex
    "test_logsumexp_complex_sign": COMPLEX,
    "test_gh21610": COMPLEX,
    "test_gh21709_small_imaginary": COMPLEX,
    # lists and scalars
    "test_xp_invalid_input": LIST_OR_SCALAR,
    "test_array_like": LIST_OR_SCALAR,
    "test_softmax_scalar": LIST_OR_SCALAR,
    "test_softmax_array_like": LIST_OR_SCALAR,
    "test_log_softmax_scalar": LIST_OR_SCALAR,
    "test_log_softmax_array_like": LIST_OR_SCALAR,
}


def _complex_param(item_id: str) -> bool:
    """Parametrized cases with complex values: dtype names, complex infinities, ``1j``."""
    return "complex" in item_id or "j" in item_id.split("[", 1)[-1].replace("jax", "")


def _reason(name: str, params: str) -> str | None:
    if name in DESELECTED:
        return DESELECTED[name]
    if name in ("test_dtypes_a", "test_dtypes_ab", "test_gh22601_infinite_elements"):
        return COMPLEX if _complex_param(params) else None
    if name == "test_device" and "j" in params.replace("jax", "").replace("-", " "):
        return COMPLEX
    return None


# --------------------------------------------------------------------------------------
# the adapters
# --------------------------------------------------------------------------------------
def _promote(*arrays: Any) -> list[Any]:
    """SciPy's own input promotion (``xp_promote(..., force_floating=True)``)."""
    present = [a for a in arrays if a is not None]
    xp = _array_api.array_namespace(*present)
    out = _array_api.xp_promote(*present, force_floating=True, xp=xp)
    out = list(out) if isinstance(out, (tuple, list)) else [out]
    it = iter(out)
    return [None if a is None else next(it) for a in arrays]


def _scalar_if_numpy(r: Any) -> Any:
    return r[()] if isinstance(r, np.ndarray) and r.ndim == 0 else r


def _logsumexp(
    a: Any, axis: Any = None, b: Any = None, keepdims: bool = False, return_sign: bool = False
) -> Any:
    a, b = _promote(a, b) if b is not None else (_promote(a)[0], None)
    out = xsoftmax.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
    if return_sign:
        return _scalar_if_numpy(out[0]), _scalar_if_numpy(out[1])
    return _scalar_if_numpy(out)


def _all_axes(x: Any, axis: Any) -> Any:
    if axis is not None:
        return axis
    return 0 if x.ndim == 0 else tuple(range(x.ndim))


def _softmax(x: Any, axis: Any = None) -> Any:
    x = _promote(x)[0]
    return _scalar_if_numpy(xsoftmax.softmax(x, axis=_all_axes(x, axis)))


def _log_softmax(x: Any, axis: Any = None) -> Any:
    x = _promote(x)[0]
    return _scalar_if_numpy(xsoftmax.log_softmax(x, axis=_all_axes(x, axis)))


@pytest.fixture(autouse=True)
def _xsoftmax_in_scipy_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """SciPy's test methods call the module globals: point them at xsoftmax."""
    monkeypatch.setattr(scipy_tests, "logsumexp", _logsumexp)
    monkeypatch.setattr(scipy_tests, "softmax", _softmax)
    monkeypatch.setattr(scipy_tests, "log_softmax", _log_softmax)


# --------------------------------------------------------------------------------------
# the fixtures of SciPy's conftest, over this session's backends
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _torch_float64(name: str) -> Iterator[None]:
    if name != "torch":
        yield
        return
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture(params=[pytest.param(b, id=b.name) for b in BACKENDS if b.name in CPU_BACKENDS])
def xp(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The array namespace of each CPU backend, as SciPy's ``xp`` fixture gives it."""
    backend = request.param
    namespace = _array_api.array_namespace(backend.asarray(np.zeros(1)))
    with _torch_float64(backend.name), _array_api.default_xp(namespace):
        yield namespace


@pytest.fixture
def devices(xp: Any) -> Any:
    """Every device of the namespace (array-api-strict has one without float64)."""
    return xp.__array_namespace_info__().devices()


# --------------------------------------------------------------------------------------
# SciPy's classes, unchanged
# --------------------------------------------------------------------------------------
def _listed_parametrize(cls: type) -> None:
    """Parametrize values given as an iterator (``itertools.product``) as a list.

    pytest 9 deprecates iterators there (an error under ``-W error``), and an
    iterator would be spent by the first collection of the method.
    """
    for name in dir(cls):
        func = getattr(cls, name)
        marks = getattr(func, "pytestmark", None)
        if not name.startswith("test_") or not marks:
            continue
        func.pytestmark = [
            pytest.mark.parametrize(m.args[0], list(m.args[1]), *m.args[2:], **m.kwargs).mark
            if m.name == "parametrize" and not isinstance(m.args[1], (list, tuple))
            else m
            for m in marks
        ]


for _cls in (scipy_tests.TestLogSumExp, scipy_tests.TestSoftmax, scipy_tests.TestLogSoftmax):
    _listed_parametrize(_cls)


class TestLogSumExp(scipy_tests.TestLogSumExp):
    """``scipy.special.tests.test_logsumexp.TestLogSumExp`` on xsoftmax.logsumexp."""


class TestSoftmax(scipy_tests.TestSoftmax):
    """``scipy.special.tests.test_logsumexp.TestSoftmax`` on xsoftmax.softmax."""


class TestLogSoftmax(scipy_tests.TestLogSoftmax):
    """``scipy.special.tests.test_logsumexp.TestLogSoftmax`` on xsoftmax.log_softmax."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:  # pragma: no cover
    """Not a hook here (only conftest files have hooks); see :func:`_deselect`."""


@pytest.fixture(autouse=True)
def _deselect(request: pytest.FixtureRequest) -> None:
    """Skip the complex, list and scalar cases, each with its reason."""
    name = request.node.originalname if hasattr(request.node, "originalname") else ""
    params = request.node.name[len(name) :]
    reason = _reason(name, params)
    if reason is not None:
        pytest.skip(reason)
