"""The public functions on GPU tensors reach the Triton kernels, and give the definition's numbers.

Without a GPU, the triton-interpret session sets ``TRITON_INTERPRET=1`` and
``XSOFTMAX_TRITON_CPU=1``, and the dispatch then sends CPU tensors to the Triton row
of its table, as it sends CUDA tensors on a GPU. Each call is checked twice: the
Triton entry points were called (counted through a wrapper), and the results and
gradients equal the definition (:func:`fast_paths_disabled`) in float64.

Interpreter vs GPU: the interpreter runs programs one after another and evaluates
float64 arithmetic with NumPy; on a GPU the same kernels run in parallel with the
same float64 operations (no float32 transcendental is used, see the PTX audit), so
equality with the definition is expected there too, which a device run would confirm.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
import pytest

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed (the `gpu` extra)", allow_module_level=True)
if not (os.environ.get("TRITON_INTERPRET") == os.environ.get("XSOFTMAX_TRITON_CPU") == "1"):
    pytest.skip(
        "runs in the triton-interpret session (TRITON_INTERPRET=1, XSOFTMAX_TRITON_CPU=1)",
        allow_module_level=True,
    )
torch = pytest.importorskip("torch")

import xsoftmax  # noqa: E402
from xsoftmax._contract.config import fast_paths_disabled  # noqa: E402
from xsoftmax._kernels.triton import entry  # noqa: E402


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counted: dict[str, int] = {}
    for name in ("softmax_family", "logsumexp", "cross_entropy"):
        original = getattr(entry, name)

        def counting(*args: Any, _name: str = name, _fn: Any = original, **kw: Any) -> Any:
            counted[_name] = counted.get(_name, 0) + 1
            return _fn(*args, **kw)

        monkeypatch.setattr(entry, name, counting)
    return counted


def _x() -> Any:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 37, generator=gen, dtype=torch.float64) * 30
    x[1, 3] = -torch.inf
    x[4, :] = 1e300  # ties at a huge value
    return x


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_rows_reach_triton(calls: dict[str, int], func: str) -> None:
    x = _x()
    kw = {"axis": -1} if func == "logsumexp" else {}
    xr = x.clone().requires_grad_(True)
    got = getattr(xsoftmax, func)(xr, **kw)
    up = torch.linspace(-1.0, 2.0, got.numel(), dtype=torch.float64).reshape(got.shape)
    (got * up).sum().backward()
    key = "logsumexp" if func == "logsumexp" else "softmax_family"
    assert calls.get(key, 0) >= 1, f"{func} did not reach the Triton kernels: {calls}"
    xd = x.clone().requires_grad_(True)
    with fast_paths_disabled():
        want = getattr(xsoftmax, func)(xd, **kw)
    (want * up).sum().backward()
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=4e-16, atol=0)
    # gradients: p * (g - Σ p g) cancels; the two sides round it differently, to within a
    # few ulps of the gradient's scale
    scale = float(xd.grad.abs().max())
    np.testing.assert_allclose(xr.grad.numpy(), xd.grad.numpy(), rtol=1e-13, atol=1e-15 * scale)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"label_smoothing": 0.1, "weight": "w"},
        {"softcap": 5.0, "z_loss": 0.1},
        {"reduction": "none", "ignore_index": 2},
    ],
    ids=["plain", "smoothing-weight", "softcap-zloss", "none-ignore"],
)
def test_cross_entropy_reaches_triton(calls: dict[str, int], options: dict[str, Any]) -> None:
    x = _x()
    t = torch.tensor([0, 5, 2, 36, 7, 2])
    kw = dict(options)
    if kw.get("weight") == "w":
        kw["weight"] = torch.linspace(0.5, 2.0, 37, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    got = xsoftmax.cross_entropy(xr, t, **kw)
    got.sum().backward()
    if "label_smoothing" not in kw:  # smoothing takes the torch kernels' composition
        assert calls.get("cross_entropy", 0) >= 1, f"cross_entropy did not reach Triton: {calls}"
    xd = x.clone().requires_grad_(True)
    with fast_paths_disabled():
        want = xsoftmax.cross_entropy(xd, t, **kw)
    want.sum().backward()
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(xr.grad.numpy(), xd.grad.numpy(), rtol=1e-14, atol=1e-300)


def test_other_layouts_take_the_torch_kernels(calls: dict[str, int]) -> None:
    """A reduction over the first axis is not a row kernel's: the torch kernels answer."""
    x = _x()
    got = xsoftmax.log_softmax(x, axis=0)
    with fast_paths_disabled():
        want = xsoftmax.log_softmax(x, axis=0)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=4e-16)
