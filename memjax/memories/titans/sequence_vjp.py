r"""The Titans chunked parallel form over a whole sequence, with a hand-written backward pass.

:func:`chunk_scan` runs the chunks of :func:`memjax.memories.titans.parallel.parallel_memory`
(Titans §3.2, eqs. 16–18): a ``lax.scan`` carries the memory weights :math:`M`, the momentum
:math:`S` and the anchor (the gradient point of eq. 16) from chunk to chunk, and is one
``jax.custom_vjp``. Only what is sequential stays in the scans; everything else is one batched
computation over all chunks:

* **forward** — the scan holds the factored gradients at the anchor
  (:func:`memjax.memories.titans.mlp.factor_forward`; with ``grad_point="initial"`` they do not
  depend on the carry and are computed for all chunks before the scan) and the closed-form update
  :math:`M' = \beta_C M + f_C S - X^\top\mathrm{diag}(G_C)\Delta`,
  :math:`S' = m_C S - X^\top\mathrm{diag}(n_C)\Delta`; it stacks each chunk's start state, and the
  reads (the dual form, or plain reads of the anchor) of all chunks follow as one batched
  computation;
* **backward** — the reads' cotangents of all chunks are one batched computation
  (:func:`memjax.memories.titans.chunk_vjp.read_backward`), then a reverse scan carries the
  cotangents of :math:`(M, S, \text{anchor})`: :math:`\bar M \leftarrow \beta_C \bar M' +
  \bar M_{\text{read}}`, :math:`\bar S \leftarrow f_C \bar M' + m_C \bar S' + \bar
  S_{\text{read}}`, plus (``grad_point="chunk_start"``) the second-order term of the factors'
  dependence on the anchor (:func:`memjax.memories.titans.chunk_vjp.update_factor_backward` and
  the factors' backward, whole-chunk matmuls). With ``grad_point="initial"`` the reverse scan is
  only the linear recurrence above and the second-order terms of all chunks are batched after it.

Residuals: the stacked chunk-start states (what ``jax.checkpoint`` per chunk stores too) and each
chunk's per-token activations, ``O(C Σ_l (d_in_l + d_out_l) + C²)`` per chunk and head; nothing of
the forward is recomputed.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.titans.mlp import MemoryMLP
    >>> from memjax.memories.titans.parallel import chunk_coefficients
    >>> from memjax.memories.titans.sequence_vjp import chunk_scan
    >>> from memjax.memories.titans.update import ChunkCarry
    >>> mlp = MemoryMLP(d_in=4, d_out=4, depth=2, expansion=2)
    >>> w = mlp.init(jax.random.key(0))
    >>> carry = ChunkCarry(w, jax.tree_util.tree_map(jnp.zeros_like, w), w)
    >>> k = jax.random.normal(jax.random.key(1), (2, 3, 4))  # 2 chunks of 3 tokens
    >>> g = jnp.full((2, 3), 0.5)
    >>> coefs = jax.vmap(chunk_coefficients)(g, g, 0.1 * g)
    >>> done = jnp.array([True, True])
    >>> ys, final = chunk_scan(mlp, "sum", 1.0, "token", "chunk_start", carry, None, k, k, k,
    ...                        coefs, done)
    >>> ys.shape
    (2, 3, 4)
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from memjax.memories.titans.chunk_vjp import (
    _add,
    _factor_backward,
    read_backward,
    read_forward,
    update_coef_backward,
    update_factor_backward,
    update_forward,
    update_terms,
)
from memjax.memories.titans.mlp import MemoryMLP, factor_forward
from memjax.memories.titans.update import ChunkCarry

__all__ = ["chunk_scan"]

_tm = jax.tree_util.tree_map


def _zeros_where(cond, tree):
    return _tm(lambda b: jnp.where(cond, jnp.zeros_like(b), b), tree)


def _forward(
    mlp, reduction, max_norm, read, grad_point, carry, initial, keys, values, queries, coefs, done
):
    vm = jax.vmap
    if grad_point == "initial":
        factors, fres = vm(lambda k, v: factor_forward(mlp, reduction, max_norm, initial, k, v))(
            keys, values
        )
        terms = vm(lambda fa, c: update_terms(mlp, fa, c))(factors, coefs)

        def body(c, xs):
            t, coef, d = xs
            return update_forward(*c, t, coef, d), c

        final, starts = jax.lax.scan(body, carry, (terms, coefs, done))
    else:

        def body(c, xs):
            k, v, coef, d = xs
            fa, fr = factor_forward(mlp, reduction, max_norm, c.anchor, k, v)
            new = update_forward(*c, update_terms(mlp, fa, coef), coef, d)
            return new, (c, fa, fr)

        final, (starts, factors, fres) = jax.lax.scan(body, carry, (keys, values, coefs, done))
    new_ws = None
    if read == "direct":
        new_ws = _tm(lambda s, f: jnp.concatenate([s[1:], f[None]]), starts.weights, final.weights)
    ys, rres = vm(lambda w, s, a, nw, fa, c, q: read_forward(mlp, read, w, s, a, nw, fa, c, q))(
        starts.weights, starts.momentum, starts.anchor, new_ws, factors, coefs, queries
    )
    res = (initial, keys, values, queries, coefs, done, starts, new_ws, factors, fres, rres)
    return (ys, final), res


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4))
def chunk_scan(
    mlp: MemoryMLP,
    reduction: str,
    max_norm,
    read: str,
    grad_point: str,
    carry: ChunkCarry,
    initial,
    keys,
    values,
    queries,
    coefs,
    done,
):
    """All chunks of a sequence: ``(reads (n, C, d_out), final ChunkCarry)`` (module doc).

    Args:
        mlp, reduction, max_norm: the memory MLP, eq. 12's reduction and the clipping norm.
        read: one of :data:`memjax.memories.titans.chunk_vjp.READ_MODES`.
        grad_point: ``"chunk_start"`` (the anchor) or ``"initial"`` (``initial``).
        carry: the :class:`~memjax.memories.titans.update.ChunkCarry` before the first chunk.
        initial: the gradient point of ``grad_point="initial"`` (else ``None``).
        keys, values, queries: ``(n, C, d)`` each.
        coefs: the chunks' :class:`~memjax.memories.titans.parallel.ChunkCoefficients` (a
            leading chunk axis).
        done: ``(n,)`` booleans, whether each chunk completes (the anchor moves).
    """
    return _forward(
        mlp,
        reduction,
        max_norm,
        read,
        grad_point,
        carry,
        initial,
        keys,
        values,
        queries,
        coefs,
        done,
    )[0]


def _fwd(
    mlp, reduction, max_norm, read, grad_point, carry, initial, keys, values, queries, coefs, done
):
    return _forward(
        mlp,
        reduction,
        max_norm,
        read,
        grad_point,
        carry,
        initial,
        keys,
        values,
        queries,
        coefs,
        done,
    )


def _bwd(mlp, reduction, max_norm, read, grad_point, res, cts):
    initial, keys, values, queries, coefs, done, starts, new_ws, factors, fres, rres = res
    dys, d_final = cts
    vm = jax.vmap
    dW_r, dS_r, dA_r, dN_r, dq, dF_r, dc_r = vm(
        lambda w, s, a, nw, fa, c, q, r, dy: read_backward(mlp, read, w, s, a, nw, fa, c, q, r, dy)
    )(starts.weights, starts.momentum, starts.anchor, new_ws, factors, coefs, queries, rres, dys)
    chunk_start = grad_point == "chunk_start"

    def body(dc, xs):
        dW, dS, dA = dc  # cotangents of the chunk's output carry
        coef, d, dWr, dSr, dAr, dNr, extra = xs
        dWt = _add(_tm(lambda a, b: a + jnp.where(d, b, jnp.zeros_like(b)), dW, dA), dNr)
        bC, fC, mC = coef.beta[-1], coef.f[-1], coef.m[-1]
        dW_in = _add(_tm(lambda b: bC * b, dWt), dWr)
        dS_in = _add(_tm(lambda b, c: fC * b + mC * c, dWt, dS), dSr)
        dA_in = _add(_zeros_where(d, dA), dAr)
        out = (dWt, dS)
        if chunk_start:
            anchor, k, v, fa, fr, dF = extra
            dX, dD, dgg = _with_read(update_factor_backward(mlp, fa, coef, dWt, dS), dF)
            d_point, dk, dv = _factor_backward(
                mlp, reduction, max_norm, anchor, k, v, fr, dX, dD, dgg
            )
            dA_in = _add(dA_in, d_point)
            out = (dWt, dS, dk, dv)
        return ChunkCarry(dW_in, dS_in, dA_in), out

    extra = (starts.anchor, keys, values, factors, fres, dF_r) if chunk_start else None
    d_carry, outs = jax.lax.scan(
        body, ChunkCarry(*d_final), (coefs, done, dW_r, dS_r, dA_r, dN_r, extra), reverse=True
    )
    dWt, dS_out = outs[0], outs[1]
    d_coefs = vm(lambda w, s, fa, c, gw, gs: update_coef_backward(mlp, w, s, fa, c, gw, gs))(
        starts.weights, starts.momentum, factors, coefs, dWt, dS_out
    )
    if dc_r is not None:
        dbeta, df, dG = dc_r
        d_coefs = d_coefs._replace(beta=d_coefs.beta + dbeta, f=d_coefs.f + df, G=d_coefs.G + dG)
    d_initial = None
    if chunk_start:
        dk, dv = outs[2], outs[3]
    else:
        upd = vm(lambda fa, c, gw, gs: update_factor_backward(mlp, fa, c, gw, gs))(
            factors, coefs, dWt, dS_out
        )
        dX, dD, dgg = _with_read(upd, dF_r)
        d_points, dk, dv = vm(
            lambda k, v, fr, x, dd, g: _factor_backward(
                mlp, reduction, max_norm, initial, k, v, fr, x, dd, g
            )
        )(keys, values, fres, dX, dD, dgg)
        d_initial = _tm(lambda a: jnp.sum(a, axis=0), d_points)
    return d_carry, d_initial, dk, dv, dq, d_coefs, None


def _with_read(upd, d_read):
    """The factors' cotangents of the update plus those of the reads (``None``: none)."""
    if d_read is None:
        return upd
    dX, dD, dgg = upd
    return (
        tuple(map(jnp.add, dX, d_read[0])),
        tuple(map(jnp.add, dD, d_read[1])),
        _add(dgg, d_read[2]),
    )


chunk_scan.defvjp(_fwd, _bwd)
