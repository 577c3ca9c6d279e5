"""Single needle in a haystack (RULER S-NIAH, Titans Table 2) for LMM, MAC, MAG, MAL, attention
(full and sliding-window) and the gated delta rule.

Every architecture (:func:`memjax.models.titans.build_model` with ``num_layers`` layers, 2 by
default; ``window`` as the sliding window and the MAC segment size) is trained from scratch on
:func:`memjax.data.needle_haystack` sequences in the ``template`` format (``"marker"`` by
default: the needle ``"The pass key=48213. "`` and the question ``"The pass key="`` share the
one ``=`` of the sequence, so a copy-after-the-matching-marker circuit solves it; ``"ruler"``:
RULER's sentences) with a **curriculum over lengths**: the steps are split into
``len(train_lens)`` equal stages, stage ``i`` at ``train_lens[i]`` characters (short haystacks
first, where a two-layer model finds the copy circuit within a few hundred steps). Each batch
holds the needle kinds of ``needles`` (passkey, number, uuid) in equal parts, noise haystack,
needle at a uniform random depth. The loss (:func:`needle_loss`) is the cross-entropy of the
answer tokens (teacher forcing) averaged per sequence, so a 5-digit passkey weighs as much as a
36-character uuid, plus ``lm_weight`` times the next-token loss of the whole sequence (0 by
default: the models otherwise learn the haystack and not the needle). Each model is trained
once per seed of ``seeds``; it is evaluated (forward only) on held-out sequences at every length
of ``eval_lens`` with two scores per kind: *exact match* (all answer tokens predicted correctly
given the previous answer tokens, the paper's accuracy) and *token accuracy* (share of answer
tokens right); the tables give the mean over seeds. Chance: 1 in 10 per digit (passkey,
number), 1 in 16 per hex character of a uuid (0.17 of its 36 tokens when its 4 dashes are
known); exact match by chance is below 1e-5.
Writes ``results.md`` (a Table-2-shaped grid per score), ``niah.png`` and ``summary.json``.

``python -m experiments.titans.niah [--preset cpu|gpu|tpu] [--resume] [--set models=(lmm,mac)]``
"""

from __future__ import annotations

import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common.char_lm import batch_logits, lm_optimizer, masked_metrics
from experiments.common.config import LONG_RUN, accelerator_presets, variant_run
from experiments.common.models import count_params
from experiments.common.outputs import report, run_notes
from memjax.data import NIAH_VOCAB, needle_haystack
from memjax.models.titans import build_model
from memjax.train import TrainConfig, parse_args, train, write_results_table

MODELS = ("lmm", "mac", "mag", "mal", "attention", "swa", "gated_delta")
NEEDLES = ("passkey", "number", "uuid")
VOCAB = len(NIAH_VOCAB) + 1
SHORT = {"passkey": "PK", "number": "N", "uuid": "W"}


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    models: tuple[str, ...] = MODELS
    needles: tuple[str, ...] = NEEDLES
    template: str = "marker"
    seeds: tuple[int, ...] = ()
    train_lens: tuple[int, ...] = (128,)
    eval_lens: tuple[int, ...] = (128, 1024, 2048, 4096)
    d_model: int = 32
    num_layers: int = 2
    num_heads: int = 2
    window: int = 64
    batch_size: int = 24
    learning_rate: float = 1e-2
    lm_weight: float = 0.0
    eval_examples: int = 16
    eval_batch: int = 4
    steps: int = 400
    log_every: int = 50
    checkpoint_every: int = 400

    def seed_list(self) -> tuple[int, ...]:
        """The seeds each model is trained with: ``seeds``, or ``(seed,)`` when empty."""
        return tuple(self.seeds) or (self.seed,)


_FULL_SIZE = {
    **LONG_RUN,
    "train_lens": (256, 1024, 2048),
    "eval_lens": (2048, 4096, 8192, 16384),
    "d_model": 128,
    "num_layers": 4,
    "num_heads": 4,
    "window": 512,
    "learning_rate": 1e-3,
    "eval_examples": 100,
    "seeds": (0, 1),
}
PRESETS = accelerator_presets(
    {"seeds": (0, 1)},
    _FULL_SIZE,
    gpu={"batch_size": 48, "eval_batch": 4},
    tpu={"batch_size": 96, "eval_batch": 8},
)


