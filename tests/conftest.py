"""Shared fixtures: the backend matrix and Hypothesis profiles.

The ``backend`` fixture is parametrized over every loaded backend (see
``tests/_backends.py``); ``XSOFTMAX_BACKENDS`` (set by each nox session) selects
them. Backends that were not asked for and cannot load are reported once in the
pytest header with the reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

sys.path.insert(0, str(Path(__file__).parent))

from _backends import Backend, load_backends

BACKENDS, SKIPPED = load_backends()

settings.register_profile(
    "ci",
    max_examples=25,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "noshrink",  # report the first failing example at once (slow backends)
    parent=settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    """On Dask, NumPy's floating-point warnings surface at compute time, by design.

    xsoftmax silences them for eager NumPy (``np.errstate``), but a lazy graph
    runs later, outside any state the library can set; extreme finite logits
    (overflowing ``x - max`` or sums) then warn while giving the specified values.
    """
    if any(b.name == "dask" for b in BACKENDS):
        config.addinivalue_line("filterwarnings", "ignore::RuntimeWarning:numpy")
    # SciPy's own markers, on the classes that tests/test_scipy_logsumexp.py runs
    for marker in ("array_api_backends", "skip_xp_backends", "xfail_xp_backends"):
        config.addinivalue_line("markers", f"{marker}: SciPy's test_logsumexp.py marker")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = ["xsoftmax backends: " + ", ".join(b.name for b in BACKENDS)]
    lines += [f"xsoftmax backend skipped: {name}: {why}" for name, why in SKIPPED.items()]
    return lines


def _backend_params() -> list:
    params = [pytest.param(b, id=b.name) for b in BACKENDS]
    if not params:
        params = [pytest.param(None, marks=pytest.mark.skip(reason="no backend loaded"))]
    return params


@pytest.fixture(params=_backend_params())
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each loaded backend in turn."""
    return request.param


def get_backend(name: str) -> Backend | None:
    """The loaded backend called ``name``, or None."""
    for b in BACKENDS:
        if b.name == name:
            return b
    return None
