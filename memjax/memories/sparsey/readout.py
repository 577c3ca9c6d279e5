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
* :func:`linear_readout_fit` / :func:`linear_readout_predict` — L2-regularised softmax
  regression on the one-hot cells (read-out (c)), a few L-BFGS iterations on the dense 0/1
  design of the cells some training code uses (:func:`one_hot_design`);
* :func:`softmax_regression_fit` / :func:`softmax_regression_cv` — the same solver on any dense
  features (raw pixels, for the baselines), and its L2 strength chosen by stratified k-fold
  cross-validation on the training split (one compile serves every fold and strength).

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


class SoftmaxRegression(NamedTuple):
    """Weights ``(D, C)`` and bias ``(C,)`` of a softmax regression on dense features."""

    w: jax.Array
    b: jax.Array


L2_GRID = tuple(float(v) for v in 10.0 ** np.arange(-3.5, -0.75, 0.5))
"""The L2 strengths :func:`softmax_regression_cv` chooses from: 10^-3.5 … 10^-1 in half decades."""


def _softmax_fit_one(x, labels, weights, l2, *, num_classes, steps):
    r"""L-BFGS on the diagonally preconditioned objective (see :func:`softmax_regression_fit`)."""
    y = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    weights = weights / jnp.sum(weights)
    # Diagonal preconditioner: w = s ⊙ v with s_d = (Σ_i ω_i x_id² + λ)^(-1/2), so every
    # coordinate of v has unit curvature scale (one-hot columns range from 1 to N active rows).
    s = jax.lax.rsqrt(weights @ (x * x) + l2)

    def loss(p):
        v, b = p
        w = s[:, None] * v
        z = x @ w + b[None, :]
        return weights @ optax.softmax_cross_entropy(z, y) + 0.5 * l2 * jnp.sum(w * w)

    p = (jnp.zeros((x.shape[1], num_classes), jnp.float32), jnp.zeros((num_classes,), jnp.float32))
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        upd, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=loss)
        return (optax.apply_updates(p, upd), state), None

    (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=steps)
    return SoftmaxRegression(s[:, None] * p[0], p[1])


@partial(jax.jit, static_argnames=("num_classes", "steps"))
def _softmax_fit(x, labels, weights, l2, *, num_classes, steps):
    return _softmax_fit_one(x, labels, weights, l2, num_classes=num_classes, steps=steps)


def _check_fit_args(x, labels, num_classes, l2, steps, weights):
    if x.ndim != 2:
        raise ValueError(f"x: expected features (N, D), got shape {x.shape}")
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels: expected shape ({x.shape[0]},), got {labels.shape}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes: expected ≥ 2, got {num_classes}")
    if not isinstance(l2, jax.core.Tracer) and not float(l2) > 0:
        raise ValueError(f"l2: expected > 0, got {l2}")
    if int(steps) < 1:
        raise ValueError(f"steps: expected ≥ 1, got {steps}")
    if weights is not None and jnp.shape(weights) != (x.shape[0],):
        raise ValueError(f"weights: expected shape ({x.shape[0]},), got {jnp.shape(weights)}")


