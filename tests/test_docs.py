"""The documentation and the packaging say what the code does.

* Each backend guide page's code (``docs/guide/<backend>.md``: its ``python`` blocks,
  which have no ``>>>`` prompts) runs in that backend's session. The ``>>>`` pages (the
  tutorial, the NumPy guide) and the docstrings run in ``nox -s docs``.
* The version is written once; the README's test command is what CI runs; nox cannot
  pass by skipping sessions; nothing links to documents outside the project.
* softmax's default axis differs from SciPy's on purpose: checked against SciPy.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import get_backend

import xsoftmax
from xsoftmax.demo.__main__ import main as demo_main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# guide page -> the test backend whose session runs its code
GUIDE_BACKENDS = {
    "torch": "torch",
    "jax": "jax",
    "dask": "dask",
    "cupy": "cupy",
    "array-api": "array-api-strict",
}
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    """The ``python`` fenced blocks of a Markdown page that are scripts (no ``>>>``)."""
    blocks = FENCE.findall(page.read_text(encoding="utf-8"))
    return [block for block in blocks if ">>>" not in block]


def test_every_guide_page_is_run_somewhere() -> None:
    """A new guide page needs a backend here (or ``>>>`` examples run by the docs session)."""
    pages = {p.stem for p in (DOCS / "guide").glob("*.md")} - {"index"}
    doctested = {p for p in pages if ">>>" in (DOCS / "guide" / f"{p}.md").read_text()}
    assert pages - doctested <= set(GUIDE_BACKENDS), pages - doctested - set(GUIDE_BACKENDS)
    for page in GUIDE_BACKENDS:
        assert python_blocks(DOCS / "guide" / f"{page}.md"), f"no python blocks in {page}.md"


@pytest.mark.parametrize("page", sorted(GUIDE_BACKENDS))
def test_guide_page_code_runs(page: str) -> None:
    """Every script block of the page runs, in order, in one namespace, without error."""
    if get_backend(GUIDE_BACKENDS[page]) is None:
        pytest.skip(f"runs in the {GUIDE_BACKENDS[page]} session")
    for number, block in enumerate(python_blocks(DOCS / "guide" / f"{page}.md")):
        namespace: dict[str, object] = {"__name__": f"guide_{page}_{number}"}
        exec(compile(block, f"docs/guide/{page}.md[{number}]", "exec"), namespace)


def test_version_is_written_once() -> None:
    """The installed metadata, the package and CITATION.cff agree; the changelog has it."""
    version = xsoftmax.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", version)
    assert importlib.metadata.version("xsoftmax") == version
    assert f"\nversion: {version}\n" in (ROOT / "CITATION.cff").read_text()
    assert f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r"^version\s*=", pyproject, flags=re.MULTILINE)


def test_demo_prints_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m xsoftmax.demo --version``."""
    assert demo_main(["--version"]) == 0
    assert capsys.readouterr().out == f"xsoftmax-demo {xsoftmax.__version__}\n"


def test_fast_extra_in_metadata() -> None:
    """``pip install 'xsoftmax[fast]'`` brings numba (the numpy-fast / torch-fast sessions)."""
    meta = importlib.metadata.metadata("xsoftmax")
    assert "fast" in meta.get_all("Provides-Extra", [])
    requires = importlib.metadata.requires("xsoftmax") or []
    fast = [r for r in requires if re.search(r"extra\s*==\s*[\"']fast[\"']", r)]
    assert any(r.startswith("numba") for r in fast), requires


def test_readme_test_command_is_what_ci_runs() -> None:
    """The README's test command works on a PEP 668 system and is exactly what .ci/run runs."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(
        r"## Two commands.*?```bash\n.*?```.*?```bash\n(.*?)\n```", readme, re.DOTALL
    )
    assert match is not None, "the README's second command block is missing"
    command = match.group(1).strip()
    assert command.startswith("python3 -m venv "), command  # no pip into the system Python
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines


def test_nox_never_skips_for_want_of_an_interpreter() -> None:
    """No session pins a Python version that another machine may lack (a false green)."""
    noxfile = (ROOT / "noxfile.py").read_text()
    assert not re.search(r"=\s*[\"']3\.\d+", noxfile), "a session names a Python version"
    assert not re.search(r"python\s*=\s*[\"'\[]", noxfile), "a session names a Python version"
    assert "nox.options.error_on_missing_interpreters = True" in noxfile
    assert "sys.version_info < MIN_PYTHON" in noxfile


def test_no_links_outside_the_project() -> None:
    """The contract is the project's own text: nothing links ../shared."""
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md")]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "../shared" not in text, page
        assert "/work/shared" not in text, page


def test_softmax_default_axis_differs_from_scipy_on_purpose() -> None:
    """Documented in the differences table: axis=-1 (per row), SciPy's default is None."""
    special = pytest.importorskip("scipy.special")
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    np.testing.assert_allclose(xsoftmax.softmax(x), special.softmax(x, axis=-1), rtol=1e-15)
    np.testing.assert_allclose(xsoftmax.softmax(x, axis=(0, 1)), special.softmax(x), rtol=1e-15)
    assert not np.allclose(xsoftmax.softmax(x), special.softmax(x))
    table = (DOCS / "contract" / "differences.md").read_text()
    assert "softmax / log_softmax default axis" in table
    assert "`axis=None`" in table
