"""What is timed: xsoftmax against its anchor, per (library, function, shape, dtype).

Anchors
-------
- NumPy: ``scipy.special.log_softmax`` / ``softmax`` / ``logsumexp`` (``axis=-1``);
  NumPy ``cross_entropy`` against ``torch.nn.functional.cross_entropy`` on the same
  data (a torch tensor sharing the NumPy buffer, one thread), and
  ``cross_entropy_with_grad`` against ``F.cross_entropy`` forward + backward
  (``torch.autograd.grad``) on the same buffer.
- PyTorch (CPU, one thread): ``torch.log_softmax``, ``torch.softmax``,
  ``F.cross_entropy`` with integer targets; forward + backward
  (``torch.autograd.grad``) of ``log_softmax`` (against a fixed random cotangent)
  and of ``cross_entropy``.
- JAX, both sides under ``jax.jit``, with ``block_until_ready``:
  ``jax.nn.log_softmax``, and ``optax.softmax_cross_entropy_with_integer_labels``
  (mean) where optax is installed, forward and ``value_and_grad``.

Every case also times ``np.copyto`` of its input into a preallocated buffer: the
bandwidth reference (one read and one write of the input).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Shape = tuple[int, int]

#: Shapes of a default run: (rows, classes), from tiny to one long row per sample.
SHAPES_DEFAULT: tuple[Shape, ...] = (
    (32, 10),
    (65536, 10),
    (16384, 100),
    (4096, 1000),
    (1024, 8192),
    (256, 32000),
    (8, 262144),
)
#: Shapes of ``--quick``.
SHAPES_QUICK: tuple[Shape, ...] = ((32, 10), (65536, 10), (4096, 1000), (256, 32000))
#: Where peak extra memory is measured.
MEMORY_SHAPE: Shape = (64, 262144)

LIBRARIES = ("numpy", "torch", "jax")
DTYPES = ("float32", "float64")
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "numpy": ("log_softmax", "softmax", "logsumexp", "cross_entropy", "cross_entropy_with_grad"),
    "torch": (
        "log_softmax",
        "softmax",
        "cross_entropy",
        "log_softmax_fwd_bwd",
        "cross_entropy_fwd_bwd",
    ),
    "jax": ("log_softmax", "cross_entropy", "cross_entropy_value_and_grad"),
}
XSOFTMAX = "xsoftmax"
COPY = "np.copyto"


@dataclass
class Case:
    """One comparison: xsoftmax against one anchor, plus the copy reference."""

    library: str
    function: str
    shape: Shape
    dtype: str
    anchor_name: str
    xsoftmax: Callable[[], object]
    anchor: Callable[[], object]
    copy: Callable[[], object]
    notes: list[str] = field(default_factory=list)

    @property
    def elements(self) -> int:
        """Number of logits."""
        return self.shape[0] * self.shape[1]

    @property
    def label(self) -> str:
        """A short human-readable name."""
        rows, cols = self.shape
        return f"{self.library} {self.function} {rows}x{cols} {self.dtype}"

    def contenders(self) -> dict[str, Callable[[], object]]:
        """Every callable of the case, keyed by the name reported."""
        return {XSOFTMAX: self.xsoftmax, self.anchor_name: self.anchor, COPY: self.copy}


@dataclass
class Inputs:
    """Logits and integer targets of one (shape, dtype), shared by every library."""

    shape: Shape
    dtype: str
    logits: np.ndarray
    target: np.ndarray
    copy_buffer: np.ndarray

    def copy(self) -> None:
        """The bandwidth reference: one read and one write of the logits."""
        np.copyto(self.copy_buffer, self.logits)


def make_inputs(shape: Shape, dtype: str, seed: int = 0) -> Inputs:
    """Standard-normal logits (scaled by 3) and uniformly drawn class indices."""
    rng = np.random.default_rng(seed)
    logits = (3.0 * rng.standard_normal(shape)).astype(dtype)
    target = rng.integers(0, shape[1], size=shape[0], dtype=np.int64)
    return Inputs(shape, dtype, logits, target, np.empty_like(logits))


def load_xsoftmax(placeholder: bool) -> tuple[Any, str]:
    """The module under test and its label: ``xsoftmax``, or the naive placeholder.

    Parameters
    ----------
    placeholder : bool
        Time :class:`_Placeholder` (a straightforward array-API implementation) in
        xsoftmax's place: for checking the harness before the library exists.
    """
    if placeholder:
        return _Placeholder(), "placeholder (naive array-API code, NOT xsoftmax)"
    module = importlib.import_module("xsoftmax")
    missing = [
        name
        for name in ("log_softmax", "softmax", "logsumexp", "cross_entropy")
        if not hasattr(module, name)
    ]
    if missing:
        msg = f"xsoftmax lacks {', '.join(missing)}; use --placeholder to check the harness"
        raise ImportError(msg)
    return module, f"xsoftmax {getattr(module, '__version__', '?')}"


class _Placeholder:
    """Naive array-API softmax family: about eight passes, full temporaries."""

    @staticmethod
    def _xp(x: Any) -> Any:
        from array_api_compat import array_namespace

        return array_namespace(x)

    def logsumexp(self, x: Any, /, *, axis: int = -1) -> Any:
        xp = self._xp(x)
        m = xp.max(x, axis=axis, keepdims=True)
        s = xp.sum(xp.exp(x - m), axis=axis, keepdims=True)
        return xp.squeeze(m + xp.log(s), axis=axis)

    def log_softmax(self, x: Any, /, *, axis: int = -1) -> Any:
        xp = self._xp(x)
        m = xp.max(x, axis=axis, keepdims=True)
        shifted = x - m
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))

    def softmax(self, x: Any, /, *, axis: int = -1) -> Any:
        xp = self._xp(x)
        e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
        return e / xp.sum(e, axis=axis, keepdims=True)

    def cross_entropy(self, logits: Any, target: Any, /) -> Any:
        xp = self._xp(logits)
        picked = xp.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
        return xp.mean(self.logsumexp(logits, axis=-1) - picked)


def available_libraries(requested: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The requested libraries that import, and why each other one was left out."""
    needs = {"numpy": ("numpy", "scipy.special", "torch"), "torch": ("torch",), "jax": ("jax",)}
    libs: list[str] = []
    skipped: dict[str, str] = {}
    for lib in requested:
        try:
            for module in needs[lib]:
                importlib.import_module(module)
        except ImportError as exc:
            skipped[lib] = f"cannot import: {exc}"
        else:
            libs.append(lib)
    return libs, skipped


