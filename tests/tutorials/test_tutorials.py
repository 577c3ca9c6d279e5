"""Execute every tutorial notebook (jupytext percent format) in small mode.

Each ``tutorials/*.py`` is converted with jupytext and run cell by cell by nbclient in a temporary
working directory with ``MEMJAX_SMALL=1`` and a per-cell timeout; any cell error fails the test.
"""

import os
import pathlib

import jupytext
import pytest
from nbclient import NotebookClient

TUTORIALS = sorted((pathlib.Path(__file__).parents[2] / "tutorials").glob("[0-9]*.py"))
CELL_TIMEOUT_S = 300


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMJAX_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # one CPU device in the kernel, as a user would have; the suite's other XLA flags pass through
    flags = os.environ.get("XLA_FLAGS", "").split()
    monkeypatch.setenv("XLA_FLAGS", " ".join(f for f in flags if "device_count" not in f))
    monkeypatch.chdir(tmp_path)
    notebook = jupytext.read(path)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
