"""XLA FLOPs against a hand count; latency helper; HRankPlus ratio formats on VGG-16 and ResNet."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.models.cnn import VGG, LeNet5, resnet20
from memjax.pruning import (
    count_params,
    masks_from_scores,
    materialize,
    measure_latencies,
    measure_latency,
    model_cost,
    trace_groups,
    xla_flops,
)


def numpy_params(net, seed=0):
    """Random params shaped like ``net``'s, drawn by NumPy (no per-shape compiles)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(net.init_params, jax.random.key(0))
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.normal(size=s.shape) * 0.1, s.dtype), shapes
    )


def valid_taps(size, k, pad, stride=1):
    """Kernel taps per output position that fall inside the input, summed over one axis."""
    out = (size + 2 * pad - k) // stride + 1
    return sum(sum(1 for d in range(k) if 0 <= o * stride - pad + d < size) for o in range(out))


def test_xla_flops_equal_a_hand_count_of_lenet():
    n, c1, c2, h1, h2, classes = 3, 4, 8, 16, 12, 10
    net = LeNet5(channels=(c1, c2), hidden=(h1, h2), num_classes=classes)
    params = numpy_params(net)
    fn = lambda p, x: net.apply(p, {}, x, train=False)[0]
    conv1 = 2 * n * 28 * 28 * 25 * 1 * c1 + n * 28 * 28 * c1  # MACs x 2, bias
    relu1 = n * 28 * 28 * c1
    pool1 = n * 14 * 14 * c1 * (4 - 1)  # 2x2 max: 3 comparisons per output
    conv2 = 2 * n * 10 * 10 * 25 * c1 * c2 + n * 10 * 10 * c2
    relu2 = n * 10 * 10 * c2
    pool2 = n * 5 * 5 * c2 * 3
    fc1 = 2 * n * 25 * c2 * h1 + 2 * n * h1  # matmul, bias, ReLU
    fc2 = 2 * n * h1 * h2 + 2 * n * h2
    fc3 = 2 * n * h2 * classes + n * classes
    hand = conv1 + relu1 + pool1 + conv2 + relu2 + pool2 + fc1 + fc2 + fc3
    x = jax.ShapeDtypeStruct((n, 32, 32, 1), jnp.float32)
    assert xla_flops(fn, params, x) == hand


def test_xla_flops_skip_padded_taps():
    x = jnp.ones((2, 7, 9, 3))
    k = jnp.ones((3, 3, 3, 5))

    def conv(x, k):
        return jax.lax.conv_general_dilated(
            x, k, (2, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    taps = valid_taps(7, 3, 1, 2) * valid_taps(9, 3, 1)
    assert xla_flops(conv, x, k) == 2 * 2 * taps * 3 * 5
    with pytest.raises(TypeError, match="fn"):
        xla_flops(None, x)


def test_latency_and_model_cost():
    net = LeNet5(channels=(2, 3), hidden=(4, 4))
    params = numpy_params(net)
    fn = lambda p, x: net.apply(p, {}, x, train=False)[0]
    lat = measure_latency(fn, params, jnp.ones((1, 32, 32, 1)), repeats=5, warmup=0)
    assert lat.repeats == 5 and 0 < lat.p10_s <= lat.median_s <= lat.p90_s
    assert 0 <= lat.cpu_s < 10 * lat.p90_s + 1  # process CPU time: bounded by 2 cores' wall
    cost = model_cost(fn, params, (32, 32, 1), batch_sizes=(1,), repeats=2, warmup=1)
    assert cost["params"] == count_params(params)
    assert cost["flops"] == xla_flops(fn, params, jnp.ones((1, 32, 32, 1)))
    assert list(cost["latency_ms"]) == [1] and cost["latency_ms"][1] > 0
    assert list(cost["cpu_ms"]) == [1] and cost["cpu_ms"][1] >= 0
    pair = measure_latencies(
        {
            "a": (fn, (params, jnp.ones((1, 32, 32, 1)))),
            "b": (fn, (params, jnp.ones((2, 32, 32, 1)))),
        },
        repeats=3,
        warmup=0,
    )
    assert list(pair) == ["a", "b"] and all(v.repeats == 3 for v in pair.values())
    with pytest.raises(ValueError, match="calls"):
        measure_latencies({})
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(fn, params, jnp.ones((1, 32, 32, 1)), repeats=0)
    with pytest.raises(ValueError, match="image_shape"):
        model_cost(fn, params, (32, -1, 1))


def widths_after(net, ratios, shape):
    params = numpy_params(net)
    state = net.init_state()
    fn = lambda p, s, x: net.apply(p, s, x, train=False)[0]
    groups = trace_groups(fn, params, jnp.ones(shape), model_state=state)
    scores = [np.arange(g.size, dtype=float)[::-1] for g in groups]
    masks = masks_from_scores(scores, groups, ratio=ratios)
    small, _, _ = materialize(net, params, groups, masks, model_state=state)
    return small


def test_hrankplus_vgg_list_gives_floor_widths():
    cfg = (8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64)  # VGG-16 / 8
    net = VGG(cfg=cfg, hidden=16, num_classes=10)
    rates = [0.65] * 7 + [0.8] * 5
    small = widths_after(net, net.ratios(rates), (1, 32, 32, 3))
    want = [int(w * (1 - c)) for w, c in zip(net.widths, rates)] + [64]
    assert list(small.widths) == want and small.hidden == 16
    with pytest.raises(ValueError, match="compress_rate: expected 12"):
        net.ratios(rates[:-1])


def test_hrankplus_resnet_list_prunes_mids_and_the_coupled_stream():
    net = resnet20()
    rates = [0.0] + [0.5] * 2 + [0.25] * 9
    with pytest.raises(ValueError, match="stream="):
        net.ratios(rates)
    with pytest.raises(ValueError, match="compress_rate: expected 12"):
        net.ratios(rates[:-1])
    small = widths_after(net, net.ratios(rates, stream=0.0), (1, 8, 8, 3))
    assert small.mid_widths == tuple(int(w * 0.75) for w in (16,) * 3 + (32,) * 3 + (64,) * 3)
    assert small.block_widths == (16,) * 3 + (32,) * 3 + (64,) * 3
    small = widths_after(net, net.ratios([0.5] * 3 + [0.0] * 9), (1, 8, 8, 3))
    assert small.block_widths == (8,) * 3 + (16,) * 3 + (32,) * 3  # stream group: 64 -> 32
    assert small.stem_width == 8 and small.mid_widths == (16,) * 3 + (32,) * 3 + (64,) * 3