def softmax_regression_fit(
    x, labels, *, num_classes: int, l2: float = 1e-2, steps: int = 30, weights=None
) -> SoftmaxRegression:
    r"""L2-regularised multinomial logistic regression on dense features, full batch.

    Minimises, over :math:`W \in \mathbb{R}^{D \times C}` and an unpenalised bias :math:`b`,

    .. math:: \sum_i \omega_i \,\mathrm{CE}\big(\mathrm{softmax}(x_i W + b),\, y_i\big)
              + \tfrac{\lambda}{2} \lVert W \rVert_F^2, \qquad \textstyle\sum_i \omega_i = 1,

    (``weights`` :math:`\omega` default uniform; :math:`\lambda` = ``l2``) — with uniform
    weights the optimum of scikit-learn's ``LogisticRegression(C=1/(λN))``. Solved by ``steps``
    L-BFGS iterations (optax, zoom line search) on the diagonally rescaled variable
    :math:`W = \mathrm{diag}(s) V`, :math:`s_d = (\sum_i \omega_i x_{id}^2 + \lambda)^{-1/2}`,
    one compiled ``lax.scan``. On the 2,000 MNIST training codes (λ = 1e-2) 30 iterations leave
    the objective 3 % above its optimum (0.277 against 0.268 after 300; test accuracy 90.9 %
    against 91.3 %); enough iterations reach the optimum to float32 precision.

    Example:
        >>> import numpy as np
        >>> from memjax.memories.sparsey.readout import softmax_regression_fit
        >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], np.float32)
        >>> m = softmax_regression_fit(x, np.array([0, 0, 1, 1]), num_classes=2, l2=1e-3)
        >>> np.argmax(x @ np.asarray(m.w) + np.asarray(m.b), axis=1).tolist()
        [0, 0, 1, 1]
    """
    x, labels = jnp.asarray(x, jnp.float32), jnp.asarray(labels)
    _check_fit_args(x, labels, num_classes, l2, steps, weights)
    weights = jnp.ones(x.shape[0], jnp.float32) if weights is None else jnp.asarray(weights)
    return _softmax_fit(
        x,
        labels,
        weights.astype(jnp.float32),
        jnp.float32(l2),
        num_classes=int(num_classes),
        steps=int(steps),
    )


def softmax_regression_predict(model: SoftmaxRegression, x):
    """Argmax class of :func:`softmax_regression_fit`'s model on features ``x`` ``(N, D)``."""
    return jnp.argmax(jnp.asarray(x, jnp.float32) @ model.w + model.b[None, :], axis=-1)


