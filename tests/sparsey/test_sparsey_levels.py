"""Sparsey levels, hierarchies (H/D over time) and read-outs."""

import jax
import numpy as np

from memjax.memories.sparsey import SparseyMac
from memjax.memories.sparsey_hierarchy import (
    SparseyHierarchy,
    SparseyLevel,
    grid_neighbours,
    mac_cells,
    tile_receptive_fields,
)
from memjax.memories.sparsey_readout import (
    class_node_fit,
    class_node_predict,
    linear_readout_fit,
    linear_readout_predict,
    nearest_code_predict,
)


def test_level_equals_independent_macs():
    rf = tile_receptive_fields((8, 8), 4, 4)
    mac = SparseyMac(n_inputs=16, Q=3, K=4, saturation=None)
    level = SparseyLevel(mac, rf)
    xs = (np.random.default_rng(0).random((3, 64)) < 0.3).astype(np.uint8)
    state, out = level.learn(level.init_state(), xs, key=jax.random.key(0))
    found = level.recognize(state, xs)
    np.testing.assert_array_equal(np.asarray(found.code), np.asarray(out.code))
    # Mac m of the level sees exactly xs[:, rf[m]]: its weights equal a lone mac's given the codes.
    for m in range(level.n_macs):
        w = np.zeros((16, 3, 4), bool)
        for t in range(3):
            if bool(out.active[t, m]):
                for j in np.flatnonzero(xs[t, list(rf[m])]):
                    w[j, np.arange(3), np.asarray(out.code[t, m])] = True
        np.testing.assert_array_equal(np.asarray(state.w_u[m]), w)


def test_hierarchy_sequence_recall_from_prefix():
    # Level 1: 4 macs with H from themselves and neighbours; level 2: 1 mac over level 1 with
    # D feeding level 1. A stored sequence is recalled by recognition from its frames.
    Q, K = 6, 12
    rf1 = tile_receptive_fields((8, 8), 4, 4)
    nb = grid_neighbours((2, 2), 1)
    h_rf = mac_cells(nb, Q, K)
    l2_rf = (tuple(range(4 * Q * K)),)
    d_rf = tuple(tuple(range(Q * K)) for _ in range(4))
    lv1 = SparseyLevel(SparseyMac(n_inputs=16, Q=Q, K=K, n_h=len(h_rf[0]), n_d=Q * K,
                                  saturation=None), rf1, h_rf=h_rf, d_rf=d_rf)
    lv2 = SparseyLevel(SparseyMac(n_inputs=4 * Q * K, Q=Q, K=K, saturation=None), l2_rf)
    hier = SparseyHierarchy((lv1, lv2))
    frames = (np.random.default_rng(1).random((3, 64)) < 0.25).astype(np.uint8)
    carry, learned = hier.run(hier.init_carry(), frames, key=jax.random.key(0))
    _, found = hier.run(hier.reset_time(carry), frames, key=jax.random.key(1), mode="recognize")
    same = np.asarray(found[0].code) == np.asarray(learned[0].code)
    assert same.mean() > 0.9, same
    assert np.asarray(found[0].familiarity).mean() > 0.9
    assert found[1].code.shape == (3, 1, 6)


def test_readouts_separate_codes_of_two_classes():
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 8, (2, 3, 5))
    labels = np.repeat([0, 1], 20)
    codes = protos[labels].copy()
    flip = rng.random(codes.shape) < 0.3
    codes[flip] = rng.integers(0, 8, flip.sum())
    tr, te = codes[::2], codes[1::2]
    assert (np.asarray(nearest_code_predict(tr, labels[::2], te, K=8)) == labels[1::2]).mean() > 0.9
    nodes = class_node_fit(tr, labels[::2], K=8, num_classes=2)
    assert (np.asarray(class_node_predict(nodes, te)) == labels[1::2]).mean() > 0.9
    lin = linear_readout_fit(tr, labels[::2], K=8, num_classes=2, steps=50)
    assert (np.asarray(linear_readout_predict(lin, te)) == labels[1::2]).mean() > 0.9
