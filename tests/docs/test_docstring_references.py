"""Docstrings cite papers and equations, never files a user does not have; the top level
exports every name its docstring promises.

Every module, class and function docstring under ``memjax/`` is searched for references to
files outside the repository (the design guide, the paper specs and their folder). On failure
the message lists each offending file with the line of the reference.
"""

from __future__ import annotations

import ast
import pathlib
import re

import memjax

ROOT = pathlib.Path(__file__).parents[2]
OUTSIDE = re.compile(r"DESIGN\.md|shared/papers|\.\./shared|\bspecs? §|papers/\w+\.md", re.I)


def _docstrings(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc and node.body:
                yield node.body[0].lineno, doc


def offenders() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "memjax").rglob("*.py")):
        if "vendor" in path.parts:
            continue
        for lineno, doc in _docstrings(ast.parse(path.read_text())):
            for i, line in enumerate(doc.splitlines()):
                if OUTSIDE.search(line):
                    where = f"{path.relative_to(ROOT)}:{lineno + i}"
                    found.setdefault(str(path.relative_to(ROOT)), []).append(
                        f"{where}: {line.strip()}"
                    )
    return found


def test_the_pattern_catches_what_it_must():
    for text in ("see DESIGN.md §3", "spec §4", "shared/papers/titans.md", "(papers/wgsef.md)"):
        assert OUTSIDE.search(text), text
    for text in ("Titans eq. 13", "a frozen spec", "the spec's dtype", "Behrouz et al. 2025, §3.1"):
        assert not OUTSIDE.search(text), text


def test_docstrings_name_no_file_outside_the_repository():
    found = offenders()
    report = "\n".join(line for lines in found.values() for line in lines)
    assert not found, f"{len(found)} files cite files outside the repository:\n{report}"


def test_top_level_exports_what_its_docstring_promises():
    promised = set(re.findall(r":(?:class|func):`~?([A-Za-z_]\w*)`", memjax.__doc__))
    assert promised, "the top-level docstring names no class"
    missing = sorted(n for n in promised if n not in memjax.__all__ or not hasattr(memjax, n))
    assert not missing, f"memjax's docstring promises {missing}, which memjax does not export"
