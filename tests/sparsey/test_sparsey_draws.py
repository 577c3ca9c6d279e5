"""The unrolled Threefry draws of a learning run == jax.random's (bit for bit)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.memories.sparsey._threefry import (
    learn_draws_batch,
    threefry2x32,
    tie_noise_batch,
    tie_noise_fast,
)
from memjax.memories.sparsey.csa import learn_draws, tie_noise


def reference(key, T, Q):
    return jax.vmap(lambda k: learn_draws(k, Q))(jax.random.split(key, T))


@pytest.mark.parametrize("seed,T,Q", [(0, 1, 1), (3, 7, 5), (12345, 300, 20)])
def test_learn_draws_batch_equals_jax_random(seed, T, Q):
    key = jax.random.key(seed)
    for a, b in zip(learn_draws_batch(key, T, Q), reference(key, T, Q)):
        assert a.shape == b.shape == (T, Q) and a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_learn_draws_batch_under_jit_and_other_impl():
    key = jax.random.key(9)
    out = jax.jit(lambda k: learn_draws_batch(k, 33, 4))(key)
    for a, b in zip(out, reference(key, 33, 4)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rbg = jax.random.key(9, impl="rbg")  # not Threefry: jax.random's own draws
    for a, b in zip(learn_draws_batch(rbg, 5, 3), reference(rbg, 5, 3)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_threefry2x32_known_answers():
    # Random123's known-answer vectors for Threefry-2x32, 20 rounds.
    ones = jnp.uint32(0xFFFFFFFF)
    y = threefry2x32(ones, ones, ones, ones)
    assert [int(w) for w in y] == [0x1CB996FC, 0xBB002BE7]
    k = (jnp.uint32(0x13198A2E), jnp.uint32(0x03707344))
    y = threefry2x32(*k, jnp.uint32(0x243F6A88), jnp.uint32(0x85A308D3))
    assert [int(w) for w in y] == [0xC4923A9C, 0x483DF7A0]


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_tie_noise_equals_jax_random(impl):
    key = jax.random.key(4, impl=impl)
    np.testing.assert_array_equal(
        np.asarray(tie_noise_fast(key, 5, 7)), np.asarray(tie_noise(key, 5, 7))
    )
    batch = jax.jit(lambda k: tie_noise_batch(k, 11, 3, 4))(key)
    ref = jax.vmap(lambda k: tie_noise(k, 3, 4))(jax.random.split(key, 11))
    assert batch.shape == (11, 3, 4)
    np.testing.assert_array_equal(np.asarray(batch), np.asarray(ref))
