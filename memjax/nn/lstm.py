r"""An LSTM cell: the closed-loop ``Cell`` protocol (``init_carry``, ``step``), unbatched.

For input :math:`x_t \in \mathbb{R}^{d_{in}}` and carry :math:`(h_{t-1}, c_{t-1})` (Hochreiter &
Schmidhuber 1997, with the forget gate of Gers et al. 2000), the gates in the order
:math:`i, f, g, o` are

.. math::

    z_t &= x_t W_x + h_{t-1} W_h + b \quad\in \mathbb{R}^{4 \times d_h}, \\
    i_t = \sigma(z_t^{(i)}),\quad f_t &= \sigma(z_t^{(f)}),\quad g_t = \tanh(z_t^{(g)}),\quad
    o_t = \sigma(z_t^{(o)}), \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t),

and ``step`` returns :math:`(y_t, \text{carry}_t) = (h_t, (h_t, c_t))`.

**Parameters.** ``w_x`` ``(d_input, 4, d_hidden)``, ``w_h`` ``(d_hidden, 4, d_hidden)`` and
``bias`` ``(4, d_hidden)``; axis 1 (``4``) is the gate ``i, f, g, o``. Keeping the gate axis
separate makes hidden unit ``j`` index ``j`` of the last axis of every parameter (see
:meth:`LSTMCell.channel_axes`); ``x @ w_x.reshape(d_input, 4 * d_hidden)`` is the usual fused
kernel with the gate blocks side by side.

**Initialisation.** Kernels are uniform in :math:`\pm 1/\sqrt{d_h}` (PyTorch's ``nn.LSTM``);
the bias is zero except the forget gate's, which is ``forget_bias`` (default ``1.0``, Gers et
al. 2000; Jozefowicz et al. 2015), so that a fresh cell keeps its memory rather than forgetting
it. The forget bias is a value in ``params["bias"]``, learnt like the rest: it is *not* added
again at every step (unlike TensorFlow 1's ``LSTMCell(forget_bias=...)``).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.nn.lstm import LSTMCell
    >>> cell = LSTMCell(d_input=3, d_hidden=5)
    >>> params = cell.init_params(jax.random.key(0))
    >>> y, carry = cell.step(params, cell.init_carry(params), jnp.ones(3))
    >>> y.shape, carry.c.shape
    ((5,), (5,))
    >>> bool(jnp.all(params["bias"][1] == 1.0))          # the forget gate's bias
    True
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_positive_int
from memjax.core.controls import check_controls
from memjax.core.linear import linear
from memjax.core.spec import spec
from memjax.nn.channels import ChannelAxes

__all__ = ["LSTMCarry", "LSTMCell"]

GATES = ("i", "f", "g", "o")


class LSTMCarry(NamedTuple):
    """The hidden state ``h`` and the cell state ``c``, each ``(d_hidden,)``."""

    h: jax.Array
    c: jax.Array


@spec
class LSTMCell:
    """An LSTM cell (module doc): ``step(params, carry, x) -> (h, carry)`` for one ``x (d_input,)``.

    Args:
        d_input: input width.
        d_hidden: hidden (and cell-state) width; also the output width.
        forget_bias: initial value of the forget gate's bias (default ``1.0``).
        dtype: dtype of the params and the initial carry.
    """

    d_input: int
    d_hidden: int
    forget_bias: float = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        check_positive_int("d_input", self.d_input)
        check_positive_int("d_hidden", self.d_hidden)
        if isinstance(self.forget_bias, bool) or not isinstance(self.forget_bias, int | float):
            raise TypeError(f"forget_bias: expected a real number, got {self.forget_bias!r}")
        if not math.isfinite(self.forget_bias):
            raise ValueError(f"forget_bias: expected a finite number, got {self.forget_bias!r}")
        if not jnp.issubdtype(jnp.dtype(self.dtype), jnp.floating):
            raise TypeError(f"dtype: expected a floating dtype, got {self.dtype!r}")

    def init_params(self, key: jax.Array) -> dict:
        """``w_x (d_input, 4, d_hidden)``, ``w_h (d_hidden, 4, d_hidden)``, ``bias (4, d_h)``."""
        k_x, k_h = jax.random.split(key)
        bound = 1.0 / math.sqrt(self.d_hidden)
        d_in, d_h = self.d_input, self.d_hidden
        bias = jnp.zeros((4, d_h), self.dtype).at[GATES.index("f")].set(self.forget_bias)
        return {
            "w_x": jax.random.uniform(k_x, (d_in, 4, d_h), self.dtype, -bound, bound),
            "w_h": jax.random.uniform(k_h, (d_h, 4, d_h), self.dtype, -bound, bound),
            "bias": bias,
        }

    def init_carry(self, params: dict) -> LSTMCarry:
        """Zero ``h`` and ``c`` in the params' dtype."""
        zeros = jnp.zeros((self.d_hidden,), params["w_h"].dtype)
        return LSTMCarry(h=zeros, c=zeros)

    def channel_axes(self) -> dict[str, ChannelAxes]:
        """Hidden unit ``j`` is index ``j`` of the last axis of every parameter (and of the first
        axis of ``w_h``, which maps hidden units to hidden units); ``w_x``'s axis 0 is the input."""
        return {
            "w_x": ChannelAxes(out=2, in_=0),
            "w_h": ChannelAxes(out=(0, 2)),
            "bias": ChannelAxes(out=1),
        }

    def gates(self, params: dict, carry: LSTMCarry, x) -> jax.Array:
        """The pre-activations :math:`z_t` ``(4, d_hidden)`` in the order ``i, f, g, o``."""
        # one (d, 4·h) matmul per input, not an einsum over (d, 4, h): its reverse mode needs no
        # per-step transposed copy of the weights inside a scan (about a quarter of an NTM's
        # fwd+bwd time on CPU)
        # (memjax.core.linear.linear: x @ w.reshape(d, 4·h), whose weight gradient
        # unroll(weight_grads="after_loop") forms after the loop)
        _, n_gates, d_h = params["w_x"].shape
        z = linear(x, params["w_x"]) + linear(carry.h, params["w_h"])
        return z.reshape(n_gates, d_h) + params["bias"]

    def step(self, params: dict, carry: LSTMCarry, x, /, **controls) -> tuple[jax.Array, LSTMCarry]:
        """``(h_t, LSTMCarry(h_t, c_t))`` for one input ``x (d_input,)``.

        Known controls are ignored; an unknown control name is an error.
        """
        check_array("x", x, shape=(self.d_input,), floating=True)
        check_controls(controls, where="LSTMCell.step")
        check_array("carry.h", carry.h, shape=(self.d_hidden,), floating=True)
        check_array("carry.c", carry.c, shape=(self.d_hidden,), floating=True)
        return _update(carry, self.gates(params, carry, x))

    def project_inputs(self, params: dict, xs) -> tuple[dict, jax.Array]:
        """The input part of the gates of every step at once: ``({"w_h"}, x_t W_x + b)``.

        ``xs (T, d_input)`` → ``(T, 4, d_hidden)`` in one matmul outside the time loop (the
        optional input-projection hook of :class:`memjax.core.Cell`, used by
        :func:`memjax.core.unroll` with ``precompute=True``); :meth:`step_projected` adds
        :math:`h_{t-1} W_h` and applies the gates.
        """
        check_array("xs", xs, shape=(None, self.d_input), floating=True)
        d_x, n_gates, d_h = params["w_x"].shape
        z = xs @ params["w_x"].reshape(d_x, n_gates * d_h) + params["bias"].reshape(1, -1)
        return {"w_h": params["w_h"]}, z.reshape(xs.shape[0], n_gates, d_h)

    def step_projected(self, params: dict, carry: LSTMCarry, z_x, /, **controls):
        """:meth:`step` from the input part ``z_x (4, d_hidden)`` of the gates
        (:meth:`project_inputs`); ``params`` needs only ``w_h``."""
        check_controls(controls, where="LSTMCell.step_projected")
        check_array("z_x", z_x, shape=(4, self.d_hidden), floating=True)
        check_array("carry.h", carry.h, shape=(self.d_hidden,), floating=True)
        check_array("carry.c", carry.c, shape=(self.d_hidden,), floating=True)
        return _update(carry, z_x + linear(carry.h, params["w_h"]).reshape(z_x.shape))

    def update(self, carry: LSTMCarry, z, /) -> tuple[jax.Array, LSTMCarry]:
        """``(h_t, LSTMCarry(h_t, c_t))`` from the whole pre-activations ``z (4, d_hidden)``
        (:math:`z_t` of the module doc, computed by the caller: e.g. one matmul of
        :math:`[r_{t-1} \\| h_{t-1}]` against the stacked rows of ``w_x`` and ``w_h``)."""
        check_array("z", z, shape=(4, self.d_hidden), floating=True)
        check_array("carry.h", carry.h, shape=(self.d_hidden,), floating=True)
        check_array("carry.c", carry.c, shape=(self.d_hidden,), floating=True)
        return _update(carry, z)


def _update(carry: LSTMCarry, z: jax.Array) -> tuple[jax.Array, LSTMCarry]:
    """The gates' nonlinearities and the state update from the pre-activations ``z (4, d_h)``."""
    i, f, o = jax.nn.sigmoid(z[0]), jax.nn.sigmoid(z[1]), jax.nn.sigmoid(z[3])
    g = jnp.tanh(z[2])
    c = f * carry.c + i * g
    h = o * jnp.tanh(c)
    return h, LSTMCarry(h=h, c=c)
