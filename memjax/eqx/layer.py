"""``MemoryLayer``: any :class:`memjax.core.SequenceLayer` as an Equinox module.

The learned params are an ordinary field (trained with ``eqx.filter_grad``/optax); the test-time
state goes through ``eqx.nn.State`` via an ``eqx.nn.StateIndex``, so build the layer with
``eqx.nn.make_with_state`` and thread the state through calls. ``detach=True`` stops gradients
into the state carried from earlier calls; :meth:`MemoryLayer.reset` returns a ``State`` whose
next call starts afresh from ``init_state(params)``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> import equinox as eqx
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.associative import AssociativeLayer
    >>> from memjax.eqx import MemoryLayer
    >>> spec = AssociativeLayer(8, 2, LinearMemory(4, 4))
    >>> layer, state = eqx.nn.make_with_state(MemoryLayer)(spec, key=jax.random.key(0))
    >>> ys, state = layer(jnp.ones((5, 8)), state)
    >>> ys.shape
    (5, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from memjax.core.protocol import SequenceLayer
from memjax.core.stateful import initial_carry, run_layer


class MemoryLayer(eqx.Module):
    """Equinox layer over ``layer`` (a memjax spec with ``init_params``/``init_state``/``apply``).

    Args:
        layer: the functional layer spec.
        key: PRNG key for the params.
        batch_shape: leading batch axes of the inputs (the state keeps one copy per example).
        detach: stop gradients into the state carried from earlier calls.
        **controls: static keyword controls passed to every ``layer.apply`` call.
    """

    params: Any
    state_index: eqx.nn.StateIndex
    layer: SequenceLayer = eqx.field(static=True)
    batch_shape: tuple[int, ...] = eqx.field(static=True)
    detach: bool = eqx.field(static=True)
    controls: tuple = eqx.field(static=True)

    def __init__(
        self,
        layer: SequenceLayer,
        *,
        key: jax.Array,
        batch_shape: Sequence[int] = (),
        detach: bool = False,
        **controls,
    ):
        self.layer = layer
        self.batch_shape = tuple(batch_shape)
        self.detach = detach
        self.controls = tuple(sorted(controls.items()))
        self.params = layer.init_params(key)
        self.state_index = eqx.nn.StateIndex(initial_carry(layer, self.params, self.batch_shape))

    def __call__(self, *args, **controls):
        """``layer(*inputs, state, **controls) -> (outputs, state)``."""
        *inputs, state = args
        carry, fresh = state.get(self.state_index)
        ys, new_carry = run_layer(
            self.layer,
            self.params,
            carry,
            fresh,
            tuple(inputs),
            batch_shape=self.batch_shape,
            detach=self.detach,
            controls={**dict(self.controls), **controls},
        )
        return ys, state.set(self.state_index, (new_carry, jnp.array(False)))

    def reset(self, state: eqx.nn.State) -> eqx.nn.State:
        """A state whose next call starts from ``init_state(params)``."""
        carry, _ = state.get(self.state_index)
        return state.set(self.state_index, (carry, jnp.array(True)))
