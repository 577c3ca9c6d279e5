"""The Sparsey linear read-out and the density rule against independent references
(scikit-learn's logistic regression, NumPy one-hot designs, the rule's formula)."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from experiments.sparsey.pipeline import MNIST, calibrate
from memjax.memories.sparsey.readout import (
    linear_readout_fit,
    linear_readout_predict,
    one_hot_design,
    softmax_regression_cv,
    softmax_regression_fit,
    stratified_folds,
)

N, D, C, L2, STEPS = 45, 6, 3, 0.05, 60  # one solver compile per shape


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    y = np.arange(N) % C
    x = (rng.random((N, D)) < 0.25 + 0.5 * (np.arange(D)[None] % C == y[:, None])).astype(
        np.float32
    )
    return x, y


def test_softmax_regression_is_sklearns_l2_logistic_regression(problem):
    x, y = problem
    m = softmax_regression_fit(x, y, num_classes=C, l2=L2, steps=STEPS)
    ref = LogisticRegression(C=1 / (L2 * N), tol=1e-10, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(np.asarray(m.w), ref.coef_.T, atol=2e-4)
    b = np.asarray(m.b)  # the bias is unpenalised: defined up to a shared shift
    np.testing.assert_allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(), atol=2e-4)


def test_zero_weights_drop_rows(problem):
    x, y = problem
    keep = stratified_folds(y, 3) != 0  # the rows (and shape) of a cross-validation fold
    sub = softmax_regression_fit(x[keep], y[keep], num_classes=C, l2=L2, steps=STEPS)
    w = softmax_regression_fit(x, y, num_classes=C, l2=L2, steps=STEPS, weights=keep.astype(float))
    np.testing.assert_allclose(np.asarray(w.w), np.asarray(sub.w), atol=2e-4)


def _numpy_one_hot(codes, K):
    c = codes.reshape(len(codes), -1)
    out = np.zeros((len(c), c.shape[1] * K), np.float32)
    for i, row in enumerate(c):
        for s, k in enumerate(row):
            if k >= 0:
                out[i, s * K + k] = 1
    return out


def test_code_readout_is_the_regression_on_all_one_hot_cells():
    rng = np.random.default_rng(1)
    K = 4
    y = np.arange(30) % 2
    codes = np.where(
        rng.random((30, 2, 3)) < 0.7, 2 * y[:, None, None], rng.integers(0, K, (30, 2, 3))
    )
    codes[rng.random(codes.shape) < 0.1] = -1  # gated-off macs
    x, cols = one_hot_design(codes, K=K)
    full = _numpy_one_hot(codes, K)
    used = np.flatnonzero(full.any(0))
    np.testing.assert_array_equal(np.asarray(cols)[: len(used)], used)
    np.testing.assert_array_equal(np.asarray(x)[:, : len(used)], full[:, used])
    assert not np.asarray(x)[:, len(used) :].any()  # padding columns are empty
    r = linear_readout_fit(codes, y, K=K, num_classes=2, l2=L2, steps=STEPS)
    ref = softmax_regression_fit(full, y, num_classes=2, l2=L2, steps=STEPS)
    np.testing.assert_allclose(np.asarray(r.w), np.asarray(ref.w), atol=2e-4)
    assert not np.asarray(r.w)[np.setdiff1d(np.arange(full.shape[1]), used)].any()
    logits = full @ np.asarray(ref.w) + np.asarray(ref.b)
    np.testing.assert_array_equal(np.asarray(linear_readout_predict(r, codes)), logits.argmax(1))


def test_cross_validation_scores_are_held_out_accuracies(problem):
    x, y = problem
    grid = (1e-3, 1.0)
    best, scores = softmax_regression_cv(x, y, num_classes=C, l2_grid=grid, folds=3, steps=STEPS)
    fold = stratified_folds(y, 3)
    for c in range(C):  # every fold holds N / (3·C) items of each class
        assert np.bincount(fold[y == c], minlength=3).tolist() == [N // (3 * C)] * 3
    assert stratified_folds(np.arange(7) % 2, 2).sum() == 3  # 4 + 3 items: 2 + 1 in fold 1
    want = []
    for l2 in grid:  # refit on each fold's training rows (subsetting, not weights)
        acc = []
        for f in range(3):
            tr, te = fold != f, fold == f
            m = softmax_regression_fit(x[tr], y[tr], num_classes=C, l2=l2, steps=STEPS)
            acc.append(np.mean((x[te] @ np.asarray(m.w) + np.asarray(m.b)).argmax(1) == y[te]))
        want.append(np.mean(acc))
    np.testing.assert_allclose(scores, want, atol=1e-6)
    assert best == max(g for g, s in zip(grid, want) if s == max(want))
    with pytest.raises(ValueError, match="l2_grid"):
        softmax_regression_cv(x, y, num_classes=C, l2_grid=(0.0,))
    with pytest.raises(ValueError, match="folds"):
        stratified_folds(y, 1)


def test_bad_fit_arguments_name_the_argument(problem):
    x, y = problem
    with pytest.raises(ValueError, match="l2"):
        softmax_regression_fit(x, y, num_classes=C, l2=0.0)
    with pytest.raises(ValueError, match="labels"):
        softmax_regression_fit(x, y[:-1], num_classes=C)
    with pytest.raises(ValueError, match="weights"):
        softmax_regression_fit(x, y, num_classes=C, weights=np.ones(3))


@pytest.mark.parametrize("rho", [0.02, 0.0665, 0.133, 0.3, 0.6])
def test_density_rule_formula(rho):
    n = 1000
    x = np.zeros((4, n), np.uint8)
    x[:, : round(rho * n)] = 1
    rho0 = 0.133
    cfg = calibrate(MNIST, x, reference_density=rho0)
    r = (round(rho * n) / n) / rho0
    assert cfg.saturation == pytest.approx(min(0.5, MNIST.saturation * r))
    assert cfg.gate_min == max(1, round(MNIST.gate_min * r))
    # Everything else is kept.
    assert cfg.replace(saturation=MNIST.saturation, gate_min=MNIST.gate_min) == MNIST
    assert calibrate(MNIST.replace(saturation=None), x).saturation is None
