"""Rare and new classes in label-delayed Omniglot episodes: accuracy and updates, BPTT vs SG.

Fast & Slow Learning claims its fast controllers adapt quickly "to rare or new information"
[C: abstract]; how the paper measures it is unknown, so this episode design is ours [I]. An
episode draws ``n_classes`` new Omniglot characters (held-out characters at evaluation), gives
them shuffled labels, and shows ``(x_t, one_hot(y_{t-1}))`` for ``seq_len`` steps
(:func:`~experiments.synthetic_gradients.episodes.episode_batch`): ``rare`` of the classes occur
exactly ``rare_count`` times at random steps, the others fill the rest. With ``drawings=1`` a
class is one drawing repeated (pure one-shot binding); the plateau of Santoro-style episodes is
then short enough for the cpu budget (measured: with all drawings, 5 classes, no model left
chance in 200 updates).

Metrics on 256 held-out episodes: accuracy on the **2nd instance of a rare class** (it was seen
exactly once, the one-shot case; chance ``1/n_classes``), on common classes from their 2nd
instance on, and the **updates to reach** ``threshold`` rare-2nd-instance accuracy (evaluated
every ``log_every`` updates; ``—`` = not reached).

Methods: ``bptt`` — the episode gradient; ``tbptt`` (LSTM) — truncated BPTT at windows of
``window``; ``sg`` — LSTM: the carry SG at each window boundary (DNI, ``λ = 0``); memory cells:
the write SG with the label context, mixed at ``λ = mix_lambda`` (the fast path of
:class:`memjax.controllers.SyntheticGradients`, ``mode="dni"``); ``inner`` (memory cells) —
``mode="inner_loop"``: within-episode fast weights, one SG step per window, θ₀ and φ
meta-learned through them; evaluated **with the fast steps** at test time
(:func:`memjax.controllers.inner_loop_predict`: every held-out episode starts from θ₀, and
after each window one SG step from the label context of that window's steps, whose labels
the input has already revealed when the next window starts), and at θ₀ without them (the
``θ₀ only`` column).

One command: ``python -m experiments.synthetic_gradients.rare_classes [--preset cpu|gpu|tpu]``
writes ``results.md``, ``rare_classes.png``, ``summary.json`` and ``curves.json`` (the plotted
curves).
"""

from __future__ import annotations

import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.common.config import accelerator_presets
from experiments.synthetic_gradients.common import (
    build_cell,
    make_sg,
    median,
    predictor,
    train_sg,
    updates_to,
    write_outputs,
)
from experiments.synthetic_gradients.episodes import episode_batch, instance_index
from memjax.controllers import inner_loop_predict
from memjax.data import load_omniglot
from memjax.train import TrainConfig, describe_machine, parse_args

METHODS = ("bptt", "tbptt", "sg", "inner")


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    cells: tuple[str, ...] = ("lstm",)
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1)
    n_classes: int = 3
    seq_len: int = 20
    rare: int = 1
    rare_count: int = 2
    drawings: int | None = 1
    image_size: int = 12
    hidden: int = 64
    memory_slots: int = 32
    memory_width: int = 16
    heads: int = 1
    batch_size: int = 32
    learning_rate: float = 3e-3
    sg_learning_rate: float = 1e-3
    mix_lambda: float = 0.5
    window: int = 5
    threshold: float = 0.6
    eval_episodes: int = 256


PRESETS = accelerator_presets(
    {"steps": 2000, "log_every": 200},
    {
        "steps": 100000,
        "log_every": 2000,
        "cells": ("lstm", "mann", "ntm", "nmn"),
        "n_classes": 5,
        "seq_len": 50,
        "rare": 2,
        "drawings": None,
        "image_size": 20,
        "hidden": 200,
        "memory_slots": 128,
        "memory_width": 40,
        "heads": 4,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "seeds": (0, 1, 2),
        "eval_episodes": 1000,
    },
)


def loss_fn(ys, labels):
    logp = jax.nn.log_softmax(ys)
    return -jnp.sum(jnp.take_along_axis(logp, labels[:, None], 1))


