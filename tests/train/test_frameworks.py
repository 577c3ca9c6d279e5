"""The loop trains any parameter pytree: Flax NNX split state (with resume) and Equinox arrays."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from memjax.train import TrainConfig, train


def get_batch(step):
    x = np.random.default_rng(step).normal(size=(8, 3)).astype(np.float32)
    return {"x": x, "y": x.sum(1, keepdims=True)}


def test_nnx_state_trains_and_resumes(tmp_path):
    graphdef = nnx.graphdef(nnx.Linear(3, 1, rngs=nnx.Rngs(0)))

    def init(key):
        return nnx.state(nnx.Linear(3, 1, rngs=nnx.Rngs(params=key)))

    def loss_fn(state, batch, key):
        return jnp.mean((nnx.merge(graphdef, state)(batch["x"]) - batch["y"]) ** 2)

    kw = {
        "init_params": init,
        "loss_fn": loss_fn,
        "get_batch": get_batch,
        "optimizer": optax.adam(0.1),
        "out_dir": tmp_path,
        "progress": False,
    }
    train(TrainConfig(steps=2, log_every=1, checkpoint_every=2), **kw)
    result = train(TrainConfig(steps=4, log_every=1, checkpoint_every=2), resume=True, **kw)
    assert isinstance(result.params, nnx.State) and result.step == 4
    assert [r["step"] for r in result.history] == [1, 2, 3, 4]


def test_equinox_partitioned_model_trains(tmp_path):
    static = eqx.partition(eqx.nn.MLP(3, 1, 8, 1, key=jax.random.key(0)), eqx.is_array)[1]

    def init(key):
        return eqx.partition(eqx.nn.MLP(3, 1, 8, 1, key=key), eqx.is_array)[0]

    def loss_fn(params, batch, key):
        model = eqx.combine(params, static)
        return jnp.mean((jax.vmap(model)(batch["x"]) - batch["y"]) ** 2)

    result = train(
        TrainConfig(steps=3, log_every=1, checkpoint_every=3),
        init_params=init,
        loss_fn=loss_fn,
        get_batch=get_batch,
        optimizer=optax.adam(0.05),
        out_dir=tmp_path,
        progress=False,
    )
    assert isinstance(result.params, eqx.nn.MLP)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
