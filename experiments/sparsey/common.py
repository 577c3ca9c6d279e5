"""Shared pieces of the Sparsey experiments: the command line, result files, random binary
patterns, and the MNIST model and data of ``mnist`` and ``learning_curve``.

* :func:`parser` / :func:`write` — presets, run folder, ``results.md`` + ``metrics.jsonl`` + PNG;
* :func:`random_patterns` — binary patterns with a fixed number of active bits;
* :func:`add_model_args`, :func:`mnist_model`, :func:`load_data`, :func:`codes_of`,
  :func:`baselines` — the MNIST hierarchy (defaults chosen on the validation split, README),
  its data split, its codes and the raw-pixel anchors.

Example:
    >>> import numpy as np
    >>> from experiments.sparsey.common import random_patterns
    >>> xs = random_patterns(np.random.default_rng(0), 3, size=10, active=4)
    >>> xs.shape, xs.sum(axis=1).tolist()
    ((3, 10), [4, 4, 4])
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from memjax.data import binarize, load_mnist, split_per_class
from memjax.data.skeleton import skeletonize
from memjax.memories.sparsey import SparseyMac
from memjax.memories.sparsey.hierarchy import (
    SparseyHierarchy,
    SparseyLevel,
    mac_cells,
    tile_receptive_fields,
)
from memjax.train import describe_machine, plot_lines, write_results_table

PAPER_ACCURACY = 91.0  # sparsey.com MNIST_Results, 200/class, single trial


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--preset",
        default="cpu",
        choices=["cpu", "gpu", "tpu"],
        help="cpu: minutes on 2 cores (default); gpu/tpu: more seeds and sizes",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=f"runs/sparsey/{name}")
    return p


def write(
    out: str | Path,
    rows,
    *,
    title: str,
    notes: dict,
    series: dict | None = None,
    xlabel: str = "",
    ylabel: str = "",
    logx: bool = False,
    png: str = "plot.png",
) -> str:
    """``results.md`` (table + notes + machine), ``metrics.jsonl`` and one PNG in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=float) + "\n")
    notes = {**notes, "machine": describe_machine()}
    text = write_results_table(out / "results.md", rows, title=title, notes=notes)
    if series:
        plot_lines(out / png, series, xlabel=xlabel, ylabel=ylabel, title=title, logx=logx)
    print(text)
    return text


def random_patterns(rng: np.random.Generator, n: int, size: int, active: int) -> np.ndarray:
    """``n`` binary patterns ``(n, size)`` (uint8), each with ``active`` ones drawn by ``rng``."""
    xs = np.zeros((n, size), np.uint8)
    for i in range(n):
        xs[i, rng.choice(size, active, replace=False)] = 1
    return xs


# ---------------------------------------------------------------------------------- MNIST
def add_model_args(p: argparse.ArgumentParser) -> None:
    """The model's command-line knobs (defaults = the setting chosen on the validation split)."""
    p.add_argument("--levels", type=int, default=1, choices=[1, 2])
    p.add_argument("--patch", type=int, default=7)
    p.add_argument("--stride", type=int, default=3)
    p.add_argument("--Q", type=int, default=8)
    p.add_argument("--K", type=int, default=16)
    p.add_argument("--gate-min", type=int, default=3, help="min active pixels in a mac's RF")
    p.add_argument("--saturation", type=float, default=0.15, help="freeze a mac at this fill")
    p.add_argument("--g-minus", type=float, default=0.7, help="familiarity floor G⁻")
    p.add_argument("--inflection", type=float, default=0.9, help="sigmoid inflection θ")
    p.add_argument("--slope", type=float, default=20.0, help="sigmoid slope λ")
    p.add_argument("--patch2", type=int, default=3, help="level-2 RF, in level-1 macs")
    p.add_argument("--stride2", type=int, default=1)
    p.add_argument("--ties", default="shared", choices=["shared", "per_item"])
    p.add_argument("--readout-steps", type=int, default=100, help="Adam steps, linear read-out")


def mnist_model(args) -> SparseyHierarchy:
    """The MNIST hierarchy of the :func:`add_model_args` settings: a grid of ``patch``×``patch``
    pixel macs, and with ``levels=2`` a level reading ``patch2``×``patch2`` level-1 macs."""
    rf = tile_receptive_fields((28, 28), args.patch, args.stride)
    csa = dict(
        Q=args.Q,
        K=args.K,
        saturation=args.saturation,
        g_minus=args.g_minus,
        inflection=args.inflection,
        slope=args.slope,
    )
    levels = [SparseyLevel(SparseyMac(n_inputs=args.patch**2, gate_min=args.gate_min, **csa), rf)]
    if args.levels == 2:
        grid = (28 - args.patch) // args.stride + 1
        rf2 = mac_cells(
            tile_receptive_fields((grid, grid), args.patch2, args.stride2), args.Q, args.K
        )
        # gate: at least two active level-1 macs (Q cells each) in the RF
        levels.append(
            SparseyLevel(SparseyMac(n_inputs=len(rf2[0]), gate_min=2 * args.Q, **csa), rf2)
        )
    return SparseyHierarchy(tuple(levels))


def load_data(args, per_class: int):
    """``(x_train, y_train, x_eval, y_eval)``: test split, or the validation split."""
    x, y = load_mnist()
    x = binarize(x)
    if getattr(args, "skeleton", False):
        x = skeletonize(x.reshape(-1, 28, 28)).reshape(-1, 784)
    s = split_per_class(x, y, per_class, seed=args.seed)
    if getattr(args, "validate", False):
        return split_per_class(s.x_train, s.y_train, per_class - per_class // 4, seed=args.seed + 1)
    return s


def codes_of(outs):
    """All levels' codes ``(B, Σ M·Q)`` (levels share K)."""
    return jnp.concatenate([o.code.reshape(o.code.shape[0], -1) for o in outs], axis=1)


def baselines(xtr, ytr, xte, yte):
    """Raw-pixel 1-NN and logistic-regression test accuracy, %."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    out = {"raw 1-NN": KNeighborsClassifier(1).fit(xtr, ytr).score(xte, yte)}
    lr = LogisticRegression(max_iter=200, C=0.05).fit(xtr, ytr)
    out["raw logistic"] = lr.score(xte, yte)
    return {k: 100 * v for k, v in out.items()}
