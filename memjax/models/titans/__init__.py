"""Titans architectures (arXiv 2501.00663 §4): the LMM layer, MAC, MAG, MAL, :func:`build_model`.

* :mod:`~memjax.models.titans.lmm` — :class:`TitansLMM`, the memory as a sequence layer, over the
  raw entry points of :mod:`memjax.memories.titans`; its input/output pieces in
  :mod:`~memjax.models.titans.projections` and its gates in :mod:`~memjax.models.titans.gates`;
* :mod:`~memjax.models.titans.mac` — :class:`MAC`, memory as a context;
* :mod:`~memjax.models.titans.hybrids` — :class:`MAG` and :class:`MAL`;
* :mod:`~memjax.models.titans.build` — :func:`build_model`, language models by name.

The titans-pytorch preset of the layer is :func:`memjax.compat.titans_pytorch.titans_pytorch_lmm`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.models.titans import TitansLMM
    >>> layer = TitansLMM(d_model=8, num_heads=2, chunk_size=4, num_persistent=2)
    >>> p = layer.init_params(jax.random.key(0))
    >>> ys, state = layer.apply(p, layer.init_state(p, eta=0.0), jnp.ones((5, 8)))
    >>> ys.shape, int(state.offset)
    ((5, 8), 3)
"""

from memjax.models.titans.build import KINDS as KINDS, build_model as build_model
from memjax.models.titans.hybrids import MAG as MAG, MAL as MAL, HybridState as HybridState
from memjax.models.titans.lmm import LMMState as LMMState, TitansLMM as TitansLMM
from memjax.models.titans.mac import MAC as MAC, MACState as MACState

__all__ = [
    "KINDS",
    "MAC",
    "MAG",
    "MAL",
    "HybridState",
    "LMMState",
    "MACState",
    "TitansLMM",
    "build_model",
]
