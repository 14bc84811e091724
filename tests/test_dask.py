"""Dask: every public function lazily on chunked arrays, and a run on a LocalCluster.

Runs when the ``dask`` backend is loaded (``XSOFTMAX_BACKENDS=dask``). Calls are
made under a scheduler that raises, so any hidden ``compute()`` (including the
``bool()`` of a value check) fails the test; the results are computed afterwards
and must equal the NumPy answer (xsoftmax on the same values as NumPy arrays,
itself held to independent references by test_properties.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from conftest import get_backend
from test_properties import assert_matches

import xsoftmax

BACKEND = get_backend("dask")
pytestmark = pytest.mark.skipif(
    BACKEND is None, reason="dask is not among the backends of this run (XSOFTMAX_BACKENDS)"
)

N, C = 7, 5
CHUNKS = (3, 2)  # chunked along both the batch and the class axis


class HiddenCompute(AssertionError):
    """Raised by the forbidding scheduler: something was computed before it was asked for."""


def _forbidden_scheduler(*args: Any, **kwargs: Any) -> Any:
    raise HiddenCompute("xsoftmax computed a Dask graph while building it")


@contextmanager
def no_compute() -> Iterator[None]:
    """Within this block any Dask computation raises HiddenCompute."""
    import dask

    with dask.config.set(scheduler=_forbidden_scheduler):
        yield


def _numpy_inputs(seed: int = 0, dtype: str = "float64") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(N, C)) < 0.7
    mask[0] = False  # a fully masked row
    x = rng.normal(size=(N, C)) * 4
    x[1] = [3e300, -3e300, 0.0, 1.0, -1.0] if dtype == "float64" else [3e38, -3e38, 0, 1, -1]
    t = rng.integers(0, C, size=N)
    t[2] = -100
    return {
        "x": x.astype(dtype),
        "t": t,
        "pt": rng.dirichlet(np.ones(C), size=N).astype(dtype),
        "w": rng.uniform(0.5, 2.0, size=C).astype(dtype),
        "mask": mask,
        "y": rng.uniform(size=(N, C)).astype(dtype),
    }


def _to_dask(a: np.ndarray) -> Any:
    import dask.array as da

    chunks = CHUNKS[: a.ndim] if a.ndim else ()
    return da.from_array(a, chunks=chunks)


# name -> f(inputs) returning an array or a tuple of arrays
CALLS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "softmax": lambda a: xsoftmax.softmax(a["x"]),
    "softmax axis=0": lambda a: xsoftmax.softmax(a["x"], axis=0),
    "softmax where": lambda a: xsoftmax.softmax(a["x"], where=a["mask"]),
    "log_softmax": lambda a: xsoftmax.log_softmax(a["x"], axis=(0, 1)),
    "log_softmax where": lambda a: xsoftmax.log_softmax(a["x"], where=a["mask"]),
    "logsumexp": lambda a: xsoftmax.logsumexp(a["x"], axis=-1),
    "logsumexp all": lambda a: xsoftmax.logsumexp(a["x"]),
    "logsumexp b": lambda a: xsoftmax.logsumexp(a["x"], axis=0, b=a["y"], return_sign=True),
    "logsumexp where": lambda a: xsoftmax.logsumexp(a["x"], axis=1, where=a["mask"]),
    "cross_entropy": lambda a: xsoftmax.cross_entropy(a["x"], a["t"], weight=a["w"]),
    "cross_entropy none": lambda a: xsoftmax.cross_entropy(
        a["x"], a["t"], reduction="none", label_smoothing=0.1
    ),
    "cross_entropy prob": lambda a: xsoftmax.cross_entropy(a["x"], a["pt"], reduction="sum"),
    "cross_entropy axis=0": lambda a: xsoftmax.cross_entropy(a["x"][:, :4], a["t4"], axis=0),
    "cross_entropy_with_grad": lambda a: xsoftmax.cross_entropy_with_grad(
        a["x"], a["t"], weight=a["w"], label_smoothing=0.3
    ),
    "cross_entropy_with_grad prob": lambda a: xsoftmax.cross_entropy_with_grad(a["x"], a["pt"]),
    "nll_loss": lambda a: xsoftmax.nll_loss(a["lp"], a["t"], weight=a["w"], reduction="none"),
    "bce": lambda a: xsoftmax.binary_cross_entropy_with_logits(
        a["x"], a["y"], weight=a["y"], pos_weight=a["w"]
    ),
}


def _prepare(np_inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(np_inputs)
    out["lp"] = -np.abs(out["x"])
    # targets for the class axis 0 of x[:, :4] (N classes, 4 samples)
    out["t4"] = np.arange(4) % N
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_function_is_lazy_and_matches_numpy(name: str, dtype: str) -> None:
    """The call builds a graph without computing; its result equals the NumPy answer."""
    import dask.array as da

    np_in = _prepare(_numpy_inputs(dtype=dtype))
    dk_in = {k: _to_dask(v) for k, v in np_in.items()}
    with no_compute():
        lazy = CALLS[name](dk_in)
    expected = CALLS[name](np_in)
    lazy_outs = lazy if isinstance(lazy, tuple) else (lazy,)
    exp_outs = expected if isinstance(expected, tuple) else (expected,)
    assert len(lazy_outs) == len(exp_outs)
    for got, exp in zip(lazy_outs, exp_outs, strict=True):
        assert isinstance(got, da.Array), f"{name}: got {type(got)}, not a dask array"
        assert got.dtype == exp.dtype
        assert got.shape == np.shape(exp)
        assert_matches(np.asarray(got.compute()), np.asarray(exp, np.float64), dtype, ulps=8)


def test_chunking_does_not_change_the_answer() -> None:
    """Different chunkings (one chunk, one element per chunk) give the same answer."""
    import dask.array as da

    np_in = _numpy_inputs()
    x, t = np_in["x"], np_in["t"]
    expected = xsoftmax.cross_entropy(x, t, reduction="none")
    for chunks in ((N, C), (1, 1), (2, 3)):
        xd = da.from_array(x, chunks=chunks)
        td = da.from_array(t, chunks=chunks[:1])
        with no_compute():
            lazy = xsoftmax.cross_entropy(xd, td, reduction="none")
            p = xsoftmax.softmax(xd)
        assert_matches(lazy.compute(), expected, "float64", ulps=4, what=f"chunks {chunks}")
        sums = np.sum(p.compute(), axis=-1)
        np.testing.assert_allclose(sums, 1.0, rtol=0, atol=16 * np.finfo(np.float64).eps)


@pytest.mark.parametrize("bad", [C, C + 3, -1])
def test_out_of_range_target_is_nan_not_an_error(bad: int) -> None:
    """Lazy arrays cannot raise without computing: the bad sample's loss is NaN."""
    np_in = _numpy_inputs()
    tn = np_in["t"].copy()
    tn[3] = bad
    xd, td = _to_dask(np_in["x"]), _to_dask(tn)
    with no_compute():
        per = xsoftmax.cross_entropy(xd, td, reduction="none")
        nll = xsoftmax.nll_loss(xd, td, reduction="none")
        mean = xsoftmax.cross_entropy(xd, td)
    for name, arr in (("cross_entropy", per), ("nll_loss", nll)):
        got = arr.compute()
        assert np.isnan(got[3]), f"{name}: target {bad} gave {got[3]}"
        assert not np.any(np.isnan(np.delete(got, 3))), got
    assert np.isnan(mean.compute())


