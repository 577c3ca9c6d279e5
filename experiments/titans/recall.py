"""Outer-trained MQAR recall: Titans LMM (L_M = 2 and L_M = 1, Table-5 ablations) against the
gated delta rule and attention, every model at its own tuned learning rate.

Every model is a :class:`~memjax.models.sequence_model.SequenceModel` (d_model 32, 2 heads, so
keys/values of size 16 per head) trained end to end on MQAR (Zoology, :func:`memjax.data.mqar`)
with the numbers of key-value pairs of ``kv_pairs`` in turn, then evaluated on held-out sequences
at each pair count. Presets: ``cpu`` (the default, the main job: four variants, a few minutes on
two cores), ``full`` (the whole study below at the ``cpu`` size), ``gpu`` / ``tpu`` (Zoology's
size). Variants:

* ``lmm_deep`` / ``lmm_linear``: :class:`~memjax.models.titans.lmm.TitansLMM` with memory depth
  ``L_M = 2`` / ``1`` and the library's defaults (θ 0.1, η 0.9, α 0.01 at init, per-token clipping
  of the inner gradient to norm 1, chunk 16, conv width 4 drawn uniformly plus an identity tap,
  memory MLP without a residual + LayerNorm wrapper, 4 persistent tokens, output RMSNorm and gate).
* ``lmm_no_momentum`` / ``lmm_no_decay`` / ``lmm_no_conv`` / ``lmm_no_persistent``: the Titans
  Table 5 ablations of ``lmm_deep`` on this memory task — controls ``eta=0`` / ``alpha=0``
  (overriding the gates, also for the persistent tokens), ``conv_width=0``,
  ``num_persistent=0`` (``lmm_linear`` is the table's "linear memory" row).
* ``lmm_wrapper`` / ``lmm_uniform_conv`` / ``lmm_identity_conv`` / ``lmm_both``: ``lmm_deep`` with
  the memory MLP wrapped as ``LN(out)(1 + γ) + x`` (``residual_norm=True``, TTT /
  titans-pytorch), with the q/k/v conv drawn ``U(±1/√W)`` without the identity tap
  (``conv_init="uniform"``, ``torch.nn.Conv1d``'s default), started at the identity plus small
  noise (``conv_init="identity"``), or with the wrapper and the uniform conv (the former
  defaults) — the measurements behind the two defaults (README section 5).
* ``gated_delta``: an :class:`~memjax.models.associative.AssociativeLayer` over a gated
  :class:`~memjax.memories.linear.LinearMemory` in Gated DeltaNet's form (the ``gated_delta``
  kind of :func:`memjax.models.titans.build_model`: θ 0.5, α 0.01, conv width 4).
* ``attention``: full causal softmax attention with RoPE, ``attention_layers`` layers (one layer
  of attention without a conv cannot do MQAR: the value's position must first learn its
  preceding key).
* ``attention_conv``: the same attention with the LMM's short q/k/v conv
  (:class:`experiments.titans.common.ConvAttention`) in the LMM's frame (``num_layers`` layers):
  the conv hands each value its preceding key, so one layer suffices.

Learning rates: ``learning_rate=None`` (the default) trains each variant at the rate chosen for it
by ``experiments/titans/tune_baselines.py`` (:data:`TUNED_LR`, the same grid for every model;
the ablation rows use ``lmm_deep``'s); a number trains every variant at that rate.

One command trains every variant with the memjax runner (checkpoints, ``--resume``, metrics JSON
lines) and writes ``results.md``, ``recall.png`` and ``summary.json`` into the run folder
(default ``runs/titans_recall/<preset>/``).

``python -m experiments.titans.recall [--preset cpu|full|gpu|tpu] [--resume] [--out DIR]
[--set k=v] [--no-export-cache]``

A second run with the same settings and code neither compiles, traces nor initializes again
(its slowest variant reached its first step in 1.3 s of CPU time, against 3.4 s without the
export cache): the compiled steps come from the persistent compilation cache, and the traced
steps and initial states from the export cache beside it (:mod:`memjax.train.export_cache`;
``--no-export-cache`` traces them again, ``--no-cache`` turns both caches off). The results are
the same bit for bit either way.
"""

from __future__ import annotations

import dataclasses
import itertools
import time

from experiments.common.config import MQAR_BATCH_SIZES, MQAR_FULL_SIZE, accelerator_presets
from experiments.common.models import count_params
from experiments.common.mqar import mqar_notes, run_mqar_variants, train_on_mqar
from experiments.common.outputs import report, write_outputs
from experiments.titans.common import Controlled, ConvAttention
from memjax.models.sequence_model import SequenceModel
from memjax.models.titans import build_model
from memjax.models.titans.lmm import TitansLMM
from memjax.train import TrainConfig, parse_args, write_results_table

