r"""Structured pruning that really shrinks the network: Beta-Rank and baseline filter scores,
coupled channel groups found by tracing, keep-masks, and surgery to smaller arrays.

Beta-Rank (Homayounfar et al. 2023, arXiv 2304.07461; spec ``beta_rank.md``) scores conv filters
by :math:`\operatorname{mean}|W_k| \cdot \beta_k` from calibration activations. The pipeline:

1. **Scores** (:mod:`~memjax.pruning.scores`, :mod:`~memjax.pruning.baselines`,
   :mod:`~memjax.pruning.calibration`): :func:`beta_rank_scores` (``mode="paper"`` or
   ``"code_compat"``), :func:`l1_scores`, :func:`hrank_scores`, :func:`random_scores`,
   :func:`bn_scale_scores`, :func:`taylor_scores`; :func:`score_layers` scores every layer of a
   tapped model from a calibration batch.
2. **Groups** (:mod:`~memjax.pruning.groups`): :func:`trace_groups` follows channels through
   the jaxpr of the model's pure apply function (BatchNorm, activations, pooling, residual adds,
   concatenation, flatten) and returns the :class:`Group`\ s of parameter slices pruned together.
3. **Selection** (:mod:`~memjax.pruning.masks`): :func:`group_scores` aggregates layer scores
   per group; :func:`masks_from_scores` keeps :math:`\lfloor C(1 - c)\rfloor` units per group
   (ties by index, optional ``round_to`` and ``min_width``: the width policy); :func:`nested_mask`
   gives nested stages of one group their own widths; :func:`apply_masks` gives the masked
   network.
4. **Surgery** (:mod:`~memjax.pruning.surgery`): :func:`shrink` makes the arrays smaller
   (BatchNorm statistics copied); :func:`materialize` also rebuilds the spec
   (``spec.pruned(kept)``), so the pruned network is really smaller and faster;
   ``fold_bn=True`` also folds BatchNorm into the convs for inference (``spec.folded``).
5. **Cost** (:mod:`~memjax.pruning.cost`): :func:`xla_flops` (XLA's cost analysis of the
   compiled forward), :func:`count_params`, :func:`measure_latency` (wall and process CPU time)
   and :func:`model_cost`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.cnn import LeNet5
    >>> from memjax import pruning
    >>> net = LeNet5(channels=(4, 8), hidden=(16, 12))
    >>> params, state = net.init_params(jax.random.key(0)), net.init_state()
    >>> fn = lambda p, x: net.apply(p, state, x)[0]
    >>> x = jax.random.normal(jax.random.key(1), (8, 32, 32, 1))
    >>> groups = pruning.trace_groups(fn, params, x)
    >>> scores = pruning.score_layers("l1", fn, params, x, net.conv_layers())
    >>> masks = pruning.masks_from_scores(pruning.group_scores(scores, groups), groups,
    ...                                   ratio=0.5)
    >>> small, p2, _ = pruning.materialize(net, params, groups, masks)
    >>> small.channels, small.hidden
    ((2, 4), (8, 6))
    >>> masked = pruning.apply_masks(params, groups, masks)
    >>> bool(jnp.allclose(fn(masked, x), small.apply(p2, {}, x)[0], atol=1e-6))
    True
"""

from memjax.pruning.baselines import (
    bn_scale_scores as bn_scale_scores,
    hrank_scores as hrank_scores,
    l1_scores as l1_scores,
    random_scores as random_scores,
    taylor_scores as taylor_scores,
)
from memjax.pruning.calibration import METHODS as METHODS, score_layers as score_layers
from memjax.pruning.cost import (
    Latency as Latency,
    measure_latencies as measure_latencies,
    measure_latency as measure_latency,
    model_cost as model_cost,
    xla_flops as xla_flops,
)
from memjax.pruning.groups import (
    Group as Group,
    Member as Member,
    UntraceableOpError as UntraceableOpError,
    path_name as path_name,
    trace_groups as trace_groups,
    tree_paths as tree_paths,
)
from memjax.pruning.masks import (
    apply_masks as apply_masks,
    group_scores as group_scores,
    keep_count as keep_count,
    masks_from_scores as masks_from_scores,
    nested_mask as nested_mask,
)
from memjax.pruning.scores import (
    BetaRankStatistics as BetaRankStatistics,
    beta_rank_from_statistics as beta_rank_from_statistics,
    beta_rank_scores as beta_rank_scores,
    beta_rank_statistics as beta_rank_statistics,
    kernel_hwio as kernel_hwio,
    minmax as minmax,
    to_nhwc as to_nhwc,
)
from memjax.pruning.surgery import (
    Shrunk as Shrunk,
    count_params as count_params,
    materialize as materialize,
    shrink as shrink,
)

__all__ = [
    "METHODS",
    "BetaRankStatistics",
    "Group",
    "Latency",
    "Member",
    "Shrunk",
    "UntraceableOpError",
    "apply_masks",
    "beta_rank_from_statistics",
    "beta_rank_scores",
    "beta_rank_statistics",
    "bn_scale_scores",
    "count_params",
    "group_scores",
    "hrank_scores",
    "keep_count",
    "kernel_hwio",
    "l1_scores",
    "masks_from_scores",
    "materialize",
    "measure_latencies",
    "measure_latency",
    "minmax",
    "model_cost",
    "nested_mask",
    "path_name",
    "random_scores",
    "score_layers",
    "shrink",
    "taylor_scores",
    "to_nhwc",
    "trace_groups",
    "tree_paths",
    "xla_flops",
]
