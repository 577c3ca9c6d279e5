"""N-way K-shot episodes and Santoro (MANN) sequences over Omniglot."""

import numpy as np
import pytest

from memjax import data as md


@pytest.fixture(scope="module")
def omni():
    return md.load_omniglot(size=20)


def test_episode_shapes_and_labels(omni):
    ep = md.sample_episode(omni.images, omni.character, n_way=5, k_shot=3, n_query=4, seed=0)
    assert ep.support_x.shape == (15, 20, 20) and ep.query_x.shape == (20, 20, 20)
    assert ep.support_y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(ep.support_y), np.full(5, 3))
    np.testing.assert_array_equal(np.bincount(ep.query_y), np.full(5, 4))
    assert len(set(ep.classes.tolist())) == 5
    # every image is a real image of the class its label names; support and query agree
    index = {img.tobytes(): i for i, img in enumerate(omni.images)}
    used = []
    for xs, ys in ((ep.support_x, ep.support_y), (ep.query_x, ep.query_y)):
        for img, lab in zip(xs, ys, strict=True):
            i = index[img.tobytes()]
            assert omni.character[i] == ep.classes[lab]
            used.append(i)
    assert len(set(used)) == len(used)  # support and query are disjoint


def test_episode_labels_are_fresh_permutations(omni):
    eps = md.sample_episodes(omni.images, omni.character, 5, 1, 1, num_episodes=30, seed=1)
    assert eps.support_x.shape == (30, 5, 20, 20) and eps.classes.shape == (30, 5)
    for e in range(30):
        assert sorted(eps.support_y[e].tolist()) == list(range(5))
    # with 242 classes the label -> class maps differ across episodes
    assert len({tuple(c) for c in eps.classes.tolist()}) == 30
    # the order of labels within the chosen class set is permuted: not always sorted
    assert any((np.diff(c) < 0).any() for c in eps.classes)


def test_episode_determinism(omni):
    a = md.sample_episodes(omni.images, omni.character, 5, 1, 2, num_episodes=3, seed=7)
    b = md.sample_episodes(omni.images, omni.character, 5, 1, 2, num_episodes=3, seed=7)
    c = md.sample_episodes(omni.images, omni.character, 5, 1, 2, num_episodes=3, seed=8)
    for fa, fb in zip(a, b, strict=True):
        np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(a.classes, c.classes)


def test_episode_bad_arguments(omni):
    with pytest.raises(ValueError, match=r"n_way.*242"):
        md.sample_episode(omni.images, omni.character, n_way=243, k_shot=1)
    with pytest.raises(ValueError, match="k_shot"):
        md.sample_episode(omni.images, omni.character, n_way=5, k_shot=21)
    with pytest.raises(ValueError, match="n_query"):
        md.sample_episode(omni.images, omni.character, n_way=5, k_shot=10, n_query=11)


def test_santoro_shows_previous_label(omni):
    b = md.santoro_sequences(
        omni.images, omni.character, n_classes=5, seq_len=50, batch_size=4, seed=0
    )
    assert b.inputs.shape == (4, 50, 400 + 5) and b.labels.shape == (4, 50)
    np.testing.assert_array_equal(b.prev_labels[:, 0], 0.0)
    for t in range(1, 50):
        np.testing.assert_array_equal(b.prev_labels[:, t].argmax(-1), b.labels[:, t - 1])
        np.testing.assert_array_equal(b.prev_labels[:, t].sum(-1), 1.0)
    np.testing.assert_array_equal(b.inputs[..., :400], b.images)
    np.testing.assert_array_equal(b.inputs[..., 400:], b.prev_labels)
    # image at step t belongs to the class behind label y_t
    index = {img.reshape(-1).tobytes(): i for i, img in enumerate(omni.images)}
    for s in range(4):
        for t in range(50):
            i = index[b.images[s, t].tobytes()]
            assert omni.character[i] == b.classes[s, b.labels[s, t]]


def test_santoro_rotation_and_determinism(omni):
    a = md.santoro_sequences(omni.images, omni.character, 5, 20, 2, seed=3, rotate=True)
    b = md.santoro_sequences(omni.images, omni.character, 5, 20, 2, seed=3, rotate=True)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    c = md.santoro_sequences(omni.images, omni.character, 5, 20, 2, seed=4)
    assert not np.array_equal(a.inputs, c.inputs)
    with pytest.raises(ValueError, match="n_classes"):
        md.santoro_sequences(omni.images, omni.character, n_classes=300)


def test_episodes_on_mnist():
    x, y = md.load_mnist(dtype=np.float32)
    ep = md.sample_episode(x, y, n_way=10, k_shot=5, n_query=5, seed=0)
    assert ep.support_x.shape == (50, 784)
    assert sorted(ep.classes.tolist()) == list(range(10))
