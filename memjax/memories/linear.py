r"""The linear associative memory: the delta rule, with optional momentum, decay and gates.

The state is a matrix :math:`M \in \mathbb{R}^{d_v \times d_k}` (plus a momentum matrix
:math:`S` when momentum is on). Writing ``k -> v`` takes one gradient step on the associative
loss :math:`\ell(M; k, v) = c\,\lVert M k - v\rVert^2` (Titans eq. 12; ``c = 1/2`` by default,
see ``loss``), whose gradient is :math:`\nabla\ell = 2c\,(M k - v)\,k^\top`:

.. math::

   S_t &= \eta_t S_{t-1} - \theta_t \nabla\ell(M_{t-1}; k_t, v_t)        &&\text{(Titans eq. 14)}\\
   M_t &= (1-\alpha_t) M_{t-1} + S_t                                     &&\text{(Titans eq. 13)}

and reading is :math:`y = M q` (Titans eq. 15 with a linear memory, Appendix C eqs. 32–33).

* :math:`\eta = \alpha = 0` with ``loss="half_sum"`` is the **delta rule** (Widrow–Hoff; DeltaNet,
  Schlag et al. 2021): :math:`M_t = M_{t-1} + \theta_t (v_t - M_{t-1} k_t) k_t^\top`.
* :math:`\eta = 0` with a decay gate is the **gated delta rule** (Gated DeltaNet, Yang et al. 2024).
  Gated DeltaNet decays *before* taking the gradient,
  :math:`M_t = (1-\alpha_t) M_{t-1} - \theta_t((1-\alpha_t) M_{t-1} k_t - v_t)k_t^\top`;
  ``decay_form="gated_deltanet"`` gives exactly that, ``"titans"`` (default) eq. 13 above.

Each of :math:`\theta, \eta, \alpha` is a constant of the spec or, when named in ``gated``, a
data-dependent gate computed from the key, :math:`\theta_t = \text{max\_lr}\cdot\sigma(w_\theta^\top
k_t + b_\theta)`, :math:`\eta_t = \sigma(w_\eta^\top k_t + b_\eta)`, :math:`\alpha_t =
\sigma(w_\alpha^\top k_t + b_\alpha)` (the parameterisation every Titans implementation uses). A
gate's weights start at zero and its bias at the logit of the constant, so a gated memory starts
equal to the constant one. Per-call controls ``theta=``, ``eta=``, ``alpha=`` override both.

**Stability.** Without momentum or decay a write multiplies the memory's error along the key,
:math:`(M k - v)`, by :math:`1 - 2c\,\theta_t\lVert k_t\rVert^2` (the other directions are
untouched), so the recurrence is stable iff

.. math::

   0 < 2c\,\theta_t \lVert k_t\rVert_2^2 < 2, \qquad\text{i.e.}\quad
   \theta_t \lVert k_t\rVert_2^2 < 2 \ \text{for the delta rule's}\ c = 1/2,

the classic LMS/NLMS step-size condition (Widrow–Hoff). Past it each write overshoots and the
reads grow geometrically while staying finite for a long time: N(0, 1) keys in 16 dimensions
with θ = 0.5 give :math:`\theta\lVert k\rVert^2 \approx 8` and reads of order 1e27 after 128
tokens. ℓ2-normalise the keys (as :class:`memjax.models.associative.AssociativeLayer` does with
``qk_norm=True``) and keep θ < 2; ``loss="sum"`` halves the bound (θ‖k‖² < 1), ``loss="mean"``
multiplies it by ``d_value``. A decay α shifts the factor to :math:`1 - \alpha_t - 2c\theta_t
\lVert k_t\rVert^2` (Gated DeltaNet's form multiplies it by :math:`1-\alpha_t`).

This memory is memjax's baseline and the oracle for the deeper memories (Titans with
``L_M = 1`` and no momentum or decay must equal it).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.linear import LinearMemory
    >>> mem = LinearMemory(d_key=3, d_value=2, theta=1.0)
    >>> p = mem.init_params(jax.random.key(0)); s = mem.init_state(p)
    >>> s = mem.write(p, s, jnp.array([1.0, 0, 0]), jnp.array([2.0, -1.0]))
    >>> mem.read(p, s, jnp.array([1.0, 0, 0])).tolist()
    [2.0, -1.0]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.controls import check_controls
from memjax.core.protocol import Memory
from memjax.core.spec import spec
from memjax.memories.gates import check_gated, init_key_gates, key_gates

LOSS_SCALE = {"half_sum": 0.5, "sum": 1.0, "mean": None}
DECAY_FORMS = ("titans", "gated_deltanet")


class LinearState(NamedTuple):
    """Test-time state: the memory matrix ``(d_value, d_key)`` and its momentum (or ``None``)."""

    weights: jax.Array
    momentum: jax.Array | None


@spec
class LinearMemory(Memory):
    """Delta-rule memory with optional momentum, decay and data-dependent gates (see module doc).

    Args:
        d_key: key/query size.
        d_value: value size.
        theta: step size :math:`\\theta` (the constant, or the gate's initial value).
        eta: momentum :math:`\\eta`.
        alpha: decay (forget gate) :math:`\\alpha`.
        gated: which of ``"theta"``, ``"eta"``, ``"alpha"`` are data-dependent gates of the key.
        max_lr: the θ gate's ceiling, :math:`\\theta_t = \\text{max\\_lr}\\cdot\\sigma(\\cdot)`.
        momentum: keep a momentum state; ``None`` means "when ``eta`` is non-zero or gated".
        loss: ``"half_sum"`` (½‖Mk−v‖², Titans App. C, the delta rule; default), ``"sum"``
            (‖Mk−v‖², Titans eq. 12) or ``"mean"`` (mean over features, titans-pytorch).
        decay_form: ``"titans"`` (eq. 13, default) or ``"gated_deltanet"`` (decay first).
        learn_init: learn the initial memory :math:`M_0` as a parameter (else zeros).
        dtype: dtype of params and state.
    """

    d_key: int
    d_value: int
    theta: float = 0.5
    eta: float = 0.0
    alpha: float = 0.0
    gated: tuple[str, ...] = ()
    max_lr: float = 1.0
    momentum: bool | None = None
    loss: str = "half_sum"
    decay_form: str = "titans"
    learn_init: bool = False
    dtype: str = "float32"

    def __post_init__(self):
        check_positive_int("d_key", self.d_key)
        check_positive_int("d_value", self.d_value)
        check_choice("loss", self.loss, tuple(LOSS_SCALE))
        check_choice("decay_form", self.decay_form, DECAY_FORMS)
        check_gated(self.gated)
        if not 0.0 < self.theta <= self.max_lr and "theta" in self.gated:
            raise ValueError(f"theta: a gated step size must lie in (0, max_lr], got {self.theta}")
        for name in ("eta", "alpha"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")

    @property
    def key_size(self) -> tuple[int, ...]:
        return (self.d_key,)

    @property
    def value_size(self) -> tuple[int, ...]:
        return (self.d_value,)

    @property
    def has_momentum(self) -> bool:
        if self.momentum is not None:
            return self.momentum
        return self.eta != 0.0 or "eta" in self.gated

    def init_params(self, key: jax.Array) -> dict:
        params: dict = {}
        if self.learn_init:
            scale = 1.0 / math.sqrt(self.d_key)
            params["init"] = scale * jax.random.normal(key, (self.d_value, self.d_key), self.dtype)
        if self.gated:
            params["gates"] = init_key_gates(
                self.gated, self.d_key, self._constants, self.max_lr, self.dtype
            )
        return params

    def init_state(self, params: dict, /, **controls) -> LinearState:
        check_controls(controls, where="LinearMemory.init_state")
        shape = (self.d_value, self.d_key)
        weights = params["init"] if self.learn_init else jnp.zeros(shape, self.dtype)
        momentum = jnp.zeros(shape, weights.dtype) if self.has_momentum else None
        return LinearState(weights, momentum)

    @property
    def _constants(self) -> dict:
        return {"theta": self.theta, "eta": self.eta, "alpha": self.alpha}

    def gates(self, params: dict, key, *, theta=None, eta=None, alpha=None) -> tuple:
        """``(theta, eta, alpha)`` for writing ``key``: overrides, else gates, else constants."""
        if not self.has_momentum and eta is not None:
            raise ValueError("eta: this LinearMemory has no momentum state; set momentum=True")
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

    def loss_gradient(self, weights, key, value) -> jax.Array:
        """:math:`\\nabla_M \\ell(M; k, v) = 2c\\,(Mk - v)k^\\top` for the configured loss."""
        scale = LOSS_SCALE[self.loss]
        scale = 1.0 / self.d_value if scale is None else scale
        return (2.0 * scale) * jnp.outer(weights @ key - value, key)

    def write(self, params, state: LinearState, key, value, /, **controls) -> LinearState:
        check_array("key", key, shape=self.key_size, floating=True)
        check_array("value", value, shape=self.value_size, floating=True)
        check_controls(controls, where="LinearMemory.write")
        theta, eta, alpha = self.gates(
            params,
            key,
            theta=controls.get("theta"),
            eta=controls.get("eta"),
            alpha=controls.get("alpha"),
        )
        weights = state.weights
        if self.decay_form == "gated_deltanet":
            weights = (1.0 - alpha) * weights
        update = -theta * self.loss_gradient(weights, key, value)
        momentum = None
        if self.has_momentum:
            momentum = eta * state.momentum + update
            update = momentum
        if self.decay_form == "titans":
            weights = (1.0 - alpha) * weights
        return LinearState((weights + update).astype(state.weights.dtype), momentum)

    def read(self, params, state: LinearState, query, /, **controls) -> jax.Array:
        check_array("query", query, shape=self.key_size, floating=True)
        check_controls(controls, where="LinearMemory.read")
        return state.weights @ query
