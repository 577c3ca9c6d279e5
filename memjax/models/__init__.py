"""Architectures built from memories and :mod:`memjax.nn`: layers with projections, sequence models.

* :mod:`~memjax.models.associative` — :class:`AssociativeLayer`: projections, a causal conv and
  heads of any memory (Gated DeltaNet over a gated :class:`~memjax.memories.LinearMemory`);
* :mod:`~memjax.models.sequence_model` — :class:`SequenceModel`: embedding, pre-norm blocks of
  [mixer + MLP], read-out;
* :mod:`~memjax.models.titans` — Titans' LMM layer, MAC, MAG, MAL and :func:`build_model`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models import build_model
    >>> model = build_model("lmm", vocab_size=10, d_model=8, num_layers=1, chunk_size=4)
    >>> p = model.init_params(jax.random.key(0))
    >>> logits, _ = model.apply(p, model.init_state(p), jnp.arange(6))
    >>> logits.shape
    (6, 10)
"""

from memjax.models.associative import (
    AssociativeLayer as AssociativeLayer,
    AssociativeState as AssociativeState,
)
from memjax.models.sequence_model import SequenceModel as SequenceModel
from memjax.models.titans import (
    KINDS as KINDS,
    MAC as MAC,
    MAG as MAG,
    MAL as MAL,
    TitansLMM as TitansLMM,
    build_model as build_model,
)

__all__ = [
    "KINDS",
    "MAC",
    "MAG",
    "MAL",
    "AssociativeLayer",
    "AssociativeState",
    "SequenceModel",
    "TitansLMM",
    "build_model",
]
