"""Sinusoid regression episodes, MANN-style: 5- and 10-shot MSE, LSTM / MANN by BPTT and by SG.

Each episode is one sinusoid ``y = A sin(x − φ)``, ``A ~ U[0.1, 5]``, ``φ ~ U[0, π]``,
``x ~ U[−5, 5]`` (MAML's family, Finn et al. 2017 §5.1 [L]) of ``seq_len`` points; the first
``K`` are support points whose label arrives one step late (input ``(x_t, s_{t−1} y_{t−1},
s_{t−1})``, :func:`memjax.data.sinusoid_episodes`), the rest are queries whose labels are never
shown. A cell with a Dense read-out predicts ``y_t`` at every step; the training loss is the
squared error summed over all steps of episodes with ``K = 5`` and ``K = 10`` (half a batch
each), the metric the MSE over the query steps of held-out episodes at each ``K``. Predicting 0
scores ``E[A²]/2 ≈ 4.25`` (the dotted line of the plot).

Methods [I, a reconstruction of Fast & Slow Learning]: ``bptt`` — the gradient of the episode
loss; ``tbptt`` (LSTM only) — truncated BPTT at windows of ``window`` steps; ``sg`` — for MANN
the write interface gets a synthetic gradient conditioned on the target ``y_t`` (cDNI) mixed
with backprop at ``λ = mix_lambda``; for the LSTM, which has no write tap, the carry SG at every
window boundary (DNI, ``λ = 0``). Where the paper's setup is unknown the choices are ours.

One command: ``python -m experiments.synthetic_gradients.sinusoid [--preset cpu|gpu|tpu]``
writes ``results.md``, ``sinusoid.png`` and ``summary.json`` into the run folder.
"""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np

from experiments.common.config import accelerator_presets
from experiments.synthetic_gradients.common import (
    build_cell,
    make_sg,
    median,
    predictor,
    train_sg,
    write_outputs,
)
from memjax.data import sinusoid_episodes
from memjax.train import TrainConfig, describe_machine, parse_args

METHODS = ("bptt", "tbptt", "sg")
# References for the same function family in the K-shot protocol of MAML (support set, then an
# MLP 40-40 adapted by gradient steps) — a different presentation, listed for scale only.
REFERENCES = {"MAML (10-shot)": 0.6702, "Meta-SGD (10-shot)": 0.3145}  # [C: 63days/Meta-SGD]


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    cells: tuple[str, ...] = ("lstm", "mann")
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1)
    seq_len: int = 20
    shots: tuple[int, ...] = (5, 10)
    hidden: int = 64
    memory_slots: int = 32
    memory_width: int = 16
    heads: int = 1
    batch_size: int = 32
    learning_rate: float = 3e-3
    sg_learning_rate: float = 1e-3
    mix_lambda: float = 0.5
    window: int = 5
    eval_size: int = 512


PRESETS = accelerator_presets(
    {"steps": 800, "log_every": 100},
    {
        "steps": 50000,
        "log_every": 1000,
        "hidden": 200,
        "memory_slots": 128,
        "memory_width": 40,
        "heads": 4,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "seeds": (0, 1, 2, 3, 4),
        "eval_size": 4096,
    },
)


def loss_fn(ys, targets):
    return jnp.sum((ys[:, 0] - targets) ** 2)


