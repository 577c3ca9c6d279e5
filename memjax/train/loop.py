"""The generic training loop: jitted ``value_and_grad`` + optax, checkpoints, metrics, resume.

:func:`train` runs ``config.steps`` optimizer updates of any parameter pytree (plain dicts, Flax
NNX ``nnx.split`` state, Equinox ``eqx.partition`` arrays) and writes the run folder::

    out_dir/config.json      the config (and run info: preset, devices, jax version)
    out_dir/metrics.jsonl    {"step", "split": "train"|"eval", "loss", ...} per logged step
    out_dir/checkpoints/<step>/   orbax checkpoints: params, opt_state, step, PRNG key data

Conventions that make a resumed run bitwise identical to an uninterrupted one:

* step ``s`` (0-based) uses ``batch = get_batch(s)`` and the key ``fold_in(train_key, s)``, so
  neither depends on where the run was resumed; ``get_batch`` must be a pure function of
  ``(seed, s)``;
* a record's ``"step"`` is the number of updates done (``s + 1``); a checkpoint at step ``n``
  holds the state after ``n`` updates; checkpoints every ``config.checkpoint_every`` steps and at
  the last step;
* on resume from checkpoint ``n`` the metrics file keeps only the records the uninterrupted run
  would have written up to step ``n`` (later lines, and the off-schedule lines of a run that ended
  at ``n``, are dropped) before new lines are appended.

Non-finite values never travel: the jitted step applies an update only when the loss and the
gradient norm are finite, otherwise it freezes the state and remembers the step on device (no
per-step host sync). The loop checks that flag before every log, eval and checkpoint, and raises
``FloatingPointError`` naming the step; nothing computed after it is saved or logged.

Example:
    >>> import tempfile, jax, jax.numpy as jnp, numpy as np, optax
    >>> from memjax.train import TrainConfig, train
    >>> def init_params(key):
    ...     return {"w": jax.random.normal(key, (3,)), "b": jnp.zeros(())}
    >>> def loss_fn(params, batch, key):
    ...     pred = batch["x"] @ params["w"] + params["b"]
    ...     loss = jnp.mean((pred - batch["y"]) ** 2)
    ...     return loss, {"rmse": jnp.sqrt(loss)}
    >>> def get_batch(step):
    ...     x = np.random.default_rng(step).normal(size=(16, 3)).astype(np.float32)
    ...     return {"x": x, "y": x @ np.array([1.0, -2.0, 0.5], np.float32)}
    >>> result = train(TrainConfig(steps=30, log_every=10, checkpoint_every=15),
    ...                init_params=init_params, loss_fn=loss_fn, get_batch=get_batch,
    ...                optimizer=optax.adam(0.1), out_dir=tempfile.mkdtemp(), progress=False)
    >>> [r["step"] for r in result.history]
    [10, 20, 30]
"""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from memjax.train.checkpoint import Checkpointer, remove_checkpoints
from memjax.train.config import config_to_dict
from memjax.train.mesh import data_mesh, replicate, shard_batch
from memjax.train.metrics import MetricsLogger, read_jsonl, truncate_jsonl
from memjax.train.progress import Progress

__all__ = ["TrainResult", "make_train_step", "train"]

_LOOP_FIELDS = ("seed", "steps", "log_every", "eval_every", "checkpoint_every", "max_to_keep")


class TrainResult(NamedTuple):
    """What :func:`train` returns."""

    params: Any
    opt_state: Any
    history: list[dict[str, Any]]
    out_dir: Path
    step: int


def _loop_settings(config: Any) -> dict[str, int]:
    settings = {}
    for name in _LOOP_FIELDS:
        if not hasattr(config, name):
            raise TypeError(
                f"train: config {type(config).__name__} has no field {name!r}; the loop reads "
                f"{list(_LOOP_FIELDS)} (subclass memjax.train.TrainConfig)"
            )
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"train: config.{name} must be an int, got {value!r}")
        settings[name] = value
    for name, low in (("steps", 0), ("log_every", 1), ("eval_every", 0),
                      ("checkpoint_every", 1), ("max_to_keep", 1)):
        if settings[name] < low:
            raise ValueError(f"train: config.{name} must be >= {low}, got {settings[name]}")
    return settings


def make_train_step(
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    *,
    donate: bool = False,
) -> Callable[..., Any]:
    """The jitted step ``(params, opt_state, key, step, batch, bad) -> (params, opt_state, loss,
    aux, bad)``.

    ``loss_fn(params, batch, key)`` returns ``loss`` or ``(loss, aux_dict)``; the key used is
    ``fold_in(key, step)``. ``bad`` is an int32 scalar: -1 while every step was finite, else the
    1-based step whose loss or gradient norm was not finite; from then on the state is frozen.
    """

    def loss_with_aux(params, batch, key):
        out = loss_fn(params, batch, key)
        if isinstance(out, tuple):
            if len(out) != 2:
                raise TypeError("loss_fn must return loss or (loss, aux_metrics_dict)")
            loss, aux = out
        else:
            loss, aux = out, {}
        loss = jnp.asarray(loss)
        if loss.shape != ():
            raise TypeError(f"loss_fn must return a scalar loss, got shape {loss.shape}")
        return loss, ({} if aux is None else dict(aux))

    def step_fn(params, opt_state, key, step, batch, bad):
        step_key = jax.random.fold_in(key, step)
        (loss, aux), grads = jax.value_and_grad(loss_with_aux, has_aux=True)(
            params, batch, step_key
        )
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
        ok = finite & (bad < 0)

        def keep_good(new, old):
            return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)

        new_bad = jnp.where((bad < 0) & ~finite, step + 1, bad).astype(jnp.int32)
        return (keep_good(new_params, params), keep_good(new_opt_state, opt_state),
                loss, aux, new_bad)

    return jax.jit(step_fn, donate_argnums=(0, 1) if donate else ())


