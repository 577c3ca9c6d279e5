"""The functional core: the memory protocol, specs, generic drivers, checks and tree helpers."""

from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.drivers import scan
from memjax.core.heads import MultiHead, multi_head
from memjax.core.protocol import Memory, SequenceLayer
from memjax.core.spec import spec
from memjax.core.token_step import step
from memjax.core.trees import (
    tree_all_finite,
    tree_cast,
    tree_index,
    tree_size,
    tree_stack,
    tree_stop_gradient,
    tree_where,
)

__all__ = [
    "Memory",
    "MultiHead",
    "SequenceLayer",
    "check_array",
    "check_choice",
    "check_positive_int",
    "multi_head",
    "scan",
    "spec",
    "step",
    "tree_all_finite",
    "tree_cast",
    "tree_index",
    "tree_size",
    "tree_stack",
    "tree_stop_gradient",
    "tree_where",
]
