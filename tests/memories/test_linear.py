"""Oracle tests of the linear memory against NumPy delta rules written from the papers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import MultiHead, scan
from memjax.core.testing import float64, loop_of_steps
from memjax.memories.linear import LinearMemory

T, DK, DV = 12, 5, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(T, DK))
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    return k, rng.normal(size=(T, DV)), rng.normal(size=(T, DK)), rng


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_delta_rule_matches_numpy():
    k, v, q, rng = _data()
    theta = rng.uniform(0.1, 0.9, size=T)
    W, ys = np.zeros((DV, DK)), []
    for t in range(T):  # Widrow–Hoff: W += θ (v − W k) kᵀ, then read
        W = W + theta[t] * np.outer(v[t] - W @ k[t], k[t])
        ys.append(W @ q[t])
    with float64():
        mem = LinearMemory(DK, DV, dtype="float64")
        out, state = scan(
            mem, {}, mem.init_state({}), k, v, q, chunk_size=5, theta=jnp.asarray(theta)
        )
    np.testing.assert_allclose(out, np.stack(ys), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.weights, W, rtol=1e-12, atol=1e-12)
    assert state.momentum is None


def test_gated_deltanet_matches_numpy():
    """Yang et al. 2024: S_t = a_t S_{t-1} (I − β_t k kᵀ) + β_t v kᵀ, o_t = S_t q_t."""
    k, v, q, rng = _data(1)
    beta, a = rng.uniform(0.1, 0.9, size=T), rng.uniform(0.5, 1.0, size=T)
    S, ys = np.zeros((DV, DK)), []
    for t in range(T):
        S = a[t] * S @ (np.eye(DK) - beta[t] * np.outer(k[t], k[t])) + beta[t] * np.outer(
            v[t], k[t]
        )
        ys.append(S @ q[t])
    with float64():
        mem = LinearMemory(DK, DV, decay_form="gated_deltanet", dtype="float64")
        out, _ = scan(
            mem, {}, mem.init_state({}), k, v, q, theta=jnp.asarray(beta), alpha=jnp.asarray(1 - a)
        )
    np.testing.assert_allclose(out, np.stack(ys), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loss, c", [("half_sum", 0.5), ("sum", 1.0), ("mean", 1.0 / DV)])
def test_momentum_decay_gates_match_numpy(loss, c):
    """Titans eqs. 12–14 with data-dependent gates σ(wᵀk + b) (max_lr on θ)."""
    k, v, q, rng = _data(2)
    with float64():
        mem = LinearMemory(
            DK,
            DV,
            theta=0.3,
            eta=0.5,
            alpha=0.1,
            gated=("theta", "eta", "alpha"),
            max_lr=0.8,
            loss=loss,
            learn_init=True,
            dtype="float64",
        )
        params = mem.init_params(jax.random.key(0))
        params = jax.tree_util.tree_map(
            lambda p: p + 0.3 * jnp.asarray(rng.normal(size=p.shape)), params
        )
        out, state = scan(mem, params, mem.init_state(params), k, v, q, chunk_size=4)
    g = {
        n: (np.asarray(params["gates"][n]["w"]), float(params["gates"][n]["b"]))
        for n in params["gates"]
    }
    W, S, ys = np.asarray(params["init"]), np.zeros((DV, DK)), []
    for t in range(T):
        theta = 0.8 * _sigmoid(g["theta"][0] @ k[t] + g["theta"][1])
        eta = _sigmoid(g["eta"][0] @ k[t] + g["eta"][1])
        alpha = _sigmoid(g["alpha"][0] @ k[t] + g["alpha"][1])
        grad = 2 * c * np.outer(W @ k[t] - v[t], k[t])
        S = eta * S - theta * grad
        W = (1 - alpha) * W + S
        ys.append(W @ q[t])
    np.testing.assert_allclose(out, np.stack(ys), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(state.momentum, S, rtol=1e-11, atol=1e-11)


def test_gated_memory_starts_equal_to_constant_memory():
    k, v, q, _ = _data(3)
    const = LinearMemory(DK, DV, theta=0.3, eta=0.4, alpha=0.2)
    gated = LinearMemory(DK, DV, theta=0.3, eta=0.4, alpha=0.2, gated=("theta", "eta", "alpha"))
    p = gated.init_params(jax.random.key(0))
    a, _ = scan(const, {}, const.init_state({}), *map(jnp.asarray, (k, v, q)))
    b, _ = scan(gated, p, gated.init_state(p), *map(jnp.asarray, (k, v, q)))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_orthonormal_keys_are_recalled_exactly():
    """With θ = 1 the delta rule stores up to d_key orthonormal keys without interference."""
    keys = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (DK, DK)))[0]
    values = jax.random.normal(jax.random.key(1), (DK, DV))
    mem = LinearMemory(DK, DV, theta=1.0)
    _, state = scan(mem, {}, mem.init_state({}), keys, values, keys)
    recalled = jax.vmap(lambda q: mem.read({}, state, q))(keys)
    np.testing.assert_allclose(recalled, values, atol=1e-5)


def test_multi_head_per_token_per_head_controls_match_loop():
    k, v, q, rng = _data(4)
    mh = MultiHead(LinearMemory(DK, DV, eta=0.5, momentum=True, dtype="float64"), num_heads=2)
    with float64():
        stack = lambda x: jnp.stack([jnp.asarray(x), jnp.asarray(x[::-1])], axis=1)
        ks, vs, qs = stack(k), stack(v), stack(q)
        theta = jnp.asarray(rng.uniform(0.1, 0.9, size=(T, 2)))
        eta = jnp.asarray(rng.uniform(0.0, 0.9, size=T))  # shared by the heads
        p = mh.init_params(jax.random.key(0))
        s0 = mh.init_state(p)
        got = scan(mh, p, s0, ks, vs, qs, chunk_size=5, theta=theta, eta=eta)
        want = loop_of_steps(
            mh, p, s0, ks, vs, qs, theta=theta, eta=jnp.broadcast_to(eta[:, None], (T, 2))
        )
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
        # head 1 of the multi-head memory equals a single memory run on head 1's stream
        single = LinearMemory(DK, DV, eta=0.5, momentum=True, dtype="float64")
        one = scan(
            single,
            {},
            single.init_state({}),
            ks[:, 1],
            vs[:, 1],
            qs[:, 1],
            theta=theta[:, 1],
            eta=eta,
        )
        np.testing.assert_allclose(got[0][:, 1], one[0], rtol=1e-12, atol=1e-12)


def test_bad_specs_and_controls_name_the_argument():
    with pytest.raises(ValueError, match="d_key"):
        LinearMemory(0, 3)
    with pytest.raises(ValueError, match="loss"):
        LinearMemory(2, 3, loss="l1")
    with pytest.raises(ValueError, match="gated"):
        LinearMemory(2, 3, gated=("beta",))
    with pytest.raises(ValueError, match="alpha"):
        LinearMemory(2, 3, alpha=1.5)
    mem = LinearMemory(2, 3)
    with pytest.raises(ValueError, match="eta"):
        mem.write({}, mem.init_state({}), jnp.ones(2), jnp.ones(3), eta=0.5)
    with pytest.raises(ValueError, match="theta"):
        scan(
            mem,
            {},
            mem.init_state({}),
            jnp.ones((4, 2)),
            jnp.ones((4, 3)),
            jnp.ones((4, 2)),
            theta=jnp.ones(3),
        )
