"""The experiment runner: configs and presets, the training loop, orbax checkpoints, metrics,
plots, progress and the data-parallel device mesh.

Example (an experiment script)::

    run = parse_args(Config, PRESETS)                   # --preset/--resume/--out/--set ...
    result = train(run.config, init_params=..., loss_fn=..., get_batch=..., optimizer=...,
                   eval_fn=..., **run.train_kwargs())
    write_results_table(run.out_dir / "results.md", rows, title="...",
                        notes={"preset": run.preset, "machine": describe_machine()})
    plot_metric(run.out_dir / "loss.png", result.history, "loss")
"""

from memjax.train.checkpoint import Checkpointer, abstract_like, load_pytree, save_pytree
from memjax.train.config import (
    ConfigError,
    RunArgs,
    TrainConfig,
    apply_overrides,
    build_config,
    config_to_dict,
    load_config,
    parse_args,
    parse_value,
)
from memjax.train.loop import TrainResult, make_train_step, train
from memjax.train.mesh import (
    DATA_AXIS,
    data_mesh,
    initialize_distributed,
    replicate,
    shard_batch,
)
from memjax.train.metrics import (
    MetricsLogger,
    describe_machine,
    plot_lines,
    plot_metric,
    read_jsonl,
    to_float,
    truncate_jsonl,
    write_results_table,
)
from memjax.train.progress import Progress, use_progress_bar

__all__ = [
    "DATA_AXIS",
    "Checkpointer",
    "ConfigError",
    "MetricsLogger",
    "Progress",
    "RunArgs",
    "TrainConfig",
    "TrainResult",
    "abstract_like",
    "apply_overrides",
    "build_config",
    "config_to_dict",
    "data_mesh",
    "describe_machine",
    "initialize_distributed",
    "load_config",
    "load_pytree",
    "make_train_step",
    "parse_args",
    "parse_value",
    "plot_lines",
    "plot_metric",
    "read_jsonl",
    "replicate",
    "save_pytree",
    "shard_batch",
    "to_float",
    "train",
    "truncate_jsonl",
    "use_progress_bar",
    "write_results_table",
]
