"""Few-shot episodes over any labelled image set (Omniglot, MNIST, ...).

- :func:`sample_episode` / :func:`sample_episodes`: N-way K-shot support/query sets.
- :func:`santoro_sequences`: MANN sequences (Santoro et al. 2016) where the label of step t is
  given as input at step t + 1.

Randomness: a numpy ``Generator`` made with ``np.random.default_rng(seed)``; passing the same int
seed gives identical arrays, and a ``Generator`` may be passed instead (it is advanced).

Example:
    >>> from memjax.data import load_mnist, sample_episode
    >>> images, labels = load_mnist()
    >>> ep = sample_episode(images, labels, n_way=5, k_shot=1, n_query=2, seed=0)
    >>> ep.support_x.shape, ep.query_x.shape, ep.query_y.shape
    ((5, 784), (10, 784), (10,))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from memjax.data._common import as_rng
from memjax.data.errors import bad_arg

__all__ = ["Episode", "SantoroBatch", "sample_episode", "sample_episodes", "santoro_sequences"]


class Episode(NamedTuple):
    """An N-way K-shot episode (leading ``(E,)`` axis when from :func:`sample_episodes`).

    - ``support_x``: ``(N*K, *image_shape)``, ``support_y``: ``(N*K,) int32`` in ``[0, N)``.
    - ``query_x``: ``(N*Q, *image_shape)``, ``query_y``: ``(N*Q,) int32`` in ``[0, N)``.
    - ``classes``: ``(N,) int32`` — ``classes[i]`` is the original class given episode label i.
    """

    support_x: np.ndarray
    support_y: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray
    classes: np.ndarray


class SantoroBatch(NamedTuple):
    """A batch of MANN sequences.

    - ``inputs``: ``(B, T, D + N) float32`` = ``concat(images, prev_labels)``.
    - ``images``: ``(B, T, D) float32`` flattened images x_t.
    - ``prev_labels``: ``(B, T, N) float32`` = one_hot(y_{t-1}), zeros at t = 0.
    - ``labels``: ``(B, T) int32`` episode labels y_t in ``[0, N)`` (the targets).
    - ``classes``: ``(B, N) int32`` original class of each episode label.
    """

    inputs: np.ndarray
    images: np.ndarray
    prev_labels: np.ndarray
    labels: np.ndarray
    classes: np.ndarray


def _class_index(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise bad_arg("labels", "a 1-D array of class ids", f"shape {labels.shape}")
    classes = np.unique(labels)
    return classes, [np.flatnonzero(labels == c) for c in classes]


def _check_int(name: str, value, lo: int, hi: int | None, why: str = "") -> None:
    ok = isinstance(value, int | np.integer) and value >= lo and (hi is None or value <= hi)
    if not ok:
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise bad_arg(name, f"an int in {rng}{why}", value)


def _episode(images, classes, members, n_way, k_shot, n_query, rng) -> Episode:
    chosen = rng.choice(len(classes), size=n_way, replace=False)  # label i -> class chosen[i]
    sup, qry = [], []
    for label, c in enumerate(chosen):
        idx = rng.choice(members[c], size=k_shot + n_query, replace=False)
        sup += [(i, label) for i in idx[:k_shot]]
        qry += [(i, label) for i in idx[k_shot:]]
    sup = [sup[i] for i in rng.permutation(len(sup))]
    qry = [qry[i] for i in rng.permutation(len(qry))]
    s_idx = np.array([i for i, _ in sup], np.int64)
    q_idx = np.array([i for i, _ in qry], np.int64)
    return Episode(
        support_x=images[s_idx],
        support_y=np.array([lab for _, lab in sup], np.int32),
        query_x=images[q_idx] if n_query else images[:0],
        query_y=np.array([lab for _, lab in qry], np.int32),
        classes=np.asarray(classes[chosen], np.int32),
    )


def _validate(images, labels, n_way, k_shot, n_query):
    images = np.asarray(images)
    classes, members = _class_index(labels)
    if images.shape[0] != len(np.asarray(labels)):
        raise bad_arg("labels", f"{images.shape[0]} labels (one per image)", len(labels))
    _check_int("n_way", n_way, 1, len(classes), " (number of classes available)")
    smallest = min(len(m) for m in members)
    _check_int("k_shot", k_shot, 1, smallest, " (examples in the smallest class)")
    _check_int(
        "n_query",
        n_query,
        0,
        smallest - k_shot,
        f" (smallest class has {smallest} examples, k_shot={k_shot})",
    )
    return images, classes, members


def sample_episode(
    images: np.ndarray,
    labels: np.ndarray,
    n_way: int,
    k_shot: int,
    n_query: int = 1,
    seed: int | np.random.Generator | None = 0,
) -> Episode:
    """Sample one N-way K-shot episode.

    ``n_way`` classes are drawn without replacement and given episode labels ``0..N-1`` in a
    random order (so the labels are a fresh permutation per episode). Each class contributes
    ``k_shot`` support and ``n_query`` query examples, all distinct; support and query are each
    shuffled. Returns an :class:`Episode`.

    Example:
        >>> from memjax.data import load_omniglot
        >>> d = load_omniglot(size=28)
        >>> ep = sample_episode(d.images, d.character, n_way=5, k_shot=1, n_query=2, seed=0)
        >>> ep.support_x.shape, ep.query_y.shape
        ((5, 28, 28), (10,))
    """
    images, classes, members = _validate(images, labels, n_way, k_shot, n_query)
    return _episode(images, classes, members, n_way, k_shot, n_query, as_rng(seed))


def sample_episodes(
    images: np.ndarray,
    labels: np.ndarray,
    n_way: int,
    k_shot: int,
    n_query: int = 1,
    num_episodes: int = 1,
    seed: int | np.random.Generator | None = 0,
) -> Episode:
    """Sample ``num_episodes`` episodes stacked on a leading axis.

    Returns an :class:`Episode` with ``support_x (E, N*K, ...)``, ``support_y (E, N*K)``,
    ``query_x (E, N*Q, ...)``, ``query_y (E, N*Q)``, ``classes (E, N)``.

    Example:
        >>> import numpy as np
        >>> x, y = np.zeros((40, 3)), np.repeat(np.arange(10), 4)
        >>> sample_episodes(x, y, 5, 2, 1, num_episodes=8, seed=1).support_y.shape
        (8, 10)
    """
    images, classes, members = _validate(images, labels, n_way, k_shot, n_query)
    _check_int("num_episodes", num_episodes, 1, None)
    rng = as_rng(seed)
    eps = [
        _episode(images, classes, members, n_way, k_shot, n_query, rng) for _ in range(num_episodes)
    ]
    return Episode(*(np.stack(f) for f in zip(*eps, strict=True)))


def santoro_sequences(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int = 5,
    seq_len: int = 50,
    batch_size: int = 16,
    seed: int | np.random.Generator | None = 0,
    *,
    rotate: bool = False,
) -> SantoroBatch:
    """Sequences for memory-augmented one-shot learning (Santoro et al. 2016, MANN).

    Each sequence picks ``n_classes`` classes and gives them episode labels ``0..N-1`` in a
    random order. At every step a class is drawn uniformly; its image is the next unused
    example of that class (a random order per episode, cycling if the class runs out). The input
    at step t is ``(x_t, one_hot(y_{t-1}))`` with zeros at t = 0, and the target is ``y_t``.
    ``rotate=True`` applies the paper's augmentation: each chosen class is rotated by a random
    multiple of 90 degrees (images must be square, ``(M, H, H)``). Images are flattened.

    Returns a :class:`SantoroBatch`.

    Example:
        >>> from memjax.data import load_omniglot
        >>> d = load_omniglot(size=20)
        >>> b = santoro_sequences(d.images, d.character, 5, 50, batch_size=4, seed=0)
        >>> b.inputs.shape
        (4, 50, 405)
    """
    images = np.asarray(images)
    classes, members = _class_index(labels)
    if images.shape[0] != len(np.asarray(labels)):
        raise bad_arg("labels", f"{images.shape[0]} labels (one per image)", len(labels))
    _check_int("n_classes", n_classes, 1, len(classes), " (number of classes available)")
    _check_int("seq_len", seq_len, 1, None)
    _check_int("batch_size", batch_size, 1, None)
    if rotate and (images.ndim != 3 or images.shape[1] != images.shape[2]):
        raise bad_arg("images", "square (M, H, H) images when rotate=True", images.shape)
    rng = as_rng(seed)
    d = int(np.prod(images.shape[1:]))
    xs = np.zeros((batch_size, seq_len, d), np.float32)
    ys = np.zeros((batch_size, seq_len), np.int32)
    cls = np.zeros((batch_size, n_classes), np.int32)
    for b in range(batch_size):
        chosen = rng.choice(len(classes), size=n_classes, replace=False)
        cls[b] = classes[chosen]
        rots = rng.integers(0, 4, size=n_classes) if rotate else np.zeros(n_classes, int)
        orders = [rng.permutation(members[c]) for c in chosen]
        used = np.zeros(n_classes, int)
        ys[b] = rng.integers(0, n_classes, size=seq_len)
        for t, lab in enumerate(ys[b]):
            order = orders[lab]
            img = images[order[used[lab] % len(order)]]
            used[lab] += 1
            if rots[lab]:
                img = np.rot90(img, k=int(rots[lab]))
            xs[b, t] = np.reshape(img, -1)
    prev = np.zeros((batch_size, seq_len, n_classes), np.float32)
    prev[:, 1:] = np.eye(n_classes, dtype=np.float32)[ys[:, :-1]]
    return SantoroBatch(np.concatenate([xs, prev], -1), xs, prev, ys, cls)
