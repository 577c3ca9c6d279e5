"""Pytree groups and operators: every grouping on Flax NNX, Equinox and memjax kernels against
segment ids built in NumPy from the reduce axes of the paper's layouts (spec table §7.1),
coupled bias / BatchNorm, per-layer k, weights, and errors that name the argument."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax.nn import ChannelAxes, Conv2D, Dense
from memjax.sparsity import (
    count_nonzero_groups,
    equinox_layers,
    flax_layers,
    group_lasso_penalty,
    group_norms_tree,
    group_weights,
    leaf_paths,
    nonzero_groups_per_layer,
    prox_group_lasso,
    prox_group_lasso_tree,
    prox_wgsef_linear_time,
    prox_wgsef_tree,
    tree_groups,
    wgsef_penalty,
)
from tests.sparsity.references import wgsef_closed_form

# reduce axes of a 4-d conv kernel, spec table §7.1 (None: every axis, (): no axis)
FLAX_REDUCE = {
    "filter": (0, 1, 2),
    "channel": (0, 1, 3),
    "filter_shape": (3,),
    "layer": None,
    "unstructured": (),
}
EQX_REDUCE = {
    "filter": (1, 2, 3),
    "channel": (0, 2, 3),
    "filter_shape": (0,),
    "layer": None,
    "unstructured": (),
}


def ids_from_reduce(shape, reduce):
    """Group id of every entry: the row-major index over the kept (non-reduced) axes."""
    reduce = tuple(range(len(shape))) if reduce is None else reduce
    kept = [a for a in range(len(shape)) if a not in reduce]
    grids = np.indices(shape)
    if not kept:
        return np.zeros(shape, np.int64), 1
    sizes = [shape[a] for a in kept]
    return np.ravel_multi_index([grids[a] for a in kept], sizes), int(np.prod(sizes))


class FlaxNet(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(3, 4, (3, 3), use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.fc = nnx.Linear(4, 2, rngs=rngs)


@pytest.fixture(scope="module")
def flax_state():
    net = FlaxNet(nnx.Rngs(0))
    state = nnx.state(net, nnx.Param)
    rng = np.random.default_rng(0)
    state = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape), a.dtype), state)
    return net, state


@pytest.fixture(scope="module")
def eqx_model():
    keys = jax.random.split(jax.random.key(1), 2)
    return eqx.nn.Sequential(
        [eqx.nn.Conv2d(3, 4, 3, use_bias=False, key=keys[0]), eqx.nn.Lambda(jax.nn.relu)]
    )


def check_against_flat(params, groups, kernel, ids, m, k=2, lam=0.3):
    """The tree prox/penalty on a single-kernel model == the flat jit prox/value and the NumPy
    linear-time prox over the reference ids."""
    x = np.asarray(kernel, np.float64)
    out = prox_wgsef_tree(params, 1.0, groups, min(k, m), lam)
    (got,) = [leaf for path, leaf in leaf_paths(out) if np.shape(leaf) == x.shape]
    ref = prox_wgsef_linear_time(x.ravel(), ids.ravel(), m, min(k, m), lam).reshape(x.shape)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(
        wgsef_penalty(params, groups, min(k, m)),
        wgsef_closed_form(x.ravel(), ids.ravel(), m, min(k, m)),
        rtol=2e-5,
    )


def check_every_grouping(params, layers, kernel, reduce_axes):
    """Group norms of every grouping == NumPy over the reference ids (spec table §7.1)."""
    x = np.asarray(kernel, np.float64)
    for grouping, reduce in reduce_axes.items():
        groups = tree_groups(params, layers, grouping)
        ids, m = ids_from_reduce(x.shape, reduce)
        assert groups.num_groups == m, grouping
        want = np.sqrt(np.bincount(ids.ravel(), weights=x.ravel() ** 2, minlength=m))
        np.testing.assert_allclose(group_norms_tree(params, groups), want, rtol=1e-6)


def test_flax_conv_kernel_every_grouping(flax_state):
    net, state = flax_state
    layers = {"conv": flax_layers(net)["conv"]}
    kernel = state["conv"]["kernel"][...]
    check_every_grouping(state, layers, kernel, FLAX_REDUCE)
    ids, m = ids_from_reduce(kernel.shape, FLAX_REDUCE["filter_shape"])
    check_against_flat(state, tree_groups(state, layers, "filter_shape"), kernel, ids, m)


def test_equinox_conv_kernel_every_grouping(eqx_model):
    params = eqx.filter(eqx_model, eqx.is_array)
    layers = equinox_layers(eqx_model)
    kernel = eqx_model.layers[0].weight
    check_every_grouping(params, layers, kernel, EQX_REDUCE)
    groups = tree_groups(params, layers, "filter")
    ids, m = ids_from_reduce(kernel.shape, EQX_REDUCE["filter"])
    check_against_flat(params, groups, kernel, ids, m)
    # the prox returns a model of the same structure (eqx.combine puts it back)
    out = prox_wgsef_tree(params, 1.0, groups, 1, 0.5)
    model = eqx.combine(out, eqx_model)
    assert model.layers[0].weight.shape == kernel.shape


def test_flax_bias_and_batchnorm_couple_to_filters(flax_state):
    net, state = flax_state
    layers = flax_layers(net)
    assert set(layers) == {"conv", "fc"} and "bias" in layers["fc"]
    groups = tree_groups(state, layers, "filter", couple={"bn": "conv"})
    kernel = np.asarray(state["conv"]["kernel"][...], np.float64)
    bn = [np.asarray(state["bn"][n][...], np.float64) for n in ("scale", "bias")]
    fc = [np.asarray(state["fc"][n][...], np.float64) for n in ("kernel", "bias")]
    want = np.concatenate(
        [
            np.sqrt((kernel**2).sum(axis=(0, 1, 2)) + bn[0] ** 2 + bn[1] ** 2),
            np.sqrt((fc[0] ** 2).sum(axis=0) + fc[1] ** 2),
        ]
    )
    np.testing.assert_allclose(group_norms_tree(state, groups), want, rtol=1e-6)
    assert groups.sizes.tolist() == [29] * 4 + [5] * 2
    assert groups.kernel_sizes.tolist() == [27] * 4 + [4] * 2
    # one prox step scales the filter, its BN scale and shift by the same factor
    out = prox_wgsef_tree(state, 1.0, groups, {"conv": 2, "fc": 1}, {"conv": 3.0, "fc": 0.1})
    f_kernel = np.asarray(out["conv"]["kernel"][...]) / kernel
    f_bn = np.asarray(out["bn"]["scale"][...]) / bn[0]
    np.testing.assert_allclose(f_kernel[0, 0, 0], f_bn, rtol=1e-5)
    # per-layer k == each layer's flat prox on its own
    nu = want[:4]
    ref = prox_wgsef_linear_time(nu, np.arange(4), 4, 2, 3.0) / nu
    np.testing.assert_allclose(f_bn, ref, rtol=1e-5, atol=1e-7)
    counts = nonzero_groups_per_layer(out, groups)
    assert int(counts["conv"]) >= 2 and int(count_nonzero_groups(out, groups)) >= 3


def test_memjax_layers_channel_grouping_and_weights():
    layers = {"fc1": Dense(5, 3), "conv": Conv2D(2, 3, 3)}
    params = {
        n: layer.init_params(jax.random.key(i)) for i, (n, layer) in enumerate(layers.items())
    }
    groups = tree_groups(params, layers, {"fc1": "channel", "conv": "filter"})
    assert groups.layers == ("fc1", "conv") and groups.slices == ((0, 5), (5, 8))
    w = np.asarray(params["fc1"]["kernel"], np.float64)
    np.testing.assert_allclose(group_norms_tree(params, groups)[:5], np.linalg.norm(w, axis=1))
    np.testing.assert_array_equal(group_weights(groups, "size"), [3] * 5 + [19] * 3)
    flops = group_weights(groups, "flops", uses={"conv": 36})
    np.testing.assert_array_equal(flops, [3] * 5 + [18 * 36] * 3)
    # weighted group lasso on the tree == the flat prox with the same weights
    d = group_weights(groups, "size")
    out = prox_group_lasso_tree(params, 0.5, groups, 0.2, d)
    ref = prox_group_lasso(
        jnp.asarray(w), jnp.broadcast_to(jnp.arange(5)[:, None], w.shape), 5, 0.1, d[:5]
    )
    np.testing.assert_allclose(out["fc1"]["kernel"], ref, rtol=1e-6)
    nu = np.asarray(group_norms_tree(params, groups), np.float64)
    np.testing.assert_allclose(
        group_lasso_penalty(params, groups, d), np.sum(np.sqrt(d) * nu), rtol=1e-6
    )
    # leaves in no group pass through: fc1's bias under channel grouping
    np.testing.assert_array_equal(out["fc1"]["bias"], params["fc1"]["bias"])


def test_unstructured_and_layer_groupings_cover_every_scalar():
    layers = {"fc": Dense(3, 2)}
    params = {"fc": layers["fc"].init_params(jax.random.key(0))}
    g = tree_groups(params, layers, "unstructured")
    assert g.num_groups == 8 and g.sizes.tolist() == [1] * 8
    flat = np.concatenate([np.ravel(params["fc"]["bias"]), np.ravel(params["fc"]["kernel"])])
    np.testing.assert_allclose(group_norms_tree(params, g), np.abs(flat), rtol=1e-6)
    g = tree_groups(params, layers, "layer")
    assert g.num_groups == 1
    np.testing.assert_allclose(group_norms_tree(params, g), [np.linalg.norm(flat)], rtol=1e-6)


def test_jit_equals_eager_and_traced_k_lam():
    layers = {"fc": Dense(4, 6)}
    params = {"fc": layers["fc"].init_params(jax.random.key(3))}
    g = tree_groups(params, layers)
    f = jax.jit(lambda p, k, lam: prox_wgsef_tree(p, 0.5, g, k, lam))
    a = f(params, jnp.int32(2), jnp.float32(0.7))
    b = prox_wgsef_tree(params, 0.5, g, 2, 0.7)
    np.testing.assert_allclose(a["fc"]["kernel"], b["fc"]["kernel"], rtol=1e-6)


def test_errors_name_the_argument():
    layers = {"fc": Dense(4, 3)}
    params = {"fc": layers["fc"].init_params(jax.random.key(0))}
    g = tree_groups(params, layers)
    with pytest.raises(ValueError, match=r"^grouping:"):
        tree_groups(params, layers, "rows")
    with pytest.raises(ValueError, match=r"^params:"):
        tree_groups({"fc": {"kernel": params["fc"]["kernel"]}}, layers)
    with pytest.raises(ValueError, match=r"^couple:"):
        tree_groups(params, layers, couple={"bn": "conv"})
    with pytest.raises(ValueError, match=r"^grouping:"):
        tree_groups(params, layers, {"other": "filter"})
    with pytest.raises(TypeError, match=r"^layers:"):
        tree_groups(params, {"fc": 3})
    with pytest.raises(ValueError, match=r"^params:.*shape"):
        prox_wgsef_tree({"fc": {**params["fc"], "kernel": jnp.ones((5, 3))}}, 1.0, g, 1, 1.0)
    with pytest.raises(ValueError, match=r"^params:.*does not have"):
        prox_wgsef_tree({"fc": {"kernel": params["fc"]["kernel"]}}, 1.0, g, 1, 1.0)
    with pytest.raises(ValueError, match=r"^k:"):
        prox_wgsef_tree(params, 1.0, g, 4, 1.0)
    with pytest.raises(ValueError, match=r"^k:"):
        prox_wgsef_tree(params, 1.0, g, 0, 1.0)
    with pytest.raises(ValueError, match=r"^k:"):
        prox_wgsef_tree(params, 1.0, g, {"other": 1}, 1.0)
    with pytest.raises(ValueError, match=r"^lam:"):
        prox_wgsef_tree(params, 1.0, g, 1, -1.0)
    with pytest.raises(ValueError, match=r"^step:"):
        prox_wgsef_tree(params, -0.1, g, 1, 1.0)
    with pytest.raises(ValueError, match=r"^weights:"):
        prox_wgsef_tree(params, 1.0, g, 1, 1.0, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"^weights:"):
        prox_wgsef_tree(params, 1.0, g, 1, 1.0, "flops")  # needs group_weights(..., uses=)
    bad = {"fc": {**params["fc"], "bias": jnp.array([0.0, jnp.nan, 0.0])}}
    with pytest.raises(ValueError, match=r"^params: expected finite"):
        prox_wgsef_tree(bad, 1.0, g, 1, 1.0)
    with pytest.raises(TypeError, match=r"^groups:"):
        prox_wgsef_tree(params, 1.0, "filter", 1, 1.0)
    with pytest.raises(ValueError, match=r"^uses:"):
        group_weights(g, "flops", uses={"conv": 3})


def test_layers_need_a_single_channel_axis():
    params = {"lstm": {"w": jnp.ones((3, 4, 3))}}
    with pytest.raises(ValueError, match=r"^layers:.*several"):
        tree_groups(params, {"lstm": {"w": ChannelAxes(out=(0, 2))}})


def test_blocks_share_one_padded_root_finder():
    """Per-layer k: the blocks run as one vmapped root finder on zero-padded rows; each block's
    factors equal those of its own prox (a zero group, two saturated groups, k = width,
    weights uniform and not)."""
    from memjax.sparsity._prox import prox_scale
    from memjax.sparsity._trees import block_prox_scales

    rng = np.random.default_rng(11)
    spans, ks, lams = ((0, 3), (3, 10), (10, 14)), (2, 3, 4), (0.3, 1.5, 4.0)
    uniform = (True, False, True)
    nu = rng.exponential(size=14)
    nu[1] = 0.0
    nu[4:6] = 9.0  # saturated groups in the block with k = 3
    d = np.concatenate([np.full(3, 2.0), rng.uniform(0.5, 2.0, 7), np.full(4, 3.0)])
    scales = jax.jit(block_prox_scales, static_argnums=(2, 5, 6))
    got = scales(jnp.asarray(nu), jnp.asarray(d), spans, ks, lams, "sort", uniform)
    single = jax.jit(prox_scale, static_argnums=(4, 5))
    for (lo, hi), k, lam, un in zip(spans, ks, lams, uniform):
        want = single(jnp.asarray(nu[lo:hi]), k, lam, jnp.asarray(d[lo:hi]), "sort", un)
        np.testing.assert_allclose(got[lo:hi], want, rtol=1e-6, atol=1e-7)
