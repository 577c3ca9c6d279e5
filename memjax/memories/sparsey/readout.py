r"""Read-outs from Sparsey codes: nearest stored code, class nodes, and a linear probe.

Codes are integer winners ``(…, M, Q)`` (``M`` macs of ``Q`` CMs; ``-1`` = mac gated off); a
single mac's ``(…, Q)`` codes work too. Code similarity is the intersection size (Rinkus 2014).

* :func:`nearest_code_predict` — the label of the stored code with the largest intersection
  (a 1-nearest-neighbour by intersection; memjax read-out (b)).
* :func:`class_node_fit` / :func:`class_node_predict` — sparsey.com's supervised step: Hebbian
  weights from the active cells onto a field of class nodes, here counting co-occurrences;
  the class node with the largest summed input wins (read-out (a)).
* :func:`ridge_readout_fit` / :func:`ridge_readout_predict` — a least-squares linear read-out on
  the one-hot cells, solved in the dual through the intersection matrix (fast on CPU).
* :func:`linear_readout_fit` / :func:`linear_readout_predict` — softmax regression on the one-hot
  cells, trained full-batch with optax Adam (read-out (c)).

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.memories.sparsey.readout import nearest_code_predict
    >>> train = jnp.array([[0, 1, 2], [3, 3, 3]]); labels = jnp.array([7, 9])
    >>> nearest_code_predict(train, labels, jnp.array([[0, 1, 3], [3, 3, 0]]), K=4).tolist()
    [7, 9]
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _flat(codes):
    codes = jnp.asarray(codes)
    return codes.reshape(codes.shape[0], -1)


def _onehot(codes, K):
    """Dense one-hot cells ``(N, M·Q·K)`` float32 (``-1`` → all zeros)."""
    c = _flat(codes)
    return jax.nn.one_hot(c, K, dtype=jnp.float32).reshape(c.shape[0], -1)


@partial(jax.jit, static_argnames=("K",))
def intersections(codes_a, codes_b, *, K: int):
    """Code-intersection matrix ``(len(a), len(b))``: the Gram matrix of the one-hot cells
    (a float32 matmul, exact for counts below 2²⁴)."""
    return _onehot(codes_a, K) @ _onehot(codes_b, K).T


@partial(jax.jit, static_argnames=("K",))
def nearest_code_predict(train_codes, train_labels, codes, *, K: int):
    """Label of the stored code with the largest intersection with each of ``codes``."""
    ov = intersections(codes, train_codes, K=K)
    return jnp.asarray(train_labels)[jnp.argmax(ov, axis=1)]


@partial(jax.jit, static_argnames=("K", "num_classes"))
def ridge_readout_fit(codes, labels, *, K: int, num_classes: int, ridge: float = 1.0):
    r"""Least-squares linear read-out on the one-hot cells, solved in the dual:
    :math:`\alpha = (C C^\top + \lambda I)^{-1} Y` with :math:`C C^\top` the intersection
    matrix, so the cost does not grow with ``K``. Returns ``(train_codes, alpha)``."""
    gram = intersections(codes, codes, K=K)
    y = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    y = y - jnp.mean(y, axis=0, keepdims=True)
    alpha = jnp.linalg.solve(gram + ridge * jnp.eye(gram.shape[0], dtype=gram.dtype), y)
    return jnp.asarray(codes), alpha


@partial(jax.jit, static_argnames=("K",))
def ridge_readout_predict(model, codes, *, K: int):
    """Argmax class of the ridge read-out fitted by :func:`ridge_readout_fit`."""
    train_codes, alpha = model
    return jnp.argmax(intersections(codes, train_codes, K=K) @ alpha, axis=-1)


def _cells(codes, K):
    """Flat indices of the active cells ``(N, M·Q)`` into ``M·Q·K`` (+ a mask for ``-1``)."""
    c = _flat(codes)
    slot = jnp.arange(c.shape[1])[None, :] * K
    return jnp.where(c >= 0, slot + c, 0), c >= 0


@partial(jax.jit, static_argnames=("K", "num_classes"))
def class_node_fit(codes, labels, *, K: int, num_classes: int):
    """Counts ``(M·Q·K, C)`` of each cell being active with each class."""
    idx, mask = _cells(codes, K)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    w = jnp.zeros((idx.shape[1] * K, num_classes), jnp.float32)
    return w.at[idx].add(mask[..., None] * onehot[:, None, :])


@jax.jit
def class_node_predict(weights, codes):
    """The class node with the largest summed (class-frequency-normalised) input."""
    K = weights.shape[0] // _flat(codes).shape[1]
    idx, mask = _cells(codes, K)
    norm = weights / jnp.maximum(weights.sum(axis=0, keepdims=True), 1.0)
    return jnp.argmax(jnp.sum(norm[idx] * mask[..., None], axis=1), axis=-1)


class LinearReadout(NamedTuple):
    """Softmax-regression weights ``(M·Q·K, C)`` and bias ``(C,)``."""

    w: jax.Array
    b: jax.Array


def _logits(params, idx, mask):
    """``x @ w + b`` for the one-hot cells ``x`` of codes, as a gather of the active rows (the
    dense one-hot matrix is ``M·Q·K`` wide but has only ``M·Q`` ones per row)."""
    return jnp.sum(params.w[idx] * mask[..., None], axis=1) + params.b[None, :]


def linear_readout_fit(
    codes,
    labels,
    *,
    K: int,
    num_classes: int,
    steps: int = 200,
    learning_rate: float = 0.05,
    weight_decay: float = 1e-4,
) -> LinearReadout:
    """Full-batch softmax regression on the one-hot cells of ``codes`` (optax AdamW).

    Only the cells active in some training code get a gradient, so the problem is solved on
    those columns of the one-hot design matrix (found when ``codes`` is concrete; rounded up to
    a multiple of 256 so similar sets share a compile) and the other rows of ``w`` stay 0 —
    the same optimum as on all ``M·Q·K`` columns (AdamW leaves a weight with zero gradient at
    0). The forward pass and the weight gradient are then dense matrix products.
    """
    codes = jnp.asarray(codes)
    width = _flat(codes).shape[1] * K
    if isinstance(codes, jax.core.Tracer):
        cols = jnp.arange(width)
    else:
        idx, mask = _cells(codes, K)
        used = np.unique(np.asarray(idx)[np.asarray(mask)])
        size = min(width, max(256, -(-len(used) // 256) * 256))
        cols = jnp.asarray(np.pad(used, (0, size - len(used)), constant_values=width))
    return _linear_fit(
        codes,
        jnp.asarray(labels),
        cols,
        K=K,
        num_classes=num_classes,
        steps=steps,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
    )


@partial(jax.jit, static_argnames=("K", "num_classes", "steps"))
def _linear_fit(codes, labels, cols, *, K, num_classes, steps, learning_rate, weight_decay):
    full = _onehot(codes, K)
    x = jnp.take(full, cols, axis=1, mode="fill", fill_value=0.0)  # (N, used columns)
    params = LinearReadout(
        jnp.zeros((x.shape[1], num_classes), jnp.float32),
        jnp.zeros((num_classes,), jnp.float32),
    )
    opt = optax.adamw(learning_rate, weight_decay=weight_decay)

    def loss(p):
        logits = x @ p.w + p.b[None, :]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    w = jnp.zeros((full.shape[1], num_classes), jnp.float32).at[cols].set(params.w, mode="drop")
    return LinearReadout(w, params.b)


@jax.jit
def linear_readout_predict(params: LinearReadout, codes):
    """Argmax class of the linear read-out."""
    K = params.w.shape[0] // _flat(codes).shape[1]
    idx, mask = _cells(codes, K)
    return jnp.argmax(_logits(params, idx, mask.astype(jnp.float32)), axis=-1)
