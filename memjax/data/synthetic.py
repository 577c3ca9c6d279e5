"""Synthetic memory tasks as pure functions of a ``jax.random`` key (jit-compiled).

- :func:`mqar`: multi-query associative recall (Zoology, Arora et al. 2023).
- :func:`copy_task` and :func:`repeat_copy_task`: the NTM copy tasks (Graves et al. 2014).

Shape arguments are static: a new value compiles once more. Scored positions follow the
next-token convention: ``targets[b, t]`` is what the model should output after reading
``inputs[b, :t + 1]``; unscored positions hold :data:`IGNORE_INDEX` (-100) and ``mask`` is False.

Example:
    >>> import jax
    >>> from memjax.data import mqar
    >>> batch = mqar(jax.random.key(0), 2, vocab_size=64, seq_len=32, num_kv_pairs=4)
    >>> batch.inputs.shape, int(batch.mask.sum())
    ((2, 32), 8)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.data.errors import bad_arg

__all__ = ["IGNORE_INDEX", "CopyBatch", "MQARBatch", "copy_task", "mqar", "repeat_copy_task"]

IGNORE_INDEX = -100


class MQARBatch(NamedTuple):
    """``inputs (B, T) int32``, ``targets (B, T) int32`` (-100 where unscored), ``mask (B, T)
    bool``."""

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array


class CopyBatch(NamedTuple):
    """``inputs (B, T, C_in) float32``, ``targets (B, T, C_out) float32``, ``mask (B, T) bool``
    (True on the steps where the output is scored), ``lengths (B,) int32`` pattern lengths,
    ``repeats (B,) int32`` (1 for the copy task)."""

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array
    lengths: jax.Array
    repeats: jax.Array


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pos_int(name: str, v) -> None:
    if not _is_int(v) or v < 1:
        raise bad_arg(name, "a positive int", v)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _mqar(key, batch_size, vocab_size, seq_len, num_kv_pairs, num_queries):
    half = vocab_size // 2
    d, q = num_kv_pairs, num_queries
    sizes = (half - 1, vocab_size - half, d, seq_len - 2 * d)
    # one uniform draw, cut into four blocks; top_k of uniforms = random subset, random order
    u = jax.random.uniform(key, (batch_size, sum(sizes)))
    blocks = jnp.split(u, [sizes[0], sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2]], 1)
    keys = jax.lax.top_k(blocks[0], d)[1] + 1
    vals = jax.lax.top_k(blocks[1], d)[1] + half
    which = jax.lax.top_k(blocks[2], q)[1]
    pos = jax.lax.top_k(blocks[3], q)[1] + 2 * d
    rows = jnp.arange(batch_size)[:, None]
    context = jnp.stack([keys, vals], 2).reshape(batch_size, 2 * d)
    inputs = jnp.zeros((batch_size, seq_len), jnp.int32).at[:, : 2 * d].set(context)
    inputs = inputs.at[rows, pos].set(jnp.take_along_axis(keys, which, 1))
    targets = jnp.full((batch_size, seq_len), IGNORE_INDEX, jnp.int32)
    targets = targets.at[rows, pos].set(jnp.take_along_axis(vals, which, 1))
    return MQARBatch(inputs, targets, targets != IGNORE_INDEX)


def mqar(
    key: jax.Array,
    batch_size: int,
    vocab_size: int = 8192,
    seq_len: int = 256,
    num_kv_pairs: int = 16,
    num_queries: int | None = None,
) -> MQARBatch:
    """Multi-query associative recall (Zoology, Arora et al. 2023).

    Layout of every sequence (``D = num_kv_pairs``, ``Q = num_queries``, default ``D``):

    - positions ``0 .. 2D-1``: ``k_1 v_1 k_2 v_2 ... k_D v_D``. Keys are distinct, drawn from
      ``[1, vocab_size // 2)``; values are distinct, drawn from ``[vocab_size // 2, vocab_size)``.
      Token 0 is the filler/pad token.
    - positions ``2D .. T-1``: filler 0, except ``Q`` random positions holding a random subset
      of ``Q`` keys in random order (each queried key at most once).
    - ``targets[t]`` = the value paired with ``inputs[t]`` at query positions, -100 elsewhere;
      ``mask = targets != -100``.

    Returns an :class:`MQARBatch`. Deterministic for ``key``.

    Example:
        >>> import jax
        >>> b = mqar(jax.random.key(0), batch_size=2, vocab_size=64, seq_len=32, num_kv_pairs=4)
        >>> b.inputs.shape, int(b.mask.sum())
        ((2, 32), 8)
    """
    _pos_int("batch_size", batch_size)
    _pos_int("num_kv_pairs", num_kv_pairs)
    if not _is_int(vocab_size) or vocab_size // 2 - 1 < num_kv_pairs:
        raise bad_arg(
            "vocab_size",
            f"an int >= {2 * num_kv_pairs + 2} (num_kv_pairs="
            f"{num_kv_pairs} distinct keys from [1, vocab_size // 2))",
            vocab_size,
        )
    q = num_kv_pairs if num_queries is None else num_queries
    if not _is_int(q) or not 1 <= q <= num_kv_pairs:
        raise bad_arg("num_queries", f"an int in [1, num_kv_pairs={num_kv_pairs}]", q)
    if not _is_int(seq_len) or seq_len < 2 * num_kv_pairs + q:
        raise bad_arg(
            "seq_len", f"an int >= 2 * num_kv_pairs + num_queries = {2 * num_kv_pairs + q}", seq_len
        )
    return _mqar(key, batch_size, vocab_size, seq_len, num_kv_pairs, q)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6, 7))
def _copy(key, batch_size, max_len, width, min_len, max_repeats, min_repeats, repeat_copy):
    # one uniform draw (cheap to compile): pattern bits, then a length and a repeat count
    u = jax.random.uniform(key, (batch_size, max_len * width + 2))
    bits = (u[:, : max_len * width] < 0.5).astype(jnp.float32).reshape(batch_size, max_len, width)
    lengths = min_len + jnp.floor(u[:, -2] * (max_len - min_len + 1)).astype(jnp.int32)
    lengths = jnp.minimum(lengths, max_len)
    repeats = min_repeats + jnp.floor(u[:, -1] * (max_repeats - min_repeats + 1)).astype(jnp.int32)
    repeats = jnp.minimum(repeats, max_repeats)
    bits = bits * (jnp.arange(max_len)[None, :, None] < lengths[:, None, None])
    total = max_len + 1 + max_repeats * max_len + (1 if repeat_copy else 0)
    t = jnp.arange(total)[None, :]
    L, R = lengths[:, None], repeats[:, None]
    pat_in = jnp.take_along_axis(bits, jnp.minimum(t, max_len - 1)[..., None], 1)
    pat_in = pat_in * (t < L)[..., None]
    delim = (t == L).astype(jnp.float32)[..., None]
    out_t = t - L - 1
    is_out = (out_t >= 0) & (out_t < R * L)
    src = jnp.where(is_out, out_t % jnp.maximum(L, 1), 0)
    pat_out = jnp.take_along_axis(bits, src[..., None], 1) * is_out[..., None]
    chans_in = [pat_in, delim]
    chans_out = [pat_out]
    mask = is_out
    if repeat_copy:
        chans_in.append(delim * (R / max_repeats)[..., None].astype(jnp.float32))
        end = (out_t == R * L).astype(jnp.float32)[..., None]
        chans_out.append(end)
        mask = is_out | (out_t == R * L)
    return CopyBatch(
        jnp.concatenate(chans_in, -1),
        jnp.concatenate(chans_out, -1),
        mask,
        lengths.astype(jnp.int32),
        repeats.astype(jnp.int32),
    )


def copy_task(
    key: jax.Array,
    batch_size: int,
    max_len: int = 20,
    width: int = 8,
    min_len: int | None = None,
) -> CopyBatch:
    """NTM copy task (Graves et al. 2014): read a random binary pattern, then write it back.

    Pattern length ``L`` per example is uniform in ``[min_len, max_len]`` (``min_len`` defaults
    to ``max_len``: fixed length). ``T = 2 * max_len + 1``.

    - ``inputs (B, T, width + 1)``: steps ``0..L-1`` carry the pattern in channels
      ``[0, width)``; step ``L`` sets the delimiter channel ``width``; later steps are zero.
    - ``targets (B, T, width)``: steps ``L+1 .. 2L`` carry the pattern again; zeros elsewhere.
    - ``mask (B, T)``: True on steps ``L+1 .. 2L``.

    Example:
        >>> import jax
        >>> b = copy_task(jax.random.key(0), batch_size=2, max_len=5)
        >>> b.inputs.shape, b.targets.shape
        ((2, 11, 9), (2, 11, 8))
    """
    _pos_int("batch_size", batch_size)
    _pos_int("max_len", max_len)
    _pos_int("width", width)
    min_len = max_len if min_len is None else min_len
    if not _is_int(min_len) or not 1 <= min_len <= max_len:
        raise bad_arg("min_len", f"an int in [1, max_len={max_len}]", min_len)
    return _copy(key, batch_size, max_len, width, min_len, 1, 1, False)


def repeat_copy_task(
    key: jax.Array,
    batch_size: int,
    max_len: int = 10,
    max_repeats: int = 10,
    width: int = 8,
    min_len: int = 1,
    min_repeats: int = 1,
) -> CopyBatch:
    """NTM repeat-copy task: write the pattern back ``R`` times, then an end marker.

    Per example ``L`` is uniform in ``[min_len, max_len]`` and ``R`` in
    ``[min_repeats, max_repeats]``. ``T = max_len + 1 + max_repeats * max_len + 1``.

    - ``inputs (B, T, width + 2)``: steps ``0..L-1`` pattern; at step ``L`` the delimiter channel
      ``width`` is 1 and the repeat channel ``width + 1`` holds ``R / max_repeats``.
    - ``targets (B, T, width + 1)``: steps ``L+1 .. L+R*L`` carry the pattern repeated
      (``pattern[(t - L - 1) % L]``); step ``L+1+R*L`` sets the end-marker channel ``width``.
    - ``mask (B, T)``: True on steps ``L+1 .. L+1+R*L`` (copies and end marker).

    Example:
        >>> import jax
        >>> b = repeat_copy_task(jax.random.key(0), 2, max_len=3, max_repeats=2, width=4)
        >>> b.inputs.shape, b.targets.shape
        ((2, 11, 6), (2, 11, 5))
    """
    _pos_int("batch_size", batch_size)
    _pos_int("max_len", max_len)
    _pos_int("max_repeats", max_repeats)
    _pos_int("width", width)
    if not _is_int(min_len) or not 1 <= min_len <= max_len:
        raise bad_arg("min_len", f"an int in [1, max_len={max_len}]", min_len)
    if not _is_int(min_repeats) or not 1 <= min_repeats <= max_repeats:
        raise bad_arg("min_repeats", f"an int in [1, max_repeats={max_repeats}]", min_repeats)
    return _copy(key, batch_size, max_len, width, min_len, max_repeats, min_repeats, True)
