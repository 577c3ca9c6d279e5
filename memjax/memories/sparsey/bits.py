r"""Bit-packed binary weight tables for the Sparsey CSA.

A mac's binary weights :math:`w(j, i)` (``N`` presynaptic units :math:`j`, ``Q·K`` cells
:math:`i`) are stored word-major, 32 presynaptic units per ``uint32`` word:
``table[b, i] = Σ_t w(32 b + t, i) 2^t`` (shape ``(⌈N/32⌉, Q·K)``). A binary input :math:`a` is
packed the same way, so the raw sums of the CSA (step 2 of Rinkus's Code Selection Algorithm,
:math:`u(i) = \sum_j a(j) w(j, i)`) are population counts of a bitwise AND,

.. math:: u(i) = \sum_b \operatorname{popcount}(\text{table}[b, i] \wedge a_b),

exact integers, and the single-trial Hebbian write (step 10, :math:`w(j, c_q) \leftarrow 1` for
active :math:`j` and winner :math:`c_q`) is a bitwise OR of the packed input into the winners'
columns. Both are elementwise over ``⌈N/32⌉·Q·K`` words, 32× fewer than the dense table; the sum
over words runs along the major axis, so it vectorises over the ``Q·K`` cells.

Example:
    >>> import numpy as np
    >>> from memjax.memories.sparsey.bits import pack_bits, pack_table, raw_sums, unpack_table
    >>> w = np.random.default_rng(0).random((40, 2, 3)) < 0.5
    >>> x = (np.arange(40) % 3 == 0).astype(np.uint8)
    >>> table = pack_table(w)
    >>> table.shape, bool((unpack_table(table, 40, 2, 3) == w).all())
    ((2, 6), True)
    >>> bool((raw_sums(table, pack_bits(x)) == (x @ w.reshape(40, 6))).all())
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["pack_bits", "pack_table", "raw_sums", "unpack_bits", "unpack_table", "words"]


def words(n: int) -> int:
    """Number of ``uint32`` words holding ``n`` bits."""
    return (n + 31) // 32


def pack_bits(x) -> jax.Array:
    """Binary ``(…, n)`` (any dtype of 0/1) → ``(…, ⌈n/32⌉)`` ``uint32``, bit ``t`` of word ``b``
    holding unit ``32 b + t``."""
    x = jnp.asarray(x)
    n = x.shape[-1]
    pad = words(n) * 32 - n
    bits = jnp.pad((x != 0).astype(jnp.uint32), [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    bits = bits.reshape(*x.shape[:-1], words(n), 32)
    shifts = jnp.arange(32, dtype=jnp.uint32).reshape((1,) * x.ndim + (32,))
    return jnp.sum(bits << shifts, axis=-1, dtype=jnp.uint32)


def unpack_bits(p, n: int) -> jax.Array:
    """Inverse of :func:`pack_bits`: ``(…, ⌈n/32⌉)`` words → ``(…, n)`` ``bool``."""
    shifts = jnp.arange(32, dtype=jnp.uint32).reshape((1,) * p.ndim + (32,))
    bits = (p[..., None] >> shifts) & jnp.uint32(1)
    return bits.reshape(*p.shape[:-1], -1)[..., :n].astype(jnp.bool_)


def pack_table(w) -> jax.Array:
    """Dense weights ``(N, Q, K)`` → the word-major packed table ``(⌈N/32⌉, Q·K)``.

    The 32 bits of a word are summed along the middle axis of ``(⌈N/32⌉, 32, Q·K)``, so the
    table is produced in its own layout (a pack along the last axis followed by a transpose
    lets XLA fuse the transpose into every reader of the table as a strided gather)."""
    w = jnp.asarray(w)
    n = w.shape[0]
    bits = jnp.pad((w.reshape(n, -1) != 0).astype(jnp.uint32), [(0, words(n) * 32 - n), (0, 0)])
    bits = bits.reshape(words(n), 32, -1)
    shifts = jnp.arange(32, dtype=jnp.uint32).reshape(1, 32, 1)
    return jnp.sum(bits << shifts, axis=1, dtype=jnp.uint32)


def unpack_table(table, n: int, Q: int, K: int) -> jax.Array:
    """Inverse of :func:`pack_table`: ``(⌈N/32⌉, Q·K)`` → ``(N, Q, K)`` ``bool``."""
    return unpack_bits(table.T, n).T.reshape(n, Q, K)


def raw_sums(table, xp) -> jax.Array:
    """:math:`u(i) = \\sum_j a(j) w(j, i)` ``(Q·K,)`` int32 from a packed table and input."""
    hits = jax.lax.population_count(table & xp[:, None])
    return jnp.sum(hits, axis=0, dtype=jnp.int32)
