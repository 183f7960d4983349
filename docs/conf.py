"""Sphinx configuration of the sb3-sql documentation (build: sphinx-build -W -b html docs docs/_build/html)."""

import os
import sys

# Document the checkout that holds this folder, whether or not it is installed.
sys.path.insert(0, os.path.abspath(".."))

import sb3_sql

project = "sb3-sql"
author = "sb3-sql contributors"
copyright = "2026, sb3-sql contributors"
version = release = sb3_sql.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

# MyST: $...$ and $$...$$ maths (with equation labels), ::: fences, and anchors for ## and ### headings.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False

html_theme = "sphinx_rtd_theme"
html_title = f"sb3-sql {release}"
html_static_path = ["_static"]
# Table cells that wrap, so that no column hides behind a scrollbar (_static/tables.css).
html_css_files = ["tables.css"]
# MathJax 3 shipped with the site (Apache-2.0, _static/mathjax/LICENSE): the maths renders offline
# and on Read the Docs alike, with no request to a CDN. The SVG output keeps its fonts inside the one
# script, where the CHTML output would need a folder of web fonts beside it.
mathjax_path = "mathjax/tex-svg.js"