_cached_train_step = functools.lru_cache(maxsize=16)(make_train_step)


def _train_step_for(loss_fn, optimizer, donate):
    """The jitted step, reused across ``train`` calls with the same loss_fn and optimizer
    objects (so a resumed run or a sweep in one process compiles once)."""
    try:
        return _cached_train_step(loss_fn, optimizer, donate=donate)
    except TypeError:  # unhashable loss_fn/optimizer
        return make_train_step(loss_fn, optimizer, donate=donate)


def _on_schedule(settings: Mapping[str, int], start: int) -> Callable[[dict[str, Any]], bool]:
    """Whether an existing metrics record would be written by an uninterrupted run."""

    def keep(rec: dict[str, Any]) -> bool:
        step, split = rec["step"], rec.get("split")
        if step < start or step == settings["steps"]:
            return True
        if split == "train":
            return step % settings["log_every"] == 0
        if split == "eval":
            return settings["eval_every"] > 0 and step % settings["eval_every"] == 0
        return True

    return keep


def _write_config(out_dir: Path, config: Any, run_info: Mapping[str, Any], resume: bool) -> None:
    path = out_dir / "config.json"
    cfg = config_to_dict(config) if dataclasses.is_dataclass(config) else dict(vars(config))
    if resume and path.exists():
        try:
            old = json.loads(path.read_text()).get("config", {})
        except (json.JSONDecodeError, AttributeError):
            old = {}
        changed = sorted(
            k for k in set(old) | set(cfg) if k != "steps" and old.get(k) != cfg.get(k)
        )
        if changed:
            warnings.warn(f"train: resuming {out_dir} with a config that differs in {changed}",
                          stacklevel=3)
    info = {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        **dict(run_info),
    }
    path.write_text(json.dumps({"config": cfg, "run": info}, indent=2, default=str) + "\n")


