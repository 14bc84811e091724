"""The Triton kernels (``xsoftmax/_kernels/triton``), run by Triton's interpreter on the CPU.

``nox -s triton-interpret`` sets ``TRITON_INTERPRET=1`` before triton is imported
and runs this file and ``test_triton_ptx.py``. Without triton (every other
session) the module is skipped; with triton and a CUDA device but no
``TRITON_INTERPRET`` (a GPU machine), the same tests run on the device.

Oracles are independent of the kernels: the same shifted sums in NumPy's long
double (64-bit significand, 11 bits beyond float64, checked against mpmath in
:func:`test_long_double_oracle_agrees_with_mpmath`), torch's float64 functions and
torch autograd in float64.

Where the interpreter differs from a GPU (each test that depends on it says so):

* it runs the programs of a launch one after another: no test here depends on the
  order of programs (each row is its own program);
* it computes with NumPy: float64 ``+ - * fma /`` are IEEE operations there as on the
  GPU (``add.rn.f64``, ``fma.rn.f64``, ``div.rn.f64``), so the kernels' values
  should agree with the device's to the bit; the GPU's approximate float32
  instructions (``ex2.approx``...) do not exist in the interpreter, and
  ``tl.exp`` there is NumPy's accurate exp: the ulps tests cannot see a kernel
  that calls ``tl.exp``; the PTX audit (``test_triton_ptx.py``) can, and does;
* it treats a bare Python float in a kernel as float64 where the GPU compiler makes
  it float32: the kernels use float64 ``constexpr`` constants (``_f64``), and the
  PTX audit checks that ``log2(e)`` and ``ln(2)`` reach the PTX as float64;
* it cannot run libdevice calls: the kernels make none (the PTX audit checks it);
* it reads only torch storages: a CuPy array is viewed through DLPack there
  (:func:`test_cupy_shaped_stand_in`), where a GPU gets the
  :class:`~xsoftmax._kernels.triton.cupy.DevicePointer`;
* NumPy warns on ``inf - inf``; the launches silence that around interpreted runs.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("triton") is None:
    pytest.skip(
        "triton is not installed (the `gpu` extra); `nox -s triton-interpret` runs these tests",
        allow_module_level=True,
    )
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
if not INTERPRET and not torch.cuda.is_available():
    pytest.skip(
        "the Triton kernels need TRITON_INTERPRET=1 (set by `nox -s triton-interpret` before "
        "triton is imported) or a CUDA device",
        allow_module_level=True,
    )

import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from xsoftmax._kernels.triton import entry  # noqa: E402
from xsoftmax._kernels.triton.cupy import DevicePointer  # noqa: E402

DEVICE = "cpu" if INTERPRET else "cuda"
LD = np.longdouble
ULPS = 4.0
BLOCKS = (16, 64, 256)
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True)  # the interpreter is slow

pytestmark = pytest.mark.skipif(
    np.finfo(LD).nmant < 63, reason="the oracle needs an 80-bit long double (x86)"
)


# --------------------------------------------------------------------------- oracles


def _shifted(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``x`` (finite max): ``z = x - m`` and ``log1p(rest)`` in long double."""
    with np.errstate(all="ignore"):
        return _shifted_quiet(x)


