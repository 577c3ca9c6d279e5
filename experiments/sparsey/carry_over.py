"""Do the MNIST settings carry over to image sets they were not tuned on? (issue: held-out sets)

    python -m experiments.sparsey.carry_over            # cpu preset (the default)
    python -m experiments.sparsey.carry_over --sets fashion digits --seed 1
    python -m experiments.sparsey.carry_over --settings preset boundary density
    python -m experiments.sparsey.carry_over --validate boundary boundary-q16   # tuning sets only

The MNIST preset (:data:`experiments.sparsey.pipeline.MNIST`, tuned on the MNIST validation
split) and the boundary rule (:data:`experiments.sparsey.pipeline.MNIST_BOUNDARY`: level 1
reads the images' inner boundary, macs every 2 pixels; chosen on the MNIST validation split and
on that split dilated by one pixel, before any held-out set was run), with ``--settings stride1``
its second-round successor (:data:`experiments.sparsey.pipeline.MNIST_BOUNDARY_STRIDE1`: a mac at
every pixel, chosen the same way with ``--validate``) — and, with
``--settings density``, the earlier density rule (:func:`experiments.sparsey.pipeline.calibrate`)
— on binary 28×28 sets, each learned in one pass and read out linearly, against raw-pixel
logistic regression on the same binarised training images:

* MNIST (the tuning set): 200/class train, 300/class test (the ``mnist`` experiment's split);
* Fashion-MNIST, held out (``memjax.data.fashion_mnist_split``): 200/class from the official
  training set, 300/class from the official test set, binarised like MNIST (pixel > 127);
* sklearn digits, held out: 8×8 upsampled ×3 (nearest) and padded to 28×28, binarised at 0.5;
  the stratified 75/25 split of its ≈ 180 images per class (≈ 135/class train);
* Omniglot, held out: the first 50 characters of the vendored background sets, 28×28,
  binarised at 0.5; drawers 1–15 train, 16–20 test (15/class train).

Both linear models — the read-out on the one-hot Sparsey codes and the raw-pixel logistic
regression — are the same solver (``memjax.memories.sparsey.readout.softmax_regression_fit``,
30 L-BFGS iterations) with the L2 strength chosen the same way on every set: 3-fold stratified
cross-validation on that set's training split (``softmax_regression_cv``, grid ``L2_GRID``).
The previous anchor, scikit-learn's logistic regression at a fixed C = 0.05, and raw-pixel 1-NN
are reported beside them. Writes ``results.md`` and ``metrics.jsonl`` (with each run's learning
flags: frozen macs, stored fraction, median freeze item) into ``runs/sparsey/carry_over/``.

``--validate NAME ...`` scores the named :data:`CANDIDATES` on the tuning sets only — the MNIST
validation split (150/class of the 200/class training digits learned and fitted, the other
50/class scored; the test digits untouched) and the same split dilated by one pixel (3×3) — and
never loads a held-out set. A candidate of several models reads out their concatenated codes.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from experiments.sparsey.common import baselines, parser, write
from experiments.sparsey.pipeline import (
    MNIST,
    MNIST_BOUNDARY,
    MNIST_BOUNDARY_STRIDE1,
    build_hierarchy,
    calibrate,
    encode,
    fit_readout,
    learn,
    learning_stats,
    predict,
    prepare,
    run_pipeline,
)
from memjax.data import (
    binarize,
    fashion_mnist_split,
    load_digits_split,
    load_mnist,
    load_omniglot,
    split_per_class,
)
from memjax.memories.sparsey.readout import (
    softmax_regression_cv,
    softmax_regression_fit,
    softmax_regression_predict,
)
from memjax.train import enable_compilation_cache

SETS = {
    "mnist": "MNIST (tuned on)",
    "fashion": "Fashion-MNIST (held out)",
    "digits": "sklearn digits (held out)",
    "omniglot": "Omniglot 50 chars (held out)",
}


SETTINGS = {
    "preset": "MNIST preset",
    "boundary": "boundary rule (MNIST_BOUNDARY)",
    "stride1": "boundary rule, stride 1 (MNIST_BOUNDARY_STRIDE1)",
    "density": "density rule (calibrate)",
}


_B = MNIST_BOUNDARY
CANDIDATES = {
    "raw": (),
    "preset": (MNIST,),
    "boundary": (_B,),
    "boundary-q16": (_B.replace(Q=16),),
    "boundary-k32": (_B.replace(K=32),),
    "boundary-stride1": (MNIST_BOUNDARY_STRIDE1,),
    "boundary-5x5": (_B.replace(patch=5),),
    "boundary-7x7+5x5": (_B, _B.replace(patch=5)),
    "boundary-two-level": (_B.replace(levels=2),),
}
"""Tuning-set candidates of ``--validate``: the models whose codes the read-out reads (several:
concatenated, each learned with its own key); ``raw`` is the raw-pixel logistic regression."""


def validation_sets(seed: int):
    """The tuning sets: MNIST's validation split and the same split dilated by one pixel (3×3),
    ``name -> (x_fit, y_fit, x_val, y_val)``."""
    x, y = load_mnist()
    s = split_per_class(binarize(x), y, 200, seed=seed)
    v = split_per_class(s.x_train, s.y_train, 150, seed=seed + 1)
    d = (dilate(v.x_train, (28, 28)), v.y_train, dilate(v.x_test, (28, 28)), v.y_test)
    return {"MNIST val": (v.x_train, v.y_train, v.x_test, v.y_test), "dilated MNIST val": d}


def dilate(x, image_shape: tuple[int, int]) -> np.ndarray:
    """Binary images ``(n, H·W)`` dilated by one pixel: on where any pixel of the 3×3 square
    around it is on (:math:`x \\oplus B`, outside the image off)."""
    from scipy.ndimage import binary_dilation

    im = np.asarray(x).reshape(-1, *image_shape) != 0
    im = binary_dilation(im, structure=np.ones((1, 3, 3), bool))
    return im.reshape(len(im), -1).astype(np.uint8)


def candidate_accuracy(cfgs, xtr, ytr, xte, yte, *, key, image_shape=(28, 28)):
    """Validation % of the read-out on the concatenated codes of ``cfgs`` (λ by 3-fold CV on
    the fitting codes) and each model's learning flags."""
    tr, te, flags = [], [], []
    for i, cfg in enumerate(cfgs):
        cfg = cfg.replace(readout_l2=None)
        a, b = prepare(cfg, xtr, image_shape), prepare(cfg, xte, image_shape)
        model = build_hierarchy(cfg, image_shape)
        carry, learned = learn(model, a, key=jax.random.fold_in(key, i) if i else key)
        tr.append(encode(model, carry, a, cfg))
        te.append(encode(model, carry, b, cfg))
        st = learning_stats(model, carry, learned)
        flags.append(
            f"{st['level1_frozen_macs']}/{st['macs'].split('+')[0]}, "
            f"{st['level1_stored_fraction']:.3f}, {st['level1_median_freeze_item']}"
        )
    tr, te = jax.numpy.concatenate(tr, 1), jax.numpy.concatenate(te, 1)
    nc = int(ytr.max()) + 1
    readout = fit_readout(tr, ytr, cfgs[0].replace(readout_l2=None), nc)
    return 100 * float((predict(readout, te) == yte).mean()), "; ".join(flags)


