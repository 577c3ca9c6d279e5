"""Phases: one run that trains, then prunes or projects, then fine-tunes, resumable anywhere.

A :class:`Phase` is a named number of steps with its own (optional) step function, optimizer,
loss and hooks, and an optional ``transition(train_state) -> train_state`` run once at its start.
A transition may change anything, parameter shapes included (physical pruning: drop filters, and
the matching BatchNorm statistics in ``model_state``); it runs eagerly (jit inside it if you
like), and ``step`` and ``key`` stay the loop's. Then the phase's ``opt_state`` is:

* re-initialised (``optimizer.init(params)``) when the transition changed the parameters'
  structure, shapes or dtypes, or when the phase's optimizer is another object than the previous
  phase's;
* otherwise carried over (Adam moments continue across a phase that only adds a hook);
* forced either way with ``reinit_opt_state=True``/``False`` (with ``False`` a shape-changing
  transition must adapt ``opt_state`` itself).

Fields left ``None`` come from :func:`~memjax.train.train`'s arguments: the phase's step is its
``step_fn``; else, when it sets ``loss_fn`` or ``optimizer``, the supervised step with them; else
``train``'s ``step_fn``, else the supervised step of ``train``'s ``loss_fn`` and ``optimizer``.
``hooks`` given on a phase replace ``train``'s hooks (write ``(*common, mask)`` to extend them).

Steps are global: phase ``i`` runs steps ``[sum of earlier steps, + steps)``, ``get_batch`` and
the per-step keys see the global step, and metric records carry ``"phase": name``. Each phase has
its own checkpoint folder ``out_dir/checkpoints/<name>/<step>``, written every
``checkpoint_every`` steps and at the phase's last step (the end of every phase is also a log and
eval step). On resume the run continues in the phase of the newest checkpoint; the restore target
of phase ``k`` is rebuilt by restoring the last checkpoint of each earlier phase and re-running the
transitions, so a transition must be a deterministic function of the state (draw randomness from
``train_state.key``). That works for transitions whose output shapes depend on the values
(threshold pruning), where ``jax.eval_shape`` would not.

Example (prune to the 2 largest weights, then fine-tune with the mask fixed by a hook)::

    def prune(state):
        mask = top_k_mask(state.params, 2)
        return state._replace(params=apply(mask, state.params), model_state=mask)

    phases = [Phase("dense", 100),
              Phase("finetune", 50, transition=prune, optimizer=optax.sgd(1e-3),
                    hooks=(lambda s: s._replace(params=apply(s.model_state, s.params)),))]
    result = train(config, init_params=..., loss_fn=..., optimizer=optax.adam(1e-2),
                   get_batch=..., phases=phases, out_dir=...)

Example:
    >>> from memjax.train import Phase
    >>> p = Phase("finetune", 20, hooks=[abs])
    >>> p.name, p.steps, p.hooks
    ('finetune', 20, (<built-in function abs>,))
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import optax

from memjax.train.checkpoint import Checkpointer
from memjax.train.mesh import place_state
from memjax.train.state import TrainState, from_checkpoint, same_layout, to_checkpoint
from memjax.train.steps import Hook, StepFn, supervised_step_for

__all__ = ["Phase"]

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of a run (see the module docstring).

    Attributes:
        name: a folder-safe name (letters, digits, ``_.-``; not only digits), unique in the run.
        steps: number of updates (0: only the transition, e.g. a one-shot projection).
        step_fn: ``(train_state, batch) -> (train_state, metrics)`` for this phase.
        optimizer: the phase's optax optimizer (its state is ``train_state.opt_state``).
        loss_fn: the phase's loss for the supervised step (``train``'s signature rules).
        hooks: ``train_state -> train_state`` functions run after each update (replace
            ``train``'s hooks).
        transition: ``train_state -> train_state``, run once at the phase's start.
        reinit_opt_state: force (``True``) or forbid (``False``) re-initialising ``opt_state``
            at the phase's start; ``None`` decides as the module docstring says.
    """

    name: str
    steps: int
    step_fn: StepFn | None = None
    optimizer: optax.GradientTransformation | None = None
    loss_fn: Callable[..., Any] | None = None
    hooks: Sequence[Hook] | None = None
    transition: Callable[[TrainState], TrainState] | None = None
    reinit_opt_state: bool | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name) or self.name.isdigit():
            raise ValueError(
                f"Phase: name must be letters, digits, '_', '.' or '-' and not only "
                f"digits (it names a checkpoint folder), got {self.name!r}"
            )
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise ValueError(f"Phase {self.name!r}: steps must be an int >= 0, got {self.steps!r}")
        for field in ("step_fn", "loss_fn", "transition"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                raise TypeError(
                    f"Phase {self.name!r}: {field} must be callable, got {type(value).__name__}"
                )
        if self.hooks is not None:
            hooks = tuple(self.hooks)
            for hook in hooks:
                if not callable(hook):
                    raise TypeError(
                        f"Phase {self.name!r}: hooks must be callables, got {type(hook).__name__}"
                    )
            object.__setattr__(self, "hooks", hooks)


@dataclasses.dataclass(frozen=True)
class Stage:
    """A phase resolved against ``train``'s arguments (``name=None``: the single implicit phase
    of a run without phases: no ``"phase"`` in records, checkpoints right in ``checkpoints/``)."""

    index: int
    name: str | None
    start: int
    end: int
    step_fn: StepFn
    optimizer: optax.GradientTransformation | None
    hooks: tuple[Hook, ...]
    transition: Callable[[TrainState], TrainState] | None
    reinit_opt_state: bool | None
    directory: Path

    @property
    def label(self) -> str:
        return "train" if self.name is None else f"phase {self.name!r}"


def _supervised(loss_fn, optimizer, has_model_state, where):
    missing = [n for n, v in (("loss_fn", loss_fn), ("optimizer", optimizer)) if v is None]
    if missing:
        raise TypeError(
            f"train: {where} runs the supervised step, which needs "
            f"{' and '.join(missing)} (or pass step_fn)"
        )
    return supervised_step_for(loss_fn, optimizer, has_model_state)


def resolve_stages(
    phases: Sequence[Phase] | None,
    *,
    steps: int,
    loss_fn,
    optimizer,
    step_fn,
    hooks: Sequence[Hook],
    has_model_state: bool,
    ckpt_dir: Path,
) -> list[Stage]:
    """The run's stages: one per phase, or one implicit stage of ``steps`` steps."""
    hooks = tuple(hooks)
    if phases is None:
        step = step_fn or _supervised(loss_fn, optimizer, has_model_state, "the run")
        return [Stage(0, None, 0, steps, step, optimizer, hooks, None, None, ckpt_dir)]
    phases = list(phases)
    if not phases:
        raise ValueError("train: phases must hold at least one Phase")
    names = [getattr(p, "name", None) for p in phases]
    for p in phases:
        if not isinstance(p, Phase):
            raise TypeError(f"train: phases must be Phase objects, got {type(p).__name__}")
    if len(set(names)) != len(names):
        raise ValueError(f"train: phase names must be unique, got {names}")
    stages, start = [], 0
    for i, p in enumerate(phases):
        if p.step_fn is not None:
            step = p.step_fn
        elif p.loss_fn is not None or p.optimizer is not None:
            step = _supervised(
                p.loss_fn or loss_fn, p.optimizer or optimizer, has_model_state, f"phase {p.name!r}"
            )
        else:
            step = step_fn or _supervised(loss_fn, optimizer, has_model_state, f"phase {p.name!r}")
        stages.append(
            Stage(
                i,
                p.name,
                start,
                start + p.steps,
                step,
                p.optimizer or optimizer,
                hooks if p.hooks is None else p.hooks,
                p.transition,
                p.reinit_opt_state,
                ckpt_dir / p.name,
            )
        )
        start += p.steps
    return stages


def prepare(
    stage: Stage, state: TrainState, prev_optimizer: Any, mesh: jax.sharding.Mesh | None
) -> TrainState:
    """The state a stage starts from: its transition, then ``opt_state`` re-initialised when
    needed, then placed on the mesh."""
    new = state
    if stage.transition is not None:
        new = stage.transition(state)
        if not isinstance(new, TrainState):
            raise TypeError(
                f"{stage.label}: transition must return a TrainState, got {type(new).__name__}"
            )
        new = new._replace(step=state.step, key=state.key)
    reinit = stage.reinit_opt_state
    if reinit is None:
        reinit = stage.optimizer is not prev_optimizer or not same_layout(new.params, state.params)
    if reinit:
        opt = stage.optimizer
        new = new._replace(opt_state=None if opt is None else opt.init(new.params))
    return place_state(new, mesh)


def saved_steps(directory: Path) -> list[int]:
    """The checkpoint steps in ``directory`` (none when it does not exist)."""
    if not Path(directory).exists():
        return []
    with Checkpointer(directory, max_to_keep=None, async_save=False) as ckpt:
        return ckpt.all_steps()


def find_resume(stages: Sequence[Stage], saved: Sequence[Sequence[int]]) -> tuple[int, int | None]:
    """Where a resumed run continues: ``(stage index, checkpoint step)``; ``None`` as the step
    means the start of that stage (from the end of the one before).

    Raises:
        ValueError: the checkpoints do not fit the phases (they changed since they were written).
    """
    filled = [i for i, steps in enumerate(saved) if steps]
    if not filled:
        return 0, None
    last = filled[-1]
    for i in range(last):
        if not saved[i] or max(saved[i]) != stages[i].end:
            got = f"end at step {max(saved[i])}" if saved[i] else "are missing"
            raise ValueError(
                f"train: resume: the checkpoints of {stages[i].label} {got} but the phase ends "
                f"at step {stages[i].end}, and {stages[last].label} has checkpoints; the phases "
                "changed since this run folder was written (use overwrite=True or another out_dir)"
            )
    latest, end = max(saved[last]), stages[last].end
    if latest > end and last + 1 < len(stages):
        raise ValueError(
            f"train: resume: {stages[last].label} has a checkpoint at step {latest},"
            f" past its end at step {end}; the phases changed since this run folder "
            "was written (use overwrite=True or another out_dir)"
        )
    if latest > end:
        warnings.warn(
            f"train: checkpoint step {latest} is past the run's last step {end}; "
            "returning the restored state",
            stacklevel=3,
        )
    if latest == end and last + 1 < len(stages):
        return last + 1, None
    return last, latest


def restore(stage: Stage, step: int, like: TrainState) -> TrainState:
    """Checkpoint ``step`` of ``stage``, shaped, typed and sharded like ``like``."""
    with Checkpointer(stage.directory, max_to_keep=None, async_save=False) as ckpt:
        return from_checkpoint(ckpt.restore(like=to_checkpoint(like), step=step), like)


def rebuild(
    stages: Sequence[Stage],
    index: int,
    step: int | None,
    initial: TrainState,
    mesh: jax.sharding.Mesh | None,
) -> TrainState:
    """The state at checkpoint ``step`` of stage ``index`` (``None``: that stage's start), from
    the initial state, the earlier stages' last checkpoints and their transitions."""
    state = prepare(stages[0], initial, stages[0].optimizer, mesh)
    for i in range(index):
        state = restore(stages[i], stages[i].end, state)
        state = prepare(stages[i + 1], state, stages[i].optimizer, mesh)
    if step is not None:
        state = restore(stages[index], step, state)
    return state
