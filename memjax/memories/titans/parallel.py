r"""The chunked parallel (dual) form of the Titans memory (§3.2), and :func:`parallel_memory`.

All functions here act on **one head** (``jax.vmap`` adds heads, as
:class:`memjax.models.titans.TitansLMM` does). :func:`parallel_memory` is the raw entry point: a
memory spec, its weights or state, raw keys, values and queries and per-token gates in; reads and
the new state out. :func:`memjax.memories.titans.memory.recurrent_memory` computes the same map
token by token (the reference it is tested against).

The recurrence (Titans eqs. 9–10, 13–14; :func:`memjax.memories.titans.update.token_update`), with
:math:`u_t` the clipped gradient of the associative loss (eq. 12) taken at a *gradient point*
:math:`M_{t'}`:

.. math::

    S_t = \eta_t S_{t-1} - \theta_t u_t, \qquad M_t = (1 - \alpha_t) M_{t-1} + S_t,
    \qquad u_t = \nabla\ell(M_{t'}; k_t, v_t).

The exact recurrence has :math:`t' = t - 1`; the paper's chunked training form (§3.2, eq. 16)
takes every gradient of a chunk at the chunk-start weights, :math:`t' = t - \mathrm{mod}(t, b)`
(mini-batch gradient descent as in TTT). Inside one chunk, with chunk-start state
:math:`(M_0, S_0)` and tokens :math:`i = 1..C` the recurrence unrolls to the closed form
(derived from Titans eqs. 13, 14, 16 and 18):

.. math::

    S_i = m_i S_0 - \sum_{j \le i} n_{ij} u_j, \qquad
    M_i = \beta_i M_0 + f_i S_0 - \sum_{j \le i} G_{ij} u_j

with :math:`m_i = \prod_{k \le i}\eta_k`, :math:`n_{ij} = \theta_j \prod_{k=j+1}^{i}\eta_k`,
:math:`\beta_i = \prod_{k \le i}(1-\alpha_k)`, :math:`f_i = \sum_{k \le i}(\beta_i/\beta_k) m_k`,
:math:`G_{ij} = \sum_{k=j}^{i} (\beta_i/\beta_k) n_{kj}`. All products are formed directly
(segment products in log space with zeros counted, no division), so :math:`\eta_t = 0` or
:math:`\alpha_t = 1` is exact.

**Dual form of the reads** (TTT, Sun et al. 2024, arXiv 2407.04620). Every dense layer's per-token
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

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.titans import TitansMemory, parallel_memory, recurrent_memory
    >>> mem = TitansMemory(d_key=4, d_value=4, depth=2, expansion=2)
    >>> w0 = mem.init_params(jax.random.key(0))["init"]
    >>> k, v, q = jax.random.normal(jax.random.key(1), (3, 10, 4))
    >>> theta = jnp.full(10, 0.3)
    >>> fast, state = parallel_memory(mem, w0, k, v, q, theta, 0.9, 0.01, chunk_size=4)
    >>> slow, _ = recurrent_memory(mem, w0, k, v, q, theta, 0.9, 0.01, chunk_size=4)
    >>> fast.shape, int(state.offset), bool(jnp.allclose(fast, slow, atol=1e-5))
    ((10, 4), 2, True)
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.controls import check_controls
from memjax.core.trees import tree_where
from memjax.memories.titans.chunk_vjp import chunk_step
from memjax.memories.titans.memory import TitansMemory, check_sequence_inputs, check_weights
from memjax.memories.titans.mlp import (
    FACTOR_NAME,
    LN_EPS,
    MemoryMLP,
    factor_forward,
    factors_to_tree,
    gradient_factors,
)
from memjax.memories.titans.update import (
    ChunkCarry,
    ChunkState,
    as_chunk_state,
    check_sequence_options,
    sequence_gates,
    token_gates,
)
from memjax.nn.activations import ACTIVATIONS
from memjax.nn.norms import layer_norm

__all__ = [
    "ChunkCoefficients",
    "chunk_coefficients",
    "dual_read",
    "parallel_chunk",
    "parallel_memory",
    "segment_products",
    "step_coefficients",
]


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
        z = layer_norm(z, eps=LN_EPS) * (1.0 + gamma) + queries
    return z


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
    upd_w, upd_s = chunk_increments(mlp, factors, coef)
    return ys, apply_increments(carry, upd_w, upd_s, coef, complete)


def step_coefficients(theta, eta, alpha, writes) -> ChunkCoefficients:
    r"""The last row of :func:`chunk_coefficients` for ``update="chunk"`` gates (shapes ``(1,)``
    and ``(1, C)``; only the last row enters the state, and that schedule's reads never use the
    dual form).

    :func:`~memjax.memories.titans.update.sequence_gates` gives such a chunk :math:`\eta_k = 1`
    after its first token and :math:`lpha_k = 0`, no write, before its last, so the closed form
    at :math:`i = C` is one step (:mod:`memjax.memories.titans.update`): :math:`m_C = \eta_1`,
    :math:`n_{Cj} = 	heta_j`, :math:`eta_C = 1 - lpha_C`, :math:`f_C = a_C \eta_1`,
    :math:`G_{Cj} = a_C 	heta_j` (:math:`a_C`: the write flag) — :math:`O(C)`, where the general
    coefficients form :math:`C 	imes C` products.
    """
    a = writes[-1].astype(theta.dtype)
    m = eta[:1]
    return ChunkCoefficients(m, theta[None, :], 1.0 - alpha[-1:], a * m, a * theta[None, :])


def chunk_increments(mlp: MemoryMLP, factors, coef: ChunkCoefficients):
    """The chunk's summed updates ``(Σ_j G_Cj u_j, Σ_j n_Cj u_j)`` as weights pytrees (module doc:
    the closed form at the chunk's last token ``i = C``)."""
    return factors_to_tree(mlp, factors, coef.G[-1]), factors_to_tree(mlp, factors, coef.n[-1])


