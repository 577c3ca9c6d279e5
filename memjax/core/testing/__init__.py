"""Contract checks that every memjax component passes, for use in memjax's and users' tests.

* :func:`check_memory_contract` — memories (:class:`memjax.core.Memory`) under ``scan``/``step``;
* :func:`check_cell_contract` — closed-loop cells (:class:`memjax.core.Cell`) under ``unroll``;
* :func:`check_layer_contract` — sequence layers (:class:`memjax.core.SequenceLayer`), each
  described by a :class:`LayerCase`.

Example:
    >>> from memjax.core.testing import check_memory_contract
    >>> from memjax.memories.linear import LinearMemory
    >>> check_memory_contract(lambda dtype: LinearMemory(3, 2, learn_init=True, dtype=dtype))
"""

from memjax.core.testing.cell_contract import (
    CELL_CHECKS as CELL_CHECKS,
    check_cell_contract as check_cell_contract,
    loop_of_cell_steps as loop_of_cell_steps,
)
from memjax.core.testing.layer_contract import (
    LAYER_CHECKS as LAYER_CHECKS,
    LayerCase as LayerCase,
    check_layer_contract as check_layer_contract,
)
from memjax.core.testing.memory_contract import (
    CONTRACT_CHECKS as CONTRACT_CHECKS,
    assert_trees_allclose as assert_trees_allclose,
    check_memory_contract as check_memory_contract,
    directional_fd as directional_fd,
    float64 as float64,
    loop_of_steps as loop_of_steps,
    random_sequence as random_sequence,
)

__all__ = [
    "CELL_CHECKS",
    "CONTRACT_CHECKS",
    "LAYER_CHECKS",
    "LayerCase",
    "assert_trees_allclose",
    "check_cell_contract",
    "check_layer_contract",
    "check_memory_contract",
    "directional_fd",
    "float64",
    "loop_of_cell_steps",
    "loop_of_steps",
    "random_sequence",
]
