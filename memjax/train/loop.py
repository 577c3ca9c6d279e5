"""The generic training loop: a jitted step over a :class:`~memjax.train.TrainState`, hooks,
phases, orbax checkpoints, metrics and exact resume.

:func:`train` runs ``config.steps`` updates of any parameter pytree (plain dicts, Flax NNX
``nnx.split`` state, Equinox ``eqx.partition`` arrays) and writes the run folder::

    out_dir/config.json      the config (and run info: preset, devices, jax version, phases)
    out_dir/metrics.jsonl    {"step", "split": "train"|"eval", "loss", ...} per logged step
    out_dir/checkpoints/<step>/          orbax checkpoints: params, opt_state, step, PRNG key
                                         data (and model_state when there is one)
    out_dir/checkpoints/<phase>/<step>/  the same, per phase, in a run with ``phases``

What it can be given beyond ``loss_fn`` and ``optimizer`` (each optional):

* ``init_model_state=key -> model_state``: state that the loss writes but nobody differentiates
  (BatchNorm running statistics). It switches the loss to ``loss_fn(params, model_state, batch,
  key) -> (loss, (aux, new_model_state))`` and ``eval_fn`` to ``eval_fn(params, model_state)``;
  the key is the one ``init_params`` gets (so ``eqx.nn.make_with_state(Model)(key)[1]`` fits);
* ``step_fn=(train_state, batch) -> (train_state, metrics)``: replaces the supervised step
  (:mod:`memjax.train.steps`: contract, guard and checks);
* ``hooks=(train_state -> train_state, ...)``: run inside the jitted step after each update;
* ``metrics_fn=train_state -> {name: scalar}``: jitted, run at the log steps on the state after
  the step, its values logged beside the loss (non-zero groups, a synthetic-gradient loss kept
  in ``opt_state``...);
* ``phases=[Phase(...), ...]``: train, transform, fine-tune (:mod:`memjax.train.phases`);
* ``fsdp=N`` or a ``mesh``: data parallelism and FSDP parameter sharding (:mod:`memjax.train.mesh`).

Conventions that make a resumed run bitwise identical to an uninterrupted one:

* step ``s`` (0-based, global across phases) uses ``batch = get_batch(s)`` and the key
  ``fold_in(train_key, s)``, so neither depends on where the run was resumed; ``get_batch`` must
  be a pure function of ``(seed, s)``;
* a record's ``"step"`` is the number of updates done (``s + 1``); a checkpoint at step ``n``
  holds the state after ``n`` updates; checkpoints every ``config.checkpoint_every`` steps and at
  the last step of every phase;
* on resume from checkpoint ``n`` the metrics file keeps only the records the uninterrupted run
  would have written up to step ``n`` (later lines, and the off-schedule lines of a run that ended
  at ``n``, are dropped) before new lines are appended.

Before the first step of each phase the loop prints ``compiling ...``, compiles the step ahead
of time (``jit(...).lower(...).compile()``, whose executable the calls then reuse) and prints the
seconds it took (saying so when the executable came from the persistent compilation cache,
:mod:`memjax.train.cache`). With ``export_cache=FOLDER`` a second run also skips tracing the step
(:mod:`memjax.train.export_cache`: a ``jax.export`` serialization of the guarded step, keyed by
the config, ``run_info``, the phase, the input shapes, the versions and the sources; the
experiments' command line turns it on, ``--no-export-cache`` turns it off). That time, and the
time spent in ``eval_fn``, is left out of the progress ``it/s``. Progress lines are labelled
``<experiment>/<variant>`` from ``run_info``.

A resumed run says where it resumed. Ctrl-C raises
:class:`~memjax.train.session.TrainingInterrupted` (a ``KeyboardInterrupt`` saying the step
reached and the last checkpoint; an experiment's command line prints it instead of a
traceback). ``run_time.json`` in the run folder keeps the run's wall time over all its sessions
(``TrainResult.seconds``).

Non-finite values never travel: the jitted step applies an update only when its metrics (the loss)
and checks (the gradient norm) are finite, otherwise it freezes the state and remembers the step on
device (no per-step host sync). The loop checks that flag before every log, eval and checkpoint,
and raises ``FloatingPointError`` naming the step; nothing computed after it is saved or logged.

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
    ...                optimizer=optax.adam(0.1), out_dir=tempfile.mkdtemp(), progress=False,
    ...                metrics_fn=lambda s: {"w_norm": jnp.linalg.norm(s.params["w"])})
    >>> [r["step"] for r in result.history], sorted(result.history[-1])
    ([10, 20, 30], ['loss', 'rmse', 'split', 'step', 'w_norm'])

A hand-written step (plain SGD, no optax) and a hook that counts updates in ``model_state``:

    >>> from memjax.train import step_key
    >>> def sgd_step(state, batch):
    ...     (loss, aux), g = jax.value_and_grad(loss_fn, has_aux=True)(
    ...         state.params, batch, step_key(state))
    ...     params = jax.tree.map(lambda p, g: p - 0.1 * g, state.params, g)
    ...     return state._replace(params=params), {"loss": loss}
    >>> count = lambda s: s._replace(model_state=s.model_state + 1)
    >>> result = train(TrainConfig(steps=20, log_every=20), init_params=init_params,
    ...                init_model_state=lambda key: jnp.int32(0), step_fn=sgd_step,
    ...                hooks=(count,), get_batch=get_batch, out_dir=tempfile.mkdtemp(),
    ...                progress=False)
    >>> int(result.model_state), result.history[-1]["loss"] < 0.1
    (20, True)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from memjax.train.cache import compilation_cache_hits
from memjax.train.checkpoint import Checkpointer, remove_checkpoints
from memjax.train.config import config_to_dict
from memjax.train.export_cache import cached_init, compile_step
from memjax.train.mesh import data_mesh, fsdp_mesh, place_state, shard_batch
from memjax.train.metrics import MetricsLogger, read_jsonl, truncate_jsonl
from memjax.train.phases import (
    Phase,
    Stage,
    find_resume,
    prepare,
    rebuild,
    resolve_stages,
    saved_steps as _saved_steps,
)
from memjax.train.progress import Progress
from memjax.train.session import RunClock, TrainingInterrupted, compiling
from memjax.train.state import TrainState, to_checkpoint
from memjax.train.steps import Hook, StepFn, guard_step, jit_step, make_train_step

__all__ = ["TrainResult", "make_train_step", "train"]

_LOOP_FIELDS = ("seed", "steps", "log_every", "eval_every", "checkpoint_every", "max_to_keep")


class TrainResult(NamedTuple):
    """What :func:`train` returns (``state`` is the whole final :class:`TrainState`;
    ``seconds`` the run's wall time over all its sessions, :mod:`memjax.train.session`)."""

    params: Any
    opt_state: Any
    history: list[dict[str, Any]]
    out_dir: Path
    step: int
    model_state: Any = None
    state: TrainState | None = None
    seconds: float | None = None


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
    for name, low in (
        ("steps", 0),
        ("log_every", 1),
        ("eval_every", 0),
        ("checkpoint_every", 1),
        ("max_to_keep", 1),
    ):
        if settings[name] < low:
            raise ValueError(f"train: config.{name} must be >= {low}, got {settings[name]}")
    return settings


def _on_schedule(
    settings: Mapping[str, int], start: int, boundaries: frozenset[int]
) -> Callable[[dict[str, Any]], bool]:
    """Whether an existing metrics record would be written by an uninterrupted run."""

    def keep(rec: dict[str, Any]) -> bool:
        step, split = rec["step"], rec.get("split")
        if step < start or step in boundaries:
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
            warnings.warn(
                f"train: resuming {out_dir} with a config that differs in {changed}", stacklevel=3
            )
    info = {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        **dict(run_info),
    }
    path.write_text(json.dumps({"config": cfg, "run": info}, indent=2, default=str) + "\n")


@functools.lru_cache(maxsize=16)
def _jit_metrics(metrics_fn):
    return jax.jit(metrics_fn)


def train(
    config: Any,
    *,
    init_params: Callable[[jax.Array], Any],
    get_batch: Callable[[int], Any],
    out_dir: str | Path,
    loss_fn: Callable[..., Any] | None = None,
    optimizer: optax.GradientTransformation | None = None,
    eval_fn: Callable[..., Mapping[str, Any]] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    data_parallel: bool = False,
    mesh: jax.sharding.Mesh | None = None,
    run_info: Mapping[str, Any] | None = None,
    async_checkpoints: bool = True,
    donate: bool | None = None,
    init_model_state: Callable[[jax.Array], Any] | None = None,
    step_fn: StepFn | None = None,
    hooks: Sequence[Hook] = (),
    metrics_fn: Callable[[TrainState], Mapping[str, Any]] | None = None,
    phases: Sequence[Phase] | None = None,
    fsdp: int = 0,
    export_cache: str | os.PathLike | None = None,
) -> TrainResult:
    """Trains ``init_params(key)`` for ``config.steps`` steps (or through ``phases``).

    Args:
        config: a dataclass with the fields of :class:`memjax.train.TrainConfig` (``seed``,
            ``steps``, ``log_every``, ``eval_every``, ``checkpoint_every``, ``max_to_keep``);
            with ``phases``, ``config.steps`` is not used (the phases' steps add up to the run).
        init_params: ``key -> params`` (any pytree of arrays). The root key
            ``jax.random.key(config.seed)`` is split into the init key and the train key.
        get_batch: ``step -> batch`` for the 0-based step, a pure function of (seed, step). With
            data parallelism across processes it returns the process-local part of the batch.
        out_dir: the run folder.
        loss_fn: ``(params, batch, key) -> (loss, aux_metrics_dict)`` (or just ``loss``); aux
            values must be scalars; they are logged beside ``loss``. With ``init_model_state``:
            ``(params, model_state, batch, key) -> (loss, (aux, new_model_state))``. Not needed
            with ``step_fn``.
        optimizer: an optax ``GradientTransformation`` (``opt_state = optimizer.init(params)``);
            may be omitted with a ``step_fn`` that needs no ``opt_state``.
        eval_fn: ``params -> {name: scalar}`` (``(params, model_state) -> ...`` with
            ``init_model_state``), run every ``config.eval_every`` steps and at the end of every
            phase; logged with ``"split": "eval"``.
        resume: continue from the latest checkpoint in ``out_dir`` (a fresh start when there is
            none); a run that is already complete returns the restored state at once.
        overwrite: delete ``out_dir``'s checkpoints and metrics first. Without ``resume`` or
            ``overwrite``, a run folder that holds checkpoints is an error.
        progress: show a progress bar (plain lines when ``False``, not a TTY, or ``CI`` is set).
        data_parallel: shard each batch over all devices (``mesh`` gives a specific mesh).
        mesh: a ``"data"`` mesh, or a ``("data", "model")`` mesh for FSDP.
        run_info: extra entries for ``config.json``'s ``"run"`` object (experiment, preset).
        async_checkpoints: write checkpoints in a background thread.
        donate: donate the train state's buffers to the step (default: on GPU/TPU only).
        init_model_state: ``key -> model_state`` (called with the init key); see the module
            docstring.
        step_fn: ``(train_state, batch) -> (train_state, metrics)`` instead of the supervised
            step (:func:`memjax.train.make_supervised_step`).
        hooks: ``train_state -> train_state`` functions applied after each update, in the jit.
        metrics_fn: ``train_state -> {name: scalar}``, logged at the log steps.
        phases: a sequence of :class:`memjax.train.Phase` (see :mod:`memjax.train.phases`).
        fsdp: shard the train state over this many devices (a ``"model"`` axis; the batch over
            the remaining ``"data"`` axis); 0: off.
        export_cache: a folder for the ``jax.export`` cache of the step
            (:mod:`memjax.train.export_cache`), or ``None`` (the default): trace the step in
            every run. The key covers the config, ``run_info``, the phase, the input shapes and
            dtypes, the versions, the step function's code and captured values and the local
            sources; not used with a mesh. Results are bit-for-bit the same either way.

    Returns:
        ``TrainResult(params, opt_state, history, out_dir, step, model_state, state)``;
        ``history`` is the list of all metric records of the run (those before a resume
        included).

    Raises:
        FloatingPointError: the loss or gradient became non-finite (names the step).
        FileExistsError: ``out_dir`` has checkpoints and neither ``resume`` nor ``overwrite``.
    """
    settings = _loop_settings(config)
    out_dir = Path(out_dir)
    run_info = dict(run_info or {})
    is_main = jax.process_index() == 0
    if fsdp:
        if mesh is not None:
            raise ValueError("train: pass either fsdp=N or a mesh, not both")
        mesh = fsdp_mesh(fsdp)
    elif mesh is None and data_parallel:
        mesh = data_mesh()
    if donate is None:
        donate = jax.default_backend() != "cpu"
    has_model_state = init_model_state is not None

    ckpt_dir, metrics_path = out_dir / "checkpoints", out_dir / "metrics.jsonl"
    stages = resolve_stages(
        phases,
        steps=settings["steps"],
        loss_fn=loss_fn,
        optimizer=optimizer,
        step_fn=step_fn,
        hooks=hooks,
        has_model_state=has_model_state,
        ckpt_dir=ckpt_dir,
    )
    total = stages[-1].end
    if overwrite and is_main:
        remove_checkpoints(ckpt_dir)
        metrics_path.unlink(missing_ok=True)
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)

    root = jax.random.key(settings["seed"])
    init_key, train_key = jax.random.split(root)

    def make_initial():
        params = init_params(init_key)
        model_state = init_model_state(init_key) if has_model_state else None
        return TrainState.create(
            params, stages[0].optimizer, key=train_key, model_state=model_state
        )

    key_parts = {
        "config": config_to_dict(config) if dataclasses.is_dataclass(config) else None,
        "run_info": {k: v for k, v in run_info.items() if k != "phases"},
        "model_state": has_model_state,
    }
    if export_cache is not None and mesh is None:
        initial, how = cached_init(
            export_cache,
            make_initial,
            fingerprint_of=(init_params, init_model_state, stages[0].optimizer),
            key_parts={**key_parts, "seed": settings["seed"], "what": "initial state"},
        )
        if how is not None and how.startswith("not cached") and is_main:
            name = run_info.get("experiment", out_dir.name)
            print(f"[{name}] export cache: initial state {how}", file=sys.stderr, flush=True)
    else:
        initial = make_initial()

    saved = [_saved_steps(stage.directory) for stage in stages]
    if any(saved) and not resume:
        i = max(i for i, steps in enumerate(saved) if steps)
        where = "" if stages[i].name is None else f" of phase {stages[i].name!r}"
        raise FileExistsError(
            f"train: run folder {out_dir} already has checkpoints (latest step "
            f"{max(saved[i])}{where}); pass resume=True (--resume) to continue, overwrite=True "
            "(--overwrite) to start over, or another out_dir (--out)"
        )
    index, ckpt_step = find_resume(stages, saved) if resume else (0, None)
    state = rebuild(stages, index, ckpt_step, initial, mesh)
    start = int(state.step)
    desc = str(run_info.get("experiment", out_dir.name))
    if run_info.get("variant") is not None:
        desc += f"/{run_info['variant']}"
    clock = RunClock(out_dir, resume_step=start if ckpt_step is not None else None, enabled=is_main)
    if is_main and resume:
        _say_where_resumed(desc, start, total, ckpt_step, stages[index], out_dir)
    if is_main:
        if phases is not None:
            run_info["phases"] = [{"name": s.name, "steps": s.end - s.start} for s in stages]
        if fsdp:
            run_info["fsdp"] = fsdp
        _write_config(out_dir, config, {"data_parallel": mesh is not None, **run_info}, resume)
        if resume:
            boundaries = frozenset(s.end for s in stages)
            history = truncate_jsonl(
                metrics_path, start, keep=_on_schedule(settings, start, boundaries)
            )
        else:
            history = []
            metrics_path.unlink(missing_ok=True)
    else:
        history = []

    def result(state, records, seconds=None):
        seconds = clock.seconds if seconds is None else seconds
        return TrainResult(
            state.params,
            state.opt_state,
            records,
            out_dir,
            int(state.step),
            state.model_state,
            state,
            round(seconds, 3),
        )

    complete = index == len(stages) - 1 and ckpt_step is not None and ckpt_step >= total
    if complete or (phases is None and start >= total):  # nothing to train: the recorded time
        return result(state, read_jsonl(metrics_path) if is_main else history, clock.prior)

    run = _Run(
        settings=settings,
        get_batch=get_batch,
        eval_fn=eval_fn,
        metrics_fn=metrics_fn,
        has_model_state=has_model_state,
        mesh=mesh,
        donate=donate,
        progress=progress,
        is_main=is_main,
        metrics_path=metrics_path,
        async_checkpoints=async_checkpoints,
        desc=desc,
        clock=clock,
        export_cache=None if export_cache is None else Path(export_cache),
        key_parts=key_parts,
    )
    records = []
    for j in range(index, len(stages)):
        if j > index:
            state = prepare(stages[j], state, stages[j - 1].optimizer, mesh)
        state, new_records = run.stage(stages[j], state)
        records += new_records
    return result(state, history + records)


