"""memjax: memory and sparsity mechanisms from research papers as pure-functional JAX modules.

The top level re-exports the functional core and the memories; the framework layers, data and
the experiment runner are subpackages: ``memjax.nnx``, ``memjax.eqx``, ``memjax.data``,
``memjax.train``.
"""

from memjax.core import Memory, MultiHead, SequenceLayer, multi_head, scan, spec, step
from memjax.memories.linear import LinearMemory, LinearState
from memjax.models.associative import AssociativeLayer, AssociativeState
from memjax.models.sequence_model import SequenceModel

__version__ = "0.1.0"

__all__ = [
    "AssociativeLayer",
    "AssociativeState",
    "LinearMemory",
    "LinearState",
    "Memory",
    "MultiHead",
    "SequenceLayer",
    "SequenceModel",
    "__version__",
    "multi_head",
    "scan",
    "spec",
    "step",
]
