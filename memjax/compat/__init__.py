"""Converters from other implementations' weights to memjax params (NumPy in, no torch import).

* :mod:`memjax.compat.titans_pytorch` — titans-pytorch 0.5.5 ``NeuralMemory`` →
  :class:`memjax.models.titans.lmm.TitansLMM` (``TitansLMM.titans_pytorch``).
"""
