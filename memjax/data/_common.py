"""Shared helpers: seeds, splits and the ``Split`` container."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from memjax.data.errors import DatasetUnavailableError, bad_arg

__all__ = ["Split", "as_rng", "binarize", "split_per_class", "vendor_path"]


class Split(NamedTuple):
    """A train/test split: ``x_train (N, ...)``, ``y_train (N,) int32``, ``x_test``, ``y_test``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """``np.random.default_rng(seed)``; a ``Generator`` passes through (and is advanced)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, int | np.integer):
        return np.random.default_rng(seed)
    raise bad_arg("seed", "an int, a numpy Generator or None", seed)


def vendor_path(*parts: str) -> Path:
    """Path of a file vendored under ``memjax/data/vendor``; raises if it is missing."""
    path = Path(str(resources.files("memjax.data").joinpath("vendor", *parts)))
    if not path.exists():
        raise DatasetUnavailableError(
            f"vendored file {path} is missing; reinstall memjax (the wheel ships "
            "memjax/data/vendor/**) or copy the file there from the memjax repository"
        )
    return path


def binarize(x: np.ndarray, threshold: float | None = None, dtype=np.uint8) -> np.ndarray:
    """Return ``(x > threshold).astype(dtype)``: 0/1 values, same shape as ``x``.

    The default threshold is 127 for integer inputs (0..255 pixels) and 0.5 for float inputs.

    Example:
        >>> import numpy as np
        >>> binarize(np.array([0, 100, 200], np.uint8)).tolist()
        [0, 0, 1]
    """
    x = np.asarray(x)
    if threshold is None:
        threshold = 127 if np.issubdtype(x.dtype, np.integer) else 0.5
    return (x > threshold).astype(dtype)


def split_per_class(
    x: np.ndarray, y: np.ndarray, n_per_class: int, seed: int | np.random.Generator | None = 0
) -> Split:
    """Take ``n_per_class`` random examples of every class for training, the rest for testing.

    Both halves are shuffled (deterministically for an int seed). Returns a :class:`Split`;
    ``y`` comes back as int32.

    Example:
        >>> import numpy as np
        >>> s = split_per_class(np.arange(20)[:, None], np.repeat([0, 1], 10), 3, seed=0)
        >>> s.x_train.shape, s.x_test.shape
        ((6, 1), (14, 1))
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise bad_arg("y", f"{x.shape[0]} labels (one per row of x)", y.shape[0])
    classes, counts = np.unique(y, return_counts=True)
    if not isinstance(n_per_class, int | np.integer) or not 0 < n_per_class <= counts.min():
        raise bad_arg(
            "n_per_class", f"an int in [1, {counts.min()}] (smallest class size)", n_per_class
        )
    rng = as_rng(seed)
    train_idx = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        train_idx.append(rng.choice(idx, size=n_per_class, replace=False))
    train = np.concatenate(train_idx)
    test = np.setdiff1d(np.arange(len(y)), train)
    train = rng.permutation(train)
    test = rng.permutation(test)
    return Split(x[train], y[train].astype(np.int32), x[test], y[test].astype(np.int32))
