"""Shared pieces of the Sparsey experiments: the command line, result files, random binary
patterns, and the MNIST model and data of ``mnist`` and ``learning_curve``.

* :func:`parser` / :func:`write` — presets, run folder, ``results.md`` + ``metrics.jsonl`` + PNG;
* :func:`random_patterns` — binary patterns with a fixed number of active bits;
* :func:`add_model_args`, :func:`mnist_model`, :func:`load_data`, :func:`codes_of`,
  :func:`baselines` — the MNIST hierarchy (defaults: ``pipeline.MNIST``, chosen on the
  validation split, README), :func:`config_of` (args → ``SparseyConfig``),
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

import numpy as np

from experiments.sparsey.pipeline import MNIST, SparseyConfig, build_hierarchy, codes_of  # noqa: F401
from memjax.data import binarize, load_mnist, split_per_class
from memjax.data.skeleton import skeletonize
from memjax.memories.sparsey.hierarchy import SparseyHierarchy
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
    """The model's command-line knobs; defaults are :data:`~experiments.sparsey.pipeline.MNIST`
    (the setting chosen on the validation split)."""
    d = MNIST
    p.add_argument("--levels", type=int, default=d.levels, choices=[1, 2])
    p.add_argument("--patch", type=int, default=d.patch)
    p.add_argument("--stride", type=int, default=d.stride)
    p.add_argument("--Q", type=int, default=d.Q)
    p.add_argument("--K", type=int, default=d.K)
    p.add_argument("--gate-min", type=int, default=d.gate_min, help="min active pixels in an RF")
    p.add_argument("--saturation", type=float, default=d.saturation, help="freeze at this fill")
    p.add_argument("--g-minus", type=float, default=d.g_minus, help="familiarity floor G⁻")
    p.add_argument("--inflection", type=float, default=d.inflection, help="sigmoid inflection θ")
    p.add_argument("--slope", type=float, default=d.slope, help="sigmoid slope λ")
    p.add_argument("--patch2", type=int, default=d.patch2, help="level-2 RF, in level-1 macs")
    p.add_argument("--stride2", type=int, default=d.stride2)
    p.add_argument("--ties", default=d.ties, choices=["shared", "per_item"])
    p.add_argument(
        "--inputs",
        default=d.inputs,
        choices=["pixels", "boundary"],
        help="what level 1 reads: the binary pixels or their inner boundary (MNIST_BOUNDARY)",
    )
    p.add_argument(
        "--readout-steps", type=int, default=d.readout_steps, help="read-out L-BFGS iterations"
    )
    p.add_argument(
        "--readout-l2", type=float, default=d.readout_l2, help="read-out L2 (≤ 0: cross-validate)"
    )


def config_of(args) -> SparseyConfig:
    """The :class:`~experiments.sparsey.pipeline.SparseyConfig` of parsed command-line args."""
    return MNIST.replace(
        levels=args.levels,
        patch=args.patch,
        stride=args.stride,
        Q=args.Q,
        K=args.K,
        gate_min=args.gate_min,
        saturation=args.saturation,
        g_minus=args.g_minus,
        inflection=args.inflection,
        slope=args.slope,
        patch2=args.patch2,
        stride2=args.stride2,
        ties=args.ties,
        inputs=getattr(args, "inputs", MNIST.inputs),
        readout_steps=args.readout_steps,
        readout_l2=args.readout_l2 if args.readout_l2 > 0 else None,
    )


def mnist_model(args) -> SparseyHierarchy:
    """The MNIST hierarchy of the :func:`add_model_args` settings (:func:`config_of`)."""
    return build_hierarchy(config_of(args), (28, 28))


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


def baselines(xtr, ytr, xte, yte):
    """Raw-pixel 1-NN and logistic-regression test accuracy, %."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    out = {"raw 1-NN": KNeighborsClassifier(1).fit(xtr, ytr).score(xte, yte)}
    lr = LogisticRegression(max_iter=200, C=0.05).fit(xtr, ytr)
    out["raw logistic"] = lr.score(xte, yte)
    return {k: 100 * v for k, v in out.items()}