def stratified_folds(labels, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index ``(N,)`` in ``0 … folds-1``: each class's items, shuffled by ``seed``, dealt
    round-robin, so every fold holds ⌊n_c/folds⌋ or ⌈n_c/folds⌉ items of class c."""
    labels = np.asarray(labels)
    if int(folds) < 2:
        raise ValueError(f"folds: expected ≥ 2, got {folds}")
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        out[idx] = np.arange(len(idx)) % folds
    return out


def softmax_regression_cv(
    x,
    labels,
    *,
    num_classes: int,
    l2_grid=L2_GRID,
    folds: int = 3,
    steps: int = 30,
    seed: int = 0,
):
    """Choose :func:`softmax_regression_fit`'s ``l2`` by stratified ``folds``-fold
    cross-validation on ``(x, labels)`` (:func:`stratified_folds`): every (fold, λ) problem is
    fitted by the same compiled solver (a zero weight drops the held-out rows, so all share one
    shape and one compile), scored by held-out accuracy averaged over folds. Returns
    ``(best_l2, scores)``: the largest λ of the highest mean score, and the mean scores
    ``(len(l2_grid),)``.
    """
    x, labels = jnp.asarray(x, jnp.float32), jnp.asarray(labels)
    grid = np.asarray(l2_grid, np.float32)
    if grid.ndim != 1 or len(grid) == 0 or not (grid > 0).all():
        raise ValueError(f"l2_grid: expected a non-empty sequence of values > 0, got {l2_grid}")
    _check_fit_args(x, labels, num_classes, float(grid[0]), steps, None)
    fold = stratified_folds(np.asarray(labels), folds, seed)
    y = np.asarray(labels)
    acc = np.zeros((folds, len(grid)))
    for f in range(folds):
        keep = jnp.asarray(fold != f, jnp.float32)
        for g, l2 in enumerate(grid):
            m = _softmax_fit(x, labels, keep, l2, num_classes=int(num_classes), steps=int(steps))
            pred = np.asarray(softmax_regression_predict(m, x))
            acc[f, g] = np.mean(pred[fold == f] == y[fold == f])
    scores = acc.mean(0)
    best = max(np.flatnonzero(scores == scores.max()), key=lambda i: grid[i])
    return float(l2_grid[best]), scores


class LinearReadout(NamedTuple):
    """Softmax-regression weights ``(M·Q·K, C)`` and bias ``(C,)``."""

    w: jax.Array
    b: jax.Array


def _logits(params, idx, mask):
    """``x @ w + b`` for the one-hot cells ``x`` of codes, as a gather of the active rows (the
    dense one-hot matrix is ``M·Q·K`` wide but has only ``M·Q`` ones per row)."""
    return jnp.sum(params.w[idx] * mask[..., None], axis=1) + params.b[None, :]


@partial(jax.jit, static_argnames=("K",))
def _design(codes, cols, *, K):
    c = _flat(codes)
    width = c.shape[1] * K
    slot = jnp.minimum(cols // K, c.shape[1] - 1)
    hit = (jnp.take(c, slot, axis=1) == (cols % K)[None, :]) & (cols < width)[None, :]
    return hit.astype(jnp.float32)


def one_hot_design(codes, *, K: int):
    """The one-hot cells of ``codes`` on the columns active in some code: ``(x, cols)``, ``x``
    ``(N, U)`` float32 0/1 and ``cols`` ``(U,)`` their indices into ``M·Q·K`` (padded up to a
    multiple of 256 with the out-of-range index ``M·Q·K``, an all-zero column, so similar sets
    share a compile). A column no code uses has zero gradient in every read-out objective
    here, so its weight is 0 at the optimum and dropping it changes nothing.

    Example:
        >>> import numpy as np
        >>> from memjax.memories.sparsey.readout import one_hot_design
        >>> x, cols = one_hot_design(np.array([[0, 2], [1, -1]]), K=3)
        >>> cols[:3].tolist(), x[:, :3].tolist()
        ([0, 1, 5], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    """
    idx, mask = _cells(codes, K)
    width = _flat(codes).shape[1] * K
    used = np.unique(np.asarray(idx)[np.asarray(mask)])
    size = min(width, max(256, -(-len(used) // 256) * 256))
    cols = jnp.asarray(np.pad(used, (0, size - len(used)), constant_values=width))
    return _design(jnp.asarray(codes), cols, K=K), cols


def linear_readout_fit(
    codes,
    labels,
    *,
    K: int,
    num_classes: int,
    l2: float = 1e-2,
    steps: int = 30,
    weights=None,
) -> LinearReadout:
    r"""Softmax regression on the one-hot cells of ``codes`` (read-out (c)):
    :func:`softmax_regression_fit` (L2 strength ``l2``, ``steps`` L-BFGS iterations) on the
    columns active in some training code (:func:`one_hot_design`), the other rows of ``w``
    0 — the optimum of the same objective on all ``M·Q·K`` columns.

    Example:
        >>> import numpy as np
        >>> from memjax.memories.sparsey.readout import linear_readout_fit, linear_readout_predict
        >>> codes = np.array([[0, 1], [0, 1], [2, 3], [2, 2]]); y = np.array([0, 0, 1, 1])
        >>> r = linear_readout_fit(codes, y, K=4, num_classes=2, l2=1e-3)
        >>> r.w.shape, np.asarray(linear_readout_predict(r, codes)).tolist()
        ((8, 2), [0, 0, 1, 1])
    """
    codes = jnp.asarray(codes)
    width = _flat(codes).shape[1] * K
    if isinstance(codes, jax.core.Tracer):
        cols = jnp.arange(width)
        x = _design(codes, cols, K=K)
    else:
        x, cols = one_hot_design(codes, K=K)
    m = softmax_regression_fit(
        x, labels, num_classes=num_classes, l2=l2, steps=steps, weights=weights
    )
    w = jnp.zeros((width, num_classes), jnp.float32).at[cols].set(m.w, mode="drop")
    return LinearReadout(w, m.b)


@jax.jit
def linear_readout_predict(params: LinearReadout, codes):
    """Argmax class of the linear read-out."""
    K = params.w.shape[0] // _flat(codes).shape[1]
    idx, mask = _cells(codes, K)
    return jnp.argmax(_logits(params, idx, mask.astype(jnp.float32)), axis=-1)
