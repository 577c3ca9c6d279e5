"""Equinox wrappers: thin ``eqx.Module`` layers over the functional core (no maths here).

Example:
    >>> import jax, jax.numpy as jnp
    >>> import equinox as eqx
    >>> import memjax.eqx as meqx
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.associative import AssociativeLayer
    >>> spec = AssociativeLayer(8, 2, LinearMemory(4, 4))
    >>> layer, state = eqx.nn.make_with_state(meqx.MemoryLayer)(spec, key=jax.random.key(0))
    >>> layer(jnp.ones((5, 8)), state)[0].shape
    (5, 8)
"""

from memjax.eqx.layer import MemoryLayer as MemoryLayer

__all__ = ["MemoryLayer"]
