"""Sphinx configuration: myst-nb renders the jupytext tutorials; autodoc the API reference.

Build (offline, warnings as errors): ``sphinx-build -W -b html docs docs/_build/html``.
Tutorials are executed during the build only when ``MEMJAX_DOCS_EXECUTE=1`` (in small mode).
"""

import os
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The tutorials live in ../tutorials; Sphinx reads sources only under docs/, so copy them in.
_generated = pathlib.Path(__file__).parent / "tutorials"
_generated.mkdir(exist_ok=True)
for _src in sorted((ROOT / "tutorials").glob("[0-9]*.py")):
    shutil.copyfile(_src, _generated / _src.name)

project = "memjax"
author = "memjax developers"
copyright = "2026, memjax developers"
release = "0.1.0"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".py": "myst-nb"}
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "force" if os.environ.get("MEMJAX_DOCS_EXECUTE") == "1" else "off"
nb_execution_timeout = 600
os.environ.setdefault("MEMJAX_SMALL", "1")
myst_enable_extensions = ["dollarmath", "amsmath"]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "conf.py"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
suppress_warnings = ["mystnb.unknown_mime_type", "mystnb.lexer"]

html_theme = "sphinx_book_theme"
html_title = "memjax"
html_theme_options = {"show_toc_level": 2}
