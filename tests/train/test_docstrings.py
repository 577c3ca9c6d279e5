"""The runnable examples in memjax.train's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["config", "checkpoint", "metrics", "progress", "mesh", "loop"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(f"memjax.train.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
