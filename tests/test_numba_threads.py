"""The numba kernels called from many Python threads, under every threading layer here.

numba's ``workqueue`` layer (the one it uses where neither TBB nor OpenMP is installed)
aborts the process when two threads launch parallel loops at once. Each layer runs in
a fresh process (numba picks its layer once per process); the threads' results must
equal a single-threaded run, and the process must exit normally.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba", reason="numba (the optional `fast` extra) is not installed")
pytest.importorskip("numpy")

SCRIPT = textwrap.dedent(
    """
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import numba
    import numpy as np

    import xsoftmax
    from xsoftmax._kernels.numba import rows

    rows._PARALLEL_MIN_SIZE = 1  # every row kernel takes its parallel variant
    rng = np.random.default_rng(0)
    h = rng.standard_normal((128, 32))
    w = rng.standard_normal((600, 32))
    t = rng.integers(0, 600, 128)
    x = rng.standard_normal((64, 700))

    def work(_):
        loss, dh, dw, _db = xsoftmax.linear_cross_entropy_with_grad(h, w, t, chunk_size=50)
        ce, g = xsoftmax.cross_entropy_with_grad(x, t[:64])
        return float(loss), float(np.abs(dh).sum()), float(ce), float(np.abs(g).sum()), float(
            xsoftmax.log_softmax(x).sum()
        )

    alone = work(0)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(24)))
    assert all(r == alone for r in results), (alone, results)
    print(numba.threading_layer())
    """
)


def _layers() -> list[str]:
    layers = ["workqueue"]
    try:
        import numba.np.ufunc.omppool

        layers.append("omp")
    except ImportError:
        pass
    try:
        import numba.np.ufunc.tbbpool  # noqa: F401

        layers.append("tbb")
    except ImportError:
        pass
    return layers


@pytest.mark.parametrize("layer", _layers())
def test_threads_share_the_kernels(layer: str) -> None:
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer}
    env.pop("XSOFTMAX_NO_NUMBA", None)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip().endswith(layer)
