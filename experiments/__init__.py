"""memjax's paper experiments, runnable from any folder once memjax is installed.

Each experiment is a module with a ``main()`` (``experiments/titans/recall.py``, ...). Run one
with ``python -m experiments.<paper>.<name> [options]`` or with the ``memjax-experiment``
command that ``pip install`` puts on the path::

    memjax-experiment --list                       # every experiment and its first doc line
    memjax-experiment titans.recall --preset cpu   # = python -m experiments.titans.recall ...

Run folders (``runs/...``) are made under the current folder unless ``--out`` says otherwise.

Example:
    >>> from experiments import find_experiments
    >>> "titans.recall" in find_experiments()
    True
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["find_experiments", "main"]

_HERE = Path(__file__).parent
_SKIP = {"common", "benchmarks"}


def _summary(path: Path) -> str | None:
    """The first docstring line of ``path`` when it defines a top-level ``main``, else None."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    if not any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
        return None
    doc = ast.get_docstring(tree) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def find_experiments() -> dict[str, str]:
    """``{name: first paragraph of its docstring}`` for every experiment (``paper.script``; a
    package whose script is ``run.py`` is named after the package), benchmarks included as
    ``benchmarks.<name>``."""
    found = {}
    for path in sorted(_HERE.glob("*/*.py")):
        if path.name.startswith("_") or path.parent.name == "common":
            continue
        summary = _summary(path)
        if summary is None:
            continue
        package = path.parent.name
        name = package if path.stem == "run" else f"{package}.{path.stem}"
        found[name] = summary
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """``memjax-experiment NAME [options]``: runs experiment ``NAME``'s ``main`` with the
    options (``--list``: the experiments; ``NAME --help``: its options); returns 0."""
    args = list(sys.argv[1:] if argv is None else argv)
    known = find_experiments()
    if not args or args[0] in ("-h", "--help", "--list"):
        width = max(map(len, known))
        print("usage: memjax-experiment NAME [options]   (NAME --help: its options)\n")
        for name, summary in known.items():
            print(f"  {name:<{width}}  {summary[: 100 - width]}")
        return 0
    name = args[0].replace("/", ".").removeprefix("experiments.")
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(
            f"memjax-experiment: unknown experiment {name!r}{hint} (--list shows them)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    module = f"experiments.{name}" if "." in name else f"experiments.{name}.run"
    sys.argv = [name, *args[1:]]  # the experiment parses the real command line
    importlib.import_module(module).main()
    return 0
