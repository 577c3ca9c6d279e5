"""Label-delayed episodes (Santoro et al. 2016) with chosen class frequencies, and their metrics.

:func:`episode_batch` builds MANN-style sequences like :func:`memjax.data.santoro_sequences`
(input ``(x_t, one_hot(y_{t-1}))``, zeros at ``t = 0``, labels shuffled per episode, the next
unused drawing of a class at each of its occurrences) but lets ``rare`` of the ``n_classes``
classes occur exactly ``rare_count`` times at random steps, the others filling the rest of the
episode uniformly — the "rare and new classes" setting of Fast & Slow Learning [C: abstract;
the episode design is ours, I]. Which episode labels are rare is random per episode.

:func:`instance_index` numbers each step by the occurrence of its class (1 = first time the
class is seen, so its label cannot be known; accuracy at instance ``n ≥ 2`` measures one-shot
learning within the episode, Santoro's Table 1 metric).

Example:
    >>> import numpy as np
    >>> images, labels = np.random.default_rng(0).random((40, 4)), np.repeat(np.arange(8), 5)
    >>> b = episode_batch(images, labels, 3, 12, 2, np.random.default_rng(0), rare=1,
    ...                   rare_count=2)
    >>> b["xs"].shape, b["labels"].shape, int(b["rare"].sum(1)[0])
    ((2, 12, 7), (2, 12), 2)
    >>> instance_index(np.array([[0, 1, 0, 0, 1]])).tolist()
    [[1, 1, 2, 3, 2]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["episode_batch", "instance_index"]


def episode_batch(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    seq_len: int,
    batch_size: int,
    rng: np.random.Generator,
    *,
    rare: int = 0,
    rare_count: int = 2,
    drawings: int | None = None,
) -> dict:
    """``{"xs" (B, T, D + N), "labels" (B, T) int32, "rare" (B, T) bool, "context" (B, T, N)}``.

    ``context`` is ``one_hot(y_t)`` (the cDNI label context of the SG); ``rare`` marks the steps
    of the rare classes. ``drawings`` caps the distinct drawings of a class used in one episode
    (1: every instance is the same image, the easiest matching; ``None``: all, cycling).
    """
    if not 0 <= rare < n_classes:
        raise ValueError(f"rare: expected an int in [0, {n_classes - 1}], got {rare!r}")
    if drawings is not None and drawings < 1:
        raise ValueError(f"drawings: expected None or an int >= 1, got {drawings!r}")
    if rare * rare_count > seq_len - (n_classes - rare):
        raise ValueError(
            f"rare_count: {rare} rare classes x {rare_count} leave too few of the {seq_len} "
            "steps for the common classes"
        )
    images = np.asarray(images).reshape(len(images), -1).astype(np.float32)
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    xs = np.zeros((batch_size, seq_len, images.shape[1]), np.float32)
    ys = np.zeros((batch_size, seq_len), np.int32)
    is_rare = np.zeros((batch_size, seq_len), bool)
    for b in range(batch_size):
        chosen = rng.choice(len(classes), size=n_classes, replace=False)
        perm = rng.permutation(n_classes)  # perm[:rare] are this episode's rare labels
        seq = rng.choice(perm[rare:], size=seq_len)
        slots = rng.choice(seq_len, size=rare * rare_count, replace=False)
        seq[slots] = np.repeat(perm[:rare], rare_count)
        ys[b] = seq
        is_rare[b] = np.isin(seq, perm[:rare])
        orders = [rng.permutation(members[c])[:drawings] for c in chosen]
        used = np.zeros(n_classes, int)
        for t, lab in enumerate(seq):
            order = orders[lab]
            xs[b, t] = images[order[used[lab] % len(order)]]
            used[lab] += 1
    eye = np.eye(n_classes, dtype=np.float32)
    prev = np.zeros((batch_size, seq_len, n_classes), np.float32)
    prev[:, 1:] = eye[ys[:, :-1]]
    return {
        "xs": np.concatenate([xs, prev], -1),
        "labels": ys,
        "rare": is_rare,
        "context": eye[ys],
    }


def instance_index(labels: np.ndarray) -> np.ndarray:
    """``(B, T)``: 1 at a class's first occurrence in the episode, 2 at its second, ..."""
    labels = np.asarray(labels)
    out = np.zeros_like(labels)
    for b in range(labels.shape[0]):
        seen: dict[int, int] = {}
        for t, y in enumerate(labels[b]):
            seen[int(y)] = seen.get(int(y), 0) + 1
            out[b, t] = seen[int(y)]
    return out
