"""Sparsey's verbs: an unknown keyword is an error naming it; known controls are ignored."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from memjax.memories.sparsey import SparseyHierarchy, SparseyLevel, SparseyMac

N = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.random((3, N)) < 0.3).astype(np.uint8), (rng.random((3, 4)) < 0.5).astype(np.uint8)


def test_misspelt_h_input_raises_instead_of_learning_no_h_weights(data):
    xs, hs = data
    mac = SparseyMac(n_inputs=N, Q=2, K=2, n_h=4)
    with pytest.raises(ValueError, match=r"SparseyMac\.learn: unknown control 'h'") as err:
        mac.learn(mac.init_state(), xs, key=jax.random.key(0), h=hs)
    assert "did you mean 'hs'?" in str(err.value)
    assert "ds" in str(err.value) and "key" in str(err.value)
    with pytest.raises(ValueError, match="unknown control 'tie'"):
        mac.recognize(mac.init_state(), xs, hs=hs, tie="shared")
    with pytest.raises(ValueError, match="unknown control 'hh'"):
        mac.csa(mac.init_state(), xs[0], hh=hs[0])
    with pytest.raises(ValueError, match="unknown control 'dd'"):
        mac.learn_one(mac.init_state(), xs[0], key=jax.random.key(0), dd=hs[0])
    # spelt right, the H weights are learned
    state, _ = mac.learn(mac.init_state(), xs, key=jax.random.key(0), hs=hs)
    assert bool(state.w_h.any())


def test_known_controls_are_ignored(data):
    xs, _ = data
    mac = SparseyMac(n_inputs=N, Q=2, K=2)
    key = jax.random.key(1)
    plain = mac.learn(mac.init_state(), xs, key=key)
    extra = mac.learn(mac.init_state(), xs, key=key, theta=0.5, eta=0.9)
    for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(extra)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="eta: expected values in"):
        mac.learn(mac.init_state(), xs, key=key, eta=5.0)


def test_levels_and_hierarchies_check_their_keywords(data):
    xs, _ = data
    level = SparseyLevel(SparseyMac(n_inputs=8, Q=2, K=2), ((*range(8),), (*range(8, 16),)))
    hier = SparseyHierarchy((level,))
    key = jax.random.key(0)
    calls = {
        r"SparseyLevel\.learn": lambda: level.learn(level.init_state(), xs, key=key, hs=xs),
        r"SparseyLevel\.recognize": lambda: level.recognize(level.init_state(), xs, tie="x"),
        r"SparseyHierarchy\.run": lambda: hier.run(hier.init_carry(), xs, key=key, modes="x"),
        r"SparseyHierarchy\.recognize": lambda: hier.recognize(hier.init_carry(), xs, k=key),
    }
    for where, call in calls.items():
        with pytest.raises(ValueError, match=f"{where}: unknown control"):
            call()
    with pytest.raises(TypeError, match="key: expected a typed PRNG key"):
        hier.run(hier.init_carry(), xs, key=0)
    with pytest.raises(TypeError, match="key: expected a typed PRNG key"):
        level.recognize(level.init_state(), xs, key=np.uint32(3))
