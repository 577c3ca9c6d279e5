"""Three phases (dense -> shrink the hidden layer -> fine-tune with a fixed mask), interrupted in
the middle of the phase after the shape change and resumed to the same bytes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memjax.train import Checkpointer, Phase, read_jsonl, train

from .mlp_task import HIDDEN, MLPConfig, task

CFG = MLPConfig(steps=999, log_every=2, eval_every=4, checkpoint_every=4, max_to_keep=2)
KEEP = HIDDEN // 2


def shrink(state):
    """Physical pruning: keep the KEEP hidden units with the largest outgoing weights."""
    p = state.params
    keep = jnp.sort(jnp.argsort(-jnp.abs(p["l2"]["w"][:, 0]))[:KEEP])
    params = {
        "l1": {"w": p["l1"]["w"][:, keep], "b": p["l1"]["b"][keep]},
        "l2": {"w": p["l2"]["w"][keep], "b": p["l2"]["b"]},
    }
    return state._replace(params=params)


def fix_mask(state):
    """Keep the larger half of the first layer's weights; the mask lives in model_state."""
    w = state.params["l1"]["w"]
    mask = jnp.abs(w) >= jnp.median(jnp.abs(w))
    return state._replace(model_state={"mask": mask}, params=apply_mask_to(state.params, mask))


def apply_mask_to(params, mask):
    return {**params, "l1": {**params["l1"], "w": jnp.where(mask, params["l1"]["w"], 0.0)}}


def reapply_mask(state):
    return state._replace(params=apply_mask_to(state.params, state.model_state["mask"]))


def width_metrics(state):
    w = state.params["l1"]["w"]
    return {"hidden": w.shape[1], "nonzero": jnp.count_nonzero(w)}


SHRINK_OPT = optax.adam(5e-3)


def phases(shrink_steps=7):
    return [
        Phase("dense", 6),
        Phase("shrink", shrink_steps, transition=shrink, optimizer=SHRINK_OPT),
        Phase("finetune", 5, transition=fix_mask, hooks=(reapply_mask,)),
    ]


def run(out_dir, plan=None, **kwargs):
    kw = {
        **task(CFG),
        "out_dir": out_dir,
        "progress": False,
        "metrics_fn": width_metrics,
        "phases": phases() if plan is None else plan,
        **kwargs,
    }
    return train(CFG, **kw)


def recording():
    """``(get_batch, calls)``: the task's batches, remembering which steps were asked for."""
    good, calls = task(CFG)["get_batch"], []

    def get_batch(step):
        calls.append(step)
        return good(step)

    return get_batch, calls


def leaves(tree):
    return [
        np.asarray(
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        )
        for x in jax.tree.leaves(tree)
    ]


