"""Architectures built from memories: layers with projections and small sequence models."""