@dataclasses.dataclass
class _Run:
    """What the step loop needs besides the stage and the state."""

    settings: Mapping[str, int]
    get_batch: Callable[[int], Any]
    eval_fn: Callable[..., Mapping[str, Any]] | None
    metrics_fn: Callable[[TrainState], Mapping[str, Any]] | None
    has_model_state: bool
    mesh: jax.sharding.Mesh | None
    donate: bool
    progress: bool
    is_main: bool
    metrics_path: Path
    async_checkpoints: bool
    desc: str
    clock: RunClock
    export_cache: Path | None = None
    key_parts: Mapping[str, Any] | None = None

    def batch(self, s: int) -> Any:
        batch = self.get_batch(s)
        return batch if self.mesh is None else shard_batch(batch, self.mesh)

    def evaluate(self, state: TrainState) -> dict[str, Any]:
        if self.has_model_state:
            return dict(self.eval_fn(state.params, state.model_state))
        return dict(self.eval_fn(state.params))

    def extra_metrics(self, state: TrainState, metrics: Mapping[str, Any]) -> dict[str, Any]:
        # A jitted step returns its metrics with sorted keys; records keep "loss" first.
        metrics = {**({"loss": metrics["loss"]} if "loss" in metrics else {}), **metrics}
        if self.metrics_fn is None:
            return metrics
        extra = dict(_jit_metrics(self.metrics_fn)(state))
        clash = sorted(set(extra) & set(metrics))
        if clash:
            raise ValueError(
                f"train: metrics_fn returns {clash}, which the step function "
                "already reports; rename them"
            )
        return {**metrics, **extra}

    def compile(self, stage: Stage, step: Any, args: tuple[Any, Any, Any]) -> tuple[Any, Any]:
        """The step compiled for ``args``, through the export cache when there is one; and
        how it was had (``None``: compiled or read from the compilation cache)."""
        if self.export_cache is None or self.mesh is not None:
            step.lower(*args).compile()
            return step, None
        parts = {**(self.key_parts or {}), "phase": stage.name, "label": stage.label}
        compiled, how = compile_step(
            self.export_cache,
            guard_step(stage.step_fn, stage.hooks),
            args,
            fingerprint_of=(stage.step_fn, stage.hooks),
            key_parts=parts,
            donate=self.donate,
        )
        return compiled, how

    def stage(self, stage: Stage, state: TrainState) -> tuple[TrainState, list[dict[str, Any]]]:
        """Runs ``stage`` from ``state.step`` to its end; returns (state, records written)."""
        st = self.settings
        log_every, eval_every, checkpoint_every = (
            st["log_every"],
            st["eval_every"],
            st["checkpoint_every"],
        )
        start, end = int(state.step), stage.end
        step = jit_step(stage.step_fn, stage.hooks, donate=self.donate, mesh=self.mesh)
        bad = place_state(jnp.asarray(-1, jnp.int32), self.mesh)
        desc = self.desc if stage.name is None else f"{self.desc}/{stage.name}"
        ckpt = Checkpointer(
            stage.directory, max_to_keep=st["max_to_keep"], async_save=self.async_checkpoints
        )
        logger = MetricsLogger(self.metrics_path, mode="a", enabled=self.is_main)
        bar = Progress(
            end,
            initial=start,
            enabled=self.progress,
            every=log_every,
            desc=desc,
            quiet=not self.is_main or start == end,
        )
        done, interrupted, first_eval = start, None, True
        latest = ckpt.latest_step  # at a phase's start: the previous phase's last checkpoint
        latest = latest if latest is not None or start == 0 else start
        try:
            batch = None
            if start < end:
                stop = TrainingInterrupted(
                    start, latest, self.metrics_path.parent, compiling=True, desc=desc
                )
                with bar.paused(), compiling(str(stop)):
                    bar.write(f"[{desc}] compiling the {stage.label} step ...")
                    t0, hits = time.perf_counter(), compilation_cache_hits()
                    try:  # a Ctrl-C while tracing lands here, one inside XLA in the watchdog
                        batch = self.batch(start)
                        step, how = self.compile(stage, step, (state, batch, bad))
                        if self.metrics_fn is not None:
                            _jit_metrics(self.metrics_fn).lower(state).compile()
                    except KeyboardInterrupt:
                        raise stop from None
                    if how is None and compilation_cache_hits() > hits:
                        how = "from the compilation cache"
                    bar.write(
                        f"[{desc}] compiled in {time.perf_counter() - t0:.2f} s"
                        + (f" ({how})" if how else "")
                    )
            for s in range(start, end):
                if s > start:
                    batch = self.batch(s)
                state, metrics, bad = step(state, batch, bad)
                done = s + 1
                is_log = done % log_every == 0 or done == end
                is_eval = self.eval_fn is not None and (
                    (eval_every > 0 and done % eval_every == 0) or done == end
                )
                is_ckpt = done % checkpoint_every == 0 or done == end
                if is_log or is_eval or is_ckpt:
                    _raise_if_bad(int(bad), stage, ckpt)
                shown = None
                if is_log:
                    rec = logger.log(
                        done, "train", self.extra_metrics(state, metrics), phase=stage.name
                    )
                    shown = {k: v for k, v in rec.items() if k not in ("step", "split", "phase")}
                bar.update(done, shown)
                if is_eval:
                    with bar.paused():  # evaluation (and its compile) is not training speed
                        t0 = time.perf_counter()
                        if first_eval:  # its compile can take a while: say so
                            bar.write(f"[{desc}] evaluating at step {done} ...")
                        logger.log(done, "eval", self.evaluate(state), phase=stage.name)
                        if first_eval:
                            bar.write(f"[{desc}] evaluated in {time.perf_counter() - t0:.2f} s")
                        first_eval = False
                if is_ckpt:
                    ckpt.save(done, to_checkpoint(state))
                    self.clock.checkpoint(done)
            if start == end and ckpt.latest_step != end:  # a phase of 0 steps
                ckpt.save(end, to_checkpoint(state))
                self.clock.checkpoint(end)
        except KeyboardInterrupt as e:
            interrupted = e
        finally:
            bar.close()
            logger.close()
            ckpt.close()
        if interrupted is not None:
            if isinstance(interrupted, TrainingInterrupted):
                raise interrupted
            last = ckpt.latest_step if ckpt.latest_step is not None else latest
            raise TrainingInterrupted(done, last, self.metrics_path.parent, desc=desc) from None
        return state, logger.history


def _say_where_resumed(
    desc: str, start: int, total: int, ckpt_step: int | None, stage: Stage, out_dir: Path
) -> None:
    if ckpt_step is None:
        text = f"no checkpoint in {out_dir}: starting from step 0 of {total}"
    elif start >= total:
        text = f"already complete at step {start} of {total} ({stage.directory}): nothing to train"
    else:
        where = "" if stage.name is None else f" (phase {stage.name!r})"
        text = f"resumed from the checkpoint at step {start} of {total}{where} in {stage.directory}"
    print(f"[{desc}] {text}", file=sys.stderr, flush=True)


def _raise_if_bad(bad_step: int, stage: Stage, ckpt: Checkpointer) -> None:
    if bad_step < 0:
        return
    last = ckpt.latest_step
    where = "" if stage.name is None else f" (phase {stage.name!r})"
    raise FloatingPointError(
        f"train: non-finite loss or gradient at step {bad_step} (step index {bad_step - 1})"
        f"{where} (or a non-finite metric or a failed check of the step function); no update "
        "from that step on was applied, logged or checkpointed. Last "
        f"checkpoint: {'none' if last is None else f'step {last}'} in {ckpt.directory}"
    )
