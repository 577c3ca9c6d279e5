"""The memory contract, run over every memory in the test registry."""

import pytest

from memjax.core import testing
from tests.registry import MEMORY_FACTORIES


@pytest.mark.parametrize("check", testing.CONTRACT_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(MEMORY_FACTORIES))
def test_contract(name, check):
    check(MEMORY_FACTORIES[name])
