"""memjax.train."""