def apply_increments(carry: ChunkCarry, upd_w, upd_s, coef: ChunkCoefficients, complete):
    """``M_C = β_C M_0 + f_C S_0 - Σ_j G_Cj u_j`` and ``S_C = m_C S_0 - Σ_j n_Cj u_j`` (module
    doc); the anchor moves to ``M_C`` when ``complete``."""
    weights, momentum, anchor = carry
    beta, f, m = coef.beta[-1], coef.f[-1], coef.m[-1]
    new_w = jax.tree_util.tree_map(
        lambda w, s, u: (beta * w + f * s - u).astype(w.dtype), weights, momentum, upd_w
    )
    new_s = jax.tree_util.tree_map(lambda s, u: (m * s - u).astype(s.dtype), momentum, upd_s)
    new_anchor = tree_where(complete, new_w, anchor)
    return ChunkCarry(new_w, new_s, new_anchor)


def parallel_memory(
    memory: TitansMemory,
    state,
    keys,
    values,
    queries,
    theta,
    eta,
    alpha,
    *,
    chunk_size: int,
    grad_point: str = "chunk_start",
    initial_weights=None,
    read_point: str = "token",
    update: str = "token",
    remat: bool = True,
    backward: str = "autodiff",
) -> tuple[jax.Array, ChunkState]:
    r"""One head's memory over a sequence in the chunked parallel form: ``(reads, new_state)``.

    Every chunk of ``chunk_size`` tokens (aligned to absolute stream positions) takes all its
    tokens' gradients at one gradient point, and the memory follows the closed form of the module
    doc; the reads use the dual form (no per-token copy of the weights). ``lax.scan`` runs over
    the chunks.

    Args:
        memory: a :class:`~memjax.memories.titans.memory.TitansMemory` spec: its MLP, ``loss``
            (eq. 12's reduction) and ``max_grad_norm`` (clipping of each inner gradient) are used;
            its gate constants and ``gated`` are not (the gates are arguments here).
        state: the memory weights (a fresh state: zero momentum, start of a chunk), a
            :class:`~memjax.memories.titans.update.TitansState` or a
            :class:`~memjax.memories.titans.update.ChunkState` (to continue a stream).
        keys, values, queries: ``(T, d_key)``, ``(T, d_value)``, ``(T, d_key)``, raw (no
            projection or normalisation is applied).
        theta, eta, alpha: the gates :math:`\theta_t \ge 0`, :math:`\eta_t, \alpha_t \in
            [0, 1]` of eqs. 13–14, scalars or per token ``(T,)``.
        chunk_size: ``b`` of §3.2 (1: the exact recurrence).
        grad_point: ``"chunk_start"`` (eq. 16) or ``"initial"`` (every gradient at
            ``initial_weights``, titans-pytorch's ``batch_size=None``).
        initial_weights: the weights of ``grad_point="initial"``.
        read_point: ``"token"`` (:math:`y_t = M_t(q_t)`) or ``"chunk"`` (the chunk-start
            weights).
        update: ``"token"`` (the paper) or ``"chunk"`` (titans-pytorch: one step per chunk;
            :mod:`memjax.memories.titans.update`).
        remat: ``jax.checkpoint`` each chunk (reverse mode stores one carry per chunk; with
            ``update="chunk"`` and ``backward="autodiff"`` also the chunk's gradient-factor
            matmul outputs, :data:`~memjax.memories.titans.mlp.FACTOR_NAME`, so the backward
            does not re-run those matmuls).
        backward: ``"autodiff"`` (default): reverse mode differentiates the chunk body (with
            ``update="chunk"`` a one-step body: :func:`step_coefficients`, and at
            ``grad_point="chunk_start"`` the factors and the anchor's reads in one forward pass);
            ``"manual"``: the chunk body's hand-written backward
            (:func:`~memjax.memories.titans.chunk_vjp.chunk_step`, second-order terms as whole-chunk
            matmuls; with ``update="chunk"`` on the :func:`step_coefficients`, whose reads never
            need the ``C × C`` ones). Same gradients to float64 rounding; on a 2-core CPU the
            manual one measured 8-15% slower in forward+backward and compiles slower, so it is
            not the default.

    Returns:
        ``reads`` ``(T, d_value)`` and the new :class:`~memjax.memories.titans.update.ChunkState`
        (the trailing partial chunk is in the momentum and the weights, the anchor stays at its
        start).

    Cost per chunk ``C`` and dense layer ``d_in × d_out``: ``O(C d_in d_out + C² (d_in +
    d_out))`` flops; a call runs the ``ceil((offset + T) / C)`` chunks that hold its tokens: the
    buffer has room for ``ceil((T + C - 1) / C)`` (any offset ``< C``), and its last chunk, empty
    whenever ``offset + T`` fits in one chunk fewer (always at offset 0), is skipped by
    ``lax.cond`` outside the scan.
    """
    length = check_sequence_inputs(memory, keys, values, queries)
    check_sequence_options(chunk_size, grad_point, read_point, update, initial_weights)
    if backward not in ("autodiff", "manual"):
        raise ValueError(f"backward: expected 'autodiff' or 'manual', got {backward!r}")
    state = as_chunk_state(state)
    check_weights(memory, state.weights)
    if initial_weights is not None:
        check_weights(memory, initial_weights, "initial_weights")
    theta, eta, alpha = token_gates(theta, eta, alpha, length, keys.dtype)
    check_controls(dict(theta=theta, eta=eta, alpha=alpha), where="parallel_memory")
    size = chunk_size
    n = -(-(length + size - 1) // size)  # enough chunks for any offset < size
    total, offset = n * size, state.offset

    def place(a):
        buf = jnp.zeros((total, *a.shape[1:]), a.dtype)
        return jax.lax.dynamic_update_slice_in_dim(buf, a, offset, axis=0)

    pos = jnp.arange(total)
    active = (pos >= offset) & (pos < offset + length)
    complete = (jnp.arange(n) + 1) * size <= offset + length
    theta, eta, alpha, writes = sequence_gates(
        place(theta), place(eta), place(alpha), pos, active, chunk_size=size, update=update
    )
    mlp = memory.mlp
    chunked = lambda a: a.reshape(n, size, *a.shape[1:])

    read = "direct" if update == "chunk" and read_point == "token" else read_point
    # update="chunk" with token reads: the weights change only at a chunk's last token, so every
    # token reads the chunk-start weights (the anchor) and the last one the new weights -- what
    # the dual form would give, at the cost of plain reads

    k, v, q = (chunked(place(a)) for a in (keys, values, queries))
    carry = ChunkCarry(state.weights, state.momentum, state.anchor)
    reduction, max_norm = memory.loss, memory.max_grad_norm
    # Chunk c holds positions [c C, (c + 1) C); it has an active token iff c C < offset + length
    # (offset < C). Only the last chunk can be empty (always, at offset 0): lax.cond skips it.
    live = jnp.arange(n) * size < offset + length
    gates = tuple(map(chunked, (theta, eta, alpha, writes)))
    # The closed-form coefficients do not depend on the carried weights: computed for all chunks
    # at once, outside the scan.
    if update == "chunk" and backward == "autodiff":
        coefs = jax.vmap(step_coefficients)(*gates)
        xs = (k, v, q, coefs, complete, gates[3][:, -1], live)
        body = _stepped_chunk
    else:
        coef_fn = step_coefficients if update == "chunk" and read != "token" else chunk_coefficients
        coefs = jax.vmap(coef_fn)(*gates)
        xs = (k, v, q, coefs, complete, live)
        body = _manual_chunk if backward == "manual" else _autodiff_chunk
    step = partial(body, mlp, reduction, max_norm, read, grad_point, initial_weights)
    # remat: one jax.checkpoint per chunk (reverse mode stores one carry per chunk and re-runs the
    # chunk's forward); without it the scan stores the chunk body's residuals.
    if remat and body is _stepped_chunk:
        # the one-step body keeps its gradient factors' matmul outputs (O(C d) per chunk) for the
        # backward instead of re-running those matmuls: -3 to -8% fwd+bwd CPU time, +9% memory
        # delta at L = 2048 (titans_vs_pytorch.md)
        policy = jax.checkpoint_policies.save_only_these_names(FACTOR_NAME)
        step = jax.checkpoint(step, policy=policy)
    elif remat:
        step = jax.checkpoint(step)
    carry, ys = _scan_chunks(step, carry, xs)
    ys = jax.lax.dynamic_slice_in_dim(ys.reshape(total, -1), offset, length, axis=0)
    new_offset = ((offset + length) % size).astype(jnp.int32)
    return ys, ChunkState(*carry, new_offset)


def _skip_chunk(run, carry):
    """``run(carry)``'s output structure with the carry unchanged and zeros elsewhere (an empty
    chunk: inactive tokens leave the state exactly as it is, module doc)."""
    shapes = jax.eval_shape(run, carry)
    zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes[1])
    return carry, zeros


