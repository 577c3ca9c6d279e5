"""tensorflow-datasets through ``tfds.data_source`` (ArrayRecord; works without TensorFlow).

Nothing is downloaded: the dataset must already be prepared, in ArrayRecord format, under
``data_dir`` (default: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).

Example:
    >>> import tensorflow_datasets as tfds
    >>> from memjax.data import tfds_source
    >>> with tfds.testing.mock_data(num_examples=4):
    ...     arrays = tfds_source("mnist", "train").to_numpy()
    >>> arrays["image"].shape
    (4, 28, 28, 1)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from memjax.data.errors import DatasetUnavailableError

__all__ = ["TfdsSource", "tfds_source"]


def _how_to(name: str, data_dir) -> str:
    where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    return (
        f"prepare it on a machine with internet: `tfds build {name} --file_format=array_record "
        f"--data_dir DIR` (needs `pip install tensorflow-datasets`), then copy DIR/{name} to "
        f"{where} on this machine, or pass data_dir=DIR / set TFDS_DATA_DIR=DIR"
    )


class TfdsSource(Sequence):
    """Random-access records of a prepared TFDS split, converted to numpy.

    ``src[i]`` is a dict ``feature -> np.ndarray`` (strings stay ``bytes``); ``len(src)`` is
    the number of records; :meth:`take` and :meth:`to_numpy` stack records into
    ``feature -> (n, ...) array``. The underlying ``tfds`` source is ``src.source`` and its
    ``DatasetInfo`` is ``src.info``.
    """

    def __init__(self, source: Any):
        self.source = source
        self.info = getattr(source, "dataset_info", None)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.take(range(*i.indices(len(self))))
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} records")
        return {k: np.asarray(v) for k, v in self.source[i].items()}

    def take(self, indices: Iterable[int]) -> dict[str, np.ndarray]:
        """Stack the records at ``indices``: ``feature -> (len(indices), ...)``."""
        recs = [self[i] for i in indices]
        if not recs:
            return {}
        return {k: np.stack([r[k] for r in recs]) for k in recs[0]}

    def to_numpy(self, limit: int | None = None) -> dict[str, np.ndarray]:
        """All records (or the first ``limit``) stacked into arrays."""
        n = len(self) if limit is None else min(int(limit), len(self))
        return self.take(range(n))


def tfds_source(name: str, split: str, data_dir: str | os.PathLike | None = None) -> TfdsSource:
    """Open a prepared TFDS dataset split as a :class:`TfdsSource` (numpy records).

    Calls ``tfds.data_source(name, split=split, data_dir=data_dir, download=False)``. A missing,
    unknown or non-ArrayRecord dataset raises :class:`~memjax.data.DatasetUnavailableError`
    explaining how to prepare it. Offline tests use ``tfds.testing.mock_data``.

    Example:
        >>> import tensorflow_datasets as tfds
        >>> with tfds.testing.mock_data(num_examples=4):
        ...     src = tfds_source("mnist", "train")
        ...     arrays = src.to_numpy()
        >>> arrays["image"].shape, arrays["label"].shape
        ((4, 28, 28, 1), (4,))
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - a dependency
        raise DatasetUnavailableError(
            "tensorflow-datasets is not installed: `pip install tensorflow-datasets "
            "importlib_resources`"
        ) from e
    try:
        src = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DatasetUnavailableError(
            f"TFDS has no dataset named {name!r} (for a custom builder, import the module that "
            f"defines it first). If it exists: {_how_to(name, data_dir)}"
        ) from e
    except Exception as e:  # tfds raises many kinds of error for missing data
        raise DatasetUnavailableError(
            f"TFDS dataset {name!r} split {split!r} is not prepared as ArrayRecord "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            + _how_to(name, data_dir)
        ) from e
    return TfdsSource(src)
