"""Presets and weight converters of other implementations (NumPy in, no torch import).

* :mod:`memjax.compat.titans_pytorch` — titans-pytorch 0.5.5 ``NeuralMemory``:
  :func:`~memjax.compat.titans_pytorch.titans_pytorch_lmm` (the
  :class:`~memjax.models.titans.TitansLMM` that computes what the port computes) and its
  state-dict converter.

Example:
    >>> from memjax.compat import titans_pytorch_lmm
    >>> titans_pytorch_lmm(16, num_heads=2, chunk_size=4).gate_granularity
    'chunk_step'
"""

from memjax.compat.titans_pytorch import (
    convert_state_dict as convert_state_dict,
    from_state_dict as from_state_dict,
    infer_config as infer_config,
    titans_pytorch_lmm as titans_pytorch_lmm,
)

__all__ = ["convert_state_dict", "from_state_dict", "infer_config", "titans_pytorch_lmm"]
