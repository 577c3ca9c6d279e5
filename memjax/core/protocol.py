"""The memory protocol (DESIGN.md §3).

A *memory* is a frozen spec (see :func:`memjax.core.spec`) with four pure verbs:

* ``init_params(key) -> params`` — learnables trained by an optax outer loop (may be ``{}``);
* ``init_state(params) -> state`` — the test-time state, a ``NamedTuple`` pytree;
* ``write(params, state, key, value, /, **controls) -> state`` — store one association;
* ``read(params, state, query, /, **controls) -> value`` — retrieve without changing the state.

The verbs are **unbatched**: ``key`` is one vector of shape ``(d_key,)``. Heads, batches and time
are added from outside with ``jax.vmap`` (:class:`memjax.core.MultiHead`) and ``lax.scan``
(:func:`memjax.core.scan`). Extra keyword *controls* (``theta=``, ``eta=``, ``alpha=``,
``key=``, …) are accepted by every memory; a memory ignores the ones it does not use, so one
driver can feed any memory.

``chunk`` processes a short run of tokens at once; its default is the token-by-token loop, and a
memory with a parallel chunk form overrides it (its tests then prove it equals the loop).

A memory whose reads must see writes *inside* a chunk through a dual form (Titans) also exposes
the fused sequence verb ``apply(params, state, xs, /, **controls) -> (ys, state)``; any object
with ``init_params``, ``init_state`` and ``apply`` is a :class:`SequenceLayer` and can be wrapped
by :mod:`memjax.nnx` and :mod:`memjax.eqx`.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol, runtime_checkable

import jax

from memjax.core.drivers import scan
from memjax.core.token_step import ORDERS, Order, token_scan

__all__ = ["ORDERS", "Memory", "Order", "Params", "SequenceLayer", "State"]

Params = Any
State = Any


@runtime_checkable
class SequenceLayer(Protocol):
    """Anything that maps a sequence to a sequence while carrying a test-time state."""

    def init_params(self, key: jax.Array) -> Params: ...

    def init_state(self, params: Params) -> State: ...

    def apply(self, params: Params, state: State, *inputs, **controls) -> tuple[Any, State]: ...


class Memory(abc.ABC):
    """Base class of associative memories; subclasses are :func:`memjax.core.spec` dataclasses.

    Subclasses define :attr:`key_size` and :attr:`value_size` (the trailing shape of one key and
    one value; queries have the key's shape) and the four verbs.
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
    def init_state(self, params: Params) -> State:
        """The empty test-time state."""

    @abc.abstractmethod
    def write(self, params: Params, state: State, key, value, /, **controls) -> State:
        """Store the association ``key -> value``; return the new state."""

    @abc.abstractmethod
    def read(self, params: Params, state: State, query, /, **controls) -> jax.Array:
        """Retrieve the value associated with ``query``."""

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
        """Sequence verb: :func:`memjax.core.scan` over ``(T, ...)`` keys, values and queries."""
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
