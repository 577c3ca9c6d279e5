"""MQAR capacity: the delta rule against the gated delta rule, as the number of pairs grows.

Each variant is a :class:`~memjax.models.sequence_model.SequenceModel` whose mixer is an
:class:`~memjax.models.associative.AssociativeLayer` over
:class:`~memjax.memories.linear.LinearMemory` heads with a short causal convolution:

* ``delta``: the delta rule with a data-dependent step size β_t = σ(w·k_t + b) (DeltaNet);
* ``gated_delta``: the same plus a data-dependent decay, in Gated DeltaNet's form
  (``decay_form="gated_deltanet"``).

Each variant is trained on MQAR (Zoology) with the numbers of key-value pairs in turn and
evaluated on held-out sequences at each; the accuracy over query positions as the pairs grow past
the memory's key size shows each memory's capacity. One command trains both models with the
memjax runner (checkpoints, ``--resume``, metrics JSON lines) and writes ``results.md``,
``capacity.png`` and ``summary.json`` into the run folder. MQAR training, evaluation and the
result files are :mod:`experiments.common.mqar`.
"""

from __future__ import annotations

import dataclasses

from experiments.common.config import MQAR_BATCH_SIZES, MQAR_FULL_SIZE, accelerator_presets
from experiments.common.mqar import (
    mqar_notes,
    run_mqar_variants,
    train_on_mqar,
    write_mqar_outputs,
)
from memjax.memories.linear import LinearMemory
from memjax.models.associative import AssociativeLayer
from memjax.models.sequence_model import SequenceModel
from memjax.train import TrainConfig, parse_args

VARIANTS = ("delta", "gated_delta")


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    """Experiment config; ``steps`` etc. come from :class:`memjax.train.TrainConfig`."""

    variants: tuple[str, ...] = VARIANTS
    kv_pairs: tuple[int, ...] = (4, 8, 16, 24, 32)
    vocab_size: int = 128
    seq_len: int = 96
    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 1
    conv_width: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-2
    eval_batches: int = 4


PRESETS = accelerator_presets(
    {"steps": 600, "log_every": 100, "checkpoint_every": 200}, MQAR_FULL_SIZE, **MQAR_BATCH_SIZES
)


def variant_model(config: Config, variant: str) -> SequenceModel:
    """The variant's model (see the module docstring)."""
    d_head = config.d_model // config.num_heads
    if variant == "delta":
        memory = LinearMemory(d_head, d_head, theta=0.5, gated=("theta",))
    elif variant == "gated_delta":
        memory = LinearMemory(
            d_head,
            d_head,
            theta=0.5,
            alpha=0.02,
            gated=("theta", "alpha"),
            decay_form="gated_deltanet",
        )
    else:
        raise ValueError(f"variants: expected names from {VARIANTS}, got {variant!r}")
    mixer = AssociativeLayer(
        config.d_model, config.num_heads, memory, conv_width=config.conv_width, chunk_size=32
    )
    return SequenceModel(config.vocab_size, config.d_model, config.num_layers, mixer)


def run_variant(config: Config, variant: str, run_args) -> list[dict]:
    """Train the model ``variant`` on MQAR (:func:`experiments.common.mqar.train_on_mqar`)."""
    return train_on_mqar(config, variant_model(config, variant), variant, run_args)


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config, PRESETS, argv, experiment="associative_recall", description=__doc__.splitlines()[0]
    )
    config: Config = run.config
    rows, total = run_mqar_variants(run, run_variant)
    d_head = config.d_model // config.num_heads
    notes = mqar_notes(
        run,
        total,
        {
            "model": f"{config.num_layers} layer(s), d_model {config.d_model}, "
            f"{config.num_heads} heads (d_key = {d_head}), conv {config.conv_width}",
            "task": f"MQAR, vocab {config.vocab_size}, length {config.seq_len}",
        },
    )
    write_mqar_outputs(
        run.out_dir,
        rows,
        ("variant", "kv_pairs", "accuracy", "eval_loss"),
        title="MQAR accuracy (held-out) against the number of key-value pairs",
        notes=notes,
        plot_name="capacity.png",
        plot_title=f"MQAR capacity (d_key = {d_head} per head)",
        seconds=total,
    )
    return rows


if __name__ == "__main__":
    main()
