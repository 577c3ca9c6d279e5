"""MLP against a NumPy forward pass; CausalConv1D against a NumPy causal convolution."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core.testing import float64
from memjax.nn.conv1d import CausalConv1D
from memjax.nn.mlp import MLP


@pytest.mark.parametrize("activate_final", [False, True])
def test_mlp_matches_numpy(activate_final):
    with float64():
        mlp = MLP((3, 6, 4, 2), activation="gelu", activate_final=activate_final, dtype="float64")
        params = mlp.init_params(jax.random.key(0))
        params = tuple(
            {**p, "bias": p["bias"] + 0.1 * (n + 1)} for n, p in enumerate(params)
        )  # non-zero biases
        x = np.random.default_rng(0).normal(size=(5, 3))

        def gelu(z):
            return 0.5 * z * (1 + np.vectorize(math.erf)(z / np.sqrt(2)))

        h = x
        for n, p in enumerate(params):
            h = h @ np.asarray(p["kernel"]) + np.asarray(p["bias"])
            if n < 2 or activate_final:
                h = gelu(h)
        np.testing.assert_allclose(np.asarray(mlp(params, jnp.asarray(x))), h, rtol=1e-12)


def test_mlp_bad_arguments():
    with pytest.raises(ValueError, match="widths"):
        MLP((4,))
    with pytest.raises(ValueError, match="widths"):
        MLP([4, 2])
    with pytest.raises(ValueError, match="activation"):
        MLP((4, 2), activation="swish")
    mlp = MLP((4, 3, 2))
    with pytest.raises(ValueError, match="params"):
        mlp(mlp.init_params(jax.random.key(0))[:1], jnp.ones(4))
    assert all(
        "bias" not in p for p in MLP((4, 3, 2), use_bias=False).init_params(jax.random.key(0))
    )


def test_causal_conv1d_matches_numpy_and_streams():
    with float64():
        conv = CausalConv1D(channels=3, width=4, dtype="float64")
        params = conv.init_params(jax.random.key(0))
        w = np.asarray(params["weights"])
        xs = np.random.default_rng(1).normal(size=(9, 3))
        padded = np.concatenate([np.zeros((3, 3)), xs])
        expected = np.stack([(w * padded[t : t + 4]).sum(0) for t in range(9)])
        ys, state = conv.apply(params, conv.init_state(params), jnp.asarray(xs))
        np.testing.assert_allclose(np.asarray(ys), expected, rtol=1e-12)
        np.testing.assert_array_equal(np.asarray(state.tail), xs[-3:])
        y1, s1 = conv.apply(params, conv.init_state(params), jnp.asarray(xs[:5]))
        y2, _ = conv.apply(params, s1, jnp.asarray(xs[5:]))
        np.testing.assert_allclose(np.concatenate([y1, y2]), expected, rtol=1e-12)
        with pytest.raises(ValueError, match="unknown control"):
            conv.apply(params, state, jnp.asarray(xs), eta_=0.5)
        with pytest.raises(ValueError, match="xs: expected shape"):
            conv.apply(params, state, jnp.ones((4, 2)))
