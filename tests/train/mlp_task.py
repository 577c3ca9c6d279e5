"""A tiny 2-layer MLP regression task shared by the training-loop tests (and their subprocesses).

Importable both as ``tests.train.mlp_task``/relative and, in subprocesses, as ``mlp_task`` with
this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.train import TrainConfig

IN, HIDDEN = 4, 16
DATA_SEED = 1234


@dataclasses.dataclass(frozen=True)
class MLPConfig(TrainConfig):
    batch_size: int = 8
    hidden: int = HIDDEN
    lr: float = 1e-2
    dropout: float = 0.1


def init_params(key, hidden=HIDDEN):
    k1, k2 = jax.random.split(key)
    return {
        "l1": {"w": jax.random.normal(k1, (IN, hidden)) / np.sqrt(IN), "b": jnp.zeros(hidden)},
        "l2": {"w": jax.random.normal(k2, (hidden, 1)) / np.sqrt(hidden), "b": jnp.zeros(1)},
    }


def apply(params, x):
    h = jnp.tanh(x @ params["l1"]["w"] + params["l1"]["b"][None, :])
    return (h @ params["l2"]["w"] + params["l2"]["b"][None, :])[:, 0]


def make_loss_fn(dropout=0.1):
    def loss_fn(params, batch, key):
        h = jnp.tanh(batch["x"] @ params["l1"]["w"] + params["l1"]["b"][None, :])
        keep = jax.random.bernoulli(key, 1.0 - dropout, h.shape)  # uses the per-step key
        h = jnp.where(keep, h / (1.0 - dropout), 0.0)
        pred = (h @ params["l2"]["w"] + params["l2"]["b"][None, :])[:, 0]
        loss = jnp.mean((pred - batch["y"]) ** 2)
        return loss, {"abs_err": jnp.mean(jnp.abs(pred - batch["y"]))}

    return loss_fn


def target(x):
    return np.sin(x @ np.array([1.0, -2.0, 0.5, 1.5], np.float32)).astype(np.float32)


def make_get_batch(batch_size=8):
    def get_batch(step):
        rng = np.random.default_rng([DATA_SEED, step])  # a pure function of (seed, step)
        x = rng.normal(size=(batch_size, IN)).astype(np.float32)
        return {"x": x, "y": target(x)}

    return get_batch


_EVAL_X = np.random.default_rng(99).normal(size=(64, IN)).astype(np.float32)


@jax.jit
def eval_fn(params):
    return {"mse": jnp.mean((apply(params, _EVAL_X) - target(_EVAL_X)) ** 2)}


def task(config: MLPConfig):
    """Keyword arguments of ``memjax.train.train`` for this task (the same function objects for
    equal model settings, so the jitted step compiles once across tests)."""
    return dict(_task(config.hidden, config.dropout, config.lr, config.batch_size))


@functools.cache
def _task(hidden, dropout, lr, batch_size):
    return {
        "init_params": lambda key: init_params(key, hidden),
        "loss_fn": make_loss_fn(dropout),
        "get_batch": make_get_batch(batch_size),
        "optimizer": optax.adam(lr),
        "eval_fn": eval_fn,
    }
