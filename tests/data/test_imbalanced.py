"""Imbalanced offline sets: long-tailed digits/Fashion-MNIST, procedural lesions, MedMNIST .npz."""

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

from memjax.data import (
    IDRID_PROPORTIONS,
    ISIC_PROPORTIONS,
    DatasetUnavailableError,
    lesion_images,
    lesion_split,
    load_medmnist_npz,
    long_tailed_counts,
    long_tailed_digits,
    long_tailed_fashion_mnist,
    upsample,
)


def test_long_tailed_counts_are_geometric():
    counts = long_tailed_counts(500, 10, 50)
    want = [int(np.floor(500 * 50 ** (-c / 9) + 1e-9)) for c in range(10)]
    assert counts == want and counts[0] == 500 and counts[-1] == 10
    with pytest.raises(ValueError, match="imbalance"):
        long_tailed_counts(10, 3, 0.5)


def test_upsample_equals_scipy_bilinear_with_aligned_corners():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 7, 3))
    up = upsample(x, 13)
    grid = (np.arange(5), np.arange(7))
    rows, cols = np.meshgrid(np.linspace(0, 4, 13), np.linspace(0, 6, 13), indexing="ij")
    for n in range(2):
        ref = RegularGridInterpolator(grid, x[n])(np.stack([rows, cols], -1))
        np.testing.assert_allclose(up[n], ref, atol=1e-12)
    with pytest.raises(ValueError, match="images"):
        upsample(np.ones(4), 8)


@pytest.mark.parametrize(
    "profile, proportions", [("idrid", IDRID_PROPORTIONS), ("isic", ISIC_PROPORTIONS)]
)
def test_long_tailed_digits_follow_the_profile(profile, proportions):
    s = long_tailed_digits(profile, size=16, seed=1)
    assert s.x_train.shape[1:] == (16, 16, 1) and s.x_train.dtype == np.float32
    assert 0 <= s.x_train.min() and s.x_train.max() <= 1
    p = np.asarray(proportions) / sum(proportions)
    for y in (s.y_train, s.y_test):
        np.testing.assert_allclose(np.bincount(y) / len(y), p, atol=0.01)
    again = long_tailed_digits(profile, size=16, seed=1)
    np.testing.assert_array_equal(again.x_train, s.x_train)
    with pytest.raises(ValueError, match="profile"):
        long_tailed_digits("chest")
    with pytest.raises(ValueError, match="test_fraction"):
        long_tailed_digits("isic", test_fraction=1.5)


def test_lesions_are_seeded_and_class_dependent():
    x, y = lesion_images((40, 40, 40), size=16, seed=3)
    x2, _ = lesion_images((40, 40, 40), size=16, seed=3)
    np.testing.assert_array_equal(x, x2)
    assert x.shape == (120, 16, 16, 3) and np.bincount(y).tolist() == [40, 40, 40]
    assert not np.array_equal(x, lesion_images((40, 40, 40), size=16, seed=4)[0])
    # nearest class centroid on simple colour/texture features, fit on half, beats chance
    centre = x[:, 4:12, 4:12]
    feats = np.concatenate([centre.mean((1, 2)), centre.std((1, 2)), x.std((1, 2))], axis=1)
    train = np.arange(120) % 2 == 0
    cents = np.stack([feats[train & (y == c)].mean(0) for c in range(3)])
    pred = np.argmin(((feats[~train, None] - cents[None]) ** 2).sum(-1), axis=1)
    assert (pred == y[~train]).mean() > 0.6
    s = lesion_split((5, 3, 9), (2, 1, 4), size=16, seed=0)
    assert np.bincount(s.y_train).tolist() == [5, 3, 9] and len(s.y_test) == 7
    with pytest.raises(ValueError, match="counts"):
        lesion_images((1, 2))


def test_long_tailed_fashion_mnist():
    try:
        s = long_tailed_fashion_mnist(10, n_max=60, seed=0)
    except DatasetUnavailableError:
        pytest.skip("dataset-fashion-mnist is not installed")
    assert np.bincount(s.y_train, minlength=10).tolist() == long_tailed_counts(60, 10, 10)
    assert np.bincount(s.y_test, minlength=10).tolist() == long_tailed_counts(12, 10, 10)
    assert s.x_train.shape[1:] == (28, 28, 1) and s.x_train.max() <= 1
    with pytest.raises(ValueError, match="test"):
        long_tailed_fashion_mnist(test="uniform")


def test_medmnist_npz_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 7, (n, 1))
    path = tmp_path / "dermamnist.npz"
    np.savez(path, **arrays)
    data = load_medmnist_npz(path)
    np.testing.assert_allclose(data.x_val, arrays["val_images"] / 255.0, rtol=1e-6)
    assert data.y_test.tolist() == arrays["test_labels"].ravel().tolist()
    assert load_medmnist_npz(path, size=32).x_train.shape == (6, 32, 32, 3)
    gray = {k: (v[..., 0] if k.endswith("images") else v) for k, v in arrays.items()}
    np.savez(tmp_path / "gray.npz", **gray)
    assert load_medmnist_npz(tmp_path / "gray.npz").x_train.shape == (6, 28, 28, 1)
    with pytest.raises(DatasetUnavailableError, match="zenodo"):
        load_medmnist_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", train_images=arrays["train_images"])
    with pytest.raises(ValueError, match="path"):
        load_medmnist_npz(tmp_path / "bad.npz")
    multi = dict(arrays, train_labels=rng.integers(0, 2, (6, 14)))
    np.savez(tmp_path / "chest.npz", **multi)
    with pytest.raises(ValueError, match="single-label"):
        load_medmnist_npz(tmp_path / "chest.npz")
