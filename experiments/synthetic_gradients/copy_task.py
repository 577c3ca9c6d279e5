"""Copy with truncated BPTT windows T ∈ {2, 4, 8}: does a synthetic gradient extend the window?

DNI (Jaderberg et al. 2017, §3.2 and Table 1 [L]) reports that LSTMs trained by truncated BPTT
with a synthetic gradient at each window boundary solve copy and repeat-copy sequences longer
than the window, where plain truncated BPTT cannot. This experiment repeats the question with
memjax's :class:`~memjax.controllers.SyntheticGradients` (``sg_targets=("carry",)``, DNI for
RNNs, bootstrapped targets; [I] that Fast & Slow Learning uses this form) on the NTM copy task
(Graves et al. 2014 §4.1): random ``bits``-bit vectors of length ``U[1, max_len]``, a delimiter,
then the model must reproduce them; metric = bit errors per sequence on fresh sequences, the
median over seeds (Collier & Beel's practice [C in the spec]).

``cell`` is ``lstm`` (DNI's setting, the cpu default) or ``ntm``. One command:
``python -m experiments.synthetic_gradients.copy_task [--preset cpu|gpu|tpu] [--set key=value]``
writes ``results.md``, ``copy.png`` and ``summary.json`` into the run folder. The loop is
:func:`experiments.synthetic_gradients.common.train_sg` (jitted steps; no checkpoints —
each run takes seconds to minutes).
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
from memjax.train import TrainConfig, describe_machine, parse_args


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    cell: str = "lstm"
    windows: tuple[int, ...] = (2, 4, 8)
    seeds: tuple[int, ...] = (0, 1, 2)
    bits: int = 4
    max_len: int = 6
    hidden: int = 64
    memory_slots: int = 32
    memory_width: int = 8
    batch_size: int = 32
    learning_rate: float = 3e-3
    sg_learning_rate: float = 1e-3
    eval_size: int = 256


PRESETS = accelerator_presets(
    {"steps": 1000, "log_every": 100},
    {
        "steps": 50000,
        "log_every": 1000,
        "max_len": 20,
        "bits": 8,
        "hidden": 100,
        "memory_slots": 128,
        "memory_width": 20,
        "batch_size": 32,
        "cell": "ntm",
        "learning_rate": 1e-3,
        "seeds": (0, 1, 2, 3, 4),
    },
)


def copy_batch(rng: np.random.Generator, batch: int, bits: int, max_len: int):
    """Inputs ``(B, 2L+2, bits+1)``, targets ``(B, 2L+2, bits)``, mask ``(B, 2L+2)``."""
    length = 2 * max_len + 2
    xs = np.zeros((batch, length, bits + 1), np.float32)
    ys = np.zeros((batch, length, bits), np.float32)
    mask = np.zeros((batch, length), np.float32)
    for b in range(batch):
        n = int(rng.integers(1, max_len + 1))
        seq = rng.integers(0, 2, size=(n, bits)).astype(np.float32)
        xs[b, :n, :bits] = seq
        xs[b, n, bits] = 1.0
        ys[b, n + 1 : 2 * n + 1] = seq
        mask[b, n + 1 : 2 * n + 1] = 1.0
    return xs, ys, mask


def loss_fn(ys, aux):
    target, mask = aux
    bce = jnp.maximum(ys, 0) - ys * target + jnp.log1p(jnp.exp(-jnp.abs(ys)))
    return jnp.sum(bce * mask[:, None])


def run_one(config: Config, window: int | None, method: str, seed: int) -> dict:
    cell = build_cell(
        config.cell,
        config.bits + 1,
        config.bits,
        hidden=config.hidden,
        memory=(config.memory_slots, config.memory_width),
    )
    # window None: full BPTT (one window spans the sequence, no cut; the SG is unused)
    sg = make_sg(cell, method=method, window=window, length=2 * config.max_len + 2, diagnose=False)
    rng = np.random.default_rng(1000 + seed)

    def get_batch(step):
        xs, ys, mask = copy_batch(rng, config.batch_size, config.bits, config.max_len)
        return {"xs": xs, "aux": (ys, mask)}

    ev = copy_batch(np.random.default_rng(99), config.eval_size, config.bits, config.max_len)
    errors = bit_errors_fn(cell, tuple(jnp.asarray(a) for a in ev))
    _, _, history, seconds = train_sg(
        sg,
        loss_fn,
        get_batch,
        steps=config.steps,
        seed=seed,
        lr=config.learning_rate,
        lr_sg=config.sg_learning_rate,
        method=method,
        log_every=config.log_every,
        eval_fn=lambda th: {"bit_errors": float(errors(th))},
    )
    return {
        "history": history,
        "bit_errors": history[-1]["bit_errors"],
        "seconds": seconds,
        "cosine": history[-1].get("cosine/carry"),
    }


def bit_errors_fn(cell, ev):
    """``fn(theta)``: mean bit errors per sequence of ``cell`` on ``ev = (xs, target, mask)``."""
    predict = predictor(cell)
    xs, target, mask = ev

    def fn(theta):
        wrong = ((predict(theta, xs) > 0) != (target > 0.5)) * mask[..., None]
        return jnp.mean(jnp.sum(wrong, (1, 2)))

    return fn


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config,
        PRESETS,
        argv,
        experiment="synthetic_gradients_copy",
        description=__doc__.splitlines()[0],
    )
    config: Config = run.config
    start = time.perf_counter()
    rows, series = [], {}
    cases = [(None, "bptt")] + [(w, m) for w in config.windows for m in ("bptt", "sg")]
    for window, method in cases:
        results = [run_one(config, window, method, s) for s in config.seeds]
        name = "full BPTT" if window is None else f"T={window} {method.upper()}"
        errors = [r["bit_errors"] for r in results]
        row = {
            "method": name,
            "median bit errors": median(errors),
            "per seed": " / ".join(f"{e:.2f}" for e in errors),
            "s per run": median([r["seconds"] for r in results]),
        }
        if method == "sg":
            row["cos(ĝ, δ̃) carry"] = median([r["cosine"] for r in results])
        rows.append(row)
        steps = [h["step"] for h in results[0]["history"]]
        curves = np.median([[h["bit_errors"] for h in r["history"]] for r in results], 0)
        series[name] = (steps, curves.tolist())
        print(row, flush=True)
    chance = config.bits * (config.max_len + 1) / 4
    notes = {
        "preset": run.preset,
        "machine": describe_machine() + " (shared, loaded by other jobs)",
        "cell": f"{config.cell}, hidden {config.hidden}"
        + (
            f", memory {config.memory_slots}x{config.memory_width}" if config.cell != "lstm" else ""
        ),
        "task": f"copy, {config.bits} bits, length U[1, {config.max_len}], sequence "
        f"{2 * config.max_len + 2} steps; {config.eval_size} held-out sequences",
        "training": f"{config.steps} steps, batch {config.batch_size}, Adam {config.learning_rate} "
        f"(SG Adam {config.sg_learning_rate}), seeds {list(config.seeds)}",
        "SG": "carry target at each window boundary, λ = 0, MLP 2x64, scale 0.1, zero init, "
        "bootstrapped targets",
        "chance": f"≈ {chance:.1f} bit errors per sequence (random bits, mean length)",
        "wall time": f"{time.perf_counter() - start:.0f} s",
    }
    write_outputs(
        run,
        "copy",
        rows,
        title="Copy: bit errors per sequence (median over seeds)",
        notes=notes,
        plot={
            "series": series,
            "xlabel": "training step",
            "ylabel": "bit errors / sequence (median)",
            "title": f"Copy, {config.cell}, truncated BPTT vs SG",
            "chance": chance,
            "chance_label": "chance (random bits)",
        },
    )
    return rows


if __name__ == "__main__":
    main()
