"""Carrying a sequence layer's test-time state across calls: the logic both wrappers share.

The Flax NNX and Equinox layers (:mod:`memjax.nnx`, :mod:`memjax.eqx`) keep two things between
calls: the carried state and a ``fresh`` flag. :func:`run_layer` resolves the state to use —
``init_state(params)`` when fresh (so gradients reach learned initial states such as Titans' W0),
else the carried one, optionally detached with ``stop_gradient`` — then applies the layer,
``vmap``-ed over the leading ``batch_shape`` axes, and returns the outputs and the new state.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core.stateful import initial_carry, run_layer
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.associative import AssociativeLayer
    >>> layer = AssociativeLayer(8, 2, LinearMemory(4, 4))
    >>> p = layer.init_params(jax.random.key(0))
    >>> carry, fresh = initial_carry(layer, p, batch_shape=(3,))
    >>> ys, carry = run_layer(layer, p, carry, fresh, (jnp.ones((3, 5, 8)),), batch_shape=(3,))
    >>> ys.shape
    (3, 5, 8)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from memjax.core.protocol import SequenceLayer
from memjax.core.trees import tree_stop_gradient, tree_where


def _broadcast(tree, batch_shape: tuple[int, ...]):
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (*batch_shape, *x.shape)), tree)


def initial_carry(layer: SequenceLayer, params, batch_shape: Sequence[int] = ()):
    """The state a wrapper stores at construction (``init_state`` broadcast) and ``fresh=True``."""
    state = _broadcast(layer.init_state(params), tuple(batch_shape))
    return state, jnp.array(True)


def run_layer(
    layer: SequenceLayer,
    params,
    carry,
    fresh,
    inputs: tuple,
    *,
    batch_shape: Sequence[int] = (),
    detach: bool = False,
    controls: dict | None = None,
):
    """Apply ``layer`` to ``inputs`` from the carried state; return ``(outputs, new_state)``.

    ``inputs`` have the leading ``batch_shape`` axes; params are shared across the batch.
    ``detach=True`` stops gradients flowing into the state carried from an earlier call (the
    usual truncated-BPTT policy when a memory is carried across training batches).
    """
    batch_shape = tuple(batch_shape)
    for i, x in enumerate(inputs):
        if tuple(x.shape[: len(batch_shape)]) != batch_shape:
            raise ValueError(
                f"inputs[{i}]: expected leading batch shape {batch_shape}, got {tuple(x.shape)}"
            )
    carried = tree_stop_gradient(carry) if detach else carry
    state = tree_where(fresh, _broadcast(layer.init_state(params), batch_shape), carried)
    controls = controls or {}

    def apply(s, *xs):
        return layer.apply(params, s, *xs, **controls)

    for _ in batch_shape:
        apply = jax.vmap(apply)
    return apply(state, *inputs)