def validate(names, seed: int, out: str):
    """``--validate``: every named candidate on both tuning sets (no held-out set is loaded)."""
    rows, t0 = [], time.perf_counter()
    sets = validation_sets(seed)
    for name in names:
        cfgs = CANDIDATES[name]
        row = {"candidate": name}
        t, c = time.perf_counter(), time.process_time()
        for set_name, (xtr, ytr, xte, yte) in sets.items():
            if not cfgs:
                nc = int(ytr.max()) + 1
                acc = raw_logistic(xtr, ytr, xte, yte, nc, MNIST.readout_steps)[1]
                flags = "—"
            else:
                acc, flags = candidate_accuracy(cfgs, xtr, ytr, xte, yte, key=jax.random.key(seed))
            row[f"{set_name} %"] = round(acc, 2)
            row[f"{set_name} flags"] = flags
        row["macs"] = "+".join(
            str(lv.n_macs) for c in cfgs for lv in build_hierarchy(c, (28, 28)).levels
        )
        row["seconds"], row["cpu s"] = (
            round(time.perf_counter() - t, 1),
            round(time.process_time() - c, 1),
        )
        rows.append(row)
        print(row, flush=True)
    notes = {"seconds": round(time.perf_counter() - t0, 1), "seed": seed}
    write(out, rows, title="Sparsey candidates on the tuning sets (validation)", notes=notes)
    return rows


def datasets(seed: int, names=tuple(SETS)):
    """``name -> (x_train, y_train, x_test, y_test)``, binary 28×28 images flattened."""
    out = {}
    if "mnist" in names:
        x, y = load_mnist()
        s = split_per_class(binarize(x), y, 200, seed=seed)
        out[SETS["mnist"]] = (s.x_train, s.y_train, s.x_test, s.y_test)
    if "fashion" in names:
        f = fashion_mnist_split(200, n_test_per_class=300, seed=seed, flatten=True)
        out[SETS["fashion"]] = (binarize(f.x_train), f.y_train, binarize(f.x_test), f.y_test)
    if "digits" in names:
        d = load_digits_split(seed=seed)

        def up(a):
            a = np.kron(a.reshape(-1, 8, 8), np.ones((3, 3)))
            return (np.pad(a, ((0, 0), (2, 2), (2, 2))) > 0.5).astype(np.uint8).reshape(len(a), -1)

        out[SETS["digits"]] = (up(d.x_train), d.y_train, up(d.x_test), d.y_test)
    if "omniglot" in names:
        o = load_omniglot(size=28)
        keep = o.character < 50
        img = binarize(o.images[keep].reshape(keep.sum(), -1), 0.5)
        ch, dr = o.character[keep], o.drawer[keep]
        tr, te = dr < 15, dr >= 15
        out[SETS["omniglot"]] = (img[tr], ch[tr], img[te], ch[te])
    return out


