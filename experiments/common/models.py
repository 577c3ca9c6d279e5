"""Facts about the experiments' models: :func:`count_params`.

Example:
    >>> from experiments.common.models import count_params
    >>> from memjax.models.titans import build_model
    >>> count_params(build_model("attention", vocab_size=10, d_model=8, num_layers=1)) > 0
    True
"""

from __future__ import annotations

import math

import jax

__all__ = ["count_params"]


def count_params(model) -> int:
    """Number of trainable scalars of ``model`` (anything with ``init_params(key)``)."""
    shapes = jax.eval_shape(model.init_params, jax.random.key(0))
    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes)))
