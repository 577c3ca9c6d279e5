r"""Sinusoid regression episodes (MAML's task family), presented MANN-style with the target late.

Each episode is one function :math:`y = A \sin(x - \varphi)` with amplitude
:math:`A \sim U[0.1, 5]`, phase :math:`\varphi \sim U[0, \pi]` and inputs
:math:`x \sim U[-5, 5]` (Finn, Abbeel & Levine 2017, arXiv 1703.03400, §5.1 — the ranges and the
``amp * sin(x - phase)`` form of their released generator). An episode is ``seq_len`` points,
the first ``k_shot`` of them the *support* (labels revealed) and the rest *queries*. In the
memory-network presentation of Santoro et al. (2016, arXiv 1605.06065, §4) the label of step
:math:`t` arrives as input at step :math:`t + 1`:

.. math::

    \text{input}_t = \big(x_t,\; s_{t-1}\, y_{t-1},\; s_{t-1}\big), \qquad
    s_t = [t < K], \quad y_{-1} = s_{-1} = 0,

so a query's label is never shown; the model predicts :math:`y_t` at every step and the
:math:`K`-shot error is the MSE over the query steps. Predicting 0 scores
:math:`\mathbb{E}[A^2]/2 = (5^3 - 0.1^3) / (3 \cdot 4.9 \cdot 2) \approx 4.25`.

Randomness: ``np.random.default_rng(seed)`` (an int) or a ``Generator`` (advanced); one
:class:`SinusoidBatch` is drawn in the order amplitude, phase, x.

Example:
    >>> import numpy as np
    >>> from memjax.data import sinusoid_episodes
    >>> b = sinusoid_episodes(4, seq_len=15, k_shot=5, seed=0)
    >>> b.inputs.shape, b.targets.shape, int(b.query[0].sum())
    ((4, 15, 3), (4, 15), 10)
    >>> bool(abs(b.targets - b.amplitude[:, None] * np.sin(b.x - b.phase[:, None])).max() < 1e-6)
    True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from memjax.data._common import as_rng
from memjax.data.errors import bad_arg

__all__ = ["SINUSOID_RANGES", "SinusoidBatch", "sinusoid_episodes"]

SINUSOID_RANGES = {"amplitude": (0.1, 5.0), "phase": (0.0, float(np.pi)), "x": (-5.0, 5.0)}
"""MAML's sampling ranges (arXiv 1703.03400, §5.1): ``amplitude``, ``phase`` and ``x``."""


class SinusoidBatch(NamedTuple):
    """A batch of sinusoid episodes (module doc).

    - ``inputs``: ``(B, T, 3) float32`` = ``(x_t, s_{t-1} y_{t-1}, s_{t-1})``.
    - ``targets``: ``(B, T) float32`` ``y_t = A sin(x_t - φ)``.
    - ``query``: ``(B, T) bool``, True on the steps ``t >= k_shot`` whose labels are never shown.
    - ``x``: ``(B, T) float32``; ``amplitude``, ``phase``: ``(B,) float32``.
    """

    inputs: np.ndarray
    targets: np.ndarray
    query: np.ndarray
    x: np.ndarray
    amplitude: np.ndarray
    phase: np.ndarray


def _int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise bad_arg(name, f"an int >= {lo}", value)
    return int(value)


def sinusoid_episodes(
    batch_size: int,
    seq_len: int = 20,
    k_shot: int = 10,
    seed: int | np.random.Generator | None = 0,
) -> SinusoidBatch:
    """``batch_size`` sinusoid episodes of ``seq_len`` points, ``k_shot`` of them support.

    Args:
        batch_size: episodes.
        seq_len: points per episode (support + queries).
        k_shot: support points (labels shown one step late), ``0 <= k_shot < seq_len``.
        seed: an int seed or a numpy ``Generator``.

    Returns:
        :class:`SinusoidBatch`.
    """
    batch_size = _int("batch_size", batch_size, 1)
    seq_len = _int("seq_len", seq_len, 2)
    k_shot = _int("k_shot", k_shot, 0)
    if k_shot >= seq_len:
        raise bad_arg("k_shot", f"an int < seq_len = {seq_len} (at least one query)", k_shot)
    rng = as_rng(seed)
    amplitude = rng.uniform(*SINUSOID_RANGES["amplitude"], size=batch_size)
    phase = rng.uniform(*SINUSOID_RANGES["phase"], size=batch_size)
    x = rng.uniform(*SINUSOID_RANGES["x"], size=(batch_size, seq_len))
    y = amplitude[:, None] * np.sin(x - phase[:, None])
    shown = np.zeros((batch_size, seq_len))
    shown[:, :k_shot] = 1.0
    inputs = np.zeros((batch_size, seq_len, 3))
    inputs[..., 0] = x
    inputs[:, 1:, 1] = (shown * y)[:, :-1]
    inputs[:, 1:, 2] = shown[:, :-1]
    f32 = np.float32
    return SinusoidBatch(
        inputs.astype(f32),
        y.astype(f32),
        shown == 0,
        x.astype(f32),
        amplitude.astype(f32),
        phase.astype(f32),
    )
