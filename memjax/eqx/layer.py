"""``MemoryLayer``: any :class:`memjax.core.SequenceLayer` as an Equinox module.

The learned params are an ordinary field (trained with ``eqx.filter_grad``/optax); the test-time
state goes through ``eqx.nn.State`` via an ``eqx.nn.StateIndex``, so build the layer with
``eqx.nn.make_with_state`` and thread the state through calls. ``detach=True`` stops gradients
into the state carried from earlier calls; :meth:`MemoryLayer.reset` returns a ``State`` whose
next call starts afresh from ``init_state(params)``.

**The state is carried across calls by default** (``carry=True``, streaming): a call continues
from the memory the previous call returned, so threading the ``State`` through a loop over
i.i.d. training batches streams memory from one batch into the next. For i.i.d. batches build
the layer with ``carry=False`` (every call starts from ``init_state(params)`` and returns the
``State`` unchanged) or pass ``layer.reset(state)`` to each call.

**Batches.** ``batch_shape=(B,)`` keeps one memory per example and takes ``(B, T, d)`` inputs
directly (an ``eqx.nn.State`` cannot change shape, so a carried state keeps that ``B``). Under
Equinox's usual pattern ``jax.vmap(model, in_axes=(0, None), out_axes=(0, None))`` the state
is shared by the batch, which is what ``carry=False`` gives (any batch size, nothing written).
To vmap a layer that carries one memory per example, map the state too: ``in_axes=(0, 0),
out_axes=(0, 0)`` over a state batched with ``jax.vmap(lambda _: state)(jnp.arange(B))``.

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
    >>> iid, s0 = eqx.nn.make_with_state(MemoryLayer)(spec, key=jax.random.key(0), carry=False)
    >>> batched = jax.vmap(iid, in_axes=(0, None), out_axes=(0, None))
    >>> batched(jnp.ones((3, 5, 8)), s0)[0].shape  # any batch size
    (3, 5, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_finite, check_spec_dtypes
from memjax.core.protocol import SequenceLayer, check_sequence_layer
from memjax.core.stateful import initial_carry, run_layer


def _batch_of(tree, ndim: int) -> tuple[int, ...]:
    leaves = jax.tree_util.tree_leaves(tree)
    return tuple(leaves[0].shape[:ndim]) if leaves else ()


class MemoryLayer(eqx.Module):
    """Equinox layer over ``layer`` (a memjax spec with ``init_params``/``init_state``/``apply``).

    Args:
        layer: the functional layer spec (a bare :class:`~memjax.core.Memory` must be wrapped
            in :class:`memjax.models.associative.AssociativeLayer` first).
        key: PRNG key for the params.
        batch_shape: leading batch axes of the inputs (the state keeps one copy per example).
        carry: carry the state from call to call (default, streaming); ``False``: every call
            starts from ``init_state(params)`` and returns the state unchanged (i.i.d. batches).
        detach: stop gradients into the state carried from earlier calls.
        **controls: static keyword controls passed to every ``layer.apply`` call.
    """

    params: Any
    state_index: eqx.nn.StateIndex
    layer: SequenceLayer = eqx.field(static=True)
    batch_shape: tuple[int, ...] = eqx.field(static=True)
    carry: bool = eqx.field(static=True)
    detach: bool = eqx.field(static=True)
    controls: tuple = eqx.field(static=True)

    def __init__(
        self,
        layer: SequenceLayer,
        *,
        key: jax.Array,
        batch_shape: Sequence[int] = (),
        carry: bool = True,
        detach: bool = False,
        **controls,
    ):
        check_sequence_layer("layer", layer)
        check_spec_dtypes("layer", layer)
        self.layer = layer
        self.batch_shape = tuple(batch_shape)
        self.carry = bool(carry)
        self.detach = detach
        self.controls = tuple(sorted(controls.items()))
        self.params = layer.init_params(key)
        self.state_index = eqx.nn.StateIndex(initial_carry(layer, self.params, self.batch_shape))

    def __call__(self, *args, **controls):
        """``layer(*inputs, state, **controls) -> (outputs, state)``."""
        if not args or not isinstance(args[-1], eqx.nn.State):
            raise TypeError(
                "state: expected the eqx.nn.State as the last positional argument, "
                "layer(*inputs, state) (build with eqx.nn.make_with_state(MemoryLayer)(...))"
            )
        *inputs, state = args
        for i, x in enumerate(inputs):
            check_finite(f"inputs[{i}]", x)
        carry, fresh = state.get(self.state_index)
        nb = len(self.batch_shape)
        batch = tuple(inputs[0].shape[:nb]) if inputs and hasattr(inputs[0], "shape") else ()
        if not self.carry:
            carry, fresh = initial_carry(self.layer, self.params, batch)[0], np.array(True)
        elif len(batch) == nb and batch != _batch_of(carry, nb):
            raise ValueError(
                f"inputs[0]: batch shape {batch} differs from the state's {_batch_of(carry, nb)} "
                "(an eqx.nn.State cannot change shape): build the layer with carry=False for "
                "i.i.d. batches of any size, or make a state of this size with "
                f"eqx.nn.make_with_state(MemoryLayer)(..., batch_shape={batch})"
            )
        ys, new_carry = run_layer(
            self.layer,
            self.params,
            carry,
            fresh,
            tuple(inputs),
            batch_shape=batch if len(batch) == nb else self.batch_shape,
            detach=self.detach,
            controls={**dict(self.controls), **controls},
        )
        if not self.carry:
            return ys, state
        return ys, state.set(self.state_index, (new_carry, jnp.array(False)))

    def reset(self, state: eqx.nn.State) -> eqx.nn.State:
        """A state whose next call starts from ``init_state(params)``."""
        carry, _ = state.get(self.state_index)
        return state.set(self.state_index, (carry, jnp.array(True)))
