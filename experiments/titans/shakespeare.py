"""Character-level language modelling on tiny-shakespeare: a small Titans model against an
attention baseline at equal parameter count and step budget.

Both are :func:`memjax.models.titans.build_model` models (embedding → pre-norm blocks of
[mixer + MLP] → read-out) trained with AdamW on random ``block_size`` windows of the training
split (:func:`experiments.common.char_lm.shakespeare_batches`, nanoGPT's 90/10 split): the
baseline (``baseline``, default full causal attention with RoPE) at ``d_model``, and each Titans
kind of ``models`` at the width whose parameter count is closest to the baseline's (within
``param_tolerance``). Validation loss is the mean next-token cross-entropy over
``eval_batches`` fixed validation windows. Writes ``results.md``, ``val_loss.png`` and
``summary.json``.

For scale: nanoGPT's CPU configuration (4 layers, 4 heads, width 128, block 64, batch 12,
2,000 iterations) reports a validation loss of about 1.88; the ``nanogpt`` preset is that budget.
``lmm_conv_init`` / ``lmm_residual_norm`` set the LMM's two open choices (``TitansLMM.conv_init``,
``residual_norm``) for the ``lmm`` kind, e.g. ``--set lmm_conv_init=uniform``.

``python -m experiments.titans.shakespeare [--preset cpu|nanogpt|gpu|tpu] [--resume]``
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from experiments.common.char_lm import VOCAB_SIZE, shakespeare_batches, train_lm, val_loss_fn
from experiments.common.config import LONG_RUN, accelerator_presets
from experiments.common.models import count_params
from experiments.common.outputs import report, run_notes, write_outputs
from experiments.titans.common import LMMOptions
from memjax.models.titans import build_model
from memjax.train import TrainConfig, parse_args

NANOGPT_VAL_LOSS = 1.88


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    models: tuple[str, ...] = ("lmm",)
    baseline: str = "attention"
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    window: int = 16
    block_size: int = 64
    batch_size: int = 12
    learning_rate: float = 1e-3
    param_tolerance: float = 0.1
    eval_batches: int = 20
    steps: int = 500
    log_every: int = 100
    eval_every: int = 250
    checkpoint_every: int = 500
    # the LMM's two open choices (TitansLMM conv_init / residual_norm) for the "lmm" kind
    lmm_conv_init: str = LMMOptions.conv_init
    lmm_residual_norm: bool = LMMOptions.residual_norm


_FULL_SIZE = {
    **LONG_RUN,
    "models": ("lmm", "mac", "mag", "mal"),
    "d_model": 384,
    "num_layers": 6,
    "num_heads": 6,
    "window": 64,
    "block_size": 256,
    "batch_size": 64,
    "eval_batches": 50,
    "eval_every": 500,
}
PRESETS = accelerator_presets(
    {}, _FULL_SIZE, nanogpt={"steps": 2000, "eval_every": 500, "checkpoint_every": 500}
)


def make(config: Config, kind: str, d_model: int):
    """The ``kind`` model at width ``d_model`` (``lmm``: with the config's two open choices)."""
    layers, heads = config.num_layers, config.num_heads
    if kind == "lmm":
        lmm = LMMOptions(conv_init=config.lmm_conv_init, residual_norm=config.lmm_residual_norm)
        return lmm.model(VOCAB_SIZE, d_model, layers, num_heads=heads)
    w = config.window
    return build_model(kind, VOCAB_SIZE, d_model, layers, num_heads=heads, window=w, segment_size=w)


def matched_width(config: Config, kind: str, target: int) -> int:
    """The ``d_model`` (a multiple of ``2 num_heads``) whose ``kind`` model has the parameter
    count closest to ``target``."""
    step = 2 * config.num_heads
    low = max(step, (config.d_model // 2) // step * step)
    widths = range(low, 2 * config.d_model + 1, step)
    return min(widths, key=lambda d: abs(count_params(make(config, kind, d)) - target))


def main(argv=None) -> list[dict]:
    run = parse_args(
        Config, PRESETS, argv, experiment="titans_shakespeare", description=__doc__.splitlines()[0]
    )
    config: Config = run.config
    get_batch, val = shakespeare_batches(config)
    start = time.perf_counter()
    baseline = make(config, config.baseline, config.d_model)
    target = count_params(baseline)
    entries = [(config.baseline, config.d_model, baseline)]
    for kind in config.models:
        d = matched_width(config, kind, target)
        entries.append((kind, d, make(config, kind, d)))
    rows, curves = [], {}
    for kind, d, model in entries:
        params = count_params(model)
        if abs(params - target) > config.param_tolerance * target:
            raise ValueError(
                f"{kind}: no width within {config.param_tolerance:.0%} of "
                f"{target} params (closest d_model={d}: {params})"
            )
        eval_fn = val_loss_fn(model, val, average=np.mean)
        t0 = time.perf_counter()
        result = train_lm(config, run, f"{kind}_d{d}", model, get_batch, eval_fn)
        seconds = time.perf_counter() - t0
        evals = [r for r in result.history if r["split"] == "eval"]
        curves[f"{kind} (d={d})"] = ([r["step"] for r in evals], [r["val_loss"] for r in evals])
        rows.append(
            {
                "model": kind,
                "d_model": d,
                "params": params,
                "steps": config.steps,
                "val_loss": evals[-1]["val_loss"],
                "train_s": round(seconds),
            }
        )
    total = time.perf_counter() - start
    notes = run_notes(
        run,
        total,
        {
            "budget": f"{config.steps} steps x {config.batch_size} windows of {config.block_size} "
            f"characters, AdamW lr {config.learning_rate} (warm-up + cosine), "
            f"{config.num_layers} layers, {config.num_heads} heads",
            "val loss": f"mean over {config.eval_batches} x {config.batch_size} validation windows",
            "lmm": f"conv_init={config.lmm_conv_init}, residual_norm={config.lmm_residual_norm}",
            "reference": f"nanoGPT CPU config (4 layers, 4 heads, 128 wide, block 64, 2,000 "
            f"iterations): {NANOGPT_VAL_LOSS}",
        },
    )
    text = write_outputs(
        run.out_dir,
        rows,
        title="tiny-shakespeare validation loss (nats per character)",
        notes=notes,
        float_format=".3f",
        plot_name="val_loss.png",
        series=curves,
        xlabel="step",
        ylabel="validation loss",
        plot_title="tiny-shakespeare",
    )
    report(run.out_dir, text, total)
    return rows


if __name__ == "__main__":
    main()
