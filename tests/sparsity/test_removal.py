"""Physical removal: networks taken to exactly k filters per layer by the WGSEF tools and shrunk
by memjax.pruning give the masked network's logits from smaller arrays — LeNet-5 after one prox
step, and the Fashion-MNIST experiment's gpu-preset networks (VGG-16-BN, ResNet-18 with
projection shortcuts, MobileNetV1 with its depthwise convs coupled to the filters they follow)
after one ProxSGD (WGSEF) training step, at 16×16 and a small width multiplier."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.wgsef.fashion_mnist import build
from memjax import pruning
from memjax.models.cnn import LeNet5
from memjax.sparsity import (
    layer_masks,
    nonzero_groups_per_layer,
    project_top_k,
    prox_sgd,
    prox_wgsef_tree,
    tree_groups,
)


def _shrink(net, masked, groups, mask, x, state=None):
    if state is None:
        traced = pruning.trace_groups(lambda p, x: net.apply(p, {}, x)[0], masked, x)
    else:
        fn = lambda p, s, x: net.apply(p, s, x, train=False)[0]
        traced = pruning.trace_groups(fn, masked, x, model_state=state)
    per_layer = layer_masks(groups, mask)
    masks = [
        per_layer.get(g.name[len("params/") : -len("/kernel")], np.ones(g.size, bool))
        for g in traced
    ]
    return pruning.materialize(net, masked, traced, masks, model_state=state)


def test_masked_equals_shrunk_logits():
    net = LeNet5(channels=(4, 6), hidden=(8, 6), image_size=16)
    params = net.init_params(jax.random.key(0))
    layers = {n: spec for n, _, spec in net.conv_layers() if n.startswith("conv")}
    groups = tree_groups(params, layers, "filter")
    k = {"conv1": 2, "conv2": 3}
    params = prox_wgsef_tree(params, 1.0, groups, k, 0.05)  # a proximal step, then exactly k
    masked, mask = project_top_k(params, groups, k)
    assert mask.sum() == 5

    x = np.random.default_rng(0).normal(size=(4, 16, 16, 1)).astype(np.float32)
    small, small_params, _ = _shrink(net, masked, groups, mask, x)
    assert small.channels == (2, 3)
    assert pruning.count_params(small_params) < pruning.count_params(masked)
    fn = jax.jit(lambda p, x: net.apply(p, {}, x)[0])
    np.testing.assert_allclose(
        jax.jit(lambda p, x: small.apply(p, {}, x)[0])(small_params, x),
        fn(masked, x),
        rtol=1e-5,
        atol=1e-5,
    )


def _random_params(net, seed):
    """Random params of ``net``'s shapes (scale 1/√fan-in; BatchNorm scale and shift random
    too), drawn by NumPy: compiling the network's initialiser costs more than the test."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(net.init_params, jax.random.key(0))
    draw = lambda s: rng.normal(0.0, 1.0 / np.sqrt(np.prod(s.shape[:-1])), s.shape)
    return jax.tree_util.tree_map(lambda s: jnp.asarray(draw(s), s.dtype), shapes)


def _surviving_widths(model, small) -> tuple:
    if model == "vgg16":
        return small.widths
    if model == "resnet18":
        return tuple(small.mid_width(b) for b in range(small.num_blocks))
    return (small.stem_out, *small.widths)


@pytest.mark.parametrize("model", ["vgg16", "resnet18", "mobilenet_v1"])
def test_paper_networks_one_wgsef_step_exact_k_and_removal(model):
    net, convs, couple, _, _ = build(model, 1 / 16)
    params, state = _random_params(net, 1), net.init_state()
    layers = {n: spec for n, _, spec in net.conv_layers() if n in convs}
    groups = tree_groups(params, layers, "filter", couple=couple)
    assert groups.layers == convs
    widths = [hi - lo for lo, hi in groups.slices]
    k = {c: max(1, w // 2) for c, w in zip(convs, widths)}
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(4, 16, 16, 1)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, 4))
    opt = prox_sgd(groups, k, 0.1)

    @jax.jit
    def step(params, state, opt_state):
        def loss(p):
            logits, new_state = net.apply(p, state, x, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_state

        (_, new_state), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state

    trained, state = step(params, state, opt.init(params))
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree_util.tree_leaves(trained), jax.tree_util.tree_leaves(params))
    )
    masked, mask = project_top_k(trained, groups, k)
    counts = {n: int(c) for n, c in nonzero_groups_per_layer(masked, groups).items()}
    assert counts == k  # exactly k filters per layer

    small, small_params, small_state = _shrink(net, masked, groups, mask, x, state)
    assert _surviving_widths(model, small) == tuple(k[c] for c in convs)
    assert pruning.count_params(small_params) < pruning.count_params(masked)
    forward = lambda spec: jax.jit(lambda p, s, x: spec.apply(p, s, x, train=False)[0])
    want = forward(net)(masked, state, x)
    got = forward(small)(small_params, small_state, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(want))))
