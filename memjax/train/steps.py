"""Step functions, hooks and the non-finite guard that the training loop jits around them.

**Step function**: ``step_fn(train_state, batch) -> (train_state, metrics)``, a pure function
that computes one update of a :class:`~memjax.train.TrainState`. ``metrics`` is a dict of
scalars, logged at the log steps. The default is :func:`make_supervised_step` (``value_and_grad``
of a loss, then ``optimizer.update``); anything else (a hand-written optimizer, a synthetic-gradient
update, an update of ``model_state`` only) is a step function too. Rules:

* it must return a state of the same structure, shapes and dtypes (shapes change only in a
  :class:`~memjax.train.Phase` transition);
* ``train_state.step`` is the 0-based index of the update being computed; the loop sets the
  returned ``step`` to ``step + 1`` itself; use :func:`~memjax.train.step_key` for randomness.

**Hooks**: pure functions ``hook(train_state) -> train_state`` applied, in order, inside the
jitted step right after each update (they see ``step`` already advanced to the number of updates
done). Use them for what must hold after every update: re-applying a pruning mask, a proximal
operator, a counter or a running average in ``model_state``. Like a step, a hook keeps the
state's layout.

**Guard**: a step is accepted only when every metric is finite (integer and boolean metrics are
always finite) and every *check* is true. Checks are metrics whose name starts with ``_``: boolean
scalars that are used by the guard and never logged (the supervised step reports
``_finite = isfinite(loss) & isfinite(global_norm(grads))``). A rejected step leaves the state
unchanged (hooks included) and its 1-based number is kept on device; the loop raises
``FloatingPointError`` naming it before anything later is logged or checkpointed.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from memjax.train import TrainState, make_supervised_step
    >>> def loss_fn(params, batch, key):
    ...     return jnp.mean((batch["x"] * params["w"] - batch["y"]) ** 2)
    >>> step = make_supervised_step(loss_fn, optax.sgd(0.5))
    >>> state = TrainState.create({"w": jnp.zeros(())}, optax.sgd(0.5), key=jax.random.key(0))
    >>> batch = {"x": jnp.ones(4), "y": jnp.full(4, 2.0)}
    >>> state, metrics = jax.jit(step)(state, batch)
    >>> float(state.params["w"]), float(metrics["loss"]), sorted(metrics)
    (2.0, 4.0, ['_finite', 'loss'])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from memjax.train.mesh import state_shardings
from memjax.train.state import TrainState, check_layout, step_key

__all__ = ["Hook", "StepFn", "make_supervised_step", "make_train_step"]

StepFn = Callable[[TrainState, Any], tuple[TrainState, Mapping[str, Any]]]
Hook = Callable[[TrainState], TrainState]


def _split_loss_output(out: Any, has_model_state: bool, model_state: Any) -> tuple[Any, ...]:
    if has_model_state:
        if not (
            isinstance(out, tuple)
            and len(out) == 2
            and isinstance(out[1], tuple)
            and len(out[1]) == 2
        ):
            raise TypeError(
                "with model state, loss_fn(params, model_state, batch, key) must return "
                f"(loss, (aux_metrics_dict, new_model_state)), got {type(out).__name__}"
            )
        loss, (aux, new_model_state) = out
    else:
        if isinstance(out, tuple):
            if len(out) != 2:
                raise TypeError("loss_fn must return loss or (loss, aux_metrics_dict)")
            loss, aux = out
        else:
            loss, aux = out, {}
        new_model_state = model_state
    loss = jnp.asarray(loss)
    if loss.shape != ():
        raise TypeError(f"loss_fn must return a scalar loss, got shape {loss.shape}")
    return loss, ({} if aux is None else dict(aux)), new_model_state


def make_supervised_step(
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    *,
    has_model_state: bool = False,
) -> StepFn:
    """The default step: ``value_and_grad(loss_fn)`` over ``params``, then ``optimizer.update``.

    Args:
        loss_fn: ``(params, batch, key) -> loss`` or ``(loss, aux_metrics_dict)``; with
            ``has_model_state=True`` instead ``(params, model_state, batch, key) ->
            (loss, (aux_metrics_dict, new_model_state))`` (``aux`` may be ``None``), and the new
            model state (e.g. BatchNorm running statistics) replaces ``train_state.model_state``.
            ``key`` is :func:`~memjax.train.step_key` of the state. Without model state,
            ``model_state`` is carried through unchanged.
        optimizer: an optax ``GradientTransformation`` whose state is ``train_state.opt_state``.

    Returns:
        ``step(train_state, batch) -> (train_state, {"loss", **aux, "_finite"})`` (not jitted:
        the loop jits it with the guard and the hooks).
    """

    def loss_with_aux(params, model_state, batch, key):
        loss, aux, new_model_state = _split_loss_output(
            loss_fn(params, model_state, batch, key)
            if has_model_state
            else loss_fn(params, batch, key),
            has_model_state,
            model_state,
        )
        return loss, (aux, new_model_state)

    def step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
        (loss, (aux, model_state)), grads = jax.value_and_grad(loss_with_aux, has_aux=True)(
            state.params, state.model_state, batch, step_key(state)
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
        new = state._replace(params=params, model_state=model_state, opt_state=opt_state)
        return new, {"loss": loss, **aux, "_finite": finite}

    return step


def _scalar_metrics(metrics: Any, what: str) -> dict[str, jax.Array]:
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"{what} must return (train_state, metrics_dict), got metrics of type "
            f"{type(metrics).__name__}"
        )
    out = {}
    for name, value in metrics.items():
        value = jnp.asarray(value)
        if value.shape != ():
            raise TypeError(f"{what}: metric {name!r} must be a scalar, got shape {value.shape}")
        out[str(name)] = value
    return out


def _accepted(metrics: Mapping[str, jax.Array]) -> jax.Array:
    good = jnp.asarray(True)
    for name, value in metrics.items():
        if name.startswith("_"):
            good &= value.astype(bool)
        elif jnp.issubdtype(value.dtype, jnp.inexact):
            good &= jnp.isfinite(value)
    return good


def guard_step(
    step_fn: StepFn, hooks: Sequence[Hook] = (), mesh: jax.sharding.Mesh | None = None
) -> Callable[..., Any]:
    """``(train_state, batch, bad) -> (train_state, public_metrics, bad)``: ``step_fn``, then
    the hooks, then the guard (see the module docstring). ``bad`` is an int32 scalar: -1 while
    every step was accepted, else the 1-based step that was not. With a ``mesh``, the new state
    is constrained to :func:`~memjax.train.state_shardings`."""
    hooks = tuple(hooks)

    def guarded(state: TrainState, batch: Any, bad: jax.Array):
        out = step_fn(state, batch)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], TrainState)):
            raise TypeError(
                f"step_fn must return (TrainState, metrics_dict), got {type(out).__name__}"
            )
        new, metrics = out
        metrics = _scalar_metrics(metrics, "step_fn")
        done = (state.step + 1).astype(jnp.int32)
        new = new._replace(step=done)
        check_layout(new, state, "step_fn")
        for i, hook in enumerate(hooks):
            new = hook(new)
            name = f"hook {i} ({getattr(hook, '__name__', type(hook).__name__)})"
            if not isinstance(new, TrainState):
                raise TypeError(f"{name} must return a TrainState, got {type(new).__name__}")
            new = new._replace(step=done)
            check_layout(new, state, name)
        good = _accepted(metrics)
        ok = good & (bad < 0)
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)._replace(step=done)
        if mesh is not None:
            new = jax.lax.with_sharding_constraint(new, state_shardings(new, mesh))
        new_bad = jnp.where((bad < 0) & ~good, done, bad).astype(jnp.int32)
        public = {k: v for k, v in metrics.items() if not k.startswith("_")}
        return new, public, new_bad

    return guarded


@functools.lru_cache(maxsize=32)
def _cached_jit(step_fn, hooks, donate, mesh):
    return jax.jit(guard_step(step_fn, hooks, mesh), donate_argnums=(0,) if donate else ())


def jit_step(
    step_fn: StepFn, hooks: Sequence[Hook], *, donate: bool, mesh: jax.sharding.Mesh | None
) -> Callable[..., Any]:
    """The jitted guarded step, reused across ``train`` calls with the same step function and
    hooks (so a resumed run or a sweep in one process compiles once)."""
    try:
        return _cached_jit(step_fn, tuple(hooks), donate, mesh)
    except TypeError:  # an unhashable step_fn or hook
        return jax.jit(guard_step(step_fn, hooks, mesh), donate_argnums=(0,) if donate else ())


_cached_supervised = functools.lru_cache(maxsize=32)(make_supervised_step)


def supervised_step_for(loss_fn, optimizer, has_model_state: bool) -> StepFn:
    """:func:`make_supervised_step`, the same function object for the same arguments."""
    try:
        return _cached_supervised(loss_fn, optimizer, has_model_state=has_model_state)
    except TypeError:  # unhashable loss_fn/optimizer
        return make_supervised_step(loss_fn, optimizer, has_model_state=has_model_state)


def make_train_step(
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    *,
    donate: bool = False,
) -> Callable[..., Any]:
    """The jitted step ``(params, opt_state, key, step, batch, bad) -> (params, opt_state, loss,
    aux, bad)`` (the interface before :class:`~memjax.train.TrainState`; :func:`train` uses
    :func:`make_supervised_step`).

    ``loss_fn(params, batch, key)`` returns ``loss`` or ``(loss, aux_dict)``; the key used is
    ``fold_in(key, step)``. ``bad`` is an int32 scalar: -1 while every step was finite, else the
    1-based step whose loss, aux metrics or gradient norm was not finite; from then on the state
    is frozen.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> loss_fn = lambda p, b, k: jnp.sum((p - b) ** 2)
        >>> opt = optax.sgd(0.25)
        >>> step = make_train_step(loss_fn, opt)
        >>> p, s, loss, aux, bad = step(jnp.zeros(2), opt.init(jnp.zeros(2)), jax.random.key(0),
        ...                             jnp.int32(0), jnp.ones(2), jnp.int32(-1))
        >>> p.tolist(), float(loss), aux, int(bad)
        ([0.5, 0.5], 2.0, {}, -1)
    """
    guarded = guard_step(make_supervised_step(loss_fn, optimizer))

    def legacy_step(params, opt_state, key, step, batch, bad):
        state = TrainState(params, None, opt_state, jnp.asarray(step, jnp.int32), key)
        new, metrics, bad = guarded(state, batch, bad)
        metrics = dict(metrics)
        loss = metrics.pop("loss")
        return new.params, new.opt_state, loss, metrics, bad

    return jax.jit(legacy_step, donate_argnums=(0, 1) if donate else ())
