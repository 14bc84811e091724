"""Sphinx configuration of the xsoftmax documentation site (``nox -s docs`` builds it).

Sphinx and numpydoc, not MkDocs: the docstrings are numpydoc with ``.. math::``
directives, which Sphinx renders natively; myst-parser reads the Markdown pages.
MathJax is served from the site itself (sphinx-mathjax-offline), so the pages' math
renders with no network access.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import xsoftmax

DOCS = Path(__file__).parent

project = "xsoftmax"
author = "the xsoftmax developers"
copyright = "2026, the xsoftmax developers"
version = release = xsoftmax.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# accuracy_report.md is `python benchmarks/accuracy.py --out docs/accuracy_report.md`,
# included by accuracy.md
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "accuracy_report.md"]
nitpicky = False

# Markdown pages: $...$ and $$...$$ math, ::: fences, definition lists, header anchors
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference: one page per public function, from its numpydoc docstring
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters section says the types in words
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

html_theme = "furo"
html_title = f"xsoftmax {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# API page: the functions named in api.md, plus any exported name it does not list yet (a
# new public function is documented the moment it is exported, never silently missing)
_API_MARKER = "<!-- other exports -->"


def _public_functions() -> list[str]:
    return [name for name in xsoftmax.__all__ if not name.startswith("_")]


def _complete_api_page(app: Any, docname: str, source: list[str]) -> None:
    if docname == "api" and _API_MARKER in source[0]:
        listed = set(re.findall(r"^\s{3}(\w+)\s*$", source[0], flags=re.MULTILINE))
        missing = [name for name in _public_functions() if name not in listed]
        block = ""
        if missing:
            # autofunction, not autosummary: autosummary's stub pages are generated from
            # the files on disk, before this hook runs
            directives = "\n\n".join(f".. autofunction:: {name}" for name in missing)
            block = (
                "## More functions\n\n```{eval-rst}\n.. currentmodule:: xsoftmax\n\n"
                f"{directives}\n```\n"
            )
        source[0] = source[0].replace(_API_MARKER, block)


# Optional pages written alongside the code: in the toctree when the file exists
_OPTIONAL_MARKER = "<!-- optional pages -->"
_OPTIONAL_PAGES = ("linear_cross_entropy",)


def _add_optional_pages(app: Any, docname: str, source: list[str]) -> None:
    if docname == "index" and _OPTIONAL_MARKER in source[0]:
        present = [name for name in _OPTIONAL_PAGES if (DOCS / f"{name}.md").exists()]
        source[0] = source[0].replace(_OPTIONAL_MARKER, "\n".join(present))


# accuracy_report.md and performance.md are written by the benchmark scripts (--out/--docs) as
# README sections, whose headings start at "##": promote them one level on the site
_HEADING = re.compile(r"^(#{2,6}) ", flags=re.MULTILINE)


def _promote_headings(app: Any, docname: str, source: list[str]) -> None:
    first = re.search(r"^#+ ", source[0], flags=re.MULTILINE)
    if first is not None and first.group(0) == "## ":
        source[0] = _HEADING.sub(lambda m: m.group(1)[1:] + " ", source[0])


def _reread_generated_pages(
    app: Any, env: Any, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    """index and api depend on files and exports, not on their own text: read them anew."""
    return ["index", "api"]


def setup(app: Any) -> None:
    app.connect("env-get-outdated", _reread_generated_pages)
    app.connect("source-read", _promote_headings)
    app.connect("source-read", _complete_api_page)
    app.connect("source-read", _add_optional_pages)