def assert_same_state(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(leaves(a), leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    return run(tmp_path_factory.mktemp("phases_full"))


def test_three_phases_change_shapes_and_log_by_phase(full_run):
    out, state = full_run.out_dir, full_run.state
    assert full_run.step == 18 and int(state.step) == 18
    assert state.params["l1"]["w"].shape == (4, KEEP) and state.params["l2"]["w"].shape == (KEEP, 1)
    mask = np.asarray(state.model_state["mask"])
    w = np.asarray(state.params["l1"]["w"])
    assert mask.sum() == 2 * KEEP and np.all(w[~mask] == 0.0) and np.all(w[mask] != 0.0)
    mu = state.opt_state[0].mu  # re-initialised for the new shapes, then trained
    assert mu["l1"]["w"].shape == (4, KEEP) and int(state.opt_state[0].count) == 5
    train_recs = [r for r in full_run.history if r["split"] == "train"]
    assert [(r["step"], r["phase"]) for r in train_recs] == [
        (2, "dense"),
        (4, "dense"),
        (6, "dense"),
        (8, "shrink"),
        (10, "shrink"),
        (12, "shrink"),
        (13, "shrink"),
        (14, "finetune"),
        (16, "finetune"),
        (18, "finetune"),
    ]
    assert [r["hidden"] for r in train_recs] == [16.0] * 3 + [8.0] * 7
    assert [r["nonzero"] for r in train_recs] == [64.0] * 3 + [32.0] * 4 + [16.0] * 3
    eval_steps = [r["step"] for r in full_run.history if r["split"] == "eval"]
    assert eval_steps == [4, 6, 8, 12, 13, 16, 18]  # every 4 steps and at every phase end
    assert read_jsonl(out / "metrics.jsonl") == full_run.history
    for name, steps in (("dense", [4, 6]), ("shrink", [12, 13]), ("finetune", [16, 18])):
        with Checkpointer(out / "checkpoints" / name) as ckpt:
            assert ckpt.all_steps() == steps


def test_crash_after_shape_change_resumes_bytewise(full_run, tmp_path):
    good = task(CFG)["get_batch"]

    def crashing(step):
        if step == 10:  # phase "shrink": its last checkpoint is step 8
            raise RuntimeError("simulated preemption")
        return good(step)

    with pytest.raises(RuntimeError, match="preemption"):
        run(tmp_path, get_batch=crashing)
    with pytest.raises(FileExistsError, match="phase 'shrink'"):
        run(tmp_path)
    get_batch, calls = recording()
    resumed = run(tmp_path, resume=True, get_batch=get_batch)
    assert calls == list(range(8, 18))  # from the step-8 checkpoint of "shrink"
    assert_same_state(resumed.state, full_run.state)
    assert (tmp_path / "metrics.jsonl").read_bytes() == (
        full_run.out_dir / "metrics.jsonl"
    ).read_bytes()
    assert resumed.history == full_run.history


def test_shorter_run_then_resume_bytewise(full_run, tmp_path):
    first = run(tmp_path, plan=phases(shrink_steps=3)[:2])  # stops at step 9, mid "shrink"
    assert first.step == 9 and first.params["l1"]["w"].shape == (4, KEEP)
    get_batch, calls = recording()
    resumed = run(tmp_path, resume=True, get_batch=get_batch)
    assert calls == list(range(9, 18))
    assert_same_state(resumed.state, full_run.state)
    assert (tmp_path / "metrics.jsonl").read_bytes() == (
        full_run.out_dir / "metrics.jsonl"
    ).read_bytes()


def test_complete_run_restores_across_shape_changes(full_run):
    def no_batches(step):
        raise AssertionError("a complete run must not train")

    again = run(full_run.out_dir, resume=True, get_batch=no_batches)
    assert_same_state(again.state, full_run.state)
    assert again.history == full_run.history


def test_zero_step_phase_and_plan_errors(tmp_path):
    cfg = MLPConfig(steps=0, log_every=2, checkpoint_every=4)
    t = task(cfg)
    plan = [Phase("dense", 3), Phase("prune", 0, transition=shrink)]
    result = train(cfg, **t, out_dir=tmp_path, phases=plan, progress=False)
    assert result.params["l1"]["w"].shape == (4, KEEP) and result.step == 3
    with Checkpointer(tmp_path / "checkpoints" / "prune") as ckpt:
        assert ckpt.all_steps() == [3]
    again = train(cfg, **t, out_dir=tmp_path, phases=plan, progress=False, resume=True)
    assert_same_state(again.state, result.state)
    with pytest.raises(ValueError, match="the phases changed"):
        train(
            cfg,
            **t,
            out_dir=tmp_path,
            progress=False,
            resume=True,
            phases=[Phase("dense", 2), Phase("prune", 0, transition=shrink)],
        )
    with pytest.raises(ValueError, match="unique"):
        train(cfg, **t, out_dir=tmp_path / "x", phases=[Phase("a", 1), Phase("a", 1)])
    with pytest.raises(ValueError, match="name"):
        Phase("12", 3)
    with pytest.raises(ValueError, match="steps"):
        Phase("a", -1)
