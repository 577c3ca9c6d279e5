"""Conv2D ``impl`` options (``"wide"``, ``"auto"``, ``"pad8"``, ``"pad16"``) against a NumPy loop
convolution and ``impl="xla"``; the ResNet ``conv_impl`` option leaves logits and gradients
unchanged."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.models.cnn import VGG, ResNet
from memjax.nn.conv2d import IMPLS, WIDE_CHANNELS, Conv2D, computed_width, wide_pays
from tests.nn.test_dense_conv2d import numpy_conv2d

CASES = [  # (c_in, c_out, kwargs): narrow (padded), odd C_in (auto: xla), wide enough already
    (16, 6, dict(kernel_size=3, stride=1, padding=1)),
    (1, 4, dict(kernel_size=3, stride=2, padding=((1, 0), (0, 1)))),
    (4, 5, dict(kernel_size=(2, 3), stride=1, padding="VALID", dilation=(2, 1))),
    (3, 8, dict(kernel_size=3, stride=1, padding=1)),
    (20, 4, dict(kernel_size=3, stride=2, padding=1, use_bias=False)),
    (18, 25, dict(kernel_size=3, stride=1, padding=1)),  # auto, pad8, pad16: 32 computed
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
    # apply depends on impl only through computed_width: one compile per distinct width
    widths = {(i == "dot", computed_width(c_in, c_out, i)): i for i in reversed(IMPLS)}
    for impl in widths.values():
        layer = dataclasses.replace(conv, impl=impl)
        y = jax.jit(layer.apply)(params, jnp.asarray(x))
        assert y.shape == expected.shape, impl
        np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5, err_msg=impl)


def test_auto_computes_few_positions_as_one_dot():
    """``auto`` on a 2x2 output (at most DOT_POSITIONS) takes the "dot" path: same y as NumPy."""
    conv = Conv2D(6, 5, 3, padding=1)
    x = np.random.default_rng(3).normal(size=(3, 2, 2, 6)).astype(np.float32)
    params = {"kernel": conv.init_params(jax.random.key(0))["kernel"], "bias": jnp.arange(5.0)}
    assert conv._few_positions(x.shape) and not conv._few_positions((3, 3, 2, 6))
    want = numpy_conv2d(
        x.astype(np.float64),
        np.asarray(params["kernel"], np.float64),
        np.arange(5.0),
        (1, 1),
        ((1, 1), (1, 1)),
        (1, 1),
        1,
    )
    auto = jax.jit(dataclasses.replace(conv, impl="auto").apply)
    np.testing.assert_allclose(np.asarray(auto(params, jnp.asarray(x))), want, rtol=1e-5, atol=1e-5)
    assert "dot" in auto.lower(params, jnp.asarray(x)).as_text()


@pytest.mark.parametrize("impl, c_out", [("wide", 6), ("auto", 26), ("dot", 6)])
def test_padded_gradients_equal_xla_gradients(impl, c_out):
    conv = Conv2D(8, c_out, 3, padding=1)
    params = conv.init_params(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 8))
    g = jax.random.normal(jax.random.key(2), (2, 5, 5, c_out))

    def grads(impl):
        layer = dataclasses.replace(conv, impl=impl)
        return jax.jit(jax.grad(lambda p, x: jnp.sum(layer(p, x) * g), (0, 1)))(params, x)

    for a, b in zip(jax.tree.leaves(grads(impl)), jax.tree.leaves(grads("xla"))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_auto_rule():
    assert wide_pays(16, 16) and wide_pays(1, 16) and wide_pays(6, 4)
    assert not wide_pays(3, 16)  # odd C_in > 1 is slower padded
    assert not wide_pays(16, WIDE_CHANNELS) and not wide_pays(32, 8)  # already the fast kernel
    assert not wide_pays(8, 8, groups=2)


def test_computed_widths():
    # pad8 / pad16 round C_out up; xla never pads; wide pads only convs <= 16 on both sides
    assert [computed_width(32, c, "pad8") for c in (8, 9, 25, 40)] == [8, 16, 32, 40]
    assert [computed_width(32, c, "pad16") for c in (8, 17, 25, 40)] == [16, 32, 32, 48]
    assert computed_width(64, 25, "xla") == 25 and computed_width(64, 25, "wide") == 25
    assert computed_width(16, 6, "wide") == WIDE_CHANNELS == computed_width(3, 6, "wide")
    # auto: wide where wide_pays; a narrow conv with an odd C_in > 1 unpadded; C_out in 9-15,
    # 25-31, 41-47, 49-63 to the next multiple of 16 (measured slow); else unpadded
    assert computed_width(16, 6, "auto") == WIDE_CHANNELS and computed_width(3, 6, "auto") == 6
    assert [computed_width(64, c, "auto") for c in (17, 24, 25, 31, 33, 40, 41, 49, 64)] == [
        17, 24, 32, 32, 33, 40, 48, 64, 64,
    ]  # fmt: skip
    assert computed_width(32, 13, "auto") == 16 and computed_width(12, 25, "auto") == 32
    assert computed_width(64, 6, "auto") == 6 and computed_width(128, 100, "auto") == 100
    assert all(computed_width(8, 6, i, groups=2) == 6 for i in ("auto", "xla"))
    with pytest.raises(ValueError, match="impl"):
        computed_width(8, 6, "pad4")


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
    for impl in ("wide", "pad8", "pad16", "dot"):
        with pytest.raises(ValueError, match="impl"):
            Conv2D(4, 4, groups=2, impl=impl)
    with pytest.raises(ValueError, match="conv_impl"):
        ResNet(1, (4, 8, 16), conv_impl="patches")


def test_resnet_conv_impl_keeps_logits_and_survives_surgery_and_folding():
    net = ResNet(1, (4, 8, 16), num_classes=3, in_channels=2, mid_widths=(2, 6, 5))
    rng = np.random.default_rng(0)  # NumPy draws: no threefry program to compile
    shapes = jax.eval_shape(net.init_params, jax.random.key(0))
    params = jax.tree.map(lambda a: jnp.asarray(0.3 * rng.normal(size=a.shape), a.dtype), shapes)
    state = net.init_state()
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


def test_vgg_conv_impl_keeps_logits_and_survives_surgery_and_folding():
    net = VGG(cfg=(4, "M", 25), hidden=8, num_classes=3, in_channels=2)  # pad16: 25 -> 32
    rng = np.random.default_rng(0)
    shapes = jax.eval_shape(net.init_params, jax.random.key(0))
    params = jax.tree.map(lambda a: jnp.asarray(0.3 * rng.normal(size=a.shape), a.dtype), shapes)
    state, x = net.init_state(), jnp.asarray(rng.normal(size=(2, 8, 8, 2)), jnp.float32)
    auto = dataclasses.replace(net, conv_impl="pad16")
    want, got = (
        jax.jit(lambda p, s, x, n=n: n.apply(p, s, x, train=False)[0]) for n in (net, auto)
    )
    np.testing.assert_allclose(got(params, state, x), want(params, state, x), rtol=1e-5, atol=1e-5)
    assert auto.folded(params, state)[0].conv_impl == "pad16" == auto.pruned({}).conv_impl
    with pytest.raises(ValueError, match="conv_impl"):
        VGG(conv_impl="fast")
