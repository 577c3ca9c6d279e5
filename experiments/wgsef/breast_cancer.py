"""Feature selection at exactly k on breast cancer: WGSEF vs group lasso, HSPG, magnitude, ℓ1-LR.

    python -m experiments.wgsef.breast_cancer                 # cpu preset: k = 3, 5, 10, 5 seeds
    python -m experiments.wgsef.breast_cancer --seeds 10 --ks 2,3,5,10
    python -m experiments.wgsef.breast_cancer --preset tiny --ks 3   # smoke run (seconds)

Data: scikit-learn's breast cancer set (569 × 30, ``memjax.data.load_breast_cancer_split``,
stratified 70/30 split per seed, standardised by the training statistics). Model: an MLP
30 → 16 → 2 (ReLU) from :mod:`memjax.nn`; the groups are the 30 **input features** (rows of
the first kernel, ``channel`` grouping), so ``k`` non-zero groups = ``k`` selected features.
Every method trains ``--sparse-steps`` full-batch steps, lands on exactly ``k`` features
(``experiments.wgsef.common.exact_k``) and fine-tunes ``--finetune-steps`` with the other 30 − k
frozen at zero. The ℓ1-regularised logistic regression (scikit-learn, liblinear) is tuned by a
bisection on ``C`` until exactly ``k`` coefficients are non-zero. Writes ``results.md`` and
``summary.json`` into ``runs/wgsef/breast_cancer/<preset>``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.wgsef.common import METHODS, exact_k, finetune_optimizer, sparse_optimizer
from memjax.data import load_breast_cancer_split
from memjax.nn import Dense
from memjax.sparsity import count_nonzero_groups, tree_groups
from memjax.train import describe_machine, write_results_table

PRESETS = {
    "cpu": {"seeds": 5, "sparse_steps": 600, "finetune_steps": 300},
    "gpu": {"seeds": 20, "sparse_steps": 2000, "finetune_steps": 1000},
    "tpu": {"seeds": 20, "sparse_steps": 2000, "finetune_steps": 1000},
    "tiny": {"seeds": 1, "sparse_steps": 4, "finetune_steps": 2},  # a smoke run, not a result
}
LAYERS = {"fc1": Dense(30, 16), "fc2": Dense(16, 2)}
LR = 0.05
LAM = {"wgsef": 1.0, "group_lasso": 1.0, "hspg": 0.2, "magnitude": 0.0}
"""λ per method, chosen on the split of seed 1000 (not in the table) from {0.05, 0.2, 1, 5}
(WGSEF) and {0.05, 0.2, 1, 3} (group lasso, HSPG) by test accuracy at k = 3, 5, 10."""


def init_params(key):
    k1, k2 = jax.random.split(key)
    return {"fc1": LAYERS["fc1"].init_params(k1), "fc2": LAYERS["fc2"].init_params(k2)}


def logits_fn(params, x):
    h = jax.nn.relu(LAYERS["fc1"](params["fc1"], x))
    return LAYERS["fc2"](params["fc2"], h)


def loss_fn(params, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(params, x), y).mean()


def accuracy(params, x, y) -> float:
    return float(np.mean(np.asarray(jnp.argmax(logits_fn(params, x), -1)) == y))


GROUPS = tree_groups(
    jax.eval_shape(init_params, jax.random.key(0)), {"fc1": LAYERS["fc1"]}, "channel"
)
_RUNNERS: dict = {}


def runner(tx, steps: int):
    """A jitted ``lax.scan`` of ``steps`` full-batch updates (cached per optimizer)."""
    key = (id(tx), steps)
    if key not in _RUNNERS:

        def run(params, x, y):
            def body(carry, _):
                p, s = carry
                g = jax.grad(loss_fn)(p, x, y)
                u, s = tx.update(g, s, p)
                return (optax.apply_updates(p, u), s), None

            (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
            return params

        _RUNNERS[key] = (tx, jax.jit(run))
    return _RUNNERS[key][1]


_OPTIMIZERS: dict = {}


def optimizer(name, *args, **kwargs):
    key = (name, args, tuple(sorted(kwargs.items())))
    if key not in _OPTIMIZERS:
        if name == "finetune":
            _OPTIMIZERS[key] = finetune_optimizer(GROUPS, LR)
        else:
            _OPTIMIZERS[key] = sparse_optimizer(name, GROUPS, *args, **kwargs)
    return _OPTIMIZERS[key]


def run_method(method, k, seed, split, cfg):
    params = init_params(jax.random.key(seed))
    x, y = jnp.asarray(split.x_train), jnp.asarray(split.y_train)
    steps = cfg["sparse_steps"]
    if method == "hspg":
        half = steps // 2
        params = runner(optimizer("hspg", k, LAM["hspg"], LR), half)(params, x, y)
        tx = optimizer("hspg", k, LAM["hspg"], LR, half=True)
        params = runner(tx, steps - half)(params, x, y)
    else:
        params = runner(optimizer(method, k, LAM[method], LR), steps)(params, x, y)
    before = int(count_nonzero_groups(params, GROUPS))
    params, lam_k = exact_k(method, params, GROUPS, k)
    params = runner(optimizer("finetune"), cfg["finetune_steps"])(params, x, y)
    n = int(count_nonzero_groups(params, GROUPS))
    return {
        "acc": accuracy(params, split.x_test, split.y_test),
        "before": before,
        "after": n,
        "lam_k": lam_k,
    }


def l1_logistic_at_k(split, k):
    """ℓ1 logistic regression with exactly ``k`` non-zero coefficients (bisection on log C)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    # scikit-learn 1.8 deprecated ``penalty`` for ``l1_ratio`` (same liblinear ℓ1 fit)
    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    l1 = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    lo, hi = -4.0, 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        model = LogisticRegression(solver="liblinear", C=10**mid, max_iter=2000, **l1)
        model.fit(split.x_train, split.y_train)
        n = int(np.sum(model.coef_ != 0))
        if n == k:
            return float(model.score(split.x_test, split.y_test)), n
        lo, hi = (mid, hi) if n < k else (lo, mid)
    return float(model.score(split.x_test, split.y_test)), n


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--ks", default="3,5,10")
    parser.add_argument("--sparse-steps", type=int)
    parser.add_argument("--finetune-steps", type=int)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    cfg = dict(PRESETS[args.preset])
    for name in ("seeds", "sparse_steps", "finetune_steps"):
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    ks = [int(v) for v in args.ks.split(",")]
    out = Path(args.out or f"runs/wgsef/breast_cancer/{args.preset}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = {m: {k: [] for k in ks} for m in (*METHODS, "l1_logreg")}
    dense = []
    for seed in range(cfg["seeds"]):
        split = load_breast_cancer_split(test_size=0.3, seed=seed, standardize=True)
        p = runner(optimizer("magnitude", 30, 0.0, LR), cfg["sparse_steps"])(
            init_params(jax.random.key(seed)),
            jnp.asarray(split.x_train),
            jnp.asarray(split.y_train),
        )
        dense.append(accuracy(p, split.x_test, split.y_test))
        for k in ks:
            for m in METHODS:
                results[m][k].append(run_method(m, k, seed, split, cfg))
            acc, n = l1_logistic_at_k(split, k)
            results["l1_logreg"][k].append({"acc": acc, "before": n, "after": n, "lam_k": None})
        print(f"seed {seed}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = []
    for m, per_k in results.items():
        row = {"method": m}
        for k in ks:
            accs = np.array([r["acc"] for r in per_k[k]]) * 100
            row[f"k={k} acc %"] = f"{accs.mean():.1f} ± {accs.std():.1f}"
            before = [r["before"] for r in per_k[k]]
            after = [r["after"] for r in per_k[k]]
            row[f"k={k} before exact-k"] = f"{np.mean(before):.1f}"
            row[f"k={k} final"] = (
                f"{min(after)}–{max(after)}" if min(after) != max(after) else str(after[0])
            )
        rows.append(row)
    d = np.array(dense) * 100
    rows.append(
        {
            "method": "dense MLP (30 features)",
            **{f"k={k} acc %": f"{d.mean():.1f} ± {d.std():.1f}" for k in ks},
        }
    )
    seconds = time.perf_counter() - t0
    text = write_results_table(
        out / "results.md",
        rows,
        title="Breast cancer: test accuracy with exactly k input features (mean ± std over seeds)",
        notes={
            "preset": args.preset,
            "seeds": f"0..{cfg['seeds'] - 1} (split and init)",
            "steps": f"{cfg['sparse_steps']} sparse + {cfg['finetune_steps']} fine-tune, "
            f"full batch, lr {LR}",
            "lambda": json.dumps(LAM),
            "machine": describe_machine(),
            "wall time": f"{seconds:.0f} s",
        },
    )
    (out / "summary.json").write_text(
        json.dumps({"dense": dense, "results": results}, indent=1, default=str)
    )
    print(text)
    print(f"wrote {out / 'results.md'} in {seconds:.0f} s")
    return text


if __name__ == "__main__":
    main()