def _shifted_quiet(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xl = x.astype(LD)
    m = xl.max(axis=-1, keepdims=True)
    z = xl - m
    w = np.exp(z)
    top = np.argmax(xl, axis=-1)
    w[np.arange(len(x)), top] = 0
    lg = np.log1p(w.sum(axis=-1, keepdims=True))
    return m, z, lg


def ref_rows(x: np.ndarray, op: str) -> np.ndarray:
    """softmax / log_softmax / logsumexp (kept axis) of the rows of ``x``, long double."""
    m, z, lg = _shifted(x)
    if op == "log_softmax":
        return z - lg
    if op == "softmax":
        return np.exp(z - lg)
    return m + lg


def ref_ce(x: np.ndarray, t: np.ndarray, **kw: Any) -> np.ndarray:
    """Per-sample cross entropy, torch's definition, long double (``softcap`` in float64).

    A target out of range that is not ``ignore_index`` gives NaN (E27's rule on GPUs).
    """
    with np.errstate(all="ignore"):
        return _ref_ce(x, t, **kw)


def _ref_ce(x: np.ndarray, t: np.ndarray, **kw: Any) -> np.ndarray:
    w = kw.get("weight")
    w = np.ones(x.shape[1], LD) if w is None else w.astype(LD)
    eps = kw.get("label_smoothing", 0.0)
    cap = kw.get("softcap")
    if cap is not None:
        x = cap * np.tanh(x.astype(np.float64) / cap)
    m, z, lg = _shifted(x)
    logp = z - lg
    ignored = t == kw.get("ignore_index", -100)
    bad = ~ignored & ((t < 0) | (t >= x.shape[1]))
    tc = np.where(ignored | bad, 0, t)
    nll = -logp[np.arange(len(x)), tc]
    ce = (1 - eps) * w[tc] * nll
    if eps:
        ce = ce + (eps / x.shape[1]) * (-(logp * w).sum(axis=-1))
    ce = ce + kw.get("z_loss", 0.0) * (m[:, 0] + lg[:, 0]) ** 2
    return np.where(ignored, 0, np.where(bad, np.nan, ce))


def ulps(got: Any, ref: np.ndarray) -> np.ndarray:
    """``|got - ref|`` in ulps of ``got``'s dtype at ``ref`` (equal infinities: 0)."""
    got_np = got.detach().cpu().to(torch.float64).numpy().astype(LD)
    dt = {torch.float32: np.float32, torch.float64: np.float64}.get(got.dtype, np.float32)
    if got.dtype in (torch.float16, torch.bfloat16):  # bits beyond float32: scale at the end
        dt = np.float32
    ref = np.asarray(ref, LD)
    with np.errstate(all="ignore"):  # references beyond the dtype's range (-2 finfo.max)
        spacing = np.spacing(np.abs(ref).astype(dt)).astype(LD)
        spacing = np.maximum(spacing, LD(np.finfo(dt).smallest_subnormal))
        err = np.abs(got_np - ref) / spacing
        rounded = ref.astype(dt).astype(LD)  # beyond the range: the correctly rounded ±inf
    same = (got_np == ref) | (np.isnan(got_np) & np.isnan(ref))
    same |= np.isinf(rounded) & (got_np == rounded)
    out = np.where(same, 0, err)
    if got.dtype == torch.float16:
        out = out / 2**13
    if got.dtype == torch.bfloat16:
        out = out / 2**16
    return out.astype(np.float64)


def tensor(a: Any, dtype: Any = torch.float64) -> Any:
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=DEVICE)


# --------------------------------------------------------------------------- inputs


def hostile_rows(dtype: Any, n_cols: int, seed: int = 0) -> np.ndarray:
    """Rows every kernel must get right: extremes, ``-inf`` sprinkles, ties, one dominant entry."""
    rng = np.random.default_rng(seed)
    big = float(torch.finfo(dtype).max)
    rows = [
        rng.uniform(-1, 1, n_cols) * big,  # uniform in ±finfo.max
        np.full(n_cols, 1e8),  # all equal, large
        np.r_[big, -big, np.zeros(n_cols - 2)] if n_cols >= 2 else np.array([big]),
        np.r_[big, big, np.zeros(n_cols - 2)] if n_cols >= 2 else np.array([-big]),
        np.r_[0.0, rng.uniform(-60, -30, n_cols - 1)],  # a single dominant entry
        np.r_[1e8, 1e8 - 64 * np.ones(n_cols - 1)],  # a large common offset
        rng.normal(0, 5, n_cols),
        rng.normal(0, 1e30, n_cols),
    ]
    x = np.stack([r[:n_cols] for r in rows])
    sprinkle = rng.random(x.shape) < 0.3
    sprinkle[:, 0] = False  # keep a finite entry in each row
    x[-2:][sprinkle[-2:]] = -np.inf
    return x


