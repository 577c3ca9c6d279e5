"""Sparsey levels, hierarchies (H/D over time) and read-outs."""

import jax
import numpy as np

from memjax.memories.sparsey import SparseyMac
from memjax.memories.sparsey.hierarchy import (
    SparseyHierarchy,
    SparseyLevel,
    grid_neighbours,
    mac_cells,
    tile_receptive_fields,
)
from memjax.memories.sparsey.readout import (
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


def _two_level(Q, K, density, seed):
    # Level 1: 4 macs with H from themselves and neighbours; level 2: 1 mac over level 1 with
    # D feeding level 1.
    rf1 = tile_receptive_fields((8, 8), 4, 4)
    h_rf = mac_cells(grid_neighbours((2, 2), 1), Q, K)
    l2_rf = (tuple(range(4 * Q * K)),)
    d_rf = tuple(tuple(range(Q * K)) for _ in range(4))
    lv1 = SparseyLevel(
        SparseyMac(n_inputs=16, Q=Q, K=K, n_h=len(h_rf[0]), n_d=Q * K, saturation=None),
        rf1,
        h_rf=h_rf,
        d_rf=d_rf,
    )
    lv2 = SparseyLevel(SparseyMac(n_inputs=4 * Q * K, Q=Q, K=K, saturation=None), l2_rf)
    hier = SparseyHierarchy((lv1, lv2))
    rng = np.random.default_rng(seed)
    if density is None:  # disjoint frames: 12 pixels each, no pixel shared between frames
        frames = np.zeros((3, 64), np.uint8)
        for t, px in enumerate(rng.permutation(64)[:36].reshape(3, 12)):
            frames[t, px] = 1
    else:
        frames = (rng.random((3, 64)) < density).astype(np.uint8)
    carry, learned = hier.run(hier.init_carry(), frames, key=jax.random.key(seed))
    _, found = hier.run(
        hier.reset_time(carry), frames, key=jax.random.key(seed + 1), mode="recognize"
    )
    return learned, found


def test_hierarchy_reactivation_is_exact_up_to_ties():
    # Re-presenting a stored sequence: while every code so far was reactivated, each stored
    # cell has full support V = 1 (U, H and D all match), so G = 1 exactly; a CM can then only
    # pick another cell if that cell ties at V = 1 through crosstalk of the superposed codes
    # (max-V with a random tie-break). Nothing else makes reactivation inexact; after a tie went
    # the wrong way, the H/D/U evidence downstream differs from learning and errors propagate.
    n_ties = 0
    for seed in range(4):
        learned, found = _two_level(6, 12, 0.25, seed)
        ok_so_far = True
        for t in range(3):
            for lv in range(2):
                stored = np.asarray(learned[lv].code[t])  # (M, Q)
                got = np.asarray(found[lv].code[t])
                v = np.asarray(found[lv].support[t])  # (M, Q, K)
                active = np.asarray(learned[lv].active[t])
                if ok_so_far:
                    assert (np.asarray(found[lv].familiarity[t])[active] == 1.0).all()
                    v_stored = np.take_along_axis(v, np.maximum(stored, 0)[..., None], -1)[..., 0]
                    assert (v_stored[active] == 1.0).all()
                    wrong = (got != stored) & active[:, None]
                    assert (v_stored[wrong] == v.max(-1)[wrong]).all()  # every miss is a tie
                    n_ties += int(wrong.sum())
                # Frames and levels run in this order: level 1 at t reads level 1 and 2 at t−1,
                # level 2 at t reads level 1 at t.
                ok_so_far &= bool(np.array_equal(got, stored))
    # With frames that share no pixel, no other level-1 cell has U support, so no tie can occur
    # and the whole sequence comes back exactly, at both levels (same Q, K as above: the two
    # compiled runs are reused).
    for seed in range(3):
        learned, found = _two_level(6, 12, None, seed)
        for lv in range(2):
            np.testing.assert_array_equal(np.asarray(found[lv].code), np.asarray(learned[lv].code))
    assert found[1].code.shape == (3, 1, 6)


def test_hierarchy_static_recognition_is_order_free():
    rf = tile_receptive_fields((8, 8), 4, 4)
    lv = SparseyLevel(SparseyMac(n_inputs=16, Q=3, K=6, saturation=None), rf)
    hier = SparseyHierarchy((lv,))
    xs = (np.random.default_rng(0).random((6, 64)) < 0.3).astype(np.uint8)
    carry, _ = hier.run(hier.init_carry(), xs, key=jax.random.key(0))
    a = hier.recognize(carry, xs, ties="shared")[0].code
    b = hier.recognize(carry, xs[::-1], ties="shared")[0].code[::-1]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Shared ties: the same input gets the same code wherever it sits in the batch.
    c = hier.recognize(carry, np.concatenate([xs, xs]), ties="shared")[0].code
    np.testing.assert_array_equal(np.asarray(c[:6]), np.asarray(c[6:]))


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
