"""Shared feedback path transfer: a φ pre-trained by two LSTMs on sinusoids, reused by new networks.

Fast & Slow Learning: "the feedback path can be shared among multiple neural memory networks as
a mechanism for knowledge sharing" [C: abstract]; how the paper tests it is unknown, so this
protocol is ours [I]. The feedback path is DNI's carry synthetic gradient of an LSTM with
``hidden`` units at truncation windows of ``window`` steps (``λ = 0``; no label context, so
the same φ fits any task with the same LSTM width).

1. **Pre-train**: ``K = 2`` LSTMs (their own θ, seeds 100 and 101) learn sinusoid episodes
   (:mod:`experiments.synthetic_gradients.sinusoid`'s task, 10-shot) for ``pre_steps`` updates,
   sharing one φ through :func:`memjax.controllers.shared_feedback_gradients` (φ's gradient is the
   sum of both networks').
2. **Reuse**: fresh LSTMs (seeds ``seeds``) learn (a) the same family (sinusoid) and (b) another
   family, the copy task (:mod:`experiments.synthetic_gradients.copy_task`'s 4-bit, length
   U[1, 6] sequences), with the φ **transferred** (it keeps learning), a φ **from scratch**
   (zero-initialised, DNI's default) and, for reference, **truncated BPTT** at the same windows
   (no SG).

Learning speed: the metric (10-shot query MSE; copy bit errors per sequence) at fixed update
counts and the updates to reach ``threshold_sinusoid`` / ``threshold_copy``, medians over seeds.

One command: ``python -m experiments.synthetic_gradients.transfer [--preset cpu|gpu|tpu]``
writes ``results.md``, ``transfer.png`` (sinusoid), ``transfer_copy.png`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common.config import accelerator_presets
from experiments.synthetic_gradients import copy_task
from experiments.synthetic_gradients.common import (
    build_cell,
    make_sg,
    median,
    plot_series,
    predictor,
    train_sg,
    updates_to,
    write_outputs,
)
from memjax.controllers import shared_feedback_gradients
from memjax.data import sinusoid_episodes
from memjax.train import TrainConfig, describe_machine, parse_args

CONDITIONS = ("transferred φ", "φ from scratch", "truncated BPTT")


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    conditions: tuple[str, ...] = CONDITIONS
    families: tuple[str, ...] = ("sinusoid", "copy")
    seeds: tuple[int, ...] = (0, 1)
    pre_steps: int = 600
    hidden: int = 64
    window: int = 5
    batch_size: int = 32
    learning_rate: float = 3e-3
    sg_learning_rate: float = 1e-3
    seq_len: int = 20
    k_shot: int = 10
    bits: int = 4
    max_len: int = 6
    threshold_sinusoid: float = 1.5
    threshold_copy: float = 4.0
    eval_size: int = 256


PRESETS = accelerator_presets(
    {"steps": 400, "log_every": 50},
    {
        "steps": 20000,
        "pre_steps": 20000,
        "log_every": 500,
        "hidden": 200,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "bits": 8,
        "max_len": 20,
        "seeds": (0, 1, 2, 3, 4),
        "eval_size": 2048,
    },
)


def sinusoid_loss(ys, targets):
    return jnp.sum((ys[:, 0] - targets) ** 2)


class Task:
    """One task family: its cell, batches, loss and metric (lower is better)."""

    def __init__(self, config: Config, family: str):
        self.family = family
        if family == "sinusoid":
            self.cell = build_cell("lstm", 3, 1, hidden=config.hidden, memory=(1, 1))
            self.length = config.seq_len
            self.loss = sinusoid_loss
            ev = sinusoid_episodes(config.eval_size, config.seq_len, config.k_shot, 777)
            predict = predictor(self.cell)

            def metric(theta):
                ys = np.asarray(predict(theta, jnp.asarray(ev.inputs)))[..., 0]
                return float(np.mean(((ys - ev.targets) ** 2)[ev.query]))

            def batch(rng):
                b = sinusoid_episodes(config.batch_size, config.seq_len, config.k_shot, rng)
                return {"xs": b.inputs, "aux": b.targets}

            self.chance = float(np.mean((ev.targets**2)[ev.query]))
            self.threshold = config.threshold_sinusoid
            self.metric_name = f"{config.k_shot}-shot MSE"
        elif family == "copy":
            self.cell = build_cell(
                "lstm", config.bits + 1, config.bits, hidden=config.hidden, memory=(1, 1)
            )
            self.length = 2 * config.max_len + 2
            self.loss = copy_task.loss_fn
            ev = copy_task.copy_batch(
                np.random.default_rng(99), config.eval_size, config.bits, config.max_len
            )
            errors = copy_task.bit_errors_fn(self.cell, tuple(jnp.asarray(a) for a in ev))

            def metric(theta):
                return float(errors(theta))

            def batch(rng):
                xs, ys, mask = copy_task.copy_batch(
                    rng, config.batch_size, config.bits, config.max_len
                )
                return {"xs": xs, "aux": (ys, mask)}

            self.threshold = config.threshold_copy
            self.metric_name = "bit errors / seq"
        else:
            raise ValueError(f"family: expected 'sinusoid' or 'copy', got {family!r}")
        self.metric, self.batch = metric, batch
        self.sg = make_sg(self.cell, method="sg", window=config.window, length=self.length)


def pretrain(config: Config, task: Task) -> tuple[dict, list[dict]]:
    """K = 2 LSTMs sharing one φ (:func:`shared_feedback_gradients`); returns ``(φ, log)``."""
    sg = task.sg
    thetas = [sg.cell.init_params(jax.random.key(100 + k)) for k in range(2)]
    phi = sg.init_params(jax.random.key(7), thetas[0])
    opt = optax.chain(optax.clip_by_global_norm(50.0), optax.adam(config.learning_rate))
    opt_sg = optax.adam(config.sg_learning_rate)
    states, s_phi = [opt.init(t) for t in thetas], opt_sg.init(phi)
    update = jax.jit(lambda g, s, p: opt.update(g, s, p))
    update_sg = jax.jit(lambda g, s, p: opt_sg.update(g, s, p))
    rngs = [np.random.default_rng(500 + k) for k in range(2)]
    log = []
    for i in range(config.pre_steps):
        members = []
        for theta, rng in zip(thetas, rngs, strict=True):
            b = jax.tree_util.tree_map(jnp.asarray, task.batch(rng))
            members.append((sg, task.loss, theta, b["xs"], b["aux"]))
        outs, g_phi = shared_feedback_gradients(members, phi, step=i)
        for k, out in enumerate(outs):
            u, states[k] = update(out.theta_grads, states[k], thetas[k])
            thetas[k] = optax.apply_updates(thetas[k], u)
        v, s_phi = update_sg(g_phi, s_phi, phi)
        phi = optax.apply_updates(phi, v)
        if (i + 1) % config.log_every == 0 or i + 1 == config.pre_steps:
            log.append(
                {
                    "step": i + 1,
                    "metric": [task.metric(t) for t in thetas],
                    "cosine": [float(o.metrics["cosine/carry"]) for o in outs],
                }
            )
    return phi, log


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config,
        PRESETS,
        argv,
        experiment="synthetic_gradients_transfer",
        description=__doc__.splitlines()[0],
    )
    config: Config = run.config
    unknown = sorted(set(config.conditions) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"conditions: {unknown} are not in {CONDITIONS}")
    start = time.perf_counter()
    source = Task(config, "sinusoid")
    phi, pre_log = pretrain(config, source)
    print("pre-training:", pre_log[-1], flush=True)
    checkpoints = sorted({config.steps // 4, config.steps // 2, config.steps})
    rows, series = [], {}
    for family in config.families:
        task = source if family == "sinusoid" else Task(config, family)
        for condition in config.conditions:
            results = []
            for seed in config.seeds:
                rng = np.random.default_rng(1000 + seed)
                _, _, history, seconds = train_sg(
                    task.sg,
                    task.loss,
                    lambda step, task=task, rng=rng: task.batch(rng),
                    steps=config.steps,
                    seed=seed,
                    lr=config.learning_rate,
                    lr_sg=config.sg_learning_rate,
                    method="bptt" if condition == "truncated BPTT" else "sg",
                    log_every=config.log_every,
                    eval_fn=lambda th, task=task: {"metric": task.metric(th)},
                    phi=phi if condition == "transferred φ" else None,
                )
                results.append((history, seconds))
            row = {"target task": f"{family} ({task.metric_name})", "condition": condition}
            for c in checkpoints:
                vals = [next(h["metric"] for h in hist if h["step"] >= c) for hist, _ in results]
                row[f"@{c}"] = median(vals)
            reached = [updates_to(h, "metric", task.threshold, above=False) for h, _ in results]
            row["updates to threshold"] = f"≤ {task.threshold}: " + " / ".join(
                "—" if r is None else str(r) for r in reached
            )
            if condition != "truncated BPTT":
                row["cos(ĝ, δ̃)"] = median([h[-1]["cosine/carry"] for h, _ in results])
            else:
                row["cos(ĝ, δ̃)"] = ""
            row["s per run"] = median([s for _, s in results])
            rows.append(row)
            steps = [h["step"] for h in results[0][0]]
            curve = np.median([[h["metric"] for h in hist] for hist, _ in results], 0)
            series.setdefault(family, {})[condition] = (steps, curve.tolist())
            print(row, flush=True)
    notes = {
        "preset": run.preset,
        "machine": describe_machine() + " (shared with other engineers' jobs)",
        "feedback path": f"carry SG of an LSTM {config.hidden} at windows of {config.window}, "
        "λ = 0, MLP 2x64, scale 0.1, no context",
        "pre-training": f"2 LSTMs sharing φ, {config.pre_steps} updates on {config.k_shot}-shot "
        f"sinusoid episodes; at the end: metric {pre_log[-1]['metric']}, cos(ĝ, δ̃) "
        f"{pre_log[-1]['cosine']}",
        "reuse": f"{config.steps} updates, batch {config.batch_size}, Adam "
        f"{config.learning_rate} (SG Adam {config.sg_learning_rate}), seeds "
        f"{list(config.seeds)}; copy: {config.bits} bits, length U[1, {config.max_len}]",
        "wall time": f"{time.perf_counter() - start:.0f} s",
    }
    write_outputs(
        run,
        "transfer",
        rows,
        title="Shared feedback path transfer: metric at fixed updates (median over seeds)",
        notes=notes,
        plot={
            "series": series.get("sinusoid", {}),
            "xlabel": "updates on the target task",
            "ylabel": f"{config.k_shot}-shot query MSE (median)",
            "title": "Sinusoid, new LSTM: transferred φ vs scratch vs truncated BPTT",
            "logy": True,
            "chance": source.chance,
            "chance_label": "predict 0",
        },
    )
    if "copy" not in series:
        return rows
    plot_series(
        run.out_dir / "transfer_copy.png",
        series["copy"],
        xlabel="updates on the target task",
        ylabel="bit errors per sequence (median)",
        title="Copy, new LSTM: φ transferred from sinusoids vs scratch vs truncated BPTT",
        chance=config.bits * (config.max_len + 1) / 4,
        chance_label="chance (random bits)",
    )
    return rows


if __name__ == "__main__":
    main()
