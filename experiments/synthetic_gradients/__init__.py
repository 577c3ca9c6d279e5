"""Fast & Slow Learning experiments: synthetic gradients in memory-network controllers."""
