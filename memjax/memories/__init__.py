"""Memories: each a :func:`memjax.core.spec` dataclass implementing the memory protocol.

* :mod:`~memjax.memories.linear` — :class:`LinearMemory`: the delta rule, Gated DeltaNet, and the
  linear Titans memory (momentum and decay);
* :mod:`~memjax.memories.gates` — data-dependent gates shared by the memories;
* :mod:`~memjax.memories.titans` — Titans' deep neural memory (:class:`TitansMemory`);
* :mod:`~memjax.memories.sparsey` — Sparsey's SDR macs (:class:`SparseyMac`);
* :mod:`~memjax.memories.ntm`, :mod:`~memjax.memories.mann`, :mod:`~memjax.memories.nmn` — the
  memory cells of Fast & Slow Learning: the Neural Turing Machine (:class:`NTMCell`), MANN with
  least-recently-used access (:class:`MANNCell`) and the reconstructed NMN (:class:`NMNCell`),
  each with its memory (:class:`NTMMemory`, …), on :mod:`~memjax.memories.addressing` and
  :mod:`~memjax.memories.head_cell`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories import LinearMemory
    >>> mem = LinearMemory(d_key=2, d_value=1, theta=1.0)
    >>> p = mem.init_params(jax.random.key(0))
    >>> s = mem.write(p, mem.init_state(p), jnp.array([1.0, 0.0]), jnp.array([3.0]))
    >>> mem.read(p, s, jnp.array([1.0, 0.0]))
    Array([3.], dtype=float32)
"""

from memjax.memories.head_cell import (
    FeedForwardController as FeedForwardController,
    HeadCellCarry as HeadCellCarry,
)
from memjax.memories.linear import LinearMemory as LinearMemory, LinearState as LinearState
from memjax.memories.mann import (
    MANNCell as MANNCell,
    MANNMemory as MANNMemory,
    MANNState as MANNState,
)
from memjax.memories.nmn import (
    NMNCarry as NMNCarry,
    NMNCell as NMNCell,
    NMNMemory as NMNMemory,
    NMNState as NMNState,
)
from memjax.memories.ntm import NTMCell as NTMCell, NTMMemory as NTMMemory, NTMState as NTMState
from memjax.memories.sparsey import SparseyMac as SparseyMac, SparseyState as SparseyState
from memjax.memories.titans import (
    MemoryMLP as MemoryMLP,
    TitansMemory as TitansMemory,
    TitansState as TitansState,
)

__all__ = [
    "FeedForwardController",
    "HeadCellCarry",
    "LinearMemory",
    "LinearState",
    "MANNCell",
    "MANNMemory",
    "MANNState",
    "MemoryMLP",
    "NMNCarry",
    "NMNCell",
    "NMNMemory",
    "NMNState",
    "NTMCell",
    "NTMMemory",
    "NTMState",
    "SparseyMac",
    "SparseyState",
    "TitansMemory",
    "TitansState",
]
