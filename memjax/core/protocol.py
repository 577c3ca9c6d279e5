"""Protocols: :class:`Memory` (open loop), :class:`SequenceLayer`, :class:`Cell` (closed loop).

**Memory.** A *memory* is a frozen spec (see :func:`memjax.core.spec`) with four pure verbs:

* ``init_params(key) -> params`` — learnables trained by an optax outer loop (may be ``{}``);
* ``init_state(params, /, **controls) -> state`` — the test-time state, a ``NamedTuple`` pytree;
* ``write(params, state, key, value, /, **controls) -> state`` — store one association;
* ``read(params, state, query, /, **controls) -> value`` — retrieve without changing the state;

and one fused verb with a default, ``access(params, state, key, value, query, /, *, order,
**controls) -> (value, state)`` — one token's write and read (below).

The verbs are **unbatched**: ``key`` is one vector of shape ``(d_key,)``. Heads, batches and time
are added from outside with ``jax.vmap`` (:class:`memjax.core.MultiHead`) and ``lax.scan``
(:func:`memjax.core.scan`). Extra keyword *controls* (``theta=``, ``eta=``, ``alpha=``,
``key=``, …) are accepted by every memory; a memory ignores the known ones it does not use, and a
name no component knows is an error (:mod:`memjax.core.controls`).

``chunk`` processes a short run of tokens at once; its default is the token-by-token loop, and a
memory with a parallel chunk form overrides it (its tests then prove it equals the loop).

**Reads that change the state: a fused** ``access`` **verb, not a stateful** ``read``. NTM's
location addressing (Graves et al. 2014, eqs. 5–9: the read weighting is interpolated with, and
shifted from, the previous one) and MANN's least-recently-used access (Santoro et al. 2016, eqs.
7–8: usage :math:`w^u_t = \\gamma w^u_{t-1} + w^r_t + w^w_t`) make a read move the state. Such
memories override ``access``; :func:`memjax.core.step` (and so ``chunk``, :func:`scan` and the
cells over a memory) dispatches to it. The default ``access`` is write-then-read (or read-then-
write with ``order="read_write"``), exactly what :func:`step` did before, so existing memories are
untouched and bit-identical. We chose this over making ``read`` return ``(value, state)`` because

1. in those papers the read and the write of one token are *one* coupled step (MANN's usage and
   the write weighting both use the previous read weighting; NTM's heads address from the same
   previous state), which a single verb states exactly, while two stateful verbs would leave the
   caller to thread the state through them in the right order;
2. ``read`` stays pure for every memory, so probing a memory (evaluation, the memory contract,
   the parallel chunk forms, Titans' dual form, :class:`MultiHead`) never changes it; a stateful
   memory's ``read`` is a *peek* with the current addressing;
3. no existing caller of ``read`` changes.

**SequenceLayer.** A layer whose reads must see writes *inside* a chunk through a dual form
(Titans) exposes the fused sequence verb ``apply(params, state, xs, /, **controls) -> (ys,
state)``; any object with ``init_params``, ``init_state`` and ``apply`` is a
:class:`SequenceLayer` and can be wrapped by :mod:`memjax.nnx` and :mod:`memjax.eqx`.
``init_state`` may take controls (e.g. the gates of the write that stores persistent tokens).

**Cell.** A closed-loop model — a controller that reads and writes a memory (NTM, MANN, NMN), or
a plain LSTM — is a :class:`Cell`: ``init_params(key)``, ``init_carry(params)`` and ``step(params,
carry, x, /, **controls) -> (y, carry)`` for one unbatched input. :func:`memjax.core.unroll` runs
it over a sequence (``lax.scan``, remat, truncation windows where synthetic gradients attach).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core import Cell, Memory, SequenceLayer
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.associative import AssociativeLayer
    >>> from memjax.nn.lstm import LSTMCell
    >>> isinstance(LSTMCell(3, 4), Cell), isinstance(AssociativeLayer(8, 2, LinearMemory(4, 4)),
    ...                                               SequenceLayer)
    (True, True)
    >>> mem = LinearMemory(d_key=2, d_value=1, theta=1.0)
    >>> p = mem.init_params(jax.random.key(0)); k = jnp.array([1.0, 0.0])
    >>> y, state = mem.access(p, mem.init_state(p), k, jnp.ones(1), k)   # write, then read
    >>> y
    Array([1.], dtype=float32)
"""

