"""The test registry: every memory in memjax, as factories ``dtype -> memory``.

Each entry passes the whole contract in ``tests/core/test_contract.py``. A new memory adds
itself here with configurations that exercise its learnable params.
"""

from memjax.core import MultiHead
from memjax.memories.linear import LinearMemory
from memjax.memories.titans.memory import TitansMemory

MEMORY_FACTORIES = {
    "delta_rule": lambda dtype: LinearMemory(
        d_key=4, d_value=3, theta=0.5, learn_init=True, dtype=dtype
    ),
    "gated_delta_rule": lambda dtype: LinearMemory(
        d_key=4,
        d_value=3,
        theta=0.5,
        alpha=0.1,
        gated=("theta", "alpha"),
        decay_form="gated_deltanet",
        dtype=dtype,
    ),
    "linear_momentum_decay": lambda dtype: LinearMemory(
        d_key=4,
        d_value=3,
        theta=0.3,
        eta=0.6,
        alpha=0.05,
        gated=("theta", "eta", "alpha"),
        loss="sum",
        learn_init=True,
        dtype=dtype,
    ),
    "multi_head_linear": lambda dtype: MultiHead(
        LinearMemory(
            d_key=4,
            d_value=2,
            theta=0.4,
            eta=0.5,
            alpha=0.1,
            gated=("theta", "eta", "alpha"),
            dtype=dtype,
        ),
        num_heads=2,
    ),
    "titans_mlp": lambda dtype: TitansMemory(
        d_key=4,
        d_value=4,
        depth=2,
        expansion=2,
        bias=True,
        residual_norm=True,
        theta=0.3,
        eta=0.6,
        alpha=0.05,
        gated=("theta", "eta", "alpha"),
        max_grad_norm=1.0,
        dtype=dtype,
    ),
}
