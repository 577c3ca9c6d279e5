"""Pruning (tmp)."""
from memjax.pruning.groups import Group as Group, Member as Member, trace_groups as trace_groups, UntraceableOpError as UntraceableOpError
from memjax.pruning.scores import beta_rank_scores as beta_rank_scores, minmax as minmax
from memjax.pruning.baselines import l1_scores as l1_scores, hrank_scores as hrank_scores
from memjax.pruning.masks import masks_from_scores as masks_from_scores, keep_count as keep_count, apply_masks as apply_masks, group_scores as group_scores
from memjax.pruning.surgery import shrink as shrink, materialize as materialize
