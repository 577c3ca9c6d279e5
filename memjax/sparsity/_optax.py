"""optax transforms for proximal training: the prox step, ProxSGD, HSPG's half-space step.

* :func:`proximal` / :func:`wgsef_proximal` / :func:`group_lasso_proximal` — a params-aware
  ``GradientTransformation`` placed **last** in a chain: with the chain's update ``u`` (e.g.
  ``−α ∇L`` from ``optax.sgd(α)``) it returns ``prox_{α_t λ R}(θ + u) − θ``, so applying it
  gives proximal SGD ``θ ← prox_{α_t λ R}(θ − α_t ∇L)`` (arXiv 2212.12921's training loop). The
  learning rate is a number or an optax schedule of the transform's own step count (give the
  same schedule as the optimizer before it); ``k`` and ``λ`` may be schedules too
  (:func:`~memjax.sparsity.linear_k_schedule`). ``optax.masked(tx, mask)`` limits it to the
  kernels (build the groups over the masked leaves only).
* :func:`keep_zero_groups` — zero the update of every group that is zero in ``params``: the
  fine-tune phase after :func:`~memjax.sparsity.project_top_k` keeps exactly its k groups.
* :func:`prox_sgd` — ProxSGD (Yang, Yuan, Lei & Pesavento, ICLR 2020), for ``t = 0, 1, …``:
  ``ρ_t = ρ/(t+γ)^{ρ_decay}``, ``ε_t = ε/(t+γ)^{ε_decay}``,
  ``v ← (1−ρ_t) v + ρ_t g`` (the paper's Algorithm 1: the weight of the new gradient decays),
  ``s ← β s + (1−β) g²``, ``τ = √(s/(1−β^{t+1})) + δ``,
  ``x̂ = argmin_w R(w) + ½ Σ τ (w − (x − v/τ))²``, ``x ← x + ε_t (x̂ − x)``; defaults
  ``ε = 0.06, ε_decay = 0.5, ρ = 0.9, ρ_decay = 0.5, β = 0.999, γ = 4``. A group prox in a
  diagonal metric that varies inside the group has no closed form, so memjax uses one metric
  per group, ``τ̄_j`` = the mean of τ over the group; the prox in that metric is exact: with
  ``w' = √τ̄ w`` it is the plain prox of ``R`` with weights ``d_j/τ̄_j`` (the group factor
  is unchanged by the substitution). ``R = λ·WGSEF`` or ``λ·`` group lasso.
* :func:`half_space` — HSPG's half-space step (Chen et al. 2021, OTO): a trial step
  ``x̃ = x + u − α λ √d_j x_j/‖x_j‖`` on the non-zero groups (the group-lasso gradient; zero
  groups stay zero), then ``x_j ← 0`` where ``x̃_jᵀ x_j < ε ‖x_j‖²``.
* :func:`post_update_fn` — the same prox as a plain ``(params, step) -> params`` function for
  Flax NNX / Equinox loops without optax.

Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from memjax.nn import ChannelAxes
    >>> from memjax.sparsity import prox_wgsef_tree, tree_groups, wgsef_proximal
    >>> params = {"l": {"w": jnp.array([[4.0, 3.0, 1.0, 0.5]])}}
    >>> g = tree_groups(params, {"l": {"w": ChannelAxes(out=1, in_=0)}})
    >>> lr = optax.linear_schedule(0.5, 0.1, 10)
    >>> tx = optax.chain(optax.sgd(lr), wgsef_proximal(g, k=2, lam=1.0, learning_rate=lr))
    >>> grads = {"l": {"w": jnp.ones((1, 4))}}
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> new = optax.apply_updates(params, updates)
    >>> ref = prox_wgsef_tree({"l": {"w": params["l"]["w"] - 0.5}}, 0.5, g, 2, 1.0)
    >>> bool(jnp.allclose(new["l"]["w"], ref["l"]["w"]))
    True
    >>> tx.update(grads, tx.init(params))
    Traceback (most recent call last):
    ...
    ValueError: params: the proximal transform needs params: call update(grads, state, params)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from memjax.core.checks import check_choice
from memjax.sparsity._groups import TreeGroups
from memjax.sparsity._prox import METHODS
from memjax.sparsity._trees import (
    _blocks,
    _check_groups,
    _dtype,
    _sq_norms,
    _weights,
    block_prox_scales,
    group_norms_tree,
    prox_group_lasso_tree,
    prox_wgsef_tree,
    scale_groups,
)

__all__ = [
    "ProxSGDState",
    "ProximalState",
    "group_lasso_proximal",
    "half_space",
    "keep_zero_groups",
    "post_update_fn",
    "prox_sgd",
    "proximal",
    "wgsef_proximal",
]

PENALTIES = ("wgsef", "group_lasso")


class ProximalState(NamedTuple):
    """The step count (for the learning-rate, ``k`` and ``λ`` schedules)."""

    count: jax.Array


def _need_params(params, what="the proximal transform"):
    if params is None:
        raise ValueError(f"params: {what} needs params: call update(grads, state, params)")


def _at(value, count):
    return value(count) if callable(value) else value


def _proximal(prox_fn, learning_rate) -> optax.GradientTransformation:
    """:func:`proximal` with ``prox_fn(tree, step, count)`` (schedules of ``k``/``λ``)."""

    def init(params):
        del params
        return ProximalState(jnp.zeros((), jnp.int32))

    @jax.jit
    def apply(updates, state, params):
        step = _at(learning_rate, state.count)
        trial = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
        new = prox_fn(trial, step, state.count)
        out = jax.tree_util.tree_map(lambda n, p: (n - p).astype(jnp.result_type(p)), new, params)
        return out, ProximalState(state.count + 1)

    def update(updates, state, params=None):
        _need_params(params)
        return apply(updates, state, params)

    return optax.GradientTransformation(init, update)


def proximal(prox_fn, learning_rate) -> optax.GradientTransformation:
    """The last transform of a chain: ``prox_fn(params + updates, α_t) − params`` (module doc).

    ``prox_fn(tree, step) -> tree`` is a prox of ``step·R``; ``learning_rate`` a number or an
    optax schedule ``count -> α_t``.
    """
    if not callable(prox_fn):
        raise TypeError(f"prox_fn: expected a callable, got {type(prox_fn).__name__}")
    return _proximal(lambda tree, step, count: prox_fn(tree, step), learning_rate)


def wgsef_proximal(groups, k, lam, learning_rate, weights=None, *, method="sort"):
    """:func:`proximal` of ``λ·WGSEF`` (``k`` and ``λ`` numbers, per-layer mappings, or
    schedules of the step count)."""
    _check_groups(groups)
    check_choice("method", method, METHODS)

    def prox_fn(tree, step, count):
        kk, ll = _at(k, count), _at(lam, count)
        return prox_wgsef_tree(tree, step, groups, kk, ll, weights, method=method)

    return _proximal(prox_fn, learning_rate)


def group_lasso_proximal(groups, lam, learning_rate, weights=None):
    """:func:`proximal` of ``λ Σ_j √d_j ‖θ_{G_j}‖`` (the Prox-SG baseline)."""
    _check_groups(groups)
    return proximal(lambda t, s: prox_group_lasso_tree(t, s, groups, lam, weights), learning_rate)


def post_update_fn(groups, k, lam, weights=None, *, method="sort"):
    """``(params, step) -> prox_{step·λ·WGSEF}(params)``: call it after each plain SGD update.

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.nn import ChannelAxes
        >>> from memjax.sparsity import post_update_fn, tree_groups
        >>> p = {"w": jnp.array([[4.0, 3.0, 1.0, 0.5]])}
        >>> g = tree_groups(p, {"": {"w": ChannelAxes(out=1, in_=0)}})
        >>> [round(float(v), 3) for v in post_update_fn(g, 2, 10.0)(p, 1.0)["w"][0]]
        [0.364, 0.273, 0.0, 0.0]
    """
    _check_groups(groups)

    def fn(params, step):
        return prox_wgsef_tree(params, step, groups, k, lam, weights, method=method)

    return fn


def keep_zero_groups(groups) -> optax.GradientTransformation:
    """Zero the updates of every group that is exactly zero in ``params`` (place it last)."""
    _check_groups(groups)

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        _need_params(params, "keep_zero_groups")
        alive = (group_norms_tree(params, groups) > 0).astype(jnp.float32)
        return scale_groups(updates, groups, alive), state

    return optax.GradientTransformation(init, update)


def half_space(groups, learning_rate, lam=0.0, epsilon=0.0, weights=None):
    """HSPG's half-space step (module doc), placed last in a chain; ``0 <= epsilon < 1``."""
    _check_groups(groups)
    if not 0 <= epsilon < 1:
        raise ValueError(f"epsilon: expected 0 <= epsilon < 1, got {epsilon!r}")

    def init(params):
        del params
        return ProximalState(jnp.zeros((), jnp.int32))

    def update(updates, state, params=None):
        _need_params(params, "half_space")
        return apply(updates, state, params)

    @jax.jit
    def apply(updates, state, params):
        step = _at(learning_rate, state.count)
        found = groups.check(params)
        dtype = _dtype(found, groups)
        nu = group_norms_tree(params, groups)
        d, _ = _weights(groups, weights, dtype)
        alive = nu > 0
        # the group-lasso gradient λ√d_j x_j/‖x_j‖ on the non-zero groups
        shrink = jnp.where(alive, 1 - step * lam * jnp.sqrt(d) / jnp.where(alive, nu, 1), 0)
        trial = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
        shrunk = scale_groups(params, groups, shrink)
        # trial = x + u − αλ√d x/‖x‖ on grouped leaves (zero groups: x + u, fixed below)
        trial = jax.tree_util.tree_map(lambda t, s, p: t + s - p, trial, shrunk, params)
        inner = jnp.zeros_like(nu)
        tfound = groups.check(trial, "updates")
        for e in groups.leaves:  # x̃_jᵀ x_j per group
            prod = jnp.sum(
                (tfound[e.path] * found[e.path]).astype(dtype), axis=e.reduce_axes
            ).reshape(-1)
            inner = inner.at[e.offset : e.offset + e.count].add(prod)
        keep = alive & (inner >= epsilon * nu * nu)
        new = scale_groups(trial, groups, keep.astype(dtype))
        out = jax.tree_util.tree_map(lambda n, p: (n - p).astype(jnp.result_type(p)), new, params)
        return out, ProximalState(state.count + 1)

    return optax.GradientTransformation(init, update)


