"""Execute the tutorials in small mode and store their notebooks, outputs and plots, for the docs.

The docs show each tutorial with the outputs it printed and the plots it drew. Executing six
tutorials at build time costs minutes, so they are executed once, here, and the notebooks are
committed under ``docs/tutorial_outputs/``. Each records the SHA-256 of the tutorial source it
was run from; the docs build refuses a stale one, and the suite checks that none is stale::

    python docs/execute_tutorials.py            # every tutorial
    python docs/execute_tutorials.py 01 03      # the tutorials whose names start so
    python docs/execute_tutorials.py --stale    # only those whose source changed

Tutorials run as the suite runs them: ``MEMJAX_SMALL=1``, one CPU device, in a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
OUTPUTS = ROOT / "docs" / "tutorial_outputs"
KEY = "memjax"  # notebook metadata: {"source_sha256": ..., "mode": "MEMJAX_SMALL=1"}
NOTE = (
    "*This page shows the outputs of the tutorial run in small mode (`MEMJAX_SMALL=1`), as the "
    "test suite runs it. Run it at full size with "
    "`MEMJAX_SMALL=0 jupytext --to ipynb --execute tutorials/{name}.py`.*"
)


def tutorials() -> list[pathlib.Path]:
    return sorted(TUTORIALS.glob("[0-9]*.py"))


def source_sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored(path: pathlib.Path) -> pathlib.Path:
    """The stored executed notebook of tutorial ``path``."""
    return OUTPUTS / f"{path.stem}.ipynb"


def stale() -> list[pathlib.Path]:
    """Tutorials whose stored notebook is missing or was run from another version of the source."""
    import nbformat

    out = []
    for path in tutorials():
        nb_path = stored(path)
        if not nb_path.exists():
            out.append(path)
            continue
        meta = nbformat.read(nb_path, as_version=4).metadata.get(KEY, {})
        if meta.get("source_sha256") != source_sha256(path):
            out.append(path)
    return out


def execute(path: pathlib.Path, timeout: int = 600) -> float:
    """Run tutorial ``path`` in small mode and write its notebook; returns the seconds it took."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(NOTE.format(name=path.stem)))
    env = {"MEMJAX_SMALL": "1", "XLA_FLAGS": ""}
    saved = {k: os.environ.get(k) for k in (*env, "PYTHONPATH", "MPLBACKEND")}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend puts the plots in the notebook
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as folder:
            client = NotebookClient(
                notebook,
                timeout=timeout,
                kernel_name="python3",
                record_timing=True,
                resources={"metadata": {"path": folder}},
            )
            client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    errors = [
        o for cell in notebook.cells for o in cell.get("outputs", []) if o.output_type == "error"
    ]
    if errors:
        raise RuntimeError(f"{path.name}: a cell raised {errors[0].ename}: {errors[0].evalue}")
    times = [(_seconds(c.metadata.pop("execution", {})), i) for i, c in enumerate(notebook.cells)]
    slowest = sorted(times, reverse=True)[:3]
    print(f"{path.name}: slowest cells " + ", ".join(f"#{i} {t:.1f} s" for t, i in slowest))
    notebook.metadata[KEY] = {"source_sha256": source_sha256(path), "mode": "MEMJAX_SMALL=1"}
    OUTPUTS.mkdir(exist_ok=True)
    nbformat.write(notebook, stored(path))
    return seconds


def _seconds(timing: dict) -> float:
    """A cell's execution time from nbclient's timestamps (0 when it did not run)."""
    import datetime

    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = datetime.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="name prefixes of the tutorials to run (all)")
    parser.add_argument("--stale", action="store_true", help="run only the stale tutorials")
    args = parser.parse_args(argv)
    chosen = stale() if args.stale else tutorials()
    if args.names:
        chosen = [p for p in chosen if any(p.stem.startswith(n) for n in args.names)]
        if not chosen:
            parser.error(f"no tutorial matches {args.names}")
    for path in chosen:
        print(f"{path.name}: executing ...", flush=True)
        print(f"{path.name}: {execute(path):.1f} s -> {stored(path).relative_to(ROOT)}", flush=True)
    if not chosen:
        print("every stored tutorial notebook is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
