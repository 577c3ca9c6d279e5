"""IDX reader against hand-written files, and the Fashion-MNIST loader's paths and errors."""

import gzip

import numpy as np
import pytest

from memjax.data import DatasetUnavailableError, fashion_mnist_split, load_fashion_mnist, load_idx


def _write_idx(path, array, code, compress):
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(header + body)


@pytest.mark.parametrize(
    ("dtype", "code"),
    [(np.uint8, 8), (np.int16, 11), (np.int32, 12), (np.float32, 13), (np.float64, 14)],
)
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, code, compress):
    a = (
        (np.arange(24).reshape(2, 3, 4) * 3 - 5).astype(dtype)
        if dtype != np.uint8
        else np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    )
    path = tmp_path / ("a-idx3" + (".gz" if compress else ""))
    _write_idx(path, a, code, compress)
    b = load_idx(path)
    assert b.shape == a.shape and b.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(b, a)


def test_idx_rejects_bad_header_and_truncation(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="path"):
        load_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + np.array([5], ">u4").tobytes() + b"\x01\x02")
    with pytest.raises(ValueError, match="5 data bytes"):
        load_idx(short)


@pytest.fixture
def fake_fashion(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 30)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.tile(np.arange(10, dtype=np.uint8), n // 10)
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", x, 8, True)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", y, 8, False)
    return tmp_path


def test_fashion_mnist_from_root_and_env(fake_fashion, monkeypatch):
    x, y = load_fashion_mnist("test", root=fake_fashion)
    assert x.shape == (30, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int32
    raw = load_idx(fake_fashion / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(x, raw)
    xf, _ = load_fashion_mnist("test", root=fake_fashion, dtype=np.float32, flatten=True)
    np.testing.assert_allclose(xf, raw.reshape(30, -1) / 255.0, rtol=1e-6)
    monkeypatch.setenv("MEMJAX_FASHION_MNIST", str(fake_fashion))
    xs, ys = load_fashion_mnist("train", seed=3)
    x0, y0 = load_fashion_mnist("train")
    perm = np.random.default_rng(3).permutation(60)
    np.testing.assert_array_equal(xs, x0[perm])
    np.testing.assert_array_equal(ys, y0[perm])


def test_fashion_mnist_split_per_class_and_disjoint(fake_fashion):
    s = fashion_mnist_split(2, n_test_per_class=1, seed=0, root=fake_fashion)
    assert s.x_train.shape == (20, 28, 28) and s.x_test.shape == (10, 28, 28)
    assert np.bincount(s.y_train).tolist() == [2] * 10
    test_pool = load_idx(fake_fashion / "t10k-images-idx3-ubyte.gz")
    assert all((test_pool == img).all(axis=(1, 2)).any() for img in s.x_test)
    full = fashion_mnist_split(seed=1, root=fake_fashion)
    assert full.x_train.shape[0] == 60 and full.x_test.shape[0] == 30


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("val", root=tmp_path)
    with pytest.raises(DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path)
