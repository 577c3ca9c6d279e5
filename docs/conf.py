"""Sphinx configuration: myst-nb renders the jupytext tutorials; autodoc the API reference.

Build (offline, warnings as errors): ``sphinx-build -W -b html docs docs/_build/html``.
Tutorial pages show the outputs and plots of the notebooks stored by ``docs/execute_tutorials.py``
(``MEMJAX_DOCS_EXECUTE=stored``, the default; a notebook stale against its source is an error), or
are executed at build time in small mode (``cache`` or ``force``), or shown without outputs
(``off``). MathJax is served from ``_static`` so maths render offline.
"""

import importlib
import inspect
import os
import pathlib
import pkgutil
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import memjax

# Tutorials run in small mode: "stored" shows the committed executed notebooks
# (docs/execute_tutorials.py), "cache" and "force" execute them at build time (cache re-runs only
# the notebooks that changed), "off" shows them without outputs.
_EXECUTION_MODES = {"stored": "off", "cache": "cache", "force": "force", "off": "off"}
_execute = os.environ.get("MEMJAX_DOCS_EXECUTE", "stored")
if _execute not in _EXECUTION_MODES:
    raise ValueError(
        f"MEMJAX_DOCS_EXECUTE: expected one of {tuple(_EXECUTION_MODES)}, got {_execute!r}"
    )

# The tutorials live in ../tutorials; Sphinx reads sources only under docs/, so copy them in.
sys.path.insert(0, str(pathlib.Path(__file__).parent))
import execute_tutorials

_generated = pathlib.Path(__file__).parent / "tutorials"
shutil.rmtree(_generated, ignore_errors=True)
_generated.mkdir()
if _execute == "stored" and (_stale := execute_tutorials.stale()):
    raise RuntimeError(
        "stored tutorial notebooks are stale or missing: "
        + ", ".join(p.name for p in _stale)
        + "; run `python docs/execute_tutorials.py --stale`, or build with MEMJAX_DOCS_EXECUTE=off"
    )
for _src in execute_tutorials.tutorials():
    if _execute == "stored":
        shutil.copyfile(execute_tutorials.stored(_src), _generated / f"{_src.stem}.ipynb")
    else:
        shutil.copyfile(_src, _generated / _src.name)


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return [n for n in names if not n.startswith("_") and hasattr(module, n)]


def _home(obj, public: set[str]) -> str | None:
    """The public module that documents ``obj``: where it is defined (or its nearest public
    enclosing package, for a private ``_x`` module); ``None`` for data (documented where listed)."""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return None
    home = getattr(obj, "__module__", "") or ""
    while home and home not in public:
        home = home.rpartition(".")[0]
    return home or None


def _attribute_docs(module_name: str) -> set[str]:
    from sphinx.pycode import ModuleAnalyzer

    try:
        docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    except Exception:  # no source to analyse
        return set()
    return {attr for (scope, attr) in docs if scope == ""}


def _write_api_reference(folder: pathlib.Path) -> list[str]:
    """``api/<subpackage>.md``, one page per subpackage; every public object documented once.

    A module page lists, explicitly, the classes and functions whose home is that module (so a
    name re-exported by a package or another module is not documented twice) and the data names
    its ``__all__`` lists, unless it is a package re-exporting them.
    """
    modules = {
        m.name: importlib.import_module(m.name)
        for m in pkgutil.walk_packages(memjax.__path__, "memjax.")
        if not any(part.startswith("_") for part in m.name.split("."))
    }
    public = set(modules) | {"memjax"}
    seen: set[int] = set()
    pages: dict[str, list[str]] = {}
    for name in sorted(modules):
        module = modules[name]
        is_package = module.__spec__.submodule_search_locations is not None
        members = []
        for member in _public_names(module):
            obj = getattr(module, member)
            home = _home(obj, public)
            if home is None and inspect.ismodule(obj):
                continue
            if home is None and not is_package and member in _attribute_docs(name):
                members.append(member)  # documented data (a ``#:`` comment or a docstring)
            elif home == name and id(obj) not in seen:
                seen.add(id(obj))
                members.append(member)
        block = [f".. automodule:: {name}", "   :no-members:", ""]
        for member in members:
            obj = getattr(module, member)
            kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else "data"
            if kind == "class" and issubclass(obj, BaseException):
                kind = "exception"
            block.append(f".. auto{kind}:: {name}.{member}")
            if kind in ("class", "exception"):
                block.append("   :members:")
            if kind == "data":
                block.append("   :no-value:")
            block.append("")
        pages.setdefault(".".join(name.split(".")[:2]), []).extend(block)
    folder.mkdir(exist_ok=True)
    written = []
    for package, blocks in pages.items():
        doc = (modules[package].__doc__ or "").strip().splitlines()
        text = "\n".join(
            [f"# `{package}`", "", doc[0] if doc else "", "", "```{eval-rst}", *blocks, "```", ""]
        )
        path = folder / f"{package.split('.')[1]}.md"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(f"api/{path.stem}")
    for stale in folder.glob("*.md"):
        if f"api/{stale.stem}" not in written:
            stale.unlink()
    index = "\n".join(
        [
            "# API reference",
            "",
            "```{eval-rst}",
            ".. automodule:: memjax",
            "   :no-members:",
            "```",
            "",
            "```{toctree}",
            ":maxdepth: 1",
            "",
            *[w.removeprefix("api/") for w in written],
            "```",
            "",
        ]
    )
    api_index = folder / "index.md"
    if not api_index.exists() or api_index.read_text() != index:
        api_index.write_text(index)
    return written


_write_api_reference(pathlib.Path(__file__).parent / "api")

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
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/mathjax: maths render offline
]
mathjax_path = "mathjax/tex-chtml.js"
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".py": "myst-nb"}
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = _EXECUTION_MODES[_execute]
nb_execution_cache_path = os.environ.get(
    "MEMJAX_DOCS_CACHE", str(ROOT / "docs" / "_build" / ".jupyter_cache")
)
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_in_temp = True  # a tutorial's files go to a temporary folder, not into docs/
os.environ.setdefault("MEMJAX_SMALL", "1")
# the kernels import memjax and experiments from this checkout, whatever is installed
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
myst_enable_extensions = ["dollarmath", "amsmath"]

exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    "conf.py",
    "execute_tutorials.py",
    "tutorial_outputs",
]
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
suppress_warnings = ["mystnb.unknown_mime_type", "mystnb.lexer"]

html_theme = "sphinx_book_theme"
html_title = "memjax"
html_theme_options = {"show_toc_level": 2}
# viewcode's source pages (most of the site's pages) render without the navigation sidebar: its
# global toctree is most of the build time, and a source page is reached from its [source] link
html_sidebars = {"_modules/**": []}
