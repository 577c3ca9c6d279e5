"""The experiment runner: configs and presets, the training loop over a :class:`TrainState`
(pluggable step functions, hooks, phases, metrics from the state), orbax checkpoints, metrics,
plots (a style per series, the legend outside), progress, the persistent compilation cache, the
``jax.export`` cache of the training step (:mod:`memjax.train.export_cache`) and the device mesh
(data parallel, FSDP).

Example (an experiment script)::

    run = parse_args(Config, PRESETS)                   # --preset/--resume/--out/--set ...
    result = train(run.config, init_params=..., loss_fn=..., get_batch=..., optimizer=...,
                   eval_fn=..., **run.train_kwargs())
    write_results_table(run.out_dir / "results.md", rows, title="...",
                        notes={"preset": run.preset, "machine": describe_machine()})
    plot_metric(run.out_dir / "loss.png", result.history, "loss")

Example (two phases: dense, then a fixed mask re-applied by a hook after every update):
    >>> import tempfile, jax.numpy as jnp, numpy as np, optax
    >>> from memjax.train import Phase, TrainConfig, train
    >>> def loss_fn(params, batch, key):
    ...     return jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2)
    >>> def get_batch(step):
    ...     x = np.random.default_rng(step).normal(size=(8, 4)).astype(np.float32)
    ...     return {"x": x, "y": x @ np.array([2.0, 0.1, -1.0, 0.0], np.float32)}
    >>> def prune(state):  # keep the 2 largest weights; the mask goes to model_state
    ...     w = state.params["w"]
    ...     mask = jnp.abs(w) >= jnp.sort(jnp.abs(w))[-2]
    ...     return state._replace(params={"w": w * mask}, model_state=mask)
    >>> keep_mask = lambda s: s._replace(params={"w": s.params["w"] * s.model_state})
    >>> phases = [Phase("dense", 40), Phase("sparse", 20, transition=prune, hooks=(keep_mask,))]
    >>> result = train(TrainConfig(log_every=20), init_params=lambda key: {"w": jnp.zeros(4)},
    ...                loss_fn=loss_fn, optimizer=optax.adam(0.1), get_batch=get_batch,
    ...                phases=phases, out_dir=tempfile.mkdtemp(), progress=False)
    >>> (result.params["w"] != 0).tolist(), [r["phase"] for r in result.history]
    ([True, False, True, False], ['dense', 'dense', 'sparse'])
"""

from memjax.train.cache import (
    CACHE_ENV,
    compilation_cache_hits,
    default_cache_dir,
    disable_compilation_cache,
    enable_compilation_cache,
)
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
from memjax.train.export_cache import EXPORT_ENV, export_cache_dir
from memjax.train.loop import TrainResult, train
from memjax.train.mesh import (
    DATA_AXIS,
    MODEL_AXIS,
    data_mesh,
    fsdp_mesh,
    fsdp_spec,
    initialize_distributed,
    replicate,
    shard_batch,
    shard_state,
    state_shardings,
)
from memjax.train.metrics import (
    MetricsLogger,
    describe_machine,
    read_jsonl,
    to_float,
    truncate_jsonl,
    write_results_table,
)
from memjax.train.phases import Phase
from memjax.train.plots import draw_lines, legend_outside, plot_lines, plot_metric, series_styles
from memjax.train.progress import Progress, use_progress_bar
from memjax.train.session import TrainingInterrupted, install_cli_handler, read_run_seconds
from memjax.train.state import TrainState, step_key
from memjax.train.steps import Hook, StepFn, make_supervised_step, make_train_step

__all__ = [
    "CACHE_ENV",
    "DATA_AXIS",
    "EXPORT_ENV",
    "MODEL_AXIS",
    "Checkpointer",
    "ConfigError",
    "Hook",
    "MetricsLogger",
    "Phase",
    "Progress",
    "RunArgs",
    "StepFn",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainingInterrupted",
    "abstract_like",
    "apply_overrides",
    "build_config",
    "compilation_cache_hits",
    "config_to_dict",
    "data_mesh",
    "default_cache_dir",
    "describe_machine",
    "disable_compilation_cache",
    "draw_lines",
    "enable_compilation_cache",
    "export_cache_dir",
    "fsdp_mesh",
    "fsdp_spec",
    "initialize_distributed",
    "install_cli_handler",
    "legend_outside",
    "load_config",
    "load_pytree",
    "make_supervised_step",
    "make_train_step",
    "parse_args",
    "parse_value",
    "plot_lines",
    "plot_metric",
    "read_jsonl",
    "read_run_seconds",
    "replicate",
    "save_pytree",
    "series_styles",
    "shard_batch",
    "shard_state",
    "state_shardings",
    "step_key",
    "to_float",
    "train",
    "truncate_jsonl",
    "use_progress_bar",
    "write_results_table",
]
