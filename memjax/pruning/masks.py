r"""Group scores, keep counts and channel masks over traced groups.

* :func:`group_scores` aggregates per-layer filter scores onto a group's units, as DepGraph's
  group-level importance does: each scored producer (a member with role ``"out"`` or
  ``"depthwise"``) maps its filter scores to units, and a unit's score is the ``"mean"``
  (default), ``"sum"`` or ``"max"`` over the producers that touch it.
* :func:`keep_count` is the HRankPlus rule (spec ``beta_rank.md`` §4 step 6): a group of
  :math:`C` units pruned at ratio :math:`c \in [0, 1)` keeps :math:`\lfloor C (1 - c) \rfloor`
  units (``int(C * (1 - c))`` in floating point, as the released code), optionally rounded up
  to a multiple of ``round_to`` (hardware-friendly widths, at most :math:`C`) and raised to at
  least ``min_width`` (at most :math:`C`).
* **Width policy.** Latency after surgery depends on the widths, not only on the FLOPs. On
  XLA:CPU (jax 0.10) ``round_to=2`` keeps every width even, which the faster narrow-conv path
  of :class:`~memjax.nn.Conv2D` (``impl="auto"``) needs (an odd input width ``> 1`` stays on the
  slower kernel), and ``round_to=8`` keeps the vector lanes full; ``min_width`` stops a layer
  from shrinking below the width where its time stops falling. :func:`nested_mask` keeps given
  widths per *stage* of one group whose units come in nested stages — the option-A residual
  stream of a CIFAR ResNet, where stage :math:`s` owns the units of stages :math:`< s` plus
  new ones — so each stage can get its own width (e.g. 8/16/32) although the group is one.
* :func:`masks_from_scores` keeps the top-scoring units of each group — ties broken by index,
  lower first, so equal (e.g. min-max-normalised constant) scores keep the first units — and
  returns one boolean mask per group (``True`` = kept).
* :func:`apply_masks` zeroes every member slice of the pruned units in ``params``: the *masked*
  network, which computes what the materialised one (:mod:`memjax.pruning.surgery`) computes.

Ratios (and ``n_keep``) are one number for every prunable scored group, a sequence with one entry
per group, or a mapping from a group's name — or the name of any producer in it, e.g. a conv
kernel ``"params/conv3/kernel"`` — to its ratio.

Example:
    >>> import numpy as np
    >>> from memjax.pruning import keep_count, masks_from_scores
    >>> keep_count(64, 0.65), keep_count(64, 0.65, round_to=8), keep_count(16, 0.9, min_width=4)
    (22, 24, 4)
    >>> from memjax.pruning.groups import Group, Member
    >>> g = Group("params/w", 4, (Member(("params", "w"), 1, np.arange(4), np.arange(4), "out"),),
    ...           ("params/w",), True)
    >>> [m.tolist() for m in masks_from_scores([np.array([0.5, 0.1, 0.5, 0.9])], [g], ratio=0.5)]
    [[True, False, False, True]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_choice
from memjax.pruning.groups import Group, path_name, tree_paths

__all__ = ["apply_masks", "group_scores", "keep_count", "masks_from_scores", "nested_mask"]


def _check_width(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _policy(size: int, kept: int, round_to: int | None, min_width: int | None) -> int:
    _check_width("round_to", round_to)
    _check_width("min_width", min_width)
    if round_to is not None:
        kept = min(size, math.ceil(kept / round_to) * round_to)
    if min_width is not None:
        kept = max(kept, min(size, min_width))
    return kept


def keep_count(
    size: int, ratio: float, *, round_to: int | None = None, min_width: int | None = None
) -> int:
    """Units kept of ``size`` at pruning ratio ``ratio`` (module doc)."""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio < 1:
        raise ValueError(f"ratio: expected a number in [0, 1), got {ratio!r}")
    return _policy(size, int(size * (1 - ratio)), round_to, min_width)


def group_scores(layer_scores: Mapping, groups: Sequence[Group], *, reduce: str = "mean"):
    """Per-group unit scores from per-layer filter scores (module doc).

    Args:
        layer_scores: producer variable name (``"params/conv1/kernel"`` or a path tuple) →
            scores along its output axis.
        groups: from :func:`~memjax.pruning.trace_groups`.
        reduce: how producers touching one unit combine: ``"mean"``, ``"sum"`` or ``"max"``.

    Returns:
        One ``(size,)`` array per group, ``None`` for a group no scored producer touches; a
        unit no scored producer touches scores ``+inf`` (kept first).
    """
    check_choice("reduce", reduce, ("mean", "sum", "max"))
    scores = {path_name(k): np.asarray(v, np.float64) for k, v in layer_scores.items()}
    used = set()
    combine = {"mean": np.nanmean, "sum": np.nansum, "max": np.nanmax}[reduce]
    out = []
    for group in groups:
        rows = []
        for m in group.members:
            if m.role not in ("out", "depthwise") or m.name not in scores:
                continue
            s = scores[m.name]
            if s.ndim != 1 or s.shape[0] <= m.positions.max():
                raise ValueError(
                    f"layer_scores[{m.name!r}]: expected one score per channel of "
                    f"axis {m.axis} (> {m.positions.max()}), got shape {s.shape}"
                )
            used.add(m.name)
            row = np.full(group.size, np.nan)
            for u in np.unique(m.units):
                row[u] = combine(s[m.positions[m.units == u]])
            rows.append(row)
        if not rows:
            out.append(None)
            continue
        table = np.stack(rows)
        missing = np.isnan(table).all(axis=0)
        table[:, missing] = np.inf
        out.append(combine(table, axis=0))
    unknown = sorted(set(scores) - used - {m.name for g in groups for m in g.members})
    if unknown:
        raise KeyError(f"layer_scores: {unknown} are not producers of any group")
    return out


def _per_group(name: str, value, groups: Sequence[Group], check) -> list:
    """``value`` (a number, a sequence per group, or a mapping name -> number) per group."""
    if isinstance(value, Mapping):
        out = [None] * len(groups)
        for key, v in value.items():
            key = path_name(key)
            hits = [i for i, g in enumerate(groups) if g.name == key or key in g.producers]
            if not hits:
                raise KeyError(f"{name}: {key!r} names no group (nor a producer in one)")
            i = hits[0]
            if out[i] is not None and out[i] != v:
                raise ValueError(
                    f"{name}: group {groups[i].name!r} is given {out[i]!r} and "
                    f"{v!r} (its producers are coupled)"
                )
            out[i] = check(v)
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(groups):
            raise ValueError(
                f"{name}: expected one entry per group ({len(groups)}), got {len(value)}"
            )
        return [None if v is None else check(v) for v in value]
    return check(value)


def masks_from_scores(
    scores,
    groups: Sequence[Group],
    *,
    ratio=None,
    n_keep=None,
    round_to: int | None = None,
    min_width: int | None = None,
) -> list[np.ndarray]:
    """One boolean keep-mask per group from unit scores (module doc).

    Args:
        scores: one ``(size,)`` array (or ``None``) per group, e.g. from :func:`group_scores`,
            or a mapping group name → array.
        groups: the traced groups.
        ratio: pruning ratio(s) in ``[0, 1)`` (module doc for the forms).
        n_keep: kept unit count(s) instead of ``ratio``.
        round_to: round kept counts up to a multiple of this.
        min_width: keep at least this many units of every pruned group (or all, if fewer).
    """
    if (ratio is None) == (n_keep is None):
        raise ValueError("ratio: give exactly one of ratio and n_keep")
    if isinstance(scores, Mapping):
        table = _per_group("scores", scores, groups, lambda v: v)
    else:
        if len(scores) != len(groups):
            raise ValueError(
                f"scores: expected one entry per group ({len(groups)}), got {len(scores)}"
            )
        table = list(scores)
    if ratio is not None:
        amounts = _per_group("ratio", ratio, groups, _check_ratio)
        name, broadcast = "ratio", not isinstance(ratio, Mapping | Sequence)
    else:
        amounts = _per_group("n_keep", n_keep, groups, _check_count)
        name, broadcast = "n_keep", not isinstance(n_keep, Mapping | Sequence)
    masks = []
    for i, group in enumerate(groups):
        amount = amounts if broadcast else amounts[i]
        s = table[i]
        full = np.ones(group.size, bool)
        trivial = amount is None or (name == "ratio" and amount == 0)
        if trivial or (broadcast and (not group.prunable or s is None)):
            masks.append(full)
            continue
        if not group.prunable:
            raise ValueError(f"{name}: group {group.name!r} cannot be pruned ({group.reason})")
        if s is None:
            raise ValueError(f"scores: group {group.name!r} has a {name} but no scores")
        s = np.asarray(s, np.float64)
        if s.shape != (group.size,) or np.isnan(s).any():
            raise ValueError(
                f"scores: group {group.name!r} needs {group.size} non-NaN scores, "
                f"got shape {s.shape}"
            )
        if name == "ratio":
            kept = keep_count(group.size, amount, round_to=round_to, min_width=min_width)
        else:
            kept = _policy(group.size, amount, round_to, min_width) if amount else 0
        if not 1 <= kept <= group.size:
            raise ValueError(
                f"{name}: {amount!r} keeps {kept} of the {group.size} channels of "
                f"group {group.name!r}; at least one must stay"
            )
        order = np.lexsort((np.arange(group.size), -s))
        mask = np.zeros(group.size, bool)
        mask[order[:kept]] = True
        masks.append(mask)
    return masks


def nested_mask(group: Group, scores, widths: Sequence[int], *, stages: Sequence) -> np.ndarray:
    """A keep-mask of ``group`` keeping ``widths[s]`` units in nested stage ``s`` (module doc).

    Stage ``s``'s units are those of the member ``stages[s]`` (a producer's name, or a
    ``(name, axis)`` pair), and must contain the units of every earlier stage. Stage 0 keeps
    its ``widths[0]`` top-scoring units; stage ``s`` keeps those and adds the top-scoring of
    the units it adds, up to ``widths[s]`` (ties by index, lower first). For a CIFAR ResNet's
    residual stream, ``stages`` is :meth:`memjax.models.cnn.ResNet.stream_stages`.

    Example:
        >>> from memjax.pruning.groups import Group, Member
        >>> units = np.arange(4)
        >>> g = Group("b", 4, (Member(("a",), 0, units[:2], units[:2], "out"),
        ...                    Member(("b",), 0, units, units, "out")), ("a", "b"), True)
        >>> nested_mask(g, np.array([0.1, 0.9, 0.5, 0.2]), (1, 2), stages=("a", "b")).tolist()
        [False, True, True, False]
    """
    if len(widths) != len(stages):
        raise ValueError(f"widths: expected one per stage ({len(stages)}), got {len(widths)}")
    scores = np.asarray(scores, np.float64)
    if scores.shape != (group.size,) or np.isnan(scores).any():
        raise ValueError(f"scores: expected {group.size} non-NaN scores, got {scores.shape}")
    keep, seen = np.zeros(group.size, bool), set()
    for stage, width in zip(stages, widths):
        name, axis = stage if isinstance(stage, tuple) else (stage, None)
        units = np.unique(group.member(name, axis).units)
        if not seen <= set(units.tolist()):
            raise ValueError(f"stages: {name!r} does not contain the units of the stages before")
        free = [int(u) for u in units if int(u) not in seen]
        seen |= set(units.tolist())
        need = width - int(keep[units].sum()) if isinstance(width, int) else -1
        if isinstance(width, bool) or need < 0 or need > len(free):
            raise ValueError(
                f"widths: stage {name!r} can keep {int(keep[units].sum())}..{len(units)} "
                f"units, got {width!r}"
            )
        order = sorted(free, key=lambda u: (-scores[u], u))
        keep[order[:need]] = True
    if not keep.any():
        raise ValueError("widths: every unit of the group would be pruned")
    return keep


def _check_ratio(v):
    keep_count(1, v)  # raises on a ratio outside [0, 1)
    return v


def _check_count(v):
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
        raise ValueError(f"n_keep: expected a non-negative int, got {v!r}")
    return int(v)


def check_masks(masks, groups: Sequence[Group]) -> list[np.ndarray]:
    """``masks`` as boolean arrays, one per group, each keeping at least one unit."""
    if len(masks) != len(groups):
        raise ValueError(f"masks: expected one per group ({len(groups)}), got {len(masks)}")
    out = []
    for mask, group in zip(masks, groups):
        mask = np.asarray(mask)
        if mask.shape != (group.size,) or mask.dtype != bool:
            raise ValueError(
                f"masks: group {group.name!r} needs a bool mask of shape "
                f"({group.size},), got {mask.dtype} {mask.shape}"
            )
        if not mask.any():
            raise ValueError(f"masks: group {group.name!r} would lose every channel")
        if not group.prunable and not mask.all():
            raise ValueError(f"masks: group {group.name!r} cannot be pruned ({group.reason})")
        out.append(mask)
    return out


def dropped_positions(groups: Sequence[Group], masks) -> dict[tuple[str, int], np.ndarray]:
    """``(variable name, axis) -> sorted positions`` that the pruned units remove."""
    drop: dict[tuple[str, int], set] = {}
    for group, mask in zip(groups, check_masks(masks, groups)):
        for m in group.members:
            gone = m.positions[~mask[m.units]]
            if len(gone):
                drop.setdefault((m.name, m.axis), set()).update(gone.tolist())
    return {k: np.array(sorted(v), np.int64) for k, v in drop.items()}


def apply_masks(params, groups: Sequence[Group], masks, *, prefix: str = "params"):
    """``params`` with every member slice of the pruned units set to zero (module doc).

    ``prefix`` is the first element of the member paths that name ``params`` (the traced tree).
    """
    drop = dropped_positions(groups, masks)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    out = []
    for path, leaf in zip(tree_paths(params, (prefix,)), leaves):
        name = path_name(path)
        for axis in range(jnp.ndim(leaf)):
            gone = drop.get((name, axis))
            if gone is not None:
                keep = np.ones(jnp.shape(leaf)[axis], bool)
                keep[gone] = False
                shape = [1] * jnp.ndim(leaf)
                shape[axis] = -1
                leaf = jnp.where(jnp.reshape(jnp.asarray(keep), shape), leaf, jnp.zeros_like(leaf))
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)
