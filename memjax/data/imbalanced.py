r"""Imbalanced image sets for pruning studies, offline: long-tailed digits and Fashion-MNIST, a
seeded procedural "lesion" generator, and a loader for MedMNIST-layout ``.npz`` files.

The Beta-Rank paper (Homayounfar et al. 2023, arXiv 2304.07461) evaluates on ISIC-2017 and
IDRiD, which cannot be fetched offline. These stand in for them; every image comes back as
float32 NHWC in :math:`[0, 1]`, labels as int32.

* :func:`long_tailed_digits` — scikit-learn's 8×8 digits grouped into three super-classes
  (``(0, 1, 2)``, ``(3, 4, 5)``, ``(6, 7, 8, 9)`` by default) and subsampled to a three-class
  profile — :data:`IDRID_PROPORTIONS` (DME grading, 43 / 10 / 47 %) or :data:`ISIC_PROPORTIONS`
  (melanoma / keratosis / nevus, 19 / 13 / 69 %) — as many images as the profile allows, then
  bilinearly upsampled (corners aligned) to ``size × size``. ``profile=ρ`` (a number) keeps the
  ten digit classes with geometric counts :math:`n_c = \lfloor n_{max} \rho^{-c/(C-1)} \rfloor`.
* :func:`long_tailed_fashion_mnist` — Fashion-MNIST (Debian ``dataset-fashion-mnist``, read by
  :func:`~memjax.data.load_fashion_mnist`) with the same geometric counts, ``ρ = 100`` by
  default; the test split is long-tailed in the same proportions or the balanced official one.
* :func:`lesion_images` / :func:`lesion_split` — seeded RGB "dermoscopy-like" images: a skin
  background and one blob whose shape, colour and texture depend on the class — 0 *nevus*
  (round, uniform brown), 1 *melanoma* (irregular border, dark with blue-grey patches),
  2 *keratosis* (oval, tan, striped "stuck-on" texture) — with jittered size, position, colours
  and pixel noise, so classes overlap a little. Counts default to the ISIC-like profile.
* :func:`load_medmnist_npz` — a user-supplied MedMNIST file (``train_images``,
  ``train_labels``, ``val_*``, ``test_*``; e.g. DermaMNIST, RetinaMNIST, BreastMNIST).

Example:
    >>> from memjax.data import lesion_split, long_tailed_digits
    >>> s = long_tailed_digits("idrid", size=16, seed=0)
    >>> s.x_train.shape[1:], [round(float((s.y_train == c).mean()), 2) for c in range(3)]
    ((16, 16, 1), [0.43, 0.1, 0.47])
    >>> les = lesion_split((12, 8, 40), (6, 4, 20), seed=0)
    >>> les.x_train.shape, les.x_train.dtype.name, les.y_test.tolist().count(1)
    ((60, 32, 32, 3), 'float32', 4)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from memjax.data._common import Split, as_rng
from memjax.data.errors import DatasetUnavailableError, bad_arg

__all__ = [
    "IDRID_PROPORTIONS",
    "ISIC_PROPORTIONS",
    "LESION_CLASSES",
    "MedMNISTData",
    "lesion_images",
    "lesion_split",
    "load_medmnist_npz",
    "long_tailed_counts",
    "long_tailed_digits",
    "long_tailed_fashion_mnist",
    "upsample",
]

IDRID_PROPORTIONS = (0.43, 0.10, 0.47)
ISIC_PROPORTIONS = (0.19, 0.13, 0.69)
LESION_CLASSES = ("nevus", "melanoma", "keratosis")
_PROFILES = {"idrid": IDRID_PROPORTIONS, "isic": ISIC_PROPORTIONS}
_DIGIT_GROUPS = ((0, 1, 2), (3, 4, 5), (6, 7, 8, 9))


def long_tailed_counts(n_max: int, num_classes: int, imbalance: float) -> list[int]:
    r""":math:`n_c = \lfloor n_{max}\, \rho^{-c/(C-1)} \rfloor` for :math:`c = 0 .. C-1`.

    Example:
        >>> long_tailed_counts(1000, 3, 100)
        [1000, 100, 10]
    """
    if isinstance(n_max, bool) or not isinstance(n_max, int | np.integer) or n_max < 1:
        raise bad_arg("n_max", "a positive int", n_max)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise bad_arg("num_classes", "an int >= 2", num_classes)
    if isinstance(imbalance, bool) or not isinstance(imbalance, int | float) or imbalance < 1:
        raise bad_arg("imbalance", "a number >= 1", imbalance)
    exps = np.arange(num_classes) / (num_classes - 1)
    return [max(1, int(n_max * imbalance ** (-e) + 1e-9)) for e in exps]


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` linear interpolation with aligned corners."""
    pos = np.linspace(0.0, n_in - 1, n_out)
    lo = np.clip(np.floor(pos).astype(int), 0, max(n_in - 2, 0))
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    if n_in > 1:
        m[np.arange(n_out), lo + 1] += frac
    return m


