r"""The Titans memory update, token by token and in the chunked parallel (dual) form.

All functions here act on **one head**; :class:`memjax.models.titans.lmm.TitansLMM` vmaps them.

The recurrence (Titans eqs. 9–10, 13–14), with :math:`u_t` the clipped gradient of the
associative loss (eq. 12) taken at a *gradient point* :math:`M_{t'}`:

.. math::

    S_t = \eta_t S_{t-1} - \theta_t u_t, \qquad M_t = (1 - \alpha_t) M_{t-1} + S_t,
    \qquad u_t = \nabla\ell(M_{t'}; k_t, v_t).

The exact recurrence has :math:`t' = t - 1`; the paper's chunked training form (§3.2, eq. 16)
takes every gradient of a chunk at the chunk-start weights, :math:`t' = t - \mathrm{mod}(t, b)`
(mini-batch gradient descent as in TTT). Inside one chunk, with chunk-start state
:math:`(M_0, S_0)` and tokens :math:`i = 1..C` the recurrence unrolls to the closed form
(spec §1.4, from eqs. 13, 14, 16, 18):

.. math::

    S_i = m_i S_0 - \sum_{j \le i} n_{ij} u_j, \qquad
    M_i = \beta_i M_0 + f_i S_0 - \sum_{j \le i} G_{ij} u_j

with :math:`m_i = \prod_{k \le i}\eta_k`, :math:`n_{ij} = \theta_j \prod_{k=j+1}^{i}\eta_k`,
:math:`\beta_i = \prod_{k \le i}(1-\alpha_k)`, :math:`f_i = \sum_{k \le i}(\beta_i/\beta_k) m_k`,
:math:`G_{ij} = \sum_{k=j}^{i} (\beta_i/\beta_k) n_{kj}`. All products are formed directly
(segment products in log space with zeros counted, no division), so :math:`\eta_t = 0` or
:math:`\alpha_t = 1` is exact.

**Dual form of the reads** (TTT, Sun et al. 2024; spec §1.4). Every dense layer's per-token
gradient is an outer product :math:`u_j = x_j^\top \delta_j`, so a layer of :math:`M_i` applied to
an input :math:`z_i` is

.. math::

    z_i W_i = \beta_i z_i W_0 + f_i z_i S_0 - \sum_j G_{ij} (z_i \cdot x_j)\, \delta_j
            = [\beta \circ Z W_0 + f \circ Z S_0 - (G \circ Z X^\top)\Delta]_i,

which is applied layer by layer along the query's forward pass (biases and the wrapper's
``gamma`` are vectors and are materialised per token). Cost per chunk and dense layer
``d_in × d_out``: ``O(C d_in d_out + C² (d_in + d_out))`` flops and ``O(C (d_in + d_out) + C²)``
memory — no per-token copy of the weights (the naive form needs ``C × |W|``).

**Masked tokens.** A chunk may contain inactive tokens (before the stream's offset or after its
end, see ``TitansLMM.apply``); they have :math:`\theta = 0`, :math:`\eta = 1`, :math:`\alpha = 0`
and contribute no :math:`S` to :math:`M` (``active = 0`` in
:math:`M_i = (1-\alpha_i) M_{i-1} + a_i S_i`), so they leave the state unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.trees import tree_where
from memjax.memories.titans.mlp import (
    ACTIVATIONS,
    MemoryMLP,
    factors_to_tree,
    layer_norm,
    loss_gradient,
)


class ChunkCoefficients(NamedTuple):
    """The closed-form coefficients of one chunk (shapes ``(C,)`` and ``(C, C)``)."""

    m: jax.Array
    n: jax.Array
    beta: jax.Array
    f: jax.Array
    G: jax.Array


def segment_products(a: jax.Array) -> jax.Array:
    """``P[i, j] = prod(a[j+1 : i+1])`` for ``i >= j`` (1 on the diagonal), 0 above it, for
    ``a >= 0``.

    Formed in log space, ``exp(L_i - L_j)`` with ``L`` the cumulative sum of ``log a`` (a few
    whole-chunk ops, forward and backward, where a cumulative product's derivative is an
    associative scan of many small ops); zeros of ``a`` are kept exact by counting them:
    ``P[i, j] = 0`` whenever a zero lies in ``(j, i]``.
    """
    size = a.shape[0]
    idx = jnp.arange(size)
    positive = a > 0
    log_a = jnp.where(positive, jnp.log(jnp.where(positive, a, 1.0)), 0.0)
    cum_log = jnp.cumsum(log_a)
    zeros = jnp.cumsum((~positive).astype(jnp.int32))
    keep = (idx[:, None] >= idx[None, :]) & (zeros[:, None] == zeros[None, :])
    diff = jnp.where(keep, cum_log[:, None] - cum_log[None, :], 0.0)
    return jnp.where(keep, jnp.exp(diff), jnp.zeros((), a.dtype))


def chunk_coefficients(theta, eta, alpha, active=None) -> ChunkCoefficients:
    """:math:`m, n, \\beta, f, G` of the closed form (module doc) for one chunk of gates ``(C,)``.

    ``active`` (``(C,)``, 0/1) switches off the ``+ S_i`` of inactive tokens.
    """
    one = jnp.ones((1,), eta.dtype)
    p_eta = segment_products(jnp.concatenate([one, eta]))
    m = p_eta[1:, 0]  # prod_{k<=i} eta_k
    n = p_eta[1:, 1:] * theta[None, :]  # theta_j prod_{j<k<=i} eta_k
    p_dec = segment_products(jnp.concatenate([one, 1.0 - alpha]))
    beta = p_dec[1:, 0]
    ratio = p_dec[1:, 1:]  # beta_i / beta_k
    a = jnp.ones_like(theta) if active is None else active.astype(theta.dtype)
    f = ratio @ (a * m)
    G = ratio @ (a[:, None] * n)
    return ChunkCoefficients(m, n, beta, f, G)


def dual_read(mlp: MemoryMLP, weights, momentum, factors, coef: ChunkCoefficients, queries):
    """``y_i = M_i(q_i)`` for every token of a chunk through the dual form (module doc)."""
    inputs, deltas, gamma_grad = factors
    act = ACTIVATIONS[mlp.activation]
    beta, f, G = coef.beta[:, None], coef.f[:, None], coef.G
    z = queries
    for i, (w0, s0) in enumerate(zip(weights["layers"], momentum["layers"])):
        x, d = inputs[i], deltas[i]
        out = beta * (z @ w0["w"]) + f * (z @ s0["w"]) - ((z @ x.T) * G) @ d
        if mlp.bias:
            out = out + beta * w0["b"][None, :] + f * s0["b"][None, :] - G @ d
        z = act(out) if i < mlp.depth - 1 else out
    if mlp.residual_norm:
        gamma = beta * weights["gamma"][None, :] + f * momentum["gamma"][None, :] - G @ gamma_grad
        z = layer_norm(z) * (1.0 + gamma) + queries
    return z


class ChunkCarry(NamedTuple):
    """One head's memory carry: weights, momentum, and the anchor (weights at the chunk start)."""

    weights: dict
    momentum: dict
    anchor: dict


