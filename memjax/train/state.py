"""The training state: one pytree that the step functions carry and orbax checkpoints.

:class:`TrainState` is a NamedTuple (so a pytree, with ``_replace``) of

* ``params``: what the optimizer trains (any pytree: dicts, ``nnx.State``, Equinox arrays);
* ``model_state``: what the model writes but nobody differentiates: BatchNorm running statistics,
  masks fixed by a pruning phase, counters kept by a hook (``None`` when there is none);
* ``opt_state``: the optax state (``None`` for a hand-written step without an optimizer);
* ``step``: int32 scalar, the number of updates done. The loop owns it: a step function sees the
  0-based index of the update it is computing and whatever it returns there is replaced by
  ``step + 1``;
* ``key``: the run's training key (typed PRNG key). It never changes; update ``s`` uses
  ``fold_in(key, s)`` (:func:`step_key`), so the randomness of a step does not depend on where a
  run was resumed.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from memjax.train import TrainState, step_key
    >>> params = {"w": jnp.zeros(3)}
    >>> state = TrainState.create(params, optax.sgd(0.1), key=jax.random.key(0))
    >>> int(state.step), state.model_state is None, type(state.opt_state).__name__
    (0, True, 'tuple')
    >>> state = state._replace(step=state.step + 1)
    >>> step_key(state).dtype == jax.random.key(0).dtype
    True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TrainState", "step_key"]


class TrainState(NamedTuple):
    """``(params, model_state, opt_state, step, key)``: everything a run carries and checkpoints.

    See the module docstring for what each field holds and who owns it.
    """

    params: Any
    model_state: Any
    opt_state: Any
    step: Any
    key: Any

    @classmethod
    def create(
        cls, params: Any, optimizer: Any = None, *, key: Any, model_state: Any = None, step: int = 0
    ) -> TrainState:
        """A fresh state: ``opt_state = optimizer.init(params)`` (``None`` without an optimizer).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> s = TrainState.create({"w": jnp.ones(2)}, key=jax.random.key(1), step=3)
            >>> s.opt_state is None, int(s.step)
            (True, 3)
        """
        opt_state = None if optimizer is None else optimizer.init(params)
        return cls(params, model_state, opt_state, jnp.asarray(step, jnp.int32), key)


def step_key(state: TrainState) -> jax.Array:
    """The key of the update ``state`` is about to compute: ``fold_in(state.key, state.step)``.

    The default supervised step passes it to ``loss_fn``; a custom step function should use it
    (or keys derived from it) for dropout and other per-step randomness.
    """
    return jax.random.fold_in(state.key, state.step)


# ----------------------------------------------------------------------------- checkpoint layout


def _has_leaves(tree: Any) -> bool:
    return bool(jax.tree.leaves(tree))


def to_checkpoint(state: TrainState) -> dict[str, Any]:
    """The tree a checkpoint holds: ``{"params", "opt_state", "step", "key"}`` plus
    ``"model_state"`` when it has arrays (the layout of checkpoints written before
    :class:`TrainState` existed, so old run folders still resume)."""
    tree = {
        "params": state.params,
        "opt_state": state.opt_state,
        "step": state.step,
        "key": state.key,
    }
    if _has_leaves(state.model_state):
        tree["model_state"] = state.model_state
    return tree


def from_checkpoint(tree: dict[str, Any], like: TrainState) -> TrainState:
    """Inverse of :func:`to_checkpoint` (``like`` supplies an array-free ``model_state``)."""
    return TrainState(
        tree["params"],
        tree.get("model_state", like.model_state),
        tree["opt_state"],
        tree["step"],
        tree["key"],
    )


# ----------------------------------------------------------------------------- structure checks


def _describe(x: Any) -> str:
    return f"{getattr(x, 'dtype', type(x).__name__)}{list(np.shape(x))}"


def same_layout(a: Any, b: Any) -> bool:
    """Whether two pytrees have the same structure and leaf shapes and dtypes."""
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(
        np.shape(x) == np.shape(y) and getattr(x, "dtype", None) == getattr(y, "dtype", None)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def check_layout(new: Any, old: Any, what: str) -> None:
    """Raises ``TypeError`` naming the first leaf where ``new`` differs from ``old`` in
    structure, shape or dtype (works on tracers, so inside ``jit`` too)."""
    if jax.tree.structure(new) != jax.tree.structure(old):
        raise TypeError(
            f"{what} changed the structure of the train state:\n  before: "
            f"{jax.tree.structure(old)}\n  after:  {jax.tree.structure(new)}\n(a step or hook "
            "must return a state of the same structure, shapes and dtypes; change shapes in a "
            "Phase transition instead)"
        )
    for (path, x), y in zip(
        jax.tree_util.tree_flatten_with_path(new)[0], jax.tree.leaves(old), strict=True
    ):
        if np.shape(x) != np.shape(y) or getattr(x, "dtype", None) != getattr(y, "dtype", None):
            raise TypeError(
                f"{what} changed train state leaf {jax.tree_util.keystr(path)} from "
                f"{_describe(y)} to {_describe(x)} (a step or hook must keep shapes and dtypes; "
                "change shapes in a Phase transition instead)"
            )
