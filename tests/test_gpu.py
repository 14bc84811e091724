"""CuPy and torch on CUDA: smoke and agreement tests (skipped, with the reason, without a GPU).

The whole property suite also runs on these backends when a GPU session selects
them (``XSOFTMAX_BACKENDS=cupy`` / ``torch-cuda``); these tests add what only a
GPU shows: outputs stay on the GPU, results equal the NumPy answer, out-of-range
class indices raise ``ValueError`` instead of a device-side assert, and the
analytic gradient equals CUDA autograd.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import SKIPPED, get_backend
from strategies import FLOAT_INFO
from test_properties import assert_matches

import xsoftmax

GPU_BACKENDS = ("cupy", "torch-cuda")
N, C = 6, 5


def _gpu_backend(name: str) -> Any:
    backend = get_backend(name)
    if backend is None:
        why = SKIPPED.get(name, "not among the backends of this run (XSOFTMAX_BACKENDS)")
        pytest.skip(f"{name}: {why}")
    return backend


def _device_of(a: Any) -> str:
    dev = getattr(a, "device", None)
    return str(dev)


def _cases(dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, C)) * 5
    fmax = float(np.finfo(dtype).max)
    x[0] = [fmax, -fmax, 0.0, 1.0, -1.0]
    t = rng.integers(0, C, size=N)
    t[1] = -100
    return {
        "x": x.astype(dtype),
        "t": t,
        "pt": rng.dirichlet(np.ones(C), size=N).astype(dtype),
        "w": rng.uniform(0.5, 2.0, size=C).astype(dtype),
        "mask": rng.uniform(size=(N, C)) < 0.7,
        "y": rng.uniform(size=(N, C)).astype(dtype),
    }


CALLS = {
    "softmax": lambda a: xsoftmax.softmax(a["x"]),
    "softmax where": lambda a: xsoftmax.softmax(a["x"], where=a["mask"]),
    "log_softmax": lambda a: xsoftmax.log_softmax(a["x"], axis=0),
    "logsumexp": lambda a: xsoftmax.logsumexp(a["x"], axis=-1, b=a["w"], return_sign=True),
    "cross_entropy": lambda a: xsoftmax.cross_entropy(
        a["x"], a["t"], weight=a["w"], label_smoothing=0.1, reduction="none"
    ),
    "cross_entropy prob": lambda a: xsoftmax.cross_entropy(a["x"], a["pt"]),
    "cross_entropy_with_grad": lambda a: xsoftmax.cross_entropy_with_grad(a["x"], a["t"]),
    "nll_loss": lambda a: xsoftmax.nll_loss(-abs(a["x"]), a["t"], reduction="sum"),
    "bce": lambda a: xsoftmax.binary_cross_entropy_with_logits(
        a["x"], a["y"], pos_weight=a["w"], reduction="none"
    ),
}


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("backend_name", GPU_BACKENDS)
def test_gpu_matches_numpy(backend_name: str, name: str, dtype: str) -> None:
    """Every function on the GPU returns GPU arrays equal to the NumPy answer."""
    backend = _gpu_backend(backend_name)
    np_in = _cases(dtype)
    gpu_in = {k: backend.asarray(v) for k, v in np_in.items()}
    got = CALLS[name](gpu_in)
    expected = CALLS[name](np_in)
    got_outs = got if isinstance(got, tuple) else (got,)
    exp_outs = expected if isinstance(expected, tuple) else (expected,)
    device = _device_of(gpu_in["x"])
    for g, e in zip(got_outs, exp_outs, strict=True):
        assert _device_of(g) == device, f"{name}: output on {_device_of(g)}, input on {device}"
        assert str(g.dtype).rsplit(".", 1)[-1] == str(np.asarray(e).dtype)
        assert_matches(backend.to_numpy(g), np.asarray(e, np.float64), dtype, ulps=16, what=name)


@pytest.mark.parametrize("bad", [C, -1])
@pytest.mark.parametrize("backend_name", GPU_BACKENDS)
def test_gpu_out_of_range_target_raises(backend_name: str, bad: int) -> None:
    """An out-of-range class index raises ValueError on the GPU (no device-side assert)."""
    backend = _gpu_backend(backend_name)
    np_in = _cases("float32")
    t = np_in["t"].copy()
    t[2] = bad
    x = backend.asarray(np_in["x"])
    with pytest.raises(ValueError, match="target"):
        xsoftmax.cross_entropy(x, backend.asarray(t))
    # the device is still usable afterwards
    assert np.isfinite(backend.to_numpy(xsoftmax.cross_entropy(x, backend.asarray(np_in["t"]))))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_torch_cuda_autograd_matches_analytic_gradient(dtype: str) -> None:
    """CUDA autograd through cross_entropy equals cross_entropy_with_grad, finite at +-max."""
    backend = _gpu_backend("torch-cuda")
    np_in = _cases("float32")
    x = backend.asarray(np_in["x"], dtype).detach().requires_grad_(True)
    t = backend.asarray(np_in["t"])
    loss = xsoftmax.cross_entropy(x, t, label_smoothing=0.2)
    loss.backward()
    _, grad = xsoftmax.cross_entropy_with_grad(x.detach(), t, label_smoothing=0.2)
    auto = backend.to_numpy(x.grad)
    assert np.all(np.isfinite(auto))
    eps = FLOAT_INFO[dtype].eps if dtype in ("float16", "bfloat16") else 1e-6
    np.testing.assert_allclose(auto, backend.to_numpy(grad), rtol=8 * eps, atol=8 * eps)