def upsample(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (corners aligned) of ``(N, H, W[, C])`` images to ``size × size``.

    Example:
        >>> import numpy as np
        >>> upsample(np.array([[[0.0, 1.0], [2.0, 3.0]]]), 3)[0].tolist()
        [[0.0, 0.5, 1.0], [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]]
    """
    x = np.asarray(images, np.float64)
    if x.ndim not in (3, 4):
        raise bad_arg("images", "an array (N, H, W) or (N, H, W, C)", x.shape)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise bad_arg("size", "a positive int", size)
    rows, cols = _interp_matrix(x.shape[1], size), _interp_matrix(x.shape[2], size)
    return np.einsum("ih,nhw...,jw->nij...", rows, x, cols)


def _stratified(x, y, test_fraction, rng) -> Split:
    if not isinstance(test_fraction, float) or not 0.0 < test_fraction < 1.0:
        raise bad_arg("test_fraction", "a float in (0, 1)", test_fraction)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = max(1, round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train, test = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
    return Split(x[train], y[train].astype(np.int32), x[test], y[test].astype(np.int32))


def _profile_counts(profile, available: Sequence[int]) -> list[int]:
    """The largest counts in the profile's proportions that the classes can supply."""
    p = np.asarray(profile, np.float64) / np.sum(profile)
    total = min(a / q for a, q in zip(available, p))
    return [int(total * q) for q in p]


def long_tailed_digits(
    profile="idrid",
    *,
    size: int = 32,
    seed: int = 0,
    test_fraction: float = 0.25,
    groups: Sequence[Sequence[int]] = _DIGIT_GROUPS,
) -> Split:
    """Long-tailed scikit-learn digits at ``size × size`` (module doc).

    Args:
        profile: ``"idrid"``, ``"isic"``, a sequence of class proportions (one per group), or
            an imbalance ratio ``ρ >= 1`` over the ten digits.
        size: output side (bilinear upsampling of the 8×8 images).
        seed: subsampling and split seed.
        test_fraction: stratified test share of every class.
        groups: digits forming each class when ``profile`` is a profile.

    Returns:
        A :class:`~memjax.data.Split` of float32 ``(N, size, size, 1)`` images in ``[0, 1]``.
    """
    from memjax.data.sklearn_sets import _sklearn

    ds, _ = _sklearn()
    digits = ds.load_digits()
    x, y = digits.images / 16.0, digits.target
    rng = as_rng(seed)
    if isinstance(profile, str) or (isinstance(profile, Sequence) and len(profile) > 0):
        if isinstance(profile, str):
            if profile not in _PROFILES:
                raise bad_arg("profile", f"one of {sorted(_PROFILES)}, proportions or ρ", profile)
            profile = _PROFILES[profile]
        profile = tuple(float(p) for p in profile)
        if len(profile) != len(groups) or min(profile) <= 0:
            raise bad_arg("profile", f"{len(groups)} positive proportions (one per group)", profile)
        member = [np.flatnonzero(np.isin(y, g)) for g in groups]
        counts = _profile_counts(profile, [len(m) for m in member])
    elif isinstance(profile, int | float) and not isinstance(profile, bool):
        member = [np.flatnonzero(y == d) for d in range(10)]
        counts = long_tailed_counts(min(len(m) for m in member), 10, profile)
    else:
        raise bad_arg("profile", "'idrid', 'isic', proportions or an imbalance ratio", profile)
    picks = [rng.choice(m, size=n, replace=False) for m, n in zip(member, counts)]
    idx = np.concatenate(picks)
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    images = upsample(x[idx], size)[..., None].astype(np.float32)
    return _stratified(images, labels, test_fraction, rng)


def long_tailed_fashion_mnist(
    imbalance: float = 100.0,
    *,
    n_max: int = 1000,
    test: str = "long_tailed",
    n_test_max: int | None = None,
    size: int = 28,
    seed: int = 0,
    root=None,
) -> Split:
    """Long-tailed Fashion-MNIST (module doc): ``n_c = n_max ρ^{-c/9}`` training images of class
    ``c``; ``test="long_tailed"`` draws ``n_test_max`` (default ``n_max // 5``) in the same
    proportions from the official test set, ``"balanced"`` keeps all 10,000. ``size != 28``
    resizes bilinearly. Raises :class:`~memjax.data.DatasetUnavailableError` without the data."""
    from memjax.data.idx import load_fashion_mnist

    if test not in ("long_tailed", "balanced"):
        raise bad_arg("test", "'long_tailed' or 'balanced'", test)
    rng = as_rng(seed)
    counts = long_tailed_counts(n_max, 10, imbalance)
    x_tr, y_tr = load_fashion_mnist("train", root=root)
    x_te, y_te = load_fashion_mnist("test", root=root)
    if max(counts) > np.bincount(y_tr).min():
        raise bad_arg("n_max", f"at most {np.bincount(y_tr).min()} (images per class)", n_max)
    tr = np.concatenate(
        [rng.choice(np.flatnonzero(y_tr == c), n, replace=False) for c, n in enumerate(counts)]
    )
    if test == "long_tailed":
        test_counts = long_tailed_counts(n_test_max or max(1, n_max // 5), 10, imbalance)
        te = np.concatenate(
            [
                rng.choice(np.flatnonzero(y_te == c), min(n, int((y_te == c).sum())), False)
                for c, n in enumerate(test_counts)
            ]
        )
    else:
        te = np.arange(len(y_te))
    tr, te = rng.permutation(tr), rng.permutation(te)

    def prep(x):
        x = x.astype(np.float64) / 255.0
        return (x if size == 28 else upsample(x, size))[..., None].astype(np.float32)

    return Split(prep(x_tr[tr]), y_tr[tr].astype(np.int32), prep(x_te[te]), y_te[te])


def _check_counts(name: str, counts) -> tuple[int, ...]:
    if not isinstance(counts, Sequence) or len(counts) != len(LESION_CLASSES):
        raise bad_arg(name, f"{len(LESION_CLASSES)} non-negative ints (one per class)", counts)
    for c in counts:
        if isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 0:
            raise bad_arg(name, "non-negative ints", counts)
    return tuple(int(c) for c in counts)


def lesion_images(counts=(190, 130, 690), *, size: int = 32, seed: int = 0, noise: float = 0.04):
    """Seeded procedural lesion images (module doc).

    Args:
        counts: images per class (nevus, melanoma, keratosis); the default is ISIC-like.
        size: image side.
        seed: the generator's seed (same seed, same images).
        noise: standard deviation of the additive pixel noise.

    Returns:
        ``(x (N, size, size, 3) float32 in [0, 1], y (N,) int32)``, classes in blocks.
    """
    counts = _check_counts("counts", counts)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise bad_arg("size", "an int >= 8", size)
    if not isinstance(noise, int | float) or noise < 0:
        raise bad_arg("noise", "a non-negative number", noise)
    rng = as_rng(seed)
    n = sum(counts)
    y = np.concatenate([np.full(c, k, np.int32) for k, c in enumerate(counts)])
    grid = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    skin = np.array([0.86, 0.68, 0.58]) + rng.normal(0, 0.05, (n, 3))
    base = {0: (0.45, 0.28, 0.18), 1: (0.22, 0.12, 0.10), 2: (0.62, 0.48, 0.34)}
    out = np.empty((n, size, size, 3))
    for i in range(n):
        k = int(y[i])
        cy, cx = 0.5 + rng.normal(0, 0.07, 2)
        radius = rng.uniform(0.17, 0.32)
        aspect = rng.uniform(*{0: (1.0, 1.25), 1: (1.0, 1.35), 2: (1.15, 1.7)}[k])
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        r = np.sqrt((u / aspect) ** 2 + v**2)
        theta = np.arctan2(v, u)
        # feature strengths are drawn per image, so some images of different classes look alike
        amp = rng.uniform(*{0: (0.0, 0.1), 1: (0.03, 0.22), 2: (0.0, 0.08)}[k])
        wobble = sum(
            rng.uniform(0.4, 1.0) * amp * np.cos(m * theta + rng.uniform(0, 2 * np.pi))
            for m in (2, 3, 5)
        )
        r = r / (1 + wobble)
        edge = 1 / (1 + np.exp((r - radius) / 0.015))
        colour = np.asarray(base[k]) + rng.normal(0, 0.08, 3)
        lesion = np.broadcast_to(colour, (size, size, 3)).copy()
        if rng.uniform() < {0: 0.15, 1: 0.6, 2: 0.05}[k]:  # blue-grey veil patches
            phase = rng.uniform(0, 2 * np.pi, 2)
            patch = np.sin(9 * u + phase[0]) * np.sin(9 * v + phase[1]) > rng.uniform(0.2, 0.6)
            lesion[patch] = np.array([0.35, 0.38, 0.48]) + rng.normal(0, 0.04, 3)
        stripe_amp = rng.uniform(*{0: (0.0, 0.08), 1: (0.0, 0.08), 2: (0.02, 0.35)}[k])
        stripes = np.sin(rng.uniform(18, 26) * u + rng.uniform(0, 2 * np.pi))
        lesion = lesion * (1 + stripe_amp * stripes[..., None])
        img = skin[i] * (1 - edge[..., None]) + lesion * edge[..., None]
        out[i] = img + rng.normal(0, noise, img.shape)
    return np.clip(out, 0, 1).astype(np.float32), y


def lesion_split(
    train_counts=(190, 130, 690), test_counts=(38, 26, 138), *, size: int = 32, seed: int = 0
) -> Split:
    """Train and test lesion images (independent draws, classes shuffled) as a Split."""
    _check_counts("train_counts", train_counts)
    _check_counts("test_counts", test_counts)
    rng = as_rng(seed)
    s1, s2 = (int(s) for s in rng.integers(0, 2**31, 2))
    x_tr, y_tr = lesion_images(train_counts, size=size, seed=s1)
    x_te, y_te = lesion_images(test_counts, size=size, seed=s2)
    p, q = rng.permutation(len(y_tr)), rng.permutation(len(y_te))
    return Split(x_tr[p], y_tr[p], x_te[q], y_te[q])


class MedMNISTData(NamedTuple):
    """A MedMNIST file: float32 NHWC images in ``[0, 1]`` and int32 labels per split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_medmnist_npz(path: str | os.PathLike, *, size: int | None = None) -> MedMNISTData:
    """Read a user-supplied MedMNIST ``.npz`` (``{train,val,test}_{images,labels}``; images
    ``(N, H, W)`` or ``(N, H, W, 3)`` uint8, labels ``(N, 1)``). ``size`` resizes bilinearly.

    Multi-label files (labels ``(N, k > 1)``, ChestMNIST) are refused: the pruning metrics here
    are single-label. Raises :class:`~memjax.data.DatasetUnavailableError` for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetUnavailableError(
            f"{path} does not exist. MedMNIST files are not downloaded here: fetch e.g. "
            "dermamnist.npz from https://zenodo.org/records/10519652 and pass its path"
        )
    with np.load(path) as f:
        want = [f"{s}_{k}" for s in ("train", "val", "test") for k in ("images", "labels")]
        missing = [k for k in want if k not in f.files]
        if missing:
            raise bad_arg("path", f"a MedMNIST .npz with {want}", f"{path} lacking {missing}")
        arrays = {k: f[k] for k in want}
    out = []
    for s in ("train", "val", "test"):
        x, y = arrays[f"{s}_images"], np.asarray(arrays[f"{s}_labels"])
        if y.ndim == 2 and y.shape[1] != 1:
            raise bad_arg("path", "single-label MedMNIST labels (N, 1)", f"{s}_labels {y.shape}")
        y = y.reshape(-1)
        if x.ndim not in (3, 4) or len(x) != len(y):
            raise bad_arg("path", "images (N, H, W[, C]) with one label each", x.shape)
        x = x.astype(np.float64) / (255.0 if x.dtype == np.uint8 else 1.0)
        if size is not None:
            x = upsample(x, size)
        if x.ndim == 3:
            x = x[..., None]
        out += [x.astype(np.float32), y.astype(np.int32)]
    return MedMNISTData(*out)
