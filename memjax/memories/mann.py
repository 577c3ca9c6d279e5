r"""MANN with least-recently-used access (LRUA; Santoro et al. 2016, arXiv 1605.06065).

Tags: **[C]** confirmed in the source named with it (a paper's abstract or a released
implementation's code); **[L]** from the literature cited, not re-read against its PDF.

**Memory** :math:`M_t \in \mathbb{R}^{N \times W}` with :math:`n` heads; head :math:`h` emits a
key :math:`k^h_t` (its read query *and* the content it writes) and a write gate
:math:`\alpha^h_t`. With :math:`\sigma` the logistic function and :math:`K` the cosine
similarity (``eps`` inside the square roots, :mod:`memjax.memories.addressing`), one step is
(Santoro §3.1–3.2 [L]; snowkylin/ntm's ``mann_cell.py`` labels the cosine, read-weight, usage
and write-weight equations 17, 18, 20 and 22 [C: code comments]):

.. math::

    w^{lu}_{t-1}(i) &= 1 \text{ if } w^u_{t-1}(i) \text{ is among the } n
                     \text{ smallest usages, else } 0 \\
    w^{w,h}_t &= \sigma(\alpha^h_t)\, w^{r,h}_{t-1} + (1 - \sigma(\alpha^h_t))\, w^{lu}_{t-1}
                 &&\text{(write weights, eq. 22)} \\
    M_t(i) &= \big[M_{t-1}(i) \text{ with the least-used slot of } w^u_{t-1}
              \text{ set to } 0\big] + \textstyle\sum_h w^{w,h}_t(i)\, k^h_t
                 &&\text{(write)} \\
    w^{r,h}_t(i) &= \mathrm{softmax}_i\big(K[k^h_t, M_t(i)]\big), \quad
              r^h_t = \textstyle\sum_i w^{r,h}_t(i) M_t(i)   &&\text{(read, eqs. 17–18)} \\
    w^u_t &= \gamma\, w^u_{t-1} + \textstyle\sum_h w^{r,h}_t + \sum_h w^{w,h}_t
                 &&\text{(usage, eq. 20)}

with usage decay :math:`\gamma = 0.95` and :math:`n` = the number of heads (Santoro: "the
number of reads to memory" [L]). Ties among equal usages go to the higher slot index
(:func:`memjax.memories.addressing.least_used`, snowkylin's ``tf.nn.top_k`` order [C]); only one
slot — the least used — is zeroed before the write (Santoro §3.2 [L], snowkylin [C]).

**Near-ties.** With :math:`n > 1` heads, :math:`w^{lu}` puts every head's write on the same
:math:`n` slots, so they hold (nearly) the same content and their usages then differ by rounding
only; which of them is "least used" next is decided by the last bits, so a batched (``vmap``)
and a single call may pick different slots in float32. The selection has no gradient, so each
run is still exactly differentiable; compare multi-head runs in float64.

**Order.** ``order="write_read"`` (default) is the paper's indexing: the read weights and the
read both use :math:`M_t`, after the write (the write uses only :math:`w^r_{t-1}`, so nothing is
circular). ``"read_write"`` reads :math:`M_{t-1}` first. (snowkylin/ntm mixes the two: read
weights from :math:`M_{t-1}`, read vector from :math:`M_t`.)

**Reads change the state** (usage and the read weights the next write uses), so the memory
overrides :meth:`~memjax.core.Memory.access`; :meth:`MANNMemory.read` is a peek.

**The access arguments**: ``key`` ``(n,)`` = the raw write gates :math:`\alpha_t` (*where*
to write: the previously read or the least-used slots), ``value`` ``(n, W)`` = the raw content
written, ``query`` ``(n, W)`` = the raw read keys; the memory applies ``key_activation``
(default ``tanh``, as snowkylin [C]; ``"identity"`` is the paper's raw key) to ``value`` and
``query``. With ``separate_add=False`` (Santoro) the cell passes the key as both; with
``separate_add=True`` each head emits its own add vector (snowkylin's ``k_strategy="separate"``).

**Initial state** [C: snowkylin]: every slot :math:`10^{-6}`; read weights and usage one-hot on
slot 0.

**Cell** (:class:`MANNCell`): an LSTM or feed-forward controller on :math:`[x_t \| r_{t-1}]`
(outputs clipped at ±20, :mod:`memjax.memories.head_cell`); the whole head interface
:math:`[k \,(\| a) \| \hat\alpha]` per head is the tap ``"write"`` ``(n, ·)`` (the key is also
the write content, so MANN has no separate read tap); the memory taps ``"read_weights"`` and
``"write_weights"``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core import unroll
    >>> from memjax.memories.mann import MANNCell
    >>> cell = MANNCell(d_input=6, d_hidden=8, memory_size=12, memory_width=4, num_heads=2)
    >>> p = cell.init_params(jax.random.key(0))
    >>> ys, carry = unroll(cell, p, cell.init_carry(p), jnp.ones((5, 6)))
    >>> ys.shape, carry.memory.usage.shape
    ((5, 16), (12,))
    >>> cell.tap_names
    ('controller', 'write', 'read_weights', 'write_weights')
"""