def label(name: str, method: str, window: int) -> str:
    if method == "bptt":
        return f"{name.upper()} BPTT"
    if name == "lstm":
        return f"LSTM T={window} {'BPTT' if method == 'tbptt' else 'SG'}"
    if method == "inner":
        return f"{name.upper()} inner-loop SG (window {window}; fast steps at test time)"
    return f"{name.upper()} SG"


METHOD_NAMES = {"bptt": "BPTT", "tbptt": "truncated BPTT", "sg": "SG", "inner": "inner-loop SG"}


def plot_title(methods) -> str:
    """The plot's title, naming the methods the run compares (one method: just that one).

    Example:
        >>> plot_title(("bptt", "sg"))
        'Rare classes in Omniglot episodes: BPTT vs SG'
        >>> plot_title(("inner",))
        'Rare classes in Omniglot episodes: inner-loop SG'
    """
    return "Rare classes in Omniglot episodes: " + " vs ".join(METHOD_NAMES[m] for m in methods)


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config,
        PRESETS,
        argv,
        experiment="synthetic_gradients_rare_classes",
        description=__doc__.splitlines()[0],
    )
    config: Config = run.config
    unknown = sorted(set(config.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"methods: {unknown} are not in {METHODS}")
    start = time.perf_counter()
    train = load_omniglot("background_small1", size=config.image_size)
    test = load_omniglot("background_small2", size=config.image_size)
    episode = dict(rare=config.rare, rare_count=config.rare_count, drawings=config.drawings)
    ev = episode_batch(
        test.images,
        test.character,
        config.n_classes,
        config.seq_len,
        config.eval_episodes,
        np.random.default_rng(12345),
        **episode,
    )
    ins = instance_index(ev["labels"])
    masks = {
        "rare 2nd": ev["rare"] & (ins == 2),
        "common 2nd+": ~ev["rare"] & (ins >= 2),
        "1st": ins == 1,
    }
    rows, series = [], {}
    for name in config.cells:
        cell = build_cell(
            name,
            config.image_size**2 + config.n_classes,
            config.n_classes,
            hidden=config.hidden,
            memory=(config.memory_slots, config.memory_width),
            heads=config.heads,
        )
        predict = predictor(cell)

        def accuracies(ys):
            ok = np.asarray(jnp.argmax(ys, -1)) == ev["labels"]
            return {k: float(np.mean(ok[m])) for k, m in masks.items()}

        def eval_fn(theta, predict=predict):
            return accuracies(predict(theta, jnp.asarray(ev["xs"])))

        for method in config.methods:
            if (method == "tbptt") != (name == "lstm") and method in ("tbptt", "inner"):
                continue  # truncated BPTT is the LSTM's baseline; the inner loop needs a tap
            sg = make_sg(
                cell,
                method=method,
                window=config.window if method != "bptt" else None,
                length=config.seq_len,
                mode="inner_loop" if method == "inner" else "dni",
                d_context=config.n_classes,
                mix_lambda=config.mix_lambda,
            )
            evaluate = eval_fn
            if method == "inner":
                fast = jax.jit(inner_loop_predict(sg))

                def evaluate(theta, phi, fast=fast, predict=predict):
                    xs, ctx = jnp.asarray(ev["xs"]), jnp.asarray(ev["context"])
                    at_theta0 = accuracies(predict(theta, xs))
                    return {
                        **accuracies(fast(theta, phi, xs, ctx)),
                        **{f"{k} θ₀ only": v for k, v in at_theta0.items()},
                    }

            results = []
            for seed in config.seeds:
                rng = np.random.default_rng(1000 + seed)

                def get_batch(step, rng=rng):
                    b = episode_batch(
                        train.images,
                        train.character,
                        config.n_classes,
                        config.seq_len,
                        config.batch_size,
                        rng,
                        **episode,
                    )
                    return {"xs": b["xs"], "aux": b["labels"], "context": b["context"]}

                cpu0 = time.process_time()
                _, _, history, seconds = train_sg(
                    sg,
                    loss_fn,
                    get_batch,
                    steps=config.steps,
                    seed=seed,
                    lr=config.learning_rate,
                    lr_sg=config.sg_learning_rate,
                    method="bptt" if method in ("bptt", "tbptt") else "sg",
                    log_every=config.log_every,
                    eval_fn=evaluate,
                    eval_with_phi=method == "inner",
                )
                results.append((history, seconds, time.process_time() - cpu0))
            row = {"model": label(name, method, config.window)}
            for key in masks:
                vals = [100 * h[-1][key] for h, _, _ in results]
                row[f"{key} %"] = median(vals)
                if key == "rare 2nd":
                    row["rare 2nd per seed"] = " / ".join(f"{v:.1f}" for v in vals)
            at0 = [h[-1].get("rare 2nd θ₀ only") for h, _, _ in results]
            row["rare 2nd % θ₀ only"] = "" if None in at0 else median([100 * v for v in at0])
            at0 = [h[-1].get("common 2nd+ θ₀ only") for h, _, _ in results]
            row["common 2nd+ % θ₀ only"] = "" if None in at0 else median([100 * v for v in at0])
            reached = [
                updates_to(h, "rare 2nd", config.threshold, above=True) for h, _, _ in results
            ]
            row[f"updates to {100 * config.threshold:.0f} % (rare 2nd)"] = " / ".join(
                "—" if r is None else str(r) for r in reached
            )
            if method in ("sg", "inner"):
                last = results[0][0][-1]
                keys = [k for k in last if k.startswith(("cosine_true/", "cosine/carry"))]
                row["cos(ĝ, δ)"] = median([h[-1][keys[0]] for h, _, _ in results]) if keys else ""
            else:
                row["cos(ĝ, δ)"] = ""
            row["s per run (wall / CPU)"] = (
                f"{median([s for _, s, _ in results]):.0f} / "
                f"{median([c for _, _, c in results]):.0f}"
            )
            rows.append(row)
            steps = [h["step"] for h in results[0][0]]
            curve = np.median([[100 * r["rare 2nd"] for r in h] for h, _, _ in results], 0)
            series[row["model"]] = (steps, curve.tolist())
            print(row, flush=True)
    chance = 100 / config.n_classes
    notes = {
        "preset": run.preset,
        "machine": describe_machine() + " (shared with other engineers' jobs)",
        "episodes": f"{config.n_classes} classes x {config.seq_len} steps, {config.rare} rare "
        f"class(es) shown exactly {config.rare_count} times, drawings per class "
        f"{config.drawings or 'all'}, Omniglot {config.image_size}x{config.image_size}; train "
        f"background_small1, evaluation {config.eval_episodes} episodes of background_small2",
        "model": f"controller {config.hidden}, memory {config.memory_slots}x{config.memory_width}"
        f", {config.heads} head(s), Dense read-out",
        "training": f"{config.steps} updates of batch {config.batch_size}, Adam "
        f"{config.learning_rate}, seeds {list(config.seeds)}; SG Adam {config.sg_learning_rate};"
        f" LSTM carry SG λ = 0 at windows of {config.window}; memory-cell write SG λ = "
        f"{config.mix_lambda}, label context",
        "chance": f"{chance:.1f} %",
        "wall time": f"{time.perf_counter() - start:.0f} s",
    }
    write_outputs(
        run,
        "rare_classes",
        rows,
        title="Rare classes: accuracy (%) at the rare class's 2nd instance (median over seeds)",
        notes=notes,
        plot={
            "series": series,
            "xlabel": "updates",
            "ylabel": "rare-class 2nd-instance accuracy % (median)",
            "title": plot_title(config.methods),
            "chance": chance,
        },
    )
    # the plotted curves, so that the plot can be redrawn without re-running the training
    (run.out_dir / "curves.json").write_text(json.dumps(series, indent=1))
    return rows


if __name__ == "__main__":
    main()
