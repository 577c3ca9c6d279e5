r"""One chunk of the Titans parallel form with a hand-written backward pass (``jax.custom_vjp``).

:func:`chunk_step` computes what :func:`memjax.memories.titans.parallel.parallel_chunk` computes
with the factored gradients of :func:`memjax.memories.titans.mlp.gradient_factors` (Titans
§3.2, eqs. 16–18; the dual-form reads of TTT, Sun et al. 2024), and differentiates it by hand.
Reverse mode then stores each chunk's residuals (the gradient point's per-token activations, the
reads' layer inputs and the closed form's ``C × C`` products, ``O(C Σ_l (d_in_l + d_out_l) +
C²)`` per chunk) instead of re-running the chunk's forward, and the backward is a few whole-chunk
matmuls per layer instead of the transpose of the automatically differentiated forward.

With :math:`X_l, \Delta_l` the factors (layer inputs and deltas of the ``C`` per-token gradients
at the gradient point :math:`P`, clipped), :math:`Z_l` the reads' layer inputs and
:math:`O_l = \beta \circ Z_l W_l + f \circ Z_l S_l - (G \circ Z_l X_l^\top)\Delta_l` their
pre-activations, the cotangents are, layer by layer (:math:`\bar O_l` the cotangent of
:math:`O_l`, :math:`A_l = Z_l X_l^\top`, :math:`\bar M = -\bar O_l \Delta_l^\top`):

.. math::

    \bar W_l = Z_l^\top(\beta \circ \bar O_l), \quad \bar S_l = Z_l^\top(f\circ\bar O_l), \quad
    \bar\Delta_l = -(G\circ A_l)^\top \bar O_l, \quad \bar G = \bar M \circ A_l, \quad
    \bar Z_l = (\bar M\circ G) X_l + (\beta\circ\bar O_l) W_l^\top + (f\circ\bar O_l) S_l^\top,
    \quad \bar X_l = (\bar M\circ G)^\top Z_l,

the update :math:`W' = \beta_C W + f_C S - X^\top \mathrm{diag}(G_C)\Delta`,
:math:`S' = m_C S - X^\top\mathrm{diag}(n_C)\Delta` gives
:math:`\bar X \mathrel{+}= -\mathrm{diag}(G_C)\Delta \bar W'^\top - \mathrm{diag}(n_C)\Delta\bar
S'^\top` and :math:`\bar\Delta \mathrel{+}= -\mathrm{diag}(G_C) X\bar W' - \mathrm{diag}(n_C) X
\bar S'`, and the second-order terms (the factors' dependence on :math:`P`, the keys and values)
run back through the clipping, the delta recurrence :math:`\delta_l = (\delta_{l+1}
P_{l+1}^\top)\circ\sigma'(z_l)` and the keys' forward pass as whole-chunk matmuls:
:math:`\bar P_{l+1} \mathrel{+}= (\bar\delta_l\circ\sigma'(z_l))^\top\delta_{l+1}`,
:math:`\bar P_l \mathrel{+}= x_l^\top \bar z_l`. Rowwise pieces (the activation's second
derivative, the LayerNorm of the ``residual_norm`` wrapper, the clipping scale) are
differentiated by ``jax.vjp`` of their elementwise functions.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.titans.chunk_vjp import chunk_step
    >>> from memjax.memories.titans.mlp import MemoryMLP
    >>> from memjax.memories.titans.parallel import chunk_coefficients
    >>> from memjax.memories.titans.update import ChunkCarry
    >>> mlp = MemoryMLP(d_in=4, d_out=4, depth=2, expansion=2)
    >>> w = mlp.init(jax.random.key(0))
    >>> carry = ChunkCarry(w, jax.tree_util.tree_map(jnp.zeros_like, w), w)
    >>> k = jax.random.normal(jax.random.key(1), (3, 4))
    >>> g = jnp.full(3, 0.5)
    >>> coef = chunk_coefficients(g, g, 0.1 * g)
    >>> ys, new = chunk_step(mlp, "sum", 1.0, "token", carry, w, k, k, k, coef, True)
    >>> ys.shape
    (3, 4)
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from memjax.memories.titans.mlp import (
    ACTIVATION_GRADS,
    LN_EPS,
    MemoryMLP,
    clip_scale,
    factor_forward,
    output_gradient,
)
from memjax.memories.titans.update import ChunkCarry
from memjax.nn.activations import ACTIVATIONS
from memjax.nn.norms import layer_norm

__all__ = ["READ_MODES", "chunk_step"]

READ_MODES = ("token", "chunk", "direct")
"""``"token"``: dual-form reads :math:`M_i(q_i)`; ``"chunk"``: reads of the anchor;
``"direct"``: the anchor for all but the chunk's last token, which reads the new weights
(``update="chunk"`` with token reads, where the weights move only at the last token)."""


def _rowsum(a):
    return jnp.sum(a, axis=-1)


def _vectors(mlp: MemoryMLP, tree) -> list:
    """The vector leaves of a weights pytree in a fixed order: biases, then ``gamma``."""
    out = [layer["b"] for layer in tree["layers"]] if mlp.bias else []
    if mlp.residual_norm:
        out.append(tree["gamma"])
    return out


def _tree(mlp: MemoryMLP, mats, vecs) -> dict:
    """A weights pytree from its matrices and :func:`_vectors`."""
    vecs = list(vecs)
    layers = []
    for w in mats:
        layer = {"w": w}
        if mlp.bias:
            layer["b"] = vecs.pop(0)
        layers.append(layer)
    tree: dict = {"layers": tuple(layers)}
    if mlp.residual_norm:
        tree["gamma"] = vecs.pop(0)
    return tree


def _mats(tree) -> list:
    return [layer["w"] for layer in tree["layers"]]


# -- a plain MLP forward (reads of fixed weights) with residuals ----------------------------
def _mlp_forward(mlp: MemoryMLP, weights, x):
    act = ACTIVATIONS[mlp.activation]
    h, res = x, []
    for i, layer in enumerate(weights["layers"]):
        z = h @ layer["w"]
        if mlp.bias:
            z = z + layer["b"][None, :]
        res.append((h, z))
        h = act(z) if i < mlp.depth - 1 else z
    if mlp.residual_norm:
        h = layer_norm(h, eps=LN_EPS) * (1.0 + weights["gamma"][None, :]) + x
    return h, res


def _wrap(out, gamma, x):
    return layer_norm(out, eps=LN_EPS) * (1.0 + gamma) + x


def _mlp_backward(mlp: MemoryMLP, weights, x, res, dy):
    """Cotangents ``(d_weights, dx)`` of :func:`_mlp_forward` for the output cotangent ``dy``."""
    act_grad = ACTIVATION_GRADS[mlp.activation]
    mats = _mats(weights)
    dvecs = []
    dx = jnp.zeros_like(x)
    dz = dy
    if mlp.residual_norm:
        out = res[-1][1]
        _, pull = jax.vjp(_wrap, out, weights["gamma"][None, :], x)
        dz, dgamma, dx = pull(dy)
        dgamma = jnp.sum(dgamma, axis=0)
    dmats, dbias = [None] * mlp.depth, [None] * mlp.depth
    for i in range(mlp.depth - 1, -1, -1):
        h, z = res[i]
        if i < mlp.depth - 1:
            dz = dz * act_grad(z)
        dmats[i] = h.T @ dz
        dbias[i] = jnp.sum(dz, axis=0)
        dz = dz @ mats[i].T
    dx = dx + dz
    if mlp.bias:
        dvecs.extend(dbias)
    if mlp.residual_norm:
        dvecs.append(dgamma)
    return _tree(mlp, dmats, dvecs), dx


# -- the factors' backward (second-order terms) ---------------------------------------------
def _factor_backward(
    mlp, reduction, max_norm, point, keys, values, fres, d_inputs, d_deltas, d_gamma_grad
):
    """Cotangents ``(d_point, d_keys, d_values)`` of
    :func:`memjax.memories.titans.mlp.factor_forward` for the cotangents of its factors."""
    act_grad = ACTIVATION_GRADS[mlp.activation]
    xs, zs, raw, gamma_raw, norm_sq = fres
    mats = _mats(point)
    depth = mlp.depth
    dx = list(d_inputs)
    ddelta = list(d_deltas)
    dgg = d_gamma_grad
    if max_norm is not None:
        scale, pull = jax.vjp(lambda n: clip_scale(n, max_norm), norm_sq)
        ds = sum(_rowsum(dd * r) for dd, r in zip(ddelta, raw))
        if gamma_raw is not None:
            ds = ds + _rowsum(dgg * gamma_raw)
        (dn,) = pull(ds)
        s = scale[:, None]
        sq = lambda a: jnp.sum(jnp.square(a), axis=-1)
        new = []
        for i, (x, r, dd) in enumerate(zip(xs, raw, ddelta)):
            wx = sq(x) + 1.0 if mlp.bias else sq(x)
            dx[i] = dx[i] + 2.0 * x * (sq(r) * dn)[:, None]
            new.append(dd * s + 2.0 * r * (wx * dn)[:, None])
        ddelta = new
        if gamma_raw is not None:
            dgg = dgg * s + 2.0 * gamma_raw * dn[:, None]
    # the delta recurrence delta_l = (delta_{l+1} P_{l+1}^T) * act'(z_l), l = 0 .. depth-2
    dmats = [None] * depth
    dz = [None] * depth
    for i in range(depth - 1):
        back = raw[i + 1] @ mats[i + 1].T
        dback = ddelta[i] * act_grad(zs[i])
        _, pull = jax.vjp(act_grad, zs[i])
        (dz[i],) = pull(ddelta[i] * back)
        ddelta[i + 1] = ddelta[i + 1] + dback @ mats[i + 1]
        dmats[i + 1] = dback.T @ raw[i + 1]
    # the top: delta_{depth-1} (and gamma's gradient) from the output, keys and values
    out = zs[-1]
    gamma = point["gamma"][None, :] if mlp.residual_norm else None
    fn = lambda o, k, v, g: output_gradient(mlp, reduction, o, k, v, g)
    _, pull = jax.vjp(fn, out, keys, values, gamma)
    dout, dk, dv, dgamma = pull((ddelta[-1], dgg))
    dz[-1] = dout if dz[-1] is None else dz[-1] + dout
    # the keys' forward pass
    dbias = [None] * depth
    for i in range(depth - 1, -1, -1):
        g = dz[i]
        dmats[i] = xs[i].T @ g if dmats[i] is None else dmats[i] + xs[i].T @ g
        dbias[i] = jnp.sum(g, axis=0)
        dh = dx[i] + g @ mats[i].T
        if i > 0:
            g_prev = dh * act_grad(zs[i - 1])
            dz[i - 1] = g_prev if dz[i - 1] is None else dz[i - 1] + g_prev
        else:
            dk = dk + dh
    dvecs = list(dbias) if mlp.bias else []
    if mlp.residual_norm:
        dvecs.append(jnp.sum(dgamma, axis=0))
    return _tree(mlp, dmats, dvecs), dk, dv


# -- the pieces of a chunk ------------------------------------------------------------------
def read_forward(mlp, read, weights, momentum, anchor, new_w, factors, coef, queries):
    """The chunk's reads ``(ys, residuals)`` for ``read`` in :data:`READ_MODES` (``new_w``: the
    weights after the chunk, used by ``"direct"``)."""
    inputs, deltas, gamma_grad = factors
    if read != "token":
        ys, res = _mlp_forward(mlp, anchor, queries)
        if read == "chunk":
            return ys, (res, None)
        y_last, last = _mlp_forward(mlp, new_w, queries[-1:])
        return jnp.concatenate([ys[:-1], y_last]), (res, last)
    act = ACTIVATIONS[mlp.activation]
    beta, f, G = coef.beta[:, None], coef.f[:, None], coef.G
    z, res = queries, []
    for i, (w0, s0) in enumerate(zip(weights["layers"], momentum["layers"])):
        x, d = inputs[i], deltas[i]
        zw, zs_, a = z @ w0["w"], z @ s0["w"], z @ x.T
        out = beta * zw + f * zs_ - (a * G) @ d
        if mlp.bias:
            out = out + beta * w0["b"][None, :] + f * s0["b"][None, :] - G @ d
        res.append((z, zw, zs_, a, out))
        z = act(out) if i < mlp.depth - 1 else out
    if mlp.residual_norm:
        gam = beta * weights["gamma"][None, :] + f * momentum["gamma"][None, :]
        gam = gam - G @ gamma_grad
        res.append((z, gam))
        z = _wrap(z, gam, queries)
    return z, res


def read_backward(mlp, read, weights, momentum, anchor, new_w, factors, coef, queries, res, dys):
    """Cotangents of :func:`read_forward`: ``(dW, dS, d_anchor, d_new_w, dq, d_factors,
    (dbeta, df, dG))``; entries a mode does not use are ``None``."""
    inputs, deltas, gamma_grad = factors
    if read != "token":
        res, last = res
        d_new = None
        dq_last = None
        if read == "direct":
            d_new, dq_last = _mlp_backward(mlp, new_w, queries[-1:], last, dys[-1:])
            dys = dys.at[-1].set(0.0)
        d_anchor, dq = _mlp_backward(mlp, anchor, queries, res, dys)
        if dq_last is not None:
            dq = dq.at[-1:].add(dq_last)
        return None, None, d_anchor, d_new, dq, None, None
    depth = mlp.depth
    act_grad = ACTIVATION_GRADS[mlp.activation]
    beta, f, G = coef.beta[:, None], coef.f[:, None], coef.G
    C = queries.shape[0]
    dbeta = jnp.zeros((C,), queries.dtype)
    df, dG = jnp.zeros_like(dbeta), jnp.zeros((C, C), queries.dtype)
    dX, dD = [None] * depth, [None] * depth
    dgg, dq, dO = None, None, dys
    mats_w, mats_s = _mats(weights), _mats(momentum)
    dmw, dms, dbw, dbs = [None] * depth, [None] * depth, [None] * depth, [None] * depth
    if mlp.residual_norm:
        z_top, gam = res[-1]
        _, pull = jax.vjp(_wrap, z_top, gam, queries)
        dO, dgam, dq = pull(dys)
        dgW, dgS = jnp.sum(beta * dgam, axis=0), jnp.sum(f * dgam, axis=0)
        dG = dG - dgam @ gamma_grad.T
        dgg = -(G.T @ dgam)
        dbeta = dbeta + _rowsum(dgam * weights["gamma"][None, :])
        df = df + _rowsum(dgam * momentum["gamma"][None, :])
    for i in range(depth - 1, -1, -1):
        z, zw, zs_, a, out = res[i]
        if i < depth - 1:
            dO = dO * act_grad(out)
        bdO, fdO = beta * dO, f * dO
        dmw[i], dms[i] = z.T @ bdO, z.T @ fdO
        dbeta = dbeta + _rowsum(dO * zw)
        df = df + _rowsum(dO * zs_)
        dM = -(dO @ deltas[i].T)
        if mlp.bias:
            a = a + 1.0
            dbw[i], dbs[i] = jnp.sum(bdO, axis=0), jnp.sum(fdO, axis=0)
            dbeta = dbeta + _rowsum(dO * weights["layers"][i]["b"][None, :])
            df = df + _rowsum(dO * momentum["layers"][i]["b"][None, :])
        dG = dG + dM * a
        dD[i] = -((a * G).T @ dO)
        dA = dM * G
        dX[i] = dA.T @ z
        dO = dA @ inputs[i] + bdO @ mats_w[i].T + fdO @ mats_s[i].T
    dq = dO if dq is None else dq + dO
    vw = (dbw if mlp.bias else []) + ([dgW] if mlp.residual_norm else [])
    vs = (dbs if mlp.bias else []) + ([dgS] if mlp.residual_norm else [])
    d_factors = (tuple(dX), tuple(dD), dgg)
    return (_tree(mlp, dmw, vw), _tree(mlp, dms, vs), None, None, dq, d_factors, (dbeta, df, dG))


def _factor_vectors(mlp, factors) -> list:
    """The per-token factors of the vector leaves (:func:`_vectors` order)."""
    _, deltas, gamma_grad = factors
    out = list(deltas) if mlp.bias else []
    if mlp.residual_norm:
        out.append(gamma_grad)
    return out


def update_terms(mlp, factors, coef):
    r"""``(U, V)``: the chunk's summed gradient terms :math:`X^\top\mathrm{diag}(G_C)\Delta`
    and :math:`X^\top\mathrm{diag}(n_C)\Delta` as weights pytrees."""
    inputs, deltas, _ = factors
    gC, nC = coef.G[-1], coef.n[-1]
    upd = lambda c, x, d: jnp.einsum("j,ja,jb->ab", c, x, d)
    facs = _factor_vectors(mlp, factors)
    U = _tree(mlp, [upd(gC, x, d) for x, d in zip(inputs, deltas)], [gC @ u for u in facs])
    V = _tree(mlp, [upd(nC, x, d) for x, d in zip(inputs, deltas)], [nC @ u for u in facs])
    return U, V


def update_forward(weights, momentum, anchor, terms, coef, done) -> ChunkCarry:
    r"""The closed form at the chunk's end: :math:`W' = \beta_C W + f_C S - U`,
    :math:`S' = m_C S - V`, the anchor moved to :math:`W'` when ``done``."""
    U, V = terms
    bC, fC, mC = coef.beta[-1], coef.f[-1], coef.m[-1]
    tm = jax.tree_util.tree_map
    new_w = tm(lambda w, s, u: (bC * w + fC * s - u).astype(w.dtype), weights, momentum, U)
    new_s = tm(lambda s, v: (mC * s - v).astype(s.dtype), momentum, V)
    return ChunkCarry(new_w, new_s, tm(lambda a, b: jnp.where(done, a, b), new_w, anchor))


def update_factor_backward(mlp, factors, coef, d_new_w, d_new_s):
    """Cotangents of the factors through :func:`update_terms` for the cotangents ``d_new_w``,
    ``d_new_s`` of the new weights and momentum: ``(dX, dD, dgamma_grad)``."""
    inputs, deltas, _ = factors
    gC, nC = coef.G[-1][:, None], coef.n[-1][:, None]
    dX, dD = [], []
    for x, d, gw, gs in zip(inputs, deltas, _mats(d_new_w), _mats(d_new_s)):
        dD.append(-(gC * (x @ gw)) - nC * (x @ gs))
        dX.append(-((gC * d) @ gw.T) - (nC * d) @ gs.T)
    dgg = None
    for i, (gw, gs) in enumerate(zip(_vectors(mlp, d_new_w), _vectors(mlp, d_new_s))):
        du = -gC * gw[None, :] - nC * gs[None, :]
        if mlp.residual_norm and i == len(_vectors(mlp, d_new_w)) - 1:
            dgg = du
        else:
            dD[i] = dD[i] + du
    return tuple(dX), tuple(dD), dgg


def update_coef_backward(mlp, weights, momentum, factors, coef, d_new_w, d_new_s):
    """The closed-form coefficients' cotangents from the update: ``(dm, dn, dbeta, df, dG)``
    (nonzero in the last row / entry only)."""
    leaves = jax.tree_util.tree_leaves
    dot = lambda a, b: sum(jnp.sum(x * y) for x, y in zip(leaves(a), leaves(b)))
    inputs, deltas, _ = factors
    d_gC = sum(-_rowsum((x @ gw) * d) for x, d, gw in zip(inputs, deltas, _mats(d_new_w)))
    d_nC = sum(-_rowsum((x @ gs) * d) for x, d, gs in zip(inputs, deltas, _mats(d_new_s)))
    for u, gw, gs in zip(
        _factor_vectors(mlp, factors), _vectors(mlp, d_new_w), _vectors(mlp, d_new_s)
    ):
        d_gC, d_nC = d_gC - u @ gw, d_nC - u @ gs
    last = lambda like, v: jnp.zeros_like(like).at[-1].set(v)
    return type(coef)(
        last(coef.m, dot(momentum, d_new_s)),
        last(coef.n, d_nC),
        last(coef.beta, dot(weights, d_new_w)),
        last(coef.f, dot(momentum, d_new_w)),
        last(coef.G, d_gC),
    )


def _add(a, b):
    """Leafwise sum where either side may be ``None`` (a zero)."""
    if a is None:
        return b
    if b is None:
        return a
    return jax.tree_util.tree_map(jnp.add, a, b)


# -- one chunk ------------------------------------------------------------------------------
def _forward(mlp, reduction, max_norm, read, carry, point, keys, values, queries, coef, done):
    weights, momentum, anchor = carry
    factors, fres = factor_forward(mlp, reduction, max_norm, point, keys, values)
    new = update_forward(weights, momentum, anchor, update_terms(mlp, factors, coef), coef, done)
    ys, rres = read_forward(
        mlp, read, weights, momentum, anchor, new.weights, factors, coef, queries
    )
    residuals = (carry, point, keys, values, queries, coef, done, factors, fres, rres, new.weights)
    return (ys, new), residuals


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def chunk_step(
    mlp: MemoryMLP,
    reduction: str,
    max_norm,
    read: str,
    carry: ChunkCarry,
    point,
    keys,
    values,
    queries,
    coef,
    done,
):
    """One chunk: ``(reads (C, d_out), new ChunkCarry)`` (module doc), differentiated by hand.

    Args:
        mlp, reduction, max_norm: the memory MLP, eq. 12's reduction and the clipping norm.
        read: one of :data:`READ_MODES`.
        carry: the chunk-start :class:`~memjax.memories.titans.update.ChunkCarry`.
        point: the gradient point (the anchor, or the initial weights).
        keys, values, queries: ``(C, d)`` each.
        coef: the chunk's :class:`~memjax.memories.titans.parallel.ChunkCoefficients`.
        done: a boolean scalar, whether the chunk completes (the anchor moves).
    """
    return _forward(
        mlp, reduction, max_norm, read, carry, point, keys, values, queries, coef, done
    )[0]


def _fwd(mlp, reduction, max_norm, read, carry, point, keys, values, queries, coef, done):
    return _forward(mlp, reduction, max_norm, read, carry, point, keys, values, queries, coef, done)


def _bwd(mlp, reduction, max_norm, read, residuals, cts):
    carry, point, keys, values, queries, coef, done, factors, fres, rres, new_w = residuals
    dys, (dnw, dns, dna) = cts
    weights, momentum, anchor = carry
    tm = jax.tree_util.tree_map
    dW_r, dS_r, dA_r, dN_r, dq, dF_r, dc_r = read_backward(
        mlp, read, weights, momentum, anchor, new_w, factors, coef, queries, rres, dys
    )
    dnw = tm(lambda a, b: a + jnp.where(done, b, jnp.zeros_like(b)), dnw, dna)
    dnw = _add(dnw, dN_r)
    d_anchor = tm(lambda b: jnp.where(done, jnp.zeros_like(b), b), dna)
    bC, fC, mC = coef.beta[-1], coef.f[-1], coef.m[-1]
    dW = _add(tm(lambda b: bC * b, dnw), dW_r)
    dS = _add(tm(lambda b, c: fC * b + mC * c, dnw, dns), dS_r)
    dX, dD, dgg = update_factor_backward(mlp, factors, coef, dnw, dns)
    if dF_r is not None:
        dX = tuple(map(jnp.add, dX, dF_r[0]))
        dD = tuple(map(jnp.add, dD, dF_r[1]))
        dgg = _add(dgg, dF_r[2])
    d_coef = update_coef_backward(mlp, weights, momentum, factors, coef, dnw, dns)
    if dc_r is not None:
        dbeta, df, dG = dc_r
        d_coef = d_coef._replace(beta=d_coef.beta + dbeta, f=d_coef.f + df, G=d_coef.G + dG)
    d_point, dk, dv = _factor_backward(
        mlp, reduction, max_norm, point, keys, values, fres, dX, dD, dgg
    )
    d_anchor = _add(d_anchor, dA_r)
    return ChunkCarry(dW, dS, d_anchor), d_point, dk, dv, dq, d_coef, None


chunk_step.defvjp(_fwd, _bwd)
