"""The experiments as a package: pyproject ships it (and the memjax-experiment command), the
command lists and dispatches experiments, and a wrong name is a message, not a traceback."""

from __future__ import annotations

import pathlib
import sys
import tomllib

import pytest

import experiments
from experiments import find_experiments

ROOT = pathlib.Path(__file__).parents[2]


def test_pyproject_ships_experiments_and_the_command():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "experiments*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert project["project"]["scripts"]["memjax-experiment"] == "experiments:main"


def test_list_and_unknown_name(capsys):
    known = find_experiments()
    assert {"titans.recall", "sparsey.mnist", "associative_recall"} <= set(known)
    assert "common.mqar" not in known and all(summary for summary in known.values())
    assert experiments.main(["--list"]) == 0
    assert "titans.recall" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        experiments.main(["titans.recal"])
    assert exc.value.code == 2
    assert "did you mean 'titans.recall'?" in capsys.readouterr().err


def test_dispatch_runs_the_experiments_main_on_the_command_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["memjax-experiment"])
    with pytest.raises(SystemExit) as exc:  # --help exits 0 after printing the usage
        experiments.main(["associative_recall", "--help"])
    assert exc.value.code == 0
    assert "usage: associative_recall" in capsys.readouterr().out
