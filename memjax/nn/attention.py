r"""Causal multi-head softmax attention (full or sliding-window) with persistent tokens.

The short-term memory of Titans' hybrids (arXiv 2501.00663 §4) and the attention baselines. For
queries :math:`q_i`, keys :math:`k_j` and values :math:`v_j` of one head,

.. math::

    o_i = \sum_{j \in \mathcal{V}(i)} \operatorname{softmax}_j\!\Big(\frac{q_i \cdot k_j}
          {\sqrt{d}}\Big)\, v_j, \qquad
    \mathcal{V}(i) = \mathcal{P} \cup \{\, j : i - w < j \le i \,\},

where :math:`w` is the ``window`` (``None``: all earlier tokens) and :math:`\mathcal{P}` the
**persistent tokens** of eq. 19 (:math:`x_{\text{new}} = [p_1 \dots p_{N_p}] \,\|\, x`): learnable,
input-independent tokens projected by the same :math:`W_K, W_V` and visible to every query, so a
sliding window "always includes the persistent prefix" (MAG's :math:`\text{SW-Attn}^*`, eq. 27).
The prefix tokens carry no position; with ``rope=True`` queries and keys of the sequence get rotary
position embeddings at their absolute stream positions (not specified by the paper; the usual
choice of its Transformer++ baseline).

**Streaming.** With ``window=w`` the state carries the last ``w`` keys and values (already rotated),
a validity mask and the stream position, so a sequence cut into pieces of any sizes, state
carried, gives the same outputs as one call over the whole sequence (shape-stable state). With
``window=None`` the state carries **no cache** and its position stays 0: each call is an
independent causal pass (what a language model trained on fixed-length sequences needs); to
stream full attention over a bounded context, use ``window=max_len``.

**Channel axes** (:mod:`memjax.nn.channels`): the layer maps ``d_model`` channels to ``d_model``
channels: ``qkv`` ``(d_model, 3 H d_head)`` has its inputs on axis 0, ``out`` ``(H d_head,
d_model)`` its outputs on axis 1, and the persistent tokens ``(N_p, d_model)`` live in the input
space (axis 1). The per-head axes are internal to the layer (pruning them is head pruning, not
channel pruning), so they are not declared.

**Cost.** One call over ``T`` tokens forms the dense ``T × (N_p + w + T)`` score matrix per head
(masked), i.e. ``O(T (T + w))`` time and memory; this is the reference form, not a blockwise kernel.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.nn.attention import Attention
    >>> attn = Attention(d_model=16, num_heads=2, window=4, num_persistent=2)
    >>> p = attn.init_params(jax.random.key(0))
    >>> ys, state = attn.apply(p, attn.init_state(p), jnp.ones((10, 16)))
    >>> ys.shape, state.keys.shape
    ((10, 16), (4, 2, 8))
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_heads, check_positive_int
from memjax.core.controls import check_controls
from memjax.core.spec import spec
from memjax.nn.channels import ChannelAxes

NEG_INF = -1e30


def rope(x: jax.Array, positions: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding of ``x`` ``(T, H, d)`` (``d`` even) at integer ``positions``;
    the angles are computed in ``x``'s dtype, at least float32."""
    half = x.shape[-1] // 2
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    freqs = base ** (-jnp.arange(half, dtype=dtype) / half)
    angles = positions.astype(dtype)[:, None] * freqs[None, :]
    cos = jnp.cos(angles)[:, None, :].astype(x.dtype)
    sin = jnp.sin(angles)[:, None, :].astype(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def masked_attention(q, k, v, mask) -> jax.Array:
    """Softmax attention of ``q (T, H, d)`` over ``k, v (S, H, d)`` where ``mask (T, S)`` is True.

    Every query must see at least one key. The softmax runs in the inputs' dtype, at least
    float32 (bfloat16/float16 scores are upcast; float64 stays float64).
    """
    logits = jnp.einsum("thd,shd->hts", q, k) / math.sqrt(q.shape[-1])
    logits = jnp.where(mask[None], logits, NEG_INF)
    dtype = jnp.promote_types(logits.dtype, jnp.float32)
    weights = jax.nn.softmax(logits.astype(dtype), axis=-1).astype(v.dtype)
    return jnp.einsum("hts,shd->thd", weights, v)


class AttentionState(NamedTuple):
    """Cached keys/values ``(W, H, d_head)`` of the last ``W = window`` tokens (``W = 0`` for full
    attention), their validity ``(W,)`` and the stream position (int32)."""

    keys: jax.Array
    values: jax.Array
    valid: jax.Array
    position: jax.Array


@spec
class Attention:
    """Causal multi-head attention as a sequence layer (module doc). Unbatched: ``(T, d_model)``.

    Args:
        d_model: input/output width.
        num_heads: attention heads.
        d_head: per-head width (default ``d_model // num_heads``).
        window: sliding-window size ``w`` (a token sees itself and the ``w - 1`` before it);
            ``None`` = full causal attention.
        num_persistent: learnable persistent tokens ``(N_p, d_model)`` (eq. 19), always visible.
        rope: rotary position embeddings on the sequence's queries and keys.
        rope_base: RoPE frequency base.
        dtype: dtype of the params.
    """

    d_model: int
    num_heads: int = 2
    d_head: int | None = None
    window: int | None = None
    num_persistent: int = 0
    rope: bool = True
    rope_base: float = 10000.0
    dtype: str = "float32"

    def __post_init__(self):
        check_heads(self.d_model, self.num_heads, self.d_head)
        if self.window is not None:
            check_positive_int("window", self.window)
        n = self.num_persistent
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"num_persistent: expected a non-negative integer, got {n!r}")
        if self.rope and self.head_size % 2:
            raise ValueError(f"d_head: rope needs an even head size, got {self.head_size}")

    @property
    def head_size(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.num_heads

    @property
    def cache_size(self) -> int:
        """Keys/values carried between calls: ``window`` (or 0 for full attention)."""
        return self.window or 0

    def init_params(self, key: jax.Array) -> dict:
        d, hd = self.d_model, self.num_heads * self.head_size
        k_qkv, k_out, k_p = jax.random.split(key, 3)
        params = {
            "qkv": jax.random.normal(k_qkv, (d, 3 * hd), self.dtype) / math.sqrt(d),
            "out": jax.random.normal(k_out, (hd, d), self.dtype) / math.sqrt(hd),
        }
        if self.num_persistent:
            params["persistent"] = jax.random.normal(k_p, (self.num_persistent, d), self.dtype)
        return params

    def channel_axes(self) -> dict[str, ChannelAxes]:
        """``qkv``: inputs on axis 0; ``out``: outputs on axis 1; ``persistent``: inputs, axis 1."""
        axes = {"qkv": ChannelAxes(in_=0), "out": ChannelAxes(out=1)}
        if self.num_persistent:
            axes["persistent"] = ChannelAxes(in_=1)
        return axes

    def init_state(self, params: dict) -> AttentionState:
        w, h, d = self.cache_size, self.num_heads, self.head_size
        dtype = params["qkv"].dtype
        return AttentionState(
            keys=jnp.zeros((w, h, d), dtype),
            values=jnp.zeros((w, h, d), dtype),
            valid=jnp.zeros((w,), bool),
            position=jnp.zeros((), jnp.int32),
        )

    # -- pieces --------------------------------------------------------------------------
    def project(self, params: dict, xs) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(q, k, v)``, each ``(T, H, d_head)`` (no position embedding)."""
        length = xs.shape[0]
        qkv = xs @ params["qkv"]
        return tuple(
            a.reshape(length, self.num_heads, self.head_size) for a in jnp.split(qkv, 3, axis=-1)
        )

    def rotate(self, x, positions):
        """RoPE at ``positions`` if enabled, else ``x``."""
        return rope(x, positions, self.rope_base) if self.rope else x

    def output(self, params: dict, heads) -> jax.Array:
        """Concatenate the heads ``(T, H, d_head)`` and project to ``(T, d_model)``."""
        return heads.reshape(heads.shape[0], -1) @ params["out"]

    # -- the layer -----------------------------------------------------------------------
    def attend(self, params: dict, state: AttentionState, xs, prefix=None):
        """``(ys, state)``: attention over ``xs`` ``(T, d_model)`` with the optional always-visible
        ``prefix`` tokens ``(P, d_model)`` (projected by this layer's ``W_K``, ``W_V``)."""
        check_array("xs", xs, shape=(None, self.d_model), floating=True)
        if prefix is not None:
            check_array("prefix", prefix, shape=(None, self.d_model), floating=True)
        length, cache = xs.shape[0], self.cache_size
        q, k, v = self.project(params, xs)
        pos = state.position + jnp.arange(length, dtype=jnp.int32)
        q, k = self.rotate(q, pos), self.rotate(k, pos)
        keys = jnp.concatenate([state.keys, k])
        values = jnp.concatenate([state.values, v])
        valid = jnp.concatenate([state.valid, jnp.ones((length,), bool)])
        # key j of the buffer sits at stream position position - cache + j
        qpos = jnp.arange(length)[:, None] + cache
        kpos = jnp.arange(cache + length)[None, :]
        mask = valid[None, :] & (kpos <= qpos)
        if self.window is not None:
            mask = mask & (qpos - kpos < self.window)
        if prefix is not None:
            _, pk, pv = self.project(params, prefix)
            keys_all = jnp.concatenate([pk, keys])
            values_all = jnp.concatenate([pv, values])
            mask = jnp.concatenate([jnp.ones((length, prefix.shape[0]), bool), mask], axis=1)
        else:
            keys_all, values_all = keys, values
        ys = self.output(params, masked_attention(q, keys_all, values_all, mask))
        total = cache + length
        new_state = AttentionState(
            keys[total - cache :],
            values[total - cache :],
            valid[total - cache :],
            state.position + length if cache else state.position,
        )
        return ys, new_state

    def apply(self, params: dict, state: AttentionState, xs, /, **controls):
        """``(ys, state)`` for ``xs`` ``(T, d_model)``; the persistent tokens are the prefix.

        No control changes attention; an unknown control name (or a registered one with a bad
        value) raises, as in every other layer (:func:`memjax.core.controls.check_controls`).
        """
        check_controls(controls, where="Attention.apply")
        return self.attend(params, state, xs, params.get("persistent"))
