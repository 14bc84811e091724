#!/usr/bin/env python3
# /// script
# dependencies = ["nox>=2025.10.14"]
# ///
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
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2025.10.14"

ROOT = Path(__file__).parent
BACKENDS_DIR = ROOT / "backends"
DOCS_DIR = ROOT / "docs"
DOCS_HTML = DOCS_DIR / "_build" / "html"
MIN_PYTHON = (3, 10)  # pyproject's requires-python

# Every session runs on the interpreter that runs nox (python=None), whatever its version,
# instead of a hard-coded "3.11" that another machine may lack: a session whose interpreter is
# missing would be *skipped* and `nox` would exit 0, a false green. An interpreter older than
# the package supports is refused here, loudly, before any session starts.
if sys.version_info < MIN_PYTHON:
    _found = ".".join(map(str, sys.version_info[:3]))
    _wanted = ".".join(map(str, MIN_PYTHON))
    msg = f"xsoftmax needs Python >= {_wanted}; nox runs on Python {_found} ({sys.executable})"
    raise SystemExit(msg)
PYTHON = None

CPU_BACKENDS = ("numpy", "array-api-strict", "torch", "jax", "dask")
GPU_BACKENDS = ("cupy", "torch-cuda")

# pytest-xdist: one worker per core (2 on CI's machine); `nox -s numpy -- -n 0` runs serially
PARALLEL = ("-n", "auto")

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True  # a missing interpreter fails, never skips
# Plain `nox` runs every session marked default: those that run on a CPU-only machine
# without a browser (`nox -l` marks them with `*`). GPU, browser and measuring sessions
# run when named (`nox -s docs-browser`).


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


def _run_tests(session: nox.Session, backend: str, *, fast: bool = False) -> None:
    """Install the package with ``backend``'s requirements and run pytest on it alone.

    ``fast`` also installs the ``fast`` extra (numba's compiled kernels) and fails at once
    when numba does not import, so the session never passes on the generic path alone.
    """
    session.install("-r", _requirements(backend))
    if fast:
        session.install("-r", _requirements("fast"))
    _install_package_for_tests(session)
    if fast:
        session.run("python", "-c", "import numba; print('numba', numba.__version__)")
    # pytest's exit code 5 (no test collected) is not in nox's success codes: it fails
    session.run(
        "pytest",
        *PARALLEL,
        *session.posargs,
        env={"XSOFTMAX_BACKENDS": backend},
    )


@nox.session(python=PYTHON)
def numpy(session: nox.Session) -> None:
    """NumPy backend (inputs read-only); torch only as the grid tests' oracle."""
    _run_tests(session, "numpy")


@nox.session(name="numpy-fast", python=PYTHON)
def numpy_fast(session: nox.Session) -> None:
    """NumPy backend with the ``fast`` extra (numba kernels) installed."""
    _run_tests(session, "numpy", fast=True)


@nox.session(name="array-api-strict", python=PYTHON)
def array_api_strict(session: nox.Session) -> None:
    """array-api-strict: the standard alone, incl. its extra devices (no float16/bfloat16)."""
    _run_tests(session, "array-api-strict")


@nox.session(python=PYTHON)
def torch(session: nox.Session) -> None:
    """PyTorch 2.13 CPU: float16/bfloat16, autograd and the meta device."""
    _run_tests(session, "torch")


@nox.session(name="torch-fast", python=PYTHON)
def torch_fast(session: nox.Session) -> None:
    """PyTorch 2.13 CPU with the ``fast`` extra (numba kernels) installed."""
    _run_tests(session, "torch", fast=True)


@nox.session(python=PYTHON)
def jax(session: nox.Session) -> None:
    """JAX on CPU (x64 enabled): eager, under jax.jit and through jax.grad."""
    _run_tests(session, "jax")


@nox.session(python=PYTHON)
def dask(session: nox.Session) -> None:
    """Dask: lazy chunked arrays, nothing computed until asked, and a LocalCluster run."""
    _run_tests(session, "dask")


@nox.session(python=PYTHON)
def dropin(session: nox.Session) -> None:
    """Drop-in wrappers (xsoftmax.nn, .keras, .optax) against torch.nn, keras.losses and optax."""
    session.install("-r", _requirements("dropin"))
    _install_package_for_tests(session)
    session.run(
        "pytest",
        *PARALLEL,
        "tests/test_dropin_torch.py",
        "tests/test_dropin_optax.py",
        *session.posargs,
        env={"XSOFTMAX_BACKENDS": "torch,jax"},
    )
    # Keras picks its backend once per process: one pytest run per KERAS_BACKEND
    for backend in ("jax", "torch", "numpy"):
        session.run(
            "pytest",
            "tests/test_dropin_keras.py",
            *session.posargs,
            env={"XSOFTMAX_BACKENDS": backend, "KERAS_BACKEND": backend},
        )


