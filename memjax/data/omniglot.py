"""Omniglot (Lake et al. 2015), read straight from the vendored MIT-licensed zips.

Vendored under ``memjax/data/vendor/omniglot``: ``images_background_small1.zip`` (5 alphabets,
136 characters), ``images_background_small2.zip`` (5 alphabets, 156 characters), each with 20
drawers per character, and ``all_runs.zip`` (the 20 one-shot classification runs).

Greek and Latin (50 characters, 1,000 images) are in both small sets, byte-identically, so the
two sets hold 5,840 files but 242 distinct characters (4,840 images). :func:`load_omniglot`
removes the duplicates by default.

Images are decoded with PIL from the zips (no extraction) and cached in memory for the session.
Pixel convention: **ink = 1.0, background = 0.0** (the PNGs store background as white).

Example:
    >>> from memjax.data import load_omniglot
    >>> data = load_omniglot("background_small1", size=28)
    >>> data.images.shape[1:], float(data.images.max())
    ((28, 28), 1.0)
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
from typing import NamedTuple

import numpy as np

from memjax.data._common import vendor_path
from memjax.data.errors import DatasetUnavailableError, bad_arg

__all__ = [
    "OMNIGLOT_SUBSETS",
    "OmniglotData",
    "OmniglotRuns",
    "load_omniglot",
    "load_omniglot_runs",
]

OMNIGLOT_SUBSETS = ("background_small1", "background_small2")
_NAME_RE = re.compile(
    r"^images_(?P<subset>[^/]+)/(?P<alpha>[^/]+)/(?P<char>character\d+)/"
    r"(?P<img>\d+)_(?P<drawer>\d+)\.png$"
)


class OmniglotData(NamedTuple):
    """Omniglot images with labels (``M`` images).

    - ``images``: ``(M, H, W) float32`` in [0, 1], ink = 1 (``H = W = 105`` unless resized).
    - ``character``: ``(M,) int32`` class id in ``[0, len(character_names))``.
    - ``alphabet``: ``(M,) int32`` index into ``alphabet_names``.
    - ``drawer``: ``(M,) int32`` drawer index 0..19 (from the ``_01``.. ``_20`` file suffix).
    - ``character_names``: ``"Alphabet/characterNN"`` per class id (prefixed by the subset
      when ``dedupe=False``).
    - ``alphabet_names``: sorted alphabet names.
    """

    images: np.ndarray
    character: np.ndarray
    alphabet: np.ndarray
    drawer: np.ndarray
    character_names: tuple[str, ...]
    alphabet_names: tuple[str, ...]


class OmniglotRuns(NamedTuple):
    """The 20 one-shot runs of ``all_runs.zip``.

    - ``train``: ``(20, 20, H, W) float32`` — run r, training image j (``classJJ.png``).
    - ``test``: ``(20, 20, H, W) float32`` — run r, test image i (``itemII.png``).
    - ``answer``: ``(20, 20) int32`` — index j of the training image in the same class as
      test image i (from ``class_labels.txt``).
    """

    train: np.ndarray
    test: np.ndarray
    answer: np.ndarray


def _zip(name: str) -> zipfile.ZipFile:
    path = vendor_path("omniglot", name)
    try:
        return zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise DatasetUnavailableError(
            f"cannot read {path}: copy the Omniglot zips (MIT licence, "
            "https://github.com/brendenlake/omniglot/tree/master/python) into that folder"
        ) from e


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return ~np.asarray(im.convert("1"), dtype=bool)  # ink = True


@functools.cache
def _load_subset(subset: str) -> tuple[np.ndarray, tuple[tuple[str, str, int], ...]]:
    """Decoded ``(M, 105, 105) bool`` ink images and ``(alphabet, character, drawer)`` rows."""
    with _zip(f"images_{subset}.zip") as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        meta, imgs = [], []
        for n in names:
            m = _NAME_RE.match(n)
            if m is None:
                continue
            meta.append((m["alpha"], m["char"], int(m["drawer"]) - 1))
            imgs.append(_decode(zf.read(n)))
    images = np.stack(imgs)
    images.flags.writeable = False
    return images, tuple(meta)


def _resize(images: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return images.astype(np.float32)
    from PIL import Image

    h, w = size
    out = np.empty((len(images), h, w), np.float32)
    for i, img in enumerate(images):
        im = Image.fromarray(img.astype(np.uint8) * 255)
        out[i] = np.asarray(im.resize((w, h), Image.Resampling.BOX), np.float32) / 255.0
    return out


def _norm_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and s > 0 for s in size)
    ):
        raise bad_arg("size", "None, a positive int or a (height, width) pair", size)
    return (int(size[0]), int(size[1]))


@functools.cache
def _load_cached(subsets: tuple[str, ...], size, dedupe: bool) -> OmniglotData:
    imgs, rows = [], []
    seen: set[tuple[str, str, int]] = set()
    for s in subsets:
        images, meta = _load_subset(s)
        keep = []
        for i, (alpha, char, drawer) in enumerate(meta):
            if dedupe:
                if (alpha, char, drawer) in seen:
                    continue
                seen.add((alpha, char, drawer))
                rows.append((alpha, f"{alpha}/{char}", drawer))
            else:
                rows.append((alpha, f"{s}/{alpha}/{char}", drawer))
            keep.append(i)
        imgs.append(images[np.asarray(keep, dtype=np.int64)])
    images = _resize(np.concatenate(imgs), size)
    alphabet_names = tuple(sorted({r[0] for r in rows}))
    character_names = tuple(sorted({r[1] for r in rows}))
    a_id = {a: i for i, a in enumerate(alphabet_names)}
    c_id = {c: i for i, c in enumerate(character_names)}
    out = OmniglotData(
        images=images,
        character=np.array([c_id[r[1]] for r in rows], np.int32),
        alphabet=np.array([a_id[r[0]] for r in rows], np.int32),
        drawer=np.array([r[2] for r in rows], np.int32),
        character_names=character_names,
        alphabet_names=alphabet_names,
    )
    for arr in out[:4]:
        arr.flags.writeable = False
    return out


def load_omniglot(
    subsets: str | tuple[str, ...] = OMNIGLOT_SUBSETS,
    *,
    size: int | tuple[int, int] | None = None,
    dedupe: bool = True,
) -> OmniglotData:
    """Load Omniglot images with character, alphabet and drawer labels.

    Args:
        subsets: ``"background_small1"``, ``"background_small2"`` or both (default).
        size: ``None`` keeps the binary 105×105 images (values exactly 0/1); an int or
            ``(height, width)`` resizes with box (area) filtering, giving grey values in [0, 1]
            (threshold them with :func:`memjax.data.binarize` if you need binary pixels).
        dedupe: drop images that appear in more than one subset (Greek and Latin are in both).
            With ``dedupe=False`` the two copies count as separate characters.

    Returns:
        :class:`OmniglotData`. Both subsets: 4,840 images of 242 characters (``dedupe=True``)
        or 5,840 of 292 (``dedupe=False``). The arrays are cached and read-only; copy them to
        modify.

    Example:
        >>> data = load_omniglot(size=28)
        >>> data.images.shape, len(data.character_names)
        ((4840, 28, 28), 242)
    """
    if isinstance(subsets, str):
        subsets = (subsets,)
    subsets = tuple(subsets)
    if not subsets or any(s not in OMNIGLOT_SUBSETS for s in subsets):
        raise bad_arg("subsets", f"a non-empty subset of {OMNIGLOT_SUBSETS}", subsets)
    return _load_cached(subsets, _norm_size(size), bool(dedupe))


@functools.cache
def _load_runs_cached(size) -> OmniglotRuns:
    train = np.empty((20, 20, 105, 105), bool)
    test = np.empty((20, 20, 105, 105), bool)
    answer = np.empty((20, 20), np.int32)
    with _zip("all_runs.zip") as zf:
        for r in range(20):
            run = f"run{r + 1:02d}"
            for j in range(20):
                train[r, j] = _decode(zf.read(f"{run}/training/class{j + 1:02d}.png"))
                test[r, j] = _decode(zf.read(f"{run}/test/item{j + 1:02d}.png"))
            for line in zf.read(f"{run}/class_labels.txt").decode().split("\n"):
                if not line.strip():
                    continue
                t, c = line.split()
                i = int(re.search(r"item(\d+)", t)[1]) - 1
                answer[r, i] = int(re.search(r"class(\d+)", c)[1]) - 1

    def resized(a: np.ndarray) -> np.ndarray:
        flat = _resize(a.reshape(400, 105, 105), size)
        return flat.reshape(20, 20, *flat.shape[1:])

    out = OmniglotRuns(
        train=resized(train),
        test=resized(test),
        answer=answer,
    )
    for arr in out:
        arr.flags.writeable = False
    return out


def load_omniglot_runs(*, size: int | tuple[int, int] | None = None) -> OmniglotRuns:
    """Load the 20 one-shot classification runs (Lake et al. 2015) from ``all_runs.zip``.

    In run ``r``, test image ``i`` belongs to the same character as training image
    ``answer[r, i]``; a classifier's one-shot accuracy is the fraction of matches.
    Same pixel convention and ``size`` option as :func:`load_omniglot`.

    Example:
        >>> runs = load_omniglot_runs()
        >>> runs.train.shape, runs.answer.shape
        ((20, 20, 105, 105), (20, 20))
    """
    return _load_runs_cached(_norm_size(size))
