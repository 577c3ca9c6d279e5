"""WGSEF: k-level structured sparsity by the weighted group sparse envelope (Refael, Arbel &
Huleihel, arXiv 2212.12921; the SEF is Beck & Refael, J. Global Optim. 2022).

No authors' code is public, so this is the first public implementation; the weighted group
formulas are reconstructed from the SEF theory and checked numerically (spec
``../shared/papers/wgsef.md`` §3, tagged [R] in the docstrings). No number here is the paper's.

Pure operators on a vector with segment ids (the jit path):

* :func:`wgsef_value` — ``WGSEF(θ) = S_k(z)``, ``z_j = √d_j ‖θ_{G_j}‖`` (spec §3);
* :func:`sef_value` — the SEF ``S_k(x)`` (singleton groups, closed form §2.6);
* :func:`prox_wgsef` — ``argmin_w λ·WGSEF(w) + ½‖w − x‖²`` by the sort-based root finder (§6);
* :func:`prox_group_lasso` — the weighted group-lasso prox (the baseline and benchmark floor);
* :func:`group_norms` — ``‖θ_{G_j}‖`` with a NaN-free gradient.

Host references in NumPy, worst-case linear time (spec §5): :func:`prox_wgsef_linear_time`,
:func:`wgsef_value_linear_time`, and the median-of-medians :func:`select` behind them.

Example:
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from memjax.sparsity import prox_wgsef, prox_wgsef_linear_time, wgsef_value
    >>> x = jnp.array([0.9, -0.2, 0.4, 1.5, 0.05, -0.6])
    >>> ids = jnp.array([0, 0, 1, 1, 2, 2])                    # three groups of two
    >>> w = prox_wgsef(x, ids, 3, 2, 0.5)
    >>> np.allclose(w, prox_wgsef_linear_time(np.asarray(x), np.asarray(ids), 3, 2, 0.5),
    ...             atol=1e-6)
    True
    >>> float(wgsef_value(w, ids, 3, 2)) < float(wgsef_value(x, ids, 3, 2))
    True
"""

from memjax.sparsity._envelope import (
    group_norms as group_norms,
    sef_value as sef_value,
    wgsef_value as wgsef_value,
)
from memjax.sparsity._linear_time import (
    prox_wgsef_linear_time as prox_wgsef_linear_time,
    select as select,
    wgsef_value_linear_time as wgsef_value_linear_time,
)
from memjax.sparsity._prox import prox_group_lasso as prox_group_lasso, prox_wgsef as prox_wgsef

__all__ = [
    "group_norms",
    "prox_group_lasso",
    "prox_wgsef",
    "prox_wgsef_linear_time",
    "sef_value",
    "select",
    "wgsef_value",
    "wgsef_value_linear_time",
]
