"""Titans' neural long-term memory (arXiv 2501.00663 §3): the memory, its MLP and the parallel form.

* :mod:`~memjax.memories.titans.memory` — :class:`TitansMemory`, the exact token-by-token recurrence
  behind the memory protocol (eqs. 8–14);
* :mod:`~memjax.memories.titans.mlp` — :class:`MemoryMLP`, the memory network and its inner
  gradients;
* :mod:`~memjax.memories.titans.parallel` — the chunked dual form (§3.2).

The layer with projections, convolution, gates and persistent tokens is
:class:`memjax.models.titans.TitansLMM`.
"""

from memjax.memories.titans.memory import TitansMemory as TitansMemory
from memjax.memories.titans.memory import TitansState as TitansState
from memjax.memories.titans.mlp import MemoryMLP as MemoryMLP

__all__ = ["MemoryMLP", "TitansMemory", "TitansState"]