def compensation_row(n_cols: int) -> np.ndarray:
    """float64: ``rest = 1/2 + (n - 2) 2**-55``, many terms each below half an ulp of 1/2.

    A plain running sum (per lane or over blocks) drops every small term that follows
    the 1/2; only the compensated sums keep them (the top's log-probability is then
    off by hundreds of ulps without them).
    """
    x = np.full(n_cols, np.log(2.0**-55))
    x[0] = 0.0
    x[1] = np.log(0.5)
    return x[None, :]


# --------------------------------------------------------------------------- row kernels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize(("n_cols", "block"), [(1, 16), (7, 16), (300, 64), (700, 256)])
def test_rows_hostile(dtype: Any, op: str, n_cols: int, block: int) -> None:
    x_np = hostile_rows(dtype, n_cols)
    x = tensor(x_np, dtype)
    exact = x.cpu().to(torch.float64).numpy()
    got = (
        entry.logsumexp(x, (1,), block=block)
        if op == "logsumexp"
        else entry.softmax_family(op, x, (1,), block=block)
    )
    assert got.dtype == dtype
    assert got.device.type == DEVICE
    err = ulps(got, ref_rows(exact, op))
    assert err.max() <= ULPS, (op, np.unravel_index(err.argmax(), err.shape), err.max())
    if op == "softmax":
        assert torch.all((got >= 0) & (got <= 1))
        total = got.to(torch.float64).sum(dim=1)
        assert torch.allclose(total, torch.ones_like(total), rtol=0, atol=4 * n_cols * 2e-7)


def test_long_double_oracle_agrees_with_mpmath() -> None:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 200
    x = hostile_rows(torch.float64, 5, seed=3)[4:6]
    got = entry.softmax_family("log_softmax", tensor(x), (1,))
    ours = ref_rows(x, "log_softmax")
    for i, row in enumerate(x):
        lse = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in row))
        exact = np.array([float(mpmath.mpf(v) - lse) for v in row])
        # ``exact`` is mpmath's value rounded to float64 (half an ulp); ours is far closer
        assert np.all(np.abs(ours[i] - exact) <= 0.52 * np.spacing(np.abs(exact)))
        assert ulps(got[i], exact).max() <= ULPS


def test_compensated_sums_keep_small_terms() -> None:
    # 2000 entries over 16-wide blocks: 125 steps per lane after the 1/2 term
    x = compensation_row(2000)
    got = entry.softmax_family("log_softmax", tensor(x), (1,), block=16)
    err = ulps(got, ref_rows(x, "log_softmax"))
    assert err.max() <= ULPS, err.max()


def test_shift_error_term_matters_in_float64() -> None:
    # softmax of an entry far below the max: exp(z) needs z's rounding error (|z| ~ 700)
    x = np.array([[700.0 + 2.0**-40, 0.1, 1e-3, 3.3]])
    got = entry.softmax_family("softmax", tensor(x), (1,))
    assert ulps(got, ref_rows(x, "softmax")).max() <= ULPS


