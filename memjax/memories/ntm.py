r"""The Neural Turing Machine (Graves, Wayne & Danihelka 2014, arXiv 1410.5401): memory and cell.

Evidence tags, here and in the sibling memory cells: **[C]** confirmed in the source named with
it (a paper's abstract or a released implementation's code); **[L]** from the literature cited,
not re-read against its PDF; **[I]** inferred — memjax's choice or a reconstruction, not a
paper's text; **[D]** checked numerically in memjax's own tests.

**Memory** :math:`M_t \in \mathbb{R}^{N \times W}` with :math:`H_r` read heads and :math:`H_w`
write heads. Every head addresses the memory from its own previous weighting
:math:`w_{t-1}` (:mod:`memjax.memories.addressing`; equation numbers of the arXiv version,
[L]):

.. math::

    w^c_t &= \mathrm{softmax}\big(\beta_t K[k_t, M(\cdot)]\big)      &&\text{(eqs. 5–6)}\\
    w^g_t &= g_t w^c_t + (1 - g_t) w_{t-1}                          &&\text{(eq. 7)}\\
    \tilde w_t(i) &= \textstyle\sum_{o=-R}^{R} s_t(o)\, w^g_t(i - o \bmod N) &&\text{(eq. 8)}\\
    w_t(i) &= \tilde w_t(i)^{\gamma_t} / \textstyle\sum_j \tilde w_t(j)^{\gamma_t} &&\text{(eq. 9)}

from one head's raw parameters :math:`[k_t \| \hat\beta \| \hat g \| \hat\gamma \| \hat s]`
(width :math:`W + 3 + 2R + 1`) through :math:`\beta = \mathrm{oneplus}(\hat\beta)`,
:math:`g = \sigma(\hat g)`, :math:`\gamma = \mathrm{oneplus}(\hat\gamma) = 1 +
\mathrm{softplus}(\hat\gamma)`, :math:`s = \mathrm{softmax}(\hat s)` over the offsets
:math:`-R \dots R` (``shift_range = R``). A read head returns :math:`r_t = \sum_i w_t(i) M(i)`
(eq. 2); the write heads, with raw :math:`[\hat e_t \| a_t]`, erase with
:math:`e_t = \sigma(\hat e_t)` and add :math:`a_t` (eqs. 3–4):
:math:`M_t(i) = M_{t-1}(i) \prod_h (1 - w^h_t(i) e^h_t) + \sum_h w^h_t(i) a^h_t`.

**Reads change the state**: the read weighting :math:`w_t` is kept for the next step's
interpolation and shift, so the memory overrides :meth:`~memjax.core.Memory.access` (the
decision in :mod:`memjax.core.protocol`); :meth:`NTMMemory.read` is a *peek* with the current
addressing that changes nothing.

**Order.** ``order="read_write"`` (the :class:`NTMCell` default, as in the pytorch-ntm and
MarkPKCollier reproductions [I: their code orders reads before the write]) addresses and reads
:math:`M_{t-1}`, then writes; ``"write_read"`` writes first and reads :math:`M_t`. Write heads
always address :math:`M_{t-1}`.

**The access arguments**: ``key`` ``(H_w, W + 3 + 2R + 1)`` = the write heads' raw addressing
(*where* to write), ``value`` ``(H_w, 2W)`` = their raw :math:`[\hat e \| a]` (*what* to write),
``query`` ``(H_r, W + 3 + 2R + 1)`` = the read heads' raw addressing; the read is ``(H_r, W)``
(:attr:`NTMMemory.read_size`). The state is :class:`NTMState`.

**Initial state** [I]: every slot :math:`10^{-6}` (a small constant: in Collier & Beel, ICANN
2018, constant init converged about twice as fast as the next best [L]) and every weighting
one-hot on slot 0. ``eps`` sits inside every square root.

**Long backward passes** [D: measured in ``tests/memories/test_memory_cells.py``'s setting]:
from the init, with zero or huge inputs and with every gate saturated, 10,000 steps forward and
backward stay finite. Sharpening with :math:`\gamma \gg 1` is expansive (its Jacobian scales
like :math:`\gamma/\tilde w`), so in a chaotic regime — e.g. all weights of a small NTM-LSTM
×10 — the *true* BPTT gradient grows exponentially (about ×1.06 per step there, overflowing
float32 after ~1,500 steps). That is the model's gradient, not a numerical guard failing:
bound the horizon with truncation windows (:func:`memjax.core.unroll` ``truncate=``, where
synthetic gradients attach) and clip gradient norms.

**Cell** (:class:`NTMCell`): an LSTM or feed-forward controller on :math:`[x_t \| r_{t-1}]`,
outputs clipped at ±20, the interface split into the taps ``"read"`` ``(H_r, ·)`` and
``"write"`` ``(H_w, ·)`` (:mod:`memjax.memories.head_cell`); the memory taps the weightings as
``"read_weights"`` and ``"write_weights"``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core import unroll
    >>> from memjax.memories.ntm import NTMCell
    >>> cell = NTMCell(d_input=4, d_hidden=8, memory_size=16, memory_width=5, num_read_heads=2)
    >>> p = cell.init_params(jax.random.key(0))
    >>> ys, carry = unroll(cell, p, cell.init_carry(p), jnp.ones((10, 4)))
    >>> ys.shape, carry.memory.memory.shape, carry.memory.read_weights.shape
    ((10, 18), (16, 5), (2, 16))
    >>> cell.tap_names
    ('controller', 'read', 'write', 'read_weights', 'write_weights')
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from memjax.core import taps
from memjax.core.checks import check_array, check_choice, check_positive_int
from memjax.core.controls import check_controls
from memjax.core.protocol import Memory
from memjax.core.spec import spec
from memjax.core.token_step import ORDERS, Order
from memjax.memories import addressing
from memjax.memories.head_cell import HeadCell, check_controller_fields

__all__ = ["NTMCell", "NTMMemory", "NTMState"]


class NTMState(NamedTuple):
    """The memory ``(N, W)`` and the heads' last weightings ``(H_r, N)`` and ``(H_w, N)``."""

    memory: jax.Array
    read_weights: jax.Array
    write_weights: jax.Array


