"""The array backends the test suite runs on, chosen by ``XSOFTMAX_BACKENDS``.

Each backend knows how to turn a NumPy array into one of its own arrays (on its
device) and back. Tests draw inputs in NumPy, convert them with
:meth:`Backend.asarray`, call xsoftmax and compare :meth:`Backend.to_numpy` of the
result with an independent oracle.

``XSOFTMAX_BACKENDS`` is a comma-separated list of names from :data:`ALL_BACKENDS`;
unset (or ``all``) means every CPU backend that imports plus the GPU backends when
a GPU is present. A backend that was asked for by name and cannot be loaded is an
error, never a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CPU_BACKENDS = ("numpy", "array-api-strict", "torch", "jax", "dask")
GPU_BACKENDS = ("cupy", "torch-cuda")
ALL_BACKENDS = CPU_BACKENDS + GPU_BACKENDS


class BackendUnavailable(Exception):
    """A backend cannot be loaded on this machine (missing package or no GPU)."""


@dataclass(frozen=True)
class Backend:
    """One array library (and device) that the tests run xsoftmax on."""

    name: str
    xp: Any
    _asarray: Callable[[np.ndarray], Any]
    _to_numpy: Callable[[Any], np.ndarray]
    lazy: bool = False
    autograd: bool = False
    half_dtypes: tuple[str, ...] = ()
    device: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def asarray(self, a: Any, dtype: str | None = None) -> Any:
        """Convert a NumPy array (or scalar) to this backend, optionally to ``dtype`` (a name)."""
        a = np.asarray(a)
        if dtype is not None and dtype not in ("bfloat16",):
            a = a.astype(dtype)
        out = self._asarray(a)
        if dtype == "bfloat16":
            out = self.xp.astype(out, self.dtype("bfloat16"))
        return out

    def writable(self, a: Any, dtype: str | None = None) -> Any:
        """Like :meth:`asarray`, but an array the caller (and a buggy callee) can write into.

        The numpy backend's :meth:`asarray` returns read-only arrays, so a write into an
        input raises there; here NumPy arrays keep ``WRITEABLE`` set (Dask arrays are
        built on writable NumPy chunks already; JAX arrays are immutable), so a test can
        see such a write only by comparing values before and after.
        """
        out = self.asarray(a, dtype=dtype)
        if isinstance(out, np.ndarray) and not out.flags.writeable:
            out = np.array(out, copy=True)
        if tuple(out.shape) != np.shape(a):
            out = self.xp.reshape(out, np.shape(a))
        return out

    def to_numpy(self, a: Any) -> np.ndarray:
        """Bring an array of this backend back to a NumPy array (bfloat16 as float32)."""
        return np.asarray(self._to_numpy(a))

    def dtype(self, name: str) -> Any:
        """This backend's dtype object called ``name`` (``"float32"``, ``"bfloat16"``...)."""
        if name == "bfloat16":
            if "bfloat16" not in self.half_dtypes:
                raise BackendUnavailable(f"{self.name} has no bfloat16")
            return self.extra["bfloat16"]
        found = getattr(self.xp, name, None)
        return np.dtype(name) if found is None else found

    def float_dtypes(self) -> tuple[str, ...]:
        """Every floating dtype name this backend supports, half precision included."""
        return (*self.half_dtypes, "float32", "float64")

    def __repr__(self) -> str:
        return self.name


def _numpy() -> Backend:
    import array_api_compat.numpy as xp

    def asarray(a: np.ndarray) -> np.ndarray:
        # read-only copies: any write into an input raises in every numpy test
        out = np.array(a, copy=True)
        out.setflags(write=False)
        return out

    return Backend("numpy", xp, asarray, np.asarray, half_dtypes=("float16",))


def _strict() -> Backend:
    import array_api_strict as xp

    def to_numpy(a: Any) -> np.ndarray:
        return np.asarray(np.from_dlpack(a))

    return Backend("array-api-strict", xp, xp.asarray, to_numpy)


def _torch(device: str) -> Backend:
    import array_api_compat.torch as xp
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("torch-cuda: no CUDA device (torch.cuda.is_available() is False)")
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    def asarray(a: np.ndarray) -> Any:
        # a fresh contiguous copy; keeps 0-d arrays 0-d (np.ascontiguousarray would not)
        return torch.asarray(np.array(a, copy=True, order="C"), device=device)

    def to_numpy(a: Any) -> np.ndarray:
        a = a.detach()
        if a.dtype == torch.bfloat16:
            a = a.float()
        return a.cpu().numpy()

    name = "torch" if device == "cpu" else "torch-cuda"
    return Backend(
        name,
        xp,
        asarray,
        to_numpy,
        autograd=True,
        half_dtypes=("float16", "bfloat16"),
        device=torch.device(device),
        extra={"bfloat16": torch.bfloat16, "torch": torch},
    )


def _jax() -> Backend:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return Backend(
        "jax",
        jnp,
        jnp.asarray,
        np.asarray,
        autograd=True,
        half_dtypes=("float16", "bfloat16"),
        extra={"bfloat16": jnp.bfloat16, "jax": jax},
    )


def _dask() -> Backend:
    import array_api_compat.dask.array as xp
    import dask.array as da

    def asarray(a: np.ndarray) -> Any:
        # chunk every axis in two so that reductions cross chunk boundaries
        chunks = tuple(max(1, (n + 1) // 2) for n in a.shape)
        return da.from_array(np.array(a), chunks=chunks or "auto")

    def to_numpy(a: Any) -> np.ndarray:
        return np.asarray(a.compute())

    return Backend("dask", xp, asarray, to_numpy, lazy=True, half_dtypes=("float16",))


def _cupy() -> Backend:
    try:
        import array_api_compat.cupy as xp
        import cupy
    except ImportError as exc:  # pragma: no cover - GPU machines only
        raise BackendUnavailable(f"cupy does not import: {exc}") from exc
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:  # pragma: no cover
            raise BackendUnavailable("cupy: no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError as exc:  # pragma: no cover
        raise BackendUnavailable(f"cupy: no CUDA device ({exc})") from exc
    return Backend(
        "cupy", xp, cupy.asarray, cupy.asnumpy, half_dtypes=("float16",)
    )  # pragma: no cover


_LOADERS: dict[str, Callable[[], Backend]] = {
    "numpy": _numpy,
    "array-api-strict": _strict,
    "torch": lambda: _torch("cpu"),
    "jax": _jax,
    "dask": _dask,
    "cupy": _cupy,
    "torch-cuda": lambda: _torch("cuda"),
}


def requested_backends() -> tuple[list[str], bool]:
    """The backend names to run, and whether they were asked for explicitly."""
    raw = os.environ.get("XSOFTMAX_BACKENDS", "").strip()
    if raw in ("", "all"):
        return list(ALL_BACKENDS), False
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_BACKENDS]
    if unknown:
        msg = f"XSOFTMAX_BACKENDS names unknown backends {unknown}; known: {list(ALL_BACKENDS)}"
        raise ValueError(msg)
    return names, True


def load_backends() -> tuple[list[Backend], dict[str, str]]:
    """Load the requested backends; returns (loaded, {name: why skipped}).

    Raises ``RuntimeError`` when an explicitly requested backend cannot be loaded.
    """
    names, explicit = requested_backends()
    loaded: list[Backend] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            loaded.append(_LOADERS[name]())
        except (ImportError, BackendUnavailable) as exc:
            if explicit:
                msg = f"backend {name!r} was requested by XSOFTMAX_BACKENDS but cannot be loaded: {exc}"
                raise RuntimeError(msg) from exc
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return loaded, skipped