def configure_libraries(libs: list[str]) -> dict[str, Any]:
    """One torch thread; JAX devices. Returns what was set.

    JAX's ``jax_enable_x64`` is switched per dtype when the JAX cases are built:
    off for float32 (JAX's default, as users run it), on for float64.
    """
    settings: dict[str, Any] = {}
    if "torch" in libs or "numpy" in libs:
        import torch

        torch.set_num_threads(1)
        settings["torch_threads"] = torch.get_num_threads()
    if "jax" in libs:
        import jax

        settings["jax_enable_x64"] = "off for float32 cases, on for float64 cases"
        settings["jax_devices"] = [str(d) for d in jax.devices()]
    return settings


def _numpy_cases(xs: Any, inp: Inputs, functions: tuple[str, ...]) -> Iterator[Case]:
    import scipy.special as sp
    import torch
    import torch.nn.functional as F

    x, t = inp.logits, inp.target
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    plans: dict[str, tuple[str, Callable[[], object], Callable[[], object]]] = {
        "log_softmax": (
            "scipy.special.log_softmax",
            lambda: xs.log_softmax(x),
            lambda: sp.log_softmax(x, axis=-1),
        ),
        "softmax": (
            "scipy.special.softmax",
            lambda: xs.softmax(x),
            lambda: sp.softmax(x, axis=-1),
        ),
        "logsumexp": (
            "scipy.special.logsumexp",
            lambda: xs.logsumexp(x, axis=-1),
            lambda: sp.logsumexp(x, axis=-1),
        ),
        "cross_entropy": (
            "F.cross_entropy (torch)",
            lambda: xs.cross_entropy(x, t),
            lambda: F.cross_entropy(xt, tt),
        ),
        "cross_entropy_with_grad": (
            "F.cross_entropy fwd+bwd (torch)",
            lambda: xs.cross_entropy_with_grad(x, t),
            lambda: _grad(F.cross_entropy(xg, tt), xg),
        ),
    }
    xg = torch.from_numpy(x).requires_grad_(True)  # the same buffer, as a leaf
    for fname in functions:
        anchor_name, mine, theirs = plans[fname]
        yield Case("numpy", fname, inp.shape, inp.dtype, anchor_name, mine, theirs, inp.copy)


