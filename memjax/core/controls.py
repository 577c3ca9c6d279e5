"""How drivers hand keyword controls (``theta=``, ``eta=``, ``key=``, …) to the items they run.

A control is *per item* (per token for :func:`memjax.core.scan`, per head for
:class:`memjax.core.MultiHead`) when it is an array with ``ndim >= 1`` whose leading axis is the
number of items; it is *shared* when it is a scalar (a Python number or a 0-d array). A PRNG
``key=`` is split into one key per item.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core.controls import split_controls
    >>> per_item, shared = split_controls({"theta": jnp.ones(3), "eta": 0.9}, 3, "token")
    >>> sorted(per_item), sorted(shared)
    (['theta'], ['eta'])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.core.checks import is_scalar_like

__all__ = ["is_prng_key", "split_controls"]


def is_prng_key(x) -> bool:
    """Whether ``x`` is a typed PRNG key array (``jax.random.key``)."""
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def split_controls(controls: dict, length: int, axis_name: str) -> tuple[dict, dict]:
    """Split controls into (per-item arrays with leading axis ``length``, shared scalars)."""
    per_item, shared = {}, {}
    for name, value in controls.items():
        if is_prng_key(value):
            if value.ndim != 0:
                raise ValueError(f"{name}: expected a single PRNG key, got shape {value.shape}")
            per_item[name] = jax.random.split(value, length)
        elif is_scalar_like(value) or value is None:
            shared[name] = value
        elif hasattr(value, "shape"):
            if value.shape[0] != length:
                raise ValueError(
                    f"{name}: array controls are per {axis_name}; expected leading axis "
                    f"{length}, got shape {tuple(value.shape)}"
                )
            per_item[name] = value
        else:
            shared[name] = value
    return per_item, shared


