"""Sphinx configuration of the tfx_explain documentation site.

Build (warnings are errors, as in CI): ``sphinx-build -W -b html docs docs/_build/html``.
The API pages are generated from the docstrings; their ``.. math::`` formulas are
rendered by MathJax in the browser. Nothing is fetched at build time.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout, not an installed copy

import tfx_explain  # noqa: E402

project = "tfx_explain"
author = "The tfx_explain developers"
copyright = "2026, The tfx_explain developers"
release = version = tfx_explain.__version__

extensions = [
    "myst_parser",  # the pages that include README sections are Markdown
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # Google-style Args/Returns/Example sections
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
suppress_warnings = ["myst.xref_missing", "myst.header"]  # README links, H1 -> H3 jumps

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # NamedTuple fields are documented once, by autodoc
# the optional extras are mocked when absent, so the site builds from the docs extra alone
autodoc_mock_imports = [
    name
    for name in ("dask", "distributed", "pyarrow", "pandas", "hypothesis", "transformers")
    if importlib.util.find_spec(name) is None
]

html_theme = "alabaster"
html_title = f"tfx_explain {release}"
html_static_path = []
