"""TitansMemory (one head, exact recurrence) against the linear delta-rule memory and NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import scan
from memjax.core.testing import float64
from memjax.memories.linear import LinearMemory
from memjax.memories.titans import TitansMemory
from memjax.memories.titans.mlp import (
    MemoryMLP,
    factors_to_tree,
    gradient_factors,
    loss_gradient,
)
from memjax.models.titans import TitansLMM

T, DK, DV = 10, 5, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(T, DK))
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    return k, rng.normal(size=(T, DV)), rng.normal(size=(T, DK)), rng


@pytest.mark.parametrize("loss", ["sum", "half_sum", "mean"])
@pytest.mark.parametrize("eta, alpha", [(0.0, 0.0), (0.6, 0.1)])
def test_linear_titans_equals_linear_memory(loss, eta, alpha):
    """depth 1, no bias/wrapper/clipping: TitansMemory == LinearMemory (weights transposed)."""
    k, v, q, rng = _data()
    with float64():
        titans = TitansMemory(
            DK,
            DV,
            depth=1,
            residual_norm=False,
            eta=eta,
            alpha=alpha,
            loss=loss,
            max_grad_norm=None,
            dtype="float64",
        )
        linear = LinearMemory(
            DK, DV, eta=eta, alpha=alpha, momentum=True, loss=loss, learn_init=True, dtype="float64"
        )
        tp = titans.init_params(jax.random.key(0))
        lp = {"init": tp["init"]["layers"][0]["w"].T}
        theta = jnp.asarray(rng.uniform(0.1, 0.9, size=T))
        ty, ts = scan(titans, tp, titans.init_state(tp), k, v, q, chunk_size=4, theta=theta)
        ly, ls = scan(linear, lp, linear.init_state(lp), k, v, q, chunk_size=4, theta=theta)
    np.testing.assert_allclose(ty, ly, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ts.weights["layers"][0]["w"].T, ls.weights, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ts.momentum["layers"][0]["w"].T, ls.momentum, atol=1e-12)


@pytest.mark.parametrize("loss, factor", [("sum", 2.0), ("half_sum", 1.0)])
def test_linear_titans_is_the_delta_rule(loss, factor):
    """Spec §6 oracle 1: W ← W + c·θ (v − W k) kᵀ, c = 2 for the un-halved loss (eq. 12)."""
    k, v, q, rng = _data(1)
    theta = rng.uniform(0.05, 0.4, size=T)
    W0 = rng.normal(size=(DV, DK))
    W, ys = W0.copy(), []
    for t in range(T):
        W = W + factor * theta[t] * np.outer(v[t] - W @ k[t], k[t])
        ys.append(W @ q[t])
    with float64():
        mem = TitansMemory(
            DK,
            DV,
            depth=1,
            residual_norm=False,
            eta=0.0,
            alpha=0.0,
            loss=loss,
            max_grad_norm=None,
            dtype="float64",
        )
        params = {"init": {"layers": ({"w": jnp.asarray(W0.T)},)}}
        out, state = scan(
            mem, params, mem.init_state(params), k, v, q, chunk_size=3, theta=jnp.asarray(theta)
        )
    np.testing.assert_allclose(out, np.stack(ys), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.weights["layers"][0]["w"].T, W, rtol=1e-12, atol=1e-12)


def test_deep_write_matches_hand_written_gradient_and_clipping():
    """One write of a 2-layer memory = −θ·clip(∇ℓ) by jax.grad of the eq. 12 loss."""
    with float64():
        mem = TitansMemory(
            4, 4, depth=2, expansion=2, eta=0.0, alpha=0.0, max_grad_norm=0.5, dtype="float64"
        )
        params = mem.init_params(jax.random.key(0))
        state = mem.init_state(params)
        key = jnp.asarray([1.0, -2.0, 0.5, 3.0])
        value = jnp.asarray([4.0, 0.0, -3.0, 1.0])
        new = mem.write(params, state, key, value, theta=1.0)

        def loss(w):
            return jnp.sum(jnp.square(mem.mlp(w, key) - value))

        g = jax.grad(loss)(state.weights)
        norm = jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(g)))
        assert norm > 0.5  # the clip is active
        want = jax.tree_util.tree_map(lambda w, gi: w - 0.5 * gi / norm, state.weights, g)
    for a, b in zip(jax.tree_util.tree_leaves(new.weights), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "silu", "relu", "tanh"])
@pytest.mark.parametrize(
    "depth, bias, residual_norm, max_norm",
    [(1, False, False, None), (2, True, False, 0.3), (2, False, True, None), (3, True, True, 0.3)],
)
def test_hand_written_gradient_factors_equal_jax_grad(
    activation, depth, bias, residual_norm, max_norm
):
    """The block backward pass of ``gradient_factors`` == ``jax.grad`` of eq. 12, per token,
    and its derivative (the outer loss's second-order term) == ``jax.grad`` through ``jax.grad``."""
    with float64():
        mlp = MemoryMLP(4, 4, depth, 2, activation, bias, residual_norm)
        w = mlp.init(jax.random.key(1), "float64")
        w = jax.tree_util.tree_map(
            lambda a: a + 0.3 * jax.random.normal(jax.random.key(2), a.shape, a.dtype), w
        )
        keys = jax.random.normal(jax.random.key(3), (6, 4), jnp.float64)
        values = jax.random.normal(jax.random.key(4), (6, 4), jnp.float64)
        coef = jnp.linspace(0.5, 1.5, 6)

        def by_factors(w, keys):
            factors = gradient_factors(mlp, "sum", max_norm, w, keys, values)
            return factors_to_tree(mlp, factors, coef)

        def by_grad(w, keys):
            per_token = jax.vmap(lambda k, v: loss_gradient(mlp, "sum", max_norm, w, k, v))
            grads = per_token(keys, values)
            return jax.tree_util.tree_map(lambda g: jnp.tensordot(coef, g, 1), grads)

        for a, b in zip(
            jax.tree_util.tree_leaves(by_factors(w, keys)),
            jax.tree_util.tree_leaves(by_grad(w, keys)),
        ):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        scalar = lambda f: (
            lambda w, k: sum(jnp.sum(jnp.sin(x)) for x in jax.tree_util.tree_leaves(f(w, k)))
        )
        got = jax.grad(scalar(by_factors), argnums=(0, 1))(w, keys)
        want = jax.grad(scalar(by_grad), argnums=(0, 1))(w, keys)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_residual_norm_mlp_forward():
    mlp = MemoryMLP(3, 3, depth=1, residual_norm=True)
    w = mlp.init(jax.random.key(0))
    x = jnp.asarray([1.0, 2.0, -1.0])
    out = x @ w["layers"][0]["w"]
    ln = (out - out.mean()) / jnp.sqrt(out.var() + 1e-5)
    np.testing.assert_allclose(mlp(w, x), ln + x, rtol=1e-5, atol=1e-5)


def test_bad_specs_name_the_argument():
    cases = [
        ("depth", lambda: TitansMemory(4, 4, depth=0)),
        ("residual_norm", lambda: TitansMemory(4, 3, residual_norm=True)),
        ("loss", lambda: TitansMemory(4, 4, loss="l1")),
        ("activation", lambda: TitansMemory(4, 4, activation="swish2")),
        ("max_grad_norm", lambda: TitansMemory(4, 4, max_grad_norm=-1.0)),
        ("eta", lambda: TitansMemory(4, 4, eta=1.5)),
        ("gated", lambda: TitansMemory(4, 4, gated=("beta",))),
        ("num_heads", lambda: TitansLMM(10, num_heads=3)),
        ("chunk_size", lambda: TitansLMM(8, chunk_size=0)),
        ("grad_point", lambda: TitansLMM(8, grad_point="end")),
        ("read_point", lambda: TitansLMM(8, read_point="end")),
        ("gate_granularity", lambda: TitansLMM(8, gate_granularity="head")),
        ("loss_reduction", lambda: TitansLMM(8, loss_reduction="l2")),
        ("conv_width", lambda: TitansLMM(8, conv_width=-1)),
        ("theta_init", lambda: TitansLMM(8, theta_init=2.0)),
    ]
    for name, make in cases:
        with pytest.raises((ValueError, TypeError), match=name):
            make()


def test_controls_are_checked_at_the_memory_boundary():
    """Known-but-unused controls are ignored; an unknown name or an out-of-range value raises."""
    mem = TitansMemory(4, 4, depth=1)
    params = mem.init_params(jax.random.key(0))
    state = mem.init_state(params, key=jax.random.key(1))
    k = jnp.ones(4)
    np.testing.assert_array_equal(
        mem.write(params, state, k, k, key=jax.random.key(2)).weights["layers"][0]["w"],
        mem.write(params, state, k, k).weights["layers"][0]["w"],
    )
    cases = [
        ("unknown control 'thetta'", lambda: mem.write(params, state, k, k, thetta=0.1)),
        ("'etaa'", lambda: mem.read(params, state, k, etaa=0.1)),
        ("'alhpa'", lambda: mem.init_state(params, alhpa=0.1)),
        ("eta: expected values in", lambda: mem.write(params, state, k, k, eta=5.0)),
        ("theta: expected values >= 0", lambda: mem.write(params, state, k, k, theta=-1.0)),
        ("thetta", lambda: scan(mem, params, state, k[None], k[None], k[None], thetta=0.1)),
    ]
    for match, call in cases:
        with pytest.raises(ValueError, match=match):
            call()
