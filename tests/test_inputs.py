"""Inputs are never written into: writable inputs, every public function, every backend.

The ``numpy`` backend of the other test files passes read-only arrays, so a write
into an input raises there, and a path that writes only into *writable* inputs stays
invisible. Here every input is writable: NumPy arrays with ``WRITEABLE`` set (and
writable views of them), torch tensors (with and without ``requires_grad``),
array-api-strict and JAX arrays, and Dask arrays over writable NumPy chunks. Every
input array of a case (logits, targets, weights, ``b``, ``where``, ``pos_weight``)
is copied before the call and compared bit for bit after it (the results are computed
first, so a lazy write shows too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xsoftmax

N, C = 6, 5
BIG_ROWS, BIG_C = 1100, 512  # > 2 MiB in float32: the cache-blocked and in-place paths


def _logits(dtype: str, n: int = N, c: int = C, seed: int = 0) -> np.ndarray:
    """Ordinary rows and every kind of extreme row the kernels special-case."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c)) * 3
    big = float(np.finfo(dtype if dtype != "bfloat16" else "float32").max) / 2
    x[1] = -np.inf  # fully -inf row
    x[2, 0] = np.inf  # a +inf entry
    x[3, 1] = np.nan  # a NaN entry
    x[4, :2] = (big, -big)  # extreme finite magnitudes (overflowing shifts)
    x[5, :3] = (x[5, 0], x[5, 0], -np.inf)  # a tied maximum and a -inf entry
    return x


def _inputs(backend: Any, dtype: str, n: int = N, c: int = C) -> dict[str, Any]:
    """Writable inputs of ``backend`` for every function (``dtype`` for the floating ones)."""
    rng = np.random.default_rng(1)
    x = _logits(dtype, n, c)
    t = rng.integers(0, c, size=n)
    t[min(2, n - 1)] = -100
    raw = {
        "x": (x, dtype),
        "xT": (x, dtype),  # made a transposed (c, n) view below: classes on axis 0
        "x3": (np.moveaxis(x.reshape(n, 1, c), 2, 1), dtype),  # (n, c, 1): class axis 1
        "t": (t, "int64"),
        "t32": (t.astype("int32"), "int32"),
        "t3": (t.reshape(n, 1), "int64"),
        "pt": (rng.dirichlet(np.ones(c), size=n), dtype),
        "w": (rng.uniform(0.5, 2.0, size=c), dtype),
        "b": (rng.uniform(-1, 1, size=(n, c)) * (rng.uniform(size=(n, c)) < 0.8), dtype),
        "mask": (rng.uniform(size=(n, c)) < 0.7, None),
        "y": (rng.uniform(size=(n, c)), dtype),
        "yT": (rng.uniform(size=(n, c)), dtype),
        "pw": (rng.uniform(0.5, 3.0, size=c), dtype),
        "lp": (-np.abs(x), dtype),
        "h": (rng.normal(size=(n, 5)) * 2, dtype),  # linear_cross_entropy's input (n, d)
        "lw": (rng.normal(size=(c, 5)), dtype),  # its linear_weight (C, d)
        "lb": (np.where(rng.uniform(size=c) < 0.2, -np.inf, rng.normal(size=c)), dtype),
    }
    out = {k: backend.writable(np.asarray(v), dtype=d) for k, (v, d) in raw.items()}
    for k in ("xT", "yT"):
        out[k] = backend.xp.permute_dims(out[k], (1, 0))
    return out


X = xsoftmax
CallT = Callable[[dict[str, Any], Any], Any]  # (inputs, backend) -> result(s)