def train(
    config: Any,
    *,
    init_params: Callable[[jax.Array], Any],
    loss_fn: Callable[[Any, Any, jax.Array], Any],
    get_batch: Callable[[int], Any],
    optimizer: optax.GradientTransformation,
    out_dir: str | Path,
    eval_fn: Callable[[Any], Mapping[str, Any]] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    data_parallel: bool = False,
    mesh: jax.sharding.Mesh | None = None,
    run_info: Mapping[str, Any] | None = None,
    async_checkpoints: bool = True,
    donate: bool | None = None,
) -> TrainResult:
    """Trains ``init_params(key)`` with ``optimizer`` on ``loss_fn`` for ``config.steps`` steps.

    Args:
        config: a dataclass with the fields of :class:`memjax.train.TrainConfig` (``seed``,
            ``steps``, ``log_every``, ``eval_every``, ``checkpoint_every``, ``max_to_keep``).
        init_params: ``key -> params`` (any pytree of arrays). The root key
            ``jax.random.key(config.seed)`` is split into the init key and the train key.
        loss_fn: ``(params, batch, key) -> (loss, aux_metrics_dict)`` (or just ``loss``); aux
            values must be scalars; they are logged beside ``loss``.
        get_batch: ``step -> batch`` for the 0-based step, a pure function of (seed, step). With
            data parallelism across processes it returns the process-local part of the batch.
        optimizer: an optax ``GradientTransformation``.
        out_dir: the run folder.
        eval_fn: ``params -> {name: scalar}``, run every ``config.eval_every`` steps and at the
            last step; logged with ``"split": "eval"``.
        resume: continue from the latest checkpoint in ``out_dir`` (a fresh start when there is
            none); a run that is already complete returns the restored state at once.
        overwrite: delete ``out_dir``'s checkpoints and metrics first. Without ``resume`` or
            ``overwrite``, a run folder that holds checkpoints is an error.
        progress: show a progress bar (plain lines when ``False``, not a TTY, or ``CI`` is set).
        data_parallel: shard each batch over all devices (``mesh`` gives a specific mesh).
        run_info: extra entries for ``config.json``'s ``"run"`` object (experiment, preset).
        async_checkpoints: write checkpoints in a background thread.
        donate: donate the params/optimizer buffers to the step (default: on GPU/TPU only).

    Returns:
        ``TrainResult(params, opt_state, history, out_dir, step)``; ``history`` is the list of
        all metric records of the run (those before a resume included).

    Raises:
        FloatingPointError: the loss or gradient became non-finite (names the step).
        FileExistsError: ``out_dir`` has checkpoints and neither ``resume`` nor ``overwrite``.
    """
    settings = _loop_settings(config)
    steps = settings["steps"]
    out_dir = Path(out_dir)
    run_info = dict(run_info or {})
    is_main = jax.process_index() == 0
    if mesh is None and data_parallel:
        mesh = data_mesh()
    if donate is None:
        donate = jax.default_backend() != "cpu"

    ckpt_dir, metrics_path = out_dir / "checkpoints", out_dir / "metrics.jsonl"
    if overwrite and is_main:
        remove_checkpoints(ckpt_dir)
        metrics_path.unlink(missing_ok=True)
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)

    root = jax.random.key(settings["seed"])
    init_key, train_key = jax.random.split(root)
    params = init_params(init_key)
    state = {
        "params": params,
        "opt_state": optimizer.init(params),
        "step": jnp.asarray(0, jnp.int32),
        "key": train_key,
    }
    if mesh is not None:
        state = replicate(state, mesh)

    ckpt = Checkpointer(ckpt_dir, max_to_keep=settings["max_to_keep"],
                        async_save=async_checkpoints)
    try:
        latest = ckpt.latest_step
        if latest is not None and not resume:
            raise FileExistsError(
                f"train: run folder {out_dir} already has checkpoints (latest step {latest}); "
                "pass resume=True (--resume) to continue, overwrite=True (--overwrite) to start "
                "over, or another out_dir (--out)"
            )
        start = 0
        if resume and latest is not None:
            state = ckpt.restore(like=state, step=latest)
            start = int(state["step"])
        if is_main:
            _write_config(out_dir, config, {"data_parallel": mesh is not None, **run_info},
                          resume)
            if resume:
                history = truncate_jsonl(metrics_path, start, keep=_on_schedule(settings, start))
            else:
                history = []
                metrics_path.unlink(missing_ok=True)
        else:
            history = []

        if start >= steps:
            if start > steps:
                warnings.warn(f"train: checkpoint step {start} is past config.steps={steps}; "
                              "returning the restored state", stacklevel=2)
            return TrainResult(state["params"], state["opt_state"], read_jsonl(metrics_path)
                               if is_main else history, out_dir, start)

        params, opt_state, new_records = _run(
            state, start, settings, ckpt, metrics_path, is_main, mesh,
            _train_step_for(loss_fn, optimizer, donate), get_batch, eval_fn, progress,
            str(run_info.get("experiment", out_dir.name)),
        )
        return TrainResult(params, opt_state, history + new_records, out_dir, steps)
    finally:
        ckpt.close()


def _run(state, start, settings, ckpt, metrics_path, is_main, mesh, step_fn, get_batch, eval_fn,
         progress, desc):
    """The step loop; returns (params, opt_state, records written)."""
    steps, log_every = settings["steps"], settings["log_every"]
    eval_every, checkpoint_every = settings["eval_every"], settings["checkpoint_every"]
    params, opt_state, key = state["params"], state["opt_state"], state["key"]
    bad = jnp.asarray(-1, jnp.int32)
    if mesh is not None:
        bad = replicate(bad, mesh)
    logger = MetricsLogger(metrics_path, mode="a", enabled=is_main)
    bar = Progress(steps, initial=start, enabled=progress, every=log_every, desc=desc,
                   quiet=not is_main)
    try:
        for s in range(start, steps):
            batch = get_batch(s)
            if mesh is not None:
                batch = shard_batch(batch, mesh)
            params, opt_state, loss, aux, bad = step_fn(
                params, opt_state, key, jnp.asarray(s, jnp.int32), batch, bad
            )
            done = s + 1
            is_log = done % log_every == 0 or done == steps
            is_eval = eval_fn is not None and (
                (eval_every > 0 and done % eval_every == 0) or done == steps
            )
            is_ckpt = done % checkpoint_every == 0 or done == steps
            if is_log or is_eval or is_ckpt:
                bad_step = int(bad)
                if bad_step >= 0:
                    last = ckpt.latest_step
                    raise FloatingPointError(
                        f"train: non-finite loss or gradient at step {bad_step} (step index "
                        f"{bad_step - 1}); no update from that step on was applied, logged or "
                        f"checkpointed. Last checkpoint: "
                        f"{'none' if last is None else f'step {last}'} in {ckpt.directory}"
                    )
            shown = None
            if is_log:
                rec = logger.log(done, "train", {"loss": loss, **aux})
                shown = {k: v for k, v in rec.items() if k not in ("step", "split")}
            bar.update(done, shown)
            if is_eval:
                logger.log(done, "eval", dict(eval_fn(params)))
            if is_ckpt:
                step_arr = jnp.asarray(done, jnp.int32)
                if mesh is not None:
                    step_arr = replicate(step_arr, mesh)
                ckpt.save(done, {"params": params, "opt_state": opt_state, "step": step_arr,
                                 "key": key})
    finally:
        bar.close()
        logger.close()
    return params, opt_state, logger.history
