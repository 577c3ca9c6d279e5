"""The sinusoid generator against its formula, and the sinusoid experiment end to end (tiny)."""

import json

import numpy as np
import pytest

from experiments.synthetic_gradients import sinusoid
from memjax.data import SINUSOID_RANGES, sinusoid_episodes


def test_generator_matches_its_formula_and_presentation():
    b = sinusoid_episodes(64, seq_len=12, k_shot=4, seed=3)
    # the draw order is amplitude, phase, x from default_rng(seed)
    rng = np.random.default_rng(3)
    amp = rng.uniform(0.1, 5.0, 64)
    phase = rng.uniform(0.0, np.pi, 64)
    x = rng.uniform(-5.0, 5.0, (64, 12))
    y = amp[:, None] * np.sin(x - phase[:, None])
    np.testing.assert_allclose(b.amplitude, amp, rtol=1e-6)
    np.testing.assert_allclose(b.phase, phase, rtol=1e-6)
    np.testing.assert_allclose(b.x, x, rtol=1e-6)
    np.testing.assert_allclose(b.targets, y, rtol=1e-5, atol=1e-6)
    # input_t = (x_t, s_{t-1} y_{t-1}, s_{t-1}): labels of the K support points one step late
    for t in range(12):
        np.testing.assert_allclose(b.inputs[:, t, 0], x[:, t], rtol=1e-6)
        shown = 1 <= t <= 4
        want = y[:, t - 1] if shown else np.zeros(64)
        np.testing.assert_allclose(b.inputs[:, t, 1], want, rtol=1e-5, atol=1e-6)
        assert np.all(b.inputs[:, t, 2] == float(shown))
    assert b.query.tolist() == [[t >= 4 for t in range(12)]] * 64
    assert b.inputs.dtype == np.float32 and b.query.dtype == bool


def test_generator_ranges_seeds_and_errors():
    b = sinusoid_episodes(4000, seq_len=3, k_shot=1, seed=0)
    lo, hi = SINUSOID_RANGES["amplitude"]
    assert lo <= b.amplitude.min() and b.amplitude.max() <= hi
    assert 0 <= b.phase.min() and b.phase.max() <= np.pi
    assert -5 <= b.x.min() and b.x.max() <= 5
    # E[A] = 2.55 and E[A^2]/2 = (5^3 - 0.1^3) / (3 * 4.9 * 2) for the zero predictor
    assert abs(b.amplitude.mean() - 2.55) < 0.1
    assert abs(np.mean(b.targets**2) - (125 - 1e-3) / 29.4) < 0.25
    same = sinusoid_episodes(5, 6, 2, seed=11)
    assert np.array_equal(same.inputs, sinusoid_episodes(5, 6, 2, seed=11).inputs)
    gen = np.random.default_rng(1)
    assert not np.array_equal(sinusoid_episodes(5, 6, 2, gen).x, sinusoid_episodes(5, 6, 2, gen).x)
    for kwargs, name in (
        ({"batch_size": 0}, "batch_size"),
        ({"seq_len": 1}, "seq_len"),
        ({"k_shot": 6}, "k_shot"),
        ({"k_shot": -1}, "k_shot"),
    ):
        args = {"batch_size": 2, "seq_len": 6, "k_shot": 2, **kwargs}
        with pytest.raises(ValueError, match=name):
            sinusoid_episodes(**args)


def test_sinusoid_experiment_runs_and_scores_the_zero_predictor(tmp_path):
    rows = sinusoid.main(
        [
            "--no-progress",
            "--out",
            str(tmp_path),
            "--steps",
            "2",
            "--set",
            "log_every=1",
            "--set",
            "cells=(lstm,)",
            "--set",
            "methods=(sg,)",
            "--set",
            "seeds=(0,)",
            "--set",
            "hidden=4",
            "--set",
            "seq_len=8",
            "--set",
            "shots=(2,4)",
            "--set",
            "window=4",
            "--set",
            "batch_size=4",
            "--set",
            "eval_size=16",
        ]
    )
    names = [r["model"] for r in rows]
    assert names[:2] == ["LSTM T=4 SG", "predict 0"]
    for k in (2, 4):
        b = sinusoid_episodes(16, 8, k, 777)
        assert rows[1][f"{k}-shot MSE"] == pytest.approx(np.mean((b.targets**2)[b.query]))
        assert np.isfinite(rows[0][f"{k}-shot MSE"])
    assert -1 <= rows[0]["cos(ĝ, δ)"] <= 1
    assert (tmp_path / "sinusoid.png").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text())[0]["model"] == "LSTM T=4 SG"