from __future__ import annotations

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
from memjax.nn.activations import ACTIVATIONS, activation

__all__ = ["MANNCell", "MANNMemory", "MANNState"]


class MANNState(NamedTuple):
    """The memory ``(N, W)``, the heads' last read weights ``(n, N)`` and the usage ``(N,)``."""

    memory: jax.Array
    read_weights: jax.Array
    usage: jax.Array


@spec
class MANNMemory(Memory):
    """MANN memory with cosine-softmax reads and LRUA writes (module doc).

    Args:
        memory_size: number of slots ``N``.
        memory_width: slot width ``W``.
        num_heads: ``n >= 1`` heads, each reading and writing; also the number of least-used
            slots a write may go to.
        usage_decay: :math:`\\gamma` in ``[0, 1]``.
        key_activation: applied to the raw keys and add vectors (:data:`memjax.nn.ACTIVATIONS`).
        separate_add: the interface has an add vector per head besides the key.
        init_value: the constant every slot starts at.
        eps: the constant inside every square root.
        dtype: dtype of the state.
    """

    memory_size: int
    memory_width: int
    num_heads: int = 1
    usage_decay: float = 0.95
    key_activation: str = "tanh"
    separate_add: bool = False
    init_value: float = 1e-6
    eps: float = 1e-8
    dtype: str = "float32"

    def __post_init__(self):
        addressing.check_slot_memory(
            self.memory_size, self.memory_width, self.init_value, self.eps, self.dtype
        )
        check_positive_int("num_heads", self.num_heads)
        if self.num_heads > self.memory_size:
            raise ValueError(
                f"num_heads: expected at most memory_size = {self.memory_size} (one least-used "
                f"slot per head), got {self.num_heads}"
            )
        gamma = self.usage_decay
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 <= gamma <= 1:
            raise ValueError(f"usage_decay: expected a number in [0, 1], got {gamma!r}")
        check_choice("key_activation", self.key_activation, tuple(ACTIVATIONS))
        if not isinstance(self.separate_add, bool):
            raise TypeError(f"separate_add: expected a bool, got {self.separate_add!r}")

    @property
    def key_size(self) -> tuple[int]:
        return (self.num_heads,)

    @property
    def value_size(self) -> tuple[int, int]:
        return (self.num_heads, self.memory_width)

    @property
    def query_size(self) -> tuple[int, int]:
        """Shape of one query: the raw read keys ``(n, W)``."""
        return (self.num_heads, self.memory_width)

    @property
    def read_size(self) -> tuple[int, int]:
        """Shape of one read ``(n, W)``."""
        return (self.num_heads, self.memory_width)

    @property
    def head_width(self) -> int:
        """One head's interface: ``[k ‖ (a) ‖ α̂]``, ``W + 1`` (``2W + 1`` with separate adds)."""
        return (2 if self.separate_add else 1) * self.memory_width + 1

    @property
    def interface_size(self) -> int:
        return self.num_heads * self.head_width

    interface_parts = ("write",)
    tap_names = ("read_weights", "write_weights")

    def split_interface(self, xi: jax.Array) -> dict[str, jax.Array]:
        """``xi (interface_size,)`` → ``{"write": (n, head_width)}``."""
        check_array("xi", xi, shape=(self.interface_size,), floating=True)
        return {"write": xi.reshape(self.num_heads, self.head_width)}

    def head_arguments(self, parts: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(key, value, query)`` = (gates ``α̂``, add vectors or keys, keys) from the parts."""
        heads, width = parts["write"], self.memory_width
        keys = heads[:, :width]
        adds = heads[:, width : 2 * width] if self.separate_add else keys
        return heads[:, -1], adds, keys

    def init_params(self, key: jax.Array) -> dict:
        """No learnables."""
        return {}

    def init_state(self, params, /, **controls) -> MANNState:
        """Every slot ``init_value``; read weights and usage one-hot on slot 0."""
        check_controls(controls, where="MANNMemory.init_state")
        first = jax.nn.one_hot(0, self.memory_size, dtype=self.dtype)
        return MANNState(
            jnp.full((self.memory_size, self.memory_width), self.init_value, self.dtype),
            jnp.tile(first, (self.num_heads, 1)),
            first,
        )

    def _check_state(self, state: MANNState) -> None:
        n = self.memory_size
        check_array("state.memory", state.memory, shape=(n, self.memory_width), floating=True)
        check_array("state.read_weights", state.read_weights, shape=(self.num_heads, n))
        check_array("state.usage", state.usage, shape=(n,))

    def _read_weights(self, memory: jax.Array, query: jax.Array) -> jax.Array:
        keys = activation(self.key_activation)(query)
        return jax.vmap(addressing.content_weights, in_axes=(0, None, None, None))(
            keys, memory, 1.0, self.eps
        )

    def _write(self, state: MANNState, key, value) -> tuple[jax.Array, jax.Array]:
        """The LRUA write: ``(M_t, w^w_t (n, N))``."""
        w_lu, slot = addressing.least_used(state.usage, self.num_heads)
        gate = jax.nn.sigmoid(key)[:, None]
        w_write = gate * state.read_weights + (1.0 - gate) * w_lu[None, :]
        w_write = taps.tap("write_weights", w_write)
        keep = 1.0 - jax.nn.one_hot(slot, self.memory_size, dtype=state.memory.dtype)
        content = activation(self.key_activation)(value)
        return state.memory * keep[:, None] + w_write.T @ content, w_write

    def write(self, params, state: MANNState, key, value, /, **controls) -> MANNState:
        """The LRUA write alone: usage :math:`\\gamma w^u_{t-1} + \\sum_h w^{w,h}_t` (no read)."""
        check_controls(controls, where="MANNMemory.write")
        self._check_state(state)
        check_array("key", key, shape=self.key_size, floating=True)
        check_array("value", value, shape=self.value_size, floating=True)
        memory, w_write = self._write(state, key, value)
        usage = self.usage_decay * state.usage + jnp.sum(w_write, axis=0)
        return MANNState(memory, state.read_weights, usage)

    def read(self, params, state: MANNState, query, /, **controls) -> jax.Array:
        """Peek: the reads ``(n, W)`` with cosine-softmax weights; the state is unchanged."""
        check_controls(controls, where="MANNMemory.read")
        self._check_state(state)
        check_array("query", query, shape=self.query_size, floating=True)
        return addressing.read_slots(state.memory, self._read_weights(state.memory, query))

    def access(
        self,
        params,
        state: MANNState,
        key,
        value,
        query,
        /,
        *,
        order: Order = "write_read",
        **controls,
    ) -> tuple[jax.Array, MANNState]:
        """One LRUA step: ``(reads (n, W), new state)`` (module doc)."""
        check_choice("order", order, ORDERS)
        check_controls(controls, where="MANNMemory.access", also=("order",))
        self._check_state(state)
        check_array("key", key, shape=self.key_size, floating=True)
        check_array("value", value, shape=self.value_size, floating=True)
        check_array("query", query, shape=self.query_size, floating=True)
        memory = state.memory
        if order == "write_read":
            memory, w_write = self._write(state, key, value)
        w_read = taps.tap("read_weights", self._read_weights(memory, query))
        reads = addressing.read_slots(memory, w_read)
        if order == "read_write":
            memory, w_write = self._write(state, key, value)
        usage = self.usage_decay * state.usage + jnp.sum(w_read, axis=0) + jnp.sum(w_write, axis=0)
        return reads, MANNState(memory, w_read, usage)


@spec
class MANNCell(HeadCell):
    """A MANN: a controller over :class:`MANNMemory` (module doc), a :class:`~memjax.core.Cell`.

    ``step(params, carry, x) -> (y, carry)`` with ``x (d_input,)``, ``y (d_hidden + n·W,)`` and
    carry :class:`~memjax.memories.head_cell.HeadCellCarry` ``(controller, MANNState,
    reads (n, W))``. Santoro's Omniglot setup is ``d_hidden=200``, ``memory_size=128``,
    ``memory_width=40``, ``num_heads=4`` ([C: the public ports Leputa/MANN-meta-learning,
    tristandeleu/ntm-one-shot and snowkylin/ntm]).

    Args:
        d_input: width of one input.
        d_hidden: controller width.
        memory_size, memory_width, num_heads, usage_decay, key_activation, separate_add:
            the memory (:class:`MANNMemory`).
        controller: ``"lstm"`` or ``"feedforward"``.
        order: ``"write_read"`` (default) or ``"read_write"``.
        clip: controller outputs and the interface are clipped to ``±clip``.
        init_value, eps: the memory's.
        dtype: dtype of params and state.
    """

    d_input: int
    d_hidden: int
    memory_size: int = 128
    memory_width: int = 40
    num_heads: int = 4
    usage_decay: float = 0.95
    key_activation: str = "tanh"
    separate_add: bool = False
    controller: str = "lstm"
    order: str = "write_read"
    clip: float = 20.0
    init_value: float = 1e-6
    eps: float = 1e-8
    dtype: str = "float32"

    def __post_init__(self):
        check_controller_fields(self)
        check_choice("order", self.order, ORDERS)
        _ = self.memory  # validates the memory's arguments

    @property
    def memory(self) -> MANNMemory:
        return MANNMemory(
            self.memory_size,
            self.memory_width,
            self.num_heads,
            self.usage_decay,
            self.key_activation,
            self.separate_add,
            self.init_value,
            self.eps,
            self.dtype,
        )
