"""Generic drivers written once for every memory: the chunked :func:`scan` of a memory.

Conventions for controls (``theta=``, ``eta=``, ``alpha=``, ``key=``, …):

* Every driver checks the names and concrete values (:func:`memjax.core.check_controls`): a
  name no memjax component knows is an error; a known one a memory does not use is ignored.
* :func:`step` passes controls through unchanged.
* :func:`scan` treats every array control with ``ndim >= 1`` as **per token**: its leading axis
  must equal the sequence length ``T`` and token ``t`` sees ``control[t]``. Scalars (Python
  numbers, 0-d arrays) are shared by all tokens. A PRNG ``key=`` is split into ``T`` keys.
* :class:`memjax.core.MultiHead` treats every array control with ``ndim >= 1`` as **per head**
  (leading axis ``H``) and shares scalars; a PRNG ``key=`` is split into ``H`` keys.

Taps (:mod:`memjax.core.taps`) inside a memory's ``write``/``read``/``access``/``chunk`` come out
of :func:`scan` per token, ``(T, ...)``, whatever the chunk size.

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

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from memjax.core import taps
from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.controls import check_controls, split_controls
from memjax.core.token_step import ORDERS, Order

if TYPE_CHECKING:
    from memjax.core.protocol import Memory

__all__ = ["scan"]

Params = Any
State = Any


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
    check_controls(controls, where="scan", also=("chunk_size", "order", "remat"))
    length = _check_sequence(memory, keys, values, queries)
    chunk_size = length if chunk_size is None else chunk_size
    check_positive_int("chunk_size", chunk_size)
    per_token, shared = split_controls(controls, length, "token")
    n_chunks, rest = divmod(length, chunk_size)

    def run_chunk(state, ks, vs, qs, cs):
        return memory.chunk(params, state, ks, vs, qs, order=order, **cs, **shared)

    if remat:
        run_chunk = taps.checkpoint(run_chunk)

    seq = (keys, values, queries, per_token)
    ys_parts, found = [], []
    if n_chunks:
        head = jax.tree_util.tree_map(
            lambda x: x[: n_chunks * chunk_size].reshape(n_chunks, chunk_size, *x.shape[1:]), seq
        )

        def body(carry, xs):
            ys, carry = run_chunk(carry, *xs)
            return carry, ys

        def chunk_of(name, a, i):
            return jax.lax.dynamic_slice_in_dim(a, i * chunk_size, chunk_size, axis=0)

        state, ys, head_taps = taps.scan_collect(body, state, head, select=chunk_of)
        ys_parts.append(ys.reshape(n_chunks * chunk_size, *ys.shape[2:]))
        found.append(_per_token(head_taps, chunk_size, merge=True))
    if rest:
        start = n_chunks * chunk_size
        tail = jax.tree_util.tree_map(lambda x: x[start:], seq)
        (ys, state), tail_taps = taps.collect_pieces(
            lambda: run_chunk(state, *tail), lambda name, a: a[start:]
        )
        ys_parts.append(ys)
        found.append(_per_token(tail_taps, rest, merge=False))
    ys = ys_parts[0] if len(ys_parts) == 1 else jnp.concatenate(ys_parts)
    if any(found):
        merged = {
            name: jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *(f[name] for f in found))
            for name in found[0]
        }
        taps.record_all(merged)
    return ys, state


def _per_token(found: dict, size: int, *, merge: bool) -> dict:
    """Check that a chunk's taps are per token (leading axis ``size``); flatten the chunk axis."""
    axis = 1 if merge else 0
    out = {}
    for name, value in found.items():
        for leaf in jax.tree_util.tree_leaves(value):
            if leaf.ndim <= axis or leaf.shape[axis] != size:
                raise ValueError(
                    f"tap {name!r}: scan expects taps inside a chunk to be per token (leading "
                    f"axis {size}), got shape {tuple(leaf.shape[axis:])}"
                )
        out[name] = value
        if merge:
            out[name] = jax.tree_util.tree_map(
                lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]), value
            )
    return out
