"""Suite-wide strictness (DESIGN.md §6).

* 8 forced CPU host devices, so sharding tests see a real mesh (XLA reads the flag once, at start).
* XLA's LLVM backend optimisation is off (``--xla_backend_optimization_level=0``): the suite checks
  numbers, not speed, and most of its time is compilation, which this halves. The HLO passes are
  the same and neither level uses fast-math; benchmarks and experiments run with XLA's defaults.
* ``jax_numpy_rank_promotion="raise"``: implicit rank promotion is a bug in memjax code.
* Tutorials run in small mode (``MEMJAX_SMALL=1``).
* The persistent compilation cache that experiments switch on is off (``MEMJAX_CACHE_DIR=off``):
  with it on, every later compile in an xdist worker also serialised its executable, and in the full
  suite one worker segfaulted inside that serialisation (jax 0.10.2, XLA:CPU; not reproduced alone).
  ``tests/train/test_cache.py`` and the export-cache tests turn it on in their own folders.
* The experiments' ``jax.export`` cache of the train step is off (``MEMJAX_EXPORT_CACHE=off``): each
  test trains once, so exporting would only add compile time; ``tests/train/test_export_cache.py``
  switches it on where it is the subject.
* Compiled executables are freed when a worker's memory mappings grow large: XLA:CPU maps ~18
  regions per live executable and jax keeps every executable it compiled, so one xdist worker of
  the full suite passes Linux's ``vm.max_map_count`` (65,530) and segfaults in its next compile
  (stops 18–19: three tests in three runs). ``jax.clear_caches()`` after a test whenever the
  process holds more than ``MAX_MAPS`` mappings keeps it far below; a cleared function is simply
  recompiled on its next call.
"""

import gc
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
).strip()
os.environ.setdefault("MEMJAX_SMALL", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MEMJAX_CACHE_DIR", "off")
os.environ.setdefault("MEMJAX_EXPORT_CACHE", "off")

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


MAX_MAPS = 30_000


def _mapping_count():
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:  # not Linux: no per-process map limit to stay under
        return 0


@pytest.fixture(autouse=True)
def _free_executables_before_the_map_limit():
    yield
    if _mapping_count() > MAX_MAPS:
        jax.clear_caches()
        gc.collect()
