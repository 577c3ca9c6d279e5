"""Suite-wide strictness (DESIGN.md §6).

* 8 forced CPU host devices, so sharding tests see a real mesh (XLA reads the flag once, at start).
* XLA's LLVM backend optimisation is off (``--xla_backend_optimization_level=0``): the suite checks
  numbers, not speed, and most of its time is compilation, which this halves. The HLO passes are
  the same and neither level uses fast-math; benchmarks and experiments run with XLA's defaults.
* On jaxlib 0.10 (where it was measured) XLA:CPU's MLIR fusion emitters are off
  (``--xla_cpu_use_fusion_emitters=false``: fusions are emitted by the older elemental IR emitter):
  compiling is what the suite spends most of its time on, and this halves it again
  (``tests/titans/test_lmm.py`` 143 → 72 CPU-s). Results agree to rounding, not bit for bit, so a
  test never compares two separately compiled float programs for exact equality. Other jaxlib
  versions keep the default, since an XLA flag a version does not know aborts the process.
* ``jax_numpy_rank_promotion="raise"``: implicit rank promotion is a bug in memjax code.
* Tutorials run in small mode (``MEMJAX_SMALL=1``).
* The persistent compilation cache that experiments switch on is off (``MEMJAX_CACHE_DIR=off``): CI
  starts from an empty cache, so writing every executable would only add time.
  ``tests/train/test_cache.py`` and the export-cache tests turn it on in their own folders.
* The experiments' ``jax.export`` cache of the train step is off (``MEMJAX_EXPORT_CACHE=off``): each
  test trains once, so exporting would only add compile time; ``tests/train/test_export_cache.py``
  switches it on where it is the subject.
* Compiled executables are freed when a worker's memory mappings grow large: XLA:CPU maps ~18
  regions per live executable and jax's caches keep them, so an xdist worker of the full suite
  passed Linux's ``vm.max_map_count`` (65,530) and segfaulted in its next compile (four runs, four
  different tests; with the limit lowered to 17,000 both workers segfaulted in
  ``backend_compile_and_load`` as they reached it). ``jax.clear_caches()`` after a test whenever
  the process holds more than ``MAX_MAPS`` mappings keeps it far below; a cleared function is
  recompiled on its next call.
"""

import gc
import importlib.metadata
import os

os.environ["XLA_FLAGS"] = " ".join(
    dict.fromkeys(  # the caller's flags first; each flag once (xdist workers inherit the env)
        [
            *os.environ.get("XLA_FLAGS", "").split(),
            "--xla_force_host_platform_device_count=8",
            "--xla_backend_optimization_level=0",
            *(
                ["--xla_cpu_use_fusion_emitters=false"]
                if importlib.metadata.version("jaxlib").startswith("0.10.")
                else []
            ),
        ]
    )
)
os.environ.setdefault("MEMJAX_SMALL", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MEMJAX_CACHE_DIR", "off")
os.environ.setdefault("MEMJAX_EXPORT_CACHE", "off")

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


MAX_MAPS = 40_000  # 25,000 below the limit: ~1,400 executables, more than any one test compiles


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
