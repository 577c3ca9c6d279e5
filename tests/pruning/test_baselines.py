"""Baseline scores and calibration against NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core.taps import tap, tap_gradients
from memjax.models.cnn import LeNet5
from memjax.pruning import (
    beta_rank_scores,
    bn_scale_scores,
    hrank_scores,
    l1_scores,
    random_scores,
    score_layers,
    taylor_scores,
)

RNG = np.random.default_rng(1)


def test_l1_scores_are_mean_absolute_filter_weights():
    kernel = RNG.normal(size=(3, 3, 4, 5)).astype(np.float32)
    want = [np.abs(kernel[..., k]).mean() for k in range(5)]
    np.testing.assert_allclose(l1_scores(kernel), want, rtol=1e-6)
    oihw = np.transpose(kernel, (3, 2, 0, 1))
    np.testing.assert_allclose(l1_scores(oihw, layout="NCHW"), want, rtol=1e-6)
    dense = RNG.normal(size=(6, 2)).astype(np.float32)
    np.testing.assert_allclose(l1_scores(dense), np.abs(dense).mean(0), rtol=1e-6)


def test_hrank_is_the_mean_matrix_rank_of_each_map():
    n, h, w, c = 4, 6, 5, 3
    maps = np.zeros((n, h, w, c), np.float32)
    for i in range(n):
        for k in range(c):
            r = (i + k) % 4  # ranks 0..3 by construction
            maps[i, :, :, k] = np.abs(RNG.normal(size=(h, r))) @ np.abs(RNG.normal(size=(r, w)))
    maps = np.maximum(maps, 0.0)
    want = [np.mean([np.linalg.matrix_rank(maps[i, :, :, k]) for i in range(n)]) for k in range(c)]
    np.testing.assert_allclose(hrank_scores(maps), want)
    np.testing.assert_allclose(hrank_scores(np.transpose(maps, (0, 3, 1, 2)), layout="NCHW"), want)


def test_random_bn_scale_and_taylor_scores():
    s = random_scores(jax.random.key(3), 7)
    assert s.shape == (7,) and bool(((s >= 0) & (s < 1)).all())
    np.testing.assert_array_equal(s, random_scores(jax.random.key(3), 7))
    np.testing.assert_allclose(bn_scale_scores(jnp.array([-2.0, 0.5])), [2.0, 0.5])

    kernel = jnp.asarray(RNG.normal(size=(3, 3, 2, 4)), jnp.float32)
    x = jnp.asarray(RNG.normal(size=(5, 6, 6, 2)), jnp.float32)

    def rest(z):
        return jnp.sum(jnp.tanh(z) ** 2 * jnp.arange(1.0, 5.0)[None, None, None])

    def loss(x):
        z = jax.lax.conv_general_dilated(
            x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return rest(tap("conv:out", z))

    _, taps, grads = tap_gradients(loss, ("conv:out",))(x)
    z = np.asarray(taps["conv:out"])
    g = np.asarray(jax.grad(rest)(jnp.asarray(z)))
    np.testing.assert_allclose(grads["conv:out"], g, rtol=1e-5)
    want = [
        np.mean([abs(np.mean(z[i, :, :, k] * g[i, :, :, k])) for i in range(5)]) for k in range(4)
    ]
    np.testing.assert_allclose(taylor_scores(taps["conv:out"], grads["conv:out"]), want, rtol=1e-5)


@pytest.fixture(scope="module")
def lenet():
    rng = np.random.default_rng(3)  # its own generator: the fixture must not depend on test order
    net = LeNet5(channels=(3, 4), hidden=(6, 5), num_classes=3)
    shapes = jax.eval_shape(net.init_params, jax.random.key(0))
    params = jax.tree_util.tree_map(
        lambda s: jnp.asarray(
            rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1]) or 1), s.dtype
        ),
        shapes,
    )
    params["conv2"]["bias"] = params["conv2"]["bias"] + 2.0  # live ReLUs into fc1
    x = jnp.asarray(rng.normal(size=(10, 32, 32, 1)), jnp.float32)
    return net, params, x


@pytest.mark.parametrize("mode", ["paper", "code_compat"])
def test_chunked_calibration_equals_scoring_the_whole_batch(lenet, mode):
    from memjax.core.taps import collect_taps

    net, params, x = lenet

    def fn(p, x):
        return net.apply(p, {}, x)[0]

    layers = net.conv_layers()
    got = score_layers(
        "beta_rank", fn, params, x, layers, mode=mode, chunk_size=4, min_batch=1, normalize=None
    )
    names = [f"{n}:{k}" for n, _, _ in layers for k in ("in", "out")]
    _, taps = collect_taps(fn, names)(params, x)
    for name, path, spec in layers[:2]:  # the convs
        want = beta_rank_scores(
            params[path[0]]["kernel"],
            taps[f"{name}:in"],
            taps[f"{name}:out"],
            stride=spec.stride,
            padding=spec.padding,
            layout="NHWC",
            mode=mode,
            normalize=None,
        )
        np.testing.assert_allclose(got[f"params/{name}/kernel"], want, rtol=2e-4)
    # a dense layer is a 1x1 conv over a 1x1 map: paper sigma_in is over all inputs; the
    # code's mis-sliced window [:, 0:1, 0:1, :] of the (N, d_in, 1, 1) input is feature 0 only
    zin, zout = np.asarray(taps["fc1:in"], np.float64), np.asarray(taps["fc1:out"], np.float64)
    ratio = zin.std() / zout.std(0) if mode == "paper" else zout.std(0) / zin[:, 0].std()
    want = np.abs(np.asarray(params["fc1"]["kernel"])).mean(0) * ratio
    np.testing.assert_allclose(got["params/fc1/kernel"], want, rtol=2e-4)
    hr = score_layers("hrank", fn, params, x, layers[:2], chunk_size=3)
    _, acts = collect_taps(fn, ["conv1:act", "conv2:act"])(params, x)
    np.testing.assert_allclose(
        hr["params/conv2/kernel"], hrank_scores(acts["conv2:act"]), rtol=1e-6
    )
    l1 = score_layers("l1", fn, params, x, layers)
    np.testing.assert_allclose(l1["params/fc3/kernel"], l1_scores(params["fc3"]["kernel"]))


def test_calibration_checks_its_inputs(lenet):
    net, params, x = lenet

    def fn(p, x):
        return net.apply(p, {}, x)[0]

    with pytest.raises(ValueError, match="min_batch=512"):
        score_layers("beta_rank", fn, params, x, net.conv_layers())
    with pytest.raises(ValueError, match="method"):
        score_layers("taylor", fn, params, x, net.conv_layers())
    with pytest.raises(ValueError, match="key"):
        score_layers("random", fn, params, x, net.conv_layers())
    with pytest.raises(ValueError, match=r"batch: .*x: expected shape"):
        score_layers("beta_rank", fn, params, x[..., :1, :], net.conv_layers(), mode="code_compat")
    scores = score_layers("random", fn, params, x, net.conv_layers(), key=jax.random.key(0))
    assert [v.shape for v in scores.values()] == [(3,), (4,), (6,), (5,), (3,)]
