r"""The Titans memory update (arXiv 2501.00663 eqs. 8–14), written once.

One token :math:`t` with key :math:`k_t`, value :math:`v_t` and gates :math:`\theta_t, \eta_t,
\alpha_t` moves the memory weights :math:`M` and their momentum ("surprise") :math:`S`:

.. math::

    u_t = \mathrm{clip}\big(\nabla_M \ell(M_{t'}; k_t, v_t)\big), \qquad
    S_t = \eta_t S_{t-1} - \theta_t u_t, \qquad
    M_t = (1 - \alpha_t) M_{t-1} + S_t,

with the associative loss :math:`\ell(M; k, v) = c\lVert M(k) - v\rVert^2` (eq. 12; ``c`` by
``loss``, :func:`memjax.memories.titans.mlp.loss_scale`), the momentum of eqs. 10/13, the forget
gate of eqs. 9/13 and the gradient's global norm clipped to ``max_grad_norm``. The *gradient
point* :math:`M_{t'}` is :math:`M_{t-1}` for the exact recurrence, the weights at the start of the
token's chunk for the paper's chunked form (§3.2, eq. 16), or the learned initial weights.

:func:`token_update` is the only place this update is written. The exact recurrence uses it token
by token (:meth:`TitansMemory.write <memjax.memories.titans.memory.TitansMemory.write>`,
:func:`token_step` and :func:`memjax.memories.titans.memory.recurrent_memory`); the chunked
parallel form (:func:`memjax.memories.titans.parallel.parallel_memory`) is its closed form over a
chunk, and is tested equal to the token loop.

**Sequences and chunks.** Over a sequence the state is a :class:`ChunkState`: the weights, the
momentum, the *anchor* (the weights at the start of the current chunk) and the *offset* (tokens
already seen in the current chunk). Chunks of ``chunk_size`` tokens are aligned to absolute stream
positions, so a sequence cut into pieces, state carried, equals the whole. :func:`sequence_gates`
gives every token its gates and its write flag for the two update schedules:

* ``update="token"`` (the paper): every token applies :math:`\eta_t`, :math:`\alpha_t` and writes
  :math:`S_t` into :math:`M_t`;
* ``update="chunk"`` (titans-pytorch's schedule): the memory steps once per chunk :math:`j`,
  :math:`S_j = \eta_j S_{j-1} - \sum_{t\in j}\theta_t u_t`,
  :math:`M_j = (1-\alpha_j) M_{j-1} + S_j`, with :math:`\eta_j` read at the chunk's first
  token and :math:`\alpha_j` (and the write) at its last token; the same per-token recurrence
  with :math:`\eta = 1` and :math:`\alpha = 0` elsewhere and no write before the chunk's last
  token.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.titans.mlp import MemoryMLP
    >>> from memjax.memories.titans.update import token_update
    >>> mlp = MemoryMLP(d_in=2, d_out=1, depth=1)
    >>> w = {"layers": ({"w": jnp.zeros((2, 1))},)}
    >>> s = jax.tree_util.tree_map(jnp.zeros_like, w)
    >>> w, s = token_update(mlp, "half_sum", None, w, s, w, jnp.array([1.0, 0.0]), jnp.ones(1),
    ...                     0.5, 0.0, 0.0)
    >>> w["layers"][0]["w"][:, 0]  # the delta rule: W + θ (v - W k) kᵀ
    Array([0.5, 0. ], dtype=float32)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice, check_positive_int, is_scalar_like
from memjax.core.trees import tree_where
from memjax.memories.titans.mlp import MemoryMLP, loss_gradient

__all__ = [
    "GRAD_POINTS",
    "READ_POINTS",
    "UPDATES",
    "ChunkCarry",
    "ChunkState",
    "TitansState",
    "as_chunk_state",
    "check_sequence_options",
    "sequence_gates",
    "token_gates",
    "token_step",
    "token_update",
]

GRAD_POINTS = ("chunk_start", "initial")
READ_POINTS = ("token", "chunk")
UPDATES = ("token", "chunk")


class TitansState(NamedTuple):
    """One head's test-time state: the memory MLP's weights and their momentum (same pytree)."""

    weights: dict
    momentum: dict


class ChunkCarry(NamedTuple):
    """One head's memory carry: weights, momentum, and the anchor (weights at the chunk start)."""

    weights: dict
    momentum: dict
    anchor: dict


class ChunkState(NamedTuple):
    """One head's state over a sequence (module doc): :class:`ChunkCarry` plus ``offset``, the
    tokens already seen in the current chunk (an int32 scalar in ``[0, chunk_size)``)."""

    weights: dict
    momentum: dict
    anchor: dict
    offset: jax.Array


