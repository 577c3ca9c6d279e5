"""Controllers trained by synthetic gradients (Fast & Slow Learning, arXiv 2011.05438; DNI).

* :mod:`~memjax.controllers.synthetic_gradients` — :class:`SyntheticGradients`: SG models for
  named cell taps or the truncation-window carry, the fast (SG-injected) and slow (SG-regression)
  gradients, λ mixing and BPTT warm-up, the cosine diagnostic;
* :mod:`~memjax.controllers.injection` — :func:`mix`, the custom VJP that injects a synthetic
  gradient at a target, and the cosine diagnostic;
* :mod:`~memjax.controllers.fast_weights` — within-episode fast weights
  (``mode="inner_loop"``; :func:`inner_loop_predict` evaluates with the fast steps) and one
  feedback path shared by K networks;
* :mod:`~memjax.controllers.cell_layer` — :class:`CellLayer`, a cell as a sequence layer for the
  Flax NNX and Equinox wrappers.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.controllers import SyntheticGradients
    >>> from memjax.nn.lstm import LSTMCell
    >>> sg = SyntheticGradients(LSTMCell(2, 3), sg_targets=("carry",), truncate=2)
    >>> phi = sg.init_params(jax.random.key(0), LSTMCell(2, 3).init_params(jax.random.key(1)))
    >>> [p["kernel"].shape for p in phi["carry"]]
    [(6, 64), (64, 64), (64, 6)]
"""

from memjax.controllers.cell_layer import CellLayer as CellLayer
from memjax.controllers.fast_weights import (
    inner_loop_gradients as inner_loop_gradients,
    inner_loop_predict as inner_loop_predict,
    shared_feedback_gradients as shared_feedback_gradients,
)
from memjax.controllers.injection import (
    CARRY as CARRY,
    MODES as MODES,
    SGOutput as SGOutput,
    cosine as cosine,
    mix as mix,
)
from memjax.controllers.synthetic_gradients import SyntheticGradients as SyntheticGradients

__all__ = [
    "CARRY",
    "MODES",
    "CellLayer",
    "SGOutput",
    "SyntheticGradients",
    "cosine",
    "inner_loop_gradients",
    "inner_loop_predict",
    "mix",
    "shared_feedback_gradients",
]
