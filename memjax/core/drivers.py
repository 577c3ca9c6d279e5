"""Generic drivers written once for every memory: ``step``, chunked ``scan``, ``MultiHead``.

Conventions for controls (``theta=``, ``eta=``, ``alpha=``, ``key=``, …):

* :func:`step` passes controls through unchanged.
* :func:`scan` treats every array control with ``ndim >= 1`` as **per token**: its leading axis
  must equal the sequence length ``T`` and token ``t`` sees ``control[t]``. Scalars (Python
  numbers, 0-d arrays) are shared by all tokens. A PRNG ``key=`` is split into ``T`` keys.
* :class:`MultiHead` treats every array control with ``ndim >= 1`` as **per head** (leading
  axis ``H``) and shares scalars; a PRNG ``key=`` is split into ``H`` keys.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core import scan
    >>> from memjax.memories.linear import LinearMemory
    >>> mem = LinearMemory(d_key=4, d_value=2, theta=1.0)
    >>> params = mem.init_params(jax.random.key(0))
    >>> ks = jnp.eye(4)[:3]; vs = jnp.ones((3, 2))
    >>> ys, state = scan(mem, params, mem.init_state(params), ks, vs, ks, chunk_size=2)
    >>> ys.shape
    (3, 2)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice, check_positive_int, is_scalar_like
from memjax.core.protocol import ORDERS, Memory, Order, Params, State
from memjax.core.spec import spec
from memjax.core.trees import tree_index


def _is_prng_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


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
    ``M_{t-1}(q_t)`` first.
    """
    check_choice("order", order, ORDERS)
    if order == "read_write":
        y = memory.read(params, state, query, **controls)
        return y, memory.write(params, state, key, value, **controls)
    state = memory.write(params, state, key, value, **controls)
    return memory.read(params, state, query, **controls), state


def _split_controls(controls: dict, length: int, axis_name: str) -> tuple[dict, dict]:
    """Split controls into (per-item arrays with leading axis ``length``, shared scalars)."""
    per_item, shared = {}, {}
    for name, value in controls.items():
        if _is_prng_key(value):
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


def _token_scan(memory, params, state, keys, values, queries, order, controls):
    """``lax.scan`` of :func:`step` over the leading axis; controls already per token."""
    per_token, shared = _split_controls(controls, keys.shape[0], "token")

    def body(carry, xs):
        k, v, q, c = xs
        y, carry = step(memory, params, carry, k, v, q, order=order, **c, **shared)
        return carry, y

    state, ys = jax.lax.scan(body, state, (keys, values, queries, per_token))
    return ys, state


def _check_sequence(memory: Memory, keys, values, queries) -> int:
    check_array("keys", keys, shape=(None, *memory.key_size), floating=True)
    length = keys.shape[0]
    check_array("values", values, shape=(length, *memory.value_size), floating=True)
    check_array("queries", queries, shape=(length, *memory.key_size), floating=True)
    return length


def scan(
    memory: Memory,
    params: Params,
    state: State,
    keys,
    values,
    queries,
    /,
    *,
    chunk_size: int | None = None,
    order: Order = "write_read",
    remat: bool = True,
    **controls,
) -> tuple[jax.Array, State]:
    """Run ``step`` over a sequence, ``chunk_size`` tokens at a time; return ``(reads, state)``.

    ``keys``/``queries`` have shape ``(T, *key_size)``, ``values`` ``(T, *value_size)``. The
    sequence is cut into ``T // chunk_size`` chunks processed by ``lax.scan`` with
    :meth:`Memory.chunk` (a parallel form where the memory has one), and a shorter last chunk;
    ``chunk_size=None`` is one chunk. With ``remat=True`` each chunk is wrapped in
    ``jax.checkpoint``, so reverse-mode memory holds one state per chunk rather than per token.
    The result equals a Python loop of :func:`step` for every chunk size.
    """
    check_choice("order", order, ORDERS)
    length = _check_sequence(memory, keys, values, queries)
    chunk_size = length if chunk_size is None else chunk_size
    check_positive_int("chunk_size", chunk_size)
    per_token, shared = _split_controls(controls, length, "token")
    n_chunks, rest = divmod(length, chunk_size)

    def run_chunk(state, ks, vs, qs, cs):
        return memory.chunk(params, state, ks, vs, qs, order=order, **cs, **shared)

    if remat:
        run_chunk = jax.checkpoint(run_chunk)

    seq = (keys, values, queries, per_token)
    ys_parts = []
    if n_chunks:
        head = jax.tree_util.tree_map(
            lambda x: x[: n_chunks * chunk_size].reshape(n_chunks, chunk_size, *x.shape[1:]), seq
        )

        def body(carry, xs):
            ys, carry = run_chunk(carry, *xs)
            return carry, ys

        state, ys = jax.lax.scan(body, state, head)
        ys_parts.append(ys.reshape(n_chunks * chunk_size, *ys.shape[2:]))
    if rest:
        tail = jax.tree_util.tree_map(lambda x: x[n_chunks * chunk_size :], seq)
        ys, state = run_chunk(state, *tail)
        ys_parts.append(ys)
    ys = ys_parts[0] if len(ys_parts) == 1 else jnp.concatenate(ys_parts)
    return ys, state


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

    def init_state(self, params: Params) -> State:
        return jax.vmap(self.memory.init_state, axis_size=self.num_heads)(params)

    def head(self, params: Params, index: int) -> Params:
        """The params (or state) of one head."""
        return tree_index(params, index)

    def write(self, params, state, key, value, /, **controls):
        check_array("key", key, shape=self.key_size)
        check_array("value", value, shape=self.value_size)
        per_head, shared = _split_controls(controls, self.num_heads, "head")

        def one(p, s, k, v, c):
            return self.memory.write(p, s, k, v, **c, **shared)

        return jax.vmap(one)(params, state, key, value, per_head)

    def read(self, params, state, query, /, **controls):
        check_array("query", query, shape=self.key_size)
        per_head, shared = _split_controls(controls, self.num_heads, "head")

        def one(p, s, q, c):
            return self.memory.read(p, s, q, **c, **shared)

        return jax.vmap(one)(params, state, query, per_head)

    def chunk(self, params, state, keys, values, queries, /, *, order="write_read", **controls):
        """Each head runs its own :meth:`Memory.chunk` (so per-head parallel forms are kept).

        Per-token controls are ``(T, H, ...)`` (per head) or ``(T,)`` (shared by the heads).
        """
        length, heads = keys.shape[0], self.num_heads
        per_token, shared = _split_controls(controls, length, "token")

        def to_head_major(x):
            if _is_prng_key(x):
                x = jax.vmap(lambda k: jax.random.split(k, heads))(x)
            if x.ndim == 1:
                return jnp.broadcast_to(x, (heads, length))
            return jnp.swapaxes(x, 0, 1)

        per_head_tok = jax.tree_util.tree_map(to_head_major, per_token)
        keys, values, queries = (jnp.swapaxes(x, 0, 1) for x in (keys, values, queries))

        def one(p, s, k, v, q, c):
            return self.memory.chunk(p, s, k, v, q, order=order, **c, **shared)

        ys, state = jax.vmap(one)(params, state, keys, values, queries, per_head_tok)
        return jnp.swapaxes(ys, 0, 1), state


def multi_head(memory: Memory, num_heads: int) -> MultiHead:
    """Shorthand for :class:`MultiHead` ``(memory, num_heads)``."""
    return MultiHead(memory, num_heads)
