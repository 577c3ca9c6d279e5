r"""Titans language models (arXiv 2501.00663 §4): LMM, MAC, MAG, MAL and their baselines.

Every architecture is a *mixer*: a :class:`memjax.core.SequenceLayer` spec with a ``d_model``
field, so :class:`memjax.models.sequence_model.SequenceModel` (embedding → pre-norm blocks of
[mixer + MLP] → read-out) builds the language model, and :func:`build_model` builds one by name
for sweeps. The memory is :class:`memjax.models.titans.lmm.TitansLMM` throughout; the attention is
:class:`memjax.nn.attention.Attention`.

=================  =================================================================================
kind               mixer
=================  =================================================================================
``"lmm"``          :class:`~memjax.models.titans.TitansLMM` alone (persistent tokens written into
                   the memory: :math:`y = M([p] \| x)`)
``"mac"``          :class:`~memjax.models.titans.mac.MAC` — memory as a context, eqs. 21–25
``"mag"``          :class:`MAG` — memory as a gate, eqs. 26–28
``"mal"``          :class:`MAL` — memory as a layer, eqs. 29–31
``"attention"``    full causal attention (Transformer baseline)
``"swa"``          sliding-window attention
``"gated_delta"``  :class:`~memjax.models.associative.AssociativeLayer` over a gated
                   :class:`~memjax.memories.linear.LinearMemory` (Gated DeltaNet, App. C with η = 0)
=================  =================================================================================

**Streaming.** LMM, MAG, MAL and SWA: a sequence cut into pieces of any sizes, state carried, equals
the whole. MAC: pieces must be multiples of its ``segment_size`` (except the last). Full attention
carries no cache (each call independent; see :mod:`memjax.nn.attention`).

**Frameworks.** Any of these mixers runs in Flax NNX or Equinox through
:class:`memjax.nnx.MemoryLayer` / :class:`memjax.eqx.MemoryLayer`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.titans import build_model
    >>> model = build_model("mag", vocab_size=20, d_model=16, num_layers=1, window=4,
    ...                     chunk_size=4, num_persistent=2)
    >>> p = model.init_params(jax.random.key(0))
    >>> logits, state = jax.jit(model.apply)(p, model.init_state(p), jnp.arange(9) % 20)
    >>> logits.shape
    (9, 20)
"""

from __future__ import annotations

from typing import Any

from memjax.core.checks import check_choice
from memjax.memories.linear import LinearMemory
from memjax.models.associative import AssociativeLayer
from memjax.models.sequence_model import SequenceModel
from memjax.models.titans.hybrids import MAG, MAL
from memjax.models.titans.lmm import TitansLMM
from memjax.models.titans.mac import MAC
from memjax.nn.attention import Attention

KINDS = ("lmm", "mac", "mag", "mal", "attention", "swa", "gated_delta")

__all__ = ["KINDS", "build_model"]


def build_model(
    kind: str,
    vocab_size: int,
    d_model: int,
    num_layers: int,
    *,
    num_heads: int = 2,
    window: int = 64,
    segment_size: int = 16,
    chunk_size: int = 16,
    num_persistent: int = 4,
    depth: int = 2,
    conv_width: int = 4,
    mlp_ratio: int = 4,
) -> SequenceModel:
    """A :class:`~memjax.models.sequence_model.SequenceModel` with the ``kind`` mixer (module doc).

    Args:
        kind: one of :data:`KINDS`.
        vocab_size, d_model, num_layers, mlp_ratio: the model frame.
        num_heads: heads of every attention and memory.
        window: sliding window of ``"swa"``, ``"mag"``, ``"mal"``.
        segment_size: ``"mac"`` segment size.
        chunk_size: the LMM's chunk size (``"lmm"``, ``"mac"``, ``"mag"``, ``"mal"``).
        num_persistent: persistent tokens of the Titans kinds.
        depth: memory MLP depth of the Titans kinds.
        conv_width: causal conv width of the ``"gated_delta"`` baseline.
    """
    check_choice("kind", kind, KINDS)
    titans = dict(num_heads=num_heads, chunk_size=chunk_size, depth=depth)
    if kind == "lmm":
        mixer: Any = TitansLMM(d_model, num_persistent=num_persistent, **titans)
    elif kind == "mac":
        mixer = MAC(d_model, segment_size=segment_size, num_persistent=num_persistent, **titans)
    elif kind == "mag":
        mixer = MAG(d_model, window=window, num_persistent=num_persistent, **titans)
    elif kind == "mal":
        mixer = MAL(d_model, window=window, num_persistent=num_persistent, **titans)
    elif kind == "attention":
        mixer = Attention(d_model, num_heads)
    elif kind == "swa":
        mixer = Attention(d_model, num_heads, window=window)
    else:
        if d_model % num_heads:
            raise ValueError(f"num_heads: d_model={d_model} is not divisible by {num_heads}")
        d = d_model // num_heads
        memory = LinearMemory(
            d, d, alpha=0.01, gated=("theta", "alpha"), decay_form="gated_deltanet"
        )
        mixer = AssociativeLayer(
            d_model, num_heads, memory, conv_width=conv_width, chunk_size=chunk_size
        )
    return SequenceModel(vocab_size, d_model, num_layers, mixer, mlp_ratio=mlp_ratio)