CALLS: dict[str, list[tuple[str, CallT]]] = {
    "softmax": [
        ("axis=-1", lambda a, b: X.softmax(a["x"])),
        ("axis=0 view", lambda a, b: X.softmax(a["xT"], axis=0)),
        ("axes (0, 1)", lambda a, b: X.softmax(a["x"], axis=(0, 1))),
        ("where", lambda a, b: X.softmax(a["x"], where=a["mask"])),
        ("dtype", lambda a, b: X.softmax(a["x"], dtype=b.dtype("float64"))),
    ],
    "log_softmax": [
        ("axis=-1", lambda a, b: X.log_softmax(a["x"])),
        ("axis=0 view", lambda a, b: X.log_softmax(a["xT"], axis=0)),
        ("where axis=0", lambda a, b: X.log_softmax(a["x"], axis=0, where=a["mask"])),
        ("class axis 1", lambda a, b: X.log_softmax(a["x3"], axis=1)),
    ],
    "logsumexp": [
        ("all axes", lambda a, b: X.logsumexp(a["x"])),
        ("axis=1 keepdims", lambda a, b: X.logsumexp(a["x"], axis=1, keepdims=True)),
        ("b sign", lambda a, b: X.logsumexp(a["x"], axis=1, b=a["b"], return_sign=True)),
        ("b axis=0", lambda a, b: X.logsumexp(a["x"], axis=0, b=a["b"])),
        ("where", lambda a, b: X.logsumexp(a["x"], axis=-1, where=a["mask"])),
        ("b where", lambda a, b: X.logsumexp(a["x"], axis=0, b=a["b"], where=a["mask"])),
    ],
    "cross_entropy": [
        ("index weight", lambda a, b: X.cross_entropy(a["x"], a["t"], weight=a["w"])),
        (
            "index smoothing none",
            lambda a, b: X.cross_entropy(
                a["x"], a["t32"], weight=a["w"], label_smoothing=0.2, reduction="none"
            ),
        ),
        ("index axis=0", lambda a, b: X.cross_entropy(a["xT"], a["t"], axis=0, reduction="sum")),
        ("index axis=1 3-d", lambda a, b: X.cross_entropy(a["x3"], a["t3"], axis=1)),
        ("prob weight", lambda a, b: X.cross_entropy(a["x"], a["pt"], weight=a["w"])),
        (
            "prob smoothing none",
            lambda a, b: X.cross_entropy(a["x"], a["pt"], label_smoothing=0.1, reduction="none"),
        ),
    ],
    "nll_loss": [
        ("weight none", lambda a, b: X.nll_loss(a["lp"], a["t"], weight=a["w"], reduction="none")),
        ("mean", lambda a, b: X.nll_loss(a["x"], a["t32"])),
        ("axis=0", lambda a, b: X.nll_loss(a["xT"], a["t"], axis=0, weight=a["w"])),
    ],
    "cross_entropy_with_grad": [
        (
            "index weight smoothing",
            lambda a, b: X.cross_entropy_with_grad(
                a["x"], a["t"], weight=a["w"], label_smoothing=0.3
            ),
        ),
        (
            "index none axis=0",
            lambda a, b: X.cross_entropy_with_grad(a["xT"], a["t"], axis=0, reduction="none"),
        ),
        (
            "prob weight",
            lambda a, b: X.cross_entropy_with_grad(
                a["x"], a["pt"], weight=a["w"], reduction="sum"
            ),
        ),
    ],
    "linear_cross_entropy": [
        (
            "index weight bias",
            lambda a, b: X.linear_cross_entropy(
                a["h"], a["lw"], a["t"], linear_bias=a["lb"], weight=a["w"], chunk_size=2
            ),
        ),
        (
            "prob smoothing z_loss softcap none",
            lambda a, b: X.linear_cross_entropy(
                a["h"],
                a["lw"],
                a["pt"],
                label_smoothing=0.1,
                z_loss=0.01,
                softcap=5.0,
                reduction="none",
            ),
        ),
        (
            "with_grad",
            lambda a, b: X.linear_cross_entropy_with_grad(
                a["h"], a["lw"], a["t32"], linear_bias=a["lb"], label_smoothing=0.2
            ),
        ),
    ],
    "binary_cross_entropy_with_logits": [
        ("plain", lambda a, b: X.binary_cross_entropy_with_logits(a["x"], a["y"])),
        (
            "weight pos_weight none",
            lambda a, b: X.binary_cross_entropy_with_logits(
                a["x"], a["y"], weight=a["y"], pos_weight=a["pw"], reduction="none"
            ),
        ),
        (
            "view sum",
            lambda a, b: X.binary_cross_entropy_with_logits(
                a["xT"], a["yT"], weight=a["yT"], reduction="sum"
            ),
        ),
    ],
}


def _bits(backend: Any, a: Any) -> np.ndarray:
    """A NumPy copy of ``a``'s values (computing a lazy array), as raw bytes."""
    v = np.array(backend.to_numpy(a), copy=True)
    return np.frombuffer(np.ascontiguousarray(v).tobytes(), dtype=np.uint8)


