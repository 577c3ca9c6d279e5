"""memjax.eqx."""
