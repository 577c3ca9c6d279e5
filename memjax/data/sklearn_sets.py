"""scikit-learn's bundled datasets (no download): digits (8×8) and breast cancer.

Example:
    >>> from memjax.data import load_breast_cancer_split, load_digits_split
    >>> load_digits_split().x_train.shape, load_breast_cancer_split().x_train.shape
    ((1347, 64), (426, 30))
"""

from __future__ import annotations

import numpy as np

from memjax.data._common import Split
from memjax.data.errors import DatasetUnavailableError, bad_arg

__all__ = ["load_breast_cancer_split", "load_digits_split"]


def _sklearn():
    try:
        import sklearn.datasets as ds
        from sklearn.model_selection import train_test_split
    except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
        raise DatasetUnavailableError(
            "digits and breast-cancer come with scikit-learn: `pip install scikit-learn`"
        ) from e
    return ds, train_test_split


def _split(x, y, test_size, seed) -> Split:
    if not isinstance(test_size, float) or not 0.0 < test_size < 1.0:
        raise bad_arg("test_size", "a float in (0, 1)", test_size)
    _, tts = _sklearn()
    xtr, xte, ytr, yte = tts(x, y, test_size=test_size, random_state=seed, stratify=y)
    return Split(xtr, ytr.astype(np.int32), xte, yte.astype(np.int32))


def load_digits_split(
    test_size: float = 0.25, seed: int = 0, *, scale: bool = True, flatten: bool = True
) -> Split:
    """scikit-learn ``load_digits``: 1,797 8×8 digits, stratified train/test split.

    Returns a :class:`~memjax.data.Split`: ``x (n, 64) float32`` (or ``(n, 8, 8)``), values
    0..16 divided by 16 when ``scale`` (default), ``y (n,) int32`` in 0..9. The split is
    ``sklearn.model_selection.train_test_split(..., random_state=seed, stratify=y)``.

    Example:
        >>> s = load_digits_split(seed=0)
        >>> s.x_train.shape[1], len(s.y_train) + len(s.y_test)
        (64, 1797)
    """
    ds, _ = _sklearn()
    d = ds.load_digits()
    x = d.data.astype(np.float32) / (16.0 if scale else 1.0)
    if not flatten:
        x = x.reshape(-1, 8, 8)
    return _split(x, d.target, test_size, seed)


def load_breast_cancer_split(
    test_size: float = 0.25, seed: int = 0, *, standardize: bool = False
) -> Split:
    """scikit-learn ``load_breast_cancer``: 569 × 30 features, 212 malignant (0) / 357 benign (1).

    Stratified split as in :func:`load_digits_split`. ``x`` is float32; with ``standardize``
    each feature is centred and scaled by the *training* mean and standard deviation.

    Example:
        >>> s = load_breast_cancer_split(seed=0, standardize=True)
        >>> s.x_train.shape[1], len(s.y_train) + len(s.y_test)
        (30, 569)
    """
    ds, _ = _sklearn()
    d = ds.load_breast_cancer()
    s = _split(d.data.astype(np.float32), d.target, test_size, seed)
    if standardize:
        mu = s.x_train.mean(0)
        sd = s.x_train.std(0) + 1e-8
        s = s._replace(x_train=(s.x_train - mu) / sd, x_test=(s.x_test - mu) / sd)
    return s
