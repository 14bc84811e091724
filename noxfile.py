"""Test matrix: one nox session per array backend, plus lint, typecheck and docs.

``nox`` (no arguments) runs every CPU session; ``nox -l`` lists them all;
``nox -s torch -- -k softmax`` passes extra arguments to pytest. Each test session
installs the package, ``backends/<session>.txt`` and the test requirements into its
own venv (pip, never uv: uv does not look at the local CPU torch wheel and would
download a multi-GB CUDA build), sets ``XSOFTMAX_BACKENDS`` to its backend and runs
pytest. A backend that was asked for and does not import is an error there, never
a silent skip (see ``tests/_backends.py``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent
BACKENDS_DIR = ROOT / "backends"
PYTHON = "3.11"  # the machine's interpreter; the local torch 2.13.0 CPU wheel is cp311

CPU_BACKENDS = ("numpy", "array-api-strict", "torch", "jax", "dask")
GPU_BACKENDS = ("cupy", "torch-cuda")

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
# plain `nox` runs every session that can run on a CPU-only machine
nox.options.sessions = [*CPU_BACKENDS, "lint", "typecheck", "docs"]


def _requirements(name: str) -> str:
    """Path of the requirements file of session ``name``."""
    return str(BACKENDS_DIR / f"{name}.txt")


def _install_package_for_tests(session: nox.Session) -> None:
    """Install the package (editable) and its test dependencies (group or ``test`` extra)."""
    pyproject = nox.project.load_toml(ROOT / "pyproject.toml")
    if "test" in pyproject.get("dependency-groups", {}):
        session.install(*nox.project.dependency_groups(pyproject, "test"))
        session.install("-e", ".")
    else:
        session.install("-e", ".[test]")


def _gpu_or_skip(session: nox.Session) -> None:
    """Skip the session, before installing anything, when no NVIDIA GPU is visible."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        session.skip("no GPU: nvidia-smi is not on PATH")
    proc = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or "GPU" not in proc.stdout:
        detail = (proc.stderr or proc.stdout).strip() or f"exit code {proc.returncode}"
        session.skip(f"no GPU: `nvidia-smi -L` found none ({detail})")


def _run_tests(session: nox.Session, backend: str) -> None:
    """Install the package with ``backend``'s requirements and run pytest on it alone."""
    session.install("-r", _requirements(backend))
    _install_package_for_tests(session)
    # pytest's exit code 5 (no test collected) is not in nox's success codes: it fails
    session.run(
        "pytest",
        *session.posargs,
        env={"XSOFTMAX_BACKENDS": backend},
    )


@nox.session(python=PYTHON)
def numpy(session: nox.Session) -> None:
    """NumPy backend (inputs read-only); torch only as the grid tests' oracle."""
    _run_tests(session, "numpy")


@nox.session(name="array-api-strict", python=PYTHON)
def array_api_strict(session: nox.Session) -> None:
    """array-api-strict: the standard alone, incl. its extra devices (no float16/bfloat16)."""
    _run_tests(session, "array-api-strict")


@nox.session(python=PYTHON)
def torch(session: nox.Session) -> None:
    """PyTorch 2.13 CPU: float16/bfloat16, autograd and the meta device."""
    _run_tests(session, "torch")


@nox.session(python=PYTHON)
def jax(session: nox.Session) -> None:
    """JAX on CPU (x64 enabled): eager, under jax.jit and through jax.grad."""
    _run_tests(session, "jax")


@nox.session(python=PYTHON)
def dask(session: nox.Session) -> None:
    """Dask: lazy chunked arrays, nothing computed until asked, and a LocalCluster run."""
    _run_tests(session, "dask")


# GPU sessions reuse the GPU image's CUDA builds (system site packages) instead of
# downloading them, and use the interpreter that runs nox (the image's own Python).
@nox.session(python=None, venv_params=["--system-site-packages"])
def cupy(session: nox.Session) -> None:
    """CuPy on an NVIDIA GPU (skipped, before installing anything, without one)."""
    _gpu_or_skip(session)
    _run_tests(session, "cupy")


@nox.session(name="torch-cuda", python=None, venv_params=["--system-site-packages"])
def torch_cuda(session: nox.Session) -> None:
    """PyTorch on CUDA (skipped, before installing anything, without a GPU)."""
    _gpu_or_skip(session)
    _run_tests(session, "torch-cuda")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("-r", _requirements("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy on the xsoftmax package."""
    session.install("-r", _requirements("typecheck"))
    session.install("-e", ".")
    session.run("mypy", "xsoftmax")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Every docstring example in xsoftmax/ run as a doctest against array_api_strict."""
    session.install("-r", _requirements("docs"))
    session.install("-e", ".")
    session.run(
        "pytest",
        "--doctest-modules",
        "xsoftmax",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )


def _install_measuring_tools(session: nox.Session) -> None:
    """Every library that the accuracy and speed harnesses compare xsoftmax with."""
    for name in ("numpy", "torch", "jax", "array-api-strict"):
        session.install("-r", _requirements(name))
    session.install("-e", ".[test]", "matplotlib>=3.7")


@nox.session(python=PYTHON)
def accuracy(session: nox.Session) -> None:
    """Accuracy table in ulps against an mpmath reference (benchmarks/accuracy.py; not in CI)."""
    _install_measuring_tools(session)
    session.run("python", "benchmarks/accuracy.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed and memory against the anchors, side by side (benchmarks/run.py; not in CI)."""
    _install_measuring_tools(session)
    session.run("python", "benchmarks/run.py", *session.posargs)
