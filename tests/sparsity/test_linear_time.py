"""The host linear-time reference: median-of-medians selection (worst-case guarantee), the work
bound of the hinge elimination (spec §5), and the sorted / unsorted group paths."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core.testing import float64
from memjax.sparsity import (
    ProxWorkspace,
    prox_wgsef,
    prox_wgsef_linear_time,
    select,
    wgsef_value_linear_time,
)
from memjax.sparsity._linear_time import _SMALL, _median5, _pivot


def test_median_of_five_network_on_every_order():
    perms = np.array(list(itertools.permutations(range(5))), dtype=float).T  # (5, 120)
    np.testing.assert_array_equal(_median5(perms), np.full(120, 2.0))
    ties = np.random.default_rng(0).integers(0, 3, size=(5, 2000)).astype(float)
    np.testing.assert_array_equal(_median5(ties), np.median(ties, axis=0))


ADVERSARIAL = {
    "sorted": lambda n, rng: np.arange(n, dtype=float),
    "reversed": lambda n, rng: np.arange(n, dtype=float)[::-1].copy(),
    "rolled": lambda n, rng: np.roll(np.arange(n, dtype=float), n // 2),  # median-of-3 killer
    "organ pipe": lambda n, rng: np.concatenate(
        [np.arange(n // 2), np.arange(n - n // 2)[::-1]]
    ).astype(float),
    "few values": lambda n, rng: rng.integers(0, 4, n).astype(float),
    "constant": lambda n, rng: np.full(n, 7.0),
    "random": lambda n, rng: rng.standard_normal(n),
}


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL))
def test_select_equals_sorting(kind):
    rng = np.random.default_rng(1)
    for n in (1, 7, _SMALL + 1, 5 * _SMALL + 3, 40_000):
        v = ADVERSARIAL[kind](n, rng)
        s = np.sort(v)
        for kth in {0, n // 3, n // 2, n - 1}:
            assert select(v.copy(), kth) == s[kth]


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL))
def test_pivot_splits_at_least_three_tenths(kind):
    """The median of the medians of five has ≥ 3/10 of the entries on each side (BFPRT), the
    bound behind the worst-case O(|Ω|) of every elimination step."""
    n = 50_000
    v = ADVERSARIAL[kind](n, np.random.default_rng(2))
    p = _pivot(v)
    assert np.count_nonzero(v <= p) >= 0.3 * n - 5
    assert np.count_nonzero(v >= p) >= 0.3 * n - 5


@pytest.mark.parametrize(
    "layout", ["random", "sorted norms", "equal norms", "two scales", "geometric"]
)
def test_work_is_linear_in_the_number_of_groups(layout):
    """Hinges touched over all elimination steps ≤ 20/3 × the hinges (any two steps drop
    ≥ 30 %): an operation count, not a timing; about 2 in practice."""
    rng = np.random.default_rng(3)
    for m in (1_000, 30_000):
        norms = {
            "random": rng.exponential(size=m),
            "sorted norms": np.linspace(0.01, 10, m),
            "equal norms": np.ones(m),
            "two scales": np.where(np.arange(m) % 2, 1e-3, 1e3),
            "geometric": np.geomspace(1e-6, 1e6, m)[rng.permutation(m)],
        }[layout]
        for k in (1, m // 10, m - 1):
            stats = {}
            prox_wgsef_linear_time(norms, np.arange(m), m, k, 0.5, stats=stats)
            assert stats["touched"] <= 20 / 3 * stats["hinges"] + 50
            assert stats["steps"] <= 2 * (np.log(stats["hinges"]) / np.log(10 / 7) + 2)


def test_guaranteed_pivot_takes_over_when_the_sample_fails():
    """Against an input whose strided sample is unrepresentative the median-of-medians pivot
    steps in and the work stays linear (m below the sampled-bracket size, so the elimination
    loop runs from the start)."""
    m = 20_000
    stride = max(1, 2 * m // 2048)
    norms = np.full(m, 1.0)
    norms[::stride] = 1e6  # the sampled entries are outliers; the bulk is elsewhere
    norms *= 1 + 1e-3 * np.random.default_rng(6).random(m)
    stats = {}
    prox_wgsef_linear_time(norms, np.arange(m), m, m // 2, 0.5, stats=stats)
    assert stats["guaranteed_pivots"] >= 1
    assert stats["touched"] <= 20 / 3 * stats["hinges"] + 50


@pytest.mark.parametrize("case", ["random", "sample outliers", "saturated", "zero groups"])
def test_large_problems_through_the_sampled_first_step(case):
    """m ≥ 4 × 8192 starts with one bracketing step around a sampled root estimate; a bad
    sample (its entries are outliers) only costs that step. Checked against the jitted prox
    (float64) and the work bound."""
    rng = np.random.default_rng(7)
    m, k, lam = 40_000, 4_000, 0.5
    norms = rng.exponential(size=m)
    if case == "sample outliers":
        norms[:: max(1, m // 8192)] = 1e6
    if case == "saturated":  # exactly k saturated groups, H flat at 0 (the §5 trap)
        norms = np.where(np.arange(m) < k, 10.0, 0.05)[rng.permutation(m)]
    if case == "zero groups":
        norms[rng.random(m) < 0.3] = 0.0
    x = norms * rng.choice([-1.0, 1.0], m)
    stats = {}
    w = prox_wgsef_linear_time(x, np.arange(m), m, k, lam, stats=stats)
    with float64():
        ref = np.asarray(prox_wgsef(jnp.asarray(x), jnp.arange(m), m, k, lam))
    np.testing.assert_allclose(w, ref, rtol=1e-10, atol=1e-12)
    assert stats["touched"] <= 20 / 3 * stats["hinges"] + 50
    if case == "saturated":
        assert np.count_nonzero(w) == k


def test_sorted_and_unsorted_segment_ids_and_empty_groups():
    """np.add.reduceat (sorted ids, with empty groups in the middle and at the end) ==
    np.bincount (shuffled ids)."""
    rng = np.random.default_rng(4)
    m = 9
    ids = np.sort(rng.choice([0, 1, 2, 4, 5, 7], size=40))  # groups 3, 6, 8 are empty
    x = rng.standard_normal(40)
    perm = rng.permutation(40)
    for k, lam in ((2, 0.3), (5, 2.0), (9, 1.0)):
        sorted_w = prox_wgsef_linear_time(x, ids, m, k, lam)
        shuffled_w = prox_wgsef_linear_time(x[perm], ids[perm], m, k, lam)
        np.testing.assert_allclose(shuffled_w, sorted_w[perm], rtol=1e-14, atol=1e-15)
        assert wgsef_value_linear_time(x, ids, m, k) == pytest.approx(
            wgsef_value_linear_time(x[perm], ids[perm], m, k), rel=1e-13
        )


def test_reference_keeps_dtype_and_shape():
    x = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    w = prox_wgsef_linear_time(x, np.arange(12).reshape(3, 4) // 2, 6, 2, 0.4)
    assert w.dtype == np.float32 and w.shape == (3, 4)


def test_out_and_reused_workspace_give_the_same_bits():
    """One :class:`ProxWorkspace` reused over problems of different sizes and layouts (regular,
    sorted with empty groups, shuffled, zero groups, the sampled first step, weights, λ = 0,
    at most k non-zero groups) and a preallocated ``out=``: bit-identical to fresh calls, and
    ``out`` is what is returned."""
    rng = np.random.default_rng(8)
    ws = ProxWorkspace()
    cases = []
    m = 40_000  # regular layout, through the sampled first step, then smaller problems
    cases.append((rng.standard_normal(4 * m).astype(np.float32), np.arange(4 * m) // 4, m, 3, {}))
    x = rng.standard_normal(40)
    ids = np.sort(rng.choice([0, 1, 2, 4, 5, 7], size=40))
    cases.append((x, ids, 9, 2, {}))
    perm = rng.permutation(40)
    cases.append((x[perm], ids[perm], 9, 4, {"weights": np.arange(1.0, 10.0)}))
    z = rng.standard_normal(600)
    z[:300] = 0.0
    cases.append((z, np.arange(600) // 3, 200, 20, {}))
    cases.append((z, np.arange(600) // 3, 200, 150, {}))  # at most k non-zero groups
    cases.append((z, np.arange(600) // 3, 200, 20, {"lam": 0.0}))
    for x, ids, m, k, kw in cases:
        lam = kw.pop("lam", 0.5)
        fresh = prox_wgsef_linear_time(x, ids, m, k, lam, **kw)
        out = np.full_like(x, np.nan)
        got = prox_wgsef_linear_time(x, ids, m, k, lam, out=out, workspace=ws, **kw)
        assert got is out
        np.testing.assert_array_equal(out, fresh)
    assert ws.nbytes > 0


def test_out_and_workspace_errors_name_the_argument():
    x = np.ones(6)
    ids = np.arange(6) // 2
    for bad in (np.ones(5), np.ones(6, np.float32), np.ones(12)[::2]):
        with pytest.raises(ValueError, match="out"):
            prox_wgsef_linear_time(x, ids, 3, 1, 0.5, out=bad)
    with pytest.raises(ValueError, match="out"):
        prox_wgsef_linear_time(x, ids, 3, 1, 0.5, out=x)
    with pytest.raises(TypeError, match="out"):
        prox_wgsef_linear_time(x, ids, 3, 1, 0.5, out=[0.0] * 6)
    with pytest.raises(TypeError, match="workspace"):
        prox_wgsef_linear_time(x, ids, 3, 1, 0.5, workspace={})
