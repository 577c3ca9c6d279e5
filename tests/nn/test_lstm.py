"""LSTMCell against a NumPy LSTM cell (fused i, f, g, o kernel), in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core.testing import float64
from memjax.nn.channels import check_channel_axes
from memjax.nn.lstm import LSTMCarry, LSTMCell


def numpy_lstm_step(w_x, w_h, b, h, c, x):
    """Textbook LSTM step with fused kernels ``(d_in, 4 d_h)``, gate blocks i, f, g, o."""

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    z = x @ w_x + h @ w_h + b
    zi, zf, zg, zo = np.split(z, 4)
    c_new = sigmoid(zf) * c + sigmoid(zi) * np.tanh(zg)
    h_new = sigmoid(zo) * np.tanh(c_new)
    return h_new, c_new


def fused(params, cell):
    d_in, d_h = cell.d_input, cell.d_hidden
    w_x = np.asarray(params["w_x"]).reshape(d_in, 4 * d_h)
    w_h = np.asarray(params["w_h"]).reshape(d_h, 4 * d_h)
    return w_x, w_h, np.asarray(params["bias"]).reshape(4 * d_h)


def test_matches_numpy_cell_over_a_sequence():
    with float64():
        cell = LSTMCell(d_input=3, d_hidden=4, dtype="float64")
        params = cell.init_params(jax.random.key(0))
        # non-zero biases in every gate, so each gate's block is exercised
        params["bias"] = params["bias"] + 0.3 * jax.random.normal(jax.random.key(1), (4, 4))
        xs = jax.random.normal(jax.random.key(2), (7, 3), jnp.float64)
        carry = cell.init_carry(params)
        w_x, w_h, b = fused(params, cell)
        h, c = np.zeros(4), np.zeros(4)
        step = jax.jit(cell.step)
        for x in xs:
            y, carry = step(params, carry, x)
            h, c = numpy_lstm_step(w_x, w_h, b, h, c, np.asarray(x))
            np.testing.assert_allclose(np.asarray(y), h, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(np.asarray(carry.c), c, rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(np.asarray(carry.h), np.asarray(y))


def test_init_forget_bias_and_carry():
    cell = LSTMCell(d_input=2, d_hidden=3, forget_bias=2.5)
    params = cell.init_params(jax.random.key(0))
    expected = np.zeros((4, 3), np.float32)
    expected[1] = 2.5
    np.testing.assert_array_equal(np.asarray(params["bias"]), expected)
    bound = 1 / np.sqrt(3)
    assert float(jnp.max(jnp.abs(params["w_h"]))) <= bound
    carry = cell.init_carry(params)
    assert isinstance(carry, LSTMCarry)
    assert carry.h.shape == carry.c.shape == (3,) and not np.any(np.asarray(carry.c))


def test_vmap_equals_stacked_calls_and_controls_ignored():
    cell = LSTMCell(d_input=3, d_hidden=2)
    params = cell.init_params(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (5, 3))
    carries = jax.vmap(lambda _: cell.init_carry(params))(jnp.arange(5))
    ys, _ = jax.vmap(cell.step, in_axes=(None, 0, 0))(params, carries, xs)
    for n in range(5):
        y, _ = cell.step(params, cell.init_carry(params), xs[n], theta=0.1)
        np.testing.assert_allclose(np.asarray(ys[n]), np.asarray(y), rtol=1e-6, atol=1e-6)


def test_gradient_matches_finite_differences():
    with float64():
        cell = LSTMCell(d_input=2, d_hidden=3, dtype="float64")
        params = cell.init_params(jax.random.key(0))
        xs = jax.random.normal(jax.random.key(1), (4, 2), jnp.float64)

        def loss(p):
            carry = cell.init_carry(p)
            total = 0.0
            for x in xs:
                y, carry = cell.step(p, carry, x)
                total = total + jnp.sum(y**2)
            return total

        loss = jax.jit(loss)
        grads = jax.grad(loss)(params)
        direction = jax.tree.map(lambda a: jax.random.normal(jax.random.key(3), a.shape), params)
        eps = 1e-6
        plus = jax.tree.map(lambda a, d: a + eps * d, params, direction)
        minus = jax.tree.map(lambda a, d: a - eps * d, params, direction)
        fd = (loss(plus) - loss(minus)) / (2 * eps)
        analytic = sum(
            jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction))
        )
        np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-7)


def test_channel_axes_fit_params():
    cell = LSTMCell(d_input=3, d_hidden=5)
    check_channel_axes(cell.channel_axes(), cell.init_params(jax.random.key(0)))


def test_bad_input_names_the_argument():
    cell = LSTMCell(d_input=3, d_hidden=2)
    params = cell.init_params(jax.random.key(0))
    with pytest.raises(ValueError, match="x: expected shape"):
        cell.step(params, cell.init_carry(params), jnp.ones(4))
    with pytest.raises(ValueError, match=r"carry\.c"):
        cell.step(params, LSTMCarry(jnp.zeros(2), jnp.zeros(3)), jnp.ones(3))
    with pytest.raises(ValueError, match="unknown control 'thetta'"):
        cell.step(params, cell.init_carry(params), jnp.ones(3), thetta=0.1)
    with pytest.raises(ValueError, match="d_hidden"):
        LSTMCell(d_input=3, d_hidden=0)
    with pytest.raises(TypeError, match="forget_bias"):
        LSTMCell(d_input=3, d_hidden=2, forget_bias="1")
