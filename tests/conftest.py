"""Suite-wide strictness (DESIGN.md §6).

* 8 forced CPU host devices, so sharding tests see a real mesh (XLA reads the flag once, at start).
* ``jax_numpy_rank_promotion="raise"``: implicit rank promotion is a bug in memjax code.
* Tutorials run in small mode (``MEMJAX_SMALL=1``).
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("MEMJAX_SMALL", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
