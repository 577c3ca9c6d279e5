"""Pruning (tmp)."""
from memjax.pruning.groups import Group as Group, Member as Member, trace_groups as trace_groups, UntraceableOpError as UntraceableOpError
from memjax.pruning.scores import beta_rank_scores as beta_rank_scores, minmax as minmax
