"""Outer-trained MQAR recall: Titans LMM (L_M = 2 and L_M = 1, Table-5 ablations) against the
gated delta rule and attention.

Every model is a one-layer :class:`~memjax.models.sequence_model.SequenceModel` (d_model 32, 2
heads, so keys/values of size 16 per head) trained end to end on MQAR (Zoology,
:func:`memjax.data.mqar`) with the numbers of key-value pairs of ``kv_pairs`` in turn, then
evaluated on held-out sequences at each pair count:

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
  of attention cannot do MQAR: the value's position must first learn its preceding key).

One command trains every variant with the memjax runner (checkpoints, ``--resume``, metrics JSON
lines) and writes ``results.md``, ``recall.png`` and ``summary.json`` into the run folder
(default ``runs/titans_recall/<preset>/``).

``python -m experiments.titans.recall [--preset cpu|gpu|tpu] [--resume] [--out DIR] [--set k=v]``
"""

from __future__ import annotations

import dataclasses
import itertools
import time

from experiments.common.config import MQAR_BATCH_SIZES, MQAR_FULL_SIZE, accelerator_presets
from experiments.common.models import count_params
from experiments.common.mqar import (
    mqar_notes,
    run_mqar_variants,
    train_on_mqar,
    write_mqar_outputs,
)
from experiments.titans.common import Controlled
from memjax.models.sequence_model import SequenceModel
from memjax.models.titans import build_model
from memjax.models.titans.lmm import TitansLMM
from memjax.train import TrainConfig, parse_args

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
)
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

    variants: tuple[str, ...] = VARIANTS
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
    learning_rate: float = 1e-2
    eval_batches: int = 2


PRESETS = accelerator_presets(
    {"steps": 400, "log_every": 100, "checkpoint_every": 400},
    {**MQAR_FULL_SIZE, "attention_layers": 2, "chunk_size": 64, "remat": True},
    **MQAR_BATCH_SIZES,
)


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
    start = time.perf_counter()
    rows = train_on_mqar(config, model, variant, run_args)
    seconds = time.perf_counter() - start
    extra = {
        "params": count_params(model),
        "state per head": memory_size(config, variant),
        "seconds": round(seconds, 1),
    }
    return [{**row, **extra} for row in rows]


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config, PRESETS, argv, experiment="titans_recall", description=__doc__.splitlines()[0]
    )
    config: Config = run.config
    rows, total = run_mqar_variants(run, run_variant)
    d_head = config.d_model // config.num_heads
    changed = [v for v in config.variants if LMM_FIELDS.get(v) or v in LMM_CONTROLS]
    notes = mqar_notes(
        run,
        total,
        {
            "model": f"{config.num_layers} layer(s) ({config.attention_layers} for attention), "
            f"d_model {config.d_model}, {config.num_heads} heads (d_head = {d_head}), "
            f"conv {config.conv_width}",
            "lmm settings": f"chunk {config.chunk_size}, TitansLMM defaults except "
            + "; ".join(f"{v}: {LMM_FIELDS[v] or dict(LMM_CONTROLS[v])}" for v in changed),
            "task": f"MQAR, vocab {config.vocab_size}, length {config.seq_len}, pairs "
            f"{config.kv_pairs} in turn; chance = 1/{config.vocab_size // 2}",
            "optimizer": f"AdamW lr {config.learning_rate}, weight decay 0.01, batch "
            f"{config.batch_size}",
        },
    )
    write_mqar_outputs(
        run.out_dir,
        rows,
        ("variant", "kv_pairs", "accuracy", "eval_loss", "params", "state per head"),
        title="Outer-trained MQAR recall (held-out accuracy) against the number of pairs",
        notes=notes,
        plot_name="recall.png",
        plot_title=f"MQAR recall after {config.steps} steps (d_head = {d_head})",
        seconds=total,
    )
    return rows


if __name__ == "__main__":
    main()
