"""One token through a memory: :func:`step` (write, then read) and its ``lax.scan``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core.token_step import step
    >>> from memjax.memories.linear import LinearMemory
    >>> mem = LinearMemory(d_key=2, d_value=1, theta=1.0)
    >>> p = mem.init_params(jax.random.key(0))
    >>> k = jnp.array([1.0, 0.0])
    >>> y, state = step(mem, p, mem.init_state(p), k, jnp.ones(1), k)
    >>> y
    Array([1.], dtype=float32)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import jax

from memjax.core import taps
from memjax.core.checks import check_choice
from memjax.core.controls import check_controls, split_controls

if TYPE_CHECKING:
    from memjax.core.protocol import Memory

__all__ = ["ORDERS", "Order", "step", "token_scan", "write_read"]

Params = Any
State = Any
Order = Literal["write_read", "read_write"]

ORDERS: tuple[str, ...] = ("write_read", "read_write")


def write_read(memory, params, state, key, value, query, order, controls):
    """The default :meth:`Memory.access`: write then read (``"read_write"``: read first)."""
    if order == "read_write":
        y = memory.read(params, state, query, **controls)
        return y, memory.write(params, state, key, value, **controls)
    state = memory.write(params, state, key, value, **controls)
    return memory.read(params, state, query, **controls), state


def step(
    memory: Memory,
    params: Params,
    state: State,
    key,
    value,
    query,
    /,
    *,
    order: Order = "write_read",
    **controls,
) -> tuple[jax.Array, State]:
    """One token: write ``key -> value`` and read ``query``; return ``(read, new_state)``.

    ``order="write_read"`` (default) reads the state *after* the write, ``y_t = M_t(q_t)``, as in
    the delta rule / DeltaNet and Titans (eq. 15 after eqs. 13–14); ``"read_write"`` reads
    ``M_{t-1}(q_t)`` first. The token goes through the memory's :meth:`~memjax.core.Memory.access`
    (whose default is exactly that), so a memory whose reads change its state (NTM, MANN) fuses
    the two; an object without ``access`` gets the default.
    """
    check_choice("order", order, ORDERS)
    check_controls(controls, where="step", also=("order",))
    access = getattr(memory, "access", None)
    if access is None:
        return write_read(memory, params, state, key, value, query, order, controls)
    return access(params, state, key, value, query, order=order, **controls)


def token_scan(memory, params, state, keys, values, queries, order, controls):
    """``lax.scan`` of :func:`step` over the leading axis; controls already per token.

    Taps inside the memory come out stacked per token (:func:`memjax.core.taps.scan`).
    """
    per_token, shared = split_controls(controls, keys.shape[0], "token")

    def body(carry, xs):
        k, v, q, c = xs
        y, carry = step(memory, params, carry, k, v, q, order=order, **c, **shared)
        return carry, y

    state, ys = taps.scan(body, state, (keys, values, queries, per_token))
    return ys, state
