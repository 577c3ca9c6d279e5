"""Physical removal: a LeNet-5 projected to k filters per conv layer by the WGSEF tools and shrunk
by memjax.pruning gives the masked network's logits from smaller arrays."""

import jax
import numpy as np

from memjax import pruning
from memjax.models.cnn import LeNet5
from memjax.sparsity import layer_masks, project_top_k, prox_wgsef_tree, tree_groups


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
    fn = lambda p, x: net.apply(p, {}, x)[0]
    traced = pruning.trace_groups(fn, masked, x)
    per_layer = layer_masks(groups, mask)
    masks = [
        per_layer.get(g.name[len("params/") : -len("/kernel")], np.ones(g.size, bool))
        for g in traced
    ]
    small, small_params, _ = pruning.materialize(net, masked, traced, masks)
    assert small.channels == (2, 3)
    assert pruning.count_params(small_params) < pruning.count_params(masked)
    np.testing.assert_allclose(
        small.apply(small_params, {}, x)[0], fn(masked, x), rtol=1e-5, atol=1e-5
    )
