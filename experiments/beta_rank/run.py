"""Beta-Rank against L1, HRank and random on imbalanced images: accuracy, minority recall and
measured latency after real surgery, at two FLOPs cuts, over 3 seeds.

    python -m experiments.beta_rank.run                               # cpu preset, IDRiD-like
    python -m experiments.beta_rank.run --set dataset=isic_digits     # ISIC-like proportions
    python -m experiments.beta_rank.run --preset gpu                  # ResNet-56 at 32x32

Per seed: train a dense CIFAR ResNet (option-A shortcuts) on the long-tailed set; score every
block's ``conv1`` filters with each method from a calibration batch of training images without
augmentation (``beta_paper``: Beta-Rank as the paper's formula, 512 images; ``beta_code``: the
released code's arithmetic, one batch of 128; ``hrank``: 512 images; ``l1``, ``random``: no data);
prune every block's mid channels at each ratio (the residual stream is kept whole, so all methods
give the same shapes: FLOPs match exactly), materialise, and fine-tune as a runner phase whose
transition is the surgery (SGD, momentum 0.9, weight decay 5e-4, lr x0.1 at 1/3 and 2/3 of the
phase, unweighted cross-entropy: the paper's ``tuning.py`` schedule, shortened). Then FLOPs (XLA
cost analysis), parameters, and latency of the dense and pruned networks (batch 1 and 64,
interleaved rounds, wall and CPU time, BatchNorm as trained and folded, once per ``conv_impls``
entry — ``"xla"`` and ``"auto"``, :class:`memjax.nn.Conv2D` — with dense and pruned on the same
one), and the stability fraction of the selections over calibration batches. Writes
``results.md``, ``summary.json`` and ``minority_recall.png`` into the run folder.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.beta_rank.common import (
    METHODS,
    classification_metrics,
    coupled_groups,
    load_dataset,
    loss_fn_for,
    make_net,
    predict,
    prune,
    scores_for,
    stability_fraction,
)
from experiments.common.config import accelerator_presets
from experiments.common.outputs import report, run_notes, write_outputs
from memjax.pruning import count_params, measure_latencies, xla_flops
from memjax.train import Phase, TrainConfig, parse_args, train

DATASETS = ("idrid_digits", "isic_digits", "fashion_lt", "lesions", "medmnist")


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    """``steps``: baseline training steps; ``ratios``: mid pruning ratios (one per FLOPs level)."""

    dataset: str = "idrid_digits"
    npz_path: str = ""
    image_size: int = 16
    data_seed: int = 0
    blocks_per_stage: int = 3
    widths: tuple = (16, 32, 64)
    batch_size: int = 64
    lr: float = 0.05
    finetune_steps: int = 60
    finetune_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    methods: tuple = tuple(METHODS)
    ratios: tuple = (0.36, 0.6)
    seeds: tuple = (0, 1, 2)
    calib_paper: int = 512
    calib_code: int = 128
    latency_repeats: int = 20
    latency_sizes: tuple = (16, 32)
    conv_impls: tuple = ("xla", "auto")
    sf_runs: int = 5
    sf_batch: int = 64


PRESETS = accelerator_presets(
    {"steps": 240, "log_every": 40, "checkpoint_every": 240},
    {
        "steps": 6000,
        "finetune_steps": 3000,
        "log_every": 100,
        "checkpoint_every": 1000,
        "blocks_per_stage": 9,
        "image_size": 32,
        "batch_size": 128,
        "latency_sizes": (32,),
        "latency_repeats": 50,
    },
)


def sgd(lr: float, steps: int, config, milestones=(0.5, 0.75)):
    schedule = optax.piecewise_constant_schedule(
        lr, {max(1, int(steps * m)): 0.1 for m in milestones}
    )
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay),
        optax.sgd(schedule, momentum=config.momentum),
    )


def batches(split, config, seed):
    def get_batch(step):
        rng = np.random.default_rng([seed, step])
        idx = rng.integers(0, len(split.y_train), config.batch_size)
        return {"x": split.x_train[idx], "y": split.y_train[idx]}

    return get_batch


def mean_std(values):
    v = np.asarray(values, np.float64)
    return f"{v.mean():.2f} ± {v.std():.2f}" if len(v) > 1 else f"{v.mean():.2f}"


def latency_table(net, params, state, pruned_models, config, in_channels):
    """FLOPs, params and interleaved latency (wall and CPU time) of the dense and each pruned
    network, with BatchNorm as trained and folded into the convs (``ResNet.folded``), once per
    conv implementation in ``config.conv_impls`` (each against the dense network with the same
    BN form and implementation; FLOPs counted with ``"xla"``, which does not pad)."""
    rows = []
    models = {}
    for name, (spec, p, s) in {"dense": (net, params, state), **pruned_models}.items():
        models[(name, "as trained")] = (spec, p, s)
        models[(name, "folded")] = spec.folded(p, s)
    for size in config.latency_sizes:
        one = jax.ShapeDtypeStruct((1, size, size, in_channels), jnp.float32)
        flops = {}
        for key, (spec, p, s) in models.items():
            fn = lambda p, x, spec=spec, s=s: spec.apply(p, s, x, train=False)[0]
            flops[key] = xla_flops(fn, p, one)
        lat = {}
        for b in (1, 64):
            x = jax.random.normal(jax.random.key(0), (b, size, size, in_channels))
            calls = {}
            for impl in config.conv_impls:
                for key, (spec, p, s) in models.items():
                    spec = dataclasses.replace(spec, conv_impl=impl)
                    fn = lambda p, x, spec=spec, s=s: spec.apply(p, s, x, train=False)[0]
                    calls[(impl, key)] = (fn, (p, x))
            lat[b] = measure_latencies(calls, repeats=config.latency_repeats)
        for impl in config.conv_impls:
            for key, (_, p, _) in models.items():
                name, bn = key
                big = lat[64][(impl, key)]
                row = {
                    "input": f"{size}x{size}",
                    "BN": bn,
                    "conv impl": impl,
                    "network": name,
                    "MFLOPs (XLA)": flops[key] / 1e6,
                    "params": count_params(p),
                    "ms b=1": lat[1][(impl, key)].median_s * 1e3,
                    "ms b=64": big.median_s * 1e3,
                    "CPU ms b=64": big.cpu_s * 1e3,
                }
                if name != "dense":
                    ref = ("dense", bn)
                    dense, dense_p = lat[64][(impl, ref)], models[ref][1]
                    f_cut = 1 - flops[key] / flops[ref]
                    l_cut = 1 - big.median_s / dense.median_s
                    c_cut = 1 - big.cpu_s / dense.cpu_s
                    row.update(
                        {
                            "FLOPs cut %": 100 * f_cut,
                            "params cut %": 100 * (1 - count_params(p) / count_params(dense_p)),
                            "latency cut % b=1": 100
                            * (1 - lat[1][(impl, key)].median_s / lat[1][(impl, ref)].median_s),
                            "latency cut % b=64": 100 * l_cut,
                            "CPU-time cut % b=64": 100 * c_cut,
                            "latency/FLOPs cut b=64": l_cut / f_cut,
                            "CPU-time/FLOPs cut b=64": c_cut / f_cut,
                            "target ≥ 0.8 (CPU time)": "met" if c_cut >= 0.8 * f_cut else "missed",
                        }
                    )
                rows.append(row)
    return rows


def main(argv=None):
    run = parse_args(
        Config,
        PRESETS,
        argv,
        experiment="beta_rank",
        description=__doc__,
        choices={"dataset": DATASETS, "methods": tuple(METHODS)},
    )
    config = run.config
    t0 = time.perf_counter()
    split, names = load_dataset(config)
    num_classes = len(names)
    counts = np.bincount(split.y_train, minlength=num_classes)
    minority = int(np.argmin(counts))
    net = make_net(config, num_classes, split.x_train.shape[-1])
    loss_fn = loss_fn_for(net)
    kwargs = run.train_kwargs()
    records, first = [], {}
    for seed in config.seeds:
        cfg = dataclasses.replace(config, seed=seed)
        base = train(
            cfg,
            init_params=jax.jit(net.init_params),
            init_model_state=lambda key: net.init_state(),
            get_batch=batches(split, config, seed),
            loss_fn=loss_fn,
            optimizer=sgd(config.lr, config.steps, config),
            phases=[Phase("dense", config.steps)],
            **{**kwargs, "out_dir": run.out_dir / f"seed{seed}" / "baseline"},
        )
        params, state = base.params, base.model_state
        groups = coupled_groups(net, params, state)
        probs = predict(net, params, state, split.x_test)
        records.append(
            {
                "seed": seed,
                "method": "baseline",
                "ratio": 0.0,
                **classification_metrics(split.y_test, probs, minority=minority),
            }
        )
        rng = np.random.default_rng([seed, 99])
        calib = split.x_train[rng.permutation(len(split.y_train))]
        layer_scores = {}
        for method in config.methods:
            _, mode = METHODS[method]
            batch = (
                calib[: config.calib_code] if mode == "code_compat" else calib[: config.calib_paper]
            )
            layer_scores[method] = scores_for(
                method,
                net,
                params,
                state,
                batch,
                key=jax.random.key(seed),
                min_batch=min(len(batch), config.calib_paper),
            )
        for method in config.methods:
            for ratio in config.ratios:

                def surgery(ts, method=method, ratio=ratio, scores=layer_scores, groups=groups):
                    _, p, s = prune(
                        net, ts.params, ts.model_state, scores[method], ratio, groups=groups
                    )
                    return ts._replace(params=p, model_state=s)

                small, p0, s0 = prune(
                    net, params, state, layer_scores[method], ratio, groups=groups
                )
                before = classification_metrics(
                    split.y_test, predict(small, p0, s0, split.x_test), minority=minority
                )
                ft_opt = sgd(config.finetune_lr, config.finetune_steps, config, (1 / 3, 2 / 3))
                result = train(
                    dataclasses.replace(
                        cfg, steps=config.finetune_steps, checkpoint_every=config.finetune_steps
                    ),
                    init_params=lambda key, p=params: p,
                    init_model_state=lambda key, s=state: s,
                    get_batch=batches(split, config, 1000 + seed),
                    loss_fn=loss_fn,
                    optimizer=ft_opt,
                    phases=[Phase("finetune", config.finetune_steps, transition=surgery)],
                    **{**kwargs, "out_dir": run.out_dir / f"seed{seed}" / f"{method}_{ratio}"},
                )
                probs = predict(small, result.params, result.model_state, split.x_test)
                records.append(
                    {
                        "seed": seed,
                        "method": method,
                        "ratio": ratio,
                        "top1_before_ft": before["top1"],
                        **classification_metrics(split.y_test, probs, minority=minority),
                    }
                )
                if seed == config.seeds[0] and method == config.methods[0]:
                    first[ratio] = (small, result.params, result.model_state)
                print(
                    f"seed {seed} {method} r={ratio}: top1 {records[-1]['top1']:.2f} "
                    f"minority recall {records[-1]['minority_recall']:.2f}",
                    flush=True,
                )
        if seed == config.seeds[0]:
            dense0 = (params, state)
            sf_rows = stability(net, params, state, split, config)
    cost_rows = latency_table(
        net,
        *dense0,
        {f"mids pruned {r}": m for r, m in first.items()},
        config,
        split.x_train.shape[-1],
    )
    text, summary = render(records, cost_rows, sf_rows, config, counts, names, minority)
    notes = run_notes(
        run,
        time.perf_counter() - t0,
        {
            "dataset": f"{config.dataset} at {config.image_size}x{config.image_size}, train counts "
            f"{counts.tolist()}, test {len(split.y_test)} images, minority = {names[minority]}",
            "model": f"ResNet-{6 * config.blocks_per_stage + 2} widths {tuple(config.widths)}",
            "schedule": f"baseline {config.steps} steps lr {config.lr}; fine-tune "
            f"{config.finetune_steps} steps lr {config.finetune_lr}; batch {config.batch_size}",
            "load": "2-core CPU shared with other engineers' jobs "
            "(latency ratios from interleaved rounds)",
        },
    )
    text += "\n" + "\n".join(f"- **{k}**: {v}" for k, v in notes.items()) + "\n"
    series = {}
    cut = {
        r["network"]: r["FLOPs cut %"]
        for r in cost_rows
        if "FLOPs cut %" in r and r["BN"] == "as trained"
    }
    for method in config.methods:
        xs, ys = [], []
        for ratio in config.ratios:
            vals = [
                r["minority_recall"]
                for r in records
                if r["method"] == method and r["ratio"] == ratio
            ]
            xs.append(cut[f"mids pruned {ratio}"])
            ys.append(float(np.mean(vals)))
        series[method] = (xs, ys)
    base = [r["minority_recall"] for r in records if r["method"] == "baseline"]
    series["dense baseline"] = (
        [0.0, max(x for x, _ in series.values() for x in x)],
        [float(np.mean(base))] * 2,
    )
    write_outputs(
        run.out_dir,
        records,
        text=text,
        summary=summary,
        plot_name="minority_recall.png",
        series=series,
        xlabel="FLOPs removed % (XLA)",
        ylabel="minority-class recall % (mean of seeds)",
        plot_title=f"{config.dataset}: minority recall after pruning + fine-tuning",
    )
    report(run.out_dir, text, time.perf_counter() - t0)
    return summary


def stability(net, params, state, split, config):
    """Stability fraction of each data-dependent score over ``sf_runs`` calibration batches."""
    rows = []
    for method in ("beta_paper", "beta_code", "hrank", "l1"):
        runs = []
        for r in range(config.sf_runs):
            rng = np.random.default_rng([7, r])
            batch = split.x_train[rng.choice(len(split.y_train), config.sf_batch, replace=False)]
            runs.append(
                scores_for(
                    method,
                    net,
                    params,
                    state,
                    batch,
                    key=jax.random.key(r),
                    min_batch=config.sf_batch,
                )
            )
        per_layer = [stability_fraction([run[name] for run in runs]) for name in runs[0]]
        rows.append(
            {
                "method": method,
                "SF (mean over mids)": float(np.mean(per_layer)),
                "SF min": float(np.min(per_layer)),
                "SF max": float(np.max(per_layer)),
            }
        )
    return rows


def render(records, cost_rows, sf_rows, config, counts, names, minority):
    from memjax.train import write_results_table

    cut = {r["network"]: r for r in cost_rows if "FLOPs cut %" in r and r["BN"] == "as trained"}
    rows = []
    for ratio in (0.0, *config.ratios):
        for method in ("baseline",) if ratio == 0.0 else config.methods:
            rs = [r for r in records if r["method"] == method and r["ratio"] == ratio]
            c = cut.get(f"mids pruned {ratio}", {})
            row = {
                "method": method,
                "mid ratio": f"{ratio:g}",
                "FLOPs cut %": c.get("FLOPs cut %", 0.0),
                "params cut %": c.get("params cut %", 0.0),
                "top-1": mean_std([r["top1"] for r in rs]),
            }
            if ratio:
                row["top-1 before FT"] = mean_std([r["top1_before_ft"] for r in rs])
            row.update(
                {
                    "macro-F1": mean_std([r["macro_f1"] for r in rs]),
                    "balanced acc": mean_std([r["balanced_acc"] for r in rs]),
                    f"minority recall ({names[minority]})": mean_std(
                        [r["minority_recall"] for r in rs]
                    ),
                    "AUC": mean_std([r["auc"] for r in rs]),
                    "top-2": mean_std([r["top2"] for r in rs]),
                }
            )
            for k, name in enumerate(names):
                row[f"recall {name}"] = f"{np.mean([r['recall'][k] for r in rs]):.1f}"
            rows.append(row)
    seeds = len(config.seeds)
    text = write_results_table(
        None,
        rows,
        title=f"Beta-Rank vs baselines, {config.dataset} "
        f"(mean ± std over {seeds} seeds, whole test set)",
        float_format=".1f",
    )
    text += "\n" + write_results_table(
        None, cost_rows, title="Cost before and after surgery", float_format=".3g"
    )
    text += "\n" + write_results_table(
        None,
        sf_rows,
        title=f"Stability fraction over "
        f"{config.sf_runs} calibration batches of {config.sf_batch}"
        " (top and bottom 25 %; minimum 0.5, lower = more stable)",
        float_format=".3f",
    )
    summary = {
        "records": records,
        "table": rows,
        "cost": cost_rows,
        "stability": sf_rows,
        "train_counts": counts.tolist(),
        "classes": list(names),
    }
    return text, summary


if __name__ == "__main__":
    main()