from __future__ import annotations

import abc
import functools
from typing import Any, Protocol, runtime_checkable

import jax

from memjax.core.checks import check_params_and_state
from memjax.core.drivers import scan
from memjax.core.token_step import ORDERS, Order, token_scan, write_read

__all__ = [
    "ORDERS",
    "Carry",
    "Cell",
    "Memory",
    "Order",
    "Params",
    "SequenceLayer",
    "State",
    "check_layer_inputs",
    "check_sequence_layer",
    "expected_trees",
]

Params = Any
State = Any
Carry = Any


@runtime_checkable
class SequenceLayer(Protocol):
    """Anything that maps a sequence to a sequence while carrying a test-time state."""

    def init_params(self, key: jax.Array) -> Params: ...

    def init_state(self, params: Params, /, **controls) -> State: ...

    def apply(self, params: Params, state: State, *inputs, **controls) -> tuple[Any, State]: ...


@runtime_checkable
class Cell(Protocol):
    """A closed-loop step: ``step(params, carry, x, /, **controls) -> (y, carry)``, unbatched.

    ``x`` and ``y`` are one step's input and output (arrays or pytrees); ``carry`` is everything
    the cell keeps between steps (a controller's hidden state, a memory's state, the previous
    read). Batches are a ``jax.vmap`` outside; time is :func:`memjax.core.unroll`.

    **Optional input-projection hook** (``unroll(..., precompute=True)``): a cell whose step starts
    with a map of the input alone (an LSTM controller's :math:`x_t W_x + b`) may also define
    ``project_inputs(params, xs) -> (step_params, ps)`` — that part for all ``T`` inputs at once
    (``ps`` with leading axis ``T``; ``step_params`` what the rest of the step needs) — and
    ``step_projected(step_params, carry, ps[t], /, **controls) -> (y, carry)``, equal to
    ``step(params, carry, xs[t])`` up to float rounding. Not part of the protocol check.
    """

    def init_params(self, key: jax.Array) -> Params: ...

    def init_carry(self, params: Params) -> Carry: ...

    def step(self, params: Params, carry: Carry, x, /, **controls) -> tuple[Any, Carry]: ...


class Memory(abc.ABC):
    """Base class of associative memories; subclasses are :func:`memjax.core.spec` dataclasses.

    Subclasses define :attr:`key_size` and :attr:`value_size` (the trailing shape of one key and
    one value; queries have the key's shape) and the four verbs; a memory whose reads change its
    state also overrides :meth:`access` (module doc).
    """

    @property
    @abc.abstractmethod
    def key_size(self) -> tuple[int, ...]:
        """Shape of one key (and one query)."""

    @property
    @abc.abstractmethod
    def value_size(self) -> tuple[int, ...]:
        """Shape of one value (and one read)."""

    @abc.abstractmethod
    def init_params(self, key: jax.Array) -> Params:
        """Outer-loop learnables."""

    @abc.abstractmethod
    def init_state(self, params: Params, /, **controls) -> State:
        """The empty test-time state (controls: those its initial writes need, if any)."""

    @abc.abstractmethod
    def write(self, params: Params, state: State, key, value, /, **controls) -> State:
        """Store the association ``key -> value``; return the new state."""

    @abc.abstractmethod
    def read(self, params: Params, state: State, query, /, **controls) -> jax.Array:
        """Retrieve the value associated with ``query`` (never changes the state)."""

    def access(
        self,
        params: Params,
        state: State,
        key,
        value,
        query,
        /,
        *,
        order: Order = "write_read",
        **controls,
    ) -> tuple[jax.Array, State]:
        """One token's write and read: ``(read, new_state)``; :func:`memjax.core.step` calls it.

        The default writes ``key -> value`` and then reads ``query`` (``order="read_write"``:
        reads first). A memory whose reads change its state overrides it (module doc).
        """
        return write_read(self, params, state, key, value, query, order, controls)

    def chunk(
        self,
        params: Params,
        state: State,
        keys,
        values,
        queries,
        /,
        *,
        order: Order = "write_read",
        **controls,
    ) -> tuple[jax.Array, State]:
        """Process ``C`` tokens (leading axis) in order; controls here are already per token.

        The default is a ``lax.scan`` of :func:`memjax.core.step`; a parallel form may override it.
        """
        return token_scan(self, params, state, keys, values, queries, order, controls)

    def apply(
        self,
        params: Params,
        state: State,
        keys,
        values,
        queries,
        /,
        *,
        chunk_size: int | None = None,
        order: Order = "write_read",
        **controls,
    ) -> tuple[jax.Array, State]:
        """Sequence verb: :func:`memjax.core.scan` over ``(T, ...)`` keys, values and queries.

        ``params`` and ``state`` are checked against this spec's (a state made by another spec,
        or the two swapped, is an error that says so).
        """
        check_layer_inputs(self, params, state)
        return scan(
            self,
            params,
            state,
            keys,
            values,
            queries,
            chunk_size=chunk_size,
            order=order,
            **controls,
        )


