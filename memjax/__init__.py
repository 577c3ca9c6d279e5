"""memjax: memory and sparsity mechanisms from research papers as pure-functional JAX modules.

The top level re-exports the functional core and the main class of every paper; everything else
lives in its subpackage: :mod:`memjax.core` (protocols, drivers), :mod:`memjax.nn` (building
blocks), :mod:`memjax.memories`, :mod:`memjax.models`, :mod:`memjax.compat`, the framework layers
:mod:`memjax.nnx` and :mod:`memjax.eqx`, :mod:`memjax.data` and the runner :mod:`memjax.train`.

=====================================  ==========================================================
paper                                  main classes
=====================================  ==========================================================
delta rule / Gated DeltaNet            :class:`LinearMemory`, :class:`AssociativeLayer`
Titans (arXiv 2501.00663)              :class:`TitansMemory`, :class:`TitansLMM`, :class:`MAC`,
                                       :class:`MAG`, :class:`MAL`
Sparsey (Rinkus)                       :class:`SparseyMac`, :class:`SparseyHierarchy`
Fast & Slow Learning (memory cells)    :class:`NTMCell`, :class:`MANNCell`, :class:`NMNCell`
WGSEF, Beta-Rank                       functions, in :mod:`memjax.sparsity`, :mod:`memjax.pruning`
=====================================  ==========================================================

The functional core re-exported here: :class:`Memory`, :class:`SequenceLayer`, :class:`Cell`,
:class:`MultiHead`, :func:`multi_head`, :func:`spec`, :func:`step`, :func:`scan`, :func:`unroll`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> import memjax
    >>> layer = memjax.TitansLMM(d_model=8, num_heads=2, chunk_size=4)
    >>> p = layer.init_params(jax.random.key(0))
    >>> ys, state = layer.apply(p, layer.init_state(p), jnp.ones((6, 8)))
    >>> ys.shape
    (6, 8)
"""

from memjax.core import (
    Cell as Cell,
    Memory as Memory,
    MultiHead as MultiHead,
    SequenceLayer as SequenceLayer,
    multi_head as multi_head,
    scan as scan,
    spec as spec,
    step as step,
    unroll as unroll,
)
from memjax.memories.linear import LinearMemory as LinearMemory, LinearState as LinearState
from memjax.memories.mann import MANNCell as MANNCell
from memjax.memories.nmn import NMNCell as NMNCell
from memjax.memories.ntm import NTMCell as NTMCell
from memjax.memories.sparsey import SparseyHierarchy as SparseyHierarchy, SparseyMac as SparseyMac
from memjax.memories.titans import TitansMemory as TitansMemory
from memjax.models.associative import (
    AssociativeLayer as AssociativeLayer,
    AssociativeState as AssociativeState,
)
from memjax.models.sequence_model import SequenceModel as SequenceModel
from memjax.models.titans import MAC as MAC, MAG as MAG, MAL as MAL, TitansLMM as TitansLMM

__version__ = "0.1.0"

__all__ = [
    "MAC",
    "MAG",
    "MAL",
    "AssociativeLayer",
    "AssociativeState",
    "Cell",
    "LinearMemory",
    "LinearState",
    "MANNCell",
    "Memory",
    "MultiHead",
    "NMNCell",
    "NTMCell",
    "SequenceLayer",
    "SequenceModel",
    "SparseyHierarchy",
    "SparseyMac",
    "TitansLMM",
    "TitansMemory",
    "__version__",
    "multi_head",
    "scan",
    "spec",
    "step",
    "unroll",
]