def needle_batch(config: Config, seed, length: int, per_kind: int):
    """``(tokens, targets)`` with ``per_kind`` rows of every needle kind, kinds in order."""
    rng = np.random.default_rng(seed)
    parts = [
        needle_haystack(rng, per_kind, length, kind, template=config.template)
        for kind in config.needles
    ]
    tokens = np.concatenate([p.tokens for p in parts])
    targets = np.concatenate([p.targets for p in parts])
    return tokens, targets


def train_length(config: Config, step: int) -> int:
    """The curriculum: the steps split into ``len(train_lens)`` equal stages, stage ``i`` trained
    on sequences of ``train_lens[i]`` characters (short haystacks first)."""
    stages = len(config.train_lens)
    return config.train_lens[min(step * stages // max(config.steps, 1), stages - 1)]


def needle_loss(logits, tokens, targets, lm_weight: float = 0.0):
    """``(loss, {"accuracy", "exact"[, "lm_loss"]})``: the answer cross-entropy averaged over
    each row's answer tokens, then over rows (every needle kind weighs the same whatever its
    answer length), plus ``lm_weight`` times the mean next-token loss of the whole sequence."""
    mask = targets >= 0
    safe = jnp.where(mask, targets, 0)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
    per_row = jnp.sum(nll * mask, -1) / jnp.maximum(mask.sum(-1), 1)
    correct = (logits.argmax(-1) == safe) & mask
    aux = {
        "accuracy": jnp.mean(correct.sum(-1) / jnp.maximum(mask.sum(-1), 1)),
        "exact": jnp.mean(jnp.all(correct | ~mask, -1)),
    }
    loss = jnp.mean(per_row)
    if lm_weight:
        lm = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:])
        aux["lm_loss"] = jnp.mean(lm)
        loss = loss + lm_weight * aux["lm_loss"]
    return loss, aux


def train_needles(config: Config, run, name: str, model, get_batch):
    """AdamW (warm-up + cosine to ``config.learning_rate``, clip 1) on :func:`needle_loss`."""

    def loss_fn(params, batch, key):
        tokens, targets = batch
        return needle_loss(batch_logits(model, params, tokens), tokens, targets, config.lm_weight)

    optimizer = lm_optimizer(config)
    return train(
        config,
        init_params=model.init_params,
        loss_fn=loss_fn,
        get_batch=get_batch,
        optimizer=optimizer,
        **variant_run(run, name),
    )


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


def run_model(config: Config, name: str, run, seed: int) -> dict:
    """Train and evaluate ``name`` with ``seed`` (runner files in ``<out>/<name>_s<seed>``)."""
    config = dataclasses.replace(config, seed=seed)
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

    # a finished model's record is kept beside its checkpoints, so --resume (or a later command
    # over the same --out with more models or seeds) re-reads it instead of training and
    # evaluating again
    cache = run.out_dir / f"{name}_s{seed}" / "result.json"
    key = {k: getattr(config, k) for k in ("steps", "batch_size", "learning_rate", "lm_weight")}
    key |= {k: list(getattr(config, k)) for k in ("needles", "train_lens", "eval_lens")}
    key |= {"template": config.template, "eval_examples": config.eval_examples}
    if run.resume and cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["record"]
    start, cpu = time.perf_counter(), time.process_time()
    result = train_needles(config, run, f"{name}_s{seed}", model, get_batch)
    trained, trained_cpu = time.perf_counter() - start, time.process_time() - cpu
    scores = evaluate(config, model, result.params)
    train_records = [r for r in result.history if r["split"] == "train"]
    last = train_records[-1] if train_records else {}
    record = {
        "seed": seed,
        "params": count_params(model),
        "train_loss": last.get("loss", float("nan")),
        "train_answer_accuracy": last.get("accuracy", float("nan")),
        "train_s": trained,
        "train_cpu_s": trained_cpu,
        "eval_s": time.perf_counter() - start - trained,
        "eval_cpu_s": time.process_time() - cpu - trained_cpu,
        "scores": {f"{k}@{n}": v for (k, n), v in scores.items()},
    }
    cache.write_text(json.dumps({"key": key, "record": record}))
    return record


def combine(name: str, per_seed: list[dict]) -> dict:
    """One row per model: scores, losses and times averaged over its seeds (per-seed rows kept
    under ``"seeds"``)."""
    mean = lambda key: float(np.mean([r[key] for r in per_seed]))
    return {
        "model": name,
        "params": per_seed[0]["params"],
        "train_loss": mean("train_loss"),
        "train_answer_accuracy": mean("train_answer_accuracy"),
        "train_s": mean("train_s"),
        "train_cpu_s": mean("train_cpu_s"),
        "eval_s": mean("eval_s"),
        "eval_cpu_s": mean("eval_cpu_s"),
        "scores": {
            key: [float(np.mean([r["scores"][key][i] for r in per_seed])) for i in range(2)]
            for key in per_seed[0]["scores"]
        },
        "seeds": per_seed,
    }