def train_batch(config: Config, rng: np.random.Generator) -> dict:
    """Half the batch with each of ``config.shots`` (cycled), context = the target ``y_t``."""
    per = -(-config.batch_size // len(config.shots))
    parts = [sinusoid_episodes(per, config.seq_len, k, rng) for k in config.shots]
    xs = np.concatenate([p.inputs for p in parts])[: config.batch_size]
    ys = np.concatenate([p.targets for p in parts])[: config.batch_size]
    return {"xs": xs, "aux": ys, "context": ys[..., None]}


def run_one(config: Config, name: str, method: str, seed: int, evals: dict) -> dict:
    cell = build_cell(
        name,
        3,
        1,
        hidden=config.hidden,
        memory=(config.memory_slots, config.memory_width),
        heads=config.heads,
    )
    window = config.window if method != "bptt" else None
    sg = make_sg(
        cell,
        method=method,
        window=window,
        length=config.seq_len,
        d_context=1,
        mix_lambda=config.mix_lambda,
    )
    predict = predictor(cell)

    def eval_fn(theta):
        out = {}
        for k, b in evals.items():
            ys = np.asarray(predict(theta, jnp.asarray(b.inputs)))[..., 0]
            out[f"mse@{k}"] = float(np.mean(((ys - b.targets) ** 2)[b.query]))
        return out

    rng = np.random.default_rng(1000 + seed)
    _, _, history, seconds = train_sg(
        sg,
        loss_fn,
        lambda step: train_batch(config, rng),
        steps=config.steps,
        seed=seed,
        lr=config.learning_rate,
        lr_sg=config.sg_learning_rate,
        method="sg" if method == "sg" else "bptt",
        log_every=config.log_every,
        eval_fn=eval_fn,
    )
    cos = [v for k, v in history[-1].items() if k.startswith(("cosine_true/", "cosine/carry"))]
    return {"history": history, "seconds": seconds, "cosine": cos[0] if cos else None}


def label(name: str, method: str, window: int) -> str:
    if method == "bptt":
        return f"{name.upper()} BPTT"
    return (
        f"{name.upper()} T={window} {'BPTT' if method == 'tbptt' else 'SG'}"
        if (name == "lstm")
        else f"{name.upper()} SG"
    )


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config,
        PRESETS,
        argv,
        experiment="synthetic_gradients_sinusoid",
        description=__doc__.splitlines()[0],
    )
    config: Config = run.config
    unknown = sorted(set(config.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"methods: {unknown} are not in {METHODS}")
    start = time.perf_counter()
    evals = {k: sinusoid_episodes(config.eval_size, config.seq_len, k, 777) for k in config.shots}
    zero = {k: float(np.mean((b.targets**2)[b.query])) for k, b in evals.items()}
    rows, series = [], {}
    for name in config.cells:
        for method in config.methods:
            if method == "tbptt" and name != "lstm":
                continue  # memory cells: the SG replaces part of backprop, no window needed
            results = [run_one(config, name, method, s, evals) for s in config.seeds]
            row = {"model": label(name, method, config.window)}
            for k in config.shots:
                vals = [r["history"][-1][f"mse@{k}"] for r in results]
                row[f"{k}-shot MSE"] = median(vals)
                row[f"{k}-shot per seed"] = " / ".join(f"{v:.3f}" for v in vals)
            row["cos(ĝ, δ)"] = median([r["cosine"] for r in results]) if method == "sg" else ""
            row["s per run"] = median([r["seconds"] for r in results])
            rows.append(row)
            k = max(config.shots)
            steps = [h["step"] for h in results[0]["history"]]
            curve = np.median([[h[f"mse@{k}"] for h in r["history"]] for r in results], 0)
            series[row["model"]] = (steps, curve.tolist())
            print(row, flush=True)
    rows.append({"model": "predict 0", **{f"{k}-shot MSE": v for k, v in zero.items()}})
    for ref, v in REFERENCES.items():
        rows.append({"model": ref + " (K-shot MLP protocol, paper)", "10-shot MSE": v})
    notes = {
        "preset": run.preset,
        "machine": describe_machine() + " (shared with other engineers' jobs)",
        "model": f"controller {config.hidden}, memory {config.memory_slots}x"
        f"{config.memory_width}, {config.heads} head(s), Dense read-out to 1",
        "task": f"{config.seq_len} points per episode, K in {list(config.shots)} support points "
        f"(label one step late), the rest queries; {config.eval_size} held-out episodes per K",
        "training": f"{config.steps} steps of batch {config.batch_size}, Adam "
        f"{config.learning_rate}, seeds {list(config.seeds)}; SG Adam {config.sg_learning_rate}, "
        f"MANN write SG λ = {config.mix_lambda} with context y_t; LSTM carry SG λ = 0 at "
        f"windows of {config.window}",
        "cos": "MANN: write SG vs the true δ (cosine_true/write); LSTM: carry SG vs its "
        "bootstrapped target (cosine/carry); last logged step, median over seeds",
        "references": "MAML / Meta-SGD adapt an MLP on a K-point support set and are scored "
        "on new points of the same function (another protocol; [C] 63days/Meta-SGD README)",
        "wall time": f"{time.perf_counter() - start:.0f} s",
    }
    k = max(config.shots)
    write_outputs(
        run,
        "sinusoid",
        rows,
        title="Sinusoid episodes: query MSE (median over seeds)",
        notes=notes,
        plot={
            "series": series,
            "xlabel": "training step",
            "ylabel": f"{k}-shot query MSE (median over seeds)",
            "title": "Sinusoid regression, MANN-style: BPTT vs SG",
            "logy": True,
            "chance": zero[k],
            "chance_label": "predict 0",
        },
    )
    return rows


if __name__ == "__main__":
    main()