def _grad(out: Any, x: Any, cotangent: Any = None) -> Any:
    """``d out / d x`` (torch), against ``cotangent`` for a non-scalar ``out``."""
    import torch

    return torch.autograd.grad(out, x, cotangent)


def _torch_cases(xs: Any, inp: Inputs, functions: tuple[str, ...]) -> Iterator[Case]:
    import torch
    import torch.nn.functional as F

    xt, tt = torch.from_numpy(inp.logits), torch.from_numpy(inp.target)
    plans: dict[str, tuple[str, Callable[[], object], Callable[[], object]]] = {
        "log_softmax": (
            "torch.log_softmax",
            lambda: xs.log_softmax(xt),
            lambda: torch.log_softmax(xt, -1),
        ),
        "softmax": ("torch.softmax", lambda: xs.softmax(xt), lambda: torch.softmax(xt, -1)),
        "cross_entropy": (
            "F.cross_entropy",
            lambda: xs.cross_entropy(xt, tt),
            lambda: F.cross_entropy(xt, tt),
        ),
        "log_softmax_fwd_bwd": (
            "torch.log_softmax fwd+bwd",
            lambda: _grad(xs.log_softmax(xg), xg, cot),
            lambda: _grad(torch.log_softmax(xg, -1), xg, cot),
        ),
        "cross_entropy_fwd_bwd": (
            "F.cross_entropy fwd+bwd",
            lambda: _grad(xs.cross_entropy(xg, tt), xg),
            lambda: _grad(F.cross_entropy(xg, tt), xg),
        ),
    }
    xg = xt.clone().requires_grad_(True)
    cot = torch.from_numpy(np.random.default_rng(1).standard_normal(inp.shape).astype(inp.dtype))
    for fname in functions:
        anchor_name, mine, theirs = plans[fname]
        yield Case("torch", fname, inp.shape, inp.dtype, anchor_name, mine, theirs, inp.copy)


def _blocking(fn: Callable[..., Any], *args: Any) -> Callable[[], object]:
    """A zero-argument call of a jitted ``fn`` that waits for the result."""
    return lambda: fn(*args).block_until_ready()


def _jax_cases(xs: Any, inp: Inputs, functions: tuple[str, ...]) -> Iterator[Case]:
    import jax
    import jax.numpy as jnp

    # float32 runs as JAX users run it by default (no x64); float64 needs x64
    jax.config.update("jax_enable_x64", inp.dtype == "float64")
    x, t = jnp.asarray(inp.logits), jnp.asarray(inp.target)
    for fname in functions:
        notes: list[str] = []
        grad = fname == "cross_entropy_value_and_grad"
        if fname == "log_softmax":
            anchor_name = "jit(jax.nn.log_softmax)"
            mine = _blocking(jax.jit(lambda a: xs.log_softmax(a)), x)
            theirs = _blocking(jax.jit(lambda a: jax.nn.log_softmax(a, axis=-1)), x)
        else:
            mine = _blocking(_jit_ce(jax, lambda a, b: xs.cross_entropy(a, b), grad), x, t)
            try:
                import optax

                anchor_name = "jit(optax ce int labels)"

                def anchor_fn(a: Any, b: Any) -> Any:
                    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(a, b))
            except ImportError:
                anchor_name = "jit(jax.nn take)"
                notes.append("optax not installed: anchor is jax.nn.log_softmax + take")

                def anchor_fn(a: Any, b: Any) -> Any:
                    logp = jax.nn.log_softmax(a, axis=-1)
                    return -jnp.mean(jnp.take_along_axis(logp, b[:, None], axis=-1))

            theirs = _blocking(_jit_ce(jax, anchor_fn, grad), x, t)
            if grad:
                anchor_name = anchor_name.replace("jit(", "jit(value_and_grad ")
        yield Case("jax", fname, inp.shape, inp.dtype, anchor_name, mine, theirs, inp.copy, notes)


def _jit_ce(jax: Any, fn: Callable[..., Any], grad: bool) -> Callable[..., Any]:
    """``jit(fn)``, or ``jit(value_and_grad(fn))`` with the gradient's leaves awaited."""
    if not grad:
        return jax.jit(fn)
    jitted = jax.jit(jax.value_and_grad(fn))

    class _Both:
        def __init__(self, pair: Any) -> None:
            self.pair = pair

        def block_until_ready(self) -> Any:
            return jax.block_until_ready(self.pair)

    return lambda a, b: _Both(jitted(a, b))