def _scan_chunks(step, carry, xs):
    """``lax.scan`` of ``step`` over all chunks but the last, then the last one under
    ``lax.cond``: it is empty (skipped, the state unchanged) unless the stream's offset pushes
    tokens into it. The condition sits outside the scan, so the scan's forward and reverse loops
    carry no conditional."""
    tm = jax.tree_util.tree_map
    live = xs[-1]
    last_xs = tm(lambda a: a[-1], xs)
    run = lambda c: step(c, last_xs)
    if live.shape[0] == 1:
        carry, ys = run(carry)
        return carry, ys[None]
    carry, ys = jax.lax.scan(step, carry, tm(lambda a: a[:-1], xs))
    carry, last = jax.lax.cond(live[-1], run, partial(_skip_chunk, run), carry)
    return carry, jnp.concatenate([ys, last[None]])


def _manual_chunk(mlp, reduction, max_norm, read, grad_point, initial_weights, c, xs):
    """One scan step of ``backward="manual"``: the whole chunk (update and reads) by
    :func:`~memjax.memories.titans.chunk_vjp.chunk_step`."""
    k, v, q, coef, done, _ = xs
    point = c.anchor if grad_point == "chunk_start" else initial_weights

    ys, c = chunk_step(mlp, reduction, max_norm, read, c, point, k, v, q, coef, done)
    return c, ys


