"""Single needle in a haystack (RULER S-NIAH, Titans Table 2) for LMM, MAC, MAG, MAL, attention
(full and sliding-window) and the gated delta rule.

Every architecture (:func:`memjax.models.titans.build_model` with ``num_layers`` layers, 2 by
default: one layer cannot tell the question's ``" is "`` from the haystack's; ``window`` as the
sliding window and the MAC segment size) is trained from scratch on
:func:`memjax.data.needle_haystack` sequences with a **curriculum over lengths**: the steps are
split into ``len(train_lens)`` equal stages, stage ``i`` at ``train_lens[i]`` characters (short
haystacks first, so the needle is easy to find before it is far). Each batch holds the needle
kinds of ``needles`` (passkey, number, uuid) in equal parts, noise haystack, needle at a uniform
random depth. The loss is the cross-entropy of the answer tokens (teacher forcing) plus
``lm_weight`` times the next-token loss over the whole sequence. It is then evaluated on
held-out sequences at every length of ``eval_lens`` (the last training length and longer) with
two scores per kind: *exact match* (all answer tokens predicted correctly given the previous
answer tokens, the paper's accuracy) and *token accuracy* (share of answer tokens right).
Writes ``results.md`` (a Table-2-shaped grid per score), ``niah.png`` and ``summary.json``.

``python -m experiments.titans.niah [--preset cpu|gpu|tpu] [--resume] [--set models=(lmm,mac)]``
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from experiments.common.char_lm import batch_logits, masked_metrics, train_lm
from experiments.common.config import LONG_RUN, accelerator_presets
from experiments.common.models import count_params
from experiments.common.outputs import report, run_notes, write_outputs
from memjax.data import NIAH_VOCAB, needle_haystack
from memjax.models.titans import build_model
from memjax.train import TrainConfig, parse_args, write_results_table

MODELS = ("lmm", "mac", "mag", "mal", "attention", "swa", "gated_delta")
NEEDLES = ("passkey", "number", "uuid")
VOCAB = len(NIAH_VOCAB) + 1
SHORT = {"passkey": "PK", "number": "N", "uuid": "W"}


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    models: tuple[str, ...] = MODELS
    needles: tuple[str, ...] = NEEDLES
    train_lens: tuple[int, ...] = (320, 512)
    eval_lens: tuple[int, ...] = (512, 1024, 2048, 4096)
    d_model: int = 32
    num_layers: int = 2
    num_heads: int = 2
    window: int = 64
    batch_size: int = 12
    learning_rate: float = 3e-3
    lm_weight: float = 0.2
    eval_examples: int = 16
    eval_batch: int = 4
    steps: int = 300
    log_every: int = 50
    checkpoint_every: int = 300


_FULL_SIZE = {
    **LONG_RUN,
    "train_lens": (512, 1024, 2048),
    "eval_lens": (2048, 4096, 8192, 16384),
    "d_model": 128,
    "num_layers": 4,
    "num_heads": 4,
    "window": 512,
    "learning_rate": 1e-3,
    "eval_examples": 100,
}
PRESETS = accelerator_presets(
    {},
    _FULL_SIZE,
    gpu={"batch_size": 48, "eval_batch": 4},
    tpu={"batch_size": 96, "eval_batch": 8},
)


def needle_batch(config: Config, seed, length: int, per_kind: int):
    """``(tokens, targets)`` with ``per_kind`` rows of every needle kind, kinds in order."""
    rng = np.random.default_rng(seed)
    parts = [needle_haystack(rng, per_kind, length, kind) for kind in config.needles]
    tokens = np.concatenate([p.tokens for p in parts])
    targets = np.concatenate([p.targets for p in parts])
    return tokens, targets


def train_length(config: Config, step: int) -> int:
    """The curriculum: the steps split into ``len(train_lens)`` equal stages, stage ``i`` trained
    on sequences of ``train_lens[i]`` characters (short haystacks first)."""
    stages = len(config.train_lens)
    return config.train_lens[min(step * stages // max(config.steps, 1), stages - 1)]


def evaluate(config: Config, model, params) -> dict:
    """``{(kind, length): (exact match, token accuracy)}`` on held-out sequences."""
    per_kind = config.eval_examples

    @jax.jit
    def scores(params, tokens, targets):
        logits = batch_logits(model, params, tokens)
        _, _, exact = masked_metrics(logits, targets)
        correct = (logits.argmax(-1) == targets) & (targets >= 0)
        return exact, correct.sum(-1), (targets >= 0).sum(-1)

    out = {}
    for length in config.eval_lens:
        tokens, targets = needle_batch(config, [config.seed, 10_000 + length], length, per_kind)
        exact, right, total = [], [], []
        for i in range(0, tokens.shape[0], config.eval_batch):
            e, r, t = scores(
                params, tokens[i : i + config.eval_batch], targets[i : i + config.eval_batch]
            )
            exact.append(np.asarray(e))
            right.append(np.asarray(r))
            total.append(np.asarray(t))
        exact, right, total = map(np.concatenate, (exact, right, total))
        for j, kind in enumerate(config.needles):
            sl = slice(j * per_kind, (j + 1) * per_kind)
            out[kind, length] = [
                float(exact[sl].mean()),
                float(right[sl].sum() / total[sl].sum()),
            ]
    return out


def run_model(config: Config, name: str, run) -> dict:
    model = build_model(
        name,
        VOCAB,
        config.d_model,
        config.num_layers,
        num_heads=config.num_heads,
        window=config.window,
        segment_size=config.window,
    )
    per_kind = config.batch_size // len(config.needles)

    def get_batch(step):
        return needle_batch(config, [config.seed, step], train_length(config, step), per_kind)

    start = time.perf_counter()
    result = train_lm(config, run, name, model, get_batch, lm_weight=config.lm_weight)
    trained = time.perf_counter() - start
    scores = evaluate(config, model, result.params)
    train_records = [r for r in result.history if r["split"] == "train"]
    return {
        "model": name,
        "params": count_params(model),
        "train_loss": train_records[-1]["loss"] if train_records else float("nan"),
        "train_answer_accuracy": train_records[-1]["accuracy"] if train_records else float("nan"),
        "train_s": trained,
        "eval_s": time.perf_counter() - start - trained,
        "scores": {f"{k}@{n}": v for (k, n), v in scores.items()},
    }


def table_rows(config: Config, results: list[dict], which: int) -> list[dict]:
    """Table-2-shaped rows: model, then ``<kind> <length>`` columns in % (``which`` 0: exact
    match, 1: token accuracy)."""
    rows = []
    for r in results:
        row = {"model": r["model"]}
        for kind in config.needles:
            for n in config.eval_lens:
                row[f"{SHORT[kind]} {n}"] = round(100 * r["scores"][f"{kind}@{n}"][which], 1)
        rows.append(row)
    return rows


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config, PRESETS, argv, experiment="titans_niah", description=__doc__.splitlines()[0]
    )
    config: Config = run.config
    start = time.perf_counter()
    results = [run_model(config, m, run) for m in config.models]
    total = time.perf_counter() - start
    notes = run_notes(
        run,
        total,
        {
            "training": f"{config.steps} steps x {config.batch_size} sequences, curriculum of "
            f"{config.train_lens} characters in equal stages (kinds "
            f"{', '.join(config.needles)} in equal parts), lr {config.learning_rate}, "
            f"lm_weight {config.lm_weight}",
            "evaluation": f"{config.eval_examples} held-out sequences per kind and length",
            "models": f"{config.num_layers} layers, d_model {config.d_model}, "
            f"{config.num_heads} heads; params "
            + ", ".join(f"{r['model']} {r['params']}" for r in results),
        },
    )
    text = write_results_table(
        None,
        table_rows(config, results, 0),
        title="S-NIAH exact match, % (all answer tokens right)",
    )
    text += "\n" + write_results_table(
        None, table_rows(config, results, 1), title="S-NIAH answer-token accuracy, %"
    )
    text += "\n" + write_results_table(
        None,
        [
            {
                k: r[k]
                for k in (
                    "model",
                    "params",
                    "train_loss",
                    "train_answer_accuracy",
                    "train_s",
                    "eval_s",
                )
            }
            for r in results
        ],
        title="Training",
        notes=notes,
    )
    series = {
        f"{r['model']} {SHORT[k]}": (
            list(config.eval_lens),
            [r["scores"][f"{k}@{n}"][1] for n in config.eval_lens],
        )
        for r in results
        for k in config.needles
    }
    write_outputs(
        run.out_dir,
        results,
        text=text,
        plot_name="niah.png",
        series=series,
        xlabel="sequence length",
        ylabel="token accuracy",
        plot_title="S-NIAH answer-token accuracy",
        logx=True,
    )
    report(run.out_dir, text, total)
    return results


if __name__ == "__main__":
    main()
