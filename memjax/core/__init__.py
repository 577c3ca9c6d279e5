"""The functional core: protocols, specs, generic drivers, controls, taps, checks and tree helpers.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax import core
    >>> from memjax.memories.linear import LinearMemory
    >>> mem = LinearMemory(d_key=2, d_value=1, theta=1.0)
    >>> p = mem.init_params(jax.random.key(0)); k = jnp.array([1.0, 0.0])
    >>> core.step(mem, p, mem.init_state(p), k, jnp.ones(1), k)[0]
    Array([1.], dtype=float32)
"""

from memjax.core import taps as taps
from memjax.core.checks import (
    check_array as check_array,
    check_choice as check_choice,
    check_positive_int as check_positive_int,
)
from memjax.core.controls import (
    check_controls as check_controls,
    in_range as in_range,
    known_controls as known_controls,
    register_control as register_control,
)
from memjax.core.drivers import scan as scan
from memjax.core.heads import MultiHead as MultiHead, multi_head as multi_head
from memjax.core.protocol import Cell as Cell, Memory as Memory, SequenceLayer as SequenceLayer
from memjax.core.spec import spec as spec
from memjax.core.taps import collect_taps as collect_taps, tap as tap
from memjax.core.token_step import step as step
from memjax.core.trees import (
    tree_all_finite as tree_all_finite,
    tree_cast as tree_cast,
    tree_index as tree_index,
    tree_size as tree_size,
    tree_stack as tree_stack,
    tree_stop_gradient as tree_stop_gradient,
    tree_where as tree_where,
)
from memjax.core.unroll import cut as cut, unroll as unroll

__all__ = [
    "Cell",
    "Memory",
    "MultiHead",
    "SequenceLayer",
    "check_array",
    "check_choice",
    "check_controls",
    "check_positive_int",
    "collect_taps",
    "cut",
    "in_range",
    "known_controls",
    "multi_head",
    "register_control",
    "scan",
    "spec",
    "step",
    "tap",
    "taps",
    "tree_all_finite",
    "tree_cast",
    "tree_index",
    "tree_size",
    "tree_stack",
    "tree_stop_gradient",
    "tree_where",
    "unroll",
]
