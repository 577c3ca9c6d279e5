r"""Sparsey as an associative memory: :class:`SparseyMemory`, the memory protocol over one mac.

Sparsey's own verbs are :meth:`SparseyMac.learn <memjax.memories.sparsey.SparseyMac.learn>` and
:meth:`~memjax.memories.sparsey.SparseyMac.recognize` over binary inputs. This adapter gives one
mac the :class:`memjax.core.Memory` protocol, so the generic drivers
(:func:`memjax.core.step`, :func:`memjax.core.scan`) run it like any other memory:

* **keys** are binary input patterns :math:`x \in \{0, 1\}^N` (the mac's U input, ``N =
  n_inputs``; ``0``/``1`` in any dtype, float for the drivers);
* **values** are the *code* (``num_labels=0``) or a *label* (``num_labels=C``: a binary vector
  of ``C`` value nodes, one-hot for a class label).

**write** ``(params, state, x, v, key=k)`` is one learning frame of the CSA (steps 1–12 of
:mod:`memjax.memories.sparsey.mac`, exactly :meth:`SparseyMac.learn_one
<memjax.memories.sparsey.SparseyMac.learn_one>`): the code :math:`c = (c_1, …, c_Q)` is sampled
from :math:`\rho` with key :math:`k` (step 9) and stored, :math:`w_U(j, c_q) \leftarrow 1` for
every active :math:`x_j` (step 10). With labels the code's cells are also linked to the value
nodes by binary Hebbian weights (Sparsey's supervised class-node step, Rinkus & Leveille 2017,
here with binary weights): :math:`L(q, c_q, j) \leftarrow 1` for every :math:`v_j = 1`, whenever
the mac is active (also after its critical period, which freezes only the U weights). In code
mode the CSA chooses the value itself, so ``write`` checks the shape of ``v`` and ignores its
entries (pass zeros).

**read** ``(params, state, x', key=k)`` recognises :math:`x'` (max-:math:`V` with a random
tie-break drawn from :math:`k`, step 9; ``key=None`` is a fixed key) and returns

* code mode: the code as a binary vector of the :math:`Q K` cells,
  :math:`y_{qK + i} = [c'_q = i]` (all zeros when the mac is gated off, step 1);
* label mode: :math:`y_j = \frac1Q \sum_q L(q, c'_q, j)`, the fraction of the code's :math:`Q`
  winners linked to value node :math:`j`.

A stored pattern has familiarity :math:`G = 1` and is recognised with its stored code (exactly,
unless another cell of a CM also has full support: a tie), so a read of a stored key returns its
code, and reads ``1`` at every value node of its label.

The adapter has no outer-loop learnables (``init_params`` returns ``{}``) and no gradients
(binary weights, discrete codes). It is one mac with a U input only: the H and D inputs of a
sequence mac are its own and its parent's codes at ``t-1`` (a closed loop, not an open-loop
key), so use :class:`~memjax.memories.sparsey.SparseyMac` or
:class:`~memjax.memories.sparsey.SparseyHierarchy` for those.

Controls: ``key=`` (a typed PRNG key, or legacy ``uint32`` key data; required by ``write``,
which samples, and split per token by :func:`memjax.core.scan`); other known controls are
ignored, an unknown name raises.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.core import scan
    >>> from memjax.memories.sparsey import SparseyMac, SparseyMemory
    >>> mem = SparseyMemory(SparseyMac(n_inputs=32, Q=8, K=8), num_labels=3)
    >>> xs = (jax.random.uniform(jax.random.key(1), (3, 32)) < 0.2).astype(jnp.float32)
    >>> params = mem.init_params(jax.random.key(0))
    >>> ys, state = scan(mem, params, mem.init_state(params), xs, jnp.eye(3), xs,
    ...                  key=jax.random.key(2))
    >>> jax.vmap(lambda x: mem.read(params, state, x))(xs).tolist()  # items 1, 2 share a cell
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.125], [0.0, 0.125, 1.0]]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_array
from memjax.core.controls import check_controls
from memjax.core.protocol import Memory
from memjax.core.spec import spec
from memjax.memories.sparsey.mac import (
    SparseyMac,
    SparseyState,
    as_prng_key,
    check_binary,
    codes_to_binary,
)

__all__ = ["SparseyMemory", "SparseyMemoryState"]


class SparseyMemoryState(NamedTuple):
    """The adapter's test-time state.

    ``mac``: the mac's :class:`~memjax.memories.sparsey.SparseyState`. ``links``: label mode, the
    binary weights ``(Q, K, num_labels)`` from the mac's cells to the value nodes; ``None`` in
    code mode.
    """

    mac: SparseyState
    links: jax.Array | None


@spec
class SparseyMemory(Memory):
    """One :class:`~memjax.memories.sparsey.SparseyMac` as a :class:`memjax.core.Memory`.

    Args:
        mac: the mac (U input only: ``n_h = n_d = 0``).
        num_labels: ``0`` (default): values are the codes, a read returns the code as a binary
            vector ``(Q·K,)``; ``C > 0``: values are binary vectors ``(C,)`` (one-hot labels), a
            read returns the fraction of the code's winners linked to each (module docstring).
    """

    mac: SparseyMac
    num_labels: int = 0

    def __post_init__(self):
        if not isinstance(self.mac, SparseyMac):
            raise TypeError(f"mac: expected a SparseyMac, got {type(self.mac).__name__}")
        if self.mac.n_h or self.mac.n_d:
            raise ValueError(
                f"mac: SparseyMemory stores U patterns only; got n_h={self.mac.n_h}, "
                f"n_d={self.mac.n_d} (use SparseyMac.learn/recognize with hs=/ds= for those)"
            )
        n = self.num_labels
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"num_labels: expected a non-negative integer, got {n!r}")

    @property
    def key_size(self) -> tuple[int, ...]:
        """``(n_inputs,)``: one binary input pattern."""
        return (self.mac.n_inputs,)

    @property
    def value_size(self) -> tuple[int, ...]:
        """``(Q·K,)`` in code mode, ``(num_labels,)`` in label mode."""
        if self.num_labels:
            return (self.num_labels,)
        return (self.mac.Q * self.mac.K,)

    def init_params(self, key: jax.Array) -> dict:
        """No outer-loop learnables: ``{}``."""
        del key
        return {}

    def init_state(self, params: dict, **controls) -> SparseyMemoryState:
        """An empty mac (:meth:`SparseyMac.init_state`) and, with labels, no links."""
        del params
        check_controls(controls, where="SparseyMemory.init_state")
        links = None
        if self.num_labels:
            links = jnp.zeros((self.mac.Q, self.mac.K, self.num_labels), jnp.bool_)
        return SparseyMemoryState(self.mac.init_state(), links)

    def write(self, params, state: SparseyMemoryState, key, value, /, **controls):
        """Learn the pattern ``key`` (one CSA learning frame) and link its code to ``value``."""
        del params
        check_binary("key", key, self.key_size)
        if self.num_labels:
            check_binary("value", value, self.value_size)
        else:
            check_array("value", value, shape=self.value_size)
        prng = controls.get("key")
        if prng is None:
            raise TypeError(
                "key: SparseyMemory.write samples a code (CSA step 9); pass "
                "key=jax.random.key(seed)"
            )
        prng = as_prng_key("key", prng)
        check_controls({**controls, "key": prng}, where="SparseyMemory.write")
        mac_state, out = self.mac.learn_one(state.mac, jnp.asarray(key), key=prng)
        links = state.links
        if self.num_labels:
            post = jax.nn.one_hot(out.code, self.mac.K, dtype=jnp.bool_)  # (Q, K); none for -1
            links = links | (post[:, :, None] & (jnp.asarray(value) > 0)[None, None, :])
        return SparseyMemoryState(mac_state, links)

    def read(self, params, state: SparseyMemoryState, query, /, **controls) -> jax.Array:
        """Recognise ``query``; return its code (binary, float32) or its label fractions."""
        del params
        check_binary("query", query, self.key_size)
        prng = controls.get("key")
        if prng is not None:
            prng = as_prng_key("key", prng)
        check_controls(
            {**controls, "key": prng} if prng is not None else controls, where="SparseyMemory.read"
        )
        code = self.mac.csa(state.mac, jnp.asarray(query), key=prng, mode="recognize").code
        if not self.num_labels:
            return codes_to_binary(code, self.mac.K).astype(jnp.float32)
        post = jax.nn.one_hot(code, self.mac.K, dtype=jnp.float32)
        return jnp.einsum("qk,qkj->j", post, state.links.astype(jnp.float32)) / self.mac.Q
