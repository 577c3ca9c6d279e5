"""Specs: a memory's static configuration as a frozen, hashable value.

A spec is a frozen dataclass registered as a pytree *with no array leaves*
(``jax.tree_util.register_static``), so it can be passed straight through
``jax.jit``/``jax.vmap``/``lax.scan`` and two equal specs never retrace.

Example:
    >>> import jax
    >>> from memjax.core import spec
    >>> @spec
    ... class Toy:
    ...     width: int = 4
    >>> jax.tree_util.tree_leaves(Toy()) == []
    True
    >>> hash(Toy(3)) == hash(Toy(3))
    True
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import jax

T = TypeVar("T", bound=type)


def spec(cls: T) -> T:
    """Make ``cls`` a frozen dataclass that JAX treats as a static pytree node."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    jax.tree_util.register_static(cls)
    return cls
