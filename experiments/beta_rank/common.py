"""Pieces of the Beta-Rank experiments: data, model, losses, metrics, scoring and surgery.

Example:
    >>> import numpy as np
    >>> from experiments.beta_rank.common import classification_metrics, stability_fraction
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> m = classification_metrics(np.array([0, 1, 1]), p, minority=1)
    >>> round(m["top1"], 4), m["minority_recall"], m["auc"]
    (66.6667, 50.0, 100.0)
    >>> stability_fraction([np.array([3.0, 2, 1, 0]), np.array([3.0, 1, 2, 0])], quarter=0.25)
    0.5
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn import metrics as skm

from memjax.data import (
    lesion_split,
    load_medmnist_npz,
    long_tailed_digits,
    long_tailed_fashion_mnist,
)
from memjax.models.cnn import ResNet
from memjax.pruning import group_scores, masks_from_scores, materialize, score_layers, trace_groups

__all__ = [
    "METHODS",
    "PAPER_TABLE3",
    "classification_metrics",
    "coupled_groups",
    "load_dataset",
    "make_net",
    "prune",
    "scores_for",
    "spec_for",
    "stability_fraction",
]

# (label, score_layers method, Beta-Rank mode)
METHODS = {
    "beta_paper": ("beta_rank", "paper"),
    "beta_code": ("beta_rank", "code_compat"),
    "l1": ("l1", None),
    "hrank": ("hrank", None),
    "random": ("random", None),
}

PAPER_TABLE3 = [
    # dataset/model, exp, FLOPs cut %, params cut %, baseline, L1, HRank, beta-rank (mean ± std)
    ("ISIC ResNet-56", "#1", 24, 22, "73.33", "69.56±4.91", "59.56±3.01", "73.56±1.68"),
    ("ISIC ResNet-56", "#2", 41, 35, "73.33", "60.89±3.67", "57.33±2.40", "72.44±1.68"),
    ("ISIC ResNet-110", "#1", 45, 39, "72.66", "66.67±.67", "67.78±2.69", "73.33±.67"),
    ("ISIC ResNet-110", "#2", 27, 23, "72.66", "62.00±2.67", "59.11±1.39", "71.56±.39"),
    ("IDRiD ResNet-56", "#1", 36, 33, "82.52", "73.79±.97", "71.52±1.48", "79.94±1.12"),
    ("IDRiD ResNet-56", "#2", 46, 42, "82.52", "75.08±1.12", "70.87±.97", "80.58±1.68"),
    ("IDRiD ResNet-110", "#1", 45, 39, "79.61", "73.14±1.48", "78.32±1.12", "80.26±1.12"),
    ("IDRiD ResNet-110", "#2", 58, 56, "79.61", "74.76±2.57", "61.49±2.44", "81.88±1.48"),
]


def load_dataset(config):
    """``(Split, class names)`` of ``config.dataset`` at ``config.image_size``."""
    size, seed = config.image_size, config.data_seed
    if config.dataset in ("idrid_digits", "isic_digits"):
        split = long_tailed_digits(config.dataset.split("_")[0], size=size, seed=seed)
        names = ("digits 0-2", "digits 3-5", "digits 6-9")
    elif config.dataset == "fashion_lt":
        split = long_tailed_fashion_mnist(100.0, n_max=600, size=size, seed=seed)
        names = tuple(f"class {c}" for c in range(10))
    elif config.dataset == "lesions":
        split = lesion_split(size=size, seed=seed)
        names = ("nevus", "melanoma", "keratosis")
    elif config.dataset == "medmnist":
        data = load_medmnist_npz(config.npz_path, size=size)
        from memjax.data import Split

        split = Split(
            np.concatenate([data.x_train, data.x_val]),
            np.concatenate([data.y_train, data.y_val]),
            data.x_test,
            data.y_test,
        )
        names = tuple(f"class {c}" for c in range(int(split.y_train.max()) + 1))
    else:
        raise ValueError(f"dataset: unknown {config.dataset!r}")
    return split, names


def make_net(config, num_classes: int, in_channels: int) -> ResNet:
    """The dense CIFAR ResNet of the config."""
    return ResNet(
        config.blocks_per_stage,
        tuple(config.widths),
        num_classes=num_classes,
        in_channels=in_channels,
    )


def spec_for(base: ResNet, params) -> ResNet:
    """``base`` with the mid widths the params have (only mids are pruned here)."""
    mids = tuple(int(b["conv1"]["kernel"].shape[3]) for b in params["blocks"])
    return dataclasses.replace(base, mid_widths=mids)


def loss_fn_for(base: ResNet):
    """Cross-entropy without class weighting (as the paper), for whatever widths params have."""

    def loss_fn(params, model_state, batch, key):
        logits, new_state = spec_for(base, params).apply(
            params, model_state, batch["x"], train=True
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return loss, ({}, new_state)

    return loss_fn


def mid_layers(net: ResNet):
    """The block ``conv1`` layers (the ones pruned)."""
    return [layer for layer in net.conv_layers() if layer[0].endswith("conv1")]


def scores_for(method: str, net: ResNet, params, state, calib, *, key, min_batch=None):
    """Layer scores ``{kernel name: (C,)}`` of the mids by one of :data:`METHODS`."""
    kind, mode = METHODS[method]

    def fn(p, x):
        return net.apply(p, state, x, train=False)[0]

    kwargs = {} if mode is None else {"mode": mode}
    return score_layers(
        kind,
        fn,
        params,
        jnp.asarray(calib),
        mid_layers(net),
        key=key,
        min_batch=min_batch,
        chunk_size=128,
        **kwargs,
    )


def coupled_groups(net: ResNet, params, state):
    """The traced channel groups of ``net`` (they depend on its structure only)."""

    def fn(p, s, x):
        return net.apply(p, s, x, train=False)[0]

    return trace_groups(fn, params, jnp.zeros((1, 8, 8, net.in_channels)), model_state=state)


def prune(net: ResNet, params, state, layer_scores, ratio: float, *, groups, reduce="mean"):
    """Materialised ``(spec, params, state)`` with every block's mids pruned at ``ratio``
    (the residual stream is kept whole, so every method gives the same shapes)."""
    table = group_scores(layer_scores, groups, reduce=reduce)
    ratios = net.ratios([0.0] * 3 + [ratio] * net.num_blocks)
    masks = masks_from_scores(table, groups, ratio=ratios)
    return materialize(net, params, groups, masks, model_state=state)


def classification_metrics(y_true, probs, *, minority: int) -> dict:
    """Top-1, top-2, macro-F1, micro-F1, balanced accuracy, per-class recall and one-vs-rest
    macro AUC over the whole evaluation set (all in %)."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, np.float64)
    k = probs.shape[1]
    pred = probs.argmax(1)
    top2 = np.argsort(-probs, axis=1)[:, :2]
    recall = skm.recall_score(y_true, pred, labels=list(range(k)), average=None, zero_division=0)
    present = np.unique(y_true)
    if len(present) < 2:
        auc = float("nan")
    elif k == 2:
        auc = skm.roc_auc_score(y_true, probs[:, 1])
    else:
        p = probs[:, present] / probs[:, present].sum(1, keepdims=True)
        auc = skm.roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=present)
    return {
        "top1": 100 * float((pred == y_true).mean()),
        "top2": 100 * float((top2 == y_true[:, None]).any(1).mean()),
        "macro_f1": 100 * float(skm.f1_score(y_true, pred, average="macro", zero_division=0)),
        "micro_f1": 100 * float(skm.f1_score(y_true, pred, average="micro", zero_division=0)),
        "balanced_acc": 100 * float(skm.balanced_accuracy_score(y_true, pred)),
        "recall": [100 * float(r) for r in recall],
        "minority_recall": 100 * float(recall[minority]),
        "auc": 100 * float(auc),
    }


@functools.lru_cache(maxsize=16)
def _probabilities(net: ResNet):
    return jax.jit(lambda p, s, x: jax.nn.softmax(net.apply(p, s, x, train=False)[0]))


def predict(net: ResNet, params, state, x, batch: int = 256):
    """Softmax probabilities over ``x`` in chunks (evaluation mode; one compile per spec)."""
    fn = _probabilities(net)
    return np.concatenate(
        [
            np.asarray(fn(params, state, jnp.asarray(x[i : i + batch])))
            for i in range(0, len(x), batch)
        ]
    )


def stability_fraction(runs, *, quarter: float = 0.25) -> float:
    """SF of one layer (the paper's README figure): the union over runs of the selected filters
    (the top and bottom ``quarter`` by score) over the number of filters. Lower is more stable;
    with this selection it is at least ``2 * quarter``."""
    sets = []
    for s in runs:
        s = np.asarray(s)
        n = max(1, int(len(s) * quarter))
        order = np.lexsort((np.arange(len(s)), -s))
        sets.append(set(order[:n].tolist()) | set(order[-n:].tolist()))
    return len(set().union(*sets)) / len(np.asarray(runs[0]))
