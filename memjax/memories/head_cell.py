r"""A controller driving a slot memory through heads: the loop NTM and MANN cells share.

One step of a memory-augmented network whose controller talks to the memory through *heads*
(NTM, Graves et al. 2014, Fig. 1; MANN, Santoro et al. 2016, §3): the controller sees the input
and the previous reads, emits one interface vector, the memory turns it into weightings and is
written and read (:meth:`~memjax.core.Memory.access`, which may change the addressing state):

.. math::

    (h_t, s_t) &= \mathrm{controller}(s_{t-1}, [x_t \,\|\, r_{t-1}]), \qquad
    \hat h_t = \mathrm{clip}(h_t, \pm c) \\
    \xi_t &= \mathrm{clip}(\hat h_t W_\xi + b_\xi, \pm c) \\
    (r_t, S_t) &= \mathrm{access}(S_{t-1};\ \xi_t), \qquad y_t = [\hat h_t \,\|\, r_t]

with :math:`c = 20` by default (controller outputs clipped at ±20: [I] memjax's default, taken
from MarkPKCollier/NeuralTuringMachine's ``run_tasks.py`` [C: that code]; **[C]** marks what is
confirmed in the source named with it, **[I]** what is inferred or memjax's choice). The memory
says how the interface :math:`\xi_t` splits into named parts (``memory.split_interface``) and
how the parts become the access's ``key`` (where to write), ``value`` (what to write) and
``query`` (what to read) (``memory.head_arguments``); the memory applies the head activations
itself.

**Taps** (:mod:`memjax.core.taps`, where synthetic gradients attach): ``"controller"`` (the
clipped :math:`\hat h_t`) and one tap per interface part (``"read"`` and ``"write"`` for NTM,
``"write"`` for MANN), plus the memory's own taps (its weightings). ``cell.tap_names`` lists
them. The carry is :class:`HeadCellCarry` ``(controller, memory, read)``.

The loop is :class:`memjax.models.memory_cell.ControllerMemoryCell`'s (controller on
:math:`[x_t \| r_{t-1}]`, one Dense interface, output :math:`[h_t \| r_t]`) with the interface
left to the memory, since ``memories`` may not import ``models``.

**Controllers** (:data:`CONTROLLERS`): ``"lstm"`` (:class:`memjax.nn.lstm.LSTMCell`) or
``"feedforward"`` (:class:`FeedForwardController`, no recurrent state: the memory is the only
recurrence).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.head_cell import FeedForwardController
    >>> ff = FeedForwardController(d_input=3, d_hidden=4)
    >>> p = ff.init_params(jax.random.key(0))
    >>> h, carry = ff.step(p, ff.init_carry(p), jnp.ones(3))
    >>> h.shape, carry
    ((4,), ())
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from memjax.core import taps
from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.controls import check_controls
from memjax.core.linear import linear
from memjax.core.spec import spec
from memjax.core.token_step import step as memory_step
from memjax.nn.activations import ACTIVATIONS, activation
from memjax.nn.dense import Dense
from memjax.nn.lstm import LSTMCell
from memjax.nn.mlp import MLP

__all__ = [
    "CONTROLLERS",
    "FeedForwardController",
    "HeadCell",
    "HeadCellCarry",
    "check_clip",
    "controller_step_projected",
    "make_controller",
    "project_controller",
]

CONTROLLERS = ("lstm", "feedforward")


@spec
class FeedForwardController:
    """A feed-forward controller as a :class:`~memjax.core.Cell` with an empty carry ``()``.

    ``h_t = φ(… φ(x_t W_1 + b_1) …)``: ``depth`` Dense layers of width ``d_hidden``, each followed
    by ``activation`` (an :class:`memjax.nn.mlp.MLP` with ``activate_final=True``).

    Args:
        d_input: input width.
        d_hidden: width of every layer and of the output.
        depth: number of layers (at least 1).
        activation: a name in :data:`memjax.nn.activations.ACTIVATIONS`.
        dtype: dtype of the params.
    """

    d_input: int
    d_hidden: int
    depth: int = 1
    activation: str = "tanh"
    dtype: str = "float32"

    def __post_init__(self):
        check_positive_int("d_input", self.d_input)
        check_positive_int("d_hidden", self.d_hidden)
        check_positive_int("depth", self.depth)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))

    @property
    def mlp(self) -> MLP:
        widths = (self.d_input, *(self.d_hidden,) * self.depth)
        return MLP(widths, self.activation, activate_final=True, dtype=self.dtype)

    def init_params(self, key: jax.Array) -> tuple[dict, ...]:
        return self.mlp.init_params(key)

    def init_carry(self, params) -> tuple:
        """No recurrent state."""
        return ()

    def step(self, params, carry, x, /, **controls) -> tuple[jax.Array, tuple]:
        """``(h_t, ())`` for one input ``x (d_input,)``; known controls are ignored."""
        check_array("x", x, shape=(self.d_input,), floating=True)
        check_controls(controls, where="FeedForwardController.step")
        return self.mlp(params, x), carry


def make_controller(name: str, d_input: int, d_hidden: int, dtype: str = "float32"):
    """The controller called ``name`` in :data:`CONTROLLERS`, ``d_input -> d_hidden``."""
    check_choice("controller", name, CONTROLLERS)
    if name == "lstm":
        return LSTMCell(d_input, d_hidden, dtype=dtype)
    return FeedForwardController(d_input, d_hidden, dtype=dtype)


def project_controller(controller, params, xs) -> tuple[dict, jax.Array]:
    """Hoist a controller's first layer on the leading ``d_x = xs.shape[-1]`` input columns out
    of the time loop: ``(step_params, pre)`` with ``pre`` = :math:`x_t W_x[{:}d_x] + b` for every
    ``t`` (LSTM: ``(T, 4, d_hidden)``; feed-forward: ``(T, d_hidden)``) in one matmul, and
    ``step_params`` the rest: feed-forward ``w_r`` = the rows of the remaining columns; LSTM
    ``w_rh`` = those rows stacked on ``w_h`` (``(d_r + d_hidden, 4·d_hidden)``), so that a step's
    recurrent part :math:`[r \\| h_{t-1}] W_{rh}` is one matmul.
    :func:`controller_step_projected` finishes a step on :math:`[x_t \\| r_t]`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from memjax.memories.head_cell import (controller_step_projected, make_controller,
        ...                                        project_controller)
        >>> lstm = make_controller("lstm", 5, 3)
        >>> p = lstm.init_params(jax.random.key(0)); x, r = jnp.ones(3), jnp.arange(2.0)
        >>> step_params, pre = project_controller(lstm, p, x[None])
        >>> h, _ = controller_step_projected(lstm, step_params, lstm.init_carry(p), pre[0], r)
        >>> bool(jnp.allclose(h, lstm.step(p, lstm.init_carry(p), jnp.concatenate([x, r]))[0]))
        True
    """
    d_x = xs.shape[-1]
    if isinstance(controller, LSTMCell):
        w_x = params["w_x"]
        _, n_gates, d_h = w_x.shape
        z = xs @ w_x[:d_x].reshape(d_x, n_gates * d_h)
        z = z + params["bias"].reshape((1,) * (z.ndim - 1) + (-1,))
        w_r = w_x[d_x:].reshape(-1, n_gates * d_h)
        w_rh = jnp.concatenate([w_r, params["w_h"].reshape(d_h, n_gates * d_h)])
        return {"w_rh": w_rh}, z.reshape(*xs.shape[:-1], n_gates, d_h)
    first = params[0]
    pre = xs @ first["kernel"][:d_x]
    pre = pre + first["bias"].reshape((1,) * (pre.ndim - 1) + (-1,))
    return {"w_r": first["kernel"][d_x:], "layers": params[1:]}, pre


def controller_step_projected(controller, params, carry, pre, rest):
    """One controller step on :math:`[x_t \\| r]` from ``pre`` (one step of
    :func:`project_controller`) and the remaining input ``rest`` (``(0,)`` or ``None``: none)."""
    has_rest = rest is not None and rest.shape[-1] > 0
    if isinstance(controller, LSTMCell):
        u = jnp.concatenate([rest, carry.h]) if has_rest else carry.h
        return controller.update(carry, pre + linear(u, params["w_rh"]).reshape(pre.shape))
    mlp = controller.mlp
    phi = activation(mlp.activation)
    h = phi(pre + linear(rest, params["w_r"]) if has_rest else pre)
    for layer, p in zip(mlp.layers[1:], params["layers"]):
        h = phi(layer(p, h))
    return h, carry


def check_clip(clip) -> None:
    """Raise naming ``clip`` unless it is a positive number."""
    if isinstance(clip, bool) or not isinstance(clip, int | float) or not clip > 0:
        raise ValueError(f"clip: expected a positive number, got {clip!r}")


def check_controller_fields(cell) -> None:
    """Check the fields every controller-plus-memory cell spec shares, naming the bad one:
    ``d_input`` and ``d_hidden`` positive ints, ``controller`` in :data:`CONTROLLERS`, ``clip``
    positive."""
    check_positive_int("d_input", cell.d_input)
    check_positive_int("d_hidden", cell.d_hidden)
    check_choice("controller", cell.controller, CONTROLLERS)
    check_clip(cell.clip)


class HeadCellCarry(NamedTuple):
    """The controller's carry, the memory's state and the previous reads ``(H_r, W)``."""

    controller: Any
    memory: Any
    read: jax.Array


class HeadCell:
    """The step shared by the head-based cells (module doc); subclasses are specs that define
    ``memory``, ``d_input``, ``d_hidden``, ``controller``, ``order``, ``clip`` and ``dtype``."""

    @property
    def controller_cell(self):
        """The controller spec, ``d_input + H_r·W -> d_hidden``."""
        reads = self.memory.read_size[0] * self.memory.read_size[1]
        return make_controller(self.controller, self.d_input + reads, self.d_hidden, self.dtype)

    @property
    def interface(self) -> Dense:
        """The Dense map of the clipped controller output to the interface :math:`\\xi_t`."""
        return Dense(self.d_hidden, self.memory.interface_size, dtype=self.dtype)

    @property
    def d_output(self) -> int:
        """Width of one output, ``d_hidden + H_r·W``."""
        height, width = self.memory.read_size
        return self.d_hidden + height * width

    @property
    def tap_names(self) -> tuple[str, ...]:
        """The taps of one step: ``"controller"``, the interface parts, the memory's taps."""
        return ("controller", *self.memory.interface_parts, *self.memory.tap_names)

    def init_params(self, key: jax.Array) -> dict:
        """``{"controller", "interface", "memory"}`` (the memories here have no params)."""
        k_c, k_i, k_m = jax.random.split(key, 3)
        return {
            "controller": self.controller_cell.init_params(k_c),
            "interface": self.interface.init_params(k_i),
            "memory": self.memory.init_params(k_m),
        }

    def init_carry(self, params: dict) -> HeadCellCarry:
        """The controller's initial carry, the memory's initial state and zero reads."""
        dtype = params["interface"]["kernel"].dtype
        return HeadCellCarry(
            self.controller_cell.init_carry(params["controller"]),
            self.memory.init_state(params["memory"]),
            jnp.zeros(self.memory.read_size, dtype),
        )

    def step(self, params: dict, carry: HeadCellCarry, x, /, **controls):
        """``(y_t, carry_t)`` for one input ``x (d_input,)``; ``y_t = [ĥ_t ‖ r_t]``."""
        where = f"{type(self).__name__}.step"
        check_array("x", x, shape=(self.d_input,), floating=True)
        check_controls(controls, where=where)
        check_array("carry.read", carry.read, shape=self.memory.read_size, floating=True)
        u = jnp.concatenate([x, carry.read.reshape(-1)])
        h, controller = self.controller_cell.step(params["controller"], carry.controller, u)
        return self._after_controller(params, carry, h, controller, controls)

    def project_inputs(self, params: dict, xs) -> tuple[dict, jax.Array]:
        """The input hook of :func:`memjax.core.unroll` (``precompute=True``): the controller's
        first layer on the :math:`x_t` part of :math:`[x_t \\| r_{t-1}]` (with its bias) for all
        ``T`` steps at once, ``xs (T, d_input)`` → ``(step_params, pre)``
        (:func:`project_controller`)."""
        check_array("xs", xs, shape=(None, self.d_input), floating=True)
        controller, pre = project_controller(self.controller_cell, params["controller"], xs)
        return {**params, "controller": controller}, pre

    def step_projected(self, params: dict, carry: HeadCellCarry, pre, /, **controls):
        """:meth:`step` from one step of :meth:`project_inputs` (``params`` its step params)."""
        check_controls(controls, where=f"{type(self).__name__}.step_projected")
        check_array("carry.read", carry.read, shape=self.memory.read_size, floating=True)
        read = carry.read.reshape(-1)
        h, controller = controller_step_projected(
            self.controller_cell, params["controller"], carry.controller, pre, read
        )
        return self._after_controller(params, carry, h, controller, controls)

    def _after_controller(self, params, carry: HeadCellCarry, h, controller, controls):
        h = taps.tap("controller", jnp.clip(h, -self.clip, self.clip))
        xi = jnp.clip(self.interface(params["interface"], h), -self.clip, self.clip)
        parts = {name: taps.tap(name, a) for name, a in self.memory.split_interface(xi).items()}
        key, value, query = self.memory.head_arguments(parts)
        read, memory = memory_step(
            self.memory,
            params["memory"],
            carry.memory,
            key,
            value,
            query,
            order=self.order,
            **controls,
        )
        y = jnp.concatenate([h, read.reshape(-1)])
        return y, HeadCellCarry(controller, memory, read)
