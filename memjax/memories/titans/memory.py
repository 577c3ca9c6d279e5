r"""Titans' memory over one head (Behrouz, Zhong & Mirrokni 2024, arXiv 2501.00663).

A :class:`memjax.core.Memory` whose state is an MLP's weights
(:class:`memjax.memories.titans.mlp.MemoryMLP`, depth :math:`L_M \ge 1`); its initial weights
:math:`W_0` are learned params. ``write`` is the exact recurrence (gradient at :math:`M_{t-1}`),
Titans eqs. 12–14:

.. math::

    S_t = \eta_t S_{t-1} - \theta_t \nabla\ell(M_{t-1}; k_t, v_t), \qquad
    M_t = (1-\alpha_t) M_{t-1} + S_t, \qquad \ell = c\lVert M(k) - v\rVert^2,

and ``read`` is :math:`M^*(q)` (eq. 15); the update is
:func:`memjax.memories.titans.update.token_update`. ``chunk`` stays the token loop (the
protocol's default), because the paper's chunked form is a *different* recurrence for chunks > 1.

:func:`recurrent_memory` is the raw token-by-token entry point over a whole sequence, with the
chunked recurrence's options (gradient point at the chunk start, reads of the chunk-start
weights, titans-pytorch's once-per-chunk update); it is the slow, obviously-correct reference of
the chunked parallel form :func:`memjax.memories.titans.parallel.parallel_memory` and takes the
same arguments. The sequence layer with projections, gates and persistent tokens is
:class:`memjax.models.titans.TitansLMM`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.titans.memory import TitansMemory, recurrent_memory
    >>> memory = TitansMemory(d_key=4, d_value=4, depth=1, residual_norm=False)
    >>> params = memory.init_params(jax.random.key(0))
    >>> state = memory.write(params, memory.init_state(params), jnp.ones(4), jnp.zeros(4))
    >>> memory.read(params, state, jnp.ones(4)).shape
    (4,)
    >>> ks = jax.random.normal(jax.random.key(1), (5, 4))
    >>> reads, seq = recurrent_memory(memory, params["init"], ks, ks, ks, 0.1, 0.9, 0.01)
    >>> reads.shape, int(seq.offset)
    ((5, 4), 0)
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice
from memjax.core.controls import check_controls, in_range
from memjax.core.protocol import Memory
from memjax.core.spec import spec
from memjax.memories.gates import GATES, check_gated, init_key_gates, key_gates
from memjax.memories.titans.mlp import LOSS_REDUCTIONS, MemoryMLP, check_max_grad_norm
from memjax.memories.titans.update import (
    ChunkCarry,
    ChunkState,
    TitansState,
    as_chunk_state,
    check_sequence_options,
    sequence_gates,
    token_gates,
    token_step,
    token_update,
)

__all__ = [
    "TitansMemory",
    "TitansState",
    "check_sequence_inputs",
    "check_weights",
    "recurrent_memory",
]


@spec
class TitansMemory(Memory):
    """The Titans memory over one head (module doc): an MLP whose weights are the state.

    Args:
        d_key: key/query size.
        d_value: value size.
        depth, expansion, activation, bias, residual_norm: the memory MLP
            (:class:`~memjax.memories.titans.mlp.MemoryMLP`).
        theta, eta, alpha: step size, momentum ("surprise" decay) and forget gate constants
            (or the gates' initial values); per-call controls ``theta=``, ``eta=``, ``alpha=``
            override them.
        gated: which of ``"theta"``, ``"eta"``, ``"alpha"`` are data-dependent gates of the key,
            ``max_lr·σ(w·k + b)`` / ``σ(w·k + b)`` (weights zero, biases at the constants, at init).
        max_lr: the θ gate's ceiling.
        loss: ``"sum"`` (eq. 12, default), ``"half_sum"`` (App. C) or ``"mean"``.
        max_grad_norm: clip each inner gradient's global norm (``None``: no clipping).
        dtype: dtype of params and state.

    With ``depth=1, bias=False, residual_norm=False, eta=alpha=0, max_grad_norm=None`` this is
    :class:`~memjax.memories.linear.LinearMemory` (same ``loss``) with the weights transposed
    (row convention ``M(k) = k W``).
    """

    d_key: int
    d_value: int
    depth: int = 2
    expansion: int = 4
    activation: str = "gelu"
    bias: bool = False
    residual_norm: bool = False
    theta: float = 0.1
    eta: float = 0.9
    alpha: float = 0.01
    gated: tuple[str, ...] = ()
    max_lr: float = 1.0
    loss: str = "sum"
    max_grad_norm: float | None = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        check_choice("loss", self.loss, LOSS_REDUCTIONS)
        check_gated(self.gated)
        if "theta" in self.gated and not 0.0 < self.theta <= self.max_lr:
            raise ValueError(f"theta: a gated step size must lie in (0, max_lr], got {self.theta}")
        in_range("eta", 0.0, 1.0)(self.eta)
        in_range("alpha", 0.0, 1.0)(self.alpha)
        check_max_grad_norm(self.max_grad_norm)
        self.mlp  # noqa: B018 - validates the MLP fields

    @property
    def mlp(self) -> MemoryMLP:
        return MemoryMLP(
            self.d_key,
            self.d_value,
            self.depth,
            self.expansion,
            self.activation,
            self.bias,
            self.residual_norm,
        )

    @property
    def key_size(self) -> tuple[int, ...]:
        return (self.d_key,)

    @property
    def value_size(self) -> tuple[int, ...]:
        return (self.d_value,)

    def init_params(self, key: jax.Array) -> dict:
        params: dict = {"init": self.mlp.init(key, self.dtype)}
        if self.gated:
            params["gates"] = init_key_gates(
                self.gated, self.d_key, self._constants, self.max_lr, self.dtype
            )
        return params

    def init_state(self, params: dict, **controls) -> TitansState:
        """The learned initial weights :math:`W_0` and zero momentum (controls are ignored)."""
        check_controls(controls, where="TitansMemory.init_state")
        weights = params["init"]
        return TitansState(weights, jax.tree_util.tree_map(jnp.zeros_like, weights))

    @property
    def _constants(self) -> dict:
        return {"theta": self.theta, "eta": self.eta, "alpha": self.alpha}

    def gates(self, params: dict, key, *, theta=None, eta=None, alpha=None) -> tuple:
        """``(theta, eta, alpha)`` for writing ``key``: overrides, else gates, else constants."""
        return key_gates(
            params.get("gates", {}),
            self.gated,
            key,
            self._constants,
            self.max_lr,
            theta=theta,
            eta=eta,
            alpha=alpha,
        )

    def write(self, params, state: TitansState, key, value, /, **controls) -> TitansState:
        """One exact step of eqs. 13–14 with the gradient at the current weights."""
        check_controls(controls, where="TitansMemory.write")
        check_array("key", key, shape=self.key_size, floating=True)
        check_array("value", value, shape=self.value_size, floating=True)
        gates = {name: controls.get(name) for name in GATES}
        return _exact_write(self, params, state, key, value, gates)

    def read(self, params, state: TitansState, query, /, **controls) -> jax.Array:
        """:math:`M^*(q)` (eq. 15): a forward pass, no update."""
        check_controls(controls, where="TitansMemory.read")
        check_array("query", query, shape=self.key_size, floating=True)
        return _forward(self.mlp, state.weights, query)


@partial(jax.jit, static_argnums=0)
def _exact_write(memory: TitansMemory, params, state: TitansState, key, value, gates):
    """Eqs. 13–14 at the current weights (jitted, so eager token loops stay fast)."""
    theta, eta, alpha = memory.gates(params, key, **gates)
    weights, momentum = token_update(
        memory.mlp,
        memory.loss,
        memory.max_grad_norm,
        state.weights,
        state.momentum,
        state.weights,
        key,
        value,
        theta,
        eta,
        alpha,
    )
    return TitansState(weights, momentum)


@partial(jax.jit, static_argnums=0)
def _forward(mlp: MemoryMLP, weights, query):
    return mlp(weights, query)


def check_sequence_inputs(memory, keys, values, queries) -> int:
    """Raise naming the argument unless ``memory`` is a :class:`TitansMemory` and ``keys``,
    ``values``, ``queries`` are ``(T, d_key)``, ``(T, d_value)``, ``(T, d_key)`` with ``T >= 1``;
    return ``T``."""
    if not isinstance(memory, TitansMemory):
        raise TypeError(f"memory: expected a TitansMemory spec, got {type(memory).__name__}")
    check_array("keys", keys, shape=(None, memory.d_key), floating=True)
    length = keys.shape[0]
    if length == 0:
        raise ValueError(f"keys: expected at least one token, got shape {tuple(keys.shape)}")
    check_array("values", values, shape=(length, memory.d_value), floating=True)
    check_array("queries", queries, shape=(length, memory.d_key), floating=True)
    return length


def check_weights(memory: TitansMemory, weights, name: str = "state") -> None:
    """Raise naming ``name`` unless ``weights`` has the structure and shapes of the memory MLP's
    weights (checked at trace time)."""
    want = jax.eval_shape(memory.mlp.init, jax.random.key(0))
    same = jax.tree_util.tree_structure(weights) == jax.tree_util.tree_structure(want) and all(
        tuple(a.shape) == tuple(b.shape)
        for a, b in zip(jax.tree_util.tree_leaves(weights), jax.tree_util.tree_leaves(want))
    )
    if not same:
        got = jax.tree_util.tree_map(lambda a: tuple(a.shape), weights)
        raise ValueError(
            f"{name}: expected memory weights shaped "
            f"{jax.tree_util.tree_map(lambda a: tuple(a.shape), want)}, got {got}"
        )


def recurrent_memory(
    memory: TitansMemory,
    state,
    keys,
    values,
    queries,
    theta,
    eta,
    alpha,
    *,
    chunk_size: int = 1,
    grad_point: str = "chunk_start",
    initial_weights=None,
    read_point: str = "token",
    update: str = "token",
) -> tuple[jax.Array, ChunkState]:
    r"""The token-by-token recurrence over a sequence: ``(reads (T, d_value), new ChunkState)``.

    Every token runs :func:`~memjax.memories.titans.update.token_update` and then reads
    :math:`y_t = M_t(q_t)` (``read_point="token"``) or the chunk-start weights (``"chunk"``). With
    ``chunk_size=1`` (the default) this is the exact recurrence of :meth:`TitansMemory.write`
    followed by :meth:`TitansMemory.read`; with ``chunk_size=b`` every gradient of a chunk is taken
    at its start weights (eq. 16, ``grad_point="chunk_start"``) or at ``initial_weights``
    (``"initial"``). Arguments as :func:`memjax.memories.titans.parallel.parallel_memory`, which
    computes the same map in parallel.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from memjax.memories.titans import TitansMemory, recurrent_memory
        >>> mem = TitansMemory(d_key=3, d_value=2, depth=1)
        >>> w = mem.init_params(jax.random.key(0))["init"]
        >>> ks, vs = jnp.eye(3), jnp.ones((3, 2))
        >>> reads, state = recurrent_memory(mem, w, ks, vs, ks, 0.5, 0.0, 0.0, chunk_size=2)
        >>> reads.shape, int(state.offset)
        ((3, 2), 1)
    """
    length = check_sequence_inputs(memory, keys, values, queries)
    check_sequence_options(chunk_size, grad_point, read_point, update, initial_weights)
    state = as_chunk_state(state)
    check_weights(memory, state.weights)
    theta, eta, alpha = token_gates(theta, eta, alpha, length, keys.dtype)
    check_controls(dict(theta=theta, eta=eta, alpha=alpha), where="recurrent_memory")
    positions = state.offset + jnp.arange(length)
    theta, eta, alpha, writes = sequence_gates(
        theta,
        eta,
        alpha,
        positions,
        jnp.ones((length,), bool),
        chunk_size=chunk_size,
        update=update,
    )
    ends = (positions + 1) % chunk_size == 0
    mlp = memory.mlp

    def body(carry, xs):
        k, v, q, th, et, al, write, end = xs
        y, carry = token_step(
            mlp,
            memory.loss,
            memory.max_grad_norm,
            initial_weights,
            carry,
            k,
            v,
            q,
            th,
            et,
            al,
            end,
            write,
            grad_point=grad_point,
            read_point=read_point,
        )
        return carry, y

    carry = ChunkCarry(state.weights, state.momentum, state.anchor)
    carry, ys = jax.lax.scan(body, carry, (keys, values, queries, theta, eta, alpha, writes, ends))
    offset = ((state.offset + length) % chunk_size).astype(jnp.int32)
    return ys, ChunkState(*carry, offset)
