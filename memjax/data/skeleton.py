"""Skeletonisation: thin binary images to 1-pixel-wide strokes (Zhang–Suen thinning).

Sparsey's MNIST runs binarise and then skeletonise the digits (Rinkus's MNIST preprocessing, done
with ImageJ's skeletonisation). scikit-image is not a memjax dependency, so
:func:`skeletonize` is the classic parallel thinning of Zhang & Suen ("A fast parallel algorithm
for thinning digital patterns", CACM 27(3), 1984) in NumPy, vectorised over a batch of images.
Each iteration runs two sub-passes; a foreground pixel with 2–6 foreground neighbours and exactly
one 0→1 transition around its 8-ring is removed when the sub-pass's two "corner" products vanish.
The loop stops when an iteration removes nothing (or after ``max_iter`` iterations).

Example:
    >>> import numpy as np
    >>> from memjax.data.skeleton import skeletonize
    >>> img = np.zeros((1, 7, 16), np.uint8); img[0, 2:5, 1:15] = 1   # a 3-pixel-thick bar
    >>> thin = skeletonize(img)[0]
    >>> int(thin.sum(axis=0).max()), int(thin.sum()) >= 8       # one pixel thick, still long
    (1, True)
"""

from __future__ import annotations

import numpy as np

from memjax.data.errors import bad_arg

__all__ = ["skeletonize"]


def _neighbours(img: np.ndarray) -> list[np.ndarray]:
    """P2..P9 of every pixel (N, NE, E, SE, S, SW, W, NW), zero outside the image."""
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)))
    h, w = img.shape[1:]

    def at(dr: int, dc: int) -> np.ndarray:
        return p[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

    return [at(-1, 0), at(-1, 1), at(0, 1), at(1, 1), at(1, 0), at(1, -1), at(0, -1), at(-1, -1)]


def skeletonize(images, max_iter: int = 50) -> np.ndarray:
    """Zhang–Suen thinning of binary images ``(B, H, W)`` or one image ``(H, W)``.

    Args:
        images: 0/1 (or boolean) images; any non-zero pixel counts as foreground.
        max_iter: upper bound on thinning iterations (each is two sub-passes).

    Returns:
        ``uint8`` 0/1 images of the same shape, every stroke thinned to one pixel.
    """
    img = np.asarray(images)
    if img.ndim not in (2, 3):
        raise bad_arg("images", "a (H, W) image or a (B, H, W) batch", f"shape {img.shape}")
    img = (img != 0).astype(np.uint8)
    single = img.ndim == 2
    if single:
        img = img[None]
    for _ in range(max_iter):
        changed = False
        for first in (True, False):
            n = [a.astype(np.int32) for a in _neighbours(img)]
            b = sum(n)
            ring = [*n, n[0]]
            a = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.int32) for i in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if first:
                c = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                c = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            kill = (img == 1) & (b >= 2) & (b <= 6) & (a == 1) & c
            if kill.any():
                img[kill] = 0
                changed = True
        if not changed:
            break
    return img[0] if single else img