# GPU sessions reuse the GPU image's CUDA builds (system site packages) instead of
# downloading them, and use the interpreter that runs nox (the image's own Python).
@nox.session(default=False, python=None, venv_params=["--system-site-packages"])
def cupy(session: nox.Session) -> None:
    """CuPy on an NVIDIA GPU (skipped, before installing anything, without one)."""
    _gpu_or_skip(session)
    _run_tests(session, "cupy")


@nox.session(default=False, name="torch-cuda", python=None, venv_params=["--system-site-packages"])
def torch_cuda(session: nox.Session) -> None:
    """PyTorch on CUDA (skipped, before installing anything, without a GPU)."""
    _gpu_or_skip(session)
    _run_tests(session, "torch-cuda")


@nox.session(name="triton-interpret", python=PYTHON)
def triton_interpret(session: nox.Session) -> None:
    """Triton kernels in Triton's CPU interpreter, and their PTX audit for sm_80/sm_90."""
    session.install("-r", _requirements("triton"))
    _install_package_for_tests(session)
    session.run(
        "pytest",
        *PARALLEL,
        "tests/test_triton.py",
        "tests/test_triton_ptx.py",
        "tests/test_triton_dispatch.py",
        *session.posargs,
        # XSOFTMAX_TRITON_CPU: the dispatch sends CPU tensors to the Triton row of its table
        env={"TRITON_INTERPRET": "1", "XSOFTMAX_TRITON_CPU": "1", "XSOFTMAX_BACKENDS": "torch"},
    )


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


def _build_docs(session: nox.Session) -> None:
    """Install the docs requirements and the package, and build the site with -W."""
    session.install("-r", _requirements("docs"))
    session.install("-e", ".")
    session.run(
        "sphinx-build",
        "-W",  # every warning is an error
        "--keep-going",  # ... but report all of them
        "-q",
        "-b",
        "html",
        str(DOCS_DIR),
        str(DOCS_HTML),
    )


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the site (Sphinx, -W) and run every example: docstrings and docs pages."""
    _build_docs(session)
    session.install("-r", _requirements("fast"))  # the numba kernels' own examples
    # the docstring examples (on NumPy and array-api-strict) and the pages' `>>>` code (the
    # tutorial, the NumPy guide): printed output is compared. numba is installed, so the
    # compiled kernels' examples run; modules that import torch, JAX or Dask at their top
    # are reported as skipped here (their code is tested in those backends' sessions).
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "-rs",
        "--doctest-modules",
        "--doctest-ignore-import-errors",
        "--doctest-glob=*.md",
        "--ignore=docs/_build",
        "--ignore=docs/conf.py",
        "--ignore=docs/check_pages.py",
        "xsoftmax",
        "docs",
        *session.posargs,
    )
    session.log(f"site: {DOCS_HTML / 'index.html'}")


@nox.session(default=False, name="docs-browser", python=PYTHON)
def docs_browser(session: nox.Session) -> None:
    """Render pages of the built site in headless Chromium and check text, math, images."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        session.error(
            "docs-browser needs Chromium: `apt-get install chromium` (Debian/Ubuntu); "
            ".ci/run installs it when missing"
        )
    _build_docs(session)
    session.run("python", "docs/check_pages.py", "--chromium", chromium, *session.posargs)


def _install_measuring_tools(session: nox.Session) -> None:
    """Every library that the accuracy and speed harnesses compare xsoftmax with."""
    for name in ("numpy", "torch", "jax", "array-api-strict"):
        session.install("-r", _requirements(name))
    _install_package_for_tests(session)
    session.install("matplotlib>=3.7")


@nox.session(python=PYTHON, default=False)
def accuracy(session: nox.Session) -> None:
    """Accuracy table in ulps against an mpmath reference (benchmarks/accuracy.py; not in CI)."""
    _install_measuring_tools(session)
    session.run("python", "benchmarks/accuracy.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Speed and memory against the anchors, side by side (benchmarks/run.py; not in CI)."""
    _install_measuring_tools(session)
    session.run("python", "benchmarks/run.py", *session.posargs)


if __name__ == "__main__":
    nox.main()
