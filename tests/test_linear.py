"""linear_cross_entropy and linear_cross_entropy_with_grad against independent oracles.

The oracle is the unfused formula in float64 torch: ``F.linear``, the cap
``s * tanh(z / s)``, ``F.cross_entropy`` and the z-loss written out from
``torch.logsumexp``, differentiated by torch autograd. xsoftmax is never its own
oracle, except where the point is that two of its paths agree (fused kernels vs
generic sweeps, chunk sizes, ``cross_entropy`` of the materialised logits).
"""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import numpy as np
import pytest
from conftest import BACKENDS, get_backend
from hypothesis import given, settings
from hypothesis import strategies as st

import xsoftmax
from xsoftmax._contract.config import fast_paths_disabled

torch = pytest.importorskip("torch")
F = torch.nn.functional

OPTIONS = ("weight", "ignore_index", "reduction", "label_smoothing", "z_loss", "softcap")


# --------------------------------------------------------------------------------------
# the oracle
# --------------------------------------------------------------------------------------
def oracle(
    h: np.ndarray,
    W: np.ndarray,
    t: np.ndarray,
    *,
    b: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    upstream: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Loss and torch-autograd gradients (of ``upstream * sum(loss)``) of the unfused formula."""
    th = torch.tensor(np.asarray(h, np.float64), requires_grad=True)
    tW = torch.tensor(np.asarray(W, np.float64), requires_grad=True)
    tb = None if b is None else torch.tensor(np.asarray(b, np.float64), requires_grad=True)
    logits = F.linear(th, tW, tb)
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    tt = torch.tensor(np.asarray(t))
    index = tt.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
    tt = tt.long() if index else tt.double()
    tw = None if weight is None else torch.tensor(np.asarray(weight, np.float64))
    # torch wants the class axis at 1
    lg = logits if logits.ndim <= 2 else torch.movedim(logits, -1, 1)
    tg = tt if (index or tt.ndim <= 2) else torch.movedim(tt, -1, 1)
    if logits.ndim == 1:
        lg, tg = lg[None], tg[None]
    ce = F.cross_entropy(
        lg,
        tg,
        weight=tw,
        ignore_index=ignore_index,
        reduction="none",
        label_smoothing=label_smoothing,
    )
    if logits.ndim == 1:
        ce = ce[0]
    lse = torch.logsumexp(logits, dim=-1)
    counted = (tt != ignore_index) if index else torch.ones_like(lse, dtype=torch.bool)
    zterm = z_loss * lse**2 * counted
    if reduction == "none":
        loss = ce + zterm
    elif reduction == "sum":
        loss = ce.sum() + zterm.sum()
    elif index:
        w_t = torch.ones_like(lse) if tw is None else tw[torch.where(counted, tt, 0)]
        den = (w_t * counted).sum()
        loss = ce.sum() / den + zterm.sum() / counted.sum()
    else:
        loss = (ce.sum() + zterm.sum()) / max(1, math.prod(lse.shape))
    (upstream * loss.sum()).backward()
    if index and reduction == "mean" and not bool(counted.any()):
        # every target ignored: torch's gradient is 0/0 = NaN, the contract's is 0
        for leaf in (th, tW, tb):
            if leaf is not None:
                leaf.grad = torch.zeros_like(leaf)
    return (
        loss.detach().numpy(),
        th.grad.numpy(),
        tW.grad.numpy(),
        None if tb is None else tb.grad.numpy(),
    )


def inputs(
    seed: int,
    n: int = 7,
    d: int = 5,
    c: int = 11,
    scale: float = 1.0,
    lead: tuple = (),
    ignore: int = -100,
) -> dict[str, Any]:
    """Random float64 features, projection, bias, class indices (two ignored), weights."""
    rng = np.random.default_rng(seed)
    shape = lead or (n,)
    t = rng.integers(0, c, size=shape)
    flat = t.reshape(-1)
    if flat.size > 2:
        flat[[1, -1]] = ignore
    return {
        "h": rng.standard_normal((*shape, d)) * scale,
        "W": rng.standard_normal((c, d)),
        "b": rng.standard_normal(c),
        "t": flat.reshape(shape),
        "weight": rng.random(c) + 0.1,
    }


def to(backend: Any, a: Any, dtype: str | None = None) -> Any:
    if a is None:
        return None
    a = np.asarray(a)
    out = backend.asarray(a, dtype=dtype)
    if tuple(out.shape) != a.shape:
        out = backend.xp.reshape(out, a.shape)
    return out


def close(got: Any, want: Any, backend: Any, rtol: float = 1e-9, what: str = "") -> None:
    g = backend.to_numpy(got) if backend is not None else np.asarray(got)
    w = np.asarray(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    atol = rtol * max(1.0, float(np.max(np.abs(w)))) if w.size else 0.0
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=what)


# --------------------------------------------------------------------------------------
# option grid: fused == unfused on every backend, loss and with_grad
# --------------------------------------------------------------------------------------
CASES = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"weight": True},
    {"weight": True, "label_smoothing": 0.3},
    {"label_smoothing": 0.2, "reduction": "sum"},
    {"ignore_index": 3},
    {"z_loss": 0.05},
    {"z_loss": 0.01, "reduction": "none", "weight": True},
    {"softcap": 2.5},
    {"softcap": 1.5, "z_loss": 0.1, "label_smoothing": 0.1, "weight": True},
    {"softcap": 4.0, "reduction": "sum", "ignore_index": 0},
]
CHUNKS = (1, 4, 11, None)  # 1, a non-divisor of C = 11, C itself, the default


def _data(seed: int, case: dict, **kw: Any) -> dict:
    return inputs(seed, ignore=case.get("ignore_index", -100), **kw)


def _opts(case: dict, data: dict) -> dict:
    out = dict(case)
    if out.get("weight"):
        out["weight"] = data["weight"]
    else:
        out.pop("weight", None)
    return out


def _backend_opts(backend: Any, opts: dict) -> dict:
    return {k: (to(backend, v) if k == "weight" else v) for k, v in opts.items()}


def _case_id(case: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items()) or "default"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_fused_equals_unfused_loss_and_grads(backend: Any, case: dict) -> None:
    """linear_cross_entropy and _with_grad equal the float64 torch oracle, every chunk size."""
    data = _data(len(_case_id(case)), case)
    opts = _opts(case, data)
    want = oracle(data["h"], data["W"], data["t"], b=data["b"], **opts)
    args = (to(backend, data["h"]), to(backend, data["W"]), to(backend, data["t"]))
    bopts = _backend_opts(backend, opts)
    bias = to(backend, data["b"])
    for chunk in CHUNKS if backend.name not in ("jax", "dask") else (4, None):
        got = xsoftmax.linear_cross_entropy(*args, linear_bias=bias, chunk_size=chunk, **bopts)
        close(got, want[0], backend, what=f"loss, chunk {chunk}")
        loss, dh, dW, db = xsoftmax.linear_cross_entropy_with_grad(
            *args, linear_bias=bias, chunk_size=chunk, **bopts
        )
        close(loss, want[0], backend, what=f"with_grad loss, chunk {chunk}")
        for name, g, w in (
            ("d_input", dh, want[1]),
            ("d_weight", dW, want[2]),
            ("d_bias", db, want[3]),
        ):
            close(g, w, backend, what=f"{name}, chunk {chunk}")


@pytest.mark.parametrize("case", CASES[:9], ids=[_case_id(c) for c in CASES[:9]])
def test_equals_cross_entropy_of_the_materialised_logits(backend: Any, case: dict) -> None:
    """Same value as xsoftmax.cross_entropy(input @ W.T + b) on the same backend (no cap, no z)."""
    data = _data(7, case)
    opts = {k: v for k, v in _opts(case, data).items() if k not in ("z_loss", "softcap")}
    h, W, b, t = (to(backend, data[k]) for k in ("h", "W", "b", "t"))
    bopts = _backend_opts(backend, opts)
    logits = backend.xp.matmul(h, backend.xp.permute_dims(W, (1, 0))) + b
    want = xsoftmax.cross_entropy(logits, t, **bopts)
    got = xsoftmax.linear_cross_entropy(h, W, t, linear_bias=b, chunk_size=3, **bopts)
    close(got, backend.to_numpy(want), backend, rtol=1e-12)


def test_probability_targets(backend: Any) -> None:
    """Probability targets (with smoothing and weights) equal the oracle, loss and gradients."""
    rng = np.random.default_rng(5)
    h, W, b = rng.standard_normal((6, 4)), rng.standard_normal((9, 4)), rng.standard_normal(9)
    q = rng.random((6, 9))
    q /= q.sum(axis=1, keepdims=True)
    weight = rng.random(9) + 0.5
    for opts in ({}, {"label_smoothing": 0.2, "weight": weight, "z_loss": 0.02, "softcap": 3.0}):
        for reduction in ("mean", "sum", "none"):
            want = oracle(h, W, q, b=b, reduction=reduction, **opts)
            bo = _backend_opts(backend, opts)
            args = (to(backend, h), to(backend, W), to(backend, q))
            got = xsoftmax.linear_cross_entropy_with_grad(
                *args, linear_bias=to(backend, b), chunk_size=4, reduction=reduction, **bo
            )
            for g, w in zip(got, want, strict=True):
                close(g, w, backend, what=f"{opts.keys()} {reduction}")


def test_batched_leading_axes_and_unbatched_input(backend: Any) -> None:
    """input (..., d) with any leading shape, and (d,) with a 0-d target."""
    data = inputs(seed=11, lead=(2, 3))
    for red in ("mean", "none"):
        want = oracle(data["h"], data["W"], data["t"], b=data["b"], reduction=red)
        got = xsoftmax.linear_cross_entropy_with_grad(
            to(backend, data["h"]),
            to(backend, data["W"]),
            to(backend, data["t"]),
            linear_bias=to(backend, data["b"]),
            chunk_size=4,
            reduction=red,
        )
        for g, w in zip(got, want, strict=True):
            close(g, w, backend, what=red)
    h1, t0 = data["h"][0, 0], np.asarray(data["t"][0, 0])
    want = oracle(h1, data["W"], t0)
    got = xsoftmax.linear_cross_entropy_with_grad(
        to(backend, h1), to(backend, data["W"]), to(backend, t0)
    )
    for g, w in zip(got, want, strict=True):
        if w is not None:
            close(g, w, backend)


def test_no_bias_gives_none(backend: Any) -> None:
    """Without linear_bias the fourth output is None and the rest match the oracle."""
    data = inputs(seed=2)
    want = oracle(data["h"], data["W"], data["t"])
    loss, dh, dW, db = xsoftmax.linear_cross_entropy_with_grad(
        to(backend, data["h"]), to(backend, data["W"]), to(backend, data["t"]), chunk_size=5
    )
    assert db is None
    for g, w in ((loss, want[0]), (dh, want[1]), (dW, want[2])):
        close(g, w, backend)


# --------------------------------------------------------------------------------------
# autograd: torch.autograd.Function and jax.custom_vjp
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_autograd_matches_unfused_autograd(case: dict, dtype: str) -> None:
    """torch autograd through linear_cross_entropy (fused rows and class sweeps) vs the oracle."""
    data = _data(3, case, n=40, c=23)
    opts = _opts(case, data)
    want = oracle(data["h"], data["W"], data["t"], b=data["b"], upstream=2.0, **opts)
    rtol = 1e-9 if dtype == "float64" else 2e-4
    dt = getattr(torch, dtype)
    for chunk in (1, 7, 23, None):  # 1 and 7: class sweeps; 23 and None: whole-row blocks
        leaves = [torch.tensor(data[k], dtype=dt, requires_grad=True) for k in ("h", "W", "b")]
        tw = {k: (torch.tensor(v, dtype=dt) if k == "weight" else v) for k, v in opts.items()}
        loss = xsoftmax.linear_cross_entropy(
            leaves[0],
            leaves[1],
            torch.tensor(data["t"]),
            linear_bias=leaves[2],
            chunk_size=chunk,
            **tw,
        )
        (2.0 * loss.sum()).backward()
        close(loss.detach().double(), want[0], None, rtol=rtol, what=f"loss chunk {chunk}")
        for leaf, w in zip(leaves, want[1:], strict=True):
            close(leaf.grad.double(), w, None, rtol=rtol, what=f"grad chunk {chunk}")


def test_torch_second_backward_with_retain_graph() -> None:
    """A second backward (retain_graph) gives the same gradients again (recomputed)."""
    data = inputs(seed=4, n=32, c=8)
    want = oracle(data["h"], data["W"], data["t"], b=data["b"], upstream=3.0)
    leaves = [torch.tensor(data[k], requires_grad=True) for k in ("h", "W", "b")]
    loss = xsoftmax.linear_cross_entropy(
        leaves[0], leaves[1], torch.tensor(data["t"]), linear_bias=leaves[2]
    )
    (3.0 * loss).backward(retain_graph=True)
    first = [leaf.grad.clone() for leaf in leaves]
    for leaf in leaves:
        leaf.grad = None
    (3.0 * loss).backward()
    for leaf, f, w in zip(leaves, first, want[1:], strict=True):
        close(f, w, None)
        close(leaf.grad, w, None)


def test_torch_autograd_keeps_no_logits() -> None:
    """The autograd graph saves nothing of the size of the logits (N x C)."""
    n, d, c = 64, 8, 4096
    rng = np.random.default_rng(0)
    h = torch.tensor(rng.standard_normal((n, d)), requires_grad=True)
    W = torch.tensor(rng.standard_normal((c, d)), requires_grad=True)
    t = torch.tensor(rng.integers(0, c, n))
    sizes: list[int] = []

    def pack(x: Any) -> Any:
        sizes.append(x.numel())
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        for reduction in ("mean", "none"):
            loss = xsoftmax.linear_cross_entropy(h, W, t, reduction=reduction, chunk_size=256)
            loss.sum().backward()
    assert sizes, "nothing saved: the hook did not see the Function"
    assert max(sizes) <= c * d, f"saved a tensor of {max(sizes)} elements (logits: {n * c})"


@pytest.mark.skipif(get_backend("jax") is None, reason="jax backend not loaded")
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_jax_grad_and_jit_match_unfused_jax_grad(case: dict) -> None:
    """jax.grad / jit(value_and_grad) through the custom VJP equal jax.grad of the unfused formula."""
    import jax
    import jax.numpy as jnp

    data = _data(9, case)
    opts = _opts(case, data)
    t = jnp.asarray(data["t"])
    jw = None if opts.get("weight") is None else jnp.asarray(opts["weight"])
    eps = opts.get("label_smoothing", 0.0)
    cap = opts.get("softcap")
    zl = opts.get("z_loss", 0.0)
    red = opts.get("reduction", "mean")
    ign = opts.get("ignore_index", -100)

    def unfused(h: Any, W: Any, b: Any) -> Any:
        z = h @ W.T + b
        if cap is not None:
            z = cap * jnp.tanh(z / cap)
        lse = jax.nn.logsumexp(z, axis=-1)
        keep = t != ign
        ts = jnp.where(keep, t, 0)
        w = jnp.ones(z.shape[-1]) if jw is None else jw
        w_t = w[ts]
        nll = lse - jnp.take_along_axis(z, ts[:, None], axis=1)[:, 0]
        smooth = jnp.sum(w * (lse[:, None] - z), axis=1) / z.shape[-1]
        per = ((1 - eps) * w_t * nll + eps * smooth) * keep
        zt = zl * lse**2 * keep
        if red == "none":
            return jnp.sum(per + zt)
        if red == "sum":
            return jnp.sum(per) + jnp.sum(zt)
        return jnp.sum(per) / jnp.sum(w_t * keep) + jnp.sum(zt) / jnp.sum(keep)

    kw = dict(opts)
    if jw is not None:
        kw["weight"] = jw

    def fused(h: Any, W: Any, b: Any) -> Any:
        return jnp.sum(xsoftmax.linear_cross_entropy(h, W, t, linear_bias=b, chunk_size=4, **kw))

    args = tuple(jnp.asarray(data[k]) for k in ("h", "W", "b"))
    want_v, want_g = jax.value_and_grad(unfused, argnums=(0, 1, 2))(*args)
    got_v, got_g = jax.jit(jax.value_and_grad(fused, argnums=(0, 1, 2)))(*args)
    close(got_v, want_v, None)
    for g, w in zip(got_g, want_g, strict=True):
        close(g, w, None)
    eager_g = jax.grad(fused, argnums=(0, 1, 2))(*args)
    for g, w in zip(eager_g, want_g, strict=True):
        close(g, w, None)


# --------------------------------------------------------------------------------------
# chunking, fast paths, dtypes, memory
# --------------------------------------------------------------------------------------
def test_chunk_size_changes_nothing_beyond_matmul_rounding(backend: Any) -> None:
    """float32: every chunk size gives the loss and gradients within the matmul's rounding."""
    rng = np.random.default_rng(12)
    n, d, c = 33, 16, 50
    h = rng.standard_normal((n, d)).astype(np.float32)
    W = (rng.standard_normal((c, d)) * 2).astype(np.float32)
    t = rng.integers(0, c, n)
    args = (to(backend, h), to(backend, W), to(backend, t))
    want = oracle(h, W, t, label_smoothing=0.1, z_loss=0.01)
    for chunk in (1, 3, 7, 49, 50, 64, None):
        got = xsoftmax.linear_cross_entropy_with_grad(
            *args, chunk_size=chunk, label_smoothing=0.1, z_loss=0.01
        )
        for g, w in zip(got[:3], want[:3], strict=True):
            # float32 matmul of d = 16 terms: a few ulps of the largest logit
            close(g, w, backend, rtol=2e-5, what=f"chunk {chunk}")


@pytest.mark.parametrize("name", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_kernels_equal_generic_sweeps(name: str, dtype: str) -> None:
    """The numba kernels (and torch's whole-row blocks) give the generic sweeps' numbers."""
    backend = get_backend(name)
    if backend is None:
        pytest.skip(f"{name} backend not loaded")
    data = inputs(seed=21, n=48, c=37)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    for opts in (
        {},
        {"label_smoothing": 0.2, "weight": data["weight"], "z_loss": 0.1},
        {"softcap": 2.0},
    ):
        bo = _backend_opts(backend, opts)
        args = (
            to(backend, data["h"], dtype),
            to(backend, data["W"], dtype),
            to(backend, data["t"]),
        )
        if "weight" in bo:
            bo["weight"] = to(backend, opts["weight"], dtype)
        for chunk in (5, 37):
            fast = xsoftmax.linear_cross_entropy_with_grad(*args, chunk_size=chunk, **bo)
            with fast_paths_disabled():
                slow = xsoftmax.linear_cross_entropy_with_grad(*args, chunk_size=chunk, **bo)
            for f, s in zip(fast, slow, strict=True):
                if s is not None:
                    close(f, backend.to_numpy(s), backend, rtol=rtol)


def test_extreme_logits_keep_the_accuracy(backend: Any) -> None:
    """Large offsets and a dominant target: the loss keeps cross_entropy's exactness.

    logits [1e8, 1e8, 1e8 - 64] (float64) need an exact shift; a dominant target
    with the others 30 below gives a loss of ~2 exp(-30), lost by ``lse - x_t``.
    """
    h = np.eye(3)
    W = np.array([[1e8, 0, 0], [0, 1e8, 0], [0, 0, 1e8 - 64.0]]).T.copy()
    t = np.array([0, 1, 2])
    # logits row n = h_n @ W.T = W[:, n]... build them explicitly for the oracle
    logits = h @ W.T
    got = xsoftmax.linear_cross_entropy(
        to(backend, h), to(backend, W), to(backend, t), reduction="none", chunk_size=1
    )
    lse = np.array([np.logaddexp.reduce(r) for r in logits])
    close(got, lse - logits[np.arange(3), t], backend, rtol=1e-15)
    # a dominant target: loss = log1p(2 exp(-30)) ~ 1.87e-13
    W2 = np.array([[30.0], [0.0], [0.0]])
    got = xsoftmax.linear_cross_entropy(
        to(backend, np.ones((1, 1))), to(backend, W2), to(backend, np.array([0])), chunk_size=1
    )
    close(got, np.log1p(2 * np.exp(-30.0)), backend, rtol=4 * 2.0**-52)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_computes_in_float32(backend: Any, dtype: str) -> None:
    """Half-precision inputs: float32 compute, the input dtype out (or dtype=float32)."""
    if dtype not in backend.half_dtypes:
        pytest.skip(f"{backend.name} has no {dtype}")
    data = inputs(seed=13)
    h, W = to(backend, data["h"], dtype), to(backend, data["W"], dtype)
    hf = backend.to_numpy(h).astype(np.float64)
    Wf = backend.to_numpy(W).astype(np.float64)
    want = oracle(hf, Wf, data["t"])
    got = xsoftmax.linear_cross_entropy(h, W, to(backend, data["t"]), chunk_size=3)
    assert str(got.dtype).endswith(dtype)
    close(np.asarray(backend.to_numpy(got), np.float64), want[0], None, rtol=1e-2)
    got32 = xsoftmax.linear_cross_entropy(
        h, W, to(backend, data["t"]), dtype=backend.dtype("float32")
    )
    assert str(got32.dtype).endswith("float32")
    close(backend.to_numpy(got32), want[0], None, rtol=1e-5)
    _, dh, dW, _ = xsoftmax.linear_cross_entropy_with_grad(h, W, to(backend, data["t"]))
    assert str(dh.dtype).endswith(dtype)
    assert str(dW.dtype).endswith(dtype)


def test_numpy_peak_memory_is_a_chunk_not_the_logits() -> None:
    """NumPy: the peak of new allocations stays far below the logits (N x C float64)."""
    n, d, c, chunk = 256, 16, 8192, 64
    rng = np.random.default_rng(1)
    h, W = rng.standard_normal((n, d)), rng.standard_normal((c, d)) * 0.1
    t = rng.integers(0, c, n)
    logits_bytes = n * c * 8
    for fn in (xsoftmax.linear_cross_entropy, xsoftmax.linear_cross_entropy_with_grad):
        for fast in (True, False):
            tracemalloc.start()
            if fast:
                fn(h, W, t, chunk_size=chunk)
            else:
                with fast_paths_disabled():
                    fn(h, W, t, chunk_size=chunk)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            outputs = (W.nbytes + h.nbytes) if fn is xsoftmax.linear_cross_entropy_with_grad else 0
            assert peak - outputs < 0.25 * logits_bytes, (fn.__name__, fast, peak, logits_bytes)


def test_inputs_are_not_modified(backend: Any) -> None:
    """Writable inputs keep their values bit for bit (the kernels write only their own blocks)."""
    data = inputs(seed=17)
    arrays = {k: backend.writable(data[k]) for k in ("h", "W", "b", "t", "weight")}
    before = {k: backend.to_numpy(v).copy() for k, v in arrays.items()}
    for chunk in (2, None):
        xsoftmax.linear_cross_entropy_with_grad(
            arrays["h"],
            arrays["W"],
            arrays["t"],
            linear_bias=arrays["b"],
            weight=arrays["weight"],
            softcap=2.0,
            label_smoothing=0.1,
            chunk_size=chunk,
        )
        xsoftmax.linear_cross_entropy(arrays["h"], arrays["W"], arrays["t"], softcap=1.0)
    for k, v in arrays.items():
        np.testing.assert_array_equal(backend.to_numpy(v), before[k], err_msg=k)


def test_empty_batch_and_all_ignored(backend: Any) -> None:
    """N = 0: 'none' is empty, 'sum' 0, 'mean' NaN; every target ignored: mean NaN, grads 0."""
    W = to(backend, np.ones((4, 3)))
    h0 = to(backend, np.zeros((0, 3)))
    t0 = to(backend, np.zeros((0,), np.int64))
    assert backend.to_numpy(xsoftmax.linear_cross_entropy(h0, W, t0, reduction="none")).shape == (
        0,
    )
    assert float(backend.to_numpy(xsoftmax.linear_cross_entropy(h0, W, t0, reduction="sum"))) == 0
    assert math.isnan(float(backend.to_numpy(xsoftmax.linear_cross_entropy(h0, W, t0))))
    h = to(backend, np.ones((2, 3)))
    t = to(backend, np.array([-100, -100]))
    loss, dh, dW, _ = xsoftmax.linear_cross_entropy_with_grad(h, W, t)
    assert math.isnan(float(backend.to_numpy(loss)))
    assert not np.any(backend.to_numpy(dh))
    assert not np.any(backend.to_numpy(dW))


# --------------------------------------------------------------------------------------
# Hypothesis: fused == oracle on every backend, shapes and options drawn
# --------------------------------------------------------------------------------------
@st.composite
def problems(draw: Any) -> dict[str, Any]:
    n = draw(st.integers(1, 6))
    d = draw(st.integers(1, 4))
    c = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 30.0]))
    t = rng.integers(0, c, n)
    if draw(st.booleans()):
        t[0] = -100
    opts: dict[str, Any] = {
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": draw(st.sampled_from([0.0, 0.25, 1.0])),
        "z_loss": draw(st.sampled_from([0.0, 1e-3, 0.5])),
        "softcap": draw(st.sampled_from([None, 0.5, 5.0])),
    }
    if draw(st.booleans()):
        opts["weight"] = rng.random(c) + 0.01
    return {
        "h": rng.standard_normal((n, d)) * scale,
        "W": rng.standard_normal((c, d)),
        "b": rng.standard_normal(c) if draw(st.booleans()) else None,
        "t": t,
        "chunk": draw(st.integers(1, c + 2)),
        "opts": opts,
    }


