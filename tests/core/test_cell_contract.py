"""The cell contract (memjax.core.testing.cell_contract), run over every cell in the registry."""

import pytest

from memjax.core.testing.cell_contract import CELL_CHECKS
from tests.registry import CELL_FACTORIES


@pytest.mark.parametrize("check", CELL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(CELL_FACTORIES))
def test_cell_contract(name, check):
    check(CELL_FACTORIES[name])