def _run_and_check(backend: Any, inputs: dict[str, Any], what: str, call: CallT) -> None:
    before = {k: _bits(backend, v) for k, v in inputs.items()}
    versions = {k: getattr(v, "_version", None) for k, v in inputs.items()}
    res = call(inputs, backend)
    for r in res if isinstance(res, tuple) else (res,):
        backend.to_numpy(r)  # evaluate lazy results before looking at the inputs
    for k, v in inputs.items():
        after = _bits(backend, v)
        assert np.array_equal(after, before[k]), f"{backend.name} {what}: input {k!r} was written"
        assert getattr(v, "_version", None) == versions[k], (
            f"{backend.name} {what}: input {k!r} was written in place (torch version counter)"
        )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # Dask: compute-time warnings of NumPy
@pytest.mark.parametrize("func", sorted(CALLS))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_writable_inputs_never_written(backend: Any, func: str, dtype: str) -> None:
    """Every input of every call is bitwise unchanged after it, extreme rows included."""
    if dtype not in backend.float_dtypes():
        pytest.skip(f"{backend.name} has no {dtype}")
    inputs = _inputs(backend, dtype)
    if backend.name == "numpy":
        assert all(v.flags.writeable for v in inputs.values())
    for what, call in CALLS[func]:
        _run_and_check(backend, inputs, f"{func} {what} {dtype}", call)


