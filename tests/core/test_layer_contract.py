"""The layer contract (memjax.core.testing.layer_contract), run over every sequence layer."""

import pytest

from memjax.core.testing.layer_contract import LAYER_CHECKS
from tests.registry import LAYER_CASES


def _cases():
    for name in sorted(LAYER_CASES):
        for check in LAYER_CHECKS:
            yield pytest.param(name, check, id=f"{name}-{check.__name__}")


@pytest.mark.parametrize(("name", "check"), list(_cases()))
def test_layer_contract(name, check):
    check(LAYER_CASES[name])