class ProxSGDState(NamedTuple):
    """ProxSGD's step count, momentum ``v`` and second moment ``s``."""

    count: jax.Array
    v: object
    s: object


def prox_sgd(
    groups: TreeGroups,
    k=None,
    lam=0.0,
    weights=None,
    *,
    penalty: str = "wgsef",
    epsilon: float = 0.06,
    epsilon_decay: float = 0.5,
    rho: float = 0.9,
    rho_decay: float = 0.5,
    beta: float = 0.999,
    gamma: float = 4.0,
    delta: float = 1e-8,
    method: str = "sort",
) -> optax.GradientTransformation:
    """ProxSGD with ``R = λ·WGSEF_k`` (``penalty="wgsef"``) or the group lasso (module doc).

    A complete optimizer (use it alone, not after another transform); ``k`` and ``lam`` may be
    schedules of the step count; leaves in no group take the unregularised ProxSGD step.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from memjax.nn import ChannelAxes
        >>> from memjax.sparsity import prox_sgd, tree_groups
        >>> p = {"w": jnp.array([[4.0, 3.0, 1.0, 0.5]])}
        >>> g = tree_groups(p, {"": {"w": ChannelAxes(out=1, in_=0)}})
        >>> tx = prox_sgd(g, k=2, lam=0.05)
        >>> u, _ = tx.update({"w": jnp.full((1, 4), 0.1)}, tx.init(p), p)
        >>> [round(float(v), 4) for v in optax.apply_updates(p, u)["w"][0]]
        [3.951, 2.961, 0.97, 0.485]
    """
    _check_groups(groups)
    check_choice("penalty", penalty, PENALTIES)
    check_choice("method", method, METHODS)
    if penalty == "wgsef" and k is None:
        raise ValueError("k: ProxSGD with the WGSEF needs k")
    for name, v in (("epsilon", epsilon), ("rho", rho), ("gamma", gamma), ("delta", delta)):
        if not v > 0:
            raise ValueError(f"{name}: expected a number > 0, got {v!r}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta: expected 0 <= beta < 1, got {beta!r}")

    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return ProxSGDState(jnp.zeros((), jnp.int32), zeros, zeros)

    def update(grads, state, params=None):
        _need_params(params, "prox_sgd")
        return apply(grads, state, params)

    @jax.jit
    def apply(grads, state, params):
        t = state.count.astype(jnp.float32)
        rho_t = rho / (t + gamma) ** rho_decay
        eps_t = epsilon / (t + gamma) ** epsilon_decay
        v = jax.tree_util.tree_map(lambda v, g: (1 - rho_t) * v + rho_t * g, state.v, grads)
        s = jax.tree_util.tree_map(lambda s, g: beta * s + (1 - beta) * g * g, state.s, grads)
        correction = 1 - beta ** (t + 1)
        tau = jax.tree_util.tree_map(lambda s: jnp.sqrt(s / correction) + delta, s)
        y = jax.tree_util.tree_map(lambda x, v, tau: x - v / tau, params, v, tau)
        found_y = groups.check(y)
        dtype = _dtype(found_y, groups)
        nu = group_norms_tree(y, groups)
        tau_bar = _sq_norms(groups.check(tau, "tau"), groups, dtype, fn=lambda x: x) / groups.sizes
        d, _ = _weights(groups, weights, dtype)
        count = state.count
        if penalty == "wgsef":
            nu2, d2 = jnp.sqrt(tau_bar) * nu, d / tau_bar
            blocks = _blocks(groups, _at(k, count), _at(lam, count))
            scale = block_prox_scales(
                nu2,
                d2,
                tuple((lo, hi) for lo, hi, _, _ in blocks),
                [kb for _, _, kb, _ in blocks],
                [lb for _, _, _, lb in blocks],
                method,
                (False,) * len(blocks),
            )
        else:
            lam_t = jnp.asarray(_at(lam, count), dtype)
            threshold = lam_t * jnp.sqrt(d) / tau_bar
            keep = nu > threshold
            scale = jnp.where(keep, 1 - threshold / jnp.where(keep, nu, 1), 0)
        x_hat = scale_groups(y, groups, scale)
        updates = jax.tree_util.tree_map(
            lambda xh, x: (eps_t * (xh - x)).astype(jnp.result_type(x)), x_hat, params
        )
        return updates, ProxSGDState(state.count + 1, v, s)

    return optax.GradientTransformation(init, update)
