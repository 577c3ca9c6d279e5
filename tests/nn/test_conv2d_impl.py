"""Conv2D ``impl="wide"`` / ``"auto"`` against a NumPy loop convolution and ``impl="xla"``; the
ResNet ``conv_impl`` option leaves logits and gradients unchanged."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.models.cnn import ResNet
from memjax.nn.conv2d import WIDE_CHANNELS, Conv2D, wide_pays
from tests.nn.test_dense_conv2d import numpy_conv2d

CASES = [  # (c_in, c_out, kwargs): narrow (padded), odd C_in (auto: xla), wide enough already
    (16, 6, dict(kernel_size=3, stride=1, padding=1)),
    (1, 4, dict(kernel_size=3, stride=2, padding=((1, 0), (0, 1)))),
    (4, 5, dict(kernel_size=(2, 3), stride=1, padding="VALID", dilation=(2, 1))),
    (3, 8, dict(kernel_size=3, stride=1, padding=1)),
    (20, 4, dict(kernel_size=3, stride=2, padding=1, use_bias=False)),
]


@pytest.mark.parametrize("case", CASES)
def test_wide_and_auto_match_numpy_loop(case):
    c_in, c_out, kw = case
    x = np.random.default_rng(0).normal(size=(2, 7, 6, c_in)).astype(np.float32)
    conv = Conv2D(c_in, c_out, **kw)
    params = conv.init_params(jax.random.key(1))
    if "bias" in params:
        params["bias"] = jnp.linspace(-1.0, 1.0, c_out)
    pad = conv.padding_pairs
    expected = numpy_conv2d(
        x.astype(np.float64),
        np.asarray(params["kernel"], np.float64),
        np.asarray(params.get("bias", np.zeros(c_out)), np.float64),
        (kw["stride"],) * 2,
        ((0, 0), (0, 0)) if pad == "VALID" else pad,
        kw.get("dilation", (1, 1)) if isinstance(kw.get("dilation"), tuple) else (1, 1),
        1,
    )
    for impl in ("xla", "wide", "auto"):
        layer = dataclasses.replace(conv, impl=impl)
        y = jax.jit(layer.apply)(params, jnp.asarray(x))
        assert y.shape == expected.shape, impl
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5, err_msg=impl)


def test_wide_gradients_equal_xla_gradients():
    conv = Conv2D(8, 6, 3, padding=1)
    params = conv.init_params(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 8))
    g = jax.random.normal(jax.random.key(2), (2, 5, 5, 6))

    def grads(impl):
        layer = dataclasses.replace(conv, impl=impl)
        return jax.jit(jax.grad(lambda p, x: jnp.sum(layer(p, x) * g), (0, 1)))(params, x)

    for a, b in zip(jax.tree.leaves(grads("wide")), jax.tree.leaves(grads("xla"))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_auto_rule():
    assert wide_pays(16, 16) and wide_pays(1, 16) and wide_pays(6, 4)
    assert not wide_pays(3, 16)  # odd C_in > 1 is slower padded
    assert not wide_pays(16, WIDE_CHANNELS) and not wide_pays(32, 8)  # already the fast kernel
    assert not wide_pays(8, 8, groups=2)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU kernel choice")
def test_wide_changes_the_xla_cpu_kernel_of_a_narrow_conv():
    """The point of ``"wide"``: XLA:CPU sends a <= 16-channel conv to Eigen, a 17-channel one to
    a YNNPACK fusion (jax 0.10). If a jax upgrade changes this, revisit ``wide_pays``."""
    x, conv = jnp.ones((2, 8, 8, 8)), Conv2D(8, 8, 3, padding=1, use_bias=False)
    params = conv.init_params(jax.random.key(0))

    def hlo(impl):
        f = jax.jit(dataclasses.replace(conv, impl=impl).apply)
        return f.lower(params, x).compile().as_text()

    if "ynn" not in hlo("wide"):
        pytest.skip("this XLA:CPU build has no YNNPACK convolution fusion")
    assert "ynn" not in hlo("xla")


def test_bad_impl():
    with pytest.raises(ValueError, match="impl"):
        Conv2D(4, 4, impl="fast")
    with pytest.raises(ValueError, match="impl"):
        Conv2D(4, 4, groups=2, impl="wide")
    with pytest.raises(ValueError, match="conv_impl"):
        ResNet(1, (4, 8, 16), conv_impl="patches")


def test_resnet_conv_impl_keeps_logits_and_survives_surgery_and_folding():
    net = ResNet(1, (4, 8, 16), num_classes=3, in_channels=2, mid_widths=(2, 6, 5))
    params, state = jax.jit(net.init_params)(jax.random.key(0)), net.init_state()
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 2))
    auto = dataclasses.replace(net, conv_impl="auto")

    def logits(spec, p, s):
        return jax.jit(lambda p, s, x: spec.apply(p, s, x, train=False)[0])(p, s, x)

    want = logits(net, params, state)
    np.testing.assert_allclose(logits(auto, params, state), want, rtol=1e-5, atol=1e-5)
    folded = auto.folded(params, state)[0]
    fp, fs = jax.jit(lambda p, s: auto.folded(p, s)[1:])(params, state)
    assert folded.conv_impl == "auto"
    np.testing.assert_allclose(logits(folded, fp, fs), want, atol=1e-4)
    assert auto.pruned({}).conv_impl == "auto"