@st.composite
def row_cases(draw: Any) -> tuple[np.ndarray, Any, int]:
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    big = float(torch.finfo(dtype).max)
    n_rows = draw(st.integers(1, 3))
    n_cols = draw(st.integers(1, 200))
    scale = draw(st.sampled_from([1.0, 30.0, 1e4, 1e30, big]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = np.clip(rng.standard_normal((n_rows, n_cols)) * scale, -big, big)
    if draw(st.booleans()):
        drop = rng.random(x.shape) < 0.25
        drop[:, 0] = False
        x[drop] = -np.inf
    if draw(st.booleans()):
        x[:, rng.integers(n_cols)] = draw(st.sampled_from([0.0, 40.0, big]))
    return x, dtype, draw(st.sampled_from(BLOCKS))


@SETTINGS
@given(case=row_cases(), op=st.sampled_from(["softmax", "log_softmax", "logsumexp"]))
def test_rows_property(case: tuple[np.ndarray, Any, int], op: str) -> None:
    x_np, dtype, block = case
    x = tensor(x_np, dtype)
    exact = x.cpu().to(torch.float64).numpy()
    if op == "logsumexp":
        got = entry.logsumexp(x, (1,), block=block)
    else:
        got = entry.softmax_family(op, x, (1,), block=block)
    assert ulps(got, ref_rows(exact, op)).max() <= ULPS


def test_rows_special() -> None:
    inf, nan = np.inf, np.nan
    x = tensor([[-inf, -inf, -inf], [inf, 0.0, 1.0], [nan, 0.0, 1.0], [-inf, 0.0, nan]])
    sm = entry.softmax_family("softmax", x, (1,))
    lsm = entry.softmax_family("log_softmax", x, (1,))
    lse = entry.logsumexp(x, (1,))[:, 0]
    assert torch.isnan(sm).all()
    assert torch.isnan(lsm).all()
    assert lse[0] == -inf
    assert lse[1] == inf
    assert torch.isnan(lse[2:]).all()
    one = tensor([[-inf, 2.0, -inf]])
    assert entry.softmax_family("softmax", one, (1,)).tolist() == [[0.0, 1.0, 0.0]]
    assert entry.softmax_family("log_softmax", one, (1,)).tolist() == [[-inf, 0.0, -inf]]
    assert entry.logsumexp(tensor(np.zeros((2, 0))), (1,)).tolist() == [[-inf], [-inf]]
    assert entry.softmax_family("softmax", tensor(np.zeros((0, 3))), (1,)).shape == (0, 3)
    assert entry.softmax_family("softmax", tensor(np.zeros((2, 3))), (0,)) is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_keeps_dtype(dtype: Any) -> None:
    x = tensor(np.r_[np.zeros(69), 3.0][None, :], dtype)
    got = entry.softmax_family("log_softmax", x, (1,))
    assert got.dtype == dtype
    ref = ref_rows(x.to(torch.float64).cpu().numpy(), "log_softmax")
    assert ulps(got, ref).max() <= 1.0


def test_strided_and_3d_inputs_are_not_written() -> None:
    rng = np.random.default_rng(1)
    base = tensor(rng.normal(0, 3, (40, 6)))
    x = base.t()  # (6, 40), column stride 6
    before = base.clone()
    version = base._version
    got = entry.softmax_family("log_softmax", x, (1,), block=16)
    assert ulps(got, ref_rows(x.cpu().numpy(), "log_softmax")).max() <= ULPS
    x3 = base.reshape(4, 10, 6)
    got3 = entry.logsumexp(x3, (-1,))
    assert got3.shape == (4, 10, 1)
    assert torch.equal(base, before)
    assert base._version == version


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_rows_gradients_match_autograd(op: str) -> None:
    rng = np.random.default_rng(2)
    x_np = np.r_[rng.normal(0, 4, (3, 50)), [np.r_[1e8, 1e8, np.zeros(48)]]]
    x = tensor(x_np).requires_grad_()
    xr = tensor(x_np).requires_grad_()
    if op == "logsumexp":
        got, ref = entry.logsumexp(x, (1,), block=16), torch.logsumexp(xr, 1, keepdim=True)
    else:
        got, ref = entry.softmax_family(op, x, (1,), block=16), getattr(torch, op)(xr, 1)
    g = tensor(rng.normal(size=tuple(got.shape)))
    (dx,) = torch.autograd.grad(got, x, g)
    (dr,) = torch.autograd.grad(ref, xr, g)
    if op == "logsumexp":  # torch.logsumexp's gradient at [1e8, 1e8] is [1, 1]: use softmax
        dr[3] = g[3] * torch.softmax(xr[3].detach(), 0)
    torch.testing.assert_close(dx, dr, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- cross entropy

CE_OPTIONS = [
    {},
    {"weight": True},
    {"label_smoothing": 0.1},
    {"weight": True, "label_smoothing": 0.25, "ignore_index": 2},
    {"softcap": 30.0},
    {"z_loss": 1e-3},
    {"weight": True, "label_smoothing": 0.1, "softcap": 20.0, "z_loss": 1e-4},
]


def _ce_inputs(dtype: Any, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = hostile_rows(dtype, 90, seed)
    confident = np.r_[40.0, rng.normal(0, 1, 89)]  # loss ~ 1e-17: lse - x_t cancels here
    x = np.r_[x, confident[None, :]]
    t = rng.integers(0, 90, len(x))
    t[-1] = 0
    t[1] = -100
    w = rng.uniform(0.5, 2.0, 90)
    return x, t, w


def _kw(opts: dict[str, Any], w: np.ndarray) -> dict[str, Any]:
    kw = dict(opts)
    if kw.pop("weight", False):
        kw["weight"] = w
    return kw


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("opts", CE_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_cross_entropy_per_sample(dtype: Any, opts: dict[str, Any]) -> None:
    x_np, t_np, w_np = _ce_inputs(dtype)
    x = tensor(x_np, dtype)
    exact = x.cpu().to(torch.float64).numpy()
    kw = _kw(opts, w_np)
    got = entry.cross_entropy(
        x, tensor(t_np, torch.int64), reduction="none", block=32,
        **{**kw, "weight": None if "weight" not in kw else tensor(w_np, dtype)},
    )  # fmt: skip
    w_ref = None if "weight" not in kw else tensor(w_np, dtype).cpu().to(torch.float64).numpy()
    ref = ref_ce(exact, t_np, **{**kw, "weight": w_ref})
    with np.errstate(all="ignore"):
        finite = np.isfinite(ref.astype(np.float32 if dtype == torch.float32 else np.float64))
    err = ulps(got, ref)
    if dtype == torch.float64 and "softcap" in kw:
        # our float64 tanh is ~2 ulps, not correctly rounded: the capped logits themselves
        # carry that error, so the loss is held to 4 ulps plus 8 ulps of the capped logits
        slack = 8 * np.spacing(np.abs(kw["softcap"])) / np.spacing(np.abs(ref) + 1e-300)
        err = err - slack
    assert np.all(np.isfinite(got.cpu().numpy()) == finite)
    assert err[finite].max() <= ULPS, (err.argmax(), err.max())


def test_cross_entropy_beats_lse_minus_x_t() -> None:
    # the confident row: loss = log1p(rest) ~ 4e-18; logsumexp - x_t would give 0
    x = np.r_[40.0, np.zeros(9)][None, :]
    got = entry.cross_entropy(tensor(x), tensor([0], torch.int64), reduction="none")
    ref = ref_ce(x, np.array([0]))
    assert got.item() > 0
    assert ulps(got, ref).max() <= ULPS


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_reductions_match_torch(reduction: str) -> None:
    rng = np.random.default_rng(5)
    x = tensor(rng.normal(0, 3, (6, 11)))
    t = tensor([1, 0, -100, 10, 3, 3], torch.int64)
    w = tensor(rng.uniform(0.5, 2, 11))
    kw = {"weight": w, "label_smoothing": 0.2, "reduction": reduction}
    got = entry.cross_entropy(x, t, block=16, **kw)
    ref = F.cross_entropy(x, t, **kw)
    torch.testing.assert_close(got, ref, rtol=1e-14, atol=0)


def _torch_loss(x: Any, t: Any, opts: dict[str, Any], reduction: str) -> Any:
    """The composition that the kernels fuse: soft cap, torch's cross entropy, z-loss."""
    cap = opts.get("softcap")
    xc = cap * torch.tanh(x / cap) if cap else x
    ii = opts.get("ignore_index", -100)
    kw = {k: opts[k] for k in ("weight", "label_smoothing") if k in opts}
    loss = F.cross_entropy(xc, t, ignore_index=ii, reduction=reduction, **kw)
    zl = opts.get("z_loss", 0.0)
    if zl:
        counted = (t != ii).to(x.dtype)
        term = zl * torch.logsumexp(xc, 1) ** 2 * counted
        loss = (
            loss + {"none": term, "sum": term.sum(), "mean": term.sum() / counted.sum()}[reduction]
        )
    return loss


@pytest.mark.parametrize("reduction", ["mean", "none"])  # "sum": in the reductions test
@pytest.mark.parametrize("opts", CE_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_cross_entropy_gradient_matches_autograd(opts: dict[str, Any], reduction: str) -> None:
    rng = np.random.default_rng(7)
    x_np = rng.normal(0, 5, (5, 40))
    t = tensor([3, 0, 2, 39, 7], torch.int64)
    kw = _kw(opts, rng.uniform(0.5, 2, 40))
    if "weight" in kw:
        kw["weight"] = tensor(kw["weight"])
    x = tensor(x_np).requires_grad_()
    xr = tensor(x_np).requires_grad_()
    got = entry.cross_entropy(x, t, reduction=reduction, block=16, **kw)
    ref = _torch_loss(xr, t, kw, reduction)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-13)
    g = tensor(rng.normal(size=tuple(got.shape)))
    (dx,) = torch.autograd.grad(got, x, g)
    (dr,) = torch.autograd.grad(ref, xr, g)
    torch.testing.assert_close(dx, dr, rtol=1e-10, atol=1e-13)
    if kw.get("ignore_index") == 2:  # the ignored sample has no gradient
        assert torch.all(dx[2] == 0)


def test_out_of_range_target_is_nan_without_error() -> None:
    x = tensor(np.zeros((3, 4)), torch.float32).requires_grad_()
    t = tensor([1, 4, -100], torch.int64)
    per = entry.cross_entropy(x, t, reduction="none")
    assert per[0].item() == pytest.approx(np.log(4))
    assert torch.isnan(per[1])
    assert per[2] == 0
    assert torch.isnan(entry.cross_entropy(x, t))
    (g,) = torch.autograd.grad(per[0] + per[2], x)
    assert torch.all(g[2] == 0)
    assert torch.all(torch.isfinite(g[0]))
    every = tensor([-100, -100, -100], torch.int64)
    assert torch.isnan(entry.cross_entropy(x, every))
    assert entry.cross_entropy(x, every, reduction="sum").item() == 0


def test_cross_entropy_needs_no_host_sync() -> None:
    """No op that reads device values on the host (``.item()``, ``nonzero``...) is dispatched.

    On a CPU tensor a sync cannot be observed directly (``set_sync_debug_mode``
    needs CUDA); instead every aten op of a forward and backward is recorded and
    none of the host-reading ops may appear. On a GPU, ``benchmarks/gpu.py`` wraps
    a training step in ``torch.cuda.set_sync_debug_mode("error")``.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: list[str] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    x = tensor(np.random.default_rng(0).normal(size=(4, 5))).requires_grad_()
    t = tensor([0, 9, -100, 4], torch.int64)
    w = tensor(np.ones(5))
    with Record():
        loss = entry.cross_entropy(x, t, weight=w, label_smoothing=0.1, z_loss=1e-3)
        loss.backward()
    syncing = ("_local_scalar_dense", "nonzero", "is_nonzero", "item", "equal", "masked_select")
    assert seen, seen
    assert not [op for op in seen if any(s in op for s in syncing)], seen


# --------------------------------------------------------------------------- CuPy-shaped


class _Memory:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class FakeCupyArray:
    """What the CuPy lane reads of a ``cupy.ndarray``: shape, NumPy dtype, byte strides,
    ``data.ptr`` and DLPack; backed by a NumPy array (host memory)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    shape = property(lambda self: self.a.shape)
    dtype = property(lambda self: self.a.dtype)
    strides = property(lambda self: self.a.strides)
    itemsize = property(lambda self: self.a.itemsize)
    ndim = property(lambda self: self.a.ndim)
    data = property(lambda self: _Memory(self.a.ctypes.data))

    def __dlpack__(self, **kw: Any) -> Any:
        return self.a.__dlpack__(**kw)

    def __dlpack_device__(self) -> Any:
        return self.a.__dlpack_device__()

    def _wrap(self, other: Any, fn: Any) -> FakeCupyArray:
        other = other.a if isinstance(other, FakeCupyArray) else other
        return FakeCupyArray(np.asarray(fn(self.a, other)))

    def __add__(self, o: Any) -> FakeCupyArray:
        return self._wrap(o, np.add)

    def __truediv__(self, o: Any) -> FakeCupyArray:
        return self._wrap(o, np.divide)

    def __rtruediv__(self, o: Any) -> FakeCupyArray:
        return self._wrap(o, lambda a, b: np.divide(b, a))

    def __ne__(self, o: Any) -> FakeCupyArray:  # type: ignore[override]
        return self._wrap(o, np.not_equal)


class FakeCupyNamespace:
    """The few namespace functions the CuPy lane calls, on :class:`FakeCupyArray`."""

    float64 = np.dtype("float64")
    int64 = np.dtype("int64")

    @staticmethod
    def empty(shape: Any, dtype: Any) -> FakeCupyArray:
        return FakeCupyArray(np.empty(shape, dtype))

    @staticmethod
    def zeros(shape: Any, dtype: Any) -> FakeCupyArray:
        return FakeCupyArray(np.zeros(shape, dtype))

    @staticmethod
    def ones(shape: Any, dtype: Any) -> FakeCupyArray:
        return FakeCupyArray(np.ones(shape, dtype))

    @staticmethod
    def reshape(a: FakeCupyArray, shape: Any) -> FakeCupyArray:
        return FakeCupyArray(np.reshape(a.a, shape))

    @staticmethod
    def sum(a: FakeCupyArray) -> FakeCupyArray:
        return FakeCupyArray(np.asarray(np.sum(a.a)))

    @staticmethod
    def astype(a: FakeCupyArray, dtype: Any) -> FakeCupyArray:
        return FakeCupyArray(a.a.astype(dtype))


@pytest.mark.skipif(not INTERPRET, reason="the stand-in lives in host memory: interpreter only")
def test_cupy_shaped_stand_in() -> None:
    """The CuPy lane end to end on a stand-in: same numbers as the torch lane.

    Interpreter-only difference: arrays reach the kernels as torch views (DLPack),
    where a GPU launch gets :class:`DevicePointer` (checked on its own below).
    """
    from xsoftmax._kernels.triton import cupy as lane

    xp = FakeCupyNamespace()
    rng = np.random.default_rng(4)
    x_np = rng.normal(0, 4, (3, 20)).astype(np.float32)
    x = FakeCupyArray(x_np.T.copy().T)  # a column-major array: strides (4, 80) bytes
    for op in ("softmax", "log_softmax"):
        got = lane.cupy_softmax_family(op, x, (1,), xp=xp, block=16)
        ref = entry.softmax_family(op, tensor(x_np, torch.float32), (1,), block=16)
        np.testing.assert_array_equal(got.a, ref.cpu().numpy())
    lse = lane.cupy_logsumexp(x, (-1,), xp=xp)
    assert lse.shape == (3, 1)
    t_np = np.array([1, -100, 19], dtype=np.int32)
    w_np = rng.uniform(0.5, 2, 20).astype(np.float32)
    kw = {"label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 25.0}
    loss, grad = lane.cupy_cross_entropy_with_grad(
        x, FakeCupyArray(t_np), FakeCupyArray(w_np), xp=xp, block=16, **kw
    )
    xt = tensor(x_np, torch.float32).requires_grad_()
    ref = entry.cross_entropy(xt, tensor(t_np, torch.int64), tensor(w_np, torch.float32), **kw)
    (dref,) = torch.autograd.grad(ref, xt)
    np.testing.assert_array_equal(loss.a, ref.detach().cpu().numpy())
    np.testing.assert_allclose(grad.a, dref.cpu().numpy(), rtol=1e-6, atol=1e-9)


def test_device_pointer_is_what_triton_launches_on() -> None:
    from triton.runtime.jit import mangle_type

    class Array:
        data = _Memory(1 << 20)

        def __init__(self, dtype: str) -> None:
            self.dtype = np.dtype(dtype)

    for name, sig in (("float32", "*fp32"), ("float64", "*fp64"), ("int64", "*i64")):
        p = DevicePointer(Array(name))
        assert p.data_ptr() == 1 << 20
        assert mangle_type(p) == sig
