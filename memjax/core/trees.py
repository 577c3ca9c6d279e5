"""Small pytree utilities used across memjax.

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.core.trees import tree_where, tree_size
    >>> tree_size({"a": jnp.zeros((2, 3)), "b": jnp.zeros(4)})
    10
    >>> tree_where(jnp.array(True), {"a": 1.0}, {"a": 2.0})["a"].item()
    1.0
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def tree_stop_gradient(tree):
    """``lax.stop_gradient`` on every leaf: detach a carried state from the graph."""
    return jax.tree_util.tree_map(jax.lax.stop_gradient, tree)


def tree_where(cond, on_true, on_false):
    """Leafwise ``jnp.where(cond, a, b)`` over two pytrees of the same structure."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(cond, a, b), on_true, on_false)


def tree_size(tree) -> int:
    """Total number of array elements in ``tree``."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(tree)))


def tree_cast(tree, dtype):
    """Cast every floating leaf of ``tree`` to ``dtype``; other leaves are left alone."""

    def cast(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree_util.tree_map(cast, tree)


def tree_stack(trees):
    """Stack a list of same-structured pytrees along a new leading axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def tree_index(tree, i):
    """Take index ``i`` of the leading axis of every leaf."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def tree_all_finite(tree) -> jax.Array:
    """A boolean scalar: every floating leaf of ``tree`` is free of NaN and Inf."""
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)