HEAVY = ("jax", "dask")  # every new shape compiles (JAX) or builds a graph (Dask)


@pytest.mark.parametrize(
    "backend", [pytest.param(b, id=b.name) for b in BACKENDS if b.name not in HEAVY]
)
@given(problem=problems())
def test_property_fused_equals_unfused(backend: Any, problem: dict) -> None:
    """Any shape, chunk size and options: loss and gradients equal the float64 oracle."""
    _check_problem(backend, problem)


@pytest.mark.parametrize(
    "backend", [pytest.param(b, id=b.name) for b in BACKENDS if b.name in HEAVY]
)
@settings(max_examples=6)
@given(problem=problems())
def test_property_fused_equals_unfused_heavy_backends(backend: Any, problem: dict) -> None:
    """The same property on JAX and Dask, on fewer examples (each compiles or builds a graph)."""
    _check_problem(backend, problem)


def _check_problem(backend: Any, problem: dict) -> None:
    opts = problem["opts"]
    want = oracle(problem["h"], problem["W"], problem["t"], b=problem["b"], **opts)
    got = xsoftmax.linear_cross_entropy_with_grad(
        to(backend, problem["h"]),
        to(backend, problem["W"]),
        to(backend, problem["t"]),
        linear_bias=to(backend, problem["b"]),
        chunk_size=problem["chunk"],
        **_backend_opts(backend, opts),
    )
    for g, w in zip(got, want, strict=True):
        if w is None:
            assert g is None
        else:
            close(g, w, backend, rtol=1e-8)


