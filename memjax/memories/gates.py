r"""Data-dependent write gates shared by the gradient-trained memories (linear, Titans).

A memory's write uses a step size :math:`\theta`, a momentum :math:`\eta` and a decay
:math:`\alpha`. Each is a constant of the memory's spec or, when named in the spec's ``gated``, a
gate of the key. Titans (Behrouz et al., arXiv 2501.00663 §3.1, eqs. 9–14) makes all three
data-dependent but gives no parameterisation; the one here, a sigmoid of a linear map (times
``max_lr`` for :math:`\theta`), is the one public implementations use (e.g. lucidrains'
titans-pytorch):

.. math::

   \theta_t = \text{max\_lr}\cdot\sigma(w_\theta^\top k_t + b_\theta),\qquad
   \eta_t = \sigma(w_\eta^\top k_t + b_\eta),\qquad
   \alpha_t = \sigma(w_\alpha^\top k_t + b_\alpha).

A gate starts with zero weights and its bias at the logit of the constant, so a gated memory
starts equal to the constant one. Per-call controls ``theta=``, ``eta=``, ``alpha=`` override
both.

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.memories.gates import init_key_gates, key_gates
    >>> consts = {"theta": 0.5, "eta": 0.0, "alpha": 0.1}
    >>> p = init_key_gates(("alpha",), 3, consts, max_lr=1.0, dtype="float32")
    >>> [round(float(g), 3) for g in key_gates(p, ("alpha",), jnp.ones(3), consts, 1.0)]
    [0.5, 0.0, 0.1]
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from memjax.core.checks import check_choice

GATES = ("theta", "eta", "alpha")


def logit(p: float) -> float:
    """:math:`\\log(p / (1-p))`, with ``p`` clipped to ``[1e-4, 1 - 1e-4]``."""
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def check_gated(gated) -> None:
    """Raise naming ``gated`` unless it is a tuple of gate names."""
    if not isinstance(gated, tuple):
        raise TypeError(f"gated: expected a tuple of gate names, got {gated!r}")
    for name in gated:
        check_choice("gated", name, GATES)


def init_key_gates(
    gated: tuple[str, ...], d_key: int, constants: Mapping[str, float], max_lr: float, dtype
) -> dict:
    """``{name: {"w": zeros(d_key), "b": logit(start)}}`` for every gated name."""
    start = {**constants, "theta": constants["theta"] / max_lr}
    return {
        name: {"w": jnp.zeros((d_key,), dtype), "b": jnp.asarray(logit(start[name]), dtype)}
        for name in gated
    }


def key_gates(
    params: Mapping,
    gated: tuple[str, ...],
    key,
    constants: Mapping[str, float],
    max_lr: float,
    *,
    theta=None,
    eta=None,
    alpha=None,
) -> tuple:
    """``(theta, eta, alpha)`` for writing ``key``: overrides, else gates, else constants."""
    values = {"theta": theta, "eta": eta, "alpha": alpha}
    for name in GATES:
        if values[name] is None:
            if name in gated:
                g = params[name]
                gate = jax.nn.sigmoid(jnp.dot(g["w"], key) + g["b"])
                values[name] = max_lr * gate if name == "theta" else gate
            else:
                values[name] = constants[name]
    return values["theta"], values["eta"], values["alpha"]
