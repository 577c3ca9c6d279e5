"""Flax NNX wrappers: thin ``nnx.Module`` layers over the functional core (no maths here)."""

from memjax.nnx.layer import MemoryLayer, MemoryState

__all__ = ["MemoryLayer", "MemoryState"]