VARIANTS = (
    "lmm_deep",
    "lmm_linear",
    "lmm_no_momentum",
    "lmm_no_decay",
    "lmm_no_conv",
    "lmm_no_persistent",
    "lmm_wrapper",
    "lmm_uniform_conv",
    "lmm_identity_conv",
    "lmm_both",
    "gated_delta",
    "attention",
    "attention_conv",
)
DEFAULT_VARIANTS = ("lmm_deep", "lmm_linear", "gated_delta", "attention_conv")
"""The main job (``cpu`` preset): the two LMMs against the two tuned baselines."""
LABELS = {
    "lmm_deep": "Titans LMM, deep memory (L_M = 2)",
    "lmm_linear": "Titans LMM, linear memory (L_M = 1)",
    "gated_delta": "gated delta rule",
    "attention": "attention (2 layers, no conv)",
    "attention_conv": "attention + short conv",
}
# how each LMM variant differs from lmm_deep (L_M = 2, library defaults): TitansLMM fields ...
LMM_FIELDS = {
    "lmm_deep": {},
    "lmm_linear": {"depth": 1},
    "lmm_no_momentum": {},
    "lmm_no_decay": {},
    "lmm_no_conv": {"conv_width": 0},
    "lmm_no_persistent": {"num_persistent": 0},
    "lmm_wrapper": {"residual_norm": True},
    "lmm_uniform_conv": {"conv_init": "uniform"},
    "lmm_identity_conv": {"conv_init": "identity"},
    "lmm_both": {"residual_norm": True, "conv_init": "uniform"},
}
# ... and per-call controls (eta = 0: no momentum, alpha = 0: no forgetting; Titans Table 5)
LMM_CONTROLS = {"lmm_no_momentum": (("eta", 0.0),), "lmm_no_decay": (("alpha", 0.0),)}


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    """Experiment config; ``steps`` etc. come from :class:`memjax.train.TrainConfig`."""

    variants: tuple[str, ...] = DEFAULT_VARIANTS
    kv_pairs: tuple[int, ...] = (4, 8, 12, 16, 20)
    vocab_size: int = 128
    seq_len: int = 64
    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 1
    attention_layers: int = 2
    conv_width: int = 4
    chunk_size: int = 16
    remat: bool = False
    batch_size: int = 32
    learning_rate: float | None = None
    eval_batches: int = 2


TUNED_LR = {
    "lmm_deep": 1e-2,
    "lmm_linear": 1e-2,
    "gated_delta": 1e-2,
    "attention": 1e-2,
    "attention_conv": 1e-2,
}
"""Each model's AdamW rate at the ``cpu`` size: the best held-out accuracy (mean over the pair
counts) of the grid of ``experiments/titans/tune_baselines.py``, the same grid for every model
(README section 5)."""

_CPU = {"steps": 400, "log_every": 100, "checkpoint_every": 400}
PRESETS = accelerator_presets(
    _CPU,
    {**MQAR_FULL_SIZE, "attention_layers": 2, "chunk_size": 64, "remat": True},
    study={**_CPU, "variants": VARIANTS},
    **MQAR_BATCH_SIZES,
)
PRESETS["full"] = PRESETS.pop("study")  # the whole study at the cpu size
PRESETS = {k: PRESETS[k] for k in ("cpu", "full", "gpu", "tpu")}


def learning_rate(config: Config, variant: str) -> float:
    """The variant's rate: ``config.learning_rate``, or its tuned rate (:data:`TUNED_LR`; the
    ``lmm_*`` ablations use ``lmm_deep``'s)."""
    if config.learning_rate is not None:
        return config.learning_rate
    return TUNED_LR.get(variant, TUNED_LR["lmm_deep"])


def lmm_layer(config: Config, variant: str) -> TitansLMM | Controlled:
    """The LMM of an ``lmm_*`` variant (module doc, :data:`LMM_FIELDS`, :data:`LMM_CONTROLS`)."""
    fields = {
        "chunk_size": config.chunk_size,
        "conv_width": config.conv_width,
        "remat": config.remat,
        **LMM_FIELDS[variant],
    }
    layer = TitansLMM(config.d_model, config.num_heads, **fields)
    if variant in LMM_CONTROLS:
        return Controlled(layer, LMM_CONTROLS[variant])
    return layer


def variant_model(config: Config, variant: str) -> SequenceModel:
    """The variant's model (module doc): an ``lmm_*`` layer, or the ``gated_delta`` /
    ``attention`` kind of :func:`memjax.models.titans.build_model`."""
    d, h = config.d_model, config.num_heads
    if variant in LMM_FIELDS:
        return SequenceModel(config.vocab_size, d, config.num_layers, lmm_layer(config, variant))
    if variant == "gated_delta":
        return build_model(
            "gated_delta",
            config.vocab_size,
            d,
            config.num_layers,
            num_heads=h,
            conv_width=config.conv_width,
            chunk_size=config.chunk_size,
        )
    if variant == "attention":
        return build_model("attention", config.vocab_size, d, config.attention_layers, num_heads=h)
    if variant == "attention_conv":
        mixer = ConvAttention(d, h, conv_width=config.conv_width)
        return SequenceModel(config.vocab_size, d, config.num_layers, mixer)
    raise ValueError(f"variants: expected names from {VARIANTS}, got {variant!r}")


