"""``--backend`` and ``--device`` to an array namespace, a device and two converters.

Everything backend-specific in the demo lives here: how a NumPy array becomes an
array of the chosen library on the chosen device (once, before training), and how
results come back to NumPy (once per epoch). The training code itself only sees the
array API namespace.

A backend whose package is not installed raises :class:`BackendUnavailableError`
with the ``pip install 'xsoftmax[extra]'`` line that fixes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


def _as_is(func: F) -> F:
    return func


BACKENDS = ("numpy", "torch", "jax", "cupy", "dask", "array-api-strict")
"""The names ``--backend`` accepts."""

EXTRAS = {
    "numpy": None,
    "torch": "torch",
    "jax": "jax",
    "cupy": "cupy",
    "dask": "dask",
    "array-api-strict": "strict",
}
"""The optional-dependency group of ``pyproject.toml`` that installs each backend."""

DASK_ROW_CHUNKS = 4
"""Dask arrays are split into this many row chunks (at least one row each)."""


class BackendUnavailableError(RuntimeError):
    """The backend or the device asked for cannot be used on this machine."""


@dataclass(frozen=True)
class ArrayBackend:
    """One array library on one device, as the demo uses it.

    Attributes
    ----------
    name : str
        The ``--backend`` name.
    xp : module
        The array API namespace (``array_api_compat.numpy``, ``jax.numpy``, ...).
    device : object
        The library's own device object, or ``None`` for NumPy and Dask.
    device_label : str
        The device in words, for the report.
    lazy : bool
        Whether arrays are lazy (Dask): results exist only after :meth:`fetch`.
    compile : callable
        Applied to the training step and the evaluation: ``jax.jit`` for JAX (one
        compiled program instead of one per primitive in eager mode); the function
        itself for every other backend.
    """

    name: str
    xp: Any
    device: Any
    device_label: str
    _convert: Callable[[np.ndarray], Any]
    _to_numpy: Callable[[Any], np.ndarray]
    _compute: Callable[..., tuple[Any, ...]] | None = None
    _persist: Callable[..., tuple[Any, ...]] | None = None
    _context: Callable[[], contextlib.AbstractContextManager[Any]] = field(
        default=contextlib.nullcontext
    )
    lazy: bool = False
    compile: Callable[[Any], Any] = field(default=_as_is)

    def asarray(self, a: np.ndarray) -> Any:
        """Convert a NumPy array to this library, on this device, keeping its dtype."""
        with self._context():
            return self._convert(np.ascontiguousarray(a))

    def fetch(self, *arrays: Any) -> tuple[np.ndarray, ...]:
        """Bring arrays back to NumPy; a lazy backend computes them all in one go."""
        with self._context():
            if self._compute is not None:
                arrays = self._compute(*arrays)
            return tuple(np.asarray(self._to_numpy(a)) for a in arrays)

    def persist(self, *arrays: Any) -> tuple[Any, ...]:
        """Lazy backends: compute ``arrays`` and keep them as the backend's arrays.

        This cuts the task graph that later operations build on. Eager backends
        return the arrays unchanged.
        """
        if self._persist is None:
            return arrays
        with self._context():
            return tuple(self._persist(*arrays))

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make this backend's device current (CuPy needs it for its kernels)."""
        with self._context():
            yield


def _missing(name: str, exc: ImportError) -> NoReturn:
    extra = EXTRAS[name]
    msg = (
        f"--backend {name} needs a package that is not installed ({exc}). "
        f"Install it with: pip install 'xsoftmax[{extra}]'"
    )
    raise BackendUnavailableError(msg) from exc


def _bad_device(name: str, device: str, why: str, exc: BaseException | None = None) -> NoReturn:
    first_line = why.strip().splitlines()[0] if why.strip() else why
    msg = f"--backend {name}: cannot use --device {device!r}: {first_line}"
    raise BackendUnavailableError(msg) from exc


def _cpu_only(name: str, device: str | None) -> None:
    if device not in (None, "cpu"):
        _bad_device(name, device, f"{name} runs on the CPU only; use --device cpu")


def _split_index(spec: str) -> tuple[str, int | None]:
    """``"gpu:1"`` -> ``("gpu", 1)``; ``"gpu"`` -> ``("gpu", None)``; ``"1"`` -> ``("", 1)``."""
    kind, _, index = spec.partition(":")
    if not index and kind.isdigit():
        return "", int(kind)
    if not index:
        return kind, None
    if not index.isdigit():
        msg = f"device index {index!r} is not a non-negative integer"
        raise ValueError(msg)
    return kind, int(index)


def _numpy(device: str | None, float64: bool) -> ArrayBackend:
    _cpu_only("numpy", device)
    import array_api_compat.numpy as xp

    return ArrayBackend("numpy", xp, None, "cpu", np.asarray, np.asarray)


