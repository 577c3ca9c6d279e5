r"""Surgery: physically smaller arrays and a new spec from traced groups and keep-masks.

Masks alone make nothing faster (spec ``beta_rank.md`` §8: "I pruned and nothing got faster").
:func:`shrink` removes, for every pruned unit of every group, the positions its members list —
the conv's filters, bias, BatchNorm scale/shift **and running mean/var** (copied, not
re-initialised as the released code does), the next layers' input slices (strided rows of a dense
layer after a flatten), residual partners — and returns new arrays together with ``kept``: for
each pruned ``(variable name, axis)`` the *old* positions that stay, in order.

It works on any pytrees (``params`` and an optional ``model_state``, the trees given to
:func:`~memjax.pruning.trace_groups`), so it serves Beta-Rank and the WGSEF group code alike.
What it cannot change is the *function*: a spec whose widths, pads, concatenation sizes or
channel maps are static must be rebuilt. :func:`materialize` asks the spec for that through the
protocol ``spec.pruned(kept) -> new spec`` (the memjax CNNs implement it) and checks that the new
spec's ``init_params`` (and ``init_state``) shapes equal the shrunk arrays'.

**Masked = materialised.** With :func:`~memjax.pruning.apply_masks` (pruned slices zeroed) a
pruned channel is zero wherever it flows and its consumers ignore it, so the masked network's
outputs equal the materialised network's up to floating-point summation order — as long as
no pruned channel enters a reduction over channels (LayerNorm, softmax over channels), where
removing a channel and zeroing it differ.

**Folded BatchNorm for inference.** ``materialize(..., fold_bn=True)`` also folds every
evaluation-mode BatchNorm into the layer before it through ``spec.folded(params, state) ->
(spec, params, state)`` (the memjax CNNs implement it: :math:`W' = W g`, :math:`b' = (b -
\hat\mu) g + \beta`, :math:`g = \gamma/\sqrt{\hat\sigma^2 + \epsilon}`, Ioffe & Szegedy 2015,
Alg. 2): the network a user deploys, for latency, equal to the unfolded one up to rounding.

Example:
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from memjax.pruning import apply_masks, shrink, trace_groups
    >>> def mlp(params, x):
    ...     return jax.nn.relu(x @ params["w1"] + params["b1"][None]) @ params["w2"]
    >>> params = {"w1": jnp.arange(12.0).reshape(3, 4), "b1": jnp.ones(4),
    ...           "w2": jnp.ones((4, 2))}
    >>> groups = trace_groups(mlp, params, jnp.ones((1, 3)))
    >>> masks = [np.array([True, False, True, False]), np.ones(2, bool)]
    >>> small = shrink(params, groups, masks)
    >>> small.params["w1"].shape, small.params["w2"].shape, small.kept[("params/w1", 1)].tolist()
    ((3, 2), (2, 2), [0, 2])
    >>> x = jnp.ones((1, 3))
    >>> bool(jnp.allclose(mlp(small.params, x), mlp(apply_masks(params, groups, masks), x)))
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from memjax.pruning.groups import Group, path_name, tree_paths
from memjax.pruning.masks import dropped_positions

__all__ = ["Shrunk", "count_params", "materialize", "shrink"]


class Shrunk(NamedTuple):
    """The result of :func:`shrink`: smaller ``params`` and ``model_state`` (``None`` if none
    was given) and ``kept[(name, axis)]``, the old positions kept along each pruned axis."""

    params: Any
    model_state: Any
    kept: dict


def _shrink_tree(tree, prefix: str, drop: dict, kept: dict):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out = []
    for path, leaf in zip(tree_paths(tree, (prefix,)), leaves):
        name = path_name(path)
        for axis in range(jnp.ndim(leaf)):
            gone = drop.get((name, axis))
            if gone is None:
                continue
            keep = np.setdiff1d(np.arange(jnp.shape(leaf)[axis]), gone)
            kept[(name, axis)] = keep
            leaf = jnp.take(jnp.asarray(leaf), jnp.asarray(keep), axis=axis)
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)


def shrink(params, groups: Sequence[Group], masks, *, model_state=None) -> Shrunk:
    """Drop the pruned units' positions from ``params`` and ``model_state`` (module doc).

    Args:
        params: the pytree traced as ``params`` (member paths ``"params/..."``).
        groups: from :func:`~memjax.pruning.trace_groups`.
        masks: one boolean keep-mask per group (:func:`~memjax.pruning.masks_from_scores`).
        model_state: the pytree traced as ``model_state``, if any.
    """
    drop = dropped_positions(groups, masks)
    known = {(m.name, m.axis) for g in groups for m in g.members}
    kept: dict = {}
    new_params = _shrink_tree(params, "params", drop, kept)
    new_state = (
        None if model_state is None else _shrink_tree(model_state, "model_state", drop, kept)
    )
    missing = sorted(k for k in drop if k not in kept and k in known)
    if missing:
        raise ValueError(
            f"params: groups name {missing}, which are not in the given trees "
            "(trace and shrink the same params and model_state)"
        )
    return Shrunk(new_params, new_state, kept)


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: (tuple(a.shape), str(a.dtype)), tree)


def materialize(
    spec, params, groups: Sequence[Group], masks, *, model_state=None, fold_bn: bool = False
):
    """``(new_spec, params, model_state)`` of the pruned network (module doc).

    ``spec`` must offer ``pruned(kept) -> spec``; the new spec is checked against the shrunk
    arrays through ``jax.eval_shape`` of its ``init_params`` (and ``init_state``). With
    ``fold_bn=True`` the result is the evaluation-only network with BatchNorm folded in
    (``spec.folded``, module doc).
    """
    if not isinstance(fold_bn, bool):
        raise TypeError(f"fold_bn: expected a bool, got {fold_bn!r}")
    pruned = getattr(spec, "pruned", None)
    if not callable(pruned):
        raise TypeError(
            f"spec: {type(spec).__name__} has no pruned(kept) method to rebuild "
            "itself; use shrink() for the arrays alone"
        )
    small = shrink(params, groups, masks, model_state=model_state)
    new_spec = pruned(small.kept)
    want = jax.eval_shape(new_spec.init_params, jax.random.key(0))
    if _shapes(want) != _shapes(small.params):
        raise ValueError(
            f"spec: {type(spec).__name__}.pruned gives params shaped "
            f"{_shapes(want)}, but surgery made {_shapes(small.params)}"
        )
    if model_state is not None and hasattr(new_spec, "init_state"):
        want = jax.eval_shape(new_spec.init_state)
        if _shapes(want) != _shapes(small.model_state):
            raise ValueError(
                f"spec: {type(spec).__name__}.pruned gives a model_state shaped "
                f"{_shapes(want)}, but surgery made {_shapes(small.model_state)}"
            )
    if fold_bn:
        folded = getattr(new_spec, "folded", None)
        if not callable(folded):
            raise TypeError(f"fold_bn: {type(spec).__name__} has no folded(params, state) method")
        return folded(small.params, small.model_state)
    return new_spec, small.params, small.model_state


def count_params(tree) -> int:
    """The number of scalars in a pytree of arrays (parameter count)."""
    return int(sum(np.prod(jnp.shape(a), dtype=np.int64) for a in jax.tree_util.tree_leaves(tree)))
