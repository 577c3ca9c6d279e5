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


def _write_api_reference(path: pathlib.Path) -> None:
    """``api.md``: one section per subpackage, an ``automodule`` per public module (all of them)."""
    import importlib
    import pkgutil

    import memjax

    names = sorted(
        m.name
        for m in pkgutil.walk_packages(memjax.__path__, "memjax.")
        if not any(part.startswith("_") for part in m.name.split("."))
    )
    sections: dict[str, list[str]] = {}
    for name in names:
        sections.setdefault(".".join(name.split(".")[:2]), []).append(name)
    lines = ["# API reference", ""]
    lines += ["```{eval-rst}", ".. automodule:: memjax", "   :no-members:", "```", ""]
    for package, modules in sections.items():
        summary = (importlib.import_module(package).__doc__ or "").strip().splitlines()[0]
        lines += [f"## `{package}`", "", summary, "", "```{eval-rst}"]
        for module in modules:
            lines.append(f".. automodule:: {module}")
            if importlib.import_module(module).__spec__.submodule_search_locations:
                lines.append("   :no-members:")  # a package: its members are in its modules
        lines += ["```", ""]
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


_write_api_reference(pathlib.Path(__file__).parent / "api.md")

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
