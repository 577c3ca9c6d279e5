"""Rare-class episodes against their definition, and the rare-classes experiment end to end."""

import json

import numpy as np
import pytest

from experiments.synthetic_gradients import rare_classes
from experiments.synthetic_gradients.common import updates_to
from experiments.synthetic_gradients.episodes import episode_batch, instance_index


def _images(n_classes=6, per=4, d=5):
    rng = np.random.default_rng(0)
    return rng.random((n_classes * per, d)).astype(np.float32), np.repeat(np.arange(n_classes), per)


def test_episode_batch_rare_counts_delayed_labels_and_drawings():
    images, labels = _images()
    b = episode_batch(images, labels, 4, 16, 32, np.random.default_rng(1), rare=2, rare_count=3)
    xs, ys, rare = b["xs"], b["labels"], b["rare"]
    eye = np.eye(4)
    for e in range(32):
        rare_labels = set(ys[e][rare[e]].tolist())
        assert len(rare_labels) == 2 and rare[e].sum() == 6
        for lab in rare_labels:
            assert (ys[e] == lab).sum() == 3
        assert not set(ys[e][~rare[e]].tolist()) & rare_labels
        np.testing.assert_array_equal(xs[e, 0, 5:], 0)
        np.testing.assert_array_equal(xs[e, 1:, 5:], eye[ys[e, :-1]])
        np.testing.assert_array_equal(b["context"][e], eye[ys[e]])
        # each episode label is one class: its images come from one class's drawings
        for lab in np.unique(ys[e]):
            rows = xs[e, ys[e] == lab, :5]
            owners = {int(labels[np.flatnonzero((images == r).all(1))[0]]) for r in rows}
            assert len(owners) == 1
    one = episode_batch(images, labels, 3, 10, 8, np.random.default_rng(2), drawings=1)
    for e in range(8):
        for lab in np.unique(one["labels"][e]):
            rows = one["xs"][e, one["labels"][e] == lab, :5]
            assert np.all(rows == rows[0])
    with pytest.raises(ValueError, match="rare"):
        episode_batch(images, labels, 3, 10, 2, np.random.default_rng(0), rare=3)
    with pytest.raises(ValueError, match="rare_count"):
        episode_batch(images, labels, 3, 10, 2, np.random.default_rng(0), rare=2, rare_count=5)
    with pytest.raises(ValueError, match="drawings"):
        episode_batch(images, labels, 3, 10, 2, np.random.default_rng(0), drawings=0)


def test_instance_index_and_updates_to_against_brute_force():
    ys = np.random.default_rng(3).integers(0, 4, (5, 30))
    want = np.array([[int((row[: t + 1] == row[t]).sum()) for t in range(30)] for row in ys])
    np.testing.assert_array_equal(instance_index(ys), want)
    hist = [{"step": 10, "a": 0.2}, {"step": 20, "a": 0.7}, {"step": 30, "a": 0.5}]
    assert updates_to(hist, "a", 0.6, above=True) == 20
    assert updates_to(hist, "a", 0.9, above=True) is None
    assert updates_to(hist, "a", 0.5, above=False) == 10


def test_rare_classes_experiment_runs(tmp_path):
    rows = rare_classes.main(
        [
            "--no-progress",
            "--out",
            str(tmp_path),
            "--steps",
            "2",
            "--set",
            "log_every=1",
            "--set",
            "methods=(sg,)",
            "--set",
            "seeds=(0,)",
            "--set",
            "hidden=4",
            "--set",
            "image_size=6",
            "--set",
            "seq_len=8",
            "--set",
            "window=4",
            "--set",
            "batch_size=4",
            "--set",
            "eval_episodes=8",
        ]
    )
    assert [r["model"] for r in rows] == ["LSTM T=4 SG"]
    for r in rows:
        for key in ("rare 2nd %", "common 2nd+ %", "1st %"):
            assert 0 <= r[key] <= 100
    assert -1 <= rows[0]["cos(ĝ, δ)"] <= 1
    assert "updates to 60 % (rare 2nd)" in rows[0]
    assert (tmp_path / "rare_classes.png").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text())[0]["model"] == "LSTM T=4 SG"
    steps, curve = json.loads((tmp_path / "curves.json").read_text())["LSTM T=4 SG"]
    assert steps == [1, 2] and len(curve) == 2 and all(0 <= v <= 100 for v in curve)
    assert rare_classes.plot_title(("sg",)) == "Rare classes in Omniglot episodes: SG"
