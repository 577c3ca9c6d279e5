"""Flax NNX wrappers: thin ``nnx.Module`` layers over the functional core (no maths here).

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import memjax.nnx as mnnx
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.associative import AssociativeLayer
    >>> layer = mnnx.MemoryLayer(AssociativeLayer(8, 2, LinearMemory(4, 4)), rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((5, 8))).shape
    (5, 8)
"""

from memjax.nnx.layer import MemoryLayer as MemoryLayer, MemoryState as MemoryState

__all__ = ["MemoryLayer", "MemoryState"]
