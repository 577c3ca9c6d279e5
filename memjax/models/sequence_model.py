r"""A small token model around any sequence layer (the "mixer"): the baselines' common frame.

.. math::

   h^0 = E[x],\qquad
   h^{\ell+\frac12} = h^\ell + \mathrm{Mixer}_\ell(\mathrm{RMSNorm}(h^\ell)),\qquad
   h^{\ell+1} = h^{\ell+\frac12} + \mathrm{MLP}_\ell(\mathrm{RMSNorm}(h^{\ell+\frac12})),

and logits :math:`= \mathrm{RMSNorm}(h^L)\,W_{\text{out}}` (pre-norm residual blocks with a GELU
MLP, as in Llama/GPT-style baselines). The mixer is any memjax sequence layer, e.g.
:class:`memjax.models.associative.AssociativeLayer`; its test-time states (one per layer) are the
model's state, so a model can stream over a long input in pieces.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.associative import AssociativeLayer
    >>> from memjax.models.sequence_model import SequenceModel
    >>> mixer = AssociativeLayer(16, 2, LinearMemory(8, 8), conv_width=3)
    >>> model = SequenceModel(vocab_size=32, d_model=16, num_layers=2, mixer=mixer)
    >>> p = model.init_params(jax.random.key(0))
    >>> logits, state = model.apply(p, model.init_state(p), jnp.arange(10))
    >>> logits.shape
    (10, 32)
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_positive_int
from memjax.core.spec import spec
from memjax.nn.norms import rms_norm


@spec
class SequenceModel:
    """Embedding, ``num_layers`` pre-norm blocks of ``mixer`` + MLP, and a linear read-out.

    Args:
        vocab_size: number of input token ids.
        d_model: width (must equal the mixer's ``d_model``).
        num_layers: number of blocks (each has its own mixer and MLP params).
        mixer: the sequence layer spec used in every block.
        mlp_ratio: hidden width of the MLP as a multiple of ``d_model`` (0 = no MLP).
        num_outputs: size of the read-out (default ``vocab_size``).
    """

    vocab_size: int
    d_model: int
    num_layers: int
    mixer: Any
    mlp_ratio: int = 4
    num_outputs: int | None = None

    def __post_init__(self):
        check_positive_int("vocab_size", self.vocab_size)
        check_positive_int("d_model", self.d_model)
        check_positive_int("num_layers", self.num_layers)
        if getattr(self.mixer, "d_model", self.d_model) != self.d_model:
            raise ValueError(f"mixer: expected d_model={self.d_model}, got {self.mixer.d_model}")

    def init_params(self, key: jax.Array) -> dict:
        d, hidden = self.d_model, self.mlp_ratio * self.d_model
        outputs = self.num_outputs or self.vocab_size
        k_emb, k_out, *k_layers = jax.random.split(key, 2 + self.num_layers)

        def block(k):
            k_mix, k_up, k_down = jax.random.split(k, 3)
            p = {"norm1": jnp.ones(d), "mixer": self.mixer.init_params(k_mix)}
            if hidden:
                p["norm2"] = jnp.ones(d)
                p["up"] = jax.random.normal(k_up, (d, hidden)) / math.sqrt(d)
                p["down"] = jax.random.normal(k_down, (hidden, d)) / math.sqrt(hidden)
            return p

        return {
            "embed": jax.random.normal(k_emb, (self.vocab_size, d)),
            "blocks": [block(k) for k in k_layers],
            "norm": jnp.ones(d),
            "out": jax.random.normal(k_out, (d, outputs)) / math.sqrt(d),
        }

    def init_state(self, params: dict) -> tuple:
        return tuple(self.mixer.init_state(b["mixer"]) for b in params["blocks"])

    def apply(self, params: dict, state: tuple, tokens, /, **controls):
        """``tokens (T,)`` int -> ``(logits (T, num_outputs), new_state)``."""
        check_array("tokens", tokens, ndim=1, integer=True)
        h = params["embed"][tokens]
        new_state = []
        for block, s in zip(params["blocks"], state, strict=True):
            y, s = self.mixer.apply(
                block["mixer"], s, rms_norm(h, block["norm1"], x_times_x=True), **controls
            )
            h = h + y
            if "up" in block:
                h = (
                    h
                    + jax.nn.gelu(rms_norm(h, block["norm2"], x_times_x=True) @ block["up"])
                    @ block["down"]
                )
            new_state.append(s)
        return rms_norm(h, params["norm"], x_times_x=True) @ params["out"], tuple(new_state)
