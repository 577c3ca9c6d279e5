"""Traced coupled groups against hand-written expected groups."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax import nn
from memjax.models.cnn import VGG, ResNet
from memjax.pruning import UntraceableOpError, trace_groups

RNG = np.random.default_rng(0)


def table(group):
    """``{(name, axis): [(position, unit), ...]}`` of a group."""
    return {
        (m.name, m.axis): list(zip(m.positions.tolist(), m.units.tolist())) for m in group.members
    }


def identity(n, offset=0):
    return [(i, i + offset) for i in range(n)]


def zeros_like_shapes(fn, *args):
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(RNG.normal(size=s.shape), s.dtype), jax.eval_shape(fn, *args)
    )


def conv(c_in, c_out, **kw):
    layer = nn.Conv2D(c_in, c_out, 3, **kw)
    return layer, zeros_like_shapes(layer.init_params, jax.random.key(0))


def test_conv_batchnorm_conv_group():
    c1, p1 = conv(3, 4)
    c2, p2 = conv(4, 5, use_bias=False)
    bn = nn.BatchNorm(4)
    params = {"c1": p1, "bn": bn.init_params(None), "c2": p2}
    state = {"bn": bn.init_state()}

    def f(p, s, x):
        h, _ = bn.apply(p["bn"], s["bn"], c1(p["c1"], x), train=False)
        return c2(p["c2"], jax.nn.relu(h))

    first, last = trace_groups(f, params, jnp.ones((2, 6, 6, 3)), model_state=state)
    assert (first.name, first.size, first.prunable) == ("params/c1/kernel", 4, True)
    assert table(first) == {
        ("params/c1/kernel", 3): identity(4),
        ("params/c1/bias", 0): identity(4),
        ("params/bn/scale", 0): identity(4),
        ("params/bn/bias", 0): identity(4),
        ("model_state/bn/mean", 0): identity(4),
        ("model_state/bn/var", 0): identity(4),
        ("params/c2/kernel", 2): identity(4),
    }
    assert not last.prunable and "output" in last.reason
    assert table(last) == {("params/c2/kernel", 3): identity(5)}
    assert first.member("params/c2/kernel").role == "in"


def test_two_convs_feeding_an_add_share_a_group():
    c1, p1 = conv(3, 4)
    c2, p2 = conv(3, 4, use_bias=False)
    c3, p3 = conv(4, 2)
    params = {"a": p1, "b": p2, "c": p3}

    def f(p, x):
        return c3(p["c"], jax.nn.relu(c1(p["a"], x) + c2(p["b"], x)))

    groups = trace_groups(f, params, jnp.ones((2, 5, 5, 3)))
    assert [g.name for g in groups] == ["params/a/kernel", "params/c/kernel"]
    assert groups[0].producers == ("params/a/kernel", "params/b/kernel")
    assert table(groups[0]) == {
        ("params/a/kernel", 3): identity(4),
        ("params/a/bias", 0): identity(4),
        ("params/b/kernel", 3): identity(4),
        ("params/c/kernel", 2): identity(4),
    }


def test_concatenation_places_groups_at_offsets():
    c1, p1 = conv(3, 2)
    c2, p2 = conv(3, 3)
    c3, p3 = conv(5, 2)
    params = {"a": p1, "b": p2, "c": p3}

    def f(p, x):
        return c3(p["c"], jnp.concatenate([c1(p["a"], x), c2(p["b"], x)], axis=-1))

    a, b, _ = trace_groups(f, params, jnp.ones((1, 4, 4, 3)))
    assert table(a)[("params/c/kernel", 2)] == identity(2)
    assert table(b)[("params/c/kernel", 2)] == [(2, 0), (3, 1), (4, 2)]
    assert (a.size, b.size) == (2, 3)


def test_concatenation_of_a_tensor_with_itself_couples_the_copies():
    c1, p1 = conv(3, 2)
    c3, p3 = conv(4, 2)

    def f(p, x):
        h = c1(p["a"], x)
        return c3(p["c"], jnp.concatenate([h, h], axis=-1))

    a, _ = trace_groups(f, {"a": p1, "c": p3}, jnp.ones((1, 4, 4, 3)))
    assert table(a)[("params/c/kernel", 2)] == [(0, 0), (1, 1), (2, 0), (3, 1)]


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_flatten_then_dense_gives_strided_or_blocked_rows(layout):
    c1, p1 = conv(2, 3, padding="VALID")  # 5x4 -> 3x2
    dense = nn.Dense(3 * 3 * 2, 4)
    params = {"c": p1, "d": zeros_like_shapes(dense.init_params, jax.random.key(0))}

    def f(p, x):
        h = c1(p["c"], x)
        if layout == "NCHW":
            h = jnp.transpose(h, (0, 3, 1, 2))
        return dense(p["d"], jnp.reshape(h, (h.shape[0], -1)))

    group = trace_groups(f, params, jnp.ones((2, 5, 4, 2)))[0]
    rows = table(group)[("params/d/kernel", 0)]
    if layout == "NHWC":
        assert rows == [(f, f % 3) for f in range(18)]
    else:
        assert rows == [(f, f // 6) for f in range(18)]


def test_depthwise_conv_passes_channels_through():
    c1, p1 = conv(3, 4)
    dw, p_dw = conv(4, 8, groups=4)  # channel multiplier 2
    pw = nn.Conv2D(8, 2, 1)
    params = {"a": p1, "dw": p_dw, "pw": zeros_like_shapes(pw.init_params, jax.random.key(0))}

    def f(p, x):
        return pw(p["pw"], jax.nn.relu(dw(p["dw"], jax.nn.relu(c1(p["a"], x)))))

    a, last = trace_groups(f, params, jnp.ones((1, 4, 4, 3)))
    halves = [(o, o // 2) for o in range(8)]
    assert table(a) == {
        ("params/a/kernel", 3): identity(4),
        ("params/a/bias", 0): identity(4),
        ("params/dw/kernel", 3): halves,
        ("params/dw/bias", 0): halves,
        ("params/pw/kernel", 2): halves,
    }
    assert a.member("params/dw/kernel").role == "depthwise"
    assert last.name == "params/pw/kernel"


def test_resnet_identity_and_option_a_shortcuts():
    net = ResNet(blocks_per_stage=1, widths=(2, 4, 8), num_classes=3)
    params = zeros_like_shapes(net.init_params, jax.random.key(0))
    state = net.init_state()
    groups = trace_groups(
        lambda p, s, x: net.apply(p, s, x, train=False)[0],
        params,
        jnp.ones((1, 8, 8, 3)),
        model_state=state,
    )
    names = [g.name for g in groups]
    assert names == [
        "params/blocks/2/conv2/kernel",
        "params/blocks/0/conv1/kernel",
        "params/blocks/1/conv1/kernel",
        "params/blocks/2/conv1/kernel",
        "params/fc/kernel",
    ]
    stream = groups[0]
    # block 0 identity (2 -> 2); block 1 pads 1 channel low (2 -> 4); block 2 pads 2 (4 -> 8)
    s0, s1, s2 = identity(2, 3), identity(4, 2), identity(8)
    feature = {"scale": 0, "bias": 0}
    expected = {
        ("params/stem/kernel", 3): s0,
        ("params/blocks/0/conv1/kernel", 2): s0,
        ("params/blocks/0/conv2/kernel", 3): s0,
        ("params/blocks/1/conv1/kernel", 2): s0,
        ("params/blocks/1/conv2/kernel", 3): s1,
        ("params/blocks/2/conv1/kernel", 2): s1,
        ("params/blocks/2/conv2/kernel", 3): s2,
        ("params/fc/kernel", 0): s2,
    }
    for bn, units in [
        ("stem_bn", s0),
        ("blocks/0/bn2", s0),
        ("blocks/1/bn2", s1),
        ("blocks/2/bn2", s2),
    ]:
        for leaf in feature:
            expected[(f"params/{bn}/{leaf}", 0)] = units
        for leaf in ("mean", "var"):
            expected[(f"model_state/{bn}/{leaf}", 0)] = units
    assert stream.size == 8 and stream.prunable
    assert table(stream) == expected
    mid = groups[2]  # block 1's conv1 -> bn1 -> conv2
    width = 4
    assert table(mid) == {
        ("params/blocks/1/conv1/kernel", 3): identity(width),
        ("params/blocks/1/bn1/scale", 0): identity(width),
        ("params/blocks/1/bn1/bias", 0): identity(width),
        ("model_state/blocks/1/bn1/mean", 0): identity(width),
        ("model_state/blocks/1/bn1/var", 0): identity(width),
        ("params/blocks/1/conv2/kernel", 2): identity(width),
    }
    assert not groups[-1].prunable


def test_untraceable_op_raises_naming_it_or_fixes_the_channels():
    c1, p1 = conv(3, 4)
    c2, p2 = conv(4, 2)

    def f(p, x):
        return c2(p["b"], jnp.cumsum(c1(p["a"], x), axis=-1))

    params = {"a": p1, "b": p2}
    with pytest.raises(UntraceableOpError, match="cumsum"):
        trace_groups(f, params, jnp.ones((1, 4, 4, 3)))
    a, _ = trace_groups(f, params, jnp.ones((1, 4, 4, 3)), on_unknown="fix")
    assert not a.prunable and "cumsum" in a.reason
    with pytest.raises(ValueError, match="on_unknown"):
        trace_groups(f, params, jnp.ones((1, 4, 4, 3)), on_unknown="skip")
    with pytest.raises(TypeError, match="fn"):
        trace_groups(None, params)


def test_channels_meeting_input_data_or_grouped_convs_are_fixed():
    c1, p1 = conv(3, 3)
    g2, p2 = conv(3, 3, groups=1)
    grouped, p3 = conv(4, 2, groups=2)
    c4, p4 = conv(3, 4)

    def meets_input(p, x):
        return g2(p["b"], c1(p["a"], x) + x)  # x varies along the channels: cannot shrink

    a, _ = trace_groups(meets_input, {"a": p1, "b": p2}, jnp.ones((1, 4, 4, 3)))
    assert not a.prunable and "not a prunable channel" in a.reason

    def into_grouped(p, x):
        return grouped(p["g"], c4(p["c"], x))

    (c,) = trace_groups(into_grouped, {"c": p4, "g": p3}, jnp.ones((1, 4, 4, 3)))
    assert not c.prunable and "grouped convolution" in c.reason  # its outputs form no group
    assert c.name == "params/c/kernel"


def test_equinox_model_through_partition():
    eqx = pytest.importorskip("equinox")
    k1, k2 = jax.random.split(jax.random.key(0))
    model = eqx.nn.Sequential(
        [
            eqx.nn.Conv2d(2, 3, 3, key=k1),
            eqx.nn.Lambda(jax.nn.relu),
            eqx.nn.Lambda(jnp.ravel),
            eqx.nn.Linear(3 * 2 * 2, 5, key=k2),
        ]
    )
    params, static = eqx.partition(model, eqx.is_array)

    def f(p, x):  # unbatched CHW, vmapped outside
        return jax.vmap(eqx.combine(p, static))(x)

    conv_group, _ = trace_groups(f, params, jnp.ones((4, 2, 4, 4)))
    t = table(conv_group)
    assert t[("params/layers/0/weight", 0)] == identity(3)
    assert t[("params/layers/0/bias", 0)] == identity(3)  # (C, 1, 1)
    assert t[("params/layers/3/weight", 1)] == [(f, f // 4) for f in range(12)]  # CHW: blocked


def test_flax_nnx_model_through_split_traces_and_shrinks():
    nnx = pytest.importorskip("flax.nnx")
    from memjax.pruning import apply_masks, shrink

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.c1 = nnx.Conv(3, 4, (3, 3), rngs=rngs)
            self.bn = nnx.BatchNorm(4, use_running_average=True, rngs=rngs)
            self.c2 = nnx.Conv(4, 2, (3, 3), rngs=rngs)

        def __call__(self, x):
            return self.c2(jax.nn.relu(self.bn(self.c1(x))))

    graphdef, state = nnx.split(Net(nnx.Rngs(0)))

    def f(s, x):
        return nnx.merge(graphdef, s)(x)

    x = jnp.asarray(RNG.normal(size=(2, 5, 5, 3)), jnp.float32)
    first, last = trace_groups(f, state, x)
    assert sorted(table(first)) == sorted(
        [
            (f"params/{name}/value", 0)
            for name in ("c1/bias", "bn/scale", "bn/bias", "bn/mean", "bn/var")
        ]
        + [("params/c1/kernel/value", 3), ("params/c2/kernel/value", 2)]
    )
    masks = [np.array([True, False, True, True]), np.ones(2, bool)]
    small = shrink(state, [first, last], masks)
    assert small.params["c2"]["kernel"][...].shape == (3, 3, 3, 2)
    np.testing.assert_allclose(
        f(small.params, x), f(apply_masks(state, [first, last], masks), x), atol=1e-6
    )


def test_vgg_groups_equal_the_hand_listed_groups():
    net = VGG(cfg=(4, "M", 6), hidden=5, num_classes=3)
    params = zeros_like_shapes(net.init_params, jax.random.key(0))
    state = net.init_state()
    groups = trace_groups(
        lambda p, s, x: net.apply(p, s, x, train=False)[0],
        params,
        jnp.ones((1, 8, 8, 3)),
        model_state=state,
    )

    def bn_chain(conv, bn, size, consumer, kind="conv"):
        out_axis = 3 if kind == "conv" else 1
        return {
            (f"params/{conv}/kernel", out_axis): identity(size),
            (f"params/{conv}/bias", 0): identity(size),
            (f"params/{bn}/scale", 0): identity(size),
            (f"params/{bn}/bias", 0): identity(size),
            (f"model_state/{bn}/mean", 0): identity(size),
            (f"model_state/{bn}/var", 0): identity(size),
            consumer: identity(size),
        }

    assert [(g.name, g.size, g.prunable) for g in groups] == [
        ("params/conv0/kernel", 4, True),
        ("params/conv1/kernel", 6, True),
        ("params/linear1/kernel", 5, True),
        ("params/linear2/kernel", 3, False),
    ]
    assert table(groups[0]) == bn_chain("conv0", "bn0", 4, ("params/conv1/kernel", 2))
    assert table(groups[1]) == bn_chain("conv1", "bn1", 6, ("params/linear1/kernel", 0))
    assert table(groups[2]) == bn_chain(
        "linear1", "norm1", 5, ("params/linear2/kernel", 0), kind="dense"
    )
    assert table(groups[3]) == {
        ("params/linear2/kernel", 1): identity(3),
        ("params/linear2/bias", 0): identity(3),
    }