def test_loss_on_a_local_cluster() -> None:
    """cross_entropy computed by a dask.distributed LocalCluster on loopback equals NumPy's."""
    distributed = pytest.importorskip("distributed")
    np_in = _numpy_inputs(seed=3)
    xd, td, wd = _to_dask(np_in["x"]), _to_dask(np_in["t"]), _to_dask(np_in["w"])
    expected = xsoftmax.cross_entropy(
        np_in["x"], np_in["t"], weight=np_in["w"], label_smoothing=0.1
    )
    expected_grad = xsoftmax.cross_entropy_with_grad(np_in["x"], np_in["t"])[1]
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,  # workers in this process, talking over TCP on loopback
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        loss = xsoftmax.cross_entropy(xd, td, weight=wd, label_smoothing=0.1)
        _, grad = xsoftmax.cross_entropy_with_grad(xd, td)
        got, got_grad = client.compute([loss, grad], sync=True)
    assert_matches(np.asarray(got), np.asarray(expected), "float64", ulps=4, what="loss")
    assert_matches(np.asarray(got_grad), expected_grad, "float64", ulps=4, what="grad")


# --------------------------------------------------------------------------------------
# unknown chunk sizes (after boolean indexing): the batch axis has length NaN
# --------------------------------------------------------------------------------------
# the calls of CALLS that reduce over the batch axis (axis 0, whose length is unknown):
# impossible without the lengths, a ValueError that says to call compute_chunk_sizes()
REDUCES_UNKNOWN = {
    "softmax axis=0": "x",
    "log_softmax": "x",  # axis=(0, 1)
    "logsumexp all": "x",
    "logsumexp b": "x",  # axis=0
    "cross_entropy axis=0": "logits",  # the class axis is the unknown one
}
ROWS = {"x", "t", "pt", "mask", "y", "lp"}  # inputs with one entry per sample (axis 0)

