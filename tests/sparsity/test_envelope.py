"""SEF / WGSEF values: closed form == root-finding form == a numerical biconjugate; limits;
jit, vmap and grad (spec §2–3)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from memjax.core.testing import float64
from memjax.sparsity import (
    group_norms,
    sef_value,
    wgsef_value,
    wgsef_value_linear_time,
)
from tests.sparsity.references import (
    biconjugate,
    group_magnitudes,
    sef_closed_form,
    wgsef_closed_form,
)

M, SIZE = 8, 3  # fixed shapes: one compile per test
IDS = np.repeat(np.arange(M), SIZE)


def _vector(rng, zeros=0, ties=False):
    x = rng.standard_normal(M * SIZE) * np.exp(rng.uniform(-2, 2))
    x[: zeros * SIZE] = 0.0
    if ties:
        x[SIZE : 2 * SIZE] = -x[2 * SIZE : 3 * SIZE]  # two groups of equal norm
    return rng.permutation(x.reshape(M, SIZE)).ravel()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, M),
    zeros=st.integers(0, M - 1),
    ties=st.booleans(),
    weighted=st.booleans(),
)
def test_closed_form_equals_root_finding_form(seed, k, zeros, ties, weighted):
    """§2.6 closed form (memjax's min-of-feasible evaluation, and the literal unique-r search)
    == §2.5 root-finding form (the host linear-time reference)."""
    rng = np.random.default_rng(seed)
    x = _vector(rng, zeros, ties)
    d = rng.uniform(0.3, 3.0, M) if weighted else None
    root = wgsef_value_linear_time(x, IDS, M, k, d)
    literal = wgsef_closed_form(x, IDS, M, k, d)
    with float64():
        closed = float(
            wgsef_value(
                jnp.asarray(x), jnp.asarray(IDS), M, k, None if d is None else jnp.asarray(d)
            )
        )
    np.testing.assert_allclose(closed, root, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(literal, root, rtol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_wgsef_equals_numerical_biconjugate(seed):
    """WGSEF = f** with f = ½Σ d_j‖θ_Gj‖² + δ(≤ k non-zero groups), f** by SLSQP (spec §3)."""
    rng = np.random.default_rng(100 + seed)
    ids = np.array([0, 0, 1, 2, 2, 3])
    theta = rng.standard_normal(6)
    if seed % 3 == 0:
        theta[2] = 0.0  # a zero group
    d = rng.uniform(0.5, 2.0, 4)
    k = 1 + seed % 3
    with float64():
        value = float(wgsef_value(jnp.asarray(theta), jnp.asarray(ids), 4, k, jnp.asarray(d)))
    np.testing.assert_allclose(value, biconjugate(theta, ids, 4, k, d), rtol=1e-6)


def test_limits_k1_group_lasso_squared_and_km_ridge():
    rng = np.random.default_rng(3)
    x = _vector(rng, zeros=2)
    d = rng.uniform(0.5, 2.0, M)
    nu = group_magnitudes(x, IDS, M)
    with float64():
        xj, ij, dj = jnp.asarray(x), jnp.asarray(IDS), jnp.asarray(d)
        k1, km = float(wgsef_value(xj, ij, M, 1, dj)), float(wgsef_value(xj, ij, M, M, dj))
    np.testing.assert_allclose(k1, 0.5 * np.sum(np.sqrt(d) * nu) ** 2, rtol=1e-13)
    np.testing.assert_allclose(km, 0.5 * np.sum(d * nu**2), rtol=1e-13)
    np.testing.assert_allclose(wgsef_value_linear_time(x, IDS, M, 1, d), k1, rtol=1e-12)
    np.testing.assert_allclose(wgsef_value_linear_time(x, IDS, M, M, d), km, rtol=1e-12)


def test_sef_is_wgsef_with_singleton_groups_and_interpolates_l1_l2():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(10)
    with float64():
        xj = jnp.asarray(x)
        for k in (1, 3, 7, 10):
            s = float(sef_value(xj, k))
            assert s == pytest.approx(sef_closed_form(x, k), rel=1e-13)
            assert s == pytest.approx(float(wgsef_value(xj, jnp.arange(10), 10, k)), rel=1e-13)
        vals = [float(sef_value(xj, k)) for k in range(1, 11)]
    assert vals[0] == pytest.approx(0.5 * np.sum(np.abs(x)) ** 2, rel=1e-13)
    assert vals[-1] == pytest.approx(0.5 * np.sum(x**2), rel=1e-13)
    assert all(a >= b for a, b in itertools.pairwise(vals))  # S_k decreases with k
    # any shape is read as one vector
    assert float(sef_value(jnp.asarray(x, jnp.float32).reshape(2, 5), 3)) == pytest.approx(
        vals[2], rel=1e-6
    )


def test_jit_equals_eager_and_traced_k():
    rng = np.random.default_rng(5)
    x, ids = jnp.asarray(_vector(rng, 1), jnp.float32), jnp.asarray(IDS)
    eager = [float(wgsef_value(x, ids, M, k)) for k in range(1, M + 1)]
    jitted = jax.jit(wgsef_value, static_argnums=2)
    traced = [float(jitted(x, ids, M, jnp.asarray(k))) for k in range(1, M + 1)]
    np.testing.assert_allclose(traced, eager, rtol=1e-6)
    assert jitted._cache_size() == 1  # k traced: one compile for every k
    np.testing.assert_allclose(
        float(jax.jit(sef_value)(x, jnp.asarray(3))), float(sef_value(x, 3)), rtol=1e-6
    )


def test_vmap_equals_stacked_calls():
    rng = np.random.default_rng(6)
    xs = jnp.asarray(np.stack([_vector(rng, z) for z in range(4)]), jnp.float32)
    ids = jnp.asarray(IDS)
    batched = jax.vmap(lambda v, k: wgsef_value(v, ids, M, k))(xs, jnp.array([1, 2, 5, 8]))
    stacked = [float(wgsef_value(v, ids, M, k)) for v, k in zip(xs, [1, 2, 5, 8])]
    np.testing.assert_allclose(np.asarray(batched), stacked, rtol=1e-6)


def test_grad_equals_finite_differences():
    """At a point with every group non-zero the value is differentiable (float64 FD)."""
    rng = np.random.default_rng(7)
    with float64():
        x = jnp.asarray(_vector(rng))
        ids, d = jnp.asarray(IDS), jnp.asarray(rng.uniform(0.5, 2.0, M))
        for k in (1, 3, M):
            f = lambda v, k=k: wgsef_value(v, ids, M, k, d)
            g = jax.grad(f)(x)
            direction = jnp.asarray(rng.standard_normal(x.shape))
            eps = 1e-6
            fd = (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
            np.testing.assert_allclose(float(g @ direction), float(fd), rtol=1e-7, atol=1e-9)


def test_gradient_at_zero_groups_is_finite():
    x = jnp.zeros(M * SIZE).at[:SIZE].set(1.0)
    g = jax.grad(lambda v: wgsef_value(v, jnp.asarray(IDS), M, 2))(x)
    assert bool(jnp.all(jnp.isfinite(g)))
    assert bool(jnp.all(g[SIZE:] == 0))
    gn = jax.grad(lambda v: group_norms(v, jnp.asarray(IDS), M).sum())(x)
    assert bool(jnp.all(jnp.isfinite(gn)))


def test_group_norms_and_empty_groups():
    x = jnp.array([3.0, 4.0, 1.0, 2.0])
    np.testing.assert_allclose(
        np.asarray(group_norms(x, jnp.array([0, 0, 3, 3]), 5)),
        [5.0, 0.0, 0.0, np.sqrt(5.0), 0.0],
        rtol=1e-6,
    )
    # an empty group counts towards m and is a zero group
    assert float(wgsef_value(x, jnp.array([0, 0, 3, 3]), 5, 2)) == pytest.approx(
        0.5 * (25 + 5), rel=1e-6
    )
