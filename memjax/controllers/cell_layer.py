r"""A :class:`memjax.core.Cell` as a :class:`memjax.core.SequenceLayer` (for the NNX/Eqx wrappers).

``CellLayer(cell).apply(params, carry, xs) = unroll(cell, params, carry, xs)``: the carry is the
layer's test-time state, so :class:`memjax.nnx.MemoryLayer` and :class:`memjax.eqx.MemoryLayer`
wrap any cell (NTM, MANN, NMN, LSTM) and stream it across calls. Synthetic gradients act on the
plain params pytree (``layer.raw_params()`` in NNX, ``layer.params`` in Equinox) with
:class:`memjax.controllers.SyntheticGradients` over ``CellLayer.cell``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from memjax.controllers import CellLayer
    >>> from memjax.memories.ntm import NTMCell
    >>> from memjax.nnx import MemoryLayer
    >>> cell = NTMCell(d_input=3, d_hidden=4, memory_size=6, memory_width=2)
    >>> layer = MemoryLayer(CellLayer(cell), rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((5, 3))).shape
    (5, 6)
"""

from __future__ import annotations

from typing import Any

import jax

from memjax.core.protocol import Cell
from memjax.core.spec import spec
from memjax.core.unroll import unroll

__all__ = ["CellLayer"]


@spec
class CellLayer:
    """``init_params``/``init_state``/``apply`` over ``cell`` (module doc).

    Args:
        cell: any :class:`~memjax.core.Cell`.
        truncate: truncation windows of :func:`memjax.core.unroll` (``None``: none).
        precompute: use the cell's input-projection hook (``unroll(precompute=True)``: the
            input part of the controller's first layer as one matmul over all steps).
    """

    cell: Any
    truncate: int | None = None
    precompute: bool = False

    def __post_init__(self):
        if not isinstance(self.cell, Cell):
            raise TypeError(f"cell: expected a Cell, got {self.cell!r}")
        if not isinstance(self.precompute, bool):
            raise TypeError(f"precompute: expected a bool, got {self.precompute!r}")

    def init_params(self, key: jax.Array):
        return self.cell.init_params(key)

    def init_state(self, params, /, **controls):
        """The cell's initial carry."""
        return self.cell.init_carry(params)

    def apply(self, params, state, xs, /, **controls):
        """``(ys (T, d_out), carry)`` from ``state`` over ``xs (T, d_input)``."""
        return unroll(
            self.cell,
            params,
            state,
            xs,
            truncate=self.truncate,
            precompute=self.precompute,
            **controls,
        )
