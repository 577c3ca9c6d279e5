"""Dense and Conv2D against NumPy: a matmul, and a loop convolution written out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core.testing import float64
from memjax.nn.conv2d import Conv2D
from memjax.nn.dense import Dense


def test_dense_matches_numpy_over_leading_axes():
    with float64():
        layer = Dense(4, 3, dtype="float64")
        params = layer.init_params(jax.random.key(0))
        params["bias"] = jnp.array([0.5, -1.0, 2.0])
        x = np.random.default_rng(0).normal(size=(2, 5, 4))
        bias = np.array([0.5, -1.0, 2.0])
        expected = np.einsum("abi,io->abo", x, np.asarray(params["kernel"])) + bias
        np.testing.assert_allclose(np.asarray(layer(params, jnp.asarray(x))), expected, rtol=1e-12)
        np.testing.assert_allclose(
            np.asarray(layer.apply(params, jnp.asarray(x[0, 0]))), expected[0, 0], rtol=1e-12
        )


def test_dense_inits():
    for init, check in [
        ("zeros", lambda k: not np.any(k)),
        ("torch", lambda k: np.abs(k).max() <= 1 / np.sqrt(400)),
        ("glorot_uniform", lambda k: np.abs(k).max() <= np.sqrt(6 / 700)),
        ("lecun_normal", lambda k: abs(k.std() * np.sqrt(400) - 1) < 0.05),
        ("he_normal", lambda k: abs(k.std() * np.sqrt(200) - 1) < 0.05),
    ]:
        params = Dense(400, 300, init=init).init_params(jax.random.key(1))
        assert check(np.asarray(params["kernel"])), init
    params = Dense(400, 300, init="torch").init_params(jax.random.key(1))
    bias = np.asarray(params["bias"])
    assert np.abs(bias).max() <= 1 / np.sqrt(400) and np.any(bias)
    assert "bias" not in Dense(4, 3, use_bias=False).init_params(jax.random.key(0))


def test_dense_bad_input():
    layer = Dense(4, 3)
    params = layer.init_params(jax.random.key(0))
    with pytest.raises(ValueError, match="x: expected shape"):
        layer(params, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="init: expected one of"):
        Dense(4, 3, init="normal")
    with pytest.raises(ValueError, match="d_out"):
        Dense(4, 0)


def numpy_conv2d(x, kernel, bias, stride, padding, dilation, groups):
    """Loop convolution: NHWC input, HWIO kernel, explicit ((lo, hi), (lo, hi)) zero padding."""
    (lo_h, hi_h), (lo_w, hi_w) = padding
    x = np.pad(x, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
    n, h, w, _ = x.shape
    kh, kw, c_group, c_out = kernel.shape
    (sh, sw), (dh, dw) = stride, dilation
    out_h = (h - dh * (kh - 1) - 1) // sh + 1
    out_w = (w - dw * (kw - 1) - 1) // sw + 1
    per_group = c_out // groups
    y = np.zeros((n, out_h, out_w, c_out))
    for b in range(n):
        for i in range(out_h):
            for j in range(out_w):
                for o in range(c_out):
                    g = o // per_group
                    total = bias[o]
                    for u in range(kh):
                        for v in range(kw):
                            for c in range(c_group):
                                total += (
                                    kernel[u, v, c, o]
                                    * x[b, sh * i + dh * u, sw * j + dw * v, g * c_group + c]
                                )
                    y[b, i, j, o] = total
    return y


CASES = [
    dict(kernel_size=3, stride=1, padding=1, dilation=1, groups=1),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=((0, 1), (2, 0)), dilation=1, groups=1),
    dict(kernel_size=2, stride=1, padding="VALID", dilation=(2, 1), groups=2),
    dict(kernel_size=3, stride=2, padding=(1, 0), dilation=1, groups=4),
]


@pytest.mark.parametrize("case", CASES)
def test_conv2d_matches_numpy_loop_and_lax(case):
    with float64():
        conv = Conv2D(4, 8, dtype="float64", **case)
        params = conv.init_params(jax.random.key(0))
        params["bias"] = jnp.linspace(-1.0, 1.0, 8)
        x = np.random.default_rng(1).normal(size=(2, 6, 5, 4))
        y = np.asarray(jax.jit(conv.apply)(params, jnp.asarray(x)))
        pad = conv.padding_pairs
        pad = ((0, 0), (0, 0)) if pad == "VALID" else pad
        expected = numpy_conv2d(
            x,
            np.asarray(params["kernel"]),
            np.asarray(params["bias"]),
            conv.stride if isinstance(conv.stride, tuple) else (conv.stride,) * 2,
            pad,
            conv.dilation if isinstance(conv.dilation, tuple) else (conv.dilation,) * 2,
            conv.groups,
        )
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_conv2d_same_padding_matches_lax_with_the_tf_split():
    """SAME pads ``total = max((ceil(H/s) - 1) s + k - H, 0)`` with the odd row at the high end."""
    with float64():
        conv = Conv2D(2, 3, 4, stride=3, padding="SAME", use_bias=False, dtype="float64")
        params = conv.init_params(jax.random.key(0))
        x = np.random.default_rng(2).normal(size=(1, 7, 8, 2))
        pads = []
        for size in (7, 8):
            total = max((-(-size // 3) - 1) * 3 + 4 - size, 0)
            pads.append((total // 2, total - total // 2))
        expected = numpy_conv2d(
            x, np.asarray(params["kernel"]), np.zeros(3), (3, 3), pads, (1, 1), 1
        )
        y = np.asarray(conv(params, jnp.asarray(x)))
        assert y.shape == (1, 3, 3, 3)
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
        direct = jax.lax.conv_general_dilated(
            jnp.asarray(x), params["kernel"], (3, 3), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )  # fmt: skip
        np.testing.assert_array_equal(y, np.asarray(direct))


def test_conv2d_torch_init_bounds():
    conv = Conv2D(6, 4, kernel_size=3, groups=2, init="torch")
    params = conv.init_params(jax.random.key(0))
    bound = 1 / np.sqrt(3 * 3 * 3)
    assert params["kernel"].shape == (3, 3, 3, 4)
    assert float(jnp.max(jnp.abs(params["kernel"]))) <= bound
    assert float(jnp.max(jnp.abs(params["bias"]))) <= bound


def test_conv2d_bad_arguments():
    with pytest.raises(ValueError, match="groups"):
        Conv2D(4, 6, groups=4)
    with pytest.raises(ValueError, match="padding"):
        Conv2D(4, 6, padding="FULL")
    with pytest.raises(ValueError, match="padding"):
        Conv2D(4, 6, padding=-1)
    with pytest.raises(ValueError, match="stride"):
        Conv2D(4, 6, stride=0)
    conv = Conv2D(4, 6)
    params = conv.init_params(jax.random.key(0))
    with pytest.raises(ValueError, match="x: expected shape"):
        conv(params, jnp.ones((5, 5, 4)))
