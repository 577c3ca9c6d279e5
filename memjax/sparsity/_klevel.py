"""Reaching exactly k groups: the top-k projection, masks, λ for k and k schedules.

One prox step of ``λ·WGSEF`` leaves **at least** k non-zero groups (arXiv 2212.12921 reaches the
pre-defined k "at convergence"; measured here for ten singleton groups ``x_j = 1/j``, ``k = 3``:
10, 5, 3, 3 non-zero groups after one step at λ = 0.1, 1, 10, 100, the Example below), so
memjax offers three ways to land on exactly k:

* :func:`lam_for_k` — the λ at which one prox step leaves exactly ``k`` groups. Derivation [R,
  tested]: with ``z_j = √d_j ν_j``, group ``j`` is zero after the step iff ``t ≤ √λ d_j/z_j``
  and saturated (``u_j = 1``) iff ``t ≥ (λ d_j + 1)/(√λ z_j)``. Exactly k survivors means
  ``Σ u_j = k`` with every survivor saturated, so the survivors ``S`` are the top k by
  ``z_j/d_j`` and a ``t`` must fit between both bounds:
  ``λ (d_i z_j − d_j z_i) ≥ z_i`` for all ``j ∈ S``, ``i ∉ S``, i.e.
  ``λ* = max_{j∈S, i∉S} z_i / (d_i z_j − d_j z_i)``; uniform weights give
  ``λ* = z_(k+1) / (z_(k) − z_(k+1))``. A tie at the k-th place has no such λ.
* :func:`top_k_masks` / :func:`project_top_k` — keep the k groups of largest ``z_j`` (ties by
  index), zero the rest; a final hard projection [I].
* :func:`prox_to_k` — one prox step at :func:`lam_for_k`'s λ: exactly k from the envelope.
* :func:`top_k_transition` — either as a runner phase transition
  (``memjax.train.Phase(..., transition=...)``); with :func:`~memjax.sparsity.keep_zero_groups`
  in the phase's optimizer the projected groups stay zero while the rest is fine-tuned.

:func:`linear_k_schedule` lowers ``k`` from ``m`` to the target over a warm-up (the proximal
transforms accept a schedule for ``k`` and for ``λ``).

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.nn import ChannelAxes
    >>> from memjax.sparsity import (count_nonzero_groups, lam_for_k, project_top_k,
    ...                              prox_wgsef_tree, tree_groups)
    >>> p = {"l": {"w": jnp.array([[4.0, 3.0, 1.0, 0.5]])}}          # ν = (4, 3, 1, 0.5)
    >>> g = tree_groups(p, {"l": {"w": ChannelAxes(out=1, in_=0)}})
    >>> lam = lam_for_k(p, g, 2)                                       # 1 / (3 − 1), + margin
    >>> round(lam, 4), int(count_nonzero_groups(prox_wgsef_tree(p, 1.0, g, 2, lam), g))
    (0.5005, 2)
    >>> q, mask = project_top_k(p, g, 3)
    >>> mask.tolist(), q["l"]["w"].tolist()
    ([True, True, True, False], [[4.0, 3.0, 1.0, 0.0]])
    >>> import numpy as np
    >>> from memjax.sparsity import prox_wgsef_linear_time
    >>> x = 1.0 / np.arange(1, 11)                                     # one step: >= k groups
    >>> [int(np.count_nonzero(prox_wgsef_linear_time(x, np.arange(10), 10, 3, lam)))
    ...  for lam in (0.1, 1.0, 10.0, 100.0)]
    [10, 5, 3, 3]
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_choice
from memjax.sparsity._arguments import check_k
from memjax.sparsity._groups import _layer_name
from memjax.sparsity._trees import _weights, group_norms_tree, prox_wgsef_tree, scale_groups

__all__ = [
    "apply_group_mask",
    "lam_for_k",
    "layer_masks",
    "linear_k_schedule",
    "project_top_k",
    "prox_to_k",
    "top_k_masks",
    "top_k_transition",
]


def _per_layer_k(groups, k):
    """``[(layer or None, lo, hi, k)]`` for an int (global) or per-layer ``k``."""
    if isinstance(k, Mapping):
        ks = {_layer_name(n): v for n, v in k.items()}
        if set(ks) != set(groups.layers):
            raise ValueError(f"k: a per-layer k must name every layer {groups.layers}")
        return [
            (n, lo, hi, check_k(ks[n], hi - lo))
            for n, (lo, hi) in zip(groups.layers, groups.slices)
        ]
    return [(None, 0, groups.num_groups, check_k(k, groups.num_groups))]


def _scores(params, groups, weights):
    nu = np.asarray(group_norms_tree(params, groups), np.float64)
    _, d = _weights(groups, weights, jnp.float32)
    return np.sqrt(np.asarray(d, np.float64)) * nu, np.asarray(d, np.float64), nu


def top_k_masks(params, groups, k, weights=None) -> np.ndarray:
    """``(m,)`` bool: the ``k`` groups of largest ``z_j = √d_j ν_j`` (ties by index; global
    ``k`` or ``{layer: k_l}``). Host-side (NumPy) on concrete params."""
    z, _, _ = _scores(params, groups, weights)
    mask = np.zeros(groups.num_groups, bool)
    for _, lo, hi, kb in _per_layer_k(groups, k):
        zb = z[lo:hi]
        order = np.lexsort((np.arange(hi - lo), -zb))
        mask[lo + order[:kb]] = True
    return mask


def apply_group_mask(params, groups, mask):
    """``params`` with every group outside ``mask`` (``(m,)`` bool) set to zero."""
    mask = jnp.asarray(mask)
    if mask.shape != (groups.num_groups,) or mask.dtype != jnp.bool_:
        raise ValueError(
            f"mask: expected bool of shape ({groups.num_groups},), got {mask.dtype}{mask.shape}"
        )
    return scale_groups(params, groups, mask.astype(jnp.float32))


def project_top_k(params, groups, k, weights=None):
    """``(projected params, mask)``: :func:`top_k_masks` applied (module doc)."""
    mask = top_k_masks(params, groups, k, weights)
    return apply_group_mask(params, groups, mask), mask


def layer_masks(groups, mask) -> dict[str, np.ndarray]:
    """``{layer: its slice of mask}`` — per-layer keep-masks, e.g. for ``filter`` groups the
    kept output channels that :func:`memjax.pruning.shrink` takes per traced group."""
    mask = np.asarray(mask, bool)
    return {n: mask[lo:hi] for n, (lo, hi) in zip(groups.layers, groups.slices)}


def prox_to_k(params, groups, k, weights=None):
    """``(params after one prox step at λ = lam_for_k(...), λ)``: exactly ``k`` non-zero groups
    (per layer for ``{layer: k_l}``) from the envelope itself, survivors shrunk by
    ``1/(1 + λ d_j)``; raises like :func:`lam_for_k` on ties."""
    lam = lam_for_k(params, groups, k, weights)
    return prox_wgsef_tree(params, 1.0, groups, k, lam, weights), lam


def top_k_transition(groups, k, weights=None, *, mode="top_k"):
    """``train_state -> train_state`` with exactly ``k`` groups left: ``mode="top_k"``
    (:func:`project_top_k`) or ``"prox"`` (:func:`prox_to_k`). A deterministic phase
    transition (resume re-runs it to the same bytes)."""
    check_choice("mode", mode, ("top_k", "prox"))

    def transition(state):
        if mode == "top_k":
            params, _ = project_top_k(state.params, groups, k, weights)
        else:
            params, _ = prox_to_k(state.params, groups, k, weights)
        return state._replace(params=params)

    return transition


def _lam_star(z, d, k):
    """``λ*`` for one block (module doc); ``inf`` when a tie at the k-th place blocks it."""
    alive = z > 0
    n_alive = int(alive.sum())
    if n_alive < k:
        raise ValueError(
            f"k: only {n_alive} groups are non-zero; no λ leaves exactly k = {k} of them"
        )
    if n_alive == k:
        return 0.0
    ratio = np.where(alive, z / d, 0.0)
    order = np.lexsort((np.arange(len(z)), -ratio))
    s, rest = order[:k], order[k:]
    rest = rest[z[rest] > 0]
    zs, ds = z[s], d[s]
    worst = 0.0
    for chunk in np.array_split(rest, max(1, len(rest) * len(s) // 1_000_000 + 1)):
        gap = d[chunk][:, None] * zs[None, :] - ds[None, :] * z[chunk][:, None]
        if np.any(gap <= 0):
            return np.inf
        worst = max(worst, float(np.max(z[chunk][:, None] / gap)))
    return worst


def lam_for_k(params, groups, k, weights=None, *, step=1.0, margin=1e-3):
    """The λ at which one step ``prox_wgsef_tree(params, step, groups, k, λ)`` leaves exactly
    ``k`` non-zero groups: ``(1 + margin)·λ*/step`` (module doc for ``λ*``).

    ``k`` an int gives a float; ``{layer: k_l}`` gives ``{layer: λ_l}``. Raises ``ValueError``
    naming ``k`` when fewer than ``k`` groups are non-zero or groups tie at the k-th place
    (no λ separates them; use :func:`project_top_k`).
    """
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"step: expected a finite number > 0, got {step!r}")
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin: expected a finite number >= 0, got {margin!r}")
    z, d, _ = _scores(params, groups, weights)
    out = {}
    for name, lo, hi, kb in _per_layer_k(groups, k):
        lam = _lam_star(z[lo:hi], d[lo:hi], kb)
        if not np.isfinite(lam):
            raise ValueError(
                f"k: groups tie at place {kb}{'' if name is None else f' of layer {name!r}'}; "
                "no λ leaves exactly k (use project_top_k)"
            )
        out[name] = (1 + margin) * lam / step
    return out[None] if None in out else out


def linear_k_schedule(start: int, end: int, transition_steps: int, *, delay: int = 0):
    """``count -> k``: ``start`` for ``delay`` steps, then linearly down to ``end`` over
    ``transition_steps`` (rounded up, so ``k`` never undershoots), then ``end``.

    Example:
        >>> from memjax.sparsity import linear_k_schedule
        >>> sched = linear_k_schedule(10, 3, 7)
        >>> [int(sched(t)) for t in (0, 1, 4, 7, 100)]
        [10, 9, 6, 3, 3]
    """
    for name, v in (("start", start), ("end", end)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    if end > start:
        raise ValueError(f"end: expected end <= start = {start}, got {end}")
    if not isinstance(transition_steps, int | np.integer) or transition_steps < 1:
        raise ValueError(f"transition_steps: expected a positive int, got {transition_steps!r}")

    def schedule(count):
        frac = jnp.clip((jnp.asarray(count, jnp.float32) - delay) / transition_steps, 0, 1)
        return jnp.ceil(start - frac * (start - end) - 1e-6).astype(jnp.int32)

    return schedule