@spec
class NTMMemory(Memory):
    """NTM memory with content and location addressing and erase/add writes (module doc).

    Args:
        memory_size: number of slots ``N``.
        memory_width: slot width ``W``.
        num_read_heads: ``H_r >= 1``.
        num_write_heads: ``H_w >= 1``.
        shift_range: ``R``; shifts by ``-R … R`` (``2R + 1 <= N``).
        init_value: the constant every slot starts at.
        eps: the constant inside every square root.
        dtype: dtype of the state.
    """

    memory_size: int
    memory_width: int
    num_read_heads: int = 1
    num_write_heads: int = 1
    shift_range: int = 1
    init_value: float = 1e-6
    eps: float = 1e-8
    dtype: str = "float32"

    def __post_init__(self):
        addressing.check_slot_memory(
            self.memory_size, self.memory_width, self.init_value, self.eps, self.dtype
        )
        check_positive_int("num_read_heads", self.num_read_heads)
        check_positive_int("num_write_heads", self.num_write_heads)
        if isinstance(self.shift_range, bool) or not isinstance(self.shift_range, int):
            raise TypeError(f"shift_range: expected an int, got {self.shift_range!r}")
        if self.shift_range < 0 or 2 * self.shift_range + 1 > self.memory_size:
            raise ValueError(
                f"shift_range: expected 0 <= R with 2R + 1 <= memory_size = {self.memory_size} "
                f"(shifts wider than the memory alias), got {self.shift_range}"
            )

    @property
    def head_width(self) -> int:
        """Raw addressing parameters of one head: ``W + 3 + 2R + 1``."""
        return self.memory_width + 3 + 2 * self.shift_range + 1

    @property
    def key_size(self) -> tuple[int, int]:
        return (self.num_write_heads, self.head_width)

    @property
    def value_size(self) -> tuple[int, int]:
        return (self.num_write_heads, 2 * self.memory_width)

    @property
    def query_size(self) -> tuple[int, int]:
        """Shape of one query: the read heads' raw addressing ``(H_r, head_width)``."""
        return (self.num_read_heads, self.head_width)

    @property
    def read_size(self) -> tuple[int, int]:
        """Shape of one read ``(H_r, W)``."""
        return (self.num_read_heads, self.memory_width)

    @property
    def interface_size(self) -> int:
        """Width of the controller's interface: read heads, then write heads with ``[ê ‖ a]``."""
        write = self.head_width + 2 * self.memory_width
        return self.num_read_heads * self.head_width + self.num_write_heads * write

    interface_parts = ("read", "write")
    tap_names = ("read_weights", "write_weights")

    def split_interface(self, xi: jax.Array) -> dict[str, jax.Array]:
        """``xi (interface_size,)`` → ``{"read": (H_r, hw), "write": (H_w, hw + 2W)}``."""
        check_array("xi", xi, shape=(self.interface_size,), floating=True)
        n_read = self.num_read_heads * self.head_width
        return {
            "read": xi[:n_read].reshape(self.num_read_heads, self.head_width),
            "write": xi[n_read:].reshape(self.num_write_heads, -1),
        }

    def head_arguments(self, parts: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(key, value, query)`` of :meth:`access` from :meth:`split_interface`'s parts."""
        write = parts["write"]
        return write[:, : self.head_width], write[:, self.head_width :], parts["read"]

    def init_params(self, key: jax.Array) -> dict:
        """No learnables."""
        return {}

    def init_state(self, params, /, **controls) -> NTMState:
        """Every slot ``init_value``; every weighting one-hot on slot 0."""
        check_controls(controls, where="NTMMemory.init_state")
        n = self.memory_size
        first = jax.nn.one_hot(0, n, dtype=self.dtype)
        return NTMState(
            jnp.full((n, self.memory_width), self.init_value, self.dtype),
            jnp.tile(first, (self.num_read_heads, 1)),
            jnp.tile(first, (self.num_write_heads, 1)),
        )

    def _check_state(self, state: NTMState) -> None:
        n = self.memory_size
        check_array("state.memory", state.memory, shape=(n, self.memory_width), floating=True)
        check_array("state.read_weights", state.read_weights, shape=(self.num_read_heads, n))
        check_array("state.write_weights", state.write_weights, shape=(self.num_write_heads, n))

    def address(self, head: jax.Array, w_prev: jax.Array, memory: jax.Array) -> jax.Array:
        """One head's weighting ``(N,)`` from its raw parameters ``(head_width,)`` (eqs. 5–9)."""
        width = self.memory_width
        key = head[:width]
        beta = addressing.oneplus(head[width])
        g = jax.nn.sigmoid(head[width + 1])
        gamma = addressing.oneplus(head[width + 2])
        shift = jax.nn.softmax(head[width + 3 :])
        w = addressing.content_weights(key, memory, beta, self.eps)
        w = addressing.interpolate(w, w_prev, g)
        return addressing.sharpen(addressing.circular_shift(w, shift), gamma)

    def _weights(self, heads, w_prev, memory):
        return jax.vmap(self.address, in_axes=(0, 0, None))(heads, w_prev, memory)

    def _write(self, state: NTMState, w, value) -> NTMState:
        """Erase and add at the write weighting ``w (H_w, N)`` (eqs. 3–4)."""
        w = taps.tap("write_weights", w)
        width = self.memory_width
        erase, add = jax.nn.sigmoid(value[:, :width]), value[:, width:]
        return NTMState(addressing.erase_add(state.memory, w, erase, add), state.read_weights, w)

    def write(self, params, state: NTMState, key, value, /, **controls) -> NTMState:
        """The write heads address :math:`M_{t-1}`, erase and add (eqs. 3–9)."""
        check_controls(controls, where="NTMMemory.write")
        self._check_state(state)
        check_array("key", key, shape=self.key_size, floating=True)
        check_array("value", value, shape=self.value_size, floating=True)
        return self._write(state, self._weights(key, state.write_weights, state.memory), value)

    def read(self, params, state: NTMState, query, /, **controls) -> jax.Array:
        """Peek: the reads ``(H_r, W)`` with the current addressing; the state is unchanged."""
        check_controls(controls, where="NTMMemory.read")
        self._check_state(state)
        check_array("query", query, shape=self.query_size, floating=True)
        w = self._weights(query, state.read_weights, state.memory)
        return addressing.read_slots(state.memory, w)

    def access(
        self,
        params,
        state: NTMState,
        key,
        value,
        query,
        /,
        *,
        order: Order = "read_write",
        **controls,
    ) -> tuple[jax.Array, NTMState]:
        """One step of every head: ``(reads (H_r, W), new state)`` (module doc, "Order")."""
        check_choice("order", order, ORDERS)
        check_controls(controls, where="NTMMemory.access", also=("order",))
        self._check_state(state)
        check_array("key", key, shape=self.key_size, floating=True)
        check_array("value", value, shape=self.value_size, floating=True)
        check_array("query", query, shape=self.query_size, floating=True)
        # remat: reverse mode keeps the step's inputs and recomputes every head's addressing
        # (cheap next to storing its intermediates every step; ~11 % less fwd+bwd CPU time at
        # the canonical size)
        return taps.checkpoint(functools.partial(self._access, order=order))(
            state, key, value, query
        )

    def _access(self, state: NTMState, key, value, query, *, order) -> tuple[jax.Array, NTMState]:
        if order == "write_read":
            w_write = self._weights(key, state.write_weights, state.memory)
            state = self._write(state, w_write, value)
            w_read = self._weights(query, state.read_weights, state.memory)
        else:  # every head addresses M_{t-1}: one batched addressing of all heads
            heads = jnp.concatenate([query, key])
            w = self._weights(
                heads, jnp.concatenate([state.read_weights, state.write_weights]), state.memory
            )
            w_read, w_write = w[: self.num_read_heads], w[self.num_read_heads :]
        w_read = taps.tap("read_weights", w_read)
        reads = addressing.read_slots(state.memory, w_read)
        if order == "read_write":
            state = self._write(state, w_write, value)
        return reads, NTMState(state.memory, w_read, state.write_weights)


@spec
class NTMCell(HeadCell):
    """An NTM: a controller over :class:`NTMMemory` (module doc), a :class:`~memjax.core.Cell`.

    ``step(params, carry, x) -> (y, carry)`` with ``x (d_input,)``, ``y (d_hidden + H_r·W,)``
    and carry :class:`~memjax.memories.head_cell.HeadCellCarry` ``(controller, NTMState,
    reads (H_r, W))``.

    Args:
        d_input: width of one input.
        d_hidden: controller width.
        memory_size, memory_width, num_read_heads, num_write_heads, shift_range: the memory.
        controller: ``"lstm"`` or ``"feedforward"``.
        order: ``"read_write"`` (default) or ``"write_read"``.
        clip: controller outputs and the interface are clipped to ``±clip``.
        init_value, eps: the memory's (:class:`NTMMemory`).
        dtype: dtype of params and state.
    """

    d_input: int
    d_hidden: int
    memory_size: int = 128
    memory_width: int = 20
    num_read_heads: int = 1
    num_write_heads: int = 1
    shift_range: int = 1
    controller: str = "lstm"
    order: str = "read_write"
    clip: float = 20.0
    init_value: float = 1e-6
    eps: float = 1e-8
    dtype: str = "float32"

    def __post_init__(self):
        check_controller_fields(self)
        check_choice("order", self.order, ORDERS)
        _ = self.memory  # validates the memory's arguments

    @property
    def memory(self) -> NTMMemory:
        return NTMMemory(
            self.memory_size,
            self.memory_width,
            self.num_read_heads,
            self.num_write_heads,
            self.shift_range,
            self.init_value,
            self.eps,
            self.dtype,
        )
