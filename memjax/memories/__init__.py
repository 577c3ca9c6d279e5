"""memjax.memories."""