@pytest.mark.parametrize("func", sorted(CALLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_writable_inputs_never_written_large(backend: Any, func: str, dtype: str) -> None:
    """Inputs large enough for the cache-blocked drivers and the NumPy in-place kernels."""
    if backend.lazy or backend.name == "jax":
        pytest.skip("the blocked drivers run on eager, writable arrays only")
    inputs = _inputs(backend, dtype, BIG_ROWS, BIG_C)
    for what, call in CALLS[func]:
        if "view" in what or "axis=0" in what:
            continue  # the blocked paths reduce over the last axis
        _run_and_check(backend, inputs, f"{func} {what} {dtype} large", call)


@pytest.mark.parametrize("func", sorted(CALLS))
def test_torch_requires_grad_inputs_never_written(backend: Any, func: str) -> None:
    """torch tensors that require grad: unchanged after the call and after backward()."""
    if not backend.name.startswith("torch"):
        pytest.skip("torch only")
    import torch

    inputs = _inputs(backend, "float64")
    for v in inputs.values():
        if v.is_floating_point():
            v.requires_grad_(True)
    for what, call in CALLS[func]:

        def with_backward(a: dict[str, Any], b: Any, call: CallT = call) -> Any:
            res = call(a, b)
            out = res[0] if isinstance(res, tuple) else res
            if out.requires_grad:
                out[torch.isfinite(out)].sum().backward()
            return res

        _run_and_check(backend, inputs, f"{func} {what} requires_grad", with_backward)


# --------------------------------------------------------------------------------------
# Arrays of the wrong kind: None, numpy.ma.MaskedArray, sparse torch tensors
# --------------------------------------------------------------------------------------
# func -> (required positional arrays, optional array keywords)
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "softmax": (("x",), ("where",)),
    "log_softmax": (("x",), ("where",)),
    "logsumexp": (("x",), ("b", "where")),
    "cross_entropy": (("logits", "target"), ("weight",)),
    "cross_entropy_with_grad": (("logits", "target"), ("weight",)),
    "nll_loss": (("log_probs", "target"), ("weight",)),
    "binary_cross_entropy_with_logits": (("logits", "target"), ("weight", "pos_weight")),
}
ARGS = [(f, a) for f, (req, opt) in SIGNATURES.items() for a in (*req, *opt)]
REQUIRED = [(f, a) for f, (req, _) in SIGNATURES.items() for a in req]
ELEMENTWISE = ("binary_cross_entropy_with_logits",)


def _valid(func: str, name: str) -> np.ndarray:
    """A valid NumPy value of argument ``name`` of ``func`` (logits of shape (N, C))."""
    rng = np.random.default_rng(7)
    if name in ("x", "logits", "log_probs"):
        return rng.normal(size=(N, C))
    if name == "target":
        if func in ELEMENTWISE:
            return rng.uniform(size=(N, C))
        return rng.integers(0, C, size=N)
    if name == "where":
        return rng.uniform(size=(N, C)) < 0.7
    if name == "b" or (name == "weight" and func in ELEMENTWISE):
        return rng.uniform(0.5, 2.0, size=(N, C))
    return rng.uniform(0.5, 2.0, size=C)  # class weights, pos_weight


def _call_with(func: str, convert: Callable[[np.ndarray], Any], **given: Any) -> Any:
    """Call ``func`` with every array argument valid (converted), except those ``given``."""
    req, opt = SIGNATURES[func]
    values = {n: given[n] if n in given else convert(_valid(func, n)) for n in (*req, *opt)}
    return getattr(xsoftmax, func)(*(values[n] for n in req), **{n: values[n] for n in opt})


def _raises_naming(exc: type[Exception], name: str, fn: Callable[[], Any]) -> str:
    from oracles import names_argument

    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    assert names_argument(msg, name), f"message does not name `{name}`: {msg!r}"
    return msg


@pytest.mark.parametrize(("func", "arg"), REQUIRED)
def test_none_for_a_required_array(backend: Any, func: str, arg: str) -> None:
    """None in place of a required array: TypeError naming it (not AttributeError)."""
    msg = _raises_naming(TypeError, arg, lambda: _call_with(func, backend.asarray, **{arg: None}))
    assert func in msg, msg
    assert "None" in msg, msg


@pytest.mark.parametrize(("func", "arg"), ARGS)
@pytest.mark.parametrize("masked", ["some", "nomask"])
def test_masked_array_is_refused(func: str, arg: str, masked: str) -> None:
    """numpy.ma.MaskedArray anywhere: TypeError naming it and pointing to ``where=``
    (its mask would otherwise be ignored, and masked data would take part)."""
    data = _valid(func, arg)
    mask = np.zeros(data.shape, bool) if masked == "nomask" else (np.arange(data.size) % 3 == 0)
    value = np.ma.MaskedArray(data, mask=mask.reshape(data.shape))
    msg = _raises_naming(TypeError, arg, lambda: _call_with(func, np.asarray, **{arg: value}))
    assert "MaskedArray" in msg, msg
    assert "where=" in msg, msg


TORCH_LAYOUTS = ("coo", "csr", "csc", "bsr", "bsc")


@pytest.mark.filterwarnings("ignore:Sparse .* support is in beta:UserWarning")
@pytest.mark.parametrize(("func", "arg"), ARGS)
@pytest.mark.parametrize("layout", TORCH_LAYOUTS)
def test_sparse_torch_tensor_is_refused(func: str, arg: str, layout: str) -> None:
    """Sparse torch tensors (COO, CSR, CSC, BSR, BSC): TypeError naming the argument."""
    torch = pytest.importorskip("torch")
    dense = torch.asarray(_valid(func, arg))
    if dense.ndim != 2 and layout != "coo":
        pytest.skip("compressed layouts are 2-D")
    sparse = {
        "coo": lambda: dense.to_sparse(),
        "csr": lambda: dense.to_sparse_csr(),
        "csc": lambda: dense.to_sparse_csc(),
        "bsr": lambda: dense.to_sparse_bsr((1, 1)),
        "bsc": lambda: dense.to_sparse_bsc((1, 1)),
    }[layout]()
    msg = _raises_naming(TypeError, arg, lambda: _call_with(func, torch.asarray, **{arg: sparse}))
    assert "sparse" in msg, msg
    assert "dense" in msg, msg


# --------------------------------------------------------------------------------------
# torch.func transforms: functorch-wrapped tensors are traced, never read
# --------------------------------------------------------------------------------------
def _torch_cases() -> dict[str, tuple[Callable[..., Any], Callable[..., Any], str]]:
    """name -> (xsoftmax call, torch reference, target kind) on one vmapped slice."""
    import torch
    import torch.nn.functional as F

    w = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.25], dtype=torch.float64)
    return {
        "softmax": (lambda x, t: X.softmax(x), lambda x, t: torch.softmax(x, -1), "index"),
        "log_softmax": (
            lambda x, t: X.log_softmax(x, axis=0),
            lambda x, t: torch.log_softmax(x, 0),
            "index",
        ),
        "logsumexp": (
            lambda x, t: X.logsumexp(x, axis=-1),
            lambda x, t: torch.logsumexp(x, -1),
            "index",
        ),
        "softmax where": (
            lambda x, m: X.softmax(x, where=m),
            lambda x, m: torch.softmax(x.masked_fill(~m, -torch.inf), -1),
            "mask",
        ),
        "logsumexp b": (
            lambda x, b: X.logsumexp(x, axis=-1, b=b),
            lambda x, b: torch.logsumexp(x + torch.log(b), -1),
            "b",
        ),
        "logsumexp signed b": (
            lambda x, b: torch.stack(X.logsumexp(x, axis=-1, b=b - 0.5, return_sign=True)),
            lambda x, b: torch.stack(
                [
                    torch.log(torch.abs(torch.sum((b - 0.5) * torch.exp(x), -1))),
                    torch.sign(torch.sum((b - 0.5) * torch.exp(x), -1)),
                ]
            ),
            "b",
        ),
        "cross_entropy": (
            lambda x, t: X.cross_entropy(x, t, weight=w),
            lambda x, t: F.cross_entropy(x, t, weight=w),
            "index",
        ),
        # (torch's own weight + label_smoothing + ignore_index does not vmap: masked_select)
        "cross_entropy smoothing": (
            lambda x, t: X.cross_entropy(x, t, label_smoothing=0.1, reduction="sum"),
            lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1, reduction="sum"),
            "index",
        ),
        "cross_entropy none": (
            lambda x, t: X.cross_entropy(x, t, reduction="none"),
            lambda x, t: F.cross_entropy(x, t, reduction="none"),
            "index",
        ),
        "cross_entropy prob": (
            lambda x, t: X.cross_entropy(x, t, weight=w, reduction="sum"),
            lambda x, t: F.cross_entropy(x, t, weight=w, reduction="sum"),
            "prob",
        ),
        "cross_entropy_with_grad": (
            lambda x, t: X.cross_entropy_with_grad(x, t, weight=w)[0],
            lambda x, t: F.cross_entropy(x, t, weight=w),
            "index",
        ),
        "nll_loss": (
            lambda x, t: X.nll_loss(x, t, weight=w),
            lambda x, t: F.nll_loss(x, t, weight=w),
            "index",
        ),
        "bce": (
            lambda x, t: X.binary_cross_entropy_with_logits(x, t, pos_weight=w),
            lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=w),
            "prob",
        ),
    }


