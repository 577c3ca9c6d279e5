"""The Sphinx docs build offline with warnings as errors, and the built HTML stands alone.

One build (tutorials shown with the outputs and plots of their stored small-mode notebooks,
``docs/execute_tutorials.py``; nothing is executed at build time) is shared by the checks: every
tutorial page shows its printed outputs and its plots, the stored notebooks match their sources,
no page loads a script or stylesheet from another host (MathJax is served from ``_static``), the
API reference is one page per subpackage, and no object is documented twice.
"""

import collections
import importlib
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import memjax

ROOT = pathlib.Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "docs"))
import execute_tutorials  # noqa: E402

EXTERNAL = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//[^\"'\s>]+", re.I
)
OBJECT_ID = re.compile(r'<dt class="sig sig-object py" id="(memjax\.[\w.]+)"')


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    env = {**os.environ, "MEMJAX_DOCS_EXECUTE": "stored"}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(ROOT / "docs"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_builds_every_page(html):
    assert (html / "api" / "index.html").exists()
    for tutorial in sorted((ROOT / "tutorials").glob("[0-9]*.py")):
        assert (html / "tutorials" / f"{tutorial.stem}.html").exists(), tutorial.name


def test_stored_tutorial_notebooks_match_their_sources():
    stale = [p.name for p in execute_tutorials.stale()]
    assert not stale, f"stale: {stale}; run `python docs/execute_tutorials.py --stale`"


def test_tutorial_pages_show_outputs_and_plots(html):
    for tutorial in execute_tutorials.tutorials():
        page = (html / "tutorials" / f"{tutorial.stem}.html").read_text()
        assert 'class="output stream' in page or "cell_output" in page, tutorial.name
        plots = re.findall(r'<img[^>]+src="(\.\./_images/[^"]+\.png)"', page)
        assert plots, f"{tutorial.name}: no plot on the page"
        assert all((html / "tutorials" / src).resolve().exists() for src in plots), tutorial.name


def test_no_page_loads_anything_from_another_host(html):
    pages = sorted(html.rglob("*.html"))
    assert pages
    external = {
        str(p.relative_to(html)): hits for p in pages if (hits := EXTERNAL.findall(p.read_text()))
    }
    assert not external, external
    mathjax = html / "_static" / "mathjax" / "tex-chtml.js"
    assert mathjax.exists() and mathjax.stat().st_size > 100_000
    basics = (html / "tutorials" / "00_memjax_basics.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in basics
    assert r"\lVert" in basics  # the page has maths for it to typeset


def test_api_reference_is_one_page_per_subpackage_without_duplicates(html):
    subpackages = {
        m.name.split(".")[1]
        for m in pkgutil.iter_modules(memjax.__path__, "memjax.")
        if not m.name.split(".")[1].startswith("_")
    }
    pages = {p.stem for p in (html / "api").glob("*.html")} - {"index"}
    assert pages == subpackages
    api_pages = sorted((html / "api").glob("*.html"))
    ids = [i for p in api_pages for i in OBJECT_ID.findall(p.read_text())]
    assert ids, "no documented object"
    repeated = [i for i, n in collections.Counter(ids).items() if n > 1]
    assert not repeated, repeated
    by_object = collections.defaultdict(list)
    for name in ids:
        module, _, attr = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):  # a method or attribute: its class is listed
            continue
        if callable(obj):
            by_object[id(obj)].append(name)
    twice = [names for names in by_object.values() if len(names) > 1]
    assert not twice, f"documented more than once: {twice}"
    for name in ("memjax.memories.titans.TitansMemory", "memjax.memories.titans.TitansState"):
        short = name.rpartition(".")[2]
        assert sum(i.endswith(f".{short}") for i in ids) == 1, short
