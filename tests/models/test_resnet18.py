"""ResNet-18 (He et al. 2016, Table 1; CIFAR stem, projection shortcuts): parameter count by
hand, output shape, and the projection coupled into its stage's residual stream."""

import jax
import jax.numpy as jnp
import numpy as np

from memjax import pruning
from memjax.models.cnn import ResNet18


def test_parameter_count_matches_hand_count():
    widths, c_in, classes = (64, 128, 256, 512), 3, 10
    convs = 3 * 3 * c_in * 64  # stem
    bn = 2 * 64  # stem BN (scale, bias)
    proj = 0
    prev = 64
    for w in widths:
        convs += 9 * prev * w + 3 * 9 * w * w  # block 1: conv1, conv2; block 2: conv1, conv2
        bn += 4 * 2 * w
        if w != prev:  # stages 2-4: 1×1 conv + BN projection in the first block
            proj += prev * w + 2 * w
        prev = w
    fc = 512 * classes + classes
    shapes = jax.eval_shape(ResNet18().init_params, jax.random.key(0))
    count = sum(a.size for a in jax.tree_util.tree_leaves(shapes))
    assert count == convs + bn + proj + fc == 11_173_962


def test_output_shape_and_projections_coupled_to_residual_streams():
    net = ResNet18(width_multiplier=1 / 16, in_channels=1)
    rng = np.random.default_rng(0)  # NumPy draws: compiling the initialiser costs more
    shapes = jax.eval_shape(net.init_params, jax.random.key(0))
    params = jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.normal(size=s.shape), s.dtype), shapes
    )
    state = net.init_state()
    x = jnp.asarray(rng.normal(size=(2, 16, 16, 1)), jnp.float32)
    fn = lambda p, s, x: net.apply(p, s, x, train=False)[0]
    logits, new_state = jax.eval_shape(
        lambda p, s, x: net.apply(p, s, x, train=True), params, state, x
    )
    assert logits.shape == (2, 10)
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    groups = pruning.trace_groups(fn, params, x, model_state=state)
    producers = {g.name: g.producers for g in groups}
    assert producers["params/blocks/2/conv2/kernel"] == (
        "params/blocks/2/conv2/kernel",
        "params/blocks/2/proj/kernel",
        "params/blocks/3/conv2/kernel",
    )
    masks = [
        np.ones(g.size, bool) if not g.prunable else np.arange(g.size) % 3 != 1 for g in groups
    ]
    small, small_params, small_state = pruning.materialize(
        net, params, groups, masks, model_state=state
    )
    assert small.block_widths[2:4] == (5, 5) and small.mid_widths[2] == 5
    masked = pruning.apply_masks(params, groups, masks)
    want = jax.jit(fn)(masked, state, x)
    got = jax.jit(lambda p, s, x: small.apply(p, s, x, train=False)[0])(
        small_params, small_state, x
    )
    assert got.shape == (2, 10)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(want))))