def _torch_batch(kind: str) -> tuple[Any, Any]:
    """(B, N, C) float64 logits and (B, N) class indices (one ignored), or (B, N, C)
    probabilities, ``where`` masks or positive ``b`` weights."""
    import torch

    rng = np.random.default_rng(11)
    x = torch.asarray(rng.normal(size=(3, N, C)) * 3)
    if kind == "mask":
        mask = rng.uniform(size=(3, N, C)) < 0.7
        mask[..., 0] = True  # no fully masked row (torch gives NaN there, xsoftmax 0)
        return x, torch.asarray(mask)
    if kind == "b":
        return x, torch.asarray(rng.uniform(0.1, 1.0, size=(3, N, C)))
    if kind == "prob":
        return x, torch.asarray(rng.dirichlet(np.ones(C), size=(3, N)))
    t = rng.integers(0, C, size=(3, N))
    t[1, 2] = -100
    return x, torch.asarray(t)


TORCH_CASES = (
    "softmax",
    "softmax where",
    "logsumexp b",
    "logsumexp signed b",
    "log_softmax",
    "logsumexp",
    "cross_entropy",
    "cross_entropy smoothing",
    "cross_entropy none",
    "cross_entropy prob",
    "cross_entropy_with_grad",
    "nll_loss",
    "bce",
)


@pytest.mark.parametrize("case", TORCH_CASES)
def test_torch_func_vmap_and_per_sample_grad(case: str) -> None:
    """``torch.func.vmap`` and ``vmap(grad(...))`` (per-sample gradients) run and equal
    the same transforms of torch's own functions."""
    torch = pytest.importorskip("torch")
    from torch.func import grad, vmap

    ours, ref, kind = _torch_cases()[case]
    x, t = _torch_batch(kind)
    got, want = vmap(ours)(x, t), vmap(ref)(x, t)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g_got = vmap(grad(lambda a, b: ours(a, b).sum()))(x, t)
    g_want = vmap(grad(lambda a, b: ref(a, b).sum()))(x, t)
    torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-12)


