r"""Titans' neural long-term memory (LMM): Behrouz, Zhong & Mirrokni 2024, arXiv 2501.00663.

Two levels:

* :class:`~memjax.memories.titans.TitansMemory` (:mod:`memjax.memories.titans.memory`) —
  a :class:`memjax.core.Memory` over one head. The memory is an MLP
  (:class:`memjax.memories.titans.mlp.MemoryMLP`, depth :math:`L_M \ge 1`) whose **weights are the
  test-time state**; its initial weights :math:`W_0` are learned params. ``write`` is the exact
  recurrence (gradient at :math:`M_{t-1}`), Titans eqs. 12–14:

  .. math::

      S_t = \eta_t S_{t-1} - \theta_t \nabla\ell(M_{t-1}; k_t, v_t), \qquad
      M_t = (1-\alpha_t) M_{t-1} + S_t, \qquad \ell = c\lVert M(k) - v\rVert^2,

  and ``read`` is :math:`M^*(q)` (eq. 15). ``chunk`` stays the token loop (the protocol's
  default), because the paper's chunked form is a *different* recurrence for chunks > 1.

* :class:`TitansLMM` — the LMM as a sequence layer (:class:`memjax.core.SequenceLayer`):
  k, v, q projections (eq. 11, 15) with a causal depthwise convolution, SiLU and ℓ2-normalised
  q/k (§4.4), data-dependent gates :math:`\theta_t = \text{max\_lr}\,\sigma(x_t W_\theta + b)`,
  :math:`\eta_t, \alpha_t = \sigma(x_t W + b)` per token and head, ``num_heads`` memories by
  ``jax.vmap``, persistent memory tokens, and an output RMSNorm, sigmoid gate and projection.
  Its fused ``apply`` runs the paper's chunked **parallel form** (§3.2, eqs. 16–18) through the raw
  entry point :func:`memjax.memories.titans.parallel_memory` (closed form and dual-form reads),
  vmapped over heads: ``lax.scan`` over chunks with ``jax.checkpoint`` per chunk;
  ``reference_apply`` is the slow token-by-token loop of the same recurrence
  (:func:`memjax.memories.titans.recurrent_memory`) and ``decode`` its one-token step. The
  projections and output head are in :mod:`memjax.models.titans.projections`, the gates in
  :mod:`memjax.models.titans.gates`.

Options (memjax's, where the paper leaves a choice open): ``grad_point`` ``"chunk_start"``
(eq. 16, default) / ``"initial"`` (all gradients at the learned :math:`W_0`, titans-pytorch's
default); ``read_point`` ``"token"`` (:math:`y_t = M_t(q_t)`, default) / ``"chunk"`` (read the
chunk-start weights);
``gate_granularity`` ``"token"`` / ``"chunk"`` (all three gates from the mean input of each chunk,
shared by its tokens — the paper's LTI speed-up; the recurrence still steps every token; note
this uses the chunk's later tokens, so it is not causal within a chunk) / ``"chunk_step"``
(titans-pytorch's form, below); ``loss_reduction`` ``"sum"`` (eq. 12) / ``"half_sum"`` (App. C) /
``"mean"``; ``max_grad_norm`` (clip every per-token inner gradient's global norm; default 1.0);
``pre_norm`` (RMSNorm with learned scales on the input, one for storing and one for retrieving);
``output_gate`` ``True`` / ``"feature"`` (:math:`\sigma(x W_g)`, one gate per feature) /
``"head"`` (:math:`\sigma(x w_{g,h})`, one scalar per head) / ``False``.

**Two defaults the paper leaves open, chosen by measurement** (``experiments/titans`` README
§5). The memory is the paper's plain MLP (``residual_norm=False``; ``True`` adds TTT's and
titans-pytorch's ``LN(out)(1+γ) + x`` wrapper, which keeps outer training on associative recall
at chance), and the q/k/v convolution starts as torch's uniform draw plus an identity tap
(``conv_init="uniform_identity"``): on associative recall the uniform draw alone can stall
training, and on character language modelling the near-identity ``"identity"`` init trains
slowest. :func:`memjax.compat.titans_pytorch.titans_pytorch_lmm` sets the port's wrapper.

**titans-pytorch's form** (``gate_granularity="chunk_step"``;
:func:`memjax.compat.titans_pytorch.titans_pytorch_lmm` sets every option of the port at once and
:mod:`memjax.compat.titans_pytorch` converts its weights).
The memory steps **once per chunk** :math:`j` (tokens :math:`t \in j`):

.. math::

    S_j = \eta_j S_{j-1} - \sum_{t \in j} \theta_t u_t, \qquad
    M_j = (1 - \alpha_j) M_{j-1} + S_j,

with :math:`\theta_t = \text{max\_lr}\,\sigma(x_t W_\theta + b)` per token and
:math:`\eta_j, \alpha_j = \sigma(\bar x_j W + b)` from the chunk's mean input :math:`\bar x_j`.
This is *not* ``"chunk"`` (constant gates, but :math:`\eta` and :math:`1-\alpha` applied at each
of the chunk's :math:`C` tokens and :math:`S` added to :math:`M` at each token). It runs in the
same per-token closed form with :math:`\eta_j` placed on the chunk's first token (1 elsewhere),
:math:`\alpha_j` and the write :math:`M \leftarrow (1-\alpha)M + S` on its last token (no write
elsewhere), :math:`\theta_t` on every token (the memory's ``update="chunk"``). The weights after
token :math:`t` are then the chunk-start weights except after the chunk's last token, so
``read_point="token"`` is exactly the port's read: a token reads the weights from before its
chunk, the last token of a chunk the weights including its chunk
(:math:`y_t = M_{\lfloor (t+1)/C \rfloor}(q_t)`).

**Streaming.** The layer state carries the memory weights and momentum per head, the *anchor*
(weights at the start of the current chunk, the gradient point of eq. 16), the position inside
the current chunk (``offset``) and the convolution's tail. Chunks are aligned to absolute
positions in the stream, so with token gates ``apply`` over a sequence cut into pieces of any
sizes, state carried, equals ``apply`` over the whole sequence, and ``decode`` token by token
equals it too. With ``gate_granularity="chunk"`` or ``"chunk_step"`` this holds for pieces that
are multiples of ``chunk_size`` (a chunk's gates need all its tokens). A trailing partial chunk
is written into the momentum (not yet into the weights) with the gates of the tokens seen so far;
titans-pytorch instead caches the raw tokens of a partial chunk and stores them once the chunk is
complete, so its state differs after a partial chunk — its outputs for the call do not.

**Cost.** A call over ``T`` tokens at offset ``o`` runs ``ceil((T + C - 1) / C)`` chunks (at most
one more than ``T / C``); per chunk and head the dual form costs ``O(C·|W| + C²·Σ_l (d_in_l +
d_out_l))`` flops and holds ``O(C·Σ_l (d_in_l + d_out_l) + C²)`` intermediates, plus the carried
state (3 copies of the weights per head). Reverse mode stores one carry per chunk (remat), and
with ``gate_granularity="chunk_step"`` and ``backward="autodiff"`` also each chunk's
gradient-factor matmul outputs (``O(C·Σ_l d_out_l)``, so the backward does not re-run them).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.titans import TitansLMM
    >>> layer = TitansLMM(d_model=16, num_heads=2, chunk_size=4, num_persistent=2)
    >>> params = layer.init_params(jax.random.key(0))
    >>> state = layer.init_state(params)
    >>> ys, state = layer.apply(params, state, jnp.ones((10, 16)))
    >>> ys.shape
    (10, 16)
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice, check_heads, check_positive_int
from memjax.core.controls import check_controls, in_range, is_concrete
from memjax.core.spec import spec
from memjax.memories.gates import GATES, logit
from memjax.memories.titans import (
    ChunkState,
    TitansMemory,
    parallel_memory,
    recurrent_memory,
)
from memjax.memories.titans.mlp import (
    LOSS_REDUCTIONS,
    MemoryMLP,
    check_max_grad_norm,
    gradient_factors,
)
from memjax.memories.titans.parallel import chunk_coefficients, parallel_chunk
from memjax.memories.titans.update import GRAD_POINTS, READ_POINTS, ChunkCarry, sequence_gates
from memjax.models.titans import projections
from memjax.models.titans.gates import layer_gates
from memjax.nn.activations import ACTIVATIONS
from memjax.nn.conv1d import init_conv

__all__ = ["CONV_INITS", "GRANULARITIES", "OUTPUT_GATES", "LMMState", "TitansLMM"]

GRANULARITIES = ("token", "chunk", "chunk_step")
CONV_INITS = ("identity", "uniform", "uniform_identity")
OUTPUT_GATES = ("feature", "head", "none")

_HEADS = ChunkState(0, 0, 0, None)  # vmap axes of the per-head memory state


class LMMState(NamedTuple):
    """:class:`TitansLMM` state. Memory leaves have a leading head axis.

    ``weights``/``momentum``: :math:`M_t, S_t`; ``anchor``: the weights at the start of the
    current chunk (the gradient point of eq. 16 and the ``read_point="chunk"`` weights);
    ``offset``: tokens already seen in the current chunk (int32); ``conv_tail``: the last
    ``conv_width - 1`` pre-convolution projections.
    """

    weights: dict
    momentum: dict
    anchor: dict
    offset: jax.Array
    conv_tail: jax.Array


def _check_output_gate(value) -> None:
    if isinstance(value, bool) or (isinstance(value, str) and value in OUTPUT_GATES):
        return
    raise ValueError(f"output_gate: expected True, False or one of {OUTPUT_GATES}, got {value!r}")


@spec
class TitansLMM:
    r"""The Titans LMM sequence layer (module doc). Unbatched: ``xs`` is ``(T, d_model)``.

    Args:
        d_model: input/output size.
        num_heads: independent memories (vmapped).
        d_head: per-head key/value size (default ``d_model // num_heads``).
        chunk_size: ``b`` of §3.2 (gradients of a chunk at its start weights).
        depth, expansion, activation, bias, residual_norm: the memory MLP per head.
        loss_reduction: ``"sum"`` (eq. 12), ``"half_sum"`` or ``"mean"``.
        max_grad_norm: clip each per-token inner gradient's norm (``None``: off).
        max_lr, theta_init, eta_init, alpha_init: gate ceiling and initial gate values.
        gate_granularity: ``"token"`` (θ, η, α per token), ``"chunk"`` (all three from the
            chunk's mean input, the recurrence still steps per token) or ``"chunk_step"``
            (titans-pytorch: θ per token, η and α from the chunk's mean input, momentum and
            weights step once per chunk; module doc).
        grad_point: ``"chunk_start"`` (eq. 16) or ``"initial"`` (learned :math:`W_0`).
        read_point: ``"token"`` (:math:`M_t(q_t)`) or ``"chunk"`` (chunk-start weights).
            With ``gate_granularity="chunk_step"``, ``"token"`` is titans-pytorch's read.
        conv_width: causal depthwise conv width after the q/k/v projections (0: off).
        conv_init: the conv's initial weights. ``"uniform_identity"`` (default):
            :math:`U(-1/\sqrt{W}, 1/\sqrt{W})` plus 1 on the current token's tap;
            ``"uniform"``: the uniform draw alone (``torch.nn.Conv1d``'s default, as Mamba /
            Gated DeltaNet ports); ``"identity"``: 1 on the current tap plus
            :math:`\mathcal{N}(0, 0.01/W)` noise (:func:`memjax.nn.conv1d.init_conv`, as the
            gated delta rule's layer). The paper is silent; the default is the one that trained
            well on both recall and language modelling (module doc).
        qkv_silu: SiLU on q, k, v. qk_l2norm: ℓ2-normalise q and k.
        num_persistent: learned persistent tokens written into memory by ``init_state``
            (``[p] || x``, §3.3; controls ``theta=``, ``eta=``, ``alpha=`` of ``init_state``
            override their gates).
        pre_norm: RMS-normalise the input with two learned scales (params ``pre_norm.store``,
            ``pre_norm.retrieve``): :math:`x^s = \mathrm{RMS}(x) \odot s_{store}` feeds k, v and
            the θ, η, α gates, :math:`x^r = \mathrm{RMS}(x) \odot s_{retrieve}` feeds q and the
            output gate (titans-pytorch's ``pre_rmsnorm``), with
            :math:`\mathrm{RMS}(x) = x / \sqrt{\mathrm{mean}(x^2) + \epsilon}`.
        pre_norm_eps: ``ε`` of ``pre_norm``; ``None``: the machine epsilon of ``dtype`` (as
            ``torch.nn.RMSNorm``).
        output_norm: per-head RMSNorm with learned scale.
        output_gate: ``True`` or ``"feature"``: :math:`y \odot \sigma(x W_g)`, ``W_g`` of shape
            ``(d_model, H d_head)``; ``"head"``: each head's read times the scalar
            :math:`\sigma(x \cdot w_{g,h})`, ``W_g`` of shape ``(d_model, H)`` (titans-pytorch's
            retrieve gate); ``False`` or ``"none"``: no gate. ``x`` is :math:`x^r` with
            ``pre_norm``.
        remat: ``jax.checkpoint`` each chunk.
        backward: ``"autodiff"`` (default) or ``"manual"``: the chunk body's hand-written
            backward (see :func:`~memjax.memories.titans.parallel_memory`); same gradients.
        dtype: dtype of the params.
    """

    d_model: int
    num_heads: int = 2
    d_head: int | None = None
    chunk_size: int = 16
    depth: int = 2
    expansion: int = 4
    activation: str = "gelu"
    bias: bool = False
    residual_norm: bool = False
    loss_reduction: str = "sum"
    max_grad_norm: float | None = 1.0
    max_lr: float = 1.0
    theta_init: float = 0.1
    eta_init: float = 0.9
    alpha_init: float = 0.01
    gate_granularity: str = "token"
    grad_point: str = "chunk_start"
    read_point: str = "token"
    conv_width: int = 4
    conv_init: str = "uniform_identity"
    qkv_silu: bool = True
    qk_l2norm: bool = True
    num_persistent: int = 4
    pre_norm: bool = False
    pre_norm_eps: float | None = None
    output_norm: bool = True
    output_gate: bool | str = True
    remat: bool = True
    backward: str = "autodiff"
    dtype: str = "float32"

    def __post_init__(self):
        check_heads(self.d_model, self.num_heads, self.d_head)
        check_positive_int("chunk_size", self.chunk_size)
        check_choice("backward", self.backward, ("autodiff", "manual"))
        check_choice("loss_reduction", self.loss_reduction, LOSS_REDUCTIONS)
        check_choice("gate_granularity", self.gate_granularity, GRANULARITIES)
        check_choice("grad_point", self.grad_point, GRAD_POINTS)
        check_choice("read_point", self.read_point, READ_POINTS)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("conv_init", self.conv_init, CONV_INITS)
        check_max_grad_norm(self.max_grad_norm)
        if not self.max_lr > 0:
            raise ValueError(f"max_lr: expected a positive number, got {self.max_lr}")
        if not 0.0 < self.theta_init <= self.max_lr:
            raise ValueError(f"theta_init: expected a value in (0, max_lr], got {self.theta_init}")
        in_range("eta_init", 0.0, 1.0)(self.eta_init)
        in_range("alpha_init", 0.0, 1.0)(self.alpha_init)
        for name in ("conv_width", "num_persistent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
        if not isinstance(self.pre_norm, bool):
            raise ValueError(f"pre_norm: expected True or False, got {self.pre_norm!r}")
        eps = self.pre_norm_eps
        if eps is not None and (
            isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0
        ):
            raise ValueError(f"pre_norm_eps: expected None or a positive number, got {eps!r}")
        _check_output_gate(self.output_gate)
        self.mlp  # noqa: B018 - validates the MLP fields

    # -- configuration -------------------------------------------------------------------
    @property
    def head_size(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.num_heads

    @property
    def mlp(self) -> MemoryMLP:
        d = self.head_size
        return MemoryMLP(
            d, d, self.depth, self.expansion, self.activation, self.bias, self.residual_norm
        )

    @property
    def memory(self) -> TitansMemory:
        """The matching per-head :class:`TitansMemory` (params ``{"init": W0}``)."""
        d = self.head_size
        return TitansMemory(
            d,
            d,
            self.depth,
            self.expansion,
            self.activation,
            self.bias,
            self.residual_norm,
            loss=self.loss_reduction,
            max_grad_norm=self.max_grad_norm,
            max_lr=self.max_lr,
            dtype=self.dtype,
        )

    @property
    def _width(self) -> int:
        return 3 * self.num_heads * self.head_size

    @property
    def output_gate_kind(self) -> str:
        """``output_gate`` as one of ``"feature"``, ``"head"``, ``"none"``."""
        if isinstance(self.output_gate, bool):
            return "feature" if self.output_gate else "none"
        return self.output_gate

    # -- params and state ----------------------------------------------------------------
    def init_params(self, key: jax.Array) -> dict:
        """Random params. An eager call runs one jitted program per spec (compiled or loaded
        once, not one program per array op); under a caller's trace it is traced inline."""
        if is_concrete(key):
            return _init_params(self, key)
        return self._init_params_body(key)

    def _init_params_body(self, key: jax.Array) -> dict:
        d, hd, h = self.d_model, self.num_heads * self.head_size, self.num_heads
        keys = iter(jax.random.split(key, 10))
        normal = lambda shape, std: std * jax.random.normal(next(keys), shape, self.dtype)
        params: dict = {"qkv": {"w": normal((d, self._width), 1 / math.sqrt(d))}}
        if self.conv_width:
            shape = (self.conv_width, self._width)
            if self.conv_init == "identity":
                w = init_conv(next(keys), *shape, self.dtype)
            else:
                bound = 1 / math.sqrt(self.conv_width)
                w = jax.random.uniform(next(keys), shape, self.dtype, -bound, bound)
                if self.conv_init == "uniform_identity":
                    w = w.at[-1].add(1.0)
            params["conv"] = {"w": w, "b": jnp.zeros((self._width,), self.dtype)}
        start = {
            "theta": self.theta_init / self.max_lr,
            "eta": self.eta_init,
            "alpha": self.alpha_init,
        }
        params["gates"] = {
            name: {"w": normal((d, h), 0.02), "b": jnp.full((h,), logit(start[name]), self.dtype)}
            for name in GATES
        }
        params["memory"] = jax.vmap(lambda k: self.mlp.init(k, self.dtype))(
            jax.random.split(next(keys), h)
        )
        if self.num_persistent:
            params["persistent"] = normal((self.num_persistent, d), 1.0)
        if self.pre_norm:
            params["pre_norm"] = {
                "store": jnp.ones((d,), self.dtype),
                "retrieve": jnp.ones((d,), self.dtype),
            }
        if self.output_norm:
            params["out_norm"] = jnp.ones((h, self.head_size), self.dtype)
        gate = self.output_gate_kind
        if gate != "none":
            width = hd if gate == "feature" else h
            params["out_gate"] = {"w": normal((d, width), 1 / math.sqrt(d))}
        params["out"] = {"w": normal((hd, d), 1 / math.sqrt(hd))}
        return params

    def empty_state(self, params: dict) -> LMMState:
        """The state before any token (and before the persistent tokens)."""
        w0 = params["memory"]
        dtype = params["qkv"]["w"].dtype
        return LMMState(
            weights=w0,
            momentum=jax.tree_util.tree_map(jnp.zeros_like, w0),
            anchor=w0,
            offset=jnp.zeros((), jnp.int32),
            conv_tail=jnp.zeros((max(self.conv_width - 1, 0), self._width), dtype),
        )

    def init_state(self, params: dict, **controls) -> LMMState:
        """The empty state after writing the persistent tokens ``[p]`` (Titans' ``[p] || x``).

        Controls ``theta=``, ``eta=``, ``alpha=`` (a scalar, ``(num_persistent,)`` or
        ``(num_persistent, H)``) override the gates of that write, as in :meth:`memory_apply`.
        """
        check_controls(controls, where="TitansLMM.init_state")
        if is_concrete((params, controls)):  # an eager call: the cached jit
            return _init_state(self, params, controls)
        return _init_state_body(self, params, controls)  # inline into the caller's trace

    def persistent_tokens(self, params: dict):
        """The learned persistent tokens ``(num_persistent, d_model)``, or ``None`` without."""
        return params["persistent"] if self.num_persistent else None

    def prefix_apply(self, params: dict, /, **controls):
        """``(ys, state)``: the layer's outputs for its persistent tokens ``[p]`` and the state
        after them (the state of :meth:`init_state`; ``ys`` is ``(num_persistent, d_model)``).
        Without persistent tokens: ``(None, init_state(params))``."""
        check_controls(controls, where="TitansLMM.prefix_apply")
        if not self.num_persistent:
            return None, self.init_state(params)
        return self.apply(params, self.empty_state(params), params["persistent"], **controls)

    # -- pieces --------------------------------------------------------------------------
    def normed_input(self, params: dict, xs, role: str):
        """:func:`memjax.models.titans.projections.normed_input`: ``xs`` through the
        ``pre_norm`` of ``role`` (``"store"`` or ``"retrieve"``), ``xs`` itself without."""
        return projections.normed_input(self, params, xs, role)

    def project(self, params: dict, conv_tail, xs):
        """:func:`memjax.models.titans.projections.project`: ``(k, v, q, new_tail)``, each of
        k, v, q ``(T, H, d_head)`` (eqs. 11, 15, conv, SiLU, ℓ2)."""
        return projections.project(self, params, conv_tail, xs)

    def output(self, params, xs, ys):
        """:func:`memjax.models.titans.projections.output`: output RMSNorm, gate and
        projection of the per-head reads ``ys`` ``(T, H, d_head)``."""
        return projections.output(self, params, xs, ys)

    def _check_xs(self, xs):
        check_array("xs", xs, shape=(None, self.d_model), floating=True)
        if xs.shape[0] == 0:
            raise ValueError("xs: expected at least one token, got shape (0, d_model)")

    # -- the memory over a sequence ------------------------------------------------------
    def memory_apply(self, params, state: LMMState, xs, /, *, reference=False, **controls):
        """Per-head memory reads ``(T, H, d_head)`` and the new state (no output projection).

        ``reference=False``: the parallel chunked form
        (:func:`memjax.memories.titans.parallel_memory`); ``True``: the token-by-token loop
        (:func:`memjax.memories.titans.recurrent_memory`), both vmapped over heads. Controls
        ``theta=``, ``eta=``, ``alpha=`` (scalar, ``(T,)`` or ``(T, H)``) override the gates;
        other known controls are ignored, unknown names raise.

        An eager call (no tracer among the inputs) runs a module-level ``jax.jit`` with the spec
        static, compiled once per spec and input shapes, so repeated eager calls do not retrace;
        under a caller's trace (``jit``, ``grad``, ``vmap``, ``scan``) the computation is traced
        inline into it.
        """
        check_controls(controls, where="TitansLMM.memory_apply", also=("reference",))
        self._check_xs(xs)
        if is_concrete((params, state, xs, controls)):  # an eager call: the cached jit
            return _memory_apply(self, params, state, xs, controls, bool(reference))
        return self._memory_body(params, state, xs, controls, bool(reference))

    def memory_read(self, state: LMMState, queries) -> jax.Array:
        """:math:`M^*(q)`: every head's memory at ``state.weights`` applied to ``queries``
        ``(T, H, d_head)``; returns ``(T, H, d_head)`` (no update)."""
        check_array("queries", queries, shape=(None, self.num_heads, self.head_size))
        mlp = self.mlp
        per_head = lambda w, q: jax.vmap(lambda x: mlp(w, x))(q)
        return jax.vmap(per_head, in_axes=(0, 1), out_axes=1)(state.weights, queries)

    def _memory_body(self, params, state: LMMState, xs, controls, reference: bool):
        """The traced body of :meth:`memory_apply`."""
        k, v, q, tail = self.project(params, state.conv_tail, xs)
        theta, eta, alpha = layer_gates(self, params, state.offset, xs, controls)
        options = dict(
            chunk_size=self.chunk_size,
            grad_point=self.grad_point,
            read_point=self.read_point,
            update="chunk" if self.gate_granularity == "chunk_step" else "token",
        )
        if reference:
            entry = recurrent_memory
        else:
            entry = partial(parallel_memory, remat=self.remat, backward=self.backward)
        initial = params["memory"] if self.grad_point == "initial" else None
        memory = self.memory

        def one_head(head_state, k, v, q, th, et, al, w0):
            return entry(memory, head_state, k, v, q, th, et, al, initial_weights=w0, **options)

        heads = ChunkState(state.weights, state.momentum, state.anchor, state.offset)
        ys, new = jax.vmap(one_head, in_axes=(_HEADS, 1, 1, 1, 1, 1, 1, 0), out_axes=(1, _HEADS))(
            heads, k, v, q, theta, eta, alpha, initial
        )
        return ys, LMMState(new.weights, new.momentum, new.anchor, new.offset, tail)

    # -- the layer -----------------------------------------------------------------------
    def apply(self, params, state: LMMState, xs, /, **controls):
        """``(ys, state)`` for ``xs`` ``(T, d_model)`` through the chunked parallel form."""
        check_controls(controls, where="TitansLMM.apply")
        reads, state = self.memory_apply(params, state, xs, **controls)
        return self.output(params, xs, reads), state

    def reference_apply(self, params, state: LMMState, xs, /, **controls):
        """The same map as :meth:`apply`, by the slow token-by-token recurrence."""
        check_controls(controls, where="TitansLMM.reference_apply")
        reads, state = self.memory_apply(params, state, xs, reference=True, **controls)
        return self.output(params, xs, reads), state

    def decode(self, params, state: LMMState, x, /, **controls):
        """One token ``x`` (``(d_model,)``) → ``(y, state)`` by the token recurrence."""
        check_controls(controls, where="TitansLMM.decode")
        check_array("x", x, shape=(self.d_model,), floating=True)
        controls = {
            n: (c[None] if hasattr(c, "ndim") and c.ndim >= 1 else c) for n, c in controls.items()
        }
        ys, state = self.reference_apply(params, state, x[None], **controls)
        return ys[0], state


@partial(jax.jit, static_argnums=(0, 5))
def _memory_apply(layer: TitansLMM, params, state: LMMState, xs, controls, reference: bool):
    """Jitted :meth:`TitansLMM.memory_apply` (the spec static: one trace per spec and shapes)."""
    return layer._memory_body(params, state, xs, controls, reference)


@partial(jax.jit, static_argnums=0)
def _init_params(layer: TitansLMM, key: jax.Array) -> dict:
    """Jitted body of :meth:`TitansLMM.init_params`."""
    return layer._init_params_body(key)


def _init_state_body(layer: TitansLMM, params: dict, controls) -> LMMState:
    """The body of :meth:`TitansLMM.init_state`."""
    state = layer.empty_state(params)
    if layer.num_persistent:
        state = _write_prefix(layer, params, state, params["persistent"], controls)
    return state


_init_state = jax.jit(_init_state_body, static_argnums=0)
"""Jitted :func:`_init_state_body` (one compile instead of op-by-op dispatch)."""


def _write_prefix(layer: TitansLMM, params: dict, state: LMMState, xs, controls) -> LMMState:
    r"""The state after writing ``xs`` from the empty ``state`` (offset 0), without reads.

    The same closed form as :meth:`TitansLMM.memory_apply`'s parallel form (chunks of
    ``chunk_size`` aligned to the stream start, every gradient of a chunk at its start weights,
    eqs. 16–18, through :func:`memjax.memories.titans.parallel_chunk`), but with the offset known
    to be 0 the prefix needs only ``ceil(P / C)`` chunks — one, straight-line, for the usual
    ``P <= C`` — and no reads, so ``init_state`` under ``jax.grad`` adds no second scan over
    chunks to the program (it halved the compile time of a training step).
    """
    length, size = xs.shape[0], layer.chunk_size
    k, v, _, tail = layer.project(params, state.conv_tail, xs)
    theta, eta, alpha = layer_gates(layer, params, 0, xs, controls)
    n = -(-length // size)
    total = n * size
    pad = lambda a: jnp.concatenate([a, jnp.zeros((total - length, *a.shape[1:]), a.dtype)])
    pos = jnp.arange(total)
    active = pos < length
    complete = (jnp.arange(n) + 1) * size <= length
    update = "chunk" if layer.gate_granularity == "chunk_step" else "token"
    mlp, memory = layer.mlp, layer.memory
    initial = params["memory"] if layer.grad_point == "initial" else None

    def one_head(carry, k, v, theta, eta, alpha, w0):
        theta, eta, alpha, writes = sequence_gates(
            pad(theta), pad(eta), pad(alpha), pos, active, chunk_size=size, update=update
        )
        chunked = lambda a: a.reshape(n, size, *a.shape[1:])
        coefs = jax.vmap(chunk_coefficients)(*map(chunked, (theta, eta, alpha, writes)))

        def chunk(c, xs):
            k, v, coef, done = xs
            point = c.anchor if w0 is None else w0
            factors = gradient_factors(mlp, memory.loss, memory.max_grad_norm, point, k, v)
            _, c = parallel_chunk(mlp, c, k, coef, done, factors, read_point="chunk")
            return c, None

        xs = (chunked(pad(k)), chunked(pad(v)), coefs, complete)
        if n == 1:
            return chunk(carry, jax.tree_util.tree_map(lambda a: a[0], xs))[0]
        return jax.lax.scan(chunk, carry, xs)[0]

    carry = ChunkCarry(state.weights, state.momentum, state.anchor)
    new = jax.vmap(one_head, in_axes=(0, 1, 1, 1, 1, 1, 0))(carry, k, v, theta, eta, alpha, initial)
    offset = jnp.asarray(length % size, jnp.int32)
    return LMMState(new.weights, new.momentum, new.anchor, offset, tail)