UNKNOWN_EXTRA: dict[str, Callable[[dict[str, Any]], Any]] = {
    "logsumexp b axis=-1": lambda a: xsoftmax.logsumexp(
        a["x"], axis=-1, b=a["y"], return_sign=True
    ),
    "logsumexp b where keepdims": lambda a: xsoftmax.logsumexp(
        a["x"], axis=1, b=a["y"], where=a["mask"], keepdims=True
    ),
    "cross_entropy prob mean": lambda a: xsoftmax.cross_entropy(a["x"], a["pt"], weight=a["w"]),
    "cross_entropy mean smoothing": lambda a: xsoftmax.cross_entropy(
        a["x"], a["t"], label_smoothing=0.2
    ),
    "cross_entropy_with_grad prob mean": lambda a: xsoftmax.cross_entropy_with_grad(
        a["x"], a["pt"], reduction="mean"
    ),
    "nll_loss mean": lambda a: xsoftmax.nll_loss(a["lp"], a["t"]),
    "bce mean": lambda a: xsoftmax.binary_cross_entropy_with_logits(a["x"], a["y"]),
    "bce none": lambda a: xsoftmax.binary_cross_entropy_with_logits(
        a["x"], a["y"], pos_weight=a["w"], reduction="none"
    ),
}
UNKNOWN_CALLS = {**CALLS, **UNKNOWN_EXTRA}

KEEPS = {
    "some rows": np.array([1, 0, 1, 1, 0, 1, 1], dtype=bool),
    "an empty chunk": np.array([0, 0, 0, 1, 1, 0, 1], dtype=bool),  # chunks of 3 rows
    "no row": np.zeros(N, dtype=bool),
}


def _unknown_rows(np_in: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, Any]:
    """Dask inputs whose batch axis went through boolean indexing by a lazy mask."""
    import dask.array as da

    kd = da.from_array(keep, chunks=CHUNKS[0])
    out = {}
    for k, v in np_in.items():
        d = _to_dask(v)
        out[k] = d[kd] if k in ROWS else d
    return out


@pytest.mark.parametrize("keep", sorted(KEEPS))
@pytest.mark.parametrize("name", sorted(UNKNOWN_CALLS))
def test_unknown_chunk_sizes(name: str, keep: str) -> None:
    """Unknown batch lengths: every function stays lazy and gives the NumPy result of the
    kept rows; reducing over the unknown axis is a ValueError naming the argument."""
    import dask.array as da

    np_in = _prepare(_numpy_inputs())
    dk_in = _unknown_rows(np_in, KEEPS[keep])
    assert np.isnan(dk_in["x"].shape[0])
    call = UNKNOWN_CALLS[name]
    if name in REDUCES_UNKNOWN:
        arg = REDUCES_UNKNOWN[name]
        with no_compute(), pytest.raises(ValueError, match="compute_chunk_sizes") as info:
            call(dk_in)
        assert f"`{arg}`" in str(info.value), str(info.value)
        return
    with no_compute():
        lazy = call(dk_in)
    kept = {k: v[KEEPS[keep]] if k in ROWS else v for k, v in np_in.items()}
    expected = call(kept)
    lazy_outs = lazy if isinstance(lazy, tuple) else (lazy,)
    exp_outs = expected if isinstance(expected, tuple) else (expected,)
    for got, exp in zip(lazy_outs, exp_outs, strict=True):
        assert isinstance(got, da.Array), f"{name}: got {type(got)}, not a dask array"
        assert got.dtype == exp.dtype
        value = np.asarray(got.compute())
        assert value.shape == np.shape(exp)
        assert_matches(value, np.asarray(exp, np.float64), "float64", ulps=8)
