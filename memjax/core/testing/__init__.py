"""Contract checks that every memjax component passes, for use in memjax's and users' tests.

Example:
    >>> from memjax.core.testing import check_memory_contract
    >>> from memjax.memories.linear import LinearMemory
    >>> check_memory_contract(lambda dtype: LinearMemory(d_key=3, d_value=2, dtype=dtype))
"""

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
    "CONTRACT_CHECKS",
    "assert_trees_allclose",
    "check_memory_contract",
    "directional_fd",
    "float64",
    "loop_of_steps",
    "random_sequence",
]
