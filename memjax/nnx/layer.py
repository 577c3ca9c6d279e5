"""``MemoryLayer``: any :class:`memjax.core.SequenceLayer` as a Flax NNX module.

Learned params are ``nnx.Param`` leaves; the test-time state lives in :class:`MemoryState`
variables, a separate ``nnx.Variable`` type, so ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` and
``nnx.grad(..., argnums=nnx.DiffState(0, nnx.Param))`` never train it.

**The state is carried across calls by default** (``carry=True``, streaming): each call continues
from the memory the previous call left, so in a training loop over i.i.d. batches the memory of
one batch leaks into the next, and gradients flow into it unless ``detach=True``. For i.i.d.
batches either build the layer with ``carry=False`` (every call starts from
``init_state(params)`` and the stored state is left as it was) or call :meth:`MemoryLayer.reset`
before each batch (inside the jitted step).

The batch size may change between calls (a ragged last batch): a call whose batch size differs
from the stored state's starts from ``init_state(params)`` at the new size, which is allowed only
when the state is fresh (after construction or :meth:`~MemoryLayer.reset`, or with
``carry=False``); continuing a carried state with another batch size is an error.

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
    >>> layer.reset()  # a ragged last batch after a reset
    >>> layer(jnp.ones((2, 5, 8))).shape
    (2, 5, 8)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

from memjax.core.checks import check_finite, check_spec_dtypes, error_if
from memjax.core.protocol import SequenceLayer, check_sequence_layer
from memjax.core.stateful import initial_carry, run_layer


class MemoryState(nnx.Variable):
    """A test-time memory state: written by the forward pass, never trained by the optimiser."""


def _is_var(x) -> bool:
    return isinstance(x, nnx.Variable)


def _values(tree):
    return jax.tree_util.tree_map(lambda v: v.get_value(), tree, is_leaf=_is_var)


def _assign(variables, values) -> None:
    leaves = jax.tree_util.tree_leaves(variables, is_leaf=_is_var)
    for var, value in zip(leaves, jax.tree_util.tree_leaves(values), strict=True):
        var.set_value(value)  # the shape may change with the batch size


def _batch_of(tree, ndim: int) -> tuple[int, ...]:
    leaves = jax.tree_util.tree_leaves(tree)
    return tuple(leaves[0].shape[:ndim]) if leaves else ()


class MemoryLayer(nnx.Module):
    """Flax NNX layer over ``layer`` (a memjax spec with ``init_params``/``init_state``/``apply``).

    Args:
        layer: the functional layer spec, e.g. :class:`memjax.models.associative.AssociativeLayer`
            (a bare :class:`~memjax.core.Memory` must be wrapped in one first).
        rngs: ``nnx.Rngs``; ``rngs.params()`` initialises the params.
        batch_shape: leading batch axes of the inputs (the state keeps one copy per example).
            Their number is fixed; their sizes may change from call to call (module doc).
        carry: carry the state from call to call (default, streaming); ``False``: every call
            starts from ``init_state(params)``, as i.i.d. training batches want.
        detach: stop gradients into the state carried from earlier calls.
        **controls: static keyword controls passed to every ``layer.apply`` call.
    """

    def __init__(
        self,
        layer: SequenceLayer,
        *,
        rngs: nnx.Rngs,
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
        self.controls = controls
        params = layer.init_params(rngs.params())
        self.params = nnx.data(jax.tree_util.tree_map(nnx.Param, params))
        state, _ = initial_carry(layer, params, self.batch_shape)
        self.state = nnx.data(jax.tree_util.tree_map(MemoryState, state))
        self.fresh = MemoryState(np.array(True))

    def __call__(self, *inputs, **controls):
        """``layer(*inputs, **controls) -> outputs``; the state is updated in place."""
        for i, x in enumerate(inputs):
            check_finite(f"inputs[{i}]", x)
        nb = len(self.batch_shape)
        batch = tuple(inputs[0].shape[:nb]) if inputs and hasattr(inputs[0], "shape") else ()
        params = _values(self.params)
        stored = _values(self.state)
        fresh = self.fresh.get_value()
        if not self.carry:
            stored, fresh = initial_carry(self.layer, params, batch)[0], np.array(True)
        elif len(batch) == nb and batch != _batch_of(stored, nb):
            error_if(  # raised now when fresh is concrete (e.g. reset() in the same trace)
                ~fresh,
                f"inputs[0]: batch shape {batch} differs from the carried state's "
                f"{_batch_of(stored, nb)}; a carried memory cannot continue with another batch "
                "size: call reset() first (or build the layer with carry=False)",
            )
            stored = initial_carry(self.layer, params, batch)[0]
        ys, new_state = run_layer(
            self.layer,
            params,
            stored,
            fresh,
            inputs,
            batch_shape=batch if len(batch) == nb else self.batch_shape,
            detach=self.detach,
            controls={**self.controls, **controls},
        )
        if self.carry:
            _assign(self.state, new_state)
            self.fresh.set_value(np.array(False))
        return ys

    def reset(self) -> None:
        """Forget the carried state: the next call starts from ``init_state(params)``."""
        self.fresh.set_value(np.array(True))

    def raw_params(self):
        """The params as the plain pytree the functional core uses."""
        return _values(self.params)

    def raw_state(self):
        """The carried state as the plain pytree the functional core uses."""
        return _values(self.state)
