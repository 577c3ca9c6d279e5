"""Titans' neural long-term memory (arXiv 2501.00663 §3): the update, the memory, the parallel form.

* :mod:`~memjax.memories.titans.update` — the update of eqs. 8–14, written once
  (:func:`~memjax.memories.titans.update.token_update`), and the sequence state
  :class:`ChunkState`;
* :mod:`~memjax.memories.titans.memory` — :class:`TitansMemory`, the exact token-by-token
  recurrence behind the memory protocol, and :func:`recurrent_memory`, the token loop over a
  sequence;
* :mod:`~memjax.memories.titans.parallel` — the chunked dual form (§3.2) and its raw entry point
  :func:`parallel_memory`;
* :mod:`~memjax.memories.titans.mlp` — :class:`MemoryMLP`, the memory network and its inner
  gradients.

:func:`parallel_memory` and :func:`recurrent_memory` take the same arguments (a memory spec, its
weights or state, raw keys, values, queries and per-token gates) and compute the same map. The
layer with projections, convolution, gates and persistent tokens is
:class:`memjax.models.titans.TitansLMM`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.titans import TitansMemory, parallel_memory
    >>> mem = TitansMemory(d_key=4, d_value=4)
    >>> w0 = mem.init_params(jax.random.key(0))["init"]
    >>> k = jax.random.normal(jax.random.key(1), (6, 4))
    >>> reads, state = parallel_memory(mem, w0, k, k, k, 0.1, 0.9, 0.01, chunk_size=4)
    >>> reads.shape
    (6, 4)
"""

from memjax.memories.titans.memory import (
    TitansMemory as TitansMemory,
    recurrent_memory as recurrent_memory,
)
from memjax.memories.titans.mlp import MemoryMLP as MemoryMLP
from memjax.memories.titans.parallel import parallel_memory as parallel_memory
from memjax.memories.titans.update import (
    ChunkState as ChunkState,
    TitansState as TitansState,
    token_update as token_update,
)

__all__ = [
    "ChunkState",
    "MemoryMLP",
    "TitansMemory",
    "TitansState",
    "parallel_memory",
    "recurrent_memory",
    "token_update",
]
