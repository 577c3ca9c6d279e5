"""Equinox wrappers: thin ``eqx.Module`` layers over the functional core (no maths here)."""

from memjax.eqx.layer import MemoryLayer

__all__ = ["MemoryLayer"]
