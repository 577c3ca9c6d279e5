r"""The authors' neural memory network (NMN), reconstructed for Fast & Slow Learning [I/L].

**Provenance.** Fernando, Denman, Sridharan & Fookes' NMNs have read, output and write
controllers ([C] for their 2020 plasticity paper, arXiv 1910.05448; [I] that Fast & Slow
Learning, arXiv 2011.05438, uses the same backbone). The equations below are memjax's
*reconstruction* [I/L], not the paper's text: only that paper's abstract is confirmed. Tags:
**[C]** confirmed in the source named with it; **[L]** from the literature cited (the group's
earlier NMN papers), not re-read against its PDF; **[I]** inferred — memjax's choice.

**Memory** :math:`M_t \in \mathbb{R}^{l \times k}` (``memory_size`` slots of width
``memory_width``). Per step, with input :math:`e_t` and three controllers
:math:`f_r, f_o, f_w` (LSTM or feed-forward, each with its own state):

.. math::

    q_t &= \mathrm{clip}\big(f_r(e_t)\, W_q + b_q\big)           &&\text{(1: query)} \\
    z_t &= \mathrm{softmax}\big(M_{t-1} q_t / \sqrt{k}\big)      &&\text{(2: attention)} \\
    m_t &= z_t^\top M_{t-1}                                       &&\text{(3: read)} \\
    o_t &= \mathrm{clip}\big(f_o([q_t \,\|\, m_t])\big)           &&\text{(4: output)} \\
    [w_t \,\|\, \hat\varepsilon_t] &= \mathrm{clip}\big(f_w(o_t)\, W_u + b_u\big),\quad
        \varepsilon_t = \sigma(\hat\varepsilon_t)                 &&\text{(5: write controller)} \\
    M_t &= M_{t-1} \odot \big(1 - \varepsilon_t\, z_t 1_k^\top\big) + z_t w_t^\top
                                                                  &&\text{(6: erase, write)}

(the step numbers are memjax's, for the reconstruction; not paper equations).
``similarity="cosine"`` replaces (2) by :math:`\mathrm{softmax}_i K[q_t, M_{t-1}(i)]` (``eps``
inside the square roots); ``write_input="read"`` feeds :math:`[q_t \| m_t]` instead of
:math:`o_t` to :math:`f_w`. The erase gate :math:`\varepsilon_t` is one scalar, as in the
reconstruction's step 6; :math:`\varepsilon_t = 1` is the group's full overwrite
:math:`M_t = M_{t-1}(I - z_t \otimes e_k)^\top + (w_t \otimes e_l)(z_t \otimes e_k)^\top` [L].
The step's output is :math:`y_t = o_t` (a prediction head goes outside the cell). Clipping is
at ±20 ([I] memjax's default, as in its NTM and MANN cells).

**Memory verbs.** The NMN's read does not change the memory (the write happens at the read's
attention, after the controllers), so :class:`NMNMemory` keeps the protocol's default
:meth:`~memjax.core.Memory.access`: ``key`` ``(k,)`` = the write-location query, ``value``
``(k + 1,)`` = :math:`[w_t \| \hat\varepsilon_t]`, ``query`` ``(k,)``, read ``(k,)``. The cell
uses :meth:`NMNMemory.attention`, :meth:`NMNMemory.read_at` and :meth:`NMNMemory.write_at` so
the attention is computed once per step.

**Taps**: ``"read"`` (:math:`q_t`), ``"output"`` (:math:`o_t`), ``"write"``
(:math:`u_t = [w_t \| \hat\varepsilon_t]`, the write controller's output that synthetic
gradients target by default — [I] memjax's choice: its effect shows only at later reads) and
``"attention"`` (:math:`z_t`).

**Initial state** [I]: every slot :math:`10^{-6}` (memjax's small-constant init, as its NTM).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core import unroll
    >>> from memjax.memories.nmn import NMNCell
    >>> cell = NMNCell(d_input=5, d_hidden=8, memory_size=10, memory_width=6)
    >>> p = cell.init_params(jax.random.key(0))
    >>> ys, carry = unroll(cell, p, cell.init_carry(p), jnp.ones((7, 5)))
    >>> ys.shape, carry.memory.memory.shape
    ((7, 8), (10, 6))
    >>> cell.tap_names
    ('read', 'attention', 'output', 'write')
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from memjax.core import taps
from memjax.core.checks import check_array, check_choice
from memjax.core.controls import check_controls
from memjax.core.protocol import Memory
from memjax.core.spec import spec
from memjax.memories import addressing
from memjax.memories.head_cell import (
    check_controller_fields,
    controller_step_projected,
    make_controller,
    project_controller,
)
from memjax.nn.dense import Dense

__all__ = ["NMNCarry", "NMNCell", "NMNMemory", "NMNState"]

SIMILARITIES = ("dot", "cosine")
WRITE_INPUTS = ("output", "read")


class NMNState(NamedTuple):
    """The memory ``(l, k)``."""

    memory: jax.Array


@spec
class NMNMemory(Memory):
    """Soft-attention slot memory with erase-then-write at the attended slots (module doc).

    Args:
        memory_size: number of slots ``l``.
        memory_width: slot width ``k``.
        similarity: ``"dot"`` (scaled by :math:`1/\\sqrt{k}`) or ``"cosine"``.
        init_value: the constant every slot starts at.
        eps: the constant inside every square root.
        dtype: dtype of the state.
    """

    memory_size: int
    memory_width: int
    similarity: str = "dot"
    init_value: float = 1e-6
    eps: float = 1e-8
    dtype: str = "float32"

    def __post_init__(self):
        addressing.check_slot_memory(
            self.memory_size, self.memory_width, self.init_value, self.eps, self.dtype
        )
        check_choice("similarity", self.similarity, SIMILARITIES)

    @property
    def key_size(self) -> tuple[int]:
        return (self.memory_width,)

    @property
    def value_size(self) -> tuple[int]:
        """``[w ‖ ε̂]``: the content and the raw erase gate."""
        return (self.memory_width + 1,)

    @property
    def read_size(self) -> tuple[int]:
        return (self.memory_width,)

    def init_params(self, key: jax.Array) -> dict:
        """No learnables."""
        return {}

    def init_state(self, params, /, **controls) -> NMNState:
        """Every slot ``init_value``."""
        check_controls(controls, where="NMNMemory.init_state")
        return NMNState(
            jnp.full((self.memory_size, self.memory_width), self.init_value, self.dtype)
        )

    def _check(self, state: NMNState, name: str, x, shape) -> None:
        shape_m = (self.memory_size, self.memory_width)
        check_array("state.memory", state.memory, shape=shape_m, floating=True)
        check_array(name, x, shape=shape, floating=True)

    def attention(self, state: NMNState, query: jax.Array) -> jax.Array:
        """:math:`z = \\mathrm{softmax}(M q / \\sqrt{k})` ``(l,)`` (or the cosine form)."""
        memory = state.memory
        if self.similarity == "dot":
            return jax.nn.softmax(memory @ query / math.sqrt(self.memory_width))
        return addressing.content_weights(query, memory, 1.0, self.eps)

    def read_at(self, state: NMNState, z: jax.Array) -> jax.Array:
        """:math:`m = z^\\top M` ``(k,)``."""
        return z @ state.memory

    def write_at(self, state: NMNState, z: jax.Array, value: jax.Array) -> NMNState:
        """:math:`M \\odot (1 - \\sigma(\\hat\\varepsilon) z 1^\\top) + z w^\\top` at ``z``."""
        content, erase = value[:-1], jax.nn.sigmoid(value[-1])
        memory = state.memory * (1.0 - erase * z[:, None]) + z[:, None] * content[None, :]
        return NMNState(memory)

    def write(self, params, state: NMNState, key, value, /, **controls) -> NMNState:
        """Erase-then-write ``value = [w ‖ ε̂]`` at the attention of ``key`` over :math:`M`."""
        check_controls(controls, where="NMNMemory.write")
        self._check(state, "key", key, self.key_size)
        check_array("value", value, shape=self.value_size, floating=True)
        return self.write_at(state, self.attention(state, key), value)

    def read(self, params, state: NMNState, query, /, **controls) -> jax.Array:
        """:math:`z^\\top M` with :math:`z` the attention of ``query``."""
        check_controls(controls, where="NMNMemory.read")
        self._check(state, "query", query, self.key_size)
        return self.read_at(state, self.attention(state, query))


class NMNCarry(NamedTuple):
    """The three controllers' carries and the memory's state."""

    read_controller: Any
    output_controller: Any
    write_controller: Any
    memory: NMNState


@spec
class NMNCell:
    """The reconstructed NMN (module doc) as a :class:`~memjax.core.Cell`.

    ``step(params, carry, x) -> (o_t, carry)`` with ``x (d_input,)``, ``o_t (d_hidden,)`` and
    carry :class:`NMNCarry`.

    Args:
        d_input: width of one input :math:`e_t`.
        d_hidden: width of every controller.
        memory_size: number of slots ``l``.
        memory_width: slot width ``k``.
        controller: ``"lstm"`` or ``"feedforward"`` (all three controllers).
        write_input: ``"output"`` (:math:`o_t`, default) or ``"read"`` (:math:`[q_t \\| m_t]`).
        similarity: the memory's attention (:class:`NMNMemory`).
        clip: controller outputs clipped to ``±clip``.
        init_value, eps: the memory's.
        dtype: dtype of params and state.
    """

    d_input: int
    d_hidden: int
    memory_size: int = 128
    memory_width: int = 40
    controller: str = "lstm"
    write_input: str = "output"
    similarity: str = "dot"
    clip: float = 20.0
    init_value: float = 1e-6
    eps: float = 1e-8
    dtype: str = "float32"

    def __post_init__(self):
        check_controller_fields(self)
        check_choice("write_input", self.write_input, WRITE_INPUTS)
        _ = self.memory  # validates the memory's arguments

    @property
    def memory(self) -> NMNMemory:
        return NMNMemory(
            self.memory_size,
            self.memory_width,
            self.similarity,
            self.init_value,
            self.eps,
            self.dtype,
        )

    tap_names = ("read", "attention", "output", "write")

    @property
    def d_output(self) -> int:
        return self.d_hidden

    def _controllers(self):
        k, h = self.memory_width, self.d_hidden
        write_in = h if self.write_input == "output" else 2 * k
        return {
            "read_controller": make_controller(self.controller, self.d_input, h, self.dtype),
            "output_controller": make_controller(self.controller, 2 * k, h, self.dtype),
            "write_controller": make_controller(self.controller, write_in, h, self.dtype),
        }

    def _heads(self):
        k, h = self.memory_width, self.d_hidden
        return {
            "read_head": Dense(h, k, dtype=self.dtype),
            "write_head": Dense(h, k + 1, dtype=self.dtype),
        }

    def init_params(self, key: jax.Array) -> dict:
        """The three controllers', the query and write heads' (Dense) and the memory's params."""
        parts = {**self._controllers(), **self._heads()}
        keys = jax.random.split(key, len(parts) + 1)
        params = {name: part.init_params(k) for (name, part), k in zip(parts.items(), keys)}
        params["memory"] = self.memory.init_params(keys[-1])
        return params

    def init_carry(self, params: dict) -> NMNCarry:
        """The controllers' initial carries and the memory's initial state."""
        c = self._controllers()
        return NMNCarry(
            c["read_controller"].init_carry(params["read_controller"]),
            c["output_controller"].init_carry(params["output_controller"]),
            c["write_controller"].init_carry(params["write_controller"]),
            self.memory.init_state(params["memory"]),
        )

    def step(self, params: dict, carry: NMNCarry, x, /, **controls):
        """``(o_t, carry_t)`` for one input ``x (d_input,)`` (module doc, steps 1–6)."""
        check_array("x", x, shape=(self.d_input,), floating=True)
        check_controls(controls, where="NMNCell.step")
        c = self._controllers()
        h_r, s_r = c["read_controller"].step(params["read_controller"], carry.read_controller, x)
        return self._after_read_controller(params, carry, h_r, s_r)

    def project_inputs(self, params: dict, xs) -> tuple[dict, jax.Array]:
        """The input hook of :func:`memjax.core.unroll` (``precompute=True``): the read
        controller's first layer (it sees :math:`e_t` alone) for all ``T`` steps at once,
        ``xs (T, d_input)`` → ``(step_params, pre)``
        (:func:`memjax.memories.head_cell.project_controller`)."""
        check_array("xs", xs, shape=(None, self.d_input), floating=True)
        controller = self._controllers()["read_controller"]
        read, pre = project_controller(controller, params["read_controller"], xs)
        return {**params, "read_controller": read}, pre

    def step_projected(self, params: dict, carry: NMNCarry, pre, /, **controls):
        """:meth:`step` from one step of :meth:`project_inputs` (``params`` its step params)."""
        check_controls(controls, where="NMNCell.step_projected")
        controller = self._controllers()["read_controller"]
        h_r, s_r = controller_step_projected(
            controller, params["read_controller"], carry.read_controller, pre, None
        )
        return self._after_read_controller(params, carry, h_r, s_r)

    def _after_read_controller(self, params: dict, carry: NMNCarry, h_r, s_r):
        memory, c, heads = self.memory, self._controllers(), self._heads()
        shape_m = (self.memory_size, self.memory_width)
        check_array("carry.memory.memory", carry.memory.memory, shape=shape_m, floating=True)

        def clip(a):
            return jnp.clip(a, -self.clip, self.clip)

        q = taps.tap("read", clip(heads["read_head"](params["read_head"], clip(h_r))))
        z = taps.tap("attention", memory.attention(carry.memory, q))
        m = memory.read_at(carry.memory, z)
        qm = jnp.concatenate([q, m])
        o, s_o = c["output_controller"].step(
            params["output_controller"], carry.output_controller, qm
        )
        o = taps.tap("output", clip(o))
        h_w, s_w = c["write_controller"].step(
            params["write_controller"],
            carry.write_controller,
            o if self.write_input == "output" else qm,
        )
        u = taps.tap("write", clip(heads["write_head"](params["write_head"], clip(h_w))))
        return o, NMNCarry(s_r, s_o, s_w, memory.write_at(carry.memory, z, u))
