"""The one table of activation functions, by name.

``"gelu"`` is the exact (erf) GELU, ``"gelu_tanh"`` its tanh approximation.

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.nn.activations import ACTIVATIONS, activation
    >>> sorted(ACTIVATIONS)
    ['gelu', 'gelu_tanh', 'identity', 'relu', 'silu', 'tanh']
    >>> activation("relu")(jnp.array([-1.0, 2.0]))
    Array([0., 2.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from memjax.core.checks import check_choice

__all__ = ["ACTIVATIONS", "activation"]


def _identity(x: jax.Array) -> jax.Array:
    return x


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": partial(jax.nn.gelu, approximate=True),
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "identity": _identity,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation called ``name`` (an error lists the known names)."""
    check_choice("activation", name, tuple(ACTIVATIONS))
    return ACTIVATIONS[name]