# --------------------------------------------------------------------------------------
# Dask: lazy, and on a LocalCluster with two workers
# --------------------------------------------------------------------------------------
@pytest.mark.skipif(get_backend("dask") is None, reason="dask backend not loaded")
def test_dask_is_lazy_and_matches_numpy() -> None:
    """Nothing is computed at call time; the computed values equal NumPy's."""
    import dask
    import dask.array as da

    data = inputs(seed=31, n=40, c=13)
    h = da.from_array(data["h"], chunks=(7, 5))
    W, b = da.from_array(data["W"], chunks=(4, 5)), da.from_array(data["b"])
    t = da.from_array(data["t"], chunks=9)
    want = xsoftmax.linear_cross_entropy_with_grad(
        data["h"], data["W"], data["t"], linear_bias=data["b"], z_loss=0.1
    )
    with dask.config.set(scheduler=_no_compute):
        got = xsoftmax.linear_cross_entropy_with_grad(h, W, t, linear_bias=b, z_loss=0.1)
        loss = xsoftmax.linear_cross_entropy(h, W, t, linear_bias=b, z_loss=0.1)
    for g, w in zip(got, want, strict=True):
        close(g.compute(), w, None, rtol=1e-12)
    close(loss.compute(), want[0], None, rtol=1e-12)


