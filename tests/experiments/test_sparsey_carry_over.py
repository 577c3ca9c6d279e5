"""The boundary rule that carries the MNIST setting to other image sets
(``experiments.sparsey.pipeline.boundary`` / ``MNIST_BOUNDARY``)."""

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from experiments.sparsey.pipeline import (
    MNIST,
    MNIST_BOUNDARY,
    SparseyConfig,
    boundary,
    build_hierarchy,
    prepare,
)


@pytest.mark.parametrize("shape", [(9, 13), (28, 28)])
def test_boundary_matches_scipy_erosion(shape):
    rng = np.random.default_rng(1)
    x = (rng.random((6, shape[0] * shape[1])) < 0.6).astype(np.uint8)
    im = x.reshape(-1, *shape).astype(bool)
    # x AND NOT erode(x), 3x3 square, outside the image off (scipy's border_value=0).
    er = binary_erosion(im, structure=np.ones((1, 3, 3), bool), border_value=0)
    want = (im & ~er).reshape(len(x), -1)
    got = boundary(x, shape)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)


def test_boundary_keeps_thin_strokes_and_outlines_filled_shapes():
    x = np.zeros((2, 10, 10), np.uint8)
    x[0, 2, 1:9] = 1  # a one-pixel stroke: all of it is boundary
    x[0, 3:8, 5] = 1
    x[1, 2:8, 1:9] = 1  # a filled 6x8 rectangle: its 2(6+8)-4 = 24-pixel outline
    b = boundary(x.reshape(2, -1), (10, 10)).reshape(2, 10, 10)
    np.testing.assert_array_equal(b[0], x[0])
    assert b[1].sum() == 24 and b[1, 3:7, 2:8].sum() == 0


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="inputs"):
        SparseyConfig(inputs="edges")
    with pytest.raises(ValueError, match="x"):
        boundary(np.zeros((2, 50), np.uint8), (7, 7))


def _blobs(rng, n, filled):
    """14x14 images: three filled rectangles (dense) or three one-pixel outlines/strokes."""
    x = np.zeros((n, 14, 14), np.uint8)
    for i in range(n):
        for _ in range(3):
            r, c = rng.integers(0, 8, 2)
            h, w = rng.integers(4, 7, 2)
            if filled:
                x[i, r : r + h, c : c + w] = 1
            else:
                x[i, r, c : c + w] = 1
                x[i, r : r + h, c] = 1
    return x.reshape(n, -1)


def test_boundary_rule_keeps_dense_and_sparse_sets_at_one_density_per_rf():
    """A dense set (filled shapes) and a sparse one (thin strokes): read as pixels, the dense
    set puts ~2x as many active bits into each receptive field; read through the boundary,
    both reach the macs within a factor 1.5 (the strokes nearly unchanged)."""
    rng = np.random.default_rng(0)
    sparse, dense = _blobs(rng, 150, False), _blobs(rng, 150, True)
    base = MNIST.replace(patch=5, stride=3, Q=4, K=8, gate_min=2)
    rule = base.replace(inputs="boundary")
    rf = np.asarray(build_hierarchy(base, (14, 14)).levels[0].rf)

    def per_rf(cfg, xs):
        a = prepare(cfg, xs, (14, 14))[:, rf].sum(-1)  # (items, macs) active bits per RF
        return float(a[a >= cfg.gate_min].mean())

    assert per_rf(base, dense) > 1.8 * per_rf(base, sparse)
    assert per_rf(rule, sparse) == pytest.approx(per_rf(base, sparse), rel=0.05)
    assert 1 / 1.5 < per_rf(rule, dense) / per_rf(rule, sparse) < 1.5


def test_boundary_preset_is_mnist_at_stride_2_on_boundaries():
    assert MNIST_BOUNDARY == MNIST.replace(stride=2, inputs="boundary", readout_l2=1e-3)
    assert len(build_hierarchy(MNIST_BOUNDARY, (28, 28)).levels[0].rf) == 121


def test_dilate_matches_a_neighbourhood_loop():
    from experiments.sparsey.carry_over import dilate

    rng = np.random.default_rng(2)
    x = (rng.random((4, 9 * 11)) < 0.1).astype(np.uint8)
    im = x.reshape(-1, 9, 11)
    want = np.zeros_like(im)
    for n, r, c in np.argwhere(im):  # every on pixel turns on its 3x3 square (clipped)
        want[n, max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = 1
    np.testing.assert_array_equal(dilate(x, (9, 11)), want.reshape(4, -1))


def test_stride1_setting_is_the_boundary_rule_with_a_mac_at_every_pixel():
    from experiments.sparsey.pipeline import MNIST_BOUNDARY_STRIDE1 as S1

    assert S1 == MNIST_BOUNDARY.replace(stride=1)
    rf = np.asarray(build_hierarchy(S1, (28, 28)).levels[0].rf)
    assert rf.shape == (22 * 22, 49)
    for m in (0, 1, 22, 483):
        r, c = divmod(m, 22)
        want = [(r + i) * 28 + c + j for i in range(7) for j in range(7)]
        assert sorted(rf[m].tolist()) == want


def test_a_one_model_candidate_is_the_pipeline():
    """``--validate``'s scoring of one model == run_pipeline with λ by CV (same codes, same
    read-out), and two models read out their concatenated codes."""
    import jax

    from experiments.sparsey.carry_over import candidate_accuracy
    from experiments.sparsey.pipeline import run_pipeline

    rng = np.random.default_rng(3)
    y = np.arange(60) % 3
    x = _blobs(rng, 60, True)
    x[y == 1, :20] = 1  # the classes differ in a top band
    cfg = MNIST_BOUNDARY.replace(patch=5, stride=3, Q=4, K=8, gate_min=2, readout_steps=5)
    key = jax.random.key(0)
    acc, flags = candidate_accuracy(
        (cfg,), x[:45], y[:45], x[45:], y[45:], key=key, image_shape=(14, 14)
    )
    res = run_pipeline(
        cfg.replace(readout_l2=None),
        x[:45],
        y[:45],
        x[45:],
        image_shape=(14, 14),
        key=key,
        num_classes=3,
    )
    assert acc == 100 * float((res.predictions == y[45:]).mean())
    assert flags.startswith(f"{res.stats['level1_frozen_macs']}/16,")
    acc2, flags2 = candidate_accuracy(
        (cfg, cfg), x[:45], y[:45], x[45:], y[45:], key=key, image_shape=(14, 14)
    )
    assert flags2.startswith(flags + "; ") and flags2.count("; ") == 1 and 0 <= acc2 <= 100
