r"""The Titans LMM's data-dependent gates (arXiv 2501.00663 §3.1, eqs. 13–14).

Per token :math:`t` and head :math:`h`, from the (store-normed) input :math:`x_t` (the paper
does not give the gates' form: this one is the public ports', and the default ``max_lr = 1`` is
memjax's choice):

.. math::

    \theta_t = \text{max\_lr}\,\sigma(x_t W_\theta + b_\theta), \qquad
    \eta_t = \sigma(x_t W_\eta + b_\eta), \qquad \alpha_t = \sigma(x_t W_\alpha + b_\alpha),

each ``W`` of shape ``(d_model, H)``. ``gate_granularity="chunk"`` computes all three from the mean
input of each chunk (aligned to stream positions), ``"chunk_step"`` (titans-pytorch) only
:math:`\eta` and :math:`\alpha`. Per-call controls ``theta=``, ``eta=``, ``alpha=`` (a scalar,
``(T,)`` or ``(T, H)``) override the gates. :func:`layer_gates` returns the gates of a call's
tokens; masking and the once-per-chunk placement of ``"chunk_step"`` are the memory's
(:func:`memjax.memories.titans.update.sequence_gates`).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.titans import TitansLMM
    >>> from memjax.models.titans.gates import layer_gates
    >>> layer = TitansLMM(d_model=8, num_heads=2, chunk_size=4, num_persistent=0)
    >>> p = layer.init_params(jax.random.key(0))
    >>> theta, eta, alpha = layer_gates(layer, p, jnp.int32(0), jnp.ones((5, 8)), {"eta": 0.0})
    >>> theta.shape, float(eta.max())
    ((5, 2), 0.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from memjax.core.checks import is_scalar_like
from memjax.memories.gates import GATES
from memjax.models.titans.projections import normed_matmul

if TYPE_CHECKING:
    from memjax.models.titans.lmm import TitansLMM

__all__ = ["gate_logits", "gate_values", "layer_gates", "override_gate"]


def gate_values(layer: TitansLMM, params: dict, logits, active) -> tuple:
    r"""Gates ``(L, H)`` of a chunk-aligned buffer from its gate logits ``(L, 3 H)``
    (:math:`x_t W_\theta, x_t W_\eta, x_t W_\alpha` side by side, :func:`gate_logits`, biases
    not yet added); ``active`` (``(L,)``) marks the buffer's real tokens (the chunk means count
    only those). A chunk's mean input times ``W`` is the mean of its tokens' logits (the map is
    linear), so the chunk granularities average the logits."""
    h = layer.num_heads
    parts = {name: logits[:, i * h : (i + 1) * h] for i, name in enumerate(GATES)}
    if layer.gate_granularity != "token":
        size = layer.chunk_size
        n = logits.shape[0] // size
        # "chunk_step" keeps θ per token (titans-pytorch)
        chunked = GATES if layer.gate_granularity == "chunk" else ("eta", "alpha")
        cols = jnp.concatenate([parts[name] for name in chunked], axis=1)
        a = active.astype(logits.dtype).reshape(n, size)
        # a batched contraction, not sum(x * a): XLA's CPU reduction over the middle axis
        # was ~10 ms at 2K tokens, the contraction is a matmul
        total = jnp.einsum("nc,ncd->nd", a, cols.reshape(n, size, -1))
        mean = total / jnp.maximum(jnp.sum(a, axis=1), 1.0)[:, None]
        mean = jnp.repeat(mean, size, axis=0)
        parts.update({name: mean[:, i * h : (i + 1) * h] for i, name in enumerate(chunked)})
    out = []
    for name in GATES:
        gate = jax.nn.sigmoid(parts[name] + params["gates"][name]["b"][None, :])
        out.append(layer.max_lr * gate if name == "theta" else gate)
    return tuple(out)


def gate_logits(layer: TitansLMM, params: dict, xs):
    r""":math:`x_t [W_\theta, W_\eta, W_\alpha]` ``(T, 3 H)`` of the store-normed input, one
    matmul (:func:`memjax.models.titans.projections.normed_matmul`)."""
    w = jnp.concatenate([params["gates"][name]["w"] for name in GATES], axis=1)
    return normed_matmul(layer, params, xs, "store", w)


def override_gate(name: str, value, num_heads: int, default):
    """``default`` (``(T, H)``) unless the control ``value`` (a scalar, ``(T,)`` or ``(T, H)``)
    is given; a wrong shape raises naming ``name``."""
    if value is None:
        return default
    if is_scalar_like(value):
        return jnp.full_like(default, value)
    length = default.shape[0]
    shape = tuple(value.shape)
    if shape == (length,):
        value = jnp.broadcast_to(value[:, None], (length, num_heads))
    elif shape != (length, num_heads):
        raise ValueError(
            f"{name}: expected a scalar or shape ({length},) or ({length}, {num_heads}), got "
            f"{shape}"
        )
    return value.astype(default.dtype)


def layer_gates(layer: TitansLMM, params: dict, offset, xs, controls) -> tuple:
    """``(theta, eta, alpha)``, each ``(T, H)``, for the tokens ``xs`` (``(T, d_model)``) that
    start ``offset`` tokens into a chunk; controls override them (module doc)."""
    length, size = xs.shape[0], layer.chunk_size
    total = -(-(length + size - 1) // size) * size  # enough chunks for any offset < size
    logits = gate_logits(layer, params, xs)
    buf = jnp.zeros((total, *logits.shape[1:]), logits.dtype)
    aligned = jax.lax.dynamic_update_slice_in_dim(buf, logits, offset, axis=0)
    pos = jnp.arange(total)
    active = (pos >= offset) & (pos < offset + length)
    gates = gate_values(layer, params, aligned, active)
    return tuple(
        override_gate(
            name,
            controls.get(name),
            layer.num_heads,
            jax.lax.dynamic_slice_in_dim(g, offset, length, axis=0),
        )
        for name, g in zip(GATES, gates)
    )