def table_rows(config: Config, results: list[dict], which: int) -> list[dict]:
    """Table-2-shaped rows: model, then ``<kind> <length>`` columns in % (``which`` 0: exact
    match, 1: token accuracy), means over seeds."""
    rows = []
    for r in results:
        row = {"model": r["model"]}
        for kind in config.needles:
            for n in config.eval_lens:
                row[f"{SHORT[kind]} {n}"] = round(100 * r["scores"][f"{kind}@{n}"][which], 1)
        rows.append(row)
    return rows


CHANCE = {"passkey": 0.1, "number": 0.1, "uuid": 4 / 36 + 32 / 36 / 16}
"""Answer-token accuracy of a uniform guess (uuid: the 4 dashes known, 1 in 16 per hex digit)."""


def plot(path, config: Config, results: list[dict]) -> None:
    """Exact match (top) and answer-token accuracy (bottom) against length, one panel per kind,
    a style per model, the chance line dashed grey, the legend outside."""
    import matplotlib

    from memjax.train.plots import draw_lines, legend_outside

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    kinds = config.needles
    fig, axes = plt.subplots(2, len(kinds), figsize=(3.2 * len(kinds) + 1.6, 5.6), squeeze=False)
    lens = list(config.eval_lens)
    for which, label in enumerate(("exact match", "answer-token accuracy")):
        for j, kind in enumerate(kinds):
            ax = axes[which, j]
            series = {
                r["model"]: (lens, [r["scores"][f"{kind}@{n}"][which] for n in lens])
                for r in results
            }
            draw_lines(ax, series, legend=False)
            chance = CHANCE[kind] if which else 0.0
            ax.axhline(chance, color="0.5", linestyle="--", linewidth=1, label="chance")
            ax.set_xscale("log", base=2)
            ax.set_xticks(lens, [f"{n // 1024}K" if n >= 1024 else str(n) for n in lens])
            ax.minorticks_off()
            ax.set_ylim(-0.03, 1.03)
            ax.grid(True, alpha=0.3)
            ax.set_title(f"{SHORT[kind]} ({kind}): {label}", fontsize=9)
            if j == 0:
                ax.set_ylabel(label)
            if which == 1:
                ax.set_xlabel("sequence length (characters)")
    legend_outside(axes[0, -1])
    seeds = config.seed_list()
    fig.suptitle(
        f"S-NIAH ({config.template} template), trained at "
        f"{' → '.join(map(str, config.train_lens))} characters, "
        f"mean of {len(seeds)} seed(s)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config, PRESETS, argv, experiment="titans_niah", description=__doc__.splitlines()[0]
    )
    config: Config = run.config
    start = time.perf_counter()
    seeds = config.seed_list()
    # seed-major: every model's first seed before any second seed
    runs = {(m, seed): run_model(config, m, run, seed) for seed in seeds for m in config.models}
    results = [combine(m, [runs[m, seed] for seed in seeds]) for m in config.models]
    total = time.perf_counter() - start
    notes = run_notes(
        run,
        total,
        {
            "seeds": ", ".join(map(str, seeds)) + " (tables: the mean over seeds)",
            "training": f"{config.steps} steps x {config.batch_size} sequences, curriculum of "
            f"{config.train_lens} characters in equal stages (kinds "
            f"{', '.join(config.needles)} in equal parts, {config.template} template), lr "
            f"{config.learning_rate}, lm_weight {config.lm_weight}",
            "evaluation": f"{config.eval_examples} held-out sequences per kind, length and seed",
            "models": f"{config.num_layers} layers, d_model {config.d_model}, "
            f"{config.num_heads} heads, window {config.window}; params "
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
    keys = ("model", "params", "train_loss", "train_answer_accuracy", "train_s", "train_cpu_s")
    keys += ("eval_s", "eval_cpu_s")
    text += "\n" + write_results_table(
        None,
        [{k: r[k] for k in keys} for r in results],
        title="Training (means over seeds; times per seed)",
        notes=notes,
    )
    out = run.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    plot(out / "niah.png", config, results)
    report(out, text, total)
    return results


if __name__ == "__main__":
    main()
