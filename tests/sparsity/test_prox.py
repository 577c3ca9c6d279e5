"""The WGSEF prox: == a convex solver, == the linear-time reference (ties, zero groups, the §5
trap), the §4 table, at least k groups survive, limits, jit / vmap / grad (spec §3–6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from memjax.core.testing import float64
from memjax.sparsity import (
    group_norms,
    prox_group_lasso,
    prox_wgsef,
    prox_wgsef_linear_time,
)
from memjax.sparsity._linear_time import _clip_sum_root
from tests.sparsity.references import group_magnitudes, prox_by_solver, wgsef_objective

M, SIZE = 12, 3
IDS = np.repeat(np.arange(M), SIZE)
METHODS = ("sort", "bisection")


def _jnp(a):
    return None if a is None else jnp.asarray(a)


def _prox(x, ids, m, k, lam, d=None, method="sort"):
    return np.asarray(
        prox_wgsef(jnp.asarray(x), jnp.asarray(ids), m, k, lam, _jnp(d), method=method)
    )


def _nonzero_groups(w, ids, m):
    return int(np.count_nonzero(group_magnitudes(w, ids, m) > 0))


@pytest.mark.parametrize("seed", range(8))
def test_prox_equals_convex_solver(seed):
    """prox == argmin of λ·WGSEF(w) + ½‖w − x‖² by scipy (Powell) on tiny problems; the prox's
    objective is no worse, and strong convexity bounds the distance by the objective gap."""
    rng = np.random.default_rng(seed)
    ids, m = np.array([0, 0, 1, 2, 2, 3]), 4
    x = rng.standard_normal(6)
    d = rng.uniform(0.5, 2.0, m) if seed % 2 else None
    k = 1 + seed % 3
    lam = float(np.exp(rng.uniform(-1.5, 1.5)))
    w_solver, f_solver = prox_by_solver(x, ids, m, k, lam, d)
    with float64():
        for method in METHODS:
            w = _prox(x, ids, m, k, lam, d, method)
            f = wgsef_objective(w, x, ids, m, k, lam, d)
            assert f <= f_solver + 1e-12
            # ½‖w − w*‖² ≤ F(w_solver) − F(w*) for the 1-strongly convex objective
            assert np.linalg.norm(w - w_solver) <= np.sqrt(2 * max(f_solver - f, 0.0)) + 1e-7
            np.testing.assert_allclose(w, w_solver, atol=1e-6)


def _case(rng, kind):
    x = rng.standard_normal(M * SIZE) * np.exp(rng.uniform(-3, 3))
    if kind in ("zeros", "all"):
        x[: SIZE * int(rng.integers(1, M - 1))] = 0.0
    if kind in ("ties", "all"):
        x[SIZE : 2 * SIZE] = x[:SIZE][::-1]
        x[3 * SIZE : 4 * SIZE] = -x[:SIZE]
    x = rng.permutation(x.reshape(M, SIZE)).ravel()
    return x


def _saturated_case(rng, k, lam):
    """Exactly k groups saturate with H flat at 0 (the §5 trap): k large groups, a gap, the
    rest small. With d = 1, flat iff ν_small/ν_large ≤ λ/(λ+1) (spec §3 breakpoints)."""
    big = rng.uniform(5.0, 6.0, k)
    small = rng.uniform(0.1, 0.3, M - k) * 5.0 * lam / (lam + 1)
    norms = rng.permutation(np.concatenate([big, small]))
    dirs = rng.standard_normal((M, SIZE))
    x = (dirs / np.linalg.norm(dirs, axis=1, keepdims=True) * norms[:, None]).ravel()
    return x, np.argsort(-norms)[:k]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, M),
    kind=st.sampled_from(["plain", "zeros", "ties", "all"]),
    weighted=st.booleans(),
    log_lam=st.floats(-4, 4),
)
def test_sort_bisection_and_linear_time_agree(seed, k, kind, weighted, log_lam):
    rng = np.random.default_rng(seed)
    x = _case(rng, kind)
    d = rng.uniform(0.2, 4.0, M) if weighted else None
    lam = float(np.exp(log_lam))
    ref = prox_wgsef_linear_time(x, IDS, M, k, lam, d)
    with float64():
        for method in METHODS:
            np.testing.assert_allclose(
                _prox(x, IDS, M, k, lam, d, method),
                ref,
                atol=1e-11 * max(1.0, np.abs(x).max()),
                rtol=1e-10,
            )


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("lam", [1.0, 10.0, 1e6])
def test_exactly_k_saturated_groups_the_section5_trap(k, lam):
    """H is flat at 0 on a whole interval: every method returns the closed form — the k big
    groups shrunk by 1/(1 + λ), the others exactly 0 — and the reference's accumulated slope
    there is a cancellation residue (or exactly 0), which it must not divide by."""
    rng = np.random.default_rng(k * 7 + int(lam))
    x, top = _saturated_case(rng, k, lam)
    expected = np.zeros((M, SIZE))
    expected[top] = x.reshape(M, SIZE)[top] / (1 + lam)
    expected = expected.ravel()
    ref = prox_wgsef_linear_time(x, IDS, M, k, lam)
    np.testing.assert_allclose(ref, expected, rtol=1e-12, atol=1e-14)
    with float64():
        for method in METHODS:
            np.testing.assert_allclose(
                _prox(x, IDS, M, k, lam, None, method), expected, rtol=1e-12, atol=1e-14
            )
    for method in METHODS:  # float32 as well
        w32 = _prox(x.astype(np.float32), IDS, M, k, lam, None, method)
        assert _nonzero_groups(w32, IDS, M) == k
        np.testing.assert_allclose(w32, expected, rtol=2e-6, atol=1e-7)


def test_trap_fallback_of_the_reference_root_finder():
    """With λ = 1e6 no pivot lands within tolerance on the flat piece, the elimination runs to
    the end, and the slope A left there is ~1e-16 × Σ|a|: dividing (k + C)/A would put t far
    outside the flat piece; the reference falls back to the bracket instead."""
    rng = np.random.default_rng(0)
    k, lam = 3, 1e6
    x, _ = _saturated_case(rng, k, lam)
    nu = group_magnitudes(x, IDS, M)
    alpha, beta = np.sqrt(lam) * nu, np.full(M, lam)
    stats = {}
    t = _clip_sum_root(alpha, beta, k, stats)
    u = np.clip(alpha * t - beta, 0, 1)
    assert np.sum(u) == pytest.approx(k, abs=1e-9)
    assert sorted(np.round(u, 9)) == [0.0] * (M - k) + [1.0] * k
    assert abs(stats["slope"]) <= 1e-12 * 2 * alpha.sum()


SECTION4_X = 1.0 / np.arange(1, 11)  # the spec's x is unknown; x_j = 1/j reproduces its table
SECTION4_TABLE = {0.1: 10, 1.0: 5, 10.0: 3, 100.0: 3}  # λ -> non-zero groups after one prox


@pytest.mark.parametrize("lam", sorted(SECTION4_TABLE))
def test_section4_table_nonzero_groups_after_one_prox(lam):
    """Spec §4: 10 singleton groups, k = 3. One step leaves at least k groups, not exactly k."""
    ids = np.arange(10)
    expected = SECTION4_TABLE[lam]
    assert np.count_nonzero(prox_wgsef_linear_time(SECTION4_X, ids, 10, 3, lam)) == expected
    for method in METHODS:
        w = _prox(SECTION4_X.astype(np.float32), ids, 10, 3, lam, None, method)
        assert np.count_nonzero(w) == expected


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, M),
    log_lam=st.floats(-3, 6),
    kind=st.sampled_from(["plain", "zeros", "ties"]),
)
def test_one_prox_step_leaves_at_least_k_groups(seed, k, log_lam, kind):
    """Σ u_j = k with u_j ≤ 1 needs at least k positive u_j (spec §4)."""
    rng = np.random.default_rng(seed)
    x = _case(rng, kind).astype(np.float32)
    before = _nonzero_groups(x, IDS, M)
    w = _prox(x, IDS, M, k, float(np.exp(log_lam)))
    after = _nonzero_groups(w, IDS, M)
    assert min(k, before) <= after <= before


def test_limits_ridge_identity_and_exact_zeros():
    rng = np.random.default_rng(11)
    x = _case(rng, "zeros")
    d = rng.uniform(0.5, 2.0, M)
    with float64():
        ridge = x / (1 + 0.7 * d[IDS])
        for method in METHODS:  # k = m: weighted ridge, whatever the number of zero groups
            np.testing.assert_allclose(_prox(x, IDS, M, M, 0.7, d, method), ridge, rtol=1e-13)
            np.testing.assert_array_equal(_prox(x, IDS, M, 2, 0.0, d, method), x)  # λ = 0
        # at most k non-zero groups: ridge too
        few = np.where(IDS < 2, x + 1.0, 0.0)
        np.testing.assert_allclose(
            _prox(few, IDS, M, 2, 0.3, d), few / (1 + 0.3 * d[IDS]), rtol=1e-13
        )
        # exact zeros: group j is zero iff α_j t ≤ β_j; whole groups, never single entries
        w = _prox(x, IDS, M, 2, 2.0, d).reshape(M, SIZE)
        zero_rows = np.all(w == 0, axis=1)
        assert np.all(zero_rows | np.all(w != 0, axis=1))
        assert 2 <= np.count_nonzero(~zero_rows) < M


def test_k1_prox_is_the_prox_of_the_squared_group_lasso():
    """k = 1: λ·½(Σ√d_j‖w_j‖)²; its prox keeps the direction of each group and zeroes the
    groups with √d_j ν_j ≤ λ√d_j Σ_l √d_l ρ_l (optimality of the radial problem)."""
    rng = np.random.default_rng(12)
    x = _case(rng, "plain")
    d = rng.uniform(0.5, 2.0, M)
    lam = 0.3
    with float64():
        w = _prox(x, IDS, M, 1, lam, d)
    rho, nu = group_magnitudes(w, IDS, M), group_magnitudes(x, IDS, M)
    total = np.sum(np.sqrt(d) * rho)
    # stationarity of  λ/2 (Σ√d ρ)² + ½ Σ (ρ − ν)²  in ρ ≥ 0
    on = rho > 0
    np.testing.assert_allclose(rho[on], nu[on] - lam * np.sqrt(d[on]) * total, rtol=1e-10)
    assert np.all(nu[~on] <= lam * np.sqrt(d[~on]) * total + 1e-12)


def test_float32_with_norms_spread_over_decades():
    """float32 input with group norms from 1e-3 to 1e3: H is evaluated directly (no cumulative
    cancellation), so the float32 prox matches the float64 reference to float32 accuracy."""
    rng = np.random.default_rng(13)
    m = 200
    ids = np.repeat(np.arange(m), SIZE)
    x = rng.standard_normal((m, SIZE)) * np.logspace(-3, 3, m)[rng.permutation(m), None]
    x = x.ravel().astype(np.float32)
    for k, lam in ((5, 1e-4), (50, 1e-2), (150, 1.0)):
        ref = prox_wgsef_linear_time(x.astype(np.float64), ids, m, k, lam)
        for method in METHODS:
            w = _prox(x, ids, m, k, lam, None, method)
            np.testing.assert_allclose(w, ref, rtol=3e-5, atol=3e-5 * np.abs(x).max())


def test_jit_equals_eager_vmap_equals_stacked():
    rng = np.random.default_rng(14)
    xs = np.stack([_case(rng, kind) for kind in ("plain", "zeros", "ties", "all")])
    xs = jnp.asarray(xs, jnp.float32)
    ids = jnp.asarray(IDS)
    ks, lams = jnp.array([1, 3, 5, 12]), jnp.array([0.1, 1.0, 3.0, 0.5])
    for method in METHODS:
        f = lambda v, k, lam, method=method: prox_wgsef(v, ids, M, k, lam, method=method)
        eager = np.stack([np.asarray(f(v, int(k), float(lam))) for v, k, lam in zip(xs, ks, lams)])
        jitted = jax.jit(f)
        np.testing.assert_allclose(
            np.stack([np.asarray(jitted(v, k, lam)) for v, k, lam in zip(xs, ks, lams)]),
            eager,
            rtol=1e-6,
            atol=1e-7,
        )
        assert jitted._cache_size() == 1  # k and λ traced: no retrace
        np.testing.assert_allclose(
            np.asarray(jax.vmap(f)(xs, ks, lams)), eager, rtol=1e-6, atol=1e-7
        )


def test_grad_equals_finite_differences():
    """Away from the kinks (active set locally constant) the prox is differentiable in x and λ."""
    rng = np.random.default_rng(15)
    with float64():
        x = jnp.asarray(_case(rng, "plain"))
        ids, d = jnp.asarray(IDS), jnp.asarray(rng.uniform(0.5, 2.0, M))
        c = jnp.asarray(rng.standard_normal(x.shape))
        for method in METHODS:
            for k, lam in ((2, 0.5), (6, 0.05)):
                f = lambda v, lam, k=k, method=method: (
                    c @ prox_wgsef(v, ids, M, k, lam, d, method=method)
                )
                gx, gl = jax.grad(f, argnums=(0, 1))(x, lam)
                direction = jnp.asarray(rng.standard_normal(x.shape))
                eps = 1e-6
                fd_x = (f(x + eps * direction, lam) - f(x - eps * direction, lam)) / (2 * eps)
                fd_l = (f(x, lam + eps) - f(x, lam - eps)) / (2 * eps)
                np.testing.assert_allclose(float(gx @ direction), float(fd_x), rtol=1e-6, atol=1e-9)
                np.testing.assert_allclose(float(gl), float(fd_l), rtol=1e-6, atol=1e-9)
        # in the ridge branch and at zero groups the gradient is finite
        g = jax.grad(lambda v: prox_wgsef(v, ids, M, 3, 1.0).sum())(jnp.zeros_like(x))
        assert bool(jnp.all(jnp.isfinite(g)))


def test_dtypes_and_shapes_are_kept():
    x = jnp.asarray(np.random.default_rng(16).standard_normal((4, 6)))
    ids = jnp.asarray(np.arange(24).reshape(4, 6) % 5)
    for dtype in (jnp.float16, jnp.bfloat16, jnp.float32):
        w = prox_wgsef(x.astype(dtype), ids, 5, 2, 0.5)
        assert w.dtype == dtype and w.shape == (4, 6)
    ref = prox_wgsef_linear_time(np.asarray(x), np.asarray(ids), 5, 2, 0.5)
    np.testing.assert_allclose(np.asarray(prox_wgsef(x, ids, 5, 2, 0.5)), ref, rtol=1e-5, atol=1e-6)


def test_group_lasso_prox_closed_form_and_optimality():
    rng = np.random.default_rng(17)
    x = _case(rng, "zeros")
    d = rng.uniform(0.5, 2.0, M)
    with float64():
        w = np.asarray(prox_group_lasso(jnp.asarray(x), jnp.asarray(IDS), M, 0.8, jnp.asarray(d)))
        nu = np.asarray(group_norms(jnp.asarray(x), jnp.asarray(IDS), M))
    scale = np.maximum(0, 1 - 0.8 * np.sqrt(d) / np.where(nu > 0, nu, 1))
    np.testing.assert_allclose(w, x * np.where(nu > 0, scale, 0)[IDS], rtol=1e-13)

    # optimality: no better point among random perturbations of the convex objective
    def objective(v):
        return 0.8 * np.sum(np.sqrt(d) * group_magnitudes(v, IDS, M)) + 0.5 * np.sum((v - x) ** 2)

    f0 = objective(w)
    assert all(objective(w + 1e-3 * rng.standard_normal(x.shape)) >= f0 for _ in range(50))
