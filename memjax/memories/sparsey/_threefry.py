r"""A learning run's uniforms, drawn in one vectorised pass (bit-identical to ``jax.random``).

Item ``t`` of :meth:`~memjax.memories.sparsey.SparseyMac.learn` draws
``learn_draws(jax.random.split(key, T)[t], Q)`` (module :mod:`~memjax.memories.sparsey.csa`):
two splits and two ``uniform(·, (Q,))`` per item, 43 evaluations of the Threefry-2x32 hash
(Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"; 20 rounds, key injections
every 4 rounds). JAX's CPU lowering runs each hash as a 5-trip loop of small kernels; here the
20 rounds are written out, so the whole batch of hashes is one elementwise pass. With JAX's
partitionable Threefry (its default), a key :math:`k` splits into
:math:`\operatorname{split}(k, n)_i = \operatorname{TF}_k(0, i)` (both output words), and
``uniform`` bits are :math:`b_i = \operatorname{TF}_k(0, i)_1 \oplus \operatorname{TF}_k(0, i)_2`
mapped to :math:`[0, 1)` as the float32 with mantissa :math:`b_i \gg 9` and exponent 0, minus 1.
:func:`learn_draws_batch` computes exactly those words; where the key is not a default
Threefry key or the partitionable scheme is off it returns ``jax.random``'s own draws.

Example:
    >>> import jax
    >>> from memjax.memories.sparsey._threefry import learn_draws_batch
    >>> from memjax.memories.sparsey.csa import learn_draws
    >>> key = jax.random.key(3)
    >>> fast = learn_draws_batch(key, 5, 4)
    >>> slow = jax.vmap(lambda k: learn_draws(k, 4))(jax.random.split(key, 5))
    >>> all(bool((a == b).all()) for a, b in zip(fast, slow))
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memjax.memories.sparsey.csa import learn_draws, tie_noise

__all__ = ["learn_draws_batch", "threefry2x32", "tie_noise_batch", "tie_noise_fast"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x, d: int):
    return (x << jnp.uint32(d)) | (x >> jnp.uint32(32 - d))


def threefry2x32(k1, k2, x1, x2):
    """The Threefry-2x32 hash, 20 rounds, of counter words ``(x1, x2)`` under key ``(k1, k2)``
    (all uint32, broadcast together): ``(y1, y2)``, as ``jax.random``'s Threefry.

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.memories.sparsey._threefry import threefry2x32
        >>> y = threefry2x32(*(jnp.uint32(0),) * 4)  # the reference vector of Salmon et al.
        >>> [hex(int(w)) for w in y]
        ['0x6b200159', '0x99ba4efe']
    """
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = _rotl(x2, r) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _uniform(y1, y2):
    """float32 in [0, 1) from a hash's two words, as ``jax.random.uniform``."""
    bits = (y1 ^ y2) >> jnp.uint32(9) | jnp.uint32(0x3F800000)
    return jax.lax.bitcast_convert_type(bits, jnp.float32) - jnp.float32(1.0)


def _threefry_key(key) -> bool:
    impl = jax.random.key_impl(key)
    return (
        jax.config.jax_threefry_partitionable
        and str(impl) in ("threefry2x32", "fry")
        and jax.random.key_data(key).shape == (2,)
    )


def learn_draws_batch(key, T: int, Q: int):
    """``vmap(lambda k: learn_draws(k, Q))(jax.random.split(key, T))`` — each item's two
    ``(Q,)`` uniforms, ``(T, Q)`` each — from the unrolled hash (the same bits)."""
    if not _threefry_key(key):
        return jax.vmap(lambda k: learn_draws(k, Q))(jax.random.split(key, T))
    k1, k2 = jax.random.key_data(key)
    zero = jnp.uint32(0)
    a1, a2 = threefry2x32(k1, k2, zero, jnp.arange(T, dtype=jnp.uint32))  # split(key, T)
    two = jnp.arange(2, dtype=jnp.uint32)
    b1, b2 = threefry2x32(a1[:, None], a2[:, None], zero, two[None, :])  # split(item key)
    q = jnp.arange(Q, dtype=jnp.uint32)[None, None, :]
    u = _uniform(*threefry2x32(b1[..., None], b2[..., None], zero, q))  # (T, 2, Q)
    return u[:, 0], u[:, 1]


def _noise(k1, k2, Q: int, K: int):
    """``tie_noise`` of the key with words ``(k1, k2)`` (broadcast: leading axes are items)."""
    zero = jnp.uint32(0)
    s1, s2 = threefry2x32(k1, k2, zero, jnp.uint32(1))  # split(key)[1]
    lead = (1,) * s1.ndim
    cells = jnp.arange(Q * K, dtype=jnp.uint32).reshape(*lead, Q, K)
    return _uniform(*threefry2x32(s1[..., None, None], s2[..., None, None], zero, cells))


def tie_noise_fast(key, Q: int, K: int):
    """``tie_noise(key, Q, K)`` (module csa: ``uniform(split(key)[1], (Q, K))``) from the
    unrolled hash (the same bits)."""
    if not _threefry_key(key):
        return tie_noise(key, Q, K)
    return _noise(*jax.random.key_data(key), Q, K)


def tie_noise_batch(key, T: int, Q: int, K: int):
    """``vmap(lambda k: tie_noise(k, Q, K))(jax.random.split(key, T))`` ``(T, Q, K)`` from the
    unrolled hash (the same bits)."""
    if not _threefry_key(key):
        return jax.vmap(lambda k: tie_noise(k, Q, K))(jax.random.split(key, T))
    k1, k2 = jax.random.key_data(key)
    a1, a2 = threefry2x32(k1, k2, jnp.uint32(0), jnp.arange(T, dtype=jnp.uint32))
    return _noise(a1, a2, Q, K)
