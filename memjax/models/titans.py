r"""Titans language models (arXiv 2501.00663 §4): LMM, MAC, MAG, MAL and their baselines.

Every architecture is a *mixer*: a :class:`memjax.core.SequenceLayer` spec with a ``d_model``
field, so :class:`memjax.models.sequence_model.SequenceModel` (embedding → pre-norm blocks of
[mixer + MLP] → read-out) builds the language model, and :func:`build_model` builds one by name
for sweeps. The memory is :class:`memjax.memories.titans.TitansLMM` throughout; the attention is
:class:`memjax.models.attention.Attention`.

=================  =================================================================================
kind               mixer
=================  =================================================================================
``"lmm"``          :class:`~memjax.memories.titans.TitansLMM` alone (persistent tokens written into
                   the memory: :math:`y = M([p] \| x)`)
``"mac"``          :class:`~memjax.models.titans_mac.MAC` — memory as a context, eqs. 21–25
``"mag"``          :class:`MAG` — memory as a gate, eqs. 26–28
``"mal"``          :class:`MAL` — memory as a layer, eqs. 29–31
``"attention"``    full causal attention (Transformer baseline)
``"swa"``          sliding-window attention
``"gated_delta"``  :class:`~memjax.models.associative.AssociativeLayer` over a gated
                   :class:`~memjax.memories.linear.LinearMemory` (Gated DeltaNet, App. C with η = 0)
=================  =================================================================================

**MAG** (eqs. 26–28). :math:`\tilde x = [p_1 \dots p_{N_p}] \| x`;
:math:`y = \text{SW-Attn}^*(\tilde x)`, a sliding window that always includes the persistent
prefix; :math:`o = y \otimes M(\tilde x)` with the memory recurring over all tokens. The same
persistent tokens :math:`p` are the attention's always-visible prefix and are written into the
memory first (``TitansLMM.init_state``). The gate :math:`\otimes` is
:math:`\operatorname{RMSNorm}_{\gamma_1}(y) \odot \sigma(\operatorname{RMSNorm}_{\gamma_2}(m))`
followed by a linear output projection (spec §4 default,
:func:`memjax.models.titans_mac.memory_gate`).

**MAL** (eqs. 29–31). :math:`y = M(\tilde x)`, :math:`o = \text{SW-Attn}(y)`. The memory reads of
the prefix positions, :math:`y_p = M([p])`, are input-independent; ``init_state`` computes them and
puts their keys and values into the attention's sliding-window cache, so the attention sees
:math:`[y_p \| y]` exactly and the prefix scrolls out of the window as in plain SW-Attn (no star).
MAL therefore needs an integer ``window``. The paper's H3-style block is reduced to this pair; the
residual and MLP come from :class:`~memjax.models.sequence_model.SequenceModel`.

**Streaming.** LMM, MAG, MAL and SWA: a sequence cut into pieces of any sizes, state carried, equals
the whole. MAC: pieces must be multiples of its ``segment_size`` (except the last). Full attention
carries no cache (each call independent; see :mod:`memjax.models.attention`).

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

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax

from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.spec import spec
from memjax.memories.linear import LinearMemory
from memjax.memories.titans import TitansLMM
from memjax.models.associative import AssociativeLayer
from memjax.models.attention import Attention
from memjax.models.sequence_model import SequenceModel
from memjax.models.titans_mac import MAC, init_gate, memory_gate

KINDS = ("lmm", "mac", "mag", "mal", "attention", "swa", "gated_delta")

__all__ = ["KINDS", "MAC", "MAG", "MAL", "Attention", "HybridState", "TitansLMM", "build_model"]


class HybridState(NamedTuple):
    """MAG's and MAL's state: the LMM state and the attention state."""

    memory: Any
    attention: Any


def _build_lmm(spec_, num_persistent: int) -> TitansLMM:
    if spec_.memory is not None:
        if spec_.memory.d_model != spec_.d_model:
            raise ValueError(
                f"memory: expected d_model={spec_.d_model}, got {spec_.memory.d_model}"
            )
        return dataclasses.replace(spec_.memory, num_persistent=num_persistent)
    return TitansLMM(
        spec_.d_model,
        spec_.num_heads,
        chunk_size=spec_.chunk_size,
        depth=spec_.depth,
        num_persistent=num_persistent,
    )


@spec
class _MemoryAttentionHybrid:
    """Fields and parts shared by :class:`MAG` and :class:`MAL`: an LMM and an attention."""

    d_model: int
    num_heads: int = 2
    window: int | None = 64
    num_persistent: int = 4
    chunk_size: int = 16
    depth: int = 2
    rope: bool = True
    memory: TitansLMM | None = None

    def __post_init__(self):
        check_positive_int("d_model", self.d_model)
        self.lmm  # noqa: B018 - validates the memory fields
        self.attention  # noqa: B018 - validates the attention fields

    @property
    def lmm(self) -> TitansLMM:
        return _build_lmm(self, self.num_persistent)

    @property
    def attention(self) -> Attention:
        return Attention(self.d_model, self.num_heads, window=self.window, rope=self.rope)


@spec
class MAG(_MemoryAttentionHybrid):
    """Memory as a gate (module doc, eqs. 26–28). Unbatched: ``xs`` is ``(T, d_model)``.

    Args:
        d_model: input/output width.
        num_heads: heads of the attention and of the memory.
        window: sliding-window size of the attention (``None``: full causal attention).
        num_persistent: persistent tokens ``N_p`` (eq. 19), shared by memory and attention.
        chunk_size: the LMM's chunk size ``b`` (§3.2).
        depth: memory MLP depth ``L_M``.
        rope: rotary position embeddings in the attention.
        memory: a full :class:`~memjax.memories.titans.TitansLMM` spec to use instead of the one
            built from the fields above (its ``num_persistent`` is replaced by this one's).
    """

    def init_params(self, key: jax.Array) -> dict:
        k_mem, k_attn, k_gate = jax.random.split(key, 3)
        return {
            "memory": self.lmm.init_params(k_mem),
            "attention": self.attention.init_params(k_attn),
            "gate": init_gate(k_gate, self.d_model, self.lmm.dtype),
        }

    def init_state(self, params: dict) -> HybridState:
        """The memory after writing ``[p]``; an empty attention cache."""
        return HybridState(
            self.lmm.init_state(params["memory"]),
            self.attention.init_state(params["attention"]),
        )

    def apply(self, params: dict, state: HybridState, xs, /, **controls):
        """``(ys, state)``; controls ``theta=``, ``eta=``, ``alpha=`` go to the memory."""
        check_array("xs", xs, shape=(None, self.d_model), floating=True)
        m, memory = self.lmm.apply(params["memory"], state.memory, xs, **controls)
        prefix = params["memory"].get("persistent")
        y, attention = self.attention.attend(params["attention"], state.attention, xs, prefix)
        return memory_gate(params["gate"], y, m), HybridState(memory, attention)


@spec
class MAL(_MemoryAttentionHybrid):
    """Memory as a layer (module doc, eqs. 29–31). Unbatched: ``xs`` is ``(T, d_model)``.

    Args:
        d_model: input/output width.
        num_heads: heads of the attention and of the memory.
        window: sliding-window size of the attention (a positive int).
        num_persistent: persistent tokens ``N_p`` (eq. 19) before the memory.
        chunk_size, depth, rope, memory: as in :class:`MAG`.
    """

    window: int = 64

    def __post_init__(self):
        check_positive_int("window", self.window)
        super().__post_init__()

    def init_params(self, key: jax.Array) -> dict:
        k_mem, k_attn = jax.random.split(key)
        return {
            "memory": self.lmm.init_params(k_mem),
            "attention": self.attention.init_params(k_attn),
        }

    def init_state(self, params: dict) -> HybridState:
        """The memory after ``[p]``; the attention cache holding the prefix reads ``M([p])``."""
        return _mal_init_state(self, params)

    def apply(self, params: dict, state: HybridState, xs, /, **controls):
        """``(ys, state)``; controls ``theta=``, ``eta=``, ``alpha=`` go to the memory."""
        check_array("xs", xs, shape=(None, self.d_model), floating=True)
        y, memory = self.lmm.apply(params["memory"], state.memory, xs, **controls)
        o, attention = self.attention.attend(params["attention"], state.attention, y)
        return o, HybridState(memory, attention)


@partial(jax.jit, static_argnums=0)
def _mal_init_state(mal: MAL, params: dict) -> HybridState:
    """Jitted body of :meth:`MAL.init_state` (one compile instead of op-by-op dispatch)."""
    lmm, attn = mal.lmm, mal.attention
    mp, ap = params["memory"], params["attention"]
    attention = attn.init_state(ap)
    if not mal.num_persistent:
        return HybridState(lmm.init_state(mp), attention)
    y_prefix, memory = lmm.apply(mp, lmm.empty_state(mp), mp["persistent"])
    _, attention = attn.attend(ap, attention, y_prefix)
    return HybridState(memory, attention)


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
