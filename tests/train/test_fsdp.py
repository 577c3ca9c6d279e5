"""FSDP on 8 forced CPU host devices (tests/conftest.py): a ("data", "model") = (2, 4) mesh with
every state array sharded over "model" along its largest divisible axis gives the losses of one
device, and resumes exactly."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from memjax.train import fsdp_mesh, fsdp_spec, parse_args, state_shardings, train

from .mlp_task import MLPConfig, task

CFG = MLPConfig(steps=8, log_every=1, eval_every=4, checkpoint_every=4)


def run(config, out_dir, **kwargs):
    return train(config, **task(config), out_dir=out_dir, progress=False, **kwargs)


def split(result, name):
    return [r[name] for r in result.history if name in r]


def test_fsdp_spec_rule():
    assert fsdp_spec((4, 16), 4) == P(None, "model")  # the largest divisible axis
    assert fsdp_spec((16, 16), 4) == P("model")  # the first of equal ones
    assert fsdp_spec((6, 5), 4) == P()  # nothing divides: replicated
    assert fsdp_spec((), 4) == P() and fsdp_spec((8,), 1) == P()
    with pytest.raises(ValueError, match="divisor"):
        fsdp_mesh(3)
    run_args = parse_args(MLPConfig, {"cpu": {}}, ["--fsdp", "4"], experiment="demo")
    assert run_args.fsdp == 4 and run_args.train_kwargs()["fsdp"] == 4


def test_fsdp_matches_one_device_and_resumes(tmp_path):
    assert jax.device_count() == 8, "tests/conftest.py forces 8 host devices"
    single = run(CFG, tmp_path / "single")
    sharded = run(CFG, tmp_path / "fsdp", fsdp=4)
    np.testing.assert_allclose(split(sharded, "loss"), split(single, "loss"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split(sharded, "mse"), split(single, "mse"), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)

    params, mu = sharded.params, sharded.opt_state[0].mu
    assert params["l1"]["w"].sharding.spec == P(None, "model")  # (4, 16): axis 1
    assert params["l1"]["b"].sharding.spec == P("model")
    assert params["l2"]["w"].sharding.spec == P("model")  # (16, 1): axis 0
    assert params["l2"]["b"].sharding.spec == P()  # (1,): replicated
    assert mu["l1"]["w"].sharding.spec == P(None, "model")  # Adam moments sharded alike
    assert len(params["l1"]["w"].addressable_shards) == 8
    assert params["l1"]["w"].addressable_shards[0].data.shape == (4, 4)  # 1/4 on each device
    assert sharded.state.key.sharding.spec == P()
    mesh = params["l1"]["w"].sharding.mesh
    assert dict(mesh.shape) == {"data": 2, "model": 4}
    assert jax.tree.leaves(state_shardings(sharded.params, mesh)) == [
        x.sharding for x in jax.tree.leaves(sharded.params)
    ]

    # interrupted after 5 steps, resumed from the step-4 checkpoint: the same bits
    run(MLPConfig(**{**CFG.__dict__, "steps": 5}), tmp_path / "resumed", fsdp=4)
    resumed = run(CFG, tmp_path / "resumed", fsdp=4, resume=True)
    assert resumed.params["l1"]["w"].sharding.spec == P(None, "model")
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(sharded.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert split(resumed, "loss") == split(sharded, "loss")
