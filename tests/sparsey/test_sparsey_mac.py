"""Sparsey single-mac CSA: oracle tests against a loop-based NumPy CSA, and the invariants of
``shared/papers/sparsey.md`` §6 (A1–A3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.memories.sparsey import SparseyMac, code_overlap, expansivity

N, Q, K = 64, 6, 8


def random_patterns(rng, n, size=N, active=6):
    xs = np.zeros((n, size), np.uint8)
    for i in range(n):
        xs[i, rng.choice(size, active, replace=False)] = 1
    return xs


# ---------------------------------------------------------------- the NumPy oracle
def numpy_csa(w, x, tie, u, *, mode, g_minus, gamma, chi, slope, inflection, frozen=False):
    """One CSA frame, written as the spec reads (steps 1–9), cell by cell, in float64.

    ``tie`` (Q, K) and ``u`` (Q,) are the uniforms the JAX code draws for tie-breaking and
    inverse-CDF sampling, so the two choose identically."""
    n, q_, k_ = w.shape
    active = [j for j in range(n) if x[j]]
    pi = len(active)
    if pi == 0:
        return np.full(q_, -1), 0.0, 1.0, np.ones((q_, k_)), np.full((q_, k_), 1.0 / k_)
    v = np.zeros((q_, k_))
    for q in range(q_):
        for k in range(k_):
            v[q, k] = sum(int(w[j, q, k]) for j in active) / pi
    g = np.mean([max(v[q]) for q in range(q_)])
    eta = 1.0 + max(0.0, (g - g_minus) / (1.0 - g_minus)) ** gamma * chi * k_
    psi = (eta - 1.0) / (1.0 + np.exp(-slope * (v - inflection))) + 1.0
    rho = psi / psi.sum(axis=1, keepdims=True)
    code = np.zeros(q_, int)
    for q in range(q_):
        best = [k for k in range(k_) if v[q, k] == v[q].max()]
        ml = max(best, key=lambda k: tie[q, k])
        if mode == "recognize" or frozen:
            code[q] = ml
        else:
            cdf = np.cumsum(rho[q])
            code[q] = min(int(np.sum(cdf < u[q] * cdf[-1])), k_ - 1)
    return code, g, eta, v, rho


def draws(key, T):
    """The uniforms ``SparseyMac.learn``/``recognize`` draw for item t (documented key scheme)."""
    out = []
    for k in jax.random.split(key, T):
        k_sample, k_tie = jax.random.split(k)
        out.append(
            (
                np.asarray(jax.random.uniform(k_tie, (Q, K)), np.float64),
                np.asarray(jax.random.uniform(k_sample, (Q,)), np.float64),
            )
        )
    return out


def numpy_learn(mac, xs, key):
    w = np.zeros((N, Q, K), bool)
    codes, gs, rhos = [], [], []
    frozen = False
    for x, (tie, u) in zip(xs, draws(key, len(xs))):
        code, g, _, _, rho = numpy_csa(
            w,
            x,
            tie,
            u,
            mode="learn",
            g_minus=mac.g_minus,
            gamma=mac.gamma,
            chi=mac.chi,
            slope=mac.slope,
            inflection=mac.inflection,
            frozen=frozen,
        )
        if code[0] >= 0 and not frozen:
            for j in np.flatnonzero(x):
                w[j, np.arange(Q), code] = True
            if mac.saturation is not None and w.mean() > mac.saturation:
                frozen = True
        codes.append(code)
        gs.append(g)
        rhos.append(rho)
    return w, np.array(codes), np.array(gs), np.array(rhos)


@pytest.fixture(scope="module")
def mac():
    return SparseyMac(n_inputs=N, Q=Q, K=K, saturation=None)


@pytest.fixture(scope="module")
def stored(mac):
    rng = np.random.default_rng(0)
    xs = random_patterns(rng, 24)
    state, out = mac.learn(mac.init_state(), xs, key=jax.random.key(7))
    return xs, state, out


# ---------------------------------------------------------------- oracle agreement
def test_learning_matches_numpy_oracle(mac, stored):
    xs, state, out = stored
    w, codes, gs, rhos = numpy_learn(mac, xs, jax.random.key(7))
    np.testing.assert_array_equal(np.asarray(out.code), codes)
    np.testing.assert_array_equal(np.asarray(state.w_u), w)
    np.testing.assert_allclose(np.asarray(out.familiarity), gs, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(out.rho), rhos, rtol=1e-5, atol=1e-7)


def test_recognition_matches_numpy_oracle(mac, stored):
    xs, state, _ = stored
    rng = np.random.default_rng(1)
    probes = np.concatenate([xs[:4], random_patterns(rng, 8)])  # familiar and novel (ties)
    out = mac.recognize(state, probes, ties="per_item")  # key=None: key(0), deterministic
    w = np.asarray(state.w_u)
    for i, ((tie, u), x) in enumerate(zip(draws(jax.random.key(0), len(probes)), probes)):
        code, g, eta, v, rho = numpy_csa(
            w,
            x,
            tie,
            u,
            mode="recognize",
            g_minus=mac.g_minus,
            gamma=mac.gamma,
            chi=mac.chi,
            slope=mac.slope,
            inflection=mac.inflection,
        )
        np.testing.assert_array_equal(np.asarray(out.code[i]), code)
        np.testing.assert_allclose(float(out.familiarity[i]), g, rtol=1e-6)
        np.testing.assert_allclose(float(out.expansivity[i]), eta, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(out.support[i]), v, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(out.rho[i]), rho, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- invariants (A1–A3)
def test_stored_items_reactivate_their_codes_exactly(mac, stored):
    xs, state, out = stored
    found = mac.recognize(state, xs, key=jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(found.familiarity), np.ones(len(xs)))
    np.testing.assert_array_equal(np.asarray(found.code), np.asarray(out.code))
    np.testing.assert_allclose(np.asarray(found.expansivity), mac.eta_max)


def test_expansivity_formula():
    # A2: [J] unit test η(G=1, K=8; G⁻=0.1, γ=2, χ=100) = 801.
    assert float(expansivity(1.0, g_minus=0.1, gamma=2.0, chi=100.0, K=8)) == pytest.approx(801)
    assert float(expansivity(0.05, g_minus=0.1, gamma=2.0, chi=100.0, K=8)) == 1.0


def test_below_g_minus_choice_is_exactly_uniform(stored):
    # The stored state's crosstalk gives a novel input G ≈ 0.6: with G⁻ = 0.9 that is G ≤ G⁻.
    _, state, _ = stored
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, g_minus=0.9, saturation=None)
    x = np.zeros(N, np.uint8)
    x[:6] = 1
    out = mac.csa(state, jnp.asarray(x), key=jax.random.key(0))
    assert float(out.familiarity) <= mac.g_minus
    assert float(out.expansivity) == 1.0
    np.testing.assert_array_equal(np.asarray(out.rho), np.full((Q, K), 1.0 / K, np.float32))
    # Empirically uniform: 4,000 draws of Q winners, chi-square against uniform.
    fn = jax.jit(jax.vmap(lambda k: mac.csa(state, jnp.asarray(x), key=k).code))
    codes = np.asarray(fn(jax.random.split(jax.random.key(1), 4000)))
    counts = np.bincount(codes.ravel(), minlength=K)
    expected = codes.size / K
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 24.3  # 99.9% quantile, 7 degrees of freedom


def test_code_overlap_falls_monotonically_with_input_overlap():
    mac = SparseyMac(n_inputs=200, Q=10, K=10, saturation=None)
    levels = [10, 8, 6, 4, 2, 0]  # shared active bits out of 10
    means = np.zeros(len(levels))
    for seed in range(4):
        rng = np.random.default_rng(seed)
        base = random_patterns(rng, 10, size=200, active=10)
        state, out = mac.learn(mac.init_state(), base, key=jax.random.key(seed))
        probes = []
        for shared in levels:
            for x in base:
                p = x.copy()
                on, off = np.flatnonzero(x), np.flatnonzero(x == 0)
                p[rng.choice(on, 10 - shared, replace=False)] = 0
                p[rng.choice(off, 10 - shared, replace=False)] = 1
                probes.append(p)
        _, res = mac.learn(state, np.array(probes), key=jax.random.key(100 + seed))
        ov = np.asarray(code_overlap(res.code, jnp.tile(out.code, (len(levels), 1))))
        means += ov.reshape(len(levels), -1).mean(axis=1) / 4
    assert np.all(np.diff(means) < 0), means
    assert means[0] > 0.9 * 10 and means[-1] < 2.5


def test_novel_inputs_do_not_collapse_to_code_zero(mac):
    # Trap 2: on an empty mac every V ties; max-V must break ties randomly.
    rng = np.random.default_rng(2)
    out = mac.recognize(mac.init_state(), random_patterns(rng, 16), ties="per_item")
    codes = np.asarray(out.code)
    assert len({tuple(c) for c in codes}) == 16
    assert (codes == 0).mean() < 0.5


def test_disjoint_inputs_fixture():
    # A3 (dcc-sparsey fixture): K=8, Q=5, 16 inputs, 4 disjoint 3-bit inputs.
    mac = SparseyMac(n_inputs=16, Q=5, K=8, g_minus=0.1, saturation=None)
    xs = np.zeros((4, 16), np.uint8)
    for i in range(4):
        xs[i, 3 * i : 3 * i + 3] = 1
    state, out = mac.learn(mac.init_state(), xs, key=jax.random.key(0))
    assert len({tuple(np.asarray(c)) for c in out.code}) == 4
    found = mac.recognize(state, xs)
    np.testing.assert_array_equal(np.asarray(found.code), np.asarray(out.code))
    assert float(found.familiarity.min()) == 1.0
    assert float(out.familiarity.max()) < 0.3


def test_learning_is_deterministic_for_a_key(mac):
    xs = random_patterns(np.random.default_rng(5), 10)
    a = mac.learn(mac.init_state(), xs, key=jax.random.key(11))
    b = mac.learn(mac.init_state(), xs, key=jax.random.key(11))
    c = mac.learn(mac.init_state(), xs, key=jax.random.key(12))
    for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))
    assert not np.array_equal(np.asarray(a[1].code), np.asarray(c[1].code))


def test_scan_equals_loop_of_learn_one(mac):
    xs = random_patterns(np.random.default_rng(6), 5)
    key = jax.random.key(4)
    state, out = mac.learn(mac.init_state(), xs, key=key)
    s = mac.init_state()
    step = jax.jit(lambda s, x, k: mac.learn_one(s, x, key=k))
    for t, k in enumerate(jax.random.split(key, 5)):
        s, o = step(s, jnp.asarray(xs[t]), k)
        np.testing.assert_array_equal(np.asarray(o.code), np.asarray(out.code[t]))
    np.testing.assert_array_equal(np.asarray(s.w_u), np.asarray(state.w_u))


def test_save_and_load_recognises_identically(mac, stored, tmp_path):
    from memjax.train import load_pytree, save_pytree

    xs, state, _ = stored
    save_pytree(tmp_path / "mac", state)
    loaded = load_pytree(tmp_path / "mac", like=mac.init_state())
    for la, lb in zip(jax.tree.leaves(state), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))
    probes = np.concatenate([xs, random_patterns(np.random.default_rng(9), 8)])
    a, b = mac.recognize(state, probes), mac.recognize(loaded, probes)
    np.testing.assert_array_equal(np.asarray(a.code), np.asarray(b.code))
    np.testing.assert_array_equal(np.asarray(a.familiarity), np.asarray(b.familiarity))


# ---------------------------------------------------------------- gate, freezing, permanence
def test_gate_emits_the_empty_code_and_learns_nothing():
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, gate_min=3, gate_max=8)
    xs = np.zeros((3, N), np.uint8)
    xs[0, :2] = 1  # too few
    xs[1, :9] = 1  # too many
    xs[2, :5] = 1  # fine
    state, out = mac.learn(mac.init_state(), xs, key=jax.random.key(0))
    assert np.asarray(out.active).tolist() == [False, False, True]
    assert (np.asarray(out.code[:2]) == -1).all()
    assert int(state.step) == 1
    assert int(np.asarray(state.w_u).sum()) == 5 * Q


def test_saturation_freezes_the_mac():
    mac = SparseyMac(n_inputs=16, Q=2, K=2, saturation=0.5, g_minus=0.95)
    xs = (np.random.default_rng(0).random((30, 16)) < 0.5).astype(np.uint8)
    state, _ = mac.learn(mac.init_state(), xs, key=jax.random.key(0))
    assert bool(state.frozen)
    w = np.asarray(state.w_u)
    state2, _ = mac.learn(state, 1 - xs[:3], key=jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(state2.w_u), w)


def test_saturation_freezes_at_the_frame_the_oracle_does():
    # The kernel counts set weights incrementally (a write into winner c_q sets pi_U - u(c_q) new
    # bits); the oracle recounts the table. Both must freeze after the same item.
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, saturation=0.12)
    xs = random_patterns(np.random.default_rng(5), 20, active=12)
    key = jax.random.key(3)
    state, out = mac.learn(mac.init_state(), xs, key=key)
    w, stored, frozen = np.zeros((N, Q, K), bool), [], False
    for t, (x, (tie, u)) in enumerate(zip(xs, draws(key, len(xs)))):
        if frozen:  # a frozen mac picks among tied cells with other draws; it writes nothing
            stored.append(False)
            continue
        code = numpy_csa(
            w,
            x,
            tie,
            u,
            mode="learn",
            g_minus=mac.g_minus,
            gamma=mac.gamma,
            chi=mac.chi,
            slope=mac.slope,
            inflection=mac.inflection,
        )[0]
        np.testing.assert_array_equal(np.asarray(out.code[t]), code)
        w[np.flatnonzero(x)[:, None], np.arange(Q)[None, :], code[None, :]] = True
        stored.append(True)
        frozen = w.mean() > mac.saturation
    assert frozen and 2 < sum(stored) < len(xs)
    np.testing.assert_array_equal(np.asarray(out.stored), stored)
    np.testing.assert_array_equal(np.asarray(state.w_u), w)
    assert bool(state.frozen)


def test_permanence_forgets_old_weights():
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, permanence=3, saturation=None)
    xs = np.zeros((4, N), np.uint8)
    for i in range(4):
        xs[i, 6 * i : 6 * i + 6] = 1
    state, _ = mac.learn(mac.init_state(), xs, key=jax.random.key(0))
    w = np.asarray(mac.weights(state))
    # Item 0 was set 4 learning frames ago, beyond permanence=3; items 1-3 are all still there
    # (the old `.any()` check passed while item 1 had already vanished).
    assert not w[:6].any()
    assert all(w[6 * i : 6 * i + 6].any() for i in (1, 2, 3))
    g = np.asarray(mac.recognize(state, xs).familiarity)
    assert g.tolist() == [0.0, 1.0, 1.0, 1.0]


def test_h_only_evidence_and_backoff():
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, n_h=Q * K, gate_min=0, backoff=0.9, saturation=None)
    rng = np.random.default_rng(3)
    xs = random_patterns(rng, 2)
    h = np.zeros((2, Q * K), np.uint8)
    h[1, ::K] = 1  # "previous code" for item 1
    state, out = mac.learn(mac.init_state(), xs, key=jax.random.key(0), hs=h)
    # U alone recognises item 1 (G = 1); with a wrong H the full HU product is lower, but the
    # backoff falls back to U and still recognises it.
    wrong_h = np.zeros((1, Q * K), np.uint8)
    wrong_h[0, 1::K] = 1
    found = mac.recognize(state, xs[1:], hs=wrong_h)
    assert float(found.familiarity[0]) == 1.0
    np.testing.assert_array_equal(np.asarray(found.code[0]), np.asarray(out.code[1]))
    # H alone (no U input) recalls item 1's code from its predecessor.
    found = mac.recognize(state, np.zeros((1, N), np.uint8), hs=h[1:])
    np.testing.assert_array_equal(np.asarray(found.code[0]), np.asarray(out.code[1]))


# ---------------------------------------------------------------- clear errors
@pytest.mark.parametrize(
    ("xs", "match"),
    [
        (np.full((2, N), 2, np.uint8), "xs: expected binary values"),
        (np.zeros((2, N + 1), np.uint8), r"xs: expected shape \(\*, 64\)"),
        (np.zeros((0, N), np.uint8), "xs: expected a non-empty"),
        (np.zeros((1, 1, N), np.uint8), "xs: expected 1 or 2 dimensions"),
    ],
)
def test_bad_input_names_the_argument(mac, xs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        mac.learn(mac.init_state(), xs, key=jax.random.key(0))


def test_bad_recognition_input_and_key_and_spec(mac):
    with pytest.raises(ValueError, match="xs: expected binary"):
        mac.recognize(mac.init_state(), np.full((N,), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"xs: expected shape"):
        mac.recognize(mac.init_state(), np.zeros((3, 5), np.uint8))
    with pytest.raises(TypeError, match="key: expected a typed PRNG key"):
        mac.learn(mac.init_state(), np.zeros((1, N), np.uint8), key=0)
    with pytest.raises(ValueError, match="Q: expected a positive integer"):
        SparseyMac(n_inputs=4, Q=0)
    with pytest.raises(ValueError, match="sigmoid: expected one of"):
        SparseyMac(n_inputs=4, sigmoid="tanh")
    with pytest.raises(ValueError, match="h: this mac has no H input"):
        mac.csa(mac.init_state(), jnp.zeros(N), h=jnp.zeros(3))
