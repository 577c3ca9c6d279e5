r"""Titans' memory over one head (Behrouz, Zhong & Mirrokni 2024, arXiv 2501.00663).

A :class:`memjax.core.Memory` whose state is an MLP's weights
(:class:`memjax.memories.titans.mlp.MemoryMLP`, depth :math:`L_M \ge 1`); its initial weights
:math:`W_0` are learned params. ``write`` is the exact recurrence (gradient at :math:`M_{t-1}`),
Titans eqs. 12–14:

.. math::

    S_t = \eta_t S_{t-1} - \theta_t \nabla\ell(M_{t-1}; k_t, v_t), \qquad
    M_t = (1-\alpha_t) M_{t-1} + S_t, \qquad \ell = c\lVert M(k) - v\rVert^2,

and ``read`` is :math:`M^*(q)` (eq. 15). ``chunk`` stays the token loop (the protocol's default),
because the paper's chunked form is a *different* recurrence for chunks > 1. The sequence layer
with the chunked parallel form is :class:`memjax.models.titans.lmm.TitansLMM` (which re-exports
this class).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.titans.memory import TitansMemory
    >>> memory = TitansMemory(d_key=4, d_value=4, depth=1, residual_norm=False)
    >>> params = memory.init_params(jax.random.key(0))
    >>> state = memory.write(params, memory.init_state(params), jnp.ones(4), jnp.zeros(4))
    >>> memory.read(params, state, jnp.ones(4)).shape
    (4,)
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice
from memjax.core.protocol import Memory
from memjax.core.spec import spec
from memjax.memories.gates import GATES, check_gated, init_key_gates, key_gates
from memjax.memories.titans.mlp import LOSS_REDUCTIONS, MemoryMLP, loss_gradient


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1], got {value}")


def _check_max_norm(value) -> None:
    if value is not None and not (isinstance(value, int | float) and value > 0):
        raise ValueError(f"max_grad_norm: expected None or a positive number, got {value!r}")


class TitansState(NamedTuple):
    """One head's test-time state: the memory MLP's weights and their momentum (same pytree)."""

    weights: dict
    momentum: dict


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
        _check_unit("eta", self.eta)
        _check_unit("alpha", self.alpha)
        _check_max_norm(self.max_grad_norm)
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

    def init_state(self, params: dict) -> TitansState:
        weights = params["init"]
        return TitansState(weights, jax.tree_util.tree_map(jnp.zeros_like, weights))

    @property
    def _constants(self) -> dict:
        return {"theta": self.theta, "eta": self.eta, "alpha": self.alpha}

    def gates(self, params: dict, key, *, theta=None, eta=None, alpha=None) -> tuple:
        """``(theta, eta, alpha)`` for writing ``key``: overrides, else gates, else constants."""
        return key_gates(
            params.get("gates", {}), self.gated, key, self._constants, self.max_lr,
            theta=theta, eta=eta, alpha=alpha,
        )

    def write(self, params, state: TitansState, key, value, /, **controls) -> TitansState:
        """One exact step of eqs. 13–14 with the gradient at the current weights."""
        check_array("key", key, shape=self.key_size, floating=True)
        check_array("value", value, shape=self.value_size, floating=True)
        gates = {name: controls.get(name) for name in GATES}
        return _exact_write(self, params, state, key, value, gates)

    def read(self, params, state: TitansState, query, /, **controls) -> jax.Array:
        """:math:`M^*(q)` (eq. 15): a forward pass, no update."""
        check_array("query", query, shape=self.key_size, floating=True)
        return _forward(self.mlp, state.weights, query)


@partial(jax.jit, static_argnums=0)
def _exact_write(memory: TitansMemory, params, state: TitansState, key, value, gates):
    """Eqs. 13–14 at the current weights (jitted, so eager token loops stay fast)."""
    theta, eta, alpha = memory.gates(params, key, **gates)
    u = loss_gradient(memory.mlp, memory.loss, memory.max_grad_norm, state.weights, key, value)
    momentum = jax.tree_util.tree_map(
        lambda s, g: (eta * s - theta * g).astype(s.dtype), state.momentum, u
    )
    weights = jax.tree_util.tree_map(
        lambda w, s: ((1.0 - alpha) * w + s).astype(w.dtype), state.weights, momentum
    )
    return TitansState(weights, momentum)


@partial(jax.jit, static_argnums=0)
def _forward(mlp: MemoryMLP, weights, query):
    return mlp(weights, query)