def test_torch_func_per_sample_grad_of_single_samples() -> None:
    """The per-sample-gradient recipe: one unbatched sample (logits (C,), a 0-d target)
    per vmapped call, with the gradient with respect to a weight matrix."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    from torch.func import grad, vmap

    rng = np.random.default_rng(12)
    feats = torch.asarray(rng.normal(size=(8, 4)))
    labels = torch.asarray(rng.integers(0, C, size=8))
    weights = torch.asarray(rng.normal(size=(4, C)))

    def ours(wm: Any, f: Any, y: Any) -> Any:
        return X.cross_entropy(f @ wm, y)

    def ref(wm: Any, f: Any, y: Any) -> Any:
        return F.cross_entropy(f @ wm, y)

    got = vmap(grad(ours), in_dims=(None, 0, 0))(weights, feats, labels)
    want = vmap(grad(ref), in_dims=(None, 0, 0))(weights, feats, labels)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("func", ["cross_entropy", "nll_loss", "cross_entropy_with_grad"])
def test_torch_func_vmap_bad_index_is_nan(func: str) -> None:
    """Under vmap an out-of-range class index cannot raise (no value may be read): that
    sample's loss is NaN, the others are right; outside vmap it stays a ValueError."""
    torch = pytest.importorskip("torch")
    from torch.func import vmap

    x, t = _torch_batch("index")
    t = t.clone()
    t[0, 1] = C + 2
    fn = getattr(X, func)

    def call(a: Any, b: Any) -> Any:
        res = fn(a, b, reduction="none")
        return res[0] if isinstance(res, tuple) else res

    got = vmap(call)(x, t)
    assert torch.isnan(got[0, 1])
    finite = torch.ones_like(got, dtype=torch.bool)
    finite[0, 1] = False
    assert not torch.isnan(got[finite]).any()
    with pytest.raises(ValueError, match="target"):
        call(x[0], t[0])


@pytest.mark.parametrize(("func", "arg"), ARGS)
@pytest.mark.parametrize("kind", ["scipy csr_array", "scipy coo_matrix", "jax BCOO"])
def test_other_sparse_arrays_are_refused(func: str, arg: str, kind: str) -> None:
    """SciPy sparse arrays/matrices and JAX's BCOO: TypeError naming the argument."""
    dense = _valid(func, arg)
    if kind.startswith("scipy"):
        sparse = pytest.importorskip("scipy.sparse")
        if dense.ndim != 2:
            pytest.skip("SciPy sparse formats are 2-D")
        value = (sparse.csr_array if "csr" in kind else sparse.coo_matrix)(dense)
        convert: Callable[[np.ndarray], Any] = np.asarray
    else:
        jsparse = pytest.importorskip("jax.experimental.sparse")
        import jax.numpy as jnp

        value = jsparse.BCOO.fromdense(jnp.asarray(dense))
        convert = jnp.asarray
    msg = _raises_naming(TypeError, arg, lambda: _call_with(func, convert, **{arg: value}))
    assert "sparse" in msg, msg
    assert "dense" in msg, msg


@pytest.mark.parametrize("func", sorted(CALLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_writable_inputs_never_written_threaded_kernels(
    backend: Any, func: str, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled CPU kernels with rows split over threads (their size threshold
    lowered so that small inputs take that path too)."""
    if backend.name != "numpy":
        pytest.skip("the compiled CPU kernels take NumPy arrays")
    try:
        from xsoftmax._kernels.numba import rows as cpu
    except ImportError:  # pragma: no cover - no kernel layer
        pytest.skip("no compiled CPU kernel layer")
    if not hasattr(cpu, "_PARALLEL_MIN_SIZE") or not cpu.available():
        pytest.skip("the compiled CPU kernels are not in use")
    monkeypatch.setattr(cpu, "_PARALLEL_MIN_SIZE", 1)
    inputs = _inputs(backend, dtype, 64, 3 * C)
    for what, call in CALLS[func]:
        _run_and_check(backend, inputs, f"{func} {what} {dtype} threaded", call)
