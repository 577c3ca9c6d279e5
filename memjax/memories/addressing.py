r"""Soft addressing of a slot memory: the pieces NTM, MANN and NMN are built from, NaN-safe.

A slot memory is a matrix :math:`M \in \mathbb{R}^{N \times W}` (``N`` slots of width ``W``);
a *weighting* :math:`w \in \mathbb{R}^N` (non-negative, summing to one) says how much each slot
is read or written. Every function here is unbatched (one head, one memory): heads are a
``jax.vmap`` outside, or an explicit leading axis where stated. Tags: **[L]** from the
literature cited, not re-read against its PDF; **[I]** inferred — memjax's choice.

**Content addressing** (NTM, Graves et al. 2014, eqs. 5–6 [L]; MANN reads, Santoro et al. 2016):

.. math::

    K[k, M(i)] = \frac{k \cdot M(i)}{\sqrt{\lVert k\rVert^2 + \epsilon}\,
                 \sqrt{\lVert M(i)\rVert^2 + \epsilon}}, \qquad
    w^c(i) = \frac{\exp(\beta K[k, M(i)])}{\sum_j \exp(\beta K[k, M(j)])}.

**Location addressing** (NTM eqs. 7–9 [L]): interpolation with the previous weighting, a
circular shift by a distribution :math:`s` over the offsets :math:`-R \dots R`, sharpening:

.. math::

    w^g = g\,w^c + (1-g)\,w_{t-1}, \qquad
    \tilde w(i) = \sum_{o=-R}^{R} s(o)\, w^g\big((i - o) \bmod N\big), \qquad
    w(i) = \frac{\tilde w(i)^\gamma}{\sum_j \tilde w(j)^\gamma}.

**Least-used weighting** (MANN's LRUA, Santoro et al. 2016 §3.2 [L]): :math:`w^{lu}(i) = 1`
for the ``n`` slots of smallest usage, else 0.

**Erase and add** (NTM eqs. 3–4 [L]), for heads :math:`h` writing at once (erasures multiply,
so their order does not matter; adds sum):

.. math::

    M_t(i) = M_{t-1}(i) \prod_h \big(1 - w_h(i)\, e_h\big) + \sum_h w_h(i)\, a_h .

**Numerical rules** ([I] memjax's choices, against the NaNs users of public NTM/DNC ports
report: zero memory init, unguarded norms, negative sharpening, erase factors outside [0, 1]):
``eps`` sits *inside* every square root, so a zero key or an empty slot gives a finite cosine
and finite gradients (a ``jnp.where`` guard would still give NaN gradients); softmaxes subtract
their maximum (their denominator is at least one, so it needs no ``eps``); the key strength
:math:`\beta` and the sharpening exponent :math:`\gamma` come from :func:`oneplus`
(:math:`\ge 1`); sharpening is computed as
:math:`\mathrm{softmax}(\gamma \log(\tilde w + \epsilon_{\log}))` — the same quotient as eq. 9
for :math:`\tilde w > 0` — so that :math:`\tilde w^\gamma` never underflows to an all-zero
weighting and :math:`\log 0` never occurs.

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.memories import addressing
    >>> memory = jnp.eye(4, 3)
    >>> w = addressing.content_weights(jnp.array([0.0, 1.0, 0.0]), memory, 50.0)
    >>> int(w.argmax())                                       # slot 1 holds the key
    1
    >>> addressing.circular_shift(jnp.array([1.0, 0, 0, 0]), jnp.array([0.0, 0.0, 1.0]))
    Array([0., 1., 0., 0.], dtype=float32)
    >>> w_lu, slot = addressing.least_used(jnp.array([0.5, 0.1, 0.3, 0.1]), 2)
    >>> w_lu.tolist(), int(slot)                              # ties go to the higher index
    ([0.0, 1.0, 0.0, 1.0], 3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_array, check_positive_int

__all__ = [
    "LOG_EPS",
    "check_slot_memory",
    "circular_shift",
    "content_weights",
    "cosine_similarity",
    "erase_add",
    "interpolate",
    "least_used",
    "oneplus",
    "read_slots",
    "safe_norm",
    "sharpen",
]

_ROLL_RADIUS = 4  # circular_shift: rolls up to this R, one gather beyond

LOG_EPS = 1e-30
"""The :math:`\\epsilon_{\\log}` of :func:`sharpen` (representable in float32)."""


def oneplus(x: jax.Array) -> jax.Array:
    """:math:`1 + \\log(1 + e^x)` (DNC's ``oneplus``): a strength :math:`\\ge 1`, smooth in ``x``.

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.memories.addressing import oneplus
        >>> oneplus(jnp.array([-30.0, 0.0])).round(4)
        Array([1.    , 1.6931], dtype=float32)
    """
    return 1.0 + jax.nn.softplus(x)


def safe_norm(x: jax.Array, eps: float) -> jax.Array:
    """:math:`\\sqrt{\\lVert x\\rVert^2 + \\epsilon}` over the last axis (finite gradient at 0).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from memjax.memories.addressing import safe_norm
        >>> jax.grad(lambda x: safe_norm(x, 1e-8))(jnp.zeros(2))
        Array([0., 0.], dtype=float32)
    """
    return jnp.sqrt(jnp.sum(x * x, axis=-1) + eps)


def cosine_similarity(key: jax.Array, memory: jax.Array, eps: float) -> jax.Array:
    """:math:`K[k, M(i)]` for every slot ``i``: ``key (W,)``, ``memory (N, W)`` → ``(N,)``."""
    return (memory @ key) / (safe_norm(key, eps) * safe_norm(memory, eps))


def content_weights(key: jax.Array, memory: jax.Array, beta, eps: float = 1e-8) -> jax.Array:
    """:math:`w^c = \\mathrm{softmax}(\\beta K[k, M(\\cdot)])` ``(N,)`` (NTM eqs. 5–6 [L])."""
    return jax.nn.softmax(beta * cosine_similarity(key, memory, eps))


def interpolate(w_content: jax.Array, w_prev: jax.Array, g) -> jax.Array:
    """:math:`w^g = g\\,w^c + (1-g)\\,w_{t-1}` (NTM eq. 7 [L]); ``g`` in ``[0, 1]``."""
    return g * w_content + (1.0 - g) * w_prev


def circular_shift(w: jax.Array, shift: jax.Array) -> jax.Array:
    """:math:`\\tilde w(i) = \\sum_o s(o)\\, w((i - o) \\bmod N)` (NTM eq. 8 [L]).

    ``shift`` ``(2R + 1,)`` is the distribution over the offsets ``-R … R`` (entry ``R`` is "stay");
    ``2R + 1 <= N`` so that no two offsets land on the same slot.
    """
    check_array("w", w, ndim=1)
    check_array("shift", shift, ndim=1)
    (n,), (width,) = w.shape, shift.shape
    if width % 2 != 1 or width > n:
        raise ValueError(
            f"shift: expected an odd length 2R + 1 <= len(w) = {n} (offsets -R..R), got {width}"
        )
    radius = width // 2
    if radius <= _ROLL_RADIUS:
        # as 2R + 1 rolls, roll(w, o)[i] = w(i - o): slices, whose reverse mode is rolls too
        # (cheaper than the gather and its scatter-add; ~8-20 % of an NTM fwd+bwd at R = 1)
        out = shift[radius] * w
        for o in range(1, radius + 1):
            out = out + shift[radius + o] * jnp.roll(w, o) + shift[radius - o] * jnp.roll(w, -o)
        return out
    offsets = np.arange(-radius, radius + 1)[:, None]
    index = (np.arange(n)[None, :] - offsets) % n  # index[o, i] = (i - o) mod N, static
    return shift @ w[index]  # one gather: w[index][o, i] = w(i - o)


def sharpen(w: jax.Array, gamma, eps: float = LOG_EPS) -> jax.Array:
    """:math:`w^\\gamma / \\sum_j w_j^\\gamma` (NTM eq. 9 [L]) as ``softmax(γ log(w + eps))``
    (module doc: no underflow, no ``log 0``)."""
    return jax.nn.softmax(gamma * jnp.log(w + eps))


def least_used(usage: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """``(w_lu, slot)``: ones on the ``n`` least-used slots, and the least-used slot's index.

    Ties follow ``tf.nn.top_k`` as snowkylin/ntm's MANN uses it: sort the usage in descending
    order, equal values lower index first, and take the last ``n`` (so among equal usages the
    *higher* indices count as less used). Neither output has a gradient (a selection).
    """
    check_positive_int("n", n)
    (size,) = usage.shape
    if n > size:
        raise ValueError(f"n: expected at most {size} (the number of slots), got {n}")
    # top_k of the reversed negated usage: smallest first, equal values → higher original index.
    _, reversed_index = jax.lax.top_k(-jax.lax.stop_gradient(usage)[::-1], n)
    index = size - 1 - reversed_index
    w_lu = jnp.sum(jax.nn.one_hot(index, size, dtype=usage.dtype), axis=0)
    return w_lu, index[0]


def erase_add(memory: jax.Array, weights: jax.Array, erase: jax.Array, add: jax.Array) -> jax.Array:
    """NTM eqs. 3–4 [L] for ``H`` heads at once (module doc).

    ``memory (N, W)``, ``weights (H, N)``, ``erase (H, W)`` in ``[0, 1]``, ``add (H, W)``.
    """
    for w, e in zip(weights, erase):  # a static loop over heads: cheaper to differentiate
        memory = memory * (1.0 - w[:, None] * e[None, :])
    return memory + weights.T @ add


def read_slots(memory: jax.Array, weights: jax.Array) -> jax.Array:
    """:math:`r_h = \\sum_i w_h(i) M(i)`: ``weights (H, N)`` → reads ``(H, W)`` (NTM eq. 2 [L])."""
    return weights @ memory


def check_slot_memory(memory_size, memory_width, init_value, eps, dtype) -> None:
    """Raise naming the argument unless the sizes are positive, ``init_value`` a real number,
    ``eps`` positive and ``dtype`` floating (the checks every slot memory shares)."""
    check_positive_int("memory_size", memory_size)
    check_positive_int("memory_width", memory_width)
    if isinstance(init_value, bool) or not isinstance(init_value, int | float):
        raise TypeError(f"init_value: expected a real number, got {init_value!r}")
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
        raise ValueError(f"eps: expected a positive number, got {eps!r}")
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise TypeError(f"dtype: expected a floating dtype, got {dtype!r}")
