"""Memories: each a :func:`memjax.core.spec` dataclass implementing the memory protocol."""