def _autodiff_chunk(mlp, reduction, max_norm, read, grad_point, initial_weights, c, xs):
    """One scan step of ``backward="autodiff"``: :func:`parallel_chunk` on the chunk's factored
    gradients (reverse mode differentiates it)."""
    k, v, q, coef, done, _ = xs
    point = c.anchor if grad_point == "chunk_start" else initial_weights

    factors = gradient_factors(mlp, reduction, max_norm, point, k, v)
    if read == "direct":
        ys, c = parallel_chunk(mlp, c, q, coef, done, factors, read_point="chunk")
        ys = jnp.concatenate([ys[:-1], mlp(c.weights, q[-1:])])
    else:
        ys, c = parallel_chunk(mlp, c, q, coef, done, factors, read_point=read)
    return c, ys


def _stepped_chunk(mlp, reduction, max_norm, read, grad_point, initial_weights, c, xs):
    """One scan step of ``update="chunk"`` (titans-pytorch's schedule, :func:`step_coefficients`):
    the chunk's summed update ``Σ_j θ_j u_j`` (with the gradient point at the anchor, its factors
    share one forward pass with the reads of the anchor), one momentum and one weights step
    (the weights' increment is the momentum's times the write flag, ``G_C = a_C n_C``), and the
    reads (``"direct"``: the last token reads the new weights)."""
    k, v, q, coef, done, write, _ = xs
    if grad_point == "chunk_start":  # the anchor: one forward pass for the factors and reads
        factors, _, ys = factor_forward(mlp, reduction, max_norm, c.anchor, k, v, q)
    else:
        factors = gradient_factors(mlp, reduction, max_norm, initial_weights, k, v)
        ys = mlp(c.anchor, q)
    upd_s = factors_to_tree(mlp, factors, coef.n[-1])
    a = write.astype(coef.f.dtype)
    upd_w = jax.tree_util.tree_map(lambda u: a * u, upd_s)
    c = apply_increments(c, upd_w, upd_s, coef, done)
    if read == "direct":
        ys = jnp.concatenate([ys[:-1], mlp(c.weights, q[-1:])])
    return c, ys
