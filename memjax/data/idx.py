"""IDX files (the MNIST family's format) and Fashion-MNIST from Debian's ``dataset-fashion-mnist``.

An IDX file is a big-endian header — two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8,
``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions
``n`` — then ``n`` big-endian uint32 sizes, then the data in C order. Files may be gzipped
(``*.gz``). Nothing is downloaded: Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; MIT licence) is read
from a folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``: the ``root``
argument, else ``$MEMJAX_FASHION_MNIST``, else ``/usr/share/datasets/fashion-mnist`` (Debian's
``apt-get install dataset-fashion-mnist``).

Example:
    >>> import gzip, os, tempfile
    >>> import numpy as np
    >>> from memjax.data import load_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "a-idx2-ubyte.gz")
    >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    >>> with gzip.open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 8, 2]) + np.array([2, 3], ">u4").tobytes() + a.tobytes())
    >>> load_idx(path).tolist()
    [[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from memjax.data._common import Split, as_rng, split_per_class
from memjax.data.errors import DatasetUnavailableError, bad_arg

__all__ = ["FASHION_MNIST_CLASSES", "fashion_mnist_split", "load_fashion_mnist", "load_idx"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
_HOW = (
    "Fashion-MNIST is read from disk, never downloaded: `apt-get install dataset-fashion-mnist` "
    "(Debian; files land in /usr/share/datasets/fashion-mnist), or put train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (from "
    "https://github.com/zalandoresearch/fashion-mnist) in a folder and pass root= or set "
    "$MEMJAX_FASHION_MNIST"
)


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a native-endian array of its stored shape.

    Raises ``ValueError`` naming ``path`` for a malformed header or a size mismatch.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> p = os.path.join(tempfile.mkdtemp(), "l-idx1-ubyte")
        >>> head = bytes([0, 0, 8, 1]) + np.array([3], ">u4").tobytes()
        >>> _ = open(p, "wb").write(head + bytes([7, 8, 9]))
        >>> load_idx(p).tolist()
        [7, 8, 9]
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise bad_arg("path", "an IDX file (header 0x00 0x00 <type> <ndim>)", str(path))
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], ">u4"))
    dtype = np.dtype(_DTYPES[raw[2]])
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise bad_arg(
            "path",
            f"{count * dtype.itemsize} data bytes for shape {shape}",
            f"{len(raw) - header} bytes in {path}",
        )
    return np.frombuffer(raw, dtype, count, header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: str | os.PathLike | None, stem: str) -> Path:
    folders = (
        [Path(root)]
        if root is not None
        else (
            [Path(os.environ["MEMJAX_FASHION_MNIST"])]
            if os.environ.get("MEMJAX_FASHION_MNIST")
            else [_DEBIAN]
        )
    )
    for folder in folders:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    raise DatasetUnavailableError(
        f"Fashion-MNIST file {stem}[.gz] not found in {', '.join(map(str, folders))}. {_HOW}"
    )


def load_fashion_mnist(
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    dtype=np.uint8,
    flatten: bool = False,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST's ``"train"`` (60,000) or ``"test"`` (10,000) images.

    Returns ``(x, y)``: ``x`` is ``(N, 28, 28)`` (``(N, 784)`` with ``flatten=True``), uint8
    0..255 by default or scaled to [0, 1] for a float ``dtype``; ``y`` is ``(N,) int32`` in 0..9
    (names in :data:`FASHION_MNIST_CLASSES`). ``seed`` gives a deterministic shuffle. Raises
    :class:`~memjax.data.DatasetUnavailableError` saying how to get the files.

    Example:
        >>> from memjax.data import load_fashion_mnist
        >>> try:
        ...     x, y = load_fashion_mnist("test")
        ...     ok = x.shape == (10000, 28, 28) and int(y.max()) == 9
        ... except DatasetUnavailableError as e:
        ...     ok = "dataset-fashion-mnist" in str(e)
        >>> ok
        True
    """
    if split not in ("train", "test"):
        raise bad_arg("split", "'train' or 'test'", split)
    prefix = "train" if split == "train" else "t10k"
    x = load_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
    y = load_idx(_find(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int32)
    if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8 or y.shape != x.shape[:1]:
        raise DatasetUnavailableError(
            f"Fashion-MNIST files hold images {x.shape} {x.dtype} and labels {y.shape}; expected "
            f"(N, 28, 28) uint8 and (N,). {_HOW}"
        )
    if seed is not None:
        perm = as_rng(seed).permutation(len(y))
        x, y = x[perm], y[perm]
    x = np.array(x, dtype=dtype) if np.dtype(dtype) == np.uint8 else (x / 255.0).astype(dtype)
    if flatten:
        x = x.reshape(len(x), -1)
    return x, y


def _per_class(x, y, n, name: str, per_class: int, rng: np.random.Generator):
    """``n`` random images of every class (all, shuffled, for ``None``)."""
    if n is None:
        perm = rng.permutation(len(y))
        return x[perm], y[perm]
    if not isinstance(n, int | np.integer) or not 0 < n < per_class:
        raise bad_arg(name, f"an int in [1, {per_class - 1}] or None", n)
    s = split_per_class(x, y, int(n), rng)
    return s.x_train, s.y_train


def fashion_mnist_split(
    n_train_per_class: int | None = None,
    *,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    dtype=np.uint8,
    flatten: bool = False,
    n_test_per_class: int | None = None,
) -> Split:
    """Fashion-MNIST as a :class:`~memjax.data.Split`, optionally subsampled per class.

    With ``n_train_per_class=None`` the official 60,000/10,000 split is returned (shuffled for
    ``seed``); otherwise ``n_train_per_class`` images per class are drawn from the official
    training set and ``n_test_per_class`` (default: all) from the official test set, so test
    images are never seen in training.

    Example:
        >>> from memjax.data import fashion_mnist_split
        >>> try:
        ...     s = fashion_mnist_split(20, n_test_per_class=5, seed=0)
        ...     ok = s.x_train.shape == (200, 28, 28) and s.x_test.shape == (50, 28, 28)
        ... except DatasetUnavailableError:
        ...     ok = True
        >>> ok
        True
    """
    rng = as_rng(seed)
    x_tr, y_tr = load_fashion_mnist("train", root=root, dtype=dtype, flatten=flatten)
    x_te, y_te = load_fashion_mnist("test", root=root, dtype=dtype, flatten=flatten)
    x_tr, y_tr = _per_class(x_tr, y_tr, n_train_per_class, "n_train_per_class", 6000, rng)
    x_te, y_te = _per_class(x_te, y_te, n_test_per_class, "n_test_per_class", 1000, rng)
    return Split(x_tr, y_tr, x_te, y_te)
