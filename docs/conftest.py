"""pytest configuration for the `>>>` examples in docs/*.md (run by ``nox -s docs``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _restore_print_options() -> Iterator[None]:
    """Pages set NumPy's print options for their readers; undo it after each page."""
    saved = np.get_printoptions()
    yield
    np.set_printoptions(**saved)
