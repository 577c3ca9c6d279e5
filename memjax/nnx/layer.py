"""``MemoryLayer``: any :class:`memjax.core.SequenceLayer` as a Flax NNX module.

Learned params are ``nnx.Param`` leaves; the test-time state lives in :class:`MemoryState`
variables, a separate ``nnx.Variable`` type, so ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` and
``nnx.grad(..., argnums=nnx.DiffState(0, nnx.Param))`` never train it. Each call continues from
the state the previous call left (streaming); :meth:`MemoryLayer.reset` starts afresh from
``init_state(params)``. ``detach=True`` stops gradients into the carried state.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.associative import AssociativeLayer
    >>> from memjax.nnx import MemoryLayer
    >>> spec = AssociativeLayer(8, 2, LinearMemory(4, 4))
    >>> layer = MemoryLayer(spec, rngs=nnx.Rngs(0), batch_shape=(3,))
    >>> layer(jnp.ones((3, 5, 8))).shape
    (3, 5, 8)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.core.protocol import SequenceLayer
from memjax.core.stateful import initial_carry, run_layer


class MemoryState(nnx.Variable):
    """A test-time memory state: written by the forward pass, never trained by the optimiser."""


def _is_var(x) -> bool:
    return isinstance(x, nnx.Variable)


def _values(tree):
    return jax.tree_util.tree_map(lambda v: v[...], tree, is_leaf=_is_var)


def _assign(variables, values) -> None:
    leaves = jax.tree_util.tree_leaves(variables, is_leaf=_is_var)
    for var, value in zip(leaves, jax.tree_util.tree_leaves(values), strict=True):
        var[...] = value


class MemoryLayer(nnx.Module):
    """Flax NNX layer over ``layer`` (a memjax spec with ``init_params``/``init_state``/``apply``).

    Args:
        layer: the functional layer spec, e.g. :class:`memjax.models.associative.AssociativeLayer`.
        rngs: ``nnx.Rngs``; ``rngs.params()`` initialises the params.
        batch_shape: leading batch axes of the inputs (the state keeps one copy per example).
        detach: stop gradients into the state carried from earlier calls.
        **controls: static keyword controls passed to every ``layer.apply`` call.
    """

    def __init__(
        self,
        layer: SequenceLayer,
        *,
        rngs: nnx.Rngs,
        batch_shape: Sequence[int] = (),
        detach: bool = False,
        **controls,
    ):
        self.layer = layer
        self.batch_shape = tuple(batch_shape)
        self.detach = detach
        self.controls = controls
        params = layer.init_params(rngs.params())
        self.params = nnx.data(jax.tree_util.tree_map(nnx.Param, params))
        carry, fresh = initial_carry(layer, params, self.batch_shape)
        self.state = nnx.data(jax.tree_util.tree_map(MemoryState, carry))
        self.fresh = MemoryState(fresh)

    def __call__(self, *inputs, **controls):
        ys, new_state = run_layer(
            self.layer,
            _values(self.params),
            _values(self.state),
            self.fresh[...],
            inputs,
            batch_shape=self.batch_shape,
            detach=self.detach,
            controls={**self.controls, **controls},
        )
        _assign(self.state, new_state)
        self.fresh[...] = jnp.array(False)
        return ys

    def reset(self) -> None:
        """Forget the carried state: the next call starts from ``init_state(params)``."""
        self.fresh[...] = jnp.array(True)

    def raw_params(self):
        """The params as the plain pytree the functional core uses."""
        return _values(self.params)

    def raw_state(self):
        """The carried state as the plain pytree the functional core uses."""
        return _values(self.state)
