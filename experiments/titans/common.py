"""Titans-only pieces of the Titans experiments: the LMM ablations of Table 5.

Models by name (``"lmm"``, ``"mac"``, ``"mag"``, ``"mal"``, ``"attention"``, ``"swa"``,
``"gated_delta"``) come from :func:`memjax.models.titans.build_model`; training, losses and result
files shared with the other experiments are in :mod:`experiments.common`.

Ablations of the LMM (Titans Table 5) are :class:`LMMOptions` fields, and
:meth:`LMMOptions.model` builds the ablated LMM language model; momentum and decay are switched
off exactly with the per-call controls ``eta=0`` / ``alpha=0`` of
:meth:`TitansLMM.apply <memjax.models.titans.lmm.TitansLMM.apply>` (they override the gates, also
for the persistent tokens written by ``init_state``), through :class:`Controlled`.

The attention baseline with the LMM's short convolution, :class:`ConvAttention`, gives softmax
attention the same causal depthwise q/k/v convolution as the LMM (width 4, drawn ``U(±1/√W)``
plus an identity tap), so "LMM against attention" compares the memories, not the conv.

Example:
    >>> from experiments.titans.common import Controlled, LMMOptions
    >>> model = LMMOptions(depth=1, momentum=False).model(vocab_size=10, d_model=8, num_layers=1)
    >>> isinstance(model.mixer, Controlled), model.mixer.controls, model.mixer.layer.depth
    (True, (('eta', 0.0),), 1)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from memjax.core.controls import check_controls
from memjax.core.spec import spec
from memjax.models.sequence_model import SequenceModel
from memjax.models.titans.lmm import TitansLMM
from memjax.nn.attention import Attention, masked_attention
from memjax.nn.conv1d import causal_depthwise_conv

__all__ = ["Controlled", "ConvAttention", "LMMOptions"]


@dataclasses.dataclass(frozen=True)
class LMMOptions:
    """The LMM knobs the experiments vary (Titans Table 5 rows and the capacity sweep)."""

    depth: int = 2
    expansion: int = 4
    conv_width: int = 4
    num_persistent: int = 4
    momentum: bool = True
    decay: bool = True
    chunk_size: int = 16
    conv_init: str = TitansLMM.conv_init  # the layer's defaults, not copies of them
    residual_norm: bool = TitansLMM.residual_norm

    def layer(self, d_model: int, num_heads: int, d_head: int | None = None) -> TitansLMM:
        return TitansLMM(
            d_model=d_model,
            num_heads=num_heads,
            d_head=d_head,
            chunk_size=self.chunk_size,
            depth=self.depth,
            expansion=self.expansion,
            conv_width=self.conv_width,
            num_persistent=self.num_persistent,
            conv_init=self.conv_init,
            residual_norm=self.residual_norm,
        )

    @property
    def controls(self) -> tuple[tuple[str, float], ...]:
        out = []
        if not self.momentum:
            out.append(("eta", 0.0))
        if not self.decay:
            out.append(("alpha", 0.0))
        return tuple(out)

    def model(
        self,
        vocab_size: int,
        d_model: int,
        num_layers: int,
        *,
        num_heads: int = 2,
        mlp_ratio: int = 4,
    ) -> SequenceModel:
        """The ablated LMM language model: a :class:`SequenceModel` around :meth:`layer`, wrapped
        in :class:`Controlled` when momentum or decay is off (the ``"lmm"`` kind of
        :func:`memjax.models.titans.build_model` with these options)."""
        mixer: Any = self.layer(d_model, num_heads)
        if self.controls:
            mixer = Controlled(mixer, self.controls)
        return SequenceModel(vocab_size, d_model, num_layers, mixer, mlp_ratio=mlp_ratio)


@spec
class Controlled:
    """A :class:`TitansLMM` with fixed per-call controls (e.g. ``eta=0``: no momentum), used in
    ``apply`` and when ``init_state`` writes the persistent tokens."""

    layer: Any
    controls: tuple = ()

    @property
    def d_model(self) -> int:
        return self.layer.d_model

    def init_params(self, key):
        return self.layer.init_params(key)

    def init_state(self, params):
        return self.layer.init_state(params, **dict(self.controls))

    def apply(self, params, state, xs, /, **controls):
        return self.layer.apply(params, state, xs, **{**dict(self.controls), **controls})


@spec
class ConvAttention:
    r"""Full causal softmax attention (RoPE) whose q, k, v first pass the LMM's short conv.

    For the projections :math:`p = x W_{QKV}`, :math:`\tilde p_t = b + \sum_{i<W} w_i \odot
    p_{t-W+1+i}` (causal, depthwise, the conv of Titans §4.4 as :class:`TitansLMM` has it, same
    init: ``U(±1/√W)`` plus 1 on the current token's tap), then attention of
    :class:`memjax.nn.attention.Attention` over :math:`\tilde q, \tilde k, \tilde v`. Each call
    is one independent causal pass (no cache), as ``Attention(window=None)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> layer = ConvAttention(d_model=8, num_heads=2)
        >>> p = layer.init_params(jax.random.key(0))
        >>> ys, _ = layer.apply(p, layer.init_state(p), jnp.ones((5, 8)))
        >>> ys.shape, p["conv"]["w"].shape
        ((5, 8), (4, 24))
    """

    d_model: int
    num_heads: int = 2
    conv_width: int = 4

    @property
    def attention(self) -> Attention:
        return Attention(self.d_model, self.num_heads)

    def init_params(self, key):
        k_attn, k_conv = jax.random.split(key)
        params = self.attention.init_params(k_attn)
        width = params["qkv"].shape[1]
        bound = 1 / math.sqrt(self.conv_width)
        w = jax.random.uniform(k_conv, (self.conv_width, width), minval=-bound, maxval=bound)
        params["conv"] = {"w": w.at[-1].add(1.0), "b": jnp.zeros((width,))}
        return params

    def init_state(self, params):
        return self.attention.init_state(params)

    def apply(self, params, state, xs, /, **controls):
        check_controls(controls, where="ConvAttention.apply")
        attn, length = self.attention, xs.shape[0]
        tail = jnp.zeros((self.conv_width - 1, params["qkv"].shape[1]), xs.dtype)
        p, _ = causal_depthwise_conv(xs @ params["qkv"], params["conv"]["w"], tail)
        p = p + params["conv"]["b"][None, :]
        q, k, v = (
            a.reshape(length, attn.num_heads, attn.head_size) for a in jnp.split(p, 3, axis=-1)
        )
        pos = jnp.arange(length, dtype=jnp.int32)
        mask = jnp.tril(jnp.ones((length, length), bool))
        heads = masked_attention(attn.rotate(q, pos), attn.rotate(k, pos), v, mask)
        return attn.output(params, heads), state