def memory_size(config: Config, variant: str) -> str:
    """Test-time state per head (memory weights; attention: its key-value cache)."""
    d_head = config.d_model // config.num_heads
    if variant in LMM_FIELDS:
        fields = LMM_FIELDS[variant]
        depth = fields.get("depth", 2)
        widths = (d_head, *([4 * d_head] * (depth - 1)), d_head)
        n = sum(a * b for a, b in itertools.pairwise(widths))
        if fields.get("residual_norm"):
            n += d_head  # the wrapper's gamma
        return f"{n} (+ momentum)"
    if variant == "gated_delta":
        return str(d_head * d_head)
    return f"2·T·{d_head} per layer"


def run_variant(config: Config, variant: str, run_args) -> list[dict]:
    """Train the model ``variant`` on MQAR (:func:`experiments.common.mqar.train_on_mqar`),
    adding its size and time."""
    model = variant_model(config, variant)
    lr = learning_rate(config, variant)
    start = time.perf_counter()
    rows = train_on_mqar(dataclasses.replace(config, learning_rate=lr), model, variant, run_args)
    seconds = time.perf_counter() - start
    extra = {
        "params": count_params(model),
        "lr": lr,
        "state per head": memory_size(config, variant),
        "seconds": round(seconds, 1),
    }
    return [{**row, **extra} for row in rows]


def pivot(config: Config, rows: list[dict]) -> list[dict]:
    """One row per variant: its size, rate and accuracy at every pair count (the table a user
    reads first)."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        row = {
            "variant": variant,
            "params": mine[0]["params"],
            "lr": mine[0]["lr"],
            "state per head": mine[0]["state per head"],
        }
        row.update({f"{r['kv_pairs']} pairs": round(r["accuracy"], 3) for r in mine})
        row["seconds"] = mine[0]["seconds"]
        out.append(row)
    return out


def recall_series(rows: list[dict]) -> dict:
    """``{label: (pair counts, accuracies)}`` per variant, labelled as :data:`LABELS`."""
    return {
        LABELS.get(v, v): (
            [r["kv_pairs"] for r in rows if r["variant"] == v],
            [r["accuracy"] for r in rows if r["variant"] == v],
        )
        for v in dict.fromkeys(r["variant"] for r in rows)
    }


def plot_recall(path, config: Config, rows: list[dict]) -> None:
    """Accuracy against the number of pairs, one line per variant (its own style, the legend
    outside), chance as a grey dotted line."""
    from memjax.train import draw_lines

    plt = _pyplot()
    series = recall_series(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    try:
        chance = 1 / (config.vocab_size // 2)
        ax.axhline(chance, color="0.5", linestyle=":", linewidth=1)
        ax.text(config.kv_pairs[0], chance + 0.02, "chance", color="0.4", fontsize="small")
        draw_lines(ax, series)
        ax.set_ylim(0, 1.05)
        ax.set_xticks(list(config.kv_pairs))
        ax.set_xlabel("key-value pairs to recall (per sequence)")
        ax.set_ylabel("held-out recall accuracy")
        d_head = config.d_model // config.num_heads
        ax.set_title(f"MQAR: recall after {config.steps} training steps (d_head = {d_head})")
        ax.grid(True, alpha=0.3)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config,
        PRESETS,
        argv,
        experiment="titans_recall",
        description="Outer-trained MQAR recall: Titans LMM against the gated delta rule and "
        "attention, each at its tuned learning rate.",
    )
    config: Config = run.config
    rows, total = run_mqar_variants(run, run_variant)
    d_head = config.d_model // config.num_heads
    changed = [v for v in config.variants if LMM_FIELDS.get(v) or v in LMM_CONTROLS]
    lmm = f"chunk {config.chunk_size}, TitansLMM defaults"
    if changed:
        lmm += " except " + "; ".join(
            f"{v}: {LMM_FIELDS[v] or dict(LMM_CONTROLS[v])}" for v in changed
        )
    rate = "each variant's tuned rate (column lr)"
    if config.learning_rate is not None:
        rate = f"lr {config.learning_rate} for every variant"
    notes = mqar_notes(
        run,
        total,
        {
            "model": f"{config.num_layers} layer(s) ({config.attention_layers} for attention), "
            f"d_model {config.d_model}, {config.num_heads} heads (d_head = {d_head}), "
            f"conv {config.conv_width}",
            "lmm settings": lmm,
            "task": f"MQAR, vocab {config.vocab_size}, length {config.seq_len}, pairs "
            f"{config.kv_pairs} in turn; chance = 1/{config.vocab_size // 2}",
            "optimizer": f"AdamW, {rate}, weight decay 0.01, batch {config.batch_size}",
        },
    )
    text = write_results_table(
        None,
        pivot(config, rows),
        title="Outer-trained MQAR recall: held-out accuracy by number of key-value pairs",
        notes=notes,
        float_format=".4g",
    )
    write_outputs(
        run.out_dir,
        rows,
        text=text,
        plot_name="recall.png",
        series=recall_series(rows),
    )
    plot_recall(  # the same plot with a chance line and the pair counts as ticks, over it
        run.out_dir / "recall.png", config, rows
    )
    report(run.out_dir, text, total)
    return rows


if __name__ == "__main__":
    main()