def raw_logistic(xtr, ytr, xte, yte, num_classes: int, steps: int):
    """Raw-pixel logistic regression with the read-out's solver and λ selection: ``(λ, %)``."""
    xtr, xte = np.asarray(xtr, np.float32), np.asarray(xte, np.float32)
    l2, _ = softmax_regression_cv(xtr, ytr, num_classes=num_classes, steps=steps)
    m = softmax_regression_fit(xtr, ytr, num_classes=num_classes, l2=l2, steps=steps)
    return l2, 100 * float((np.asarray(softmax_regression_predict(m, xte)) == yte).mean())


def main(argv=None):
    p = parser(__doc__, "carry_over")
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument(
        "--settings",
        nargs="+",
        default=["preset", "boundary"],
        choices=list(SETTINGS),
        help="preset: MNIST; boundary: MNIST_BOUNDARY (the rule); stride1: MNIST_BOUNDARY_STRIDE1; "
        "density: calibrate(MNIST)",
    )
    p.add_argument(
        "--validate",
        nargs="+",
        choices=list(CANDIDATES),
        help="score these candidates on the tuning sets only (MNIST val, dilated MNIST val)",
    )
    args = p.parse_args(argv)
    enable_compilation_cache()  # $MEMJAX_CACHE_DIR, or 'off'
    if args.validate:
        out = args.out if args.out != p.get_default("out") else "runs/sparsey/carry_over_val"
        return validate(args.validate, args.seed, out)
    rows = []
    t0 = time.perf_counter()
    for name, (xtr, ytr, xte, yte) in datasets(args.seed, args.sets).items():
        num_classes = int(max(ytr.max(), yte.max())) + 1
        base = baselines(xtr, ytr, xte, yte)
        raw_l2, raw_acc = raw_logistic(xtr, ytr, xte, yte, num_classes, MNIST.readout_steps)
        seen = {}
        for name_ in args.settings:
            rule = SETTINGS[name_]
            fixed = {"preset": MNIST, "boundary": MNIST_BOUNDARY, "stride1": MNIST_BOUNDARY_STRIDE1}
            cfg = fixed.get(name_) or calibrate(MNIST, xtr)
            cfg = cfg.replace(readout_l2=None)  # λ by cross-validation on this training split
            if cfg in seen:  # the rule is the identity here: same run
                rows.append({**seen[cfg], "setting": rule})
                continue
            t = time.perf_counter()
            res = run_pipeline(
                cfg,
                xtr,
                ytr,
                xte,
                image_shape=(28, 28),
                key=jax.random.key(args.seed),
                num_classes=num_classes,
            )
            acc = 100 * float((res.predictions == yte).mean())
            rows.append(
                {
                    "set": name,
                    "setting": rule,
                    "density": round(float(np.mean(xtr)), 3),
                    "density read": round(float(np.mean(prepare(cfg, xtr, (28, 28)))), 3),
                    "macs": res.stats["macs"],
                    "saturation": cfg.saturation,
                    "gate_min": cfg.gate_min,
                    "Sparsey linear %": round(acc, 2),
                    "raw logistic (same CV) %": round(raw_acc, 2),
                    "met": "yes" if acc >= raw_acc else "no",
                    "read-out λ": res.stats.get("readout_l2"),
                    "raw λ": raw_l2,
                    "raw sklearn LR C=0.05 %": round(base["raw logistic"], 2),
                    "raw 1-NN %": round(base["raw 1-NN"], 2),
                    "frozen macs": res.stats["level1_frozen_macs"],
                    "stored fraction": round(res.stats["level1_stored_fraction"], 3),
                    "median freeze item": res.stats["level1_median_freeze_item"],
                    "train/test": f"{len(ytr)}/{len(yte)}",
                    "seconds": round(time.perf_counter() - t, 1),
                }
            )
            seen[cfg] = rows[-1]
            print(rows[-1], flush=True)
    write(
        args.out,
        rows,
        title="Sparsey settings carried to image sets they were not tuned on",
        notes={
            "seconds": round(time.perf_counter() - t0, 1),
            "preset": args.preset,
            "seed": args.seed,
        },
    )
    return rows


if __name__ == "__main__":
    main()
