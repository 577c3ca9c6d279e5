"""The public API: every package re-exports its names with ``__all__``, every public name has a
docstring of its own, every public module has a runnable example, and the top level holds the
main class of every paper."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import memjax

PUBLIC_MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(memjax.__path__, "memjax.")
    if not any(part.startswith("_") for part in m.name.split("."))
)
PACKAGES = [
    "memjax",
    *sorted(
        m.name
        for m in pkgutil.walk_packages(memjax.__path__, "memjax.")
        if m.ispkg and not any(part.startswith("_") for part in m.name.split("."))
    ),
]


def _own_doc(obj) -> str:
    """The docstring ``obj`` was given, not one Python generated or inherited."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    doc = (doc or "").strip()
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""  # the namedtuple / dataclass signature
    return doc


@pytest.mark.parametrize("name", PACKAGES)
def test_package_exports_have_docstrings(name):
    package = importlib.import_module(name)
    assert isinstance(getattr(package, "__all__", None), list | tuple), f"{name} has no __all__"
    for public in package.__all__:
        assert hasattr(package, public), f"{name}.__all__ names {public!r}, which is not there"
        obj = getattr(package, public)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert _own_doc(obj), f"{name}.{public} has no docstring"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_module_has_runnable_example(name):
    module = importlib.import_module(name)
    assert (module.__doc__ or "").strip(), f"{name} has no module docstring"
    tests = doctest.DocTestFinder().find(module)
    assert sum(len(t.examples) for t in tests) > 0, f"{name} has no runnable example"


def test_top_level_has_each_papers_main_class():
    for name in ("LinearMemory", "TitansMemory", "TitansLMM", "MAC", "MAG", "MAL", "SparseyMac"):
        assert name in memjax.__all__ and inspect.isclass(getattr(memjax, name))
