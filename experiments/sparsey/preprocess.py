"""MNIST preprocessing for the Sparsey experiments: binarise, then thin to a 1-pixel skeleton.

sparsey.com's MNIST runs binarise and skeletonise the digits (ImageJ); scikit-image is not a
memjax dependency, so :func:`skeletonize` is the classic Zhang–Suen thinning (Zhang & Suen, CACM
1984) in NumPy, vectorised over a batch of images.

Example:
    >>> import numpy as np
    >>> img = np.zeros((1, 7, 16), np.uint8); img[0, 2:5, 1:15] = 1   # a 3-pixel-thick bar
    >>> thin = skeletonize(img)[0]
    >>> int(thin.sum(axis=0).max()), int(thin.sum()) >= 8       # one pixel thick, still long
    (1, True)
"""

from __future__ import annotations

import numpy as np


def binarize(x, threshold: float = 127.0) -> np.ndarray:
    """Grey levels → {0, 1} ``uint8`` (pixel > ``threshold``)."""
    return (np.asarray(x) > threshold).astype(np.uint8)


def _neighbours(img):
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)))
    h, w = img.shape[1:]
    at = lambda dr, dc: p[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
    # P2..P9: N, NE, E, SE, S, SW, W, NW
    return [at(-1, 0), at(-1, 1), at(0, 1), at(1, 1), at(1, 0), at(1, -1), at(0, -1), at(-1, -1)]


def skeletonize(images, max_iter: int = 50) -> np.ndarray:
    """Zhang–Suen thinning of binary images ``(B, H, W)`` (or one ``(H, W)`` image)."""
    img = np.asarray(images, np.uint8).copy()
    single = img.ndim == 2
    if single:
        img = img[None]
    for _ in range(max_iter):
        changed = False
        for first in (True, False):
            n = _neighbours(img)
            b = sum(n.astype(np.int32) for n in n)
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
