"""Memories: each a :func:`memjax.core.spec` dataclass implementing the memory protocol.

* :mod:`~memjax.memories.linear` — :class:`LinearMemory`: the delta rule, Gated DeltaNet, and the
  linear Titans memory (momentum and decay);
* :mod:`~memjax.memories.gates` — data-dependent gates shared by the memories;
* :mod:`~memjax.memories.titans` — Titans' deep neural memory (:class:`TitansMemory`);
* :mod:`~memjax.memories.sparsey` — Sparsey's SDR macs (:class:`SparseyMac`).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories import LinearMemory
    >>> mem = LinearMemory(d_key=2, d_value=1, theta=1.0)
    >>> p = mem.init_params(jax.random.key(0))
    >>> s = mem.write(p, mem.init_state(p), jnp.array([1.0, 0.0]), jnp.array([3.0]))
    >>> mem.read(p, s, jnp.array([1.0, 0.0]))
    Array([3.], dtype=float32)
"""

from memjax.memories.linear import LinearMemory as LinearMemory, LinearState as LinearState
from memjax.memories.sparsey import SparseyMac as SparseyMac, SparseyState as SparseyState
from memjax.memories.titans import (
    MemoryMLP as MemoryMLP,
    TitansMemory as TitansMemory,
    TitansState as TitansState,
)

__all__ = [
    "LinearMemory",
    "LinearState",
    "MemoryMLP",
    "SparseyMac",
    "SparseyState",
    "TitansMemory",
    "TitansState",
]
