"""memjax.nnx."""
