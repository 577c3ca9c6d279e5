"""The test registries: every memory, cell and sequence layer in memjax, tiny sizes.

* ``MEMORY_FACTORIES`` — ``dtype -> memory``; the memory contract (``tests/core/test_contract.py``).
* ``CELL_FACTORIES`` — ``dtype -> cell``; the cell contract (``tests/core/test_cell_contract.py``).
* ``LAYER_CASES`` — :class:`~memjax.core.testing.layer_contract.LayerCase` per layer; the layer
  contract (``tests/core/test_layer_contract.py``). ``LAYER_FACTORIES`` are their factories.

A new component adds itself here with configurations that exercise its learnable params.
"""

from memjax.core import MultiHead
from memjax.core.testing.layer_contract import LayerCase
from memjax.memories.linear import LinearMemory
from memjax.memories.mann import MANNCell
from memjax.memories.nmn import NMNCell
from memjax.memories.ntm import NTMCell
from memjax.memories.titans.memory import TitansMemory
from memjax.models.associative import AssociativeLayer
from memjax.models.memory_cell import ControllerMemoryCell
from memjax.models.sequence_model import SequenceModel
from memjax.models.titans.hybrids import MAG, MAL
from memjax.models.titans.lmm import TitansLMM
from memjax.models.titans.mac import MAC
from memjax.nn.attention import Attention
from memjax.nn.lstm import LSTMCell

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

CELL_FACTORIES = {
    "lstm": lambda dtype: LSTMCell(d_input=3, d_hidden=4, dtype=dtype),
    "lstm_over_linear_memory": lambda dtype: ControllerMemoryCell.build(
        LSTMCell,
        LinearMemory(d_key=4, d_value=3, eta=0.5, alpha=0.1, learn_init=True, dtype=dtype),
        d_input=2,
        d_hidden=5,
    ),
    # Fast & Slow Learning's memory cells, one per memory, both controllers between them (the
    # other controller of each is in tests/memories/test_memory_cells.py). MANN has one head
    # here: with more, float32 near-ties among least-used slots break vmap == stacked.
    "ntm_lstm": lambda dtype: NTMCell(
        3, 4, memory_size=5, memory_width=3, num_read_heads=2, num_write_heads=2, dtype=dtype
    ),
    "mann_lstm": lambda dtype: MANNCell(
        3, 4, memory_size=5, memory_width=3, num_heads=1, dtype=dtype
    ),
    "nmn_feedforward": lambda dtype: NMNCell(
        3,
        4,
        memory_size=5,
        memory_width=3,
        controller="feedforward",
        write_input="read",
        similarity="cosine",
        dtype=dtype,
    ),
}

D = 8  # d_model of every layer


def _gated_delta(dtype):
    memory = LinearMemory(
        4, 4, alpha=0.1, gated=("theta", "alpha"), decay_form="gated_deltanet", dtype=dtype
    )
    return AssociativeLayer(D, 2, memory, chunk_size=3, conv_width=3)


def _lmm(dtype, num_persistent=2, depth=2):
    return TitansLMM(D, 2, chunk_size=3, depth=depth, num_persistent=num_persistent, dtype=dtype)


# The Titans hybrids build their attention in float32, so these gradient checks are as exact as
# float32 allows.
_F32_SOFTMAX = dict(grad_rtol=1e-3, fd_eps=1e-4)

LAYER_CASES = {
    "associative": LayerCase(_gated_delta, split=4),
    "titans_lmm": LayerCase(_lmm, split=4),
    "mac": LayerCase(
        lambda dtype: MAC(D, 2, segment_size=4, num_persistent=2, memory=_lmm(dtype, 0, depth=1)),
        split=4,
        **_F32_SOFTMAX,
    ),
    "mag": LayerCase(
        lambda dtype: MAG(D, 2, window=3, num_persistent=2, memory=_lmm(dtype, 0, depth=1)),
        split=4,
        **_F32_SOFTMAX,
    ),
    "mal": LayerCase(
        lambda dtype: MAL(D, 2, window=3, num_persistent=2, memory=_lmm(dtype, 0, depth=1)),
        split=4,
        **_F32_SOFTMAX,
    ),
    "attention": LayerCase(
        lambda dtype: Attention(D, 2, num_persistent=2, dtype=dtype), split=None
    ),
    "sliding_window_attention": LayerCase(
        lambda dtype: Attention(D, 2, window=3, dtype=dtype), split=4
    ),
    "sequence_model": LayerCase(
        lambda dtype: SequenceModel(11, D, 2, _gated_delta(dtype), mlp_ratio=2), split=4
    ),
}

LAYER_FACTORIES = {name: case.factory for name, case in LAYER_CASES.items()}