def check_sequence_layer(name: str, layer) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``layer`` is a :class:`SequenceLayer`.

    A bare :class:`Memory` (one head's unbatched verbs, no projections) is refused with the fix:
    wrap it in :class:`memjax.models.associative.AssociativeLayer`; a bare :class:`Cell` in
    :class:`memjax.controllers.CellLayer`.

    Example:
        >>> from memjax.core.protocol import check_sequence_layer
        >>> from memjax.memories.linear import LinearMemory
        >>> check_sequence_layer("layer", LinearMemory(4, 4))
        Traceback (most recent call last):
        ...
        TypeError: layer: got a bare memory (LinearMemory); ... wrap it in AssociativeLayer, ...
    """
    if isinstance(layer, Memory):
        raise TypeError(
            f"{name}: got a bare memory ({type(layer).__name__}); MemoryLayer wraps a sequence "
            "layer: wrap it in AssociativeLayer, e.g. "
            "memjax.models.associative.AssociativeLayer(d_model, num_heads, memory)"
        )
    if isinstance(layer, Cell) and not isinstance(layer, SequenceLayer):
        raise TypeError(
            f"{name}: got a bare cell ({type(layer).__name__}); MemoryLayer wraps a sequence "
            "layer: wrap it in memjax.controllers.CellLayer(cell)"
        )
    if isinstance(layer, type) or not isinstance(layer, SequenceLayer):
        raise TypeError(
            f"{name}: expected a sequence layer (a spec with init_params, init_state and "
            f"apply), got {layer!r}"
        )


def _expected(spec) -> tuple:
    try:
        params = jax.eval_shape(lambda: spec.init_params(jax.random.key(0)))
    except Exception:  # init needs more than a key: nothing to compare against
        return None, None
    try:
        state = jax.eval_shape(spec.init_state, params)
    except Exception:  # init_state needs controls
        state = None
    return params, state


_expected_cached = functools.lru_cache(maxsize=512)(_expected)


def expected_trees(spec) -> tuple:
    """``(params, state)`` shapes of ``spec.init_params``/``init_state`` (``jax.eval_shape``).

    Cached per spec (specs are hashable values); ``None`` where they cannot be computed from a
    key alone.
    """
    try:
        hash(spec)
    except TypeError:
        return _expected(spec)
    return _expected_cached(spec)


def check_layer_inputs(spec, params, state) -> None:
    """Raise ``ValueError`` if ``params``/``state`` do not fit ``spec`` (names the mismatch).

    Structures and shapes are compared with :func:`expected_trees` (dtypes are not: a cast tree
    fits); swapped params and state are detected. Costs nothing in compiled code.

    Example:
        >>> import jax
        >>> from memjax.core.protocol import check_layer_inputs
        >>> from memjax.memories.linear import LinearMemory
        >>> mem = LinearMemory(4, 2, gated=("theta",))
        >>> p = mem.init_params(jax.random.key(0))
        >>> check_layer_inputs(mem, p, mem.init_state(p))
        >>> other = LinearMemory(8, 2, gated=("theta",))
        >>> check_layer_inputs(mem, p, other.init_state(other.init_params(jax.random.key(0))))
        Traceback (most recent call last):
        ...
        ValueError: state: at .weights expected shape (2, 4) ..., got (2, 8); was it made by ...
    """
    expected_params, expected_state = expected_trees(spec)
    check_params_and_state(
        spec, params, state, expected_params=expected_params, expected_state=expected_state
    )
