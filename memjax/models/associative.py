r"""A multi-head associative-memory sequence layer over any :class:`memjax.core.Memory`.

For a token :math:`x_t \in \mathbb{R}^{d}` and head :math:`h`:

.. math::

   k_t^h = \phi(x_t W_K^h),\quad v_t^h = \phi(x_t W_V^h),\quad q_t^h = \phi(x_t W_Q^h),
   \qquad \hat k = k/\lVert k\rVert_2,\ \hat q = q/\lVert q\rVert_2

(Titans eq. 11 and eq. 15 with the §4.4 choices: SiLU :math:`\phi`, ℓ2-normalised q and k, and
optionally a causal depthwise convolution of the projections before :math:`\phi`), each
head writes :math:`\hat k_t^h \to v_t^h` to its own memory and reads :math:`y_t^h = M^h_t(\hat
q_t^h)` (:func:`memjax.core.scan`), and the heads are concatenated and projected,
:math:`o_t = [y_t^1, \dots, y_t^H] W_O`.

With :class:`memjax.memories.linear.LinearMemory` this is DeltaNet (η = α = 0) or Gated DeltaNet
(``gated=("theta", "alpha")``, ``decay_form="gated_deltanet"``); the gates are computed per head
from the normalised key.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.linear import LinearMemory
    >>> from memjax.models.associative import AssociativeLayer
    >>> layer = AssociativeLayer(d_model=8, num_heads=2, memory=LinearMemory(d_key=4, d_value=4))
    >>> p = layer.init_params(jax.random.key(0))
    >>> ys, state = layer.apply(p, layer.init_state(p), jnp.ones((5, 8)))
    >>> ys.shape
    (5, 8)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from memjax.core.checks import (
    check_array,
    check_choice,
    check_finite,
    check_positive_int,
    check_spec_dtypes,
)
from memjax.core.controls import check_controls
from memjax.core.drivers import scan
from memjax.core.heads import MultiHead
from memjax.core.protocol import Memory, check_layer_inputs
from memjax.core.spec import spec
from memjax.nn.activations import ACTIVATIONS
from memjax.nn.conv1d import causal_depthwise_conv, init_conv
from memjax.nn.norms import l2_normalize


class AssociativeState(NamedTuple):
    """The layer's test-time state: the heads' memory state and the convolution's input tail."""

    memory: Any
    conv: jax.Array | None


@spec
class AssociativeLayer:
    """Projections + ``num_heads`` copies of ``memory`` + output projection (see module doc).

    Args:
        d_model: token width.
        num_heads: number of memory heads; ``memory`` is one head's memory (keys of shape
            ``(d_key,)``, values ``(d_value,)``).
        memory: the per-head :class:`~memjax.core.Memory` spec.
        activation: ``"silu"`` (Titans §4.4, default) or ``"identity"`` on q, k and v.
        qk_norm: ℓ2-normalise queries and keys (default ``True``).
        chunk_size: tokens per ``lax.scan`` chunk (remat granularity); ``None`` = whole sequence.
        conv_width: width of the causal depthwise convolution on q, k, v (0 = none). It lets a
            token see its predecessors, which associative recall needs (a value follows its key).
    """

    d_model: int
    num_heads: int
    memory: Memory
    activation: str = "silu"
    qk_norm: bool = True
    chunk_size: int | None = 64
    conv_width: int = 0

    def __post_init__(self):
        check_positive_int("d_model", self.d_model)
        if not isinstance(self.conv_width, int) or self.conv_width < 0:
            raise ValueError(f"conv_width: expected an int >= 0, got {self.conv_width!r}")
        check_positive_int("num_heads", self.num_heads)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if len(self.memory.key_size) != 1 or len(self.memory.value_size) != 1:
            raise ValueError(f"memory: expected vector keys and values, got {self.memory}")

    @property
    def heads(self) -> MultiHead:
        return MultiHead(self.memory, self.num_heads)

    @property
    def channels(self) -> int:
        """Width of the concatenated q, k, v projections."""
        (dk,), (dv,) = self.memory.key_size, self.memory.value_size
        return self.num_heads * (2 * dk + dv)

    def init_params(self, key: jax.Array) -> dict:
        check_spec_dtypes("AssociativeLayer", self)
        (dk,), (dv,) = self.memory.key_size, self.memory.value_size
        h, d = self.num_heads, self.d_model
        kq, kk, kv, ko, km, kc = jax.random.split(key, 6)
        dtype = getattr(self.memory, "dtype", "float32")

        def dense(k, n_in, n_out):
            return jax.random.normal(k, (n_in, n_out), dtype) / math.sqrt(n_in)

        params = {
            "wq": dense(kq, d, h * dk),
            "wk": dense(kk, d, h * dk),
            "wv": dense(kv, d, h * dv),
            "wo": dense(ko, h * dv, d),
            "memory": self.heads.init_params(km),
        }
        if self.conv_width:
            params["conv"] = init_conv(kc, self.conv_width, self.channels, dtype)
        return params

    def init_state(self, params: dict) -> AssociativeState:
        conv = None
        if self.conv_width:
            conv = jnp.zeros((self.conv_width - 1, self.channels), params["conv"].dtype)
        return AssociativeState(self.heads.init_state(params["memory"]), conv)

    def apply(self, params: dict, state, xs, /, **controls):
        """Map ``xs`` of shape ``(T, d_model)`` to ``(T, d_model)``; return ``(ys, new_state)``.

        ``xs`` must be finite (checked at once when concrete; under ``jit`` when
        ``MEMJAX_JIT_CHECKS=1``, see :mod:`memjax.core.checks`), and ``params``/``state`` must
        come from this spec (a state from another spec, or the two swapped, is an error).
        """
        check_array("xs", xs, shape=(None, self.d_model), floating=True)
        check_finite("xs", xs)
        check_layer_inputs(self, params, state)
        check_controls(controls, where="AssociativeLayer.apply")
        length, h = xs.shape[0], self.num_heads
        qkv = jnp.concatenate([xs @ params["wq"], xs @ params["wk"], xs @ params["wv"]], axis=-1)
        conv_tail = state.conv
        if self.conv_width:
            qkv, conv_tail = causal_depthwise_conv(qkv, params["conv"], conv_tail)
        qkv = ACTIVATIONS[self.activation](qkv)
        (dk,), _ = self.memory.key_size, self.memory.value_size
        q, k, v = jnp.split(qkv, [h * dk, 2 * h * dk], axis=-1)
        q, k, v = (x.reshape(length, h, -1) for x in (q, k, v))
        if self.qk_norm:
            # the division form this layer was trained with (memjax.nn.norms, rounding forms)
            q, k = l2_normalize(q, divide=True), l2_normalize(k, divide=True)
        ys, memory = scan(
            self.heads,
            params["memory"],
            state.memory,
            k,
            v,
            q,
            chunk_size=self.chunk_size,
            **controls,
        )
        return ys.reshape(length, -1) @ params["wo"], AssociativeState(memory, conv_tail)
