r"""Causal depthwise 1-D convolution with a carried tail, for streaming.

For channels :math:`c` and width :math:`W`,
:math:`y_t[c] = \sum_{i=0}^{W-1} w_i[c]\, x_{t-W+1+i}[c]`, with the :math:`W-1` inputs before
the sequence taken from ``tail`` (zeros at the start). Used after the q, k, v projections as in
Titans §4.4 (following Mamba2 and Gated DeltaNet). Returning the new tail makes a sequence
processed in pieces equal the whole sequence. :class:`CausalConv1D` is the same operation as a
sequence layer (``init_params``, ``init_state``, ``apply -> (ys, state)``); its channel axes
(:mod:`memjax.nn.channels`) are ``weights`` ``out=1, in_=1`` (depthwise: channel ``c`` in is
channel ``c`` out).

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.nn.conv1d import causal_depthwise_conv
    >>> w = jnp.array([[0.0], [1.0]])          # width 2, one channel: y_t = x_t
    >>> y, tail = causal_depthwise_conv(jnp.arange(3.0)[:, None], w, jnp.zeros((1, 1)))
    >>> y[:, 0].tolist(), tail[:, 0].tolist()
    ([0.0, 1.0, 2.0], [2.0])
    >>> import jax
    >>> from memjax.nn.conv1d import CausalConv1D
    >>> conv = CausalConv1D(channels=3, width=4)
    >>> params = conv.init_params(jax.random.key(0))
    >>> ys, state = conv.apply(params, conv.init_state(params), jnp.ones((5, 3)))
    >>> ys.shape, state.tail.shape
    ((5, 3), (3, 3))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_positive_int
from memjax.core.controls import check_controls
from memjax.core.spec import spec
from memjax.nn.channels import ChannelAxes

__all__ = ["CausalConv1D", "CausalConvState", "causal_depthwise_conv", "init_conv"]


def init_conv(key: jax.Array, width: int, channels: int, dtype="float32") -> jax.Array:
    """Weights ``(width, channels)``: identity on the current token plus small noise."""
    noise = 0.1 * jax.random.normal(key, (width, channels), dtype) / jnp.sqrt(width)
    return noise.at[-1].add(1.0)


def causal_depthwise_conv(x, weights, tail):
    """``x (T, C)``, ``weights (W, C)``, ``tail (W-1, C)`` -> ``(y (T, C), new tail (W-1, C))``."""
    width = weights.shape[0]
    check_array("x", x, ndim=2)
    check_array("weights", weights, shape=(None, x.shape[1]))
    check_array("tail", tail, shape=(width - 1, x.shape[1]))
    padded = jnp.concatenate([tail.astype(x.dtype), x], axis=0)
    return _shifted_sum(padded, weights), padded[padded.shape[0] - (width - 1) :]


@jax.custom_vjp
def _shifted_sum(padded, weights):
    """``y_t = Σ_i w_i ⊙ padded_{t+i}`` over the ``T = len(padded) - W + 1`` valid positions."""
    length = padded.shape[0] - weights.shape[0] + 1
    return sum(weights[i][None, :] * padded[i : i + length] for i in range(weights.shape[0]))


def _shifted_sum_fwd(padded, weights):
    return _shifted_sum(padded, weights), (padded, weights)


def _shifted_sum_bwd(residuals, grad):
    # Written out so that the weight gradient is one contraction over time per tap: XLA's CPU
    # backend otherwise lowers the automatic transpose (under vmap) to a strided reduction that
    # was 5x slower than the projection feeding it (measured at T = 2048, C = 768).
    padded, weights = residuals
    width, length = weights.shape[0], grad.shape[0]
    grad_w = jnp.stack([jnp.einsum("tc,tc->c", padded[i : i + length], grad) for i in range(width)])
    grad_padded = sum(
        jnp.pad(grad * weights[i][None, :], ((i, width - 1 - i), (0, 0))) for i in range(width)
    )
    return grad_padded.astype(padded.dtype), grad_w.astype(weights.dtype)


_shifted_sum.defvjp(_shifted_sum_fwd, _shifted_sum_bwd)


class CausalConvState(NamedTuple):
    """The last ``width - 1`` inputs ``(width - 1, channels)`` (zeros before the sequence)."""

    tail: jax.Array


@spec
class CausalConv1D:
    """:func:`causal_depthwise_conv` as a sequence layer over ``xs (T, channels)`` (module doc).

    Args:
        channels: channels ``C`` (each convolved on its own).
        width: kernel width ``W`` (the current token and the ``W - 1`` before it).
        dtype: dtype of the params and the state.
    """

    channels: int
    width: int = 4
    dtype: str = "float32"

    def __post_init__(self):
        check_positive_int("channels", self.channels)
        check_positive_int("width", self.width)

    def init_params(self, key: jax.Array) -> dict:
        """``{"weights": (width, channels)}`` by :func:`init_conv` (identity tap plus noise)."""
        return {"weights": init_conv(key, self.width, self.channels, self.dtype)}

    def init_state(self, params: dict) -> CausalConvState:
        """A zero tail."""
        return CausalConvState(jnp.zeros((self.width - 1, self.channels), params["weights"].dtype))

    def channel_axes(self) -> dict[str, ChannelAxes]:
        """``weights``: channel ``c`` is index ``c`` of axis 1, both in and out (depthwise)."""
        return {"weights": ChannelAxes(out=1, in_=1)}

    def apply(self, params: dict, state: CausalConvState, xs, /, **controls):
        """``(ys (T, channels), new state)``; known controls are ignored, unknown ones an error."""
        check_array("xs", xs, shape=(None, self.channels), floating=True)
        check_controls(controls, where="CausalConv1D.apply")
        ys, tail = causal_depthwise_conv(xs, params["weights"], state.tail)
        return ys, CausalConvState(tail)
