"""Baseline sanity: a small attention model solves a tiny MQAR, so a broken or handicapped
attention baseline cannot ship again (Zoology, Arora et al. 2023: attention is near-perfect on
MQAR at this size); and attention in float64 is float64 throughout (a NumPy reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.common.mqar import mqar_loss_and_accuracy
from experiments.titans.common import ConvAttention
from memjax.core.testing.memory_contract import float64
from memjax.data import mqar
from memjax.models.sequence_model import SequenceModel
from memjax.nn.attention import Attention

VOCAB, LENGTH, PAIRS, STEPS = 32, 24, 4, 120


def _train(model, lr, steps):
    data_key, eval_key = jax.random.split(jax.random.key(0))
    optimizer = optax.adamw(lr, weight_decay=0.01)
    params = model.init_params(jax.random.key(1))

    @jax.jit
    def run(params):
        def step(carry, i):
            params, opt_state = carry
            batch = mqar(jax.random.fold_in(data_key, i), 32, VOCAB, LENGTH, PAIRS)
            grads = jax.grad(lambda p: mqar_loss_and_accuracy(model, p, batch)[0])(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), jnp.arange(steps))
        held_out = mqar(eval_key, 64, VOCAB, LENGTH, PAIRS)
        return mqar_loss_and_accuracy(model, params, held_out)

    return run(params)


def test_attention_with_short_conv_solves_tiny_mqar():
    model = SequenceModel(VOCAB, 32, 1, ConvAttention(32, 2))
    loss, accuracy = _train(model, 1e-2, STEPS)
    chance = 1 / (VOCAB // 2)
    assert float(accuracy) >= 0.9, (float(loss), float(accuracy), chance)


def test_attention_float64_matches_numpy():
    layer = Attention(8, 2, window=3, num_persistent=1, dtype="float64")
    with float64():
        p = layer.init_params(jax.random.key(0))
        xs = jnp.asarray(np.random.default_rng(0).standard_normal((6, 8)))
        ys, _ = layer.apply(p, layer.init_state(p), xs)
        assert ys.dtype == jnp.float64
        ys, xs = np.asarray(ys), np.asarray(xs)
    # NumPy reference: RoPE on the sequence's q and k, the persistent token always visible,
    # window 3 (a token sees itself and the 2 before it)
    w = {k: np.asarray(v) for k, v in p.items()}
    q, k, v = np.split(xs @ w["qkv"], 3, axis=-1)
    _, pk, pv = np.split(w["persistent"] @ w["qkv"], 3, axis=-1)

    def rope(x):
        x = x.reshape(6, 2, 4)
        freqs = 10000.0 ** (-np.arange(2) / 2)
        ang = np.arange(6)[:, None] * freqs[None]
        cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]
        a, b = x[..., :2], x[..., 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], -1)

    q, k, v = rope(q), rope(k), v.reshape(6, 2, 4)
    pk, pv = pk.reshape(1, 2, 4), pv.reshape(1, 2, 4)
    want = np.zeros((6, 2, 4))
    for t in range(6):
        for h in range(2):
            keys = np.concatenate([pk[:, h], k[max(0, t - 2) : t + 1, h]])
            vals = np.concatenate([pv[:, h], v[max(0, t - 2) : t + 1, h]])
            s = keys @ q[t, h] / 2.0
            e = np.exp(s - s.max())
            want[t, h] = (e / e.sum()) @ vals
    np.testing.assert_allclose(ys, want.reshape(6, 8) @ w["out"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_attention_low_precision_softmax_is_finite(dtype):
    layer = Attention(8, 2, dtype=dtype)
    p = layer.init_params(jax.random.key(0))
    ys, _ = layer.apply(p, layer.init_state(p), jnp.ones((5, 8), dtype))
    assert ys.dtype == jnp.dtype(dtype) and bool(jnp.isfinite(ys.astype(jnp.float32)).all())
