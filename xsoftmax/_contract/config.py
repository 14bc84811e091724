"""Run-time switches: whether backend-specific fast paths may be used.

Every public function picks a native fast path only where it was measured to
pay; :func:`fast_paths_disabled` forces the generic, standard-only kernels so
that tests can hold each fast path equal to the generic path.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()


def fast_paths_enabled() -> bool:
    """Whether backend-specific fast paths may be used in this thread.

    Examples
    --------
    >>> from xsoftmax._contract.config import fast_paths_enabled
    >>> fast_paths_enabled()
    True
    """
    return not getattr(_state, "disabled", False)


@contextlib.contextmanager
def fast_paths_disabled() -> Iterator[None]:
    """Context manager under which every public function runs the generic kernel.

    Examples
    --------
    >>> from xsoftmax._contract.config import fast_paths_disabled, fast_paths_enabled
    >>> with fast_paths_disabled():
    ...     fast_paths_enabled()
    False
    """
    previous = getattr(_state, "disabled", False)
    _state.disabled = True
    try:
        yield
    finally:
        _state.disabled = previous
