"""RMSNorm, LayerNorm and BatchNorm against their textbook formulas in NumPy (float64)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core.testing import float64
from memjax.nn.batchnorm import BatchNorm, BatchNormState
from memjax.nn.norms import LayerNorm, RMSNorm, l2_normalize, rms_norm

RNG = np.random.default_rng(0)


def test_rms_and_layer_norm_specs_match_numpy():
    with float64():
        x = RNG.normal(size=(3, 4, 6)) * 2 + 1
        scale, bias = RNG.normal(size=6), RNG.normal(size=6)
        rms = RMSNorm(6, eps=1e-3, dtype="float64")
        expected = x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-3) * scale
        y = rms(dict(scale=jnp.asarray(scale)), jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-12)
        ln = LayerNorm(6, eps=1e-3, dtype="float64")
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        expected = (x - mu) / np.sqrt(var + 1e-3) * scale + bias
        y = ln(dict(scale=jnp.asarray(scale), bias=jnp.asarray(bias)), jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-12)
        assert set(ln.init_params(jax.random.key(0))) == {"scale", "bias"}
        assert LayerNorm(6, use_bias=False, use_scale=False).init_params(None) == {}
        assert RMSNorm(6, use_scale=False).init_params(None) == {}


def test_rounding_forms_same_value():
    x = jnp.asarray(RNG.normal(size=(5, 16)), jnp.float32)
    np.testing.assert_array_equal(
        np.asarray(rms_norm(x, jnp.ones(16), x_times_x=True)), np.asarray(rms_norm(x, jnp.ones(16)))
    )
    np.testing.assert_allclose(
        np.asarray(l2_normalize(x, divide=True)), np.asarray(l2_normalize(x)), rtol=1e-6
    )
    expected = np.asarray(x) / np.sqrt(np.sum(np.asarray(x) ** 2, -1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(l2_normalize(x, divide=True)), expected, rtol=1e-6)


def textbook_batchnorm_train(x, gamma, beta, run_mean, run_var, rho, eps):
    axes = tuple(range(x.ndim - 1))
    m = np.prod(x.shape[:-1])
    mu = x.mean(axis=axes)
    var = ((x - mu) ** 2).mean(axis=axes)
    y = gamma * (x - mu) / np.sqrt(var + eps) + beta
    return y, rho * run_mean + (1 - rho) * mu, rho * run_var + (1 - rho) * var * m / (m - 1)


def test_batchnorm_train_and_eval_match_textbook():
    with float64():
        bn = BatchNorm(3, momentum=0.8, eps=1e-3, dtype="float64")
        gamma, beta = RNG.normal(size=3), RNG.normal(size=3)
        params = {"scale": jnp.asarray(gamma), "bias": jnp.asarray(beta)}
        state = bn.init_state()
        run_mean, run_var = np.zeros(3), np.ones(3)
        train = jax.jit(partial(bn.apply, train=True))
        for step in range(3):
            x = RNG.normal(size=(4, 5, 2, 3)) * [1.0, 2.0, 0.5] + step
            y, state = train(params, state, jnp.asarray(x))
            expected, run_mean, run_var = textbook_batchnorm_train(
                x, gamma, beta, run_mean, run_var, 0.8, 1e-3
            )
            np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(np.asarray(state.mean), run_mean, rtol=1e-12)
            np.testing.assert_allclose(np.asarray(state.var), run_var, rtol=1e-12)
        x = RNG.normal(size=(2, 3))
        y, same = bn.apply(params, state, jnp.asarray(x), train=False)
        expected = gamma * (x - run_mean) / np.sqrt(run_var + 1e-3) + beta
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-12)
        assert same is state


def test_batchnorm_biased_running_var_and_no_grad_into_state():
    with float64():
        bn = BatchNorm(2, momentum=0.5, unbiased_running_var=False, dtype="float64")
        x = jnp.asarray(RNG.normal(size=(6, 2)))
        params = bn.init_params(None)
        _, state = bn.apply(params, bn.init_state(), x, train=True)
        np.testing.assert_allclose(
            np.asarray(state.var), 0.5 + 0.5 * np.asarray(x).var(axis=0), rtol=1e-12
        )

        def running_mean_sum(x):
            return jnp.sum(bn.apply(params, bn.init_state(), x, train=True)[1].mean)

        assert not np.any(np.asarray(jax.grad(running_mean_sum)(x)))


def test_batchnorm_axis_name_equals_whole_batch():
    bn = BatchNorm(3)
    sharded = BatchNorm(3, axis_name="batch")
    params = bn.init_params(None)
    x = jnp.asarray(RNG.normal(size=(4, 6, 3)), jnp.float32)  # 4 shards of 6
    y_full, s_full = bn.apply(params, bn.init_state(), x.reshape(24, 3), train=True)
    y, s = jax.vmap(
        lambda xs: sharded.apply(params, sharded.init_state(), xs, train=True), axis_name="batch"
    )(x)
    np.testing.assert_allclose(np.asarray(y).reshape(24, 3), np.asarray(y_full), atol=1e-5)
    for a, b in zip(s, s_full):
        np.testing.assert_allclose(np.asarray(a), np.broadcast_to(np.asarray(b), (4, 3)), rtol=1e-5)


def test_batchnorm_bad_input():
    bn = BatchNorm(3)
    params, state = bn.init_params(None), bn.init_state()
    with pytest.raises(TypeError, match="train"):
        bn.apply(params, state, jnp.ones((2, 3)), train=jnp.array(True))
    with pytest.raises(ValueError, match="x: expected shape"):
        bn.apply(params, state, jnp.ones((2, 4)), train=True)
    with pytest.raises(ValueError, match="more than one value"):
        bn.apply(params, state, jnp.ones((1, 3)), train=True)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(3, momentum=1.0)
    with pytest.raises(ValueError, match=r"state\.var"):
        bn.apply(params, BatchNormState(jnp.zeros(3), jnp.ones(2)), jnp.ones((2, 3)), train=False)
