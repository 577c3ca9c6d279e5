"""Tune every model of the MQAR recall study with one search budget: the same learning-rate grid,
the same steps, batch and seed for the Titans LMMs and for the baselines.

For each variant of ``variants`` (default: ``lmm_deep``, ``lmm_linear``, ``gated_delta``,
``attention`` and ``attention_conv`` of :mod:`experiments.titans.recall`) and each AdamW rate of
``learning_rates``, the variant is trained exactly as the recall job trains it
(:func:`experiments.titans.recall.run_variant`: the ``cpu`` preset's size, steps and pair
counts) and scored by its held-out accuracy averaged over the pair counts; the best rate per
variant is what :data:`experiments.titans.recall.TUNED_LR` holds. Held-out batches are drawn
from a key the training stream never uses, so the choice is not fitted to the training data
(it is fitted to the evaluation sequences, as any tuning on a validation set is).

Writes ``results.md`` (accuracy per variant and rate, the best rate marked), ``tuning.png`` and
``summary.json`` into the run folder (default ``runs/titans_tune_baselines/cpu/``; one runner
folder per rate and variant, so ``--resume`` skips finished runs).

``nice -n 10 python -m experiments.titans.tune_baselines [--set "learning_rates=(3e-3,1e-2)"]``
"""

from __future__ import annotations

import dataclasses
import time

from experiments.common.outputs import report, run_notes, write_outputs
from experiments.titans import recall
from memjax.train import parse_args, write_results_table

GRID = (1e-3, 3e-3, 1e-2, 3e-2)
"""The learning rates every variant is tried at."""
TUNED = ("lmm_deep", "lmm_linear", "gated_delta", "attention", "attention_conv")


@dataclasses.dataclass(frozen=True)
class Config(recall.Config):
    """:class:`experiments.titans.recall.Config` plus the grid."""

    variants: tuple[str, ...] = TUNED
    learning_rates: tuple[float, ...] = GRID


PRESETS = {name: {**values, "variants": TUNED} for name, values in recall.PRESETS.items()}
PRESETS.pop("full")


def tune(run) -> list[dict]:
    """One row per (variant, rate): mean held-out accuracy over the pair counts, the accuracy at
    the largest count, and the seconds it took."""
    config: Config = run.config
    rows = []
    for variant in config.variants:
        for lr in config.learning_rates:
            sub = dataclasses.replace(run, out_dir=run.out_dir / f"lr{lr:g}")
            results = recall.run_variant(
                dataclasses.replace(config, learning_rate=lr), variant, sub
            )
            accuracies = [r["accuracy"] for r in results]
            rows.append(
                {
                    "variant": variant,
                    "lr": lr,
                    "mean accuracy": sum(accuracies) / len(accuracies),
                    f"accuracy @{config.kv_pairs[-1]}": accuracies[-1],
                    "params": results[0]["params"],
                    "seconds": results[0]["seconds"],
                }
            )
            print(f"tune: {variant} lr {lr:g}: mean accuracy {rows[-1]['mean accuracy']:.3f}")
    return rows


def best_rates(rows: list[dict]) -> dict[str, float]:
    """``{variant: the rate of its highest mean accuracy}`` (ties: the smaller rate)."""
    best: dict[str, dict] = {}
    for r in rows:
        b = best.get(r["variant"])
        if b is None or r["mean accuracy"] > b["mean accuracy"]:
            best[r["variant"]] = r
    return {v: r["lr"] for v, r in best.items()}


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config,
        PRESETS,
        argv,
        experiment="titans_tune_baselines",
        description="Tune the MQAR recall variants on one learning-rate grid (equal budget).",
    )
    config: Config = run.config
    start = time.perf_counter()
    rows = tune(run)
    total = time.perf_counter() - start
    best = best_rates(rows)
    for r in rows:
        r["best"] = "yes" if best[r["variant"]] == r["lr"] else ""
    notes = run_notes(
        run,
        total,
        {
            "grid": f"AdamW lr in {config.learning_rates}, {config.steps} steps, batch "
            f"{config.batch_size}, pairs {config.kv_pairs} in turn, for every variant",
            "best": ", ".join(f"{v} {lr:g}" for v, lr in best.items()),
        },
    )
    text = write_results_table(
        None, rows, title="Equal-budget tuning on MQAR (held-out accuracy)", notes=notes
    )
    series = {
        recall.LABELS.get(v, v): (
            [r["lr"] for r in rows if r["variant"] == v],
            [r["mean accuracy"] for r in rows if r["variant"] == v],
        )
        for v in config.variants
    }
    write_outputs(
        run.out_dir,
        rows,
        text=text,
        plot_name="tuning.png",
        series=series,
        xlabel="AdamW learning rate",
        ylabel="mean held-out accuracy over the pair counts",
        plot_title=f"MQAR tuning, {config.steps} steps per run",
        logx=True,
    )
    report(run.out_dir, text, total)
    return rows


if __name__ == "__main__":
    main()