def parallel_chunk(
    mlp: MemoryMLP,
    carry: ChunkCarry,
    queries,
    coef: ChunkCoefficients,
    complete,
    factors,
    *,
    read_point: str = "token",
):
    """One chunk of ``C`` tokens in the paper's parallel form; returns ``(reads, carry)``.

    ``coef`` are the chunk's :func:`chunk_coefficients` and ``factors`` its tokens'
    :func:`gradient_factors`, all taken at one gradient point: the anchor, i.e. the chunk-start
    weights (eq. 16), or the initial weights (titans-pytorch's default). Weights and momentum
    follow the closed form; reads are ``M_i(q_i)`` through :func:`dual_read`
    (``read_point="token"``) or ``anchor(q_i)`` (``"chunk"``). ``complete`` (a boolean scalar)
    says whether the chunk ends here, i.e. whether the anchor moves to the new weights.
    """
    weights, momentum, anchor = carry
    if read_point == "token":
        ys = dual_read(mlp, weights, momentum, factors, coef, queries)
    else:
        ys = mlp(anchor, queries)
    upd_w = factors_to_tree(mlp, factors, coef.G[-1])
    upd_s = factors_to_tree(mlp, factors, coef.n[-1])
    beta, f, m = coef.beta[-1], coef.f[-1], coef.m[-1]
    new_w = jax.tree_util.tree_map(
        lambda w, s, u: (beta * w + f * s - u).astype(w.dtype), weights, momentum, upd_w
    )
    new_s = jax.tree_util.tree_map(lambda s, u: (m * s - u).astype(s.dtype), momentum, upd_s)
    new_anchor = tree_where(complete, new_w, anchor)
    return ys, ChunkCarry(new_w, new_s, new_anchor)


def token_step(
    mlp: MemoryMLP,
    reduction: str,
    max_norm,
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
    """The reference: one token of the recurrence (module doc), gradient by ``jax.grad``.

    The gradient point is the anchor (``"chunk_start"``) or ``init_weights`` (``"initial"``);
    the read is ``M_t(q_t)`` (``"token"``) or ``anchor(q_t)`` (``"chunk"``); when ``ends_chunk``
    the anchor moves to ``M_t``. ``write`` (a boolean, default on) says whether the momentum
    enters the weights, :math:`M_t = (1-\alpha_t) M_{t-1} + S_t`, or the weights stay
    :math:`M_{t-1}` (``gate_granularity="chunk_step"`` writes only at a chunk's last token).
    With an anchor refreshed every token this is the exact recurrence
    :meth:`TitansMemory.write` followed by a read.
    """
    weights, momentum, anchor = carry
    point = anchor if grad_point == "chunk_start" else init_weights
    u = loss_gradient(mlp, reduction, max_norm, point, key, value)
    momentum = jax.tree_util.tree_map(
        lambda s, g: (eta * s - theta * g).astype(s.dtype), momentum, u
    )
    weights = jax.tree_util.tree_map(
        lambda w, s: jnp.where(write, (1.0 - alpha) * w + s, w).astype(w.dtype), weights, momentum
    )
    y = mlp(weights if read_point == "token" else anchor, query)
    anchor = tree_where(ends_chunk, weights, anchor)
    return y, ChunkCarry(weights, momentum, anchor)
