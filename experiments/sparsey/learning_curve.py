"""MNIST learning curve: test accuracy against training digits per class (single pass).

    python -m experiments.sparsey.learning_curve        # cpu preset (the default)

Setup: the MNIST model of ``experiments.sparsey.mnist`` with its defaults
(:func:`experiments.sparsey.common.mnist_model`: one level of 64 macs, 7×7-pixel RFs, stride 3,
Q = 8, K = 16, settings chosen on the validation split). The 200 per class training digits are
ordered so every smaller training set is a prefix (5 per class per chunk of 50); codes are
learned chunk by chunk in one pass and, at 10, 25, 50, 100 and 200 per class, the linear
read-out is fitted on the codes of the digits seen so far and scored on the same 3,000 test
digits (300 per class). Raw-pixel 1-NN and logistic regression at each size are
the anchors. Writes ``results.md``, ``metrics.jsonl`` and ``learning_curve.png`` into
``runs/sparsey/learning_curve/``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.sparsey.common import (
    PAPER_ACCURACY,
    add_model_args,
    baselines,
    codes_of,
    config_of,
    load_data,
    mnist_model,
    parser,
    write,
)
from experiments.sparsey.pipeline import fit_readout, prepare
from memjax.memories.sparsey.readout import linear_readout_predict
from memjax.train import enable_compilation_cache

CHUNK_PER_CLASS = 5


def nested_order(y, per_class, rng):
    """Indices such that the first 10·n items hold n of every class, for every multiple of 5."""
    by_class = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in range(10)]
    order = []
    for start in range(0, per_class, CHUNK_PER_CLASS):
        block = np.concatenate([b[start : start + CHUNK_PER_CLASS] for b in by_class])
        order.append(rng.permutation(block))
    return np.concatenate(order)


def main(argv=None):
    p = parser(__doc__, "learning_curve")
    add_model_args(p)
    args = p.parse_args(argv)
    enable_compilation_cache()  # $MEMJAX_CACHE_DIR, or 'off'
    sizes = (10, 25, 50, 100, 200)
    xtr, ytr, xte, yte = load_data(args, max(sizes))
    order = nested_order(ytr, max(sizes), np.random.default_rng(args.seed))
    xtr, ytr = xtr[order], ytr[order]
    model = mnist_model(args)
    # What level 1 reads (--inputs boundary: the inner boundary); the baselines read the pixels.
    mtr, mte = (prepare(config_of(args), a, (28, 28)) for a in (xtr, xte))
    chunk = 10 * CHUNK_PER_CLASS
    t0 = time.perf_counter()
    carry, rows = model.init_carry(), []
    series = {
        "memjax Sparsey (linear read-out)": ([], []),
        "raw logistic": ([], []),
        "raw 1-NN": ([], []),
    }
    for i, start in enumerate(range(0, len(ytr), chunk)):
        xs = mtr[start : start + chunk]
        carry, _ = model.run(model.reset_time(carry), xs, key=jax.random.key(1000 * args.seed + i))
        n = (start + chunk) // 10
        if n not in sizes:
            continue
        # Recognise everything seen so far with the current weights (chunked: fixed shapes).
        tr = jnp.concatenate(
            [
                codes_of(model.recognize(carry, mtr[s : s + chunk], ties=args.ties))
                for s in range(0, start + chunk, chunk)
            ]
        )
        te = codes_of(model.recognize(carry, mte, ties=args.ties))
        lin = fit_readout(tr, ytr[: start + chunk], config_of(args), 10)
        acc = 100 * float((np.asarray(linear_readout_predict(lin, te)) == yte).mean())
        base = baselines(xtr[: start + chunk], ytr[: start + chunk], xte, yte)
        rows.append(
            {
                "train per class": n,
                "train total": 10 * n,
                "memjax Sparsey %": acc,
                "raw logistic %": base["raw logistic"],
                "raw 1-NN %": base["raw 1-NN"],
                "paper %": PAPER_ACCURACY if n == 200 else None,
                "seconds so far": round(time.perf_counter() - t0, 1),
            }
        )
        for name, v in (
            ("memjax Sparsey (linear read-out)", acc),
            ("raw logistic", base["raw logistic"]),
            ("raw 1-NN", base["raw 1-NN"]),
        ):
            series[name][0].append(n)
            series[name][1].append(v)
        print(rows[-1], flush=True)
    series["paper (200/class)"] = ([200], [PAPER_ACCURACY])
    write(
        args.out,
        rows,
        title="Sparsey MNIST learning curve (single pass)",
        notes={
            "preset": args.preset,
            "test digits": len(yte),
            "model": f"{model.levels[0].n_macs} macs, {args.patch}×{args.patch} px, "
            f"stride {args.stride}, Q={args.Q}, K={args.K}",
            "seconds": round(time.perf_counter() - t0, 1),
        },
        series=series,
        xlabel="training digits per class",
        ylabel="test accuracy %",
        logx=True,
        png="learning_curve.png",
    )
    return rows


if __name__ == "__main__":
    main()
