"""numba's parallel kernels called from many Python threads, safely.

numba runs ``parallel=True`` loops on a threading layer: TBB or OpenMP where they
are installed, else its own ``workqueue``. The workqueue layer is not thread-safe:
two Python threads that launch parallel loops at once make numba abort the whole
process (``SIGABRT``). A thread pool, or Dask's threaded scheduler, does exactly
that. So every parallel launch goes through :func:`parallel_guard`: one launch at a
time unless numba reports a thread-safe layer (``tbb`` or ``omp``). Serial kernels
need no guard.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

_LOCK = threading.Lock()
_SAFE_LAYERS = ("tbb", "omp")
_state: dict[str, bool] = {}


def _layer_is_thread_safe() -> bool:
    """Whether numba's active threading layer may be entered by several threads at once.

    Before the first parallel launch numba has not chosen its layer: not known safe.
    Only a safe answer is kept (the layer cannot change once chosen).
    """
    if _state.get("safe"):
        return True
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return False
    safe = layer in _SAFE_LAYERS
    if safe:
        _state["safe"] = True
    return safe


def parallel_guard() -> contextlib.AbstractContextManager[Any]:
    """A context under which one parallel numba launch may run.

    Examples
    --------
    >>> from xsoftmax._kernels.numba.threads import parallel_guard
    >>> with parallel_guard():
    ...     pass
    """
    if _layer_is_thread_safe():
        return contextlib.nullcontext()
    return _LOCK


class GuardedKernels:
    """A kernel module whose parallel functions (named in ``parallel``) run under the guard.

    Examples
    --------
    >>> import math
    >>> from xsoftmax._kernels.numba.threads import GuardedKernels
    >>> GuardedKernels(math, ("sqrt",)).sqrt(4.0)
    2.0
    """

    def __init__(self, module: ModuleType, parallel: tuple[str, ...]) -> None:
        self._module = module
        # every function is an instance attribute: a call costs no __getattr__
        for name in dir(module):
            if name.startswith("_"):
                continue
            fn = getattr(module, name)
            setattr(self, name, _guarded(fn) if name in parallel else fn)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` called under :func:`parallel_guard`."""

    def call(*args: Any) -> Any:
        with parallel_guard():
            return fn(*args)

    return call
