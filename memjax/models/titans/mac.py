r"""Titans MAC — memory as a context (arXiv 2501.00663 §4.1, eqs. 21–25, Fig. 2, mask Fig. 3a).

The sequence is cut into segments :math:`S^{(t)}` of ``segment_size`` ``C`` tokens. Per segment, in
the paper's order (retrieve → attend → store → read → gate):

.. math::

    q_t &= S^{(t)} W_Q, \qquad h_t = M^*_{t-1}(q_t)
        &&\text{(21–22: read the memory from before the segment)}\\
    \tilde S^{(t)} &= [p_1 \dots p_{N_p}] \,\|\, h_t \,\|\, S^{(t)}, \qquad
        y_t = \operatorname{Attn}(\tilde S^{(t)}) &&\text{(23)}\\
    M_t &= M_{t-1}(y_t) &&\text{(24: store the attention output)}\\
    o_t &= y_t \otimes M^*_t(y_t) &&\text{(25)}

The memory is a :class:`memjax.models.titans.lmm.TitansLMM` and every step uses its public pieces:
the query :math:`W_Q` (with its causal convolution, SiLU and ℓ2-norm) is the LMM's ``project``;
the read :math:`M^*_{t-1}` is the LMM's ``memory_read`` (each head's memory at the pre-segment
weights) followed by its ``output``; the store and the second read are the LMM's
``memory_apply`` over :math:`y_t` (the paper's chunked parallel form with dual-form reads) and
``output``. The attention is an :class:`memjax.nn.attention.Attention` over the segment, its
persistent tokens and ``h``.

Choices (memjax's), documented here because the paper leaves them open or is not causal as written:

* **One memory token per segment token** (``"per_token"``, eq. 22), not ``N_l`` pooled tokens.
* **Causal mask.** Persistent tokens are visible to every query. :math:`h_j` is derived from token
  :math:`x_j`, so a segment token :math:`i` sees :math:`h_j` and :math:`S_j` only for
  :math:`j \le i` — showing all of :math:`h` to all tokens (Fig. 3a read literally) would leak the
  future into a causal language model. RoPE positions are segment-local (``h_j``, ``S_j`` at ``j``).
* **Read after store at token granularity.** :math:`M^*_t(y_t)` of eq. 25 is read per token, with
  the weights after storing :math:`y_{\le i}` (the LMM's ``read_point`` reads; with the default
  ``"token"`` this is :math:`M_i`), so outputs stay causal inside a segment.
* **Gate** :math:`\otimes`: :math:`\operatorname{RMSNorm}_{\gamma_1}(y) \odot
  \sigma(\operatorname{RMSNorm}_{\gamma_2}(m))` followed by a linear output projection (the
  paper's MAG gate, §4.2, and "gating with a linear layer before the final output projection",
  §4.4); shared with MAG.
* The LMM inside MAC stores no persistent tokens (they live in the attention context, eq. 23).

**Streaming.** The state is the LMM state plus the query convolution's tail. Segments are aligned
to the start of each call, so a sequence cut into pieces equals the whole when every piece but
the last is a multiple of ``segment_size``. A trailing partial segment is processed as a shorter
segment. Known controls are ignored (unknown names raise).

**Cost.** ``lax.scan`` over segments; per segment one ``C × (N_p + 2C)`` attention and the LMM's
chunked form over ``C`` tokens.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.titans.mac import MAC
    >>> mac = MAC(d_model=16, num_heads=2, segment_size=4, chunk_size=2, num_persistent=2)
    >>> p = mac.init_params(jax.random.key(0))
    >>> ys, state = jax.jit(mac.apply)(p, mac.init_state(p), jnp.ones((10, 16)))
    >>> ys.shape
    (10, 16)
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_positive_int
from memjax.core.controls import check_controls, is_concrete
from memjax.core.spec import spec
from memjax.models.titans.lmm import LMMState, TitansLMM
from memjax.nn.attention import Attention, masked_attention
from memjax.nn.norms import rms_norm

__all__ = ["MAC", "MACState", "SegmentTrace", "init_gate", "init_gated_params", "memory_gate"]


def init_gate(key: jax.Array, d_model: int, dtype="float32") -> dict:
    """Params of :func:`memory_gate`: two RMSNorm scales and the output projection."""
    return {
        "norm_y": jnp.ones((d_model,), dtype),
        "norm_m": jnp.ones((d_model,), dtype),
        "out": jax.random.normal(key, (d_model, d_model), dtype) / math.sqrt(d_model),
    }


def init_gated_params(spec, key: jax.Array) -> dict:
    """``{"memory", "attention", "gate"}`` params of a memory + attention + :func:`memory_gate`
    spec (MAC, MAG): its ``lmm``, its ``attention`` and :func:`init_gate`, from one key."""
    k_mem, k_attn, k_gate = jax.random.split(key, 3)
    return {
        "memory": spec.lmm.init_params(k_mem),
        "attention": spec.attention.init_params(k_attn),
        "gate": init_gate(k_gate, spec.d_model, spec.lmm.dtype),
    }


def memory_gate(params: dict, y, m) -> jax.Array:
    r""":math:`(\operatorname{RMSNorm}_{\gamma_1}(y) \odot \sigma(\operatorname{RMSNorm}_{\gamma_2}
    (m)))\, W_O` — Titans' ⊗ (eqs. 25, 28; the RMSNorms are memjax's default)."""
    # x_times_x: the rounding form this gate was trained with (memjax.nn.norms)
    y = rms_norm(y, params["norm_y"], x_times_x=True)
    gated = y * jax.nn.sigmoid(rms_norm(m, params["norm_m"], x_times_x=True))
    return gated @ params["out"]


class MACState(NamedTuple):
    """MAC's state: the LMM state and the tail of the query projection's causal convolution."""

    memory: LMMState
    query_tail: jax.Array


class SegmentTrace(NamedTuple):
    """Intermediates of one segment (for tests and inspection), each ``(C, d_model)``:
    ``h`` the retrieved memory tokens (eq. 22), ``y`` the attention output (eq. 23) and ``m`` the
    read of the updated memory (eq. 25)."""

    h: jax.Array
    y: jax.Array
    m: jax.Array


@spec
class MAC:
    """Memory as a context (module doc). Unbatched: ``xs`` is ``(T, d_model)``.

    Args:
        d_model: input/output width.
        num_heads: heads of the attention and of the memory.
        segment_size: ``C``, tokens per segment (the attention's span).
        num_persistent: persistent tokens ``N_p`` in the attention context (eq. 19).
        chunk_size: the LMM's chunk size ``b`` (§3.2) inside a segment.
        depth: memory MLP depth ``L_M``.
        rope: rotary position embeddings in the attention (segment-local positions).
        memory: a full :class:`~memjax.models.titans.lmm.TitansLMM` spec to use instead of the one
            built from ``d_model, num_heads, chunk_size, depth`` (its ``num_persistent`` is set
            to 0; its ``d_model`` must match).
    """

    d_model: int
    num_heads: int = 2
    segment_size: int = 16
    num_persistent: int = 4
    chunk_size: int = 8
    depth: int = 2
    rope: bool = True
    memory: TitansLMM | None = None

    def __post_init__(self):
        check_positive_int("d_model", self.d_model)
        check_positive_int("segment_size", self.segment_size)
        if self.memory is not None and self.memory.d_model != self.d_model:
            raise ValueError(f"memory: expected d_model={self.d_model}, got {self.memory.d_model}")
        self.lmm  # noqa: B018 - validates the memory fields
        self.attention  # noqa: B018 - validates the attention fields

    @property
    def lmm(self) -> TitansLMM:
        base = self.memory or TitansLMM(
            self.d_model, self.num_heads, chunk_size=self.chunk_size, depth=self.depth
        )
        return dataclasses.replace(base, num_persistent=0)

    @property
    def attention(self) -> Attention:
        return Attention(
            self.d_model, self.num_heads, num_persistent=self.num_persistent, rope=self.rope
        )

    def init_params(self, key: jax.Array) -> dict:
        return init_gated_params(self, key)

    def init_state(self, params: dict, **controls) -> MACState:
        """The LMM's empty state (no persistent tokens in it) and a zero query tail; known
        controls are ignored."""
        check_controls(controls, where="MAC.init_state")
        memory = self.lmm.init_state(params["memory"])
        return MACState(memory, jnp.zeros_like(memory.conv_tail))

    # -- one segment ---------------------------------------------------------------------
    def retrieve(self, params: dict, state: MACState, segment):
        """Eqs. 21–22: ``(h, query_tail)`` — the memory before the segment read at its queries."""
        lmm, lp = self.lmm, params["memory"]
        _, _, q, tail = lmm.project(lp, state.query_tail, segment)
        reads = lmm.memory_read(state.memory, q)
        return lmm.output(lp, segment, reads), tail

    def attend(self, params: dict, segment, h) -> jax.Array:
        """Eq. 23: attention over ``[p] || h || S`` at the segment's positions (causal in ``h``
        and ``S``, the persistent tokens visible to all)."""
        attn, ap = self.attention, params["attention"]
        length = segment.shape[0]
        q, k, v = attn.project(ap, segment)
        _, hk, hv = attn.project(ap, h)
        pos = jnp.arange(length, dtype=jnp.int32)
        q, k, hk = attn.rotate(q, pos), attn.rotate(k, pos), attn.rotate(hk, pos)
        causal = pos[None, :] <= pos[:, None]
        keys, values = jnp.concatenate([hk, k]), jnp.concatenate([hv, v])
        mask = jnp.concatenate([causal, causal], axis=1)
        if self.num_persistent:
            _, pk, pv = attn.project(ap, ap["persistent"])
            keys, values = jnp.concatenate([pk, keys]), jnp.concatenate([pv, values])
            mask = jnp.concatenate([jnp.ones((length, self.num_persistent), bool), mask], 1)
        return attn.output(ap, masked_attention(q, keys, values, mask))

    def segment(self, params: dict, state: MACState, segment):
        """One segment ``(C', d_model)``, ``C' <= C``: ``(o, state, SegmentTrace)``."""
        lmm, lp = self.lmm, params["memory"]
        h, tail = self.retrieve(params, state, segment)
        y = self.attend(params, segment, h)
        reads, memory = lmm.memory_apply(lp, state.memory, y)  # eq. 24 (store) + per-token read
        m = lmm.output(lp, y, reads)
        o = memory_gate(params["gate"], y, m)  # eq. 25
        return o, MACState(memory, tail), SegmentTrace(h, y, m)

    # -- the layer -----------------------------------------------------------------------
    def apply(self, params: dict, state: MACState, xs, /, **controls):
        """``(ys, state)`` for ``xs`` ``(T, d_model)``: ``lax.scan`` over full segments, then the
        trailing partial segment. Known controls are ignored (unknown names raise).

        An eager call (no tracer among the inputs) runs a module-level ``jax.jit`` with the spec
        static, compiled once per spec and shapes (no re-trace of the scan per call)."""
        check_controls(controls, where="MAC.apply")
        check_array("xs", xs, shape=(None, self.d_model), floating=True)
        if is_concrete((params, state, xs)):
            return _mac_apply(self, params, state, xs)
        return self._apply(params, state, xs)

    def _apply(self, params: dict, state: MACState, xs):
        """The traced body of :meth:`apply`."""
        length, size = xs.shape[0], self.segment_size
        n, rest = divmod(length, size)
        outs = []
        if n:

            def body(carry, seg):
                o, carry, _ = self.segment(params, carry, seg)
                return carry, o

            segs = xs[: n * size].reshape(n, size, self.d_model)
            state, ys = jax.lax.scan(body, state, segs)
            outs.append(ys.reshape(n * size, self.d_model))
        if rest:
            o, state, _ = self.segment(params, state, xs[n * size :])
            outs.append(o)
        return jnp.concatenate(outs) if len(outs) > 1 else outs[0], state


@partial(jax.jit, static_argnums=0)
def _mac_apply(mac: MAC, params: dict, state: MACState, xs):
    """Jitted :meth:`MAC.apply` for eager calls (the spec static: one trace per spec and shapes)."""
    return mac._apply(params, state, xs)
