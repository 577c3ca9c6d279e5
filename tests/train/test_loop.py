"""The training loop: bitwise-exact checkpoint/resume, non-finite detection, run-folder rules."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from memjax.train import Checkpointer, read_jsonl, train

from .mlp_task import MLPConfig, task

CFG = MLPConfig(steps=20, log_every=2, eval_every=5, checkpoint_every=5, max_to_keep=2)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def run(config, out_dir, **kwargs):
    kw = {**task(config), "out_dir": out_dir, "progress": False, **kwargs}
    with jax.numpy_rank_promotion("raise"):
        return train(config, **kw)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return run(CFG, out)


def test_full_run_outputs(full_run):
    out = full_run.out_dir
    records = read_jsonl(out / "metrics.jsonl")
    assert records == full_run.history
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    eval_steps = [r["step"] for r in records if r["split"] == "eval"]
    assert train_steps == list(range(2, 21, 2))
    assert eval_steps == [5, 10, 15, 20]
    assert all(
        isinstance(r["loss"], float) and isinstance(r["abs_err"], float)
        for r in records
        if r["split"] == "train"
    )
    mse = [r["mse"] for r in records if r["split"] == "eval"]
    assert mse[-1] < mse[0]  # it learns
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["steps"] == 20 and cfg["config"]["lr"] == CFG.lr
    with Checkpointer(out / "checkpoints") as ckpt:
        assert ckpt.all_steps() == [15, 20]  # max_to_keep=2
    assert full_run.step == 20


def test_resume_after_shorter_run_is_bitwise_exact(full_run, tmp_path):
    first = run(MLPConfig(**{**CFG.__dict__, "steps": 12}), tmp_path)
    assert first.step == 12
    assert [r["step"] for r in first.history if r["split"] == "eval"] == [5, 10, 12]
    resumed = run(CFG, tmp_path, resume=True)
    assert_trees_equal(resumed.params, full_run.params)
    assert_trees_equal(resumed.opt_state, full_run.opt_state)
    assert (tmp_path / "metrics.jsonl").read_bytes() == (
        full_run.out_dir / "metrics.jsonl"
    ).read_bytes()
    assert resumed.history == full_run.history


def test_resume_after_crash_is_bitwise_exact(full_run, tmp_path):
    t = task(CFG)
    good_batch = t["get_batch"]

    def crashing_batch(step):
        if step == 13:
            raise RuntimeError("simulated preemption")
        return good_batch(step)

    with pytest.raises(RuntimeError, match="preemption"):
        run(CFG, tmp_path, get_batch=crashing_batch)
    # lines for steps 11..13 were written before the crash; the latest checkpoint is step 10
    assert max(r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")) == 12
    resumed = run(CFG, tmp_path, resume=True)
    assert_trees_equal(resumed.params, full_run.params)
    assert_trees_equal(resumed.opt_state, full_run.opt_state)
    assert (tmp_path / "metrics.jsonl").read_bytes() == (
        full_run.out_dir / "metrics.jsonl"
    ).read_bytes()


def test_complete_run_returns_at_once(full_run, tmp_path):
    def no_batches(step):
        raise AssertionError("a complete run must not train")

    again = run(CFG, full_run.out_dir, resume=True, get_batch=no_batches)
    assert again.step == 20
    assert_trees_equal(again.params, full_run.params)
    assert_trees_equal(again.opt_state, full_run.opt_state)
    assert again.history == full_run.history


def test_existing_run_folder_needs_resume_or_overwrite(full_run, tmp_path):
    cfg = MLPConfig(**{**CFG.__dict__, "steps": 4, "checkpoint_every": 2})
    run(cfg, tmp_path)
    with pytest.raises(FileExistsError, match="resume"):
        run(cfg, tmp_path)
    again = run(cfg, tmp_path, overwrite=True)
    assert [r["step"] for r in again.history if r["split"] == "train"] == [2, 4]


def test_non_finite_loss_raises_naming_the_step(tmp_path):
    cfg = MLPConfig(steps=20, log_every=5, eval_every=0, checkpoint_every=5)
    good_batch = task(cfg)["get_batch"]

    def nan_batch(step):
        batch = good_batch(step)
        if step == 6:  # the 7th update sees a NaN input
            batch["x"][0, 0] = np.nan
        return batch

    with pytest.raises(FloatingPointError, match=r"at step 7\b"):
        run(cfg, tmp_path, get_batch=nan_batch)
    # nothing at or after the bad step was logged or checkpointed
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [5]
    with Checkpointer(tmp_path / "checkpoints") as ckpt:
        assert ckpt.all_steps() == [5]
    resumed_like = run(MLPConfig(**{**cfg.__dict__, "steps": 5}), tmp_path, resume=True)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(resumed_like.params))


def test_data_parallel_in_process_matches_single_device(tmp_path):
    """Works with whatever device count this process has (1, or 8 under the suite's flag)."""
    cfg = MLPConfig(steps=6, log_every=1, checkpoint_every=3)
    single = run(cfg, tmp_path / "single")
    dp = run(cfg, tmp_path / "dp", data_parallel=True)
    a = [r["loss"] for r in single.history if r["split"] == "train"]
    b = [r["loss"] for r in dp.history if r["split"] == "train"]
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    leaf = jax.tree.leaves(dp.params)[0]
    assert len(leaf.sharding.device_set) == jax.device_count()


def test_loss_without_aux_and_missing_config_field(tmp_path):
    cfg = MLPConfig(steps=2, log_every=1, checkpoint_every=2, dropout=0.0)
    t = task(cfg)
    plain_loss = lambda p, b, k: t["loss_fn"](p, b, k)[0]
    result = run(cfg, tmp_path, loss_fn=plain_loss)
    assert set(result.history[0]) == {"step", "split", "loss"}

    class NoSteps:
        seed = 0

    with pytest.raises(TypeError, match="'steps'"):
        train(NoSteps(), **task(cfg), out_dir=tmp_path / "x")