def as_chunk_state(state) -> ChunkState:
    """A :class:`ChunkState` from a memory weights pytree (zero momentum), a :class:`TitansState`
    or a :class:`ChunkState` (returned as is); the anchor of a new chunk state is its weights and
    its offset 0."""
    if isinstance(state, ChunkState):
        return state
    if isinstance(state, TitansState):
        weights, momentum = state
    elif isinstance(state, dict) and "layers" in state:
        weights, momentum = state, jax.tree_util.tree_map(jnp.zeros_like, state)
    else:
        raise TypeError(
            "state: expected the memory weights ({'layers': ...}), a TitansState or a ChunkState, "
            f"got {type(state).__name__}"
        )
    return ChunkState(weights, momentum, weights, jnp.zeros((), jnp.int32))


def check_sequence_options(
    chunk_size: int, grad_point: str, read_point: str, update: str, initial_weights
) -> None:
    """Raise naming the argument unless the options of a sequence entry point are valid."""
    check_positive_int("chunk_size", chunk_size)
    check_choice("grad_point", grad_point, GRAD_POINTS)
    check_choice("read_point", read_point, READ_POINTS)
    check_choice("update", update, UPDATES)
    if grad_point == "initial" and initial_weights is None:
        raise ValueError('initial_weights: grad_point="initial" needs the initial weights')


def _per_token(name: str, value, length: int, dtype) -> jax.Array:
    if is_scalar_like(value):
        return jnp.full((length,), value, dtype)
    check_array(name, value, shape=(length,))
    return value


def sequence_gates(theta, eta, alpha, positions, active, *, chunk_size: int, update: str):
    r"""``(theta, eta, alpha, writes)`` per token at stream ``positions`` (module doc).

    Inactive tokens (``active`` false) get :math:`\theta = 0`, :math:`\eta = 1`,
    :math:`\alpha = 0` and no write, so they leave the state unchanged. With ``update="chunk"``
    :math:`\eta` is kept at a chunk's first token, :math:`\alpha` and the write at its last.
    """
    writes = eta_on = alpha_on = active
    if update == "chunk":
        eta_on = active & (positions % chunk_size == 0)
        writes = alpha_on = active & (positions % chunk_size == chunk_size - 1)
    theta = jnp.where(active, theta, 0.0)
    eta = jnp.where(eta_on, eta, 1.0)
    alpha = jnp.where(alpha_on, alpha, 0.0)
    return theta, eta, alpha, writes


def token_gates(theta, eta, alpha, length: int, dtype) -> tuple:
    """``theta``, ``eta``, ``alpha`` as ``(length,)`` arrays (scalars broadcast; a wrong shape
    raises naming the gate)."""
    return tuple(
        _per_token(name, value, length, dtype)
        for name, value in (("theta", theta), ("eta", eta), ("alpha", alpha))
    )


def token_update(
    mlp: MemoryMLP,
    loss: str,
    max_grad_norm,
    weights,
    momentum,
    point,
    key,
    value,
    theta,
    eta,
    alpha,
    write=True,
):
    r"""One token of the update (module doc): ``(M_t, S_t)`` from ``(M_{t-1}, S_{t-1})``.

    The gradient is taken at the weights ``point`` (:math:`M_{t'}`); ``write`` (a boolean, default
    on) says whether :math:`S_t` enters the weights, :math:`M_t = (1-\alpha_t) M_{t-1} + S_t`, or
    the weights stay :math:`M_{t-1}` (``update="chunk"`` writes only at a chunk's last token).
    """
    u = loss_gradient(mlp, loss, max_grad_norm, point, key, value)
    momentum = jax.tree_util.tree_map(
        lambda s, g: (eta * s - theta * g).astype(s.dtype), momentum, u
    )
    if write is True:
        step = lambda w, s: ((1.0 - alpha) * w + s).astype(w.dtype)
    else:
        step = lambda w, s: jnp.where(write, (1.0 - alpha) * w + s, w).astype(w.dtype)
    return jax.tree_util.tree_map(step, weights, momentum), momentum


def token_step(
    mlp: MemoryMLP,
    loss: str,
    max_grad_norm,
    init_weights,
    carry: ChunkCarry,
    key,
    value,
    query,
    theta,
    eta,
    alpha,
    ends_chunk,
    write=True,
    *,
    grad_point: str = "chunk_start",
    read_point: str = "token",
):
    """One token of the chunked recurrence by :func:`token_update`, then a read: ``(y, carry)``.

    The gradient point is the anchor (``"chunk_start"``) or ``init_weights`` (``"initial"``);
    the read is ``M_t(q_t)`` (``"token"``) or ``anchor(q_t)`` (``"chunk"``); when ``ends_chunk``
    the anchor moves to ``M_t``. With an anchor refreshed every token this is the exact recurrence
    :meth:`TitansMemory.write <memjax.memories.titans.memory.TitansMemory.write>` followed by a
    read.
    """
    weights, momentum, anchor = carry
    point = anchor if grad_point == "chunk_start" else init_weights
    weights, momentum = token_update(
        mlp, loss, max_grad_norm, weights, momentum, point, key, value, theta, eta, alpha, write
    )
    y = mlp(weights if read_point == "token" else anchor, query)
    anchor = tree_where(ends_chunk, weights, anchor)
    return y, ChunkCarry(weights, momentum, anchor)
