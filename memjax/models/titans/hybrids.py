r"""Titans hybrids (arXiv 2501.00663 §4.2–4.3): MAG and MAL, memory beside sliding-window attention.

**MAG** (eqs. 26–28). :math:`\tilde x = [p_1 \dots p_{N_p}] \| x`;
:math:`y = \text{SW-Attn}^*(\tilde x)`, a sliding window that always includes the persistent
prefix; :math:`o = y \otimes M(\tilde x)` with the memory recurring over all tokens. The same
persistent tokens :math:`p` are the attention's always-visible prefix and are written into the
memory first (``TitansLMM.init_state``). The gate :math:`\otimes` is
:math:`\operatorname{RMSNorm}_{\gamma_1}(y) \odot \sigma(\operatorname{RMSNorm}_{\gamma_2}(m))`
followed by a linear output projection (memjax's default: the paper says only "normalise with
learnable vectors, then σ"; :func:`memjax.models.titans.mac.memory_gate`).

**MAL** (eqs. 29–31). :math:`y = M(\tilde x)`, :math:`o = \text{SW-Attn}(y)`. The memory reads of
the prefix positions, :math:`y_p = M([p])`, are input-independent; ``init_state`` computes them and
puts their keys and values into the attention's sliding-window cache, so the attention sees
:math:`[y_p \| y]` exactly and the prefix scrolls out of the window as in plain SW-Attn (no star).
MAL therefore needs an integer ``window``. The paper's H3-style block is reduced to this pair; the
residual and MLP come from :class:`~memjax.models.sequence_model.SequenceModel`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.titans import MAG
    >>> mag = MAG(16, window=4, chunk_size=4, num_persistent=2)
    >>> p = mag.init_params(jax.random.key(0))
    >>> ys, state = jax.jit(mag.apply)(p, mag.init_state(p), jnp.ones((9, 16)))
    >>> ys.shape
    (9, 16)
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax

from memjax.core.checks import check_array, check_positive_int
from memjax.core.controls import check_controls, is_concrete
from memjax.core.spec import spec
from memjax.models.titans.lmm import TitansLMM
from memjax.models.titans.mac import init_gated_params, memory_gate
from memjax.nn.attention import Attention

__all__ = ["MAG", "MAL", "HybridState"]


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
        memory: a full :class:`~memjax.models.titans.lmm.TitansLMM` spec to use instead of the one
            built from the fields above (its ``num_persistent`` is replaced by this one's).
    """

    def init_params(self, key: jax.Array) -> dict:
        return init_gated_params(self, key)

    def init_state(self, params: dict, **controls) -> HybridState:
        """The memory after writing ``[p]`` (controls ``theta=``, ``eta=``, ``alpha=`` override
        that write's gates); an empty attention cache."""
        return HybridState(
            self.lmm.init_state(params["memory"], **controls),
            self.attention.init_state(params["attention"]),
        )

    def apply(self, params: dict, state: HybridState, xs, /, **controls):
        """``(ys, state)``; controls ``theta=``, ``eta=``, ``alpha=`` go to the memory."""
        check_array("xs", xs, shape=(None, self.d_model), floating=True)
        check_controls(controls, where="MAG.apply")
        if is_concrete((params, state, xs, controls)):  # eager: one compile per spec and shapes
            return _hybrid_apply(self, params, state, xs, controls)
        return self._apply(params, state, xs, controls)

    def _apply(self, params: dict, state: HybridState, xs, controls):
        m, memory = self.lmm.apply(params["memory"], state.memory, xs, **controls)
        prefix = self.lmm.persistent_tokens(params["memory"])
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

    def init_state(self, params: dict, **controls) -> HybridState:
        """The memory after ``[p]``; the attention cache holding the prefix reads ``M([p])``.
        Controls ``theta=``, ``eta=``, ``alpha=`` override the gates of the write of ``[p]``."""
        check_controls(controls, where="MAL.init_state")
        return _mal_init_state(self, params, controls)

    def apply(self, params: dict, state: HybridState, xs, /, **controls):
        """``(ys, state)``; controls ``theta=``, ``eta=``, ``alpha=`` go to the memory."""
        check_array("xs", xs, shape=(None, self.d_model), floating=True)
        check_controls(controls, where="MAL.apply")
        if is_concrete((params, state, xs, controls)):  # eager: one compile per spec and shapes
            return _hybrid_apply(self, params, state, xs, controls)
        return self._apply(params, state, xs, controls)

    def _apply(self, params: dict, state: HybridState, xs, controls):
        y, memory = self.lmm.apply(params["memory"], state.memory, xs, **controls)
        o, attention = self.attention.attend(params["attention"], state.attention, y)
        return o, HybridState(memory, attention)


@partial(jax.jit, static_argnums=0)
def _mal_init_state(mal: MAL, params: dict, controls) -> HybridState:
    """Jitted body of :meth:`MAL.init_state` (one compile instead of op-by-op dispatch)."""
    lmm, attn = mal.lmm, mal.attention
    mp, ap = params["memory"], params["attention"]
    attention = attn.init_state(ap)
    if not mal.num_persistent:
        return HybridState(lmm.init_state(mp, **controls), attention)
    y_prefix, memory = lmm.prefix_apply(mp, **controls)
    _, attention = attn.attend(ap, attention, y_prefix)
    return HybridState(memory, attention)


@partial(jax.jit, static_argnums=0)
def _hybrid_apply(layer, params: dict, state: HybridState, xs, controls):
    """Jitted ``apply`` of :class:`MAG` / :class:`MAL` for eager calls (one trace per spec,
    shapes and control names)."""
    return layer._apply(params, state, xs, controls)
