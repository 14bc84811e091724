"""Every gradient of ``linear_cross_entropy`` under autodiff, held to an independent oracle.

The oracle is torch autograd through the textbook formula on the full logits in
float64: ``F.cross_entropy(softcap(input @ W.T + b), target, weight=...,
ignore_index=..., label_smoothing=..., reduction=...)`` plus the z-loss written by
hand. The gradients of ``input``, ``linear_weight``, ``linear_bias``, the class
weights and probability targets are compared, across reductions, ignored
samples, label smoothing, soft cap, z-loss, with and without a bias, and chunk
sizes; on torch (autograd, ``torch.func.grad``, ``torch.func.vmap``, autocast)
and on JAX (``jax.grad``, eager and under ``jit``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xsoftmax

N, D, C = 6, 3, 7
REDUCTIONS = ("mean", "sum", "none")
# (label_smoothing, softcap, z_loss, bias, ignore_index)
OPTIONS = [
    (0.0, None, 0.0, True, -100),
    (0.1, 3.0, 0.01, False, -100),
    (0.2, None, 0.0, True, 2),
    (0.0, 3.0, 0.02, True, 2),
]
CHUNKS = (2, 5, None)
TORCH_NAMES = ("torch", "torch-cuda")


def _case_id(opt: tuple[Any, ...]) -> str:
    eps, cap, zl, bias, ii = opt
    return f"eps{eps}-cap{cap}-z{zl}-{'b' if bias else 'nob'}-ii{ii}"


def _data(seed: int, kind: str, ignore_index: int = -100) -> dict[str, np.ndarray]:
    """float64 inputs: 6 samples, 7 classes (one target ``ignore_index``, one on class 2)."""
    rng = np.random.default_rng(seed)
    data = {
        "h": rng.standard_normal((N, D)),
        "W": rng.standard_normal((C, D)),
        "b": rng.standard_normal(C),
        "weight": rng.uniform(0.2, 2.0, C),
        "up": rng.standard_normal(N),
    }
    if kind == "index":
        data["t"] = np.asarray([0, 5, ignore_index, 6, 3, 2])
    else:
        q = rng.uniform(0.0, 1.0, (N, C))
        data["t"] = q / q.sum(axis=1, keepdims=True)
    return data


def oracle(
    data: dict[str, np.ndarray],
    *,
    reduction: str,
    eps: float,
    softcap: float | None,
    z_loss: float,
    bias: bool,
    ignore_index: int,
) -> dict[str, np.ndarray]:
    """Loss and gradients by torch autograd through the textbook formula, float64.

    ``F.cross_entropy`` is not differentiable with respect to ``weight``, so the
    formula is written out (torch's definition) and its value held to it.
    """
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    def leaf(a: np.ndarray) -> Any:
        return torch.tensor(a, dtype=torch.float64, requires_grad=True)

    h, W, b, wt = leaf(data["h"]), leaf(data["W"]), leaf(data["b"]), leaf(data["weight"])
    prob = data["t"].dtype.kind == "f"
    t = leaf(data["t"]) if prob else torch.tensor(data["t"])
    z = h @ W.T + (b if bias else 0)
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    logp = torch.log_softmax(z, dim=1)
    if prob:
        q = (1 - eps) * t + eps / C
        loss = -(wt * q * logp).sum(dim=1)
        den = torch.tensor(float(N), dtype=torch.float64)
    else:
        counted = (t != ignore_index).double()
        safe = torch.where(t == ignore_index, 0, t)
        w_t = wt[safe] * counted
        nll = -w_t * logp.gather(1, safe[:, None])[:, 0]
        smooth = -(wt * logp).sum(dim=1) * counted
        loss = (1 - eps) * nll + eps / C * smooth
        den = w_t.sum()
    if reduction == "sum":
        loss = loss.sum()
    elif reduction == "mean":
        loss = loss.sum() / den
    kw = {"ignore_index": ignore_index} if not prob else {}
    anchor = F.cross_entropy(
        z.detach(), t.detach(), weight=wt.detach(), reduction=reduction, label_smoothing=eps, **kw
    )
    np.testing.assert_allclose(loss.detach().numpy(), anchor.numpy(), rtol=1e-12)
    if z_loss:
        zt = z_loss * torch.logsumexp(z, dim=1) ** 2
        counted = torch.ones(N, dtype=torch.float64) if prob else (t != ignore_index).double()
        zt = zt * counted
        if reduction == "none":
            loss = loss + zt
        elif reduction == "sum":
            loss = loss + zt.sum()
        else:
            loss = loss + zt.sum() / counted.sum()
    up = (
        torch.tensor(data["up"]) if reduction == "none" else torch.tensor(1.0, dtype=torch.float64)
    )
    leaves = {"h": h, "W": W, "weight": wt}
    if bias:
        leaves["b"] = b
    if prob:
        leaves["t"] = t
    grads = torch.autograd.grad(loss, list(leaves.values()), grad_outputs=up)
    out = {name: g.detach().numpy() for name, g in zip(leaves, grads, strict=True)}
    out["loss"] = loss.detach().numpy()
    return out


def _kwargs(opt: tuple[Any, ...], reduction: str, chunk: int | None, prob: bool) -> dict:
    eps, cap, zl, _, ii = opt
    kw: dict[str, Any] = {
        "reduction": reduction,
        "label_smoothing": eps,
        "softcap": cap,
        "z_loss": zl,
        "chunk_size": chunk,
    }
    if not prob:
        kw["ignore_index"] = ii
    return kw


def _compare(got: dict[str, Any], want: dict[str, np.ndarray], what: str) -> None:
    assert set(got) == set(want), (what, sorted(got), sorted(want))
    for name, value in want.items():
        g = got[name]
        assert g is not None, f"{what}: gradient of {name} is None"
        np.testing.assert_allclose(
            np.asarray(g, dtype=np.float64),
            value,
            rtol=1e-9,
            atol=1e-12,
            err_msg=f"{what}: {name}",
        )


def _torch_backend(backend: Any) -> Any:
    if backend is None or backend.name not in TORCH_NAMES:
        pytest.skip("a torch test (the torch backend is not this one)")
    import torch

    return torch


# --------------------------------------------------------------------------------------
# torch autograd: items 7 (class weights) and 8 (probability targets)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opt", OPTIONS, ids=_case_id)
def test_torch_autograd_every_gradient(
    backend: Any, opt: tuple, reduction: str, kind: str
) -> None:
    """Gradients of input, linear weight and bias, class weights and probability targets.

    Before the fix ``weight.grad`` was None whenever ``input`` required grad, and
    the probability target's gradient was always None.
    """
    torch = _torch_backend(backend)
    data = _data(1, kind, opt[4])
    prob = kind == "prob"
    bias = opt[3]
    want = oracle(
        data,
        reduction=reduction,
        eps=opt[0],
        softcap=opt[1],
        z_loss=opt[2],
        bias=bias,
        ignore_index=opt[4],
    )
    for chunk in CHUNKS:
        leaves = {"h": data["h"], "W": data["W"], "weight": data["weight"]}
        if bias:
            leaves["b"] = data["b"]
        if prob:
            leaves["t"] = data["t"]
        ts = {
            k: backend.asarray(v).requires_grad_() for k, v in leaves.items()
        }  # float64 leaves on the backend's device
        target = ts["t"] if prob else backend.asarray(data["t"])
        loss = xsoftmax.linear_cross_entropy(
            ts["h"],
            ts["W"],
            target,
            linear_bias=ts.get("b"),
            weight=ts["weight"],
            **_kwargs(opt, reduction, chunk, prob),
        )
        up = backend.asarray(data["up"]) if reduction == "none" else None
        loss.backward(up)
        got = {k: v.grad.cpu().numpy() if v.grad is not None else None for k, v in ts.items()}
        got["loss"] = loss.detach().cpu().numpy()
        _compare(got, want, f"chunk {chunk}")
    del torch


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_torch_only_the_weight_or_target_requires_grad(
    backend: Any, reduction: str, kind: str
) -> None:
    """One leaf at a time: the class weights alone, the probability targets alone."""
    torch = _torch_backend(backend)
    data = _data(2, kind, 2)
    prob = kind == "prob"
    opt = (0.1, 3.0, 0.01, True, 2)
    want = oracle(
        data, reduction=reduction, eps=0.1, softcap=3.0, z_loss=0.01, bias=True, ignore_index=2
    )
    names = ["weight", "t"] if prob else ["weight"]
    for name in names:
        arrays = {k: backend.asarray(data[k]) for k in ("h", "W", "b", "weight", "t")}
        arrays[name].requires_grad_()
        loss = xsoftmax.linear_cross_entropy(
            arrays["h"],
            arrays["W"],
            arrays["t"],
            linear_bias=arrays["b"],
            weight=arrays["weight"],
            **_kwargs(opt, reduction, 3, prob),
        )
        up = backend.asarray(data["up"]) if reduction == "none" else None
        (g,) = torch.autograd.grad(loss, [arrays[name]], grad_outputs=up)
        np.testing.assert_allclose(g.cpu().numpy(), want[name], rtol=1e-9, atol=1e-12)


def test_torch_weight_gradient_float32_fast_path(backend: Any) -> None:
    """float32 on the compiled kernels: the class-weight gradient beside the input's."""
    torch = _torch_backend(backend)
    data = _data(3, "index")
    want = oracle(
        data, reduction="mean", eps=0.1, softcap=None, z_loss=0.0, bias=False, ignore_index=-100
    )
    h = backend.asarray(data["h"], "float32").requires_grad_()
    W = backend.asarray(data["W"], "float32").requires_grad_()
    wt = backend.asarray(data["weight"], "float32").requires_grad_()
    t = backend.asarray(data["t"])
    xsoftmax.linear_cross_entropy(h, W, t, weight=wt, label_smoothing=0.1).backward()
    assert wt.grad is not None
    assert wt.grad.dtype == torch.float32
    np.testing.assert_allclose(wt.grad.cpu().numpy(), want["weight"], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(h.grad.cpu().numpy(), want["h"], rtol=2e-5, atol=1e-6)


# --------------------------------------------------------------------------------------
# torch.func: item 9
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_torch_func_grad(backend: Any, reduction: str, kind: str) -> None:
    """``torch.func.grad`` with respect to every floating argument at once."""
    torch = _torch_backend(backend)
    data = _data(4, kind, 2)
    prob = kind == "prob"
    opt = (0.1, 3.0, 0.01, True, 2)
    want = oracle(
        data, reduction=reduction, eps=0.1, softcap=3.0, z_loss=0.01, bias=True, ignore_index=2
    )
    names = ["h", "W", "b", "weight"] + (["t"] if prob else [])
    args = {k: backend.asarray(data[k]) for k in ("h", "W", "b", "weight", "t")}

    def f(*leaves: Any) -> Any:
        a = dict(args)
        a.update(zip(names, leaves, strict=True))
        return xsoftmax.linear_cross_entropy(
            a["h"],
            a["W"],
            a["t"],
            linear_bias=a["b"],
            weight=a["weight"],
            **_kwargs(opt, reduction, 3, prob),
        )

    grads = torch.func.grad(f, argnums=tuple(range(len(names))))(*(args[k] for k in names))
    for name, g in zip(names, grads, strict=True):
        np.testing.assert_allclose(g.cpu().numpy(), want[name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["index", "prob"])
def test_torch_func_vmap_and_vmap_of_grad(backend: Any, kind: str) -> None:
    """``torch.func.vmap`` over a batch of inputs, and ``vmap(grad(...))``, equal a loop."""
    torch = _torch_backend(backend)
    prob = kind == "prob"
    datas = [_data(10 + i, kind, 2) for i in range(3)]
    hs = backend.asarray(np.stack([d["h"] for d in datas]))
    ts = backend.asarray(np.stack([d["t"] for d in datas]))
    W = backend.asarray(datas[0]["W"])
    wt = backend.asarray(datas[0]["weight"])
    kw = _kwargs((0.1, 3.0, 0.01, False, 2), "mean", 3, prob)

    def f(h: Any, t: Any) -> Any:
        return xsoftmax.linear_cross_entropy(h, W, t, weight=wt, **kw)

    losses = torch.func.vmap(f)(hs, ts)
    grads = torch.func.vmap(torch.func.grad(f))(hs, ts)
    for i, d in enumerate(datas):
        d = {**d, "W": datas[0]["W"], "weight": datas[0]["weight"]}
        want = oracle(
            d, reduction="mean", eps=0.1, softcap=3.0, z_loss=0.01, bias=False, ignore_index=2
        )
        np.testing.assert_allclose(losses[i].cpu().numpy(), want["loss"], rtol=1e-9)
        np.testing.assert_allclose(grads[i].cpu().numpy(), want["h"], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------
# torch.autocast: item 17
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("half", ["bfloat16", "float16"])
@pytest.mark.parametrize("params", ["float32", "half"])
def test_torch_autocast(backend: Any, half: str, params: str) -> None:
    """Under ``torch.autocast`` the loss is computed as without it (in float32).

    ``cross_entropy`` is on autocast's float32 list; so is this loss, its matmuls
    included. Before the fix the compiled chunk kernel got half-precision blocks
    of logits and raised.
    """
    torch = _torch_backend(backend)
    dev = "cuda" if backend.name == "torch-cuda" else "cpu"
    dt = getattr(torch, half)
    data = _data(5, "index")
    in_dtype = "float32" if params == "float32" else half

    def leaves() -> dict[str, Any]:
        return {k: backend.asarray(data[k], in_dtype).requires_grad_() for k in ("h", "W", "b")}

    t = backend.asarray(data["t"])
    kw = {"label_smoothing": 0.1, "softcap": 3.0, "z_loss": 0.01, "chunk_size": 3}
    plain = leaves()
    want = xsoftmax.linear_cross_entropy(plain["h"], plain["W"], t, linear_bias=plain["b"], **kw)
    want.backward()
    inside = leaves()
    with torch.autocast(dev, dtype=dt):
        got = xsoftmax.linear_cross_entropy(
            inside["h"], inside["W"], t, linear_bias=inside["b"], **kw
        )
        no_grad = xsoftmax.linear_cross_entropy(
            plain["h"].detach(), plain["W"].detach(), t, linear_bias=plain["b"].detach(), **kw
        )
        with_grad = xsoftmax.linear_cross_entropy_with_grad(
            plain["h"].detach(), plain["W"].detach(), t, linear_bias=plain["b"].detach(), **kw
        )
    got.backward()
    assert got.dtype == want.dtype
    tol = {"rtol": 1e-6, "atol": 1e-7}
    for value in (got, no_grad, with_grad[0]):
        np.testing.assert_allclose(value.detach().float().cpu().numpy(), want.item(), **tol)
    for k, g_w in zip(("h", "W", "b"), with_grad[1:], strict=True):
        ref = plain[k].grad.float().cpu().numpy()
        np.testing.assert_allclose(inside[k].grad.float().cpu().numpy(), ref, **tol)
        np.testing.assert_allclose(g_w.float().cpu().numpy(), ref, **tol)


# --------------------------------------------------------------------------------------
# JAX: item 10
# --------------------------------------------------------------------------------------
def _jax_backend(backend: Any) -> Any:
    if backend is None or backend.name != "jax":
        pytest.skip("a JAX test (the jax backend is not this one)")
    import jax

    return jax


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opt", OPTIONS[1:3], ids=_case_id)  # every option, either bias
def test_jax_grad_every_gradient(backend: Any, opt: tuple, reduction: str, kind: str) -> None:
    """``jax.grad`` (eager and under ``jit``) with respect to every floating argument.

    Before the fix the class weights' and probability targets' cotangents were zeros.
    """
    jax = _jax_backend(backend)
    data = _data(6, kind, opt[4])
    prob = kind == "prob"
    bias = opt[3]
    want = oracle(
        data,
        reduction=reduction,
        eps=opt[0],
        softcap=opt[1],
        z_loss=opt[2],
        bias=bias,
        ignore_index=opt[4],
    )
    names = ["h", "W", "weight"] + (["b"] if bias else []) + (["t"] if prob else [])
    args = {k: backend.asarray(data[k]) for k in ("h", "W", "b", "weight", "t", "up")}
    for chunk, jit in ((2, True), (5, False), (None, False)):  # each compiles: few
        kw = _kwargs(opt, reduction, chunk, prob)

        def f(*leaves: Any, kw: dict = kw) -> Any:
            a = dict(args)
            a.update(zip(names, leaves, strict=True))
            loss = xsoftmax.linear_cross_entropy(
                a["h"],
                a["W"],
                a["t"],
                linear_bias=a["b"] if bias else None,
                weight=a["weight"],
                **kw,
            )
            return (loss * a["up"]).sum() if reduction == "none" else loss

        g = jax.grad(f, argnums=tuple(range(len(names))))
        if jit:
            g = jax.jit(g)
        grads = g(*(args[k] for k in names))
        got = {name: np.asarray(v) for name, v in zip(names, grads, strict=True)}
        loss = xsoftmax.linear_cross_entropy(
            args["h"],
            args["W"],
            args["t"],
            linear_bias=args["b"] if bias else None,
            weight=args["weight"],
            **kw,
        )
        got["loss"] = np.asarray(loss)
        _compare(got, want, f"chunk {chunk} jit {jit}")


def test_jax_weight_gradient_of_the_issue(backend: Any) -> None:
    """The report's case: ``[-.125, 0, .125]``-like values, as ``cross_entropy`` gives."""
    jax = _jax_backend(backend)
    jnp = backend.xp
    h = jnp.asarray(np.eye(2))
    W = jnp.asarray([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    t = jnp.asarray([0, 2])
    ones = jnp.ones(3, dtype=h.dtype)
    got = jax.grad(lambda w: xsoftmax.linear_cross_entropy(h, W, t, weight=w))(ones)
    want = jax.grad(lambda w: xsoftmax.cross_entropy(h @ W.T, t, weight=w))(ones)
    assert float(jnp.max(jnp.abs(want))) > 0.01
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-15)
