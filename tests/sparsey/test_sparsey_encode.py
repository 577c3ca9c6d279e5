"""``SparseyMac.encode``: recognition codes alone, against a cell-by-cell NumPy recognition and
against ``recognize(...).code`` on every path (the integer pick and the pick on V)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from memjax.memories.sparsey import SparseyMac
from memjax.memories.sparsey.csa import tie_noise, tie_order

N, Q, K = 64, 6, 8


def patterns(rng, n, active=6):
    xs = np.zeros((n, N), np.uint8)
    for i in range(n):
        xs[i, rng.choice(N, active, replace=False)] = 1
    return xs


def numpy_codes(w, xs, tie, *, min_cutoff=0.0, max_cutoff=1.0, phi=1.0, gate_min=1):
    """Recognition codes (steps 1–4 and 9, U only) cell by cell in float64: per CM the max-V
    cell, ties to the largest ``tie`` priority (the first such cell on equal priorities)."""
    out = np.full((len(xs), Q), -1)
    for b, x in enumerate(xs):
        on = np.flatnonzero(x)
        if len(on) < gate_min or len(on) == 0:
            continue
        u = w[on].sum(axis=0) / len(on)
        u = np.where(u >= max_cutoff, 1.0, np.where(u < min_cutoff, 0.0, u)) ** phi
        for q in range(Q):
            best = [k for k in range(K) if u[q, k] == u[q].max()]
            out[b, q] = max(best, key=lambda k: (tie[b][q, k], -k))
    return out


@pytest.fixture(scope="module")
def stored():
    rng = np.random.default_rng(0)
    xs = patterns(rng, 30)
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, saturation=None)
    state, _ = mac.learn(mac.init_state(), xs, key=jax.random.key(3))
    probes = np.concatenate([xs[:6], patterns(rng, 10), patterns(rng, 4, active=2)])
    probes[-1] = 0  # gated off: the empty code
    return state, probes


@pytest.mark.parametrize(
    "kw",
    [
        {},  # integer pick
        {"min_cutoff": 0.3, "max_cutoff": 0.6},  # clipping makes ties: still the integer pick
        {"phi_u": 2.0},  # pick on V
        {"gate_min": 3},
    ],
)
def test_encode_matches_numpy_and_recognize(stored, kw):
    state, probes = stored
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, saturation=None, **kw)
    key = jax.random.key(5)
    codes = np.asarray(mac.encode(state, probes, key=key))
    tie = np.asarray(tie_noise(key, Q, K), np.float64)
    ref = numpy_codes(
        np.asarray(state.w_u),
        probes,
        [tie] * len(probes),
        min_cutoff=mac.min_cutoff,
        max_cutoff=mac.max_cutoff,
        phi=mac.phi_u,
        gate_min=mac.gate_min,
    )
    np.testing.assert_array_equal(codes, ref)
    np.testing.assert_array_equal(codes, np.asarray(mac.recognize(state, probes, key=key).code))
    assert (codes[-1] == -1).all() and (codes[:6] >= 0).all()
    np.testing.assert_array_equal(np.asarray(mac.encode(state, probes[3], key=key)), codes[3])


def test_encode_per_item_ties_and_h_input(stored):
    state, probes = stored
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, saturation=None)
    per_item = np.asarray(mac.encode(state, probes, ties="per_item"))
    keys = jax.random.split(jax.random.key(0), len(probes))  # key=None: key(0), split per item
    ties = [np.asarray(tie_noise(k, Q, K), np.float64) for k in keys]
    np.testing.assert_array_equal(per_item, numpy_codes(np.asarray(state.w_u), probes, ties))
    # With an H input the pick is on V = U·H: encode still equals recognize.
    mh = SparseyMac(n_inputs=N, Q=Q, K=K, n_h=16, saturation=None)
    hs = (np.random.default_rng(2).random((len(probes), 16)) < 0.3).astype(np.uint8)
    sh, _ = mh.learn(mh.init_state(), probes[:8], key=jax.random.key(1), hs=hs[:8])
    np.testing.assert_array_equal(
        np.asarray(mh.encode(sh, probes, hs=hs)), np.asarray(mh.recognize(sh, probes, hs=hs).code)
    )


def test_tie_order_ranks_priorities_then_cells():
    noise = np.array([[0.5, 0.9, 0.5, 0.1]], np.float32)
    assert np.asarray(tie_order(noise)).tolist() == [[1, 0, 2, 3]]


def test_encode_bad_arguments(stored):
    state, probes = stored
    mac = SparseyMac(n_inputs=N, Q=Q, K=K, saturation=None)
    with pytest.raises(ValueError, match="ties"):
        mac.encode(state, probes, ties="random")
    with pytest.raises(ValueError, match="xs"):
        mac.encode(state, probes[:, :10])
    with pytest.raises(ValueError, match="unknown control 'h'"):
        mac.encode(state, probes, h=probes)
