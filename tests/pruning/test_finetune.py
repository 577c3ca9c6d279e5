"""Surgery as a runner transition: train -> materialise -> fine-tune, interrupted in the middle
of fine-tuning and resumed to the same bytes."""

import dataclasses

import jax
import numpy as np
import optax
import pytest

from memjax.models.cnn import VGG
from memjax.pruning import group_scores, masks_from_scores, materialize, score_layers, trace_groups
from memjax.train import Phase, TrainConfig, train

NET = VGG(cfg=(4, "M", 6), hidden=6, num_classes=3)
CFG = TrainConfig(seed=0, steps=8, log_every=2, eval_every=0, checkpoint_every=2, max_to_keep=5)


def spec_for(params) -> VGG:
    """The spec whose widths the params have (they change at the pruning transition)."""
    widths = iter(params[f"conv{k}"]["kernel"].shape[3] for k in range(len(NET.widths)))
    cfg = tuple(c if c == "M" else next(widths) for c in NET.cfg)
    return dataclasses.replace(NET, cfg=cfg, hidden=params["linear1"]["kernel"].shape[1])


def loss_fn(params, model_state, batch, key):
    logits, new_state = spec_for(params).apply(params, model_state, batch["x"], train=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, ({}, new_state)


def get_batch(step):
    rng = np.random.default_rng([7, step])
    return {"x": rng.normal(size=(8, 8, 8, 3)).astype(np.float32), "y": rng.integers(0, 3, 8)}


def prune(state):
    """Beta-Rank-style transition: score (L1 here), group, select, materialise."""
    spec, x = spec_for(state.params), get_batch(0)["x"]
    fn = lambda p, s, x: spec.apply(p, s, x, train=False)[0]
    groups = trace_groups(fn, state.params, x, model_state=state.model_state)
    scores = score_layers(
        "l1", lambda p, x: fn(p, state.model_state, x), state.params, x, spec.conv_layers()
    )
    masks = masks_from_scores(group_scores(scores, groups), groups, ratio=0.5)
    _, params, model_state = materialize(
        spec, state.params, groups, masks, model_state=state.model_state
    )
    return state._replace(params=params, model_state=model_state)


def run(out_dir, batches=get_batch, **kwargs):
    return train(
        CFG,
        init_params=NET.init_params,
        init_model_state=lambda key: NET.init_state(),
        get_batch=batches,
        out_dir=out_dir,
        loss_fn=loss_fn,
        optimizer=optax.sgd(0.05, momentum=0.9),
        progress=False,
        phases=[Phase("dense", 4), Phase("finetune", 4, transition=prune)],
        **kwargs,
    )


def test_resume_in_the_middle_of_fine_tuning_after_surgery(tmp_path):
    full = run(tmp_path / "full")
    assert full.params["conv0"]["kernel"].shape == (3, 3, 3, 2)
    assert full.model_state["bn1"].mean.shape == (3,) and full.params["linear1"]["bias"].shape == (
        3,
    )

    def crashing(step):
        if step == 7:  # "finetune" checkpoints at 6
            raise RuntimeError("simulated preemption")
        return get_batch(step)

    with pytest.raises(RuntimeError, match="preemption"):
        run(tmp_path / "crash", batches=crashing)
    resumed = run(tmp_path / "crash", resume=True)
    for a, b in zip(
        jax.tree_util.tree_leaves((resumed.params, resumed.model_state)),
        jax.tree_util.tree_leaves((full.params, full.model_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert resumed.history == full.history
