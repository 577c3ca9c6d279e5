"""Every runnable example in memjax's docstrings runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import memjax

MODULES = ["memjax", *sorted(m.name for m in pkgutil.walk_packages(memjax.__path__, "memjax."))]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if "Example" in (module.__doc__ or ""):
        assert result.attempted > 0
