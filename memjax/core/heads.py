"""Heads: :class:`MultiHead` runs ``num_heads`` independent copies of a memory by ``jax.vmap``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.core import taps
from memjax.core.checks import check_array, check_positive_int
from memjax.core.controls import check_controls, is_prng_key, split_controls
from memjax.core.protocol import Memory, Params, State
from memjax.core.spec import spec
from memjax.core.trees import tree_index

__all__ = ["MultiHead", "multi_head"]


@spec
class MultiHead(Memory):
    """``num_heads`` independent copies of ``memory``, run in parallel by ``jax.vmap``.

    Params and state get a leading head axis; keys, values and queries are ``(H, *size)``. Array
    controls are per head (leading axis ``H``); scalars are shared.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from memjax.core import MultiHead
        >>> from memjax.memories.linear import LinearMemory
        >>> mh = MultiHead(LinearMemory(d_key=4, d_value=4), num_heads=2)
        >>> p = mh.init_params(jax.random.key(0)); s = mh.init_state(p)
        >>> mh.read(p, mh.write(p, s, jnp.ones((2, 4)), jnp.ones((2, 4))), jnp.ones((2, 4))).shape
        (2, 4)
    """

    memory: Memory
    num_heads: int

    def __post_init__(self):
        check_positive_int("num_heads", self.num_heads)

    @property
    def key_size(self) -> tuple[int, ...]:
        return (self.num_heads, *self.memory.key_size)

    @property
    def value_size(self) -> tuple[int, ...]:
        return (self.num_heads, *self.memory.value_size)

    def init_params(self, key: jax.Array) -> Params:
        return jax.vmap(self.memory.init_params)(jax.random.split(key, self.num_heads))

    def init_state(self, params: Params, /, **controls) -> State:
        if not controls:
            return jax.vmap(self.memory.init_state, axis_size=self.num_heads)(params)
        check_controls(controls, where="MultiHead.init_state")
        per_head, shared = split_controls(controls, self.num_heads, "head")

        def one(p, c):
            return self.memory.init_state(p, **c, **shared)

        return jax.vmap(one)(params, per_head)

    def head(self, params: Params, index: int) -> Params:
        """The params (or state) of one head."""
        return tree_index(params, index)

    def write(self, params, state, key, value, /, **controls):
        check_array("key", key, shape=self.key_size)
        check_array("value", value, shape=self.value_size)
        check_controls(controls, where="MultiHead.write")
        per_head, shared = split_controls(controls, self.num_heads, "head")

        def one(p, s, k, v, c):
            return self.memory.write(p, s, k, v, **c, **shared)

        return taps.vmap(one)(params, state, key, value, per_head)

    def read(self, params, state, query, /, **controls):
        check_array("query", query, shape=self.key_size)
        check_controls(controls, where="MultiHead.read")
        per_head, shared = split_controls(controls, self.num_heads, "head")

        def one(p, s, q, c):
            return self.memory.read(p, s, q, **c, **shared)

        return taps.vmap(one)(params, state, query, per_head)

    def access(self, params, state, key, value, query, /, *, order="write_read", **controls):
        """Each head's own :meth:`Memory.access` when its memory overrides it (stateful reads);
        otherwise the default (this spec's write then read)."""
        if getattr(type(self.memory), "access", Memory.access) is Memory.access:
            return super().access(params, state, key, value, query, order=order, **controls)
        check_array("key", key, shape=self.key_size)
        check_array("value", value, shape=self.value_size)
        check_array("query", query, shape=self.key_size)
        check_controls(controls, where="MultiHead.access", also=("order",))
        per_head, shared = split_controls(controls, self.num_heads, "head")

        def one(p, s, k, v, q, c):
            return self.memory.access(p, s, k, v, q, order=order, **c, **shared)

        return taps.vmap(one)(params, state, key, value, query, per_head)

    def chunk(self, params, state, keys, values, queries, /, *, order="write_read", **controls):
        """Each head runs its own :meth:`Memory.chunk` (so per-head parallel forms are kept).

        Per-token controls are ``(T, H, ...)`` (per head) or ``(T,)`` (shared by the heads).
        Taps inside come out token-major, ``(T, H, ...)``, like the reads.
        """
        check_controls(controls, where="MultiHead.chunk", also=("order",))
        length, heads = keys.shape[0], self.num_heads
        per_token, shared = split_controls(controls, length, "token")

        def to_head_major(x):
            if is_prng_key(x):
                x = jax.vmap(lambda k: jax.random.split(k, heads))(x)
            if x.ndim == 1:
                return jnp.broadcast_to(x, (heads, length))
            return jnp.swapaxes(x, 0, 1)

        per_head_tok = jax.tree_util.tree_map(to_head_major, per_token)
        keys, values, queries = (jnp.swapaxes(x, 0, 1) for x in (keys, values, queries))

        def one(p, s, k, v, q, c):
            return self.memory.chunk(p, s, k, v, q, order=order, **c, **shared)

        (ys, state), found = taps.vmap_collect(one, select=_head_of_token_major)(
            params, state, keys, values, queries, per_head_tok
        )
        taps.record_all(jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), found))
        return jnp.swapaxes(ys, 0, 1), state


def _head_of_token_major(name, a, i):
    return a[:, i]


def multi_head(memory: Memory, num_heads: int) -> MultiHead:
    """Shorthand for :class:`MultiHead` ``(memory, num_heads)``."""
    return MultiHead(memory, num_heads)
