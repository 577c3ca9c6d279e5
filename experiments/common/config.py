"""Config blocks shared by the experiments: the long-run schedule, the full-size MQAR task, the
gpu/tpu presets built from one full-size block, and the per-variant runner arguments.

Example:
    >>> from experiments.common.config import LONG_RUN, accelerator_presets
    >>> presets = accelerator_presets({}, {**LONG_RUN, "d_model": 256},
    ...                               gpu={"batch_size": 64}, tpu={"batch_size": 128})
    >>> list(presets), presets["tpu"]["batch_size"], presets["gpu"]["steps"]
    (['cpu', 'gpu', 'tpu'], 128, 5000)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LONG_RUN", "MQAR_BATCH_SIZES", "MQAR_FULL_SIZE", "accelerator_presets", "variant_run"]

LONG_RUN: dict[str, Any] = {"steps": 5000, "log_every": 100, "checkpoint_every": 1000}
"""The schedule of every full-size (gpu/tpu) run: 5,000 steps, a log line every 100 steps and a
checkpoint every 1,000."""

MQAR_FULL_SIZE: dict[str, Any] = {
    **LONG_RUN,
    "d_model": 128,
    "num_layers": 2,
    "kv_pairs": (8, 16, 32, 64, 128),
    "seq_len": 512,
    "vocab_size": 8192,
    "eval_batches": 16,
}
"""The full-size MQAR task and model frame (Zoology's scale) of the MQAR experiments."""

MQAR_BATCH_SIZES: dict[str, dict[str, Any]] = {
    "gpu": {"batch_size": 256},
    "tpu": {"batch_size": 512},
}
"""The MQAR batch size per accelerator preset (``accelerator_presets(..., **MQAR_BATCH_SIZES)``)."""


def accelerator_presets(
    cpu: Mapping[str, Any],
    full: Mapping[str, Any],
    *,
    gpu: Mapping[str, Any] | None = None,
    tpu: Mapping[str, Any] | None = None,
    **others: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """The presets of :func:`memjax.train.parse_args`: ``cpu``, then any ``others`` (e.g.
    ``nanogpt``), then ``gpu`` and ``tpu``, each the ``full`` block updated with its own values."""
    return {
        "cpu": dict(cpu),
        **{name: dict(values) for name, values in others.items()},
        "gpu": {**full, **(gpu or {})},
        "tpu": {**full, **(tpu or {})},
    }


def variant_run(run, name: str) -> dict[str, Any]:
    """:meth:`RunArgs.train_kwargs <memjax.train.RunArgs.train_kwargs>` for the variant ``name``:
    its runner files go to ``run.out_dir / name`` and ``config.json`` records the variant."""
    kwargs = run.train_kwargs()
    kwargs["out_dir"] = run.out_dir / name
    kwargs["run_info"] = {**kwargs["run_info"], "variant": name}
    return kwargs
