"""tiny-shakespeare (vendored, public domain), character-level, nanoGPT style.

Example:
    >>> from memjax.data import sample_char_batch, tiny_shakespeare
    >>> data = tiny_shakespeare()
    >>> x, y = sample_char_batch(data.train, batch_size=2, block_size=8, seed=0, step=0)
    >>> x.shape, bool((x[:, 1:] == y[:, :-1]).all())
    ((2, 8), True)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from memjax.data._common import vendor_path
from memjax.data.errors import bad_arg

__all__ = [
    "CharDataset",
    "CharVocab",
    "load_tiny_shakespeare",
    "sample_char_batch",
    "tiny_shakespeare",
]


@functools.cache
def load_tiny_shakespeare() -> str:
    """The whole tiny-shakespeare text (1,115,394 characters, 65 distinct).

    Example:
        >>> len(load_tiny_shakespeare())
        1115394
    """
    return vendor_path("tinyshakespeare", "input.txt").read_text(encoding="utf-8")


@dataclass(frozen=True)
class CharVocab:
    """Character vocabulary: ``chars`` sorted unique characters; id i <-> ``chars[i]``.

    Example:
        >>> v = CharVocab.from_text("hello")
        >>> v.size, v.encode("hell").tolist(), v.decode([3, 2])
        (4, [1, 0, 2, 2], 'ol')
    """

    chars: str
    _stoi: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_stoi", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """``(len(text),) int32`` ids; raises ``ValueError`` for characters not in the vocab."""
        try:
            return np.fromiter((self._stoi[c] for c in text), np.int32, count=len(text))
        except KeyError as e:
            raise bad_arg("text", "characters from the vocabulary", e.args[0]) from None

    def decode(self, ids) -> str:
        """Inverse of :meth:`encode` for any iterable of ids."""
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))


class CharDataset(NamedTuple):
    """``train (N_train,) int32``, ``val (N_val,) int32`` and the :class:`CharVocab`."""

    train: np.ndarray
    val: np.ndarray
    vocab: CharVocab


@functools.cache
def _dataset(val_fraction: float) -> CharDataset:
    text = load_tiny_shakespeare()
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    n = int((1.0 - val_fraction) * len(ids))
    train, val = ids[:n], ids[n:]
    train.flags.writeable = False
    val.flags.writeable = False
    return CharDataset(train, val, vocab)


def tiny_shakespeare(val_fraction: float = 0.1) -> CharDataset:
    """Encode tiny-shakespeare and split it: the first 90 % train, the last 10 % val.

    As in nanoGPT (``n = int(0.9 * len(data))``). The vocabulary is the 65 sorted unique
    characters. The arrays are cached and read-only.

    Example:
        >>> ds = tiny_shakespeare()
        >>> ds.vocab.size, len(ds.train) + len(ds.val)
        (65, 1115394)
    """
    if not isinstance(val_fraction, float | int) or not 0.0 < val_fraction < 1.0:
        raise bad_arg("val_fraction", "a number in (0, 1)", val_fraction)
    return _dataset(float(val_fraction))


def sample_char_batch(
    data: np.ndarray, batch_size: int, block_size: int, seed: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(x, y)`` blocks: ``x = data[i:i+block]``, ``y = data[i+1:i+1+block]``.

    A pure function of ``(seed, step)``: offsets come from
    ``np.random.default_rng([seed, step])``, so a resumed run sees the same batches. Returns
    ``x, y`` of shape ``(batch_size, block_size)`` and dtype int32.

    Example:
        >>> ds = tiny_shakespeare()
        >>> x, y = sample_char_batch(ds.train, 4, 8, seed=0, step=10)
        >>> x.shape, bool((x[:, 1:] == y[:, :-1]).all())
        ((4, 8), True)
    """
    data = np.asarray(data)
    if data.ndim != 1:
        raise bad_arg("data", "a 1-D array of token ids", f"shape {data.shape}")
    if not isinstance(block_size, int | np.integer) or not 0 < block_size < len(data):
        raise bad_arg("block_size", f"an int in [1, {len(data) - 1}] (len(data) - 1)", block_size)
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise bad_arg("batch_size", "a positive int", batch_size)
    for name, v in (("seed", seed), ("step", step)):
        if not isinstance(v, int | np.integer) or v < 0:
            raise bad_arg(name, "a non-negative int", v)
    rng = np.random.default_rng([int(seed), int(step)])
    ix = rng.integers(0, len(data) - block_size, size=batch_size)
    offs = ix[:, None] + np.arange(block_size)[None, :]
    return data[offs].astype(np.int32), data[offs + 1].astype(np.int32)