def _no_compute(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("xsoftmax computed a Dask graph behind the caller's back")


@pytest.mark.skipif(get_backend("dask") is None, reason="dask backend not loaded")
def test_dask_local_cluster_two_workers() -> None:
    """Rows chunked over a LocalCluster of two workers, the weights broadcast: equals NumPy."""
    import dask.array as da

    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(8)
    n, d, c = 4000, 8, 64
    h = rng.standard_normal((n, d)).astype(np.float32)
    W = rng.standard_normal((c, d)).astype(np.float32)
    t = rng.integers(0, c, n)
    want = xsoftmax.linear_cross_entropy(h, W, t, label_smoothing=0.1, reduction="none")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        hd = da.from_array(h, chunks=(1000, d))
        got = xsoftmax.linear_cross_entropy(
            hd,
            da.from_array(W),
            da.from_array(t, chunks=1000),
            label_smoothing=0.1,
            reduction="none",
        )
        values = client.compute(got, sync=True)
    close(np.asarray(values), want, None, rtol=1e-6)


@pytest.mark.skipif(get_backend("dask") is None, reason="dask backend not loaded")
def test_dask_out_of_range_target_is_nan() -> None:
    """Lazy arrays cannot raise: an out-of-range class index gives NaN for that sample."""
    import dask.array as da

    data = inputs(seed=1)
    t = data["t"].copy()
    t[0] = 99
    got = xsoftmax.linear_cross_entropy(
        da.from_array(data["h"]), da.from_array(data["W"]), da.from_array(t), reduction="none"
    ).compute()
    assert np.isnan(got[0])
    assert not np.any(np.isnan(got[1:]))


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
def _err_cases() -> list:
    rng = np.random.default_rng(0)
    h, W = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    t = np.array([0, 1, 2, 3])
    base = {"input": h, "linear_weight": W, "target": t}
    cases = [
        (
            "d mismatch",
            {"input": rng.standard_normal((4, 2))},
            {},
            ValueError,
            ["input", "linear_weight", "(4, 2)", "(5, 3)"],
        ),
        (
            "bias length",
            {},
            {"linear_bias": np.ones(4)},
            ValueError,
            ["linear_bias", "(4,)", "(5, 3)"],
        ),
        ("bias 2-d", {}, {"linear_bias": np.ones((5, 1))}, ValueError, ["linear_bias"]),
        (
            "weight 3-d",
            {"linear_weight": np.ones((5, 3, 1))},
            {},
            ValueError,
            ["linear_weight", "(C, d)"],
        ),
        ("weight 1-d", {"linear_weight": np.ones(3)}, {}, ValueError, ["linear_weight"]),
        ("0-d input", {"input": np.ones(())}, {}, ValueError, ["input"]),
        ("int input", {"input": np.ones((4, 3), np.int64)}, {}, TypeError, ["input", "floating"]),
        ("bool input", {"input": np.ones((4, 3), bool)}, {}, TypeError, ["input", "floating"]),
        ("complex weight", {"linear_weight": W.astype(complex)}, {}, TypeError, ["linear_weight"]),
        (
            "int bias",
            {},
            {"linear_bias": np.ones(5, np.int64)},
            TypeError,
            ["linear_bias", "floating"],
        ),
        (
            "target shape",
            {"target": np.array([0, 1, 2])},
            {},
            ValueError,
            ["target", "(4,)", "(3,)"],
        ),
        ("float target", {"target": np.zeros(4)}, {}, TypeError, ["target", "integer"]),
        ("bool target", {"target": np.zeros(4, bool)}, {}, TypeError, ["target"]),
        (
            "int prob target",
            {"target": np.zeros((4, 5), np.int64)},
            {},
            TypeError,
            ["target", "floating"],
        ),
        (
            "target range",
            {"target": np.array([0, 1, 5, 3])},
            {},
            ValueError,
            ["target", "[0, 5)", "5"],
        ),
        ("negative target", {"target": np.array([0, -1, 2, 3])}, {}, ValueError, ["target", "-1"]),
        ("class weight shape", {}, {"weight": np.ones(4)}, ValueError, ["weight", "(5,)", "(4,)"]),
        ("reduction", {}, {"reduction": "MEAN"}, ValueError, ["reduction", "MEAN"]),
        ("smoothing", {}, {"label_smoothing": 1.5}, ValueError, ["label_smoothing", "1.5"]),
        ("smoothing nan", {}, {"label_smoothing": float("nan")}, ValueError, ["label_smoothing"]),
        ("smoothing type", {}, {"label_smoothing": "0.1"}, TypeError, ["label_smoothing"]),
        ("ignore_index float", {}, {"ignore_index": 1.0}, TypeError, ["ignore_index"]),
        (
            "ignore_index prob",
            {"target": np.full((4, 5), 0.2)},
            {"ignore_index": 0},
            ValueError,
            ["ignore_index"],
        ),
        ("z_loss negative", {}, {"z_loss": -0.1}, ValueError, ["z_loss", "-0.1"]),
        ("z_loss nan", {}, {"z_loss": float("nan")}, ValueError, ["z_loss"]),
        ("z_loss type", {}, {"z_loss": "0.1"}, TypeError, ["z_loss"]),
        ("z_loss bool", {}, {"z_loss": True}, TypeError, ["z_loss"]),
        ("softcap zero", {}, {"softcap": 0.0}, ValueError, ["softcap", "0.0"]),
        ("softcap negative", {}, {"softcap": -2}, ValueError, ["softcap"]),
        ("softcap inf", {}, {"softcap": float("inf")}, ValueError, ["softcap"]),
        ("softcap type", {}, {"softcap": "2"}, TypeError, ["softcap"]),
        ("chunk zero", {}, {"chunk_size": 0}, ValueError, ["chunk_size", "0"]),
        ("chunk float", {}, {"chunk_size": 2.0}, TypeError, ["chunk_size"]),
        ("chunk bool", {}, {"chunk_size": True}, TypeError, ["chunk_size"]),
        ("dtype", {}, {"dtype": np.int32}, TypeError, ["dtype"]),
        ("list input", {"input": [[1.0, 2.0, 3.0]] * 4}, {}, TypeError, ["input"]),
        ("None weight matrix", {"linear_weight": None}, {}, TypeError, ["linear_weight"]),
    ]
    out = []
    for name, pos, kw, exc, words in cases:
        args = {**base, **pos}
        out.append(pytest.param(args, kw, exc, words, id=name))
    return out


@pytest.mark.parametrize(("args", "kw", "exc", "words"), _err_cases())
@pytest.mark.parametrize(
    "fn",
    [xsoftmax.linear_cross_entropy, xsoftmax.linear_cross_entropy_with_grad],
    ids=["loss", "with_grad"],
)
def test_errors_name_the_argument(fn: Any, args: dict, kw: dict, exc: type, words: list) -> None:
    """Each bad input raises TypeError/ValueError naming the function, the argument and the values."""
    with pytest.raises(exc) as info:
        fn(args["input"], args["linear_weight"], args["target"], **kw)
    msg = str(info.value)
    assert fn.__name__ in msg, msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


def test_errors_on_every_backend(backend: Any) -> None:
    """Mismatched d and a wrong bias length name both shapes on every backend."""
    h, W = to(backend, np.ones((4, 3))), to(backend, np.ones((5, 2)))
    t = to(backend, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 2\)"):
        xsoftmax.linear_cross_entropy(h, W, t)
    W = to(backend, np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"linear_bias.*\(6,\)"):
        xsoftmax.linear_cross_entropy(h, W, t, linear_bias=to(backend, np.ones(6)))


def test_mixed_libraries_are_rejected() -> None:
    """NumPy and torch (or strict) arrays in one call: TypeError naming both arguments."""
    h = np.ones((4, 3))
    W = torch.ones((5, 3), dtype=torch.float64)
    with pytest.raises(TypeError, match=r"input.*linear_weight|linear_weight.*input"):
        xsoftmax.linear_cross_entropy(h, W, np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="linear_bias"):
        xsoftmax.linear_cross_entropy(
            torch.ones((4, 3), dtype=torch.float64),
            W,
            torch.zeros(4, dtype=torch.int64),
            linear_bias=np.ones(5),
        )


def test_mixed_devices_are_rejected() -> None:
    """torch cpu + meta: ValueError naming the arguments and devices."""
    h = torch.ones((4, 3), dtype=torch.float64)
    W = torch.ones((5, 3), dtype=torch.float64, device="meta")
    with pytest.raises(ValueError, match="device"):
        xsoftmax.linear_cross_entropy(h, W, torch.zeros(4, dtype=torch.int64))


# --------------------------------------------------------------------------------------
# cross_entropy's softcap and z_loss: the same function of the logits
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_softcap_and_z_loss_textbook(backend: Any, reduction: str) -> None:
    """cross_entropy(softcap=, z_loss=) equals the textbook float64 formula on every backend."""
    rng = np.random.default_rng(40)
    x = rng.standard_normal((6, 9)) * 4
    t = np.array([1, 2, -100, 0, 8, 3])
    weight = rng.random(9) + 0.5
    capped = 2.5 * np.tanh(x / 2.5)
    lse = np.log(np.exp(capped).sum(axis=1))
    keep = t != -100
    ce = F.cross_entropy(
        torch.tensor(capped), torch.tensor(t), weight=torch.tensor(weight), reduction="none"
    ).numpy()
    z = 0.05 * lse**2 * keep
    den = weight[np.where(keep, t, 0)][keep].sum()
    want = {
        "none": ce + z,
        "sum": ce.sum() + z.sum(),
        "mean": ce.sum() / den + z.sum() / keep.sum(),
    }
    got = xsoftmax.cross_entropy(
        to(backend, x),
        to(backend, t),
        weight=to(backend, weight),
        softcap=2.5,
        z_loss=0.05,
        reduction=reduction,
    )
    close(got, want[reduction], backend, rtol=1e-12)
    fused = xsoftmax.linear_cross_entropy(
        to(backend, x),
        to(backend, np.eye(9)),
        to(backend, t),
        weight=to(backend, weight),
        softcap=2.5,
        z_loss=0.05,
        reduction=reduction,
        chunk_size=4,
    )
    close(fused, backend.to_numpy(got), backend, rtol=1e-12)


def test_cross_entropy_softcap_z_loss_errors() -> None:
    """Bad softcap / z_loss on cross_entropy: the same errors as linear_cross_entropy."""
    x, t = np.zeros((2, 3)), np.array([0, 1])
    with pytest.raises(ValueError, match="softcap"):
        xsoftmax.cross_entropy(x, t, softcap=0.0)
    with pytest.raises(ValueError, match="z_loss"):
        xsoftmax.cross_entropy(x, t, z_loss=-1.0)
    with pytest.raises(TypeError, match="logits"):
        xsoftmax.cross_entropy(np.zeros((2, 3), np.int64), t, softcap=1.0)


@pytest.mark.parametrize("library", ["torch", "jax", "dask", "array_api_strict"])
def test_docs_page_backend_examples_run(library: str) -> None:
    """The per-backend examples of docs/linear_cross_entropy.md run and their asserts hold."""
    import re
    from pathlib import Path

    pytest.importorskip(library)
    page = Path(__file__).parent.parent / "docs" / "linear_cross_entropy.md"
    if not page.exists():
        pytest.skip("docs/linear_cross_entropy.md not found (installed package)")
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)
    mine = [b for b in blocks if not b.startswith(">>>") and f"import {library}" in b]
    assert mine, f"no {library} example on the page"
    for code in mine:
        exec(compile(code, str(page), "exec"), {})
