r"""A controller over an associative memory as one closed-loop :class:`memjax.core.Cell`.

The loop of a memory-augmented network (NTM, Graves et al. 2014, §2 and Fig. 1; the controller of
Fast & Slow Learning's neural memory networks): at each step the controller sees the input and
the *previous* read, emits the memory's interface, and the memory is written and read:

.. math::

    (h_t, s_t) &= \mathrm{controller}(s_{t-1}, [x_t \,\|\, r_{t-1}]) \\
    k_t = \hat{(h_t W_k)},\quad v_t &= h_t W_v,\quad q_t = \hat{(h_t W_q)},\quad
    \theta_t = \theta_{\max}\,\sigma(h_t w_\theta + b_\theta) \\
    (r_t, M_t) &= \mathrm{access}(M_{t-1}; k_t, v_t, q_t, \theta_t)
    \qquad y_t = [h_t \,\|\, r_t]

where :math:`\hat u = u / \sqrt{\lVert u\rVert^2 + \epsilon}` (ℓ2-normalised keys and queries, as
the delta rule needs for a stable step), the interface is one :class:`memjax.nn.dense.Dense`
projection of :math:`h_t`, and ``access`` is :func:`memjax.core.step` (the memory's
:meth:`~memjax.core.Memory.access`: write then read for the linear memory, so :math:`r_t =
M_t q_t`). With ``emit_theta=False`` the memory's own step size (constant or gated) is used.
The carry is :math:`(s_t, M_t, r_t)`.

The controller's output :math:`h_t` is the tap ``"controller_out"`` (:mod:`memjax.core.taps`),
where synthetic gradients attach.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core import unroll
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.memory_cell import ControllerMemoryCell
    >>> from memjax.nn.lstm import LSTMCell
    >>> cell = ControllerMemoryCell.build(LSTMCell, LinearMemory(d_key=4, d_value=3), d_input=2,
    ...                                   d_hidden=5)
    >>> p = cell.init_params(jax.random.key(0))
    >>> ys, carry = unroll(cell, p, cell.init_carry(p), jnp.ones((6, 2)))
    >>> ys.shape                                    # h (5) ++ read (3)
    (6, 8)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from memjax.core import taps
from memjax.core.checks import check_array, check_positive_int
from memjax.core.controls import check_controls
from memjax.core.protocol import Cell, Memory
from memjax.core.spec import spec
from memjax.core.token_step import step
from memjax.nn.dense import Dense
from memjax.nn.norms import l2_normalize

__all__ = ["ControllerMemoryCarry", "ControllerMemoryCell"]


class ControllerMemoryCarry(NamedTuple):
    """The controller's carry, the memory's state and the previous read ``(d_value,)``."""

    controller: Any
    memory: Any
    read: jax.Array


@spec
class ControllerMemoryCell:
    """A controller cell driving a vector-keyed :class:`~memjax.core.Memory` (module doc).

    Args:
        controller: a :class:`~memjax.core.Cell` spec with ``d_input = d_input + d_value`` and a
            ``(d_hidden,)`` output (e.g. :class:`memjax.nn.lstm.LSTMCell`).
        memory: the memory spec; keys ``(d_key,)``, values ``(d_value,)``.
        d_input: width of one external input.
        d_hidden: width of the controller's output.
        emit_theta: the controller emits the step size :math:`\\theta_t` (a control of the write).
        max_theta: the ceiling :math:`\\theta_{\\max}` of the emitted step size.
    """

    controller: Any
    memory: Memory
    d_input: int
    d_hidden: int
    emit_theta: bool = True
    max_theta: float = 1.0

    def __post_init__(self):
        check_positive_int("d_input", self.d_input)
        check_positive_int("d_hidden", self.d_hidden)
        if not isinstance(self.controller, Cell):
            raise TypeError(f"controller: expected a Cell spec, got {self.controller!r}")
        if len(self.memory.key_size) != 1 or len(self.memory.value_size) != 1:
            raise ValueError(f"memory: expected vector keys and values, got {self.memory}")
        width = getattr(self.controller, "d_input", None)
        if width is not None and width != self.d_input + self.d_value:
            raise ValueError(
                f"controller: expected d_input = d_input + d_value = "
                f"{self.d_input + self.d_value}, got {width}"
            )
        if not self.max_theta > 0:
            raise ValueError(f"max_theta: expected a positive number, got {self.max_theta!r}")

    @classmethod
    def build(cls, controller_cls, memory: Memory, *, d_input: int, d_hidden: int, **kwargs):
        """``controller_cls(d_input + d_value, d_hidden)`` around ``memory``; ``kwargs`` go to
        the cell."""
        (d_value,) = memory.value_size
        dtype = getattr(memory, "dtype", "float32")
        controller = controller_cls(d_input + d_value, d_hidden, dtype=dtype)
        return cls(controller, memory, d_input, d_hidden, **kwargs)

    @property
    def d_key(self) -> int:
        return self.memory.key_size[0]

    @property
    def d_value(self) -> int:
        return self.memory.value_size[0]

    @property
    def d_output(self) -> int:
        """Width of one output, ``d_hidden + d_value``."""
        return self.d_hidden + self.d_value

    @property
    def interface(self) -> Dense:
        """The projection of ``h`` to ``[k, v, q, θ-logit]``."""
        width = 2 * self.d_key + self.d_value + int(self.emit_theta)
        return Dense(self.d_hidden, width, dtype=getattr(self.memory, "dtype", "float32"))

    def init_params(self, key: jax.Array) -> dict:
        k_c, k_i, k_m = jax.random.split(key, 3)
        return {
            "controller": self.controller.init_params(k_c),
            "interface": self.interface.init_params(k_i),
            "memory": self.memory.init_params(k_m),
        }

    def init_carry(self, params: dict) -> ControllerMemoryCarry:
        """The controller's and the memory's initial carry and a zero read."""
        state = self.memory.init_state(params["memory"])
        dtype = params["interface"]["kernel"].dtype
        return ControllerMemoryCarry(
            self.controller.init_carry(params["controller"]),
            state,
            jnp.zeros((self.d_value,), dtype),
        )

    def step(self, params: dict, carry: ControllerMemoryCarry, x, /, **controls):
        """``(y_t, carry_t)`` for one input ``x (d_input,)``; controls go to the memory."""
        check_array("x", x, shape=(self.d_input,), floating=True)
        check_controls(controls, where="ControllerMemoryCell.step")
        u = jnp.concatenate([x, carry.read])
        h, controller = self.controller.step(params["controller"], carry.controller, u)
        h = taps.tap("controller_out", h)
        z = self.interface(params["interface"], h)
        dk, dv = self.d_key, self.d_value
        k, v, q = z[:dk], z[dk : dk + dv], z[dk + dv : 2 * dk + dv]
        if self.emit_theta and controls.get("theta") is None:
            controls = {**controls, "theta": self.max_theta * jax.nn.sigmoid(z[-1])}
        read, memory = step(
            self.memory,
            params["memory"],
            carry.memory,
            l2_normalize(k),
            v,
            l2_normalize(q),
            **controls,
        )
        y = jnp.concatenate([h, read])
        return y, ControllerMemoryCarry(controller, memory, read)