def build_cases(
    library: str, xs: Any, inp: Inputs, functions: tuple[str, ...] | None = None
) -> list[Case]:
    """Every case of ``library`` at one (shape, dtype)."""
    chosen = (
        FUNCTIONS[library]
        if functions is None
        else tuple(f for f in FUNCTIONS[library] if f in functions)
    )
    makers = {"numpy": _numpy_cases, "torch": _torch_cases, "jax": _jax_cases}
    return list(makers[library](xs, inp, chosen))


@dataclass
class MemoryCall:
    """One call whose peak extra memory is measured."""

    library: str
    function: str
    contender: str
    tracer: str  # "numpy" (tracemalloc) or "torch" (profiler)
    fn: Callable[[], object]


def memory_calls(xs: Any, inp: Inputs, libs: list[str]) -> list[MemoryCall]:
    """The calls measured for peak extra memory at one (shape, dtype)."""
    calls: list[MemoryCall] = []
    if "numpy" in libs:
        import scipy.special as sp
        import torch
        import torch.nn.functional as F

        x, t = inp.logits, inp.target
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        calls += [
            MemoryCall("numpy", "log_softmax", XSOFTMAX, "numpy", lambda: xs.log_softmax(x)),
            MemoryCall(
                "numpy",
                "log_softmax",
                "scipy.special.log_softmax",
                "numpy",
                lambda: sp.log_softmax(x, axis=-1),
            ),
            MemoryCall("numpy", "softmax", XSOFTMAX, "numpy", lambda: xs.softmax(x)),
            MemoryCall(
                "numpy",
                "softmax",
                "scipy.special.softmax",
                "numpy",
                lambda: sp.softmax(x, axis=-1),
            ),
            MemoryCall("numpy", "logsumexp", XSOFTMAX, "numpy", lambda: xs.logsumexp(x, axis=-1)),
            MemoryCall(
                "numpy",
                "logsumexp",
                "scipy.special.logsumexp",
                "numpy",
                lambda: sp.logsumexp(x, axis=-1),
            ),
            MemoryCall(
                "numpy", "cross_entropy", XSOFTMAX, "numpy", lambda: xs.cross_entropy(x, t)
            ),
            MemoryCall(
                "numpy",
                "cross_entropy",
                "F.cross_entropy (torch)",
                "torch",
                lambda: F.cross_entropy(xt, tt),
            ),
        ]
    if "torch" in libs:
        import torch
        import torch.nn.functional as F

        xt, tt = torch.from_numpy(inp.logits), torch.from_numpy(inp.target)
        calls += [
            MemoryCall("torch", "log_softmax", XSOFTMAX, "torch", lambda: xs.log_softmax(xt)),
            MemoryCall(
                "torch",
                "log_softmax",
                "torch.log_softmax",
                "torch",
                lambda: torch.log_softmax(xt, -1),
            ),
            MemoryCall(
                "torch", "cross_entropy", XSOFTMAX, "torch", lambda: xs.cross_entropy(xt, tt)
            ),
            MemoryCall(
                "torch",
                "cross_entropy",
                "F.cross_entropy",
                "torch",
                lambda: F.cross_entropy(xt, tt),
            ),
        ]
    return calls


def parse_shape(text: str) -> Shape:
    """``"4096x1000"`` (or ``4096,1000``) to ``(4096, 1000)``."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        msg = f"shape must look like ROWSxCLASSES (e.g. 4096x1000), got {text!r}"
        raise ValueError(msg)
    rows, cols = (int(p) for p in parts)
    if rows < 1 or cols < 1:
        msg = f"shape must be positive, got {text!r}"
        raise ValueError(msg)
    return rows, cols


def bytes_of(shape: Shape, dtype: str) -> int:
    """Bytes of a C-contiguous array of ``shape`` and ``dtype``."""
    return math.prod(shape) * np.dtype(dtype).itemsize


__all__ = [
    "COPY",
    "DTYPES",
    "FUNCTIONS",
    "LIBRARIES",
    "MEMORY_SHAPE",
    "SHAPES_DEFAULT",
    "SHAPES_QUICK",
    "XSOFTMAX",
    "Case",
    "Inputs",
    "MemoryCall",
    "available_libraries",
    "build_cases",
    "bytes_of",
    "configure_libraries",
    "load_xsoftmax",
    "make_inputs",
    "memory_calls",
    "parse_shape",
]
