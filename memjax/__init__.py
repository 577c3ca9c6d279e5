"""memjax: memory and sparsity mechanisms from research papers as pure-functional JAX modules."""

__version__ = "0.1.0"