def _torch(device: str | None, float64: bool) -> ArrayBackend:
    try:
        import array_api_compat.torch as xp
        import torch
    except ImportError as exc:
        _missing("torch", exc)
    spec = device or "cpu"
    try:
        dev = torch.device(spec)
        if dev.type == "meta":
            msg = "the meta device holds no data to train on"
            raise ValueError(msg)
        torch.empty(1, device=dev)  # fails here when the device is absent
    except (RuntimeError, AssertionError, ValueError, NotImplementedError) as exc:
        _bad_device("torch", spec, str(exc), exc)

    def convert(a: np.ndarray) -> Any:
        return torch.asarray(a, device=dev)

    def to_numpy(a: Any) -> np.ndarray:
        return a.detach().cpu().numpy()

    return ArrayBackend("torch", xp, dev, str(dev), convert, to_numpy)


def _jax(device: str | None, float64: bool) -> ArrayBackend:
    try:
        import jax
    except ImportError as exc:
        _missing("jax", exc)
    if float64:
        # without x64, JAX silently turns float64 into float32
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as xp

    if device is None:
        dev = jax.devices()[0]
    else:
        try:
            platform, index = _split_index(device)
            devices = jax.devices(platform or None)
            dev = devices[0 if index is None else index]
        except (RuntimeError, ValueError) as exc:
            _bad_device("jax", device, str(exc), exc)
        except IndexError as exc:
            why = f"JAX sees {len(devices)} {platform} device(s): {devices}"
            _bad_device("jax", device, why, exc)

    def convert(a: np.ndarray) -> Any:
        return jax.device_put(a, dev)

    return ArrayBackend("jax", xp, dev, str(dev), convert, np.asarray, compile=jax.jit)


def _cupy(device: str | None, float64: bool) -> ArrayBackend:
    try:
        import array_api_compat.cupy as xp
        import cupy
    except ImportError as exc:
        _missing("cupy", exc)
    spec = device or "cuda"
    try:
        kind, index = _split_index(spec)
        if kind not in ("", "cuda", "gpu"):
            msg = "CuPy devices are written cuda, cuda:N, gpu:N or N"
            raise ValueError(msg)
        count = cupy.cuda.runtime.getDeviceCount()
        number = cupy.cuda.runtime.getDevice() if index is None else index
        if number >= count:
            msg = f"CuPy sees {count} CUDA device(s)"
            raise ValueError(msg)
        dev = cupy.cuda.Device(number)
    except (ValueError, RuntimeError) as exc:  # CUDARuntimeError is a RuntimeError
        _bad_device("cupy", spec, str(exc), exc)

    def context() -> contextlib.AbstractContextManager[Any]:
        return cupy.cuda.Device(number)

    return ArrayBackend(
        "cupy", xp, dev, f"cuda:{number}", cupy.asarray, cupy.asnumpy, _context=context
    )


def _dask(device: str | None, float64: bool) -> ArrayBackend:
    _cpu_only("dask", device)
    try:
        import array_api_compat.dask.array as xp
        import dask
        import dask.array as da
    except ImportError as exc:
        _missing("dask", exc)

    def convert(a: np.ndarray) -> Any:
        rows = max(1, -(-a.shape[0] // DASK_ROW_CHUNKS)) if a.ndim else ()
        chunks = (rows, *a.shape[1:]) if a.ndim else ()
        return da.from_array(a, chunks=chunks)

    return ArrayBackend(
        "dask",
        xp,
        None,
        "cpu",
        convert,
        np.asarray,
        _compute=dask.compute,
        _persist=dask.persist,
        lazy=True,
    )


def _strict(device: str | None, float64: bool) -> ArrayBackend:
    try:
        import array_api_strict as xp
    except ImportError as exc:
        _missing("array-api-strict", exc)
    spec = "CPU_DEVICE" if device in (None, "cpu") else device
    try:
        dev = xp.Device(spec)
    except ValueError as exc:
        _bad_device("array-api-strict", spec, str(exc), exc)
    cpu = xp.Device("CPU_DEVICE")

    def convert(a: np.ndarray) -> Any:
        return xp.asarray(a, device=dev)

    def to_numpy(a: Any) -> np.ndarray:
        return np.asarray(a.to_device(cpu))

    return ArrayBackend("array-api-strict", xp, dev, spec, convert, to_numpy)


_LOADERS: dict[str, Callable[[str | None, bool], ArrayBackend]] = {
    "numpy": _numpy,
    "torch": _torch,
    "jax": _jax,
    "cupy": _cupy,
    "dask": _dask,
    "array-api-strict": _strict,
}


def resolve_backend(
    name: str, device: str | None = None, *, float64: bool = False
) -> ArrayBackend:
    """The array backend called ``name`` on ``device``.

    Parameters
    ----------
    name : str
        One of :data:`BACKENDS`.
    device : str, optional
        ``cpu``, ``cuda``, ``cuda:1`` (torch, CuPy), ``gpu:0`` (JAX), ``device1``
        (array-api-strict's second device); by default the library's default device.
    float64 : bool, optional
        Whether float64 arrays will be used (JAX needs x64 mode switched on for them).

    Returns
    -------
    ArrayBackend

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`BACKENDS`.
    BackendUnavailableError
        If the backend's package is not installed (the message names the extra to
        install) or the device is not available.
    """
    if name not in _LOADERS:
        msg = f"`name` must be one of {', '.join(BACKENDS)}; got {name!r}"
        raise ValueError(msg)
    return _LOADERS[name](device, float64)
