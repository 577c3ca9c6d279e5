"""Titans Table-5-shaped ablations of the LMM on tiny-shakespeare character modelling.

Variants (each a :class:`~memjax.models.sequence_model.SequenceModel` around
:class:`~memjax.models.titans.lmm.TitansLMM`, see :class:`experiments.titans.common.LMMOptions`):

* ``lmm``: the full LMM (deep memory ``L_M = 2``, momentum, decay, causal conv width 4, 4
  persistent tokens);
* ``+mac`` / ``+mag`` / ``+mal``: the hybrids (:func:`memjax.models.titans.build_model`, with
  ``window`` as the sliding window and the MAC segment size);
* ``linear memory``: ``L_M = 1``;
* ``w/o convolution``: ``conv_width = 0``;
* ``w/o momentum``: ``η_t = 0`` (control ``eta=0``, overriding the gate);
* ``w/o weight decay``: ``α_t = 0`` (control ``alpha=0``);
* ``w/o persistent memory``: ``num_persistent = 0``.

Every variant is trained as a character language model on tiny-shakespeare (same data, seed and
steps for all, :func:`experiments.common.char_lm.shakespeare_batches`) and scored by its
validation loss over ``eval_batches`` fixed validation windows — the counterpart of the paper's
perplexity column (its reasoning and long-context columns need the 170M-760M models). Every
preset runs every row (``--set "variants=(lmm,+mag)"`` picks some). Writes ``results.md``,
``train_loss.png`` (training-loss curves) and ``summary.json``.

``python -m experiments.titans.ablations [--preset cpu|gpu|tpu] [--resume]``
"""

from __future__ import annotations

import dataclasses
import math
import time

from experiments.common.char_lm import VOCAB_SIZE, shakespeare_batches, train_lm, val_loss_fn
from experiments.common.config import LONG_RUN, accelerator_presets
from experiments.common.models import count_params
from experiments.common.outputs import report, run_notes, write_outputs
from experiments.titans.common import LMMOptions
from memjax.models.titans import build_model
from memjax.train import TrainConfig, parse_args

VARIANTS = {
    "lmm": LMMOptions(),
    "+mac": "mac",
    "+mag": "mag",
    "+mal": "mal",
    "linear memory": LMMOptions(depth=1),
    "w/o convolution": LMMOptions(conv_width=0),
    "w/o momentum": LMMOptions(momentum=False),
    "w/o weight decay": LMMOptions(decay=False),
    "w/o persistent memory": LMMOptions(num_persistent=0),
}


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    variants: tuple[str, ...] = tuple(VARIANTS)
    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 1
    window: int = 16
    block_size: int = 64
    batch_size: int = 16
    learning_rate: float = 3e-3
    eval_batches: int = 10
    steps: int = 200
    log_every: int = 50
    checkpoint_every: int = 200


_BIG = {
    **LONG_RUN,
    "d_model": 256,
    "num_heads": 4,
    "num_layers": 4,
    "window": 64,
    "block_size": 256,
    "learning_rate": 1e-3,
    "eval_batches": 50,
}
PRESETS = accelerator_presets({}, _BIG, gpu={"batch_size": 64}, tpu={"batch_size": 128})


def model_for(config: Config, variant: str):
    """The variant's model: an ablated LMM (:meth:`LMMOptions.model`) or a hybrid kind."""
    spec = VARIANTS[variant]
    d, layers, heads = config.d_model, config.num_layers, config.num_heads
    if isinstance(spec, LMMOptions):
        return spec.model(VOCAB_SIZE, d, layers, num_heads=heads)
    w = config.window
    return build_model(spec, VOCAB_SIZE, d, layers, num_heads=heads, window=w, segment_size=w)


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config, PRESETS, argv, experiment="titans_ablations", description=__doc__.splitlines()[0]
    )
    config: Config = run.config
    for v in config.variants:
        if v not in VARIANTS:
            raise ValueError(f"variants: expected names from {tuple(VARIANTS)}, got {v!r}")
    get_batch, val = shakespeare_batches(config)
    start = time.perf_counter()
    rows, curves = [], {}
    for variant in config.variants:
        model = model_for(config, variant)
        folder = variant.replace("/", "").replace(" ", "_").replace("+", "plus_")
        t0 = time.perf_counter()
        result = train_lm(config, run, folder, model, get_batch, val_loss_fn(model, val))
        evals = [r for r in result.history if r["split"] == "eval"]
        train_records = [r for r in result.history if r["split"] == "train"]
        curves[variant] = ([r["step"] for r in train_records], [r["loss"] for r in train_records])
        rows.append(
            {
                "variant": variant,
                "params": count_params(model),
                "val_loss": evals[-1]["val_loss"],
                "val_ppl": math.exp(evals[-1]["val_loss"]),
                "train_s": round(time.perf_counter() - t0),
            }
        )
    total = time.perf_counter() - start
    notes = run_notes(
        run,
        total,
        {
            "task": f"tiny-shakespeare characters, {config.steps} steps x {config.batch_size} "
            f"windows of {config.block_size}, AdamW lr {config.learning_rate} (warm-up + cosine); "
            f"val loss over {config.eval_batches} x {config.batch_size} validation windows",
            "model": f"{config.num_layers} layer(s), d_model {config.d_model}, {config.num_heads} "
            "heads, memory depth 2 (expansion 4), chunk 16",
        },
    )
    text = write_outputs(
        run.out_dir,
        rows,
        title="LMM ablations: tiny-shakespeare validation loss",
        notes=notes,
        plot_name="train_loss.png",
        series=curves,
        xlabel="step",
        ylabel="training loss",
        plot_title="LMM ablations (tiny-shakespeare)",
        markers=False,
    )
    report(run.out_dir, text, total)
    return rows


if __name__ == "__main__":
    main()
