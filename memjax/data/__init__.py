"""memjax.data."""
