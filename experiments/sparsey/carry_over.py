"""Do the MNIST settings carry over to image sets they were not tuned on? (issue: held-out sets)

    python -m experiments.sparsey.carry_over            # cpu preset (the default)

The MNIST preset (:data:`experiments.sparsey.pipeline.MNIST`, tuned on the MNIST validation
split) is run as is and with the density rule (:func:`experiments.sparsey.pipeline.calibrate`:
freezing threshold and gate scaled by the training set's active-pixel fraction relative to
MNIST's) on three binary 28×28 sets, each learned in one pass, read out linearly, against
raw-pixel logistic regression on the same training images:

* MNIST (the tuning set): 200/class train, 300/class test (the ``mnist`` experiment's split);
* sklearn digits, held out: 8×8 upsampled ×3 (nearest) and padded to 28×28, binarised at 0.5;
  the stratified 75/25 split (≈ 135/class train);
* Omniglot, held out: the first 50 characters of the vendored background sets, 28×28,
  binarised at 0.5; drawers 1–15 train, 16–20 test.

Writes ``results.md`` and ``metrics.jsonl`` (with each run's learning flags: frozen macs,
stored fraction, median freeze item) into ``runs/sparsey/carry_over/``.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from experiments.sparsey.common import baselines, parser, write
from experiments.sparsey.pipeline import MNIST, calibrate, run_pipeline
from memjax.data import binarize, load_digits_split, load_mnist, load_omniglot, split_per_class
from memjax.train import enable_compilation_cache


def datasets(seed: int):
    """``name -> (x_train, y_train, x_test, y_test)``, binary 28×28 images flattened."""
    x, y = load_mnist()
    s = split_per_class(binarize(x), y, 200, seed=seed)
    out = {"MNIST (tuned on)": (s.x_train, s.y_train, s.x_test, s.y_test)}
    d = load_digits_split(seed=seed)

    def up(a):
        a = np.kron(a.reshape(-1, 8, 8), np.ones((3, 3)))
        return (np.pad(a, ((0, 0), (2, 2), (2, 2))) > 0.5).astype(np.uint8).reshape(len(a), -1)

    out["sklearn digits (held out)"] = (up(d.x_train), d.y_train, up(d.x_test), d.y_test)
    o = load_omniglot(size=28)
    keep = o.character < 50
    img = binarize(o.images[keep].reshape(keep.sum(), -1), 0.5)
    ch, dr = o.character[keep], o.drawer[keep]
    tr, te = dr < 15, dr >= 15
    out["Omniglot 50 chars (held out)"] = (img[tr], ch[tr], img[te], ch[te])
    return out


def main(argv=None):
    p = parser(__doc__, "carry_over")
    args = p.parse_args(argv)
    enable_compilation_cache()  # $MEMJAX_CACHE_DIR, or 'off'
    rows = []
    t0 = time.perf_counter()
    for name, (xtr, ytr, xte, yte) in datasets(args.seed).items():
        base = baselines(xtr, ytr, xte, yte)
        for rule, cfg in (("MNIST preset", MNIST), ("density rule", calibrate(MNIST, xtr))):
            res = run_pipeline(
                cfg, xtr, ytr, xte, image_shape=(28, 28), key=jax.random.key(args.seed)
            )
            acc = 100 * float((res.predictions == yte).mean())
            rows.append(
                {
                    "set": name,
                    "setting": rule,
                    "density": round(float(np.mean(xtr)), 3),
                    "saturation": cfg.saturation,
                    "gate_min": cfg.gate_min,
                    "Sparsey linear %": acc,
                    "raw logistic %": base["raw logistic"],
                    "frozen macs": res.stats["level1_frozen_macs"],
                    "stored fraction": round(res.stats["level1_stored_fraction"], 3),
                    "median freeze item": res.stats["level1_median_freeze_item"],
                    "train/test": f"{len(ytr)}/{len(yte)}",
                }
            )
            print(rows[-1], flush=True)
    write(
        args.out,
        rows,
        title="Sparsey settings carried to image sets they were not tuned on",
        notes={"seconds": round(time.perf_counter() - t0, 1), "preset": args.preset},
    )
    return rows


if __name__ == "__main__":
    main()
