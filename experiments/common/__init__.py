"""Pieces shared by the experiments, kept in one place so that no experiment imports another's
script:

* :mod:`~experiments.common.config` — config blocks (the long-run schedule, the full-size MQAR
  task, gpu/tpu presets) and per-variant runner arguments;
* :mod:`~experiments.common.mqar` — MQAR training, evaluation, notes and result files;
* :mod:`~experiments.common.char_lm` — character-level batches, losses, validation and training;
* :mod:`~experiments.common.models` — parameter counts;
* :mod:`~experiments.common.outputs` — ``results.md``, the plot and ``summary.json``.

Models come from the library (:func:`memjax.models.titans.build_model`); paper-specific shared
pieces live beside their experiments (``experiments/titans/common.py``,
``experiments/sparsey/common.py``).
"""

from experiments.common.char_lm import (
    VOCAB_SIZE as VOCAB_SIZE,
    batch_logits as batch_logits,
    masked_metrics as masked_metrics,
    shakespeare_batches as shakespeare_batches,
    train_lm as train_lm,
    val_loss_fn as val_loss_fn,
)
from experiments.common.config import (
    LONG_RUN as LONG_RUN,
    MQAR_BATCH_SIZES as MQAR_BATCH_SIZES,
    MQAR_FULL_SIZE as MQAR_FULL_SIZE,
    accelerator_presets as accelerator_presets,
    variant_run as variant_run,
)
from experiments.common.models import count_params as count_params
from experiments.common.mqar import (
    mqar_loss_and_accuracy as mqar_loss_and_accuracy,
    mqar_notes as mqar_notes,
    run_mqar_variants as run_mqar_variants,
    train_on_mqar as train_on_mqar,
    write_mqar_outputs as write_mqar_outputs,
)
from experiments.common.outputs import (
    report as report,
    run_notes as run_notes,
    write_outputs as write_outputs,
)

__all__ = [
    "LONG_RUN",
    "MQAR_BATCH_SIZES",
    "MQAR_FULL_SIZE",
    "VOCAB_SIZE",
    "accelerator_presets",
    "batch_logits",
    "count_params",
    "masked_metrics",
    "mqar_loss_and_accuracy",
    "mqar_notes",
    "run_mqar_variants",
    "run_notes",
    "shakespeare_batches",
    "train_lm",
    "train_on_mqar",
    "val_loss_fn",
    "variant_run",
    "write_mqar_outputs",
    "write_outputs",
]
