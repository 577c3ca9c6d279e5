"""Masks and surgery: masked logits equal materialised logits for every CNN; keep counts;
group scores; save/load of a materialised model; errors naming the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.models.cnn import VGG, LeNet5, ResNet
from memjax.pruning import (
    Group,
    Member,
    apply_masks,
    count_params,
    group_scores,
    keep_count,
    masks_from_scores,
    materialize,
    path_name,
    shrink,
    trace_groups,
    tree_paths,
)
from memjax.train import load_pytree, save_pytree

RNG = np.random.default_rng(0)


def random_tree(shapes):
    """Arrays shaped like ``shapes`` (kernels scaled by fan-in); BatchNorm variances positive."""

    def fill(path, s):
        value = RNG.normal(size=s.shape)
        if len(s.shape) >= 2:
            value /= np.sqrt(np.prod(s.shape[:-1]))
        if getattr(path[-1], "name", None) == "var":
            value = np.abs(value) + 0.5
        return jnp.asarray(value, s.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def model_and_variables(net):
    params = random_tree(jax.eval_shape(net.init_params, jax.random.key(0)))
    state = random_tree(jax.eval_shape(net.init_state))
    return params, state


CASES = [
    (LeNet5(in_channels=2, channels=(4, 6), hidden=(10, 8), num_classes=5), (3, 32, 32, 2)),
    (VGG(cfg=(6, "M", 8, 8, "M", 10), hidden=12, num_classes=4), (3, 8, 8, 3)),
    (ResNet(blocks_per_stage=2, widths=(4, 8, 8), num_classes=3), (3, 8, 8, 3)),
]


@pytest.fixture(scope="module", params=range(len(CASES)), ids=["lenet", "vgg", "resnet"])
def pruned_case(request):
    """One CNN, its random variables, traced groups, masks at ratio 0.5 and the surgery."""
    net, shape = CASES[request.param]
    params, state = model_and_variables(net)
    x = jnp.asarray(RNG.normal(size=shape), jnp.float32)

    def logits(p, s, x):
        return net.apply(p, s, x, train=False)[0]

    groups = trace_groups(logits, params, x, model_state=state)
    scores = [RNG.normal(size=g.size) for g in groups]
    masks = masks_from_scores(scores, groups, ratio=0.5)
    small = materialize(net, params, groups, masks, model_state=state)
    return net, params, state, x, groups, masks, small


def test_masked_logits_equal_materialised_logits(pruned_case):
    net, params, state, x, groups, masks, (small, p2, s2) = pruned_case
    assert count_params(p2) < count_params(params)
    masked = apply_masks(params, groups, masks)
    for train in (False, True):
        want = jax.jit(lambda p, s, x, t=train: net.apply(p, s, x, train=t)[0])(masked, state, x)
        got = jax.jit(lambda p, s, x, t=train: small.apply(p, s, x, train=t)[0])(p2, s2, x)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * max(1.0, np.abs(want).max()))
    # the kept BatchNorm statistics are copied, not re-initialised
    kept = shrink(params, groups, masks, model_state=state).kept
    old, new = jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(s2)
    for path, a, b in zip(tree_paths(state, ("model_state",)), old, new):
        index = kept.get((path_name(path), 0))
        np.testing.assert_array_equal(b, a if index is None else np.asarray(a)[index])


def test_folded_batchnorm_equals_evaluation_mode_after_surgery(pruned_case):
    net, params, state, x, groups, masks, (small, p2, s2) = pruned_case
    if isinstance(net, LeNet5):  # no BatchNorm, no folded(): an error naming fold_bn
        with pytest.raises(TypeError, match="fold_bn"):
            materialize(net, params, groups, masks, model_state=state, fold_bn=True)
        return
    folded, pf, sf = materialize(net, params, groups, masks, model_state=state, fold_bn=True)
    assert folded.fold_bn and sf == {} and count_params(pf) < count_params(p2)
    assert folded.pruned({}) == folded
    assert jax.tree_util.tree_structure(pf) == jax.tree_util.tree_structure(
        jax.eval_shape(folded.init_params, jax.random.key(0))
    )
    want = jax.jit(lambda p, s, x: small.apply(p, s, x, train=False)[0])(p2, s2, x)
    got = jax.jit(lambda p, x: folded.apply(p, sf, x, train=False)[0])(pf, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, np.abs(want).max()))
    with pytest.raises(ValueError, match="train"):
        folded.apply(pf, sf, x, train=True)
    with pytest.raises(TypeError, match="fold_bn"):
        materialize(net, params, groups, masks, model_state=state, fold_bn="yes")


def test_resnet_surgery_keeps_coupled_stream_channels_and_remaps_shortcuts():
    net = ResNet(blocks_per_stage=1, widths=(2, 4, 8), num_classes=3)
    params, state = model_and_variables(net)
    x = jnp.ones((1, 8, 8, 3))
    groups = trace_groups(
        lambda p, s, x: net.apply(p, s, x, train=False)[0], params, x, model_state=state
    )
    keep = np.zeros(8, bool)
    keep[[0, 3, 5, 7]] = True  # units 3, 4 carry the stem's channels 0, 1; 2..5 block 1's
    masks = [keep] + [np.ones(g.size, bool) for g in groups[1:]]
    small, p2, _ = materialize(net, params, groups, masks, model_state=state)
    assert small.stem_width == 1 and small.block_widths == (1, 2, 4)
    # stem channel 0 (unit 3) -> block 1 channel 1 of {1, 3} -> block 2 channel 1 of {0,3,5,7}
    assert small.shortcut(1) == (2, (0, -1))
    assert small.shortcut(2) == (2, (-1, 0, 1, -1))
    assert p2["stem"]["kernel"].shape == (3, 3, 3, 1)
    np.testing.assert_array_equal(
        p2["fc"]["kernel"], np.asarray(params["fc"]["kernel"])[[0, 3, 5, 7]]
    )


def test_save_and_load_a_materialised_model(tmp_path):
    net, shape = CASES[1]
    params, state = model_and_variables(net)
    x = jnp.asarray(RNG.normal(size=shape), jnp.float32)
    groups = trace_groups(
        lambda p, s, x: net.apply(p, s, x, train=False)[0], params, x, model_state=state
    )
    masks = masks_from_scores([np.arange(g.size, dtype=float) for g in groups], groups, ratio=0.4)
    small, p2, s2 = materialize(net, params, groups, masks, model_state=state)
    save_pytree(tmp_path / "pruned", {"params": p2, "state": s2})
    like = {
        "params": jax.eval_shape(small.init_params, jax.random.key(0)),
        "state": jax.eval_shape(small.init_state),
    }
    back = load_pytree(tmp_path / "pruned", like=like)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves((p2, s2))):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        small.apply(back["params"], back["state"], x, train=False)[0],
        small.apply(p2, s2, x, train=False)[0],
    )


def test_fold_batchnorm_matches_numpy_conv_then_batchnorm():
    from memjax.models.cnn.layers import fold_batchnorm
    from memjax.nn import BatchNormState

    kernel = RNG.normal(size=(3, 3, 2, 4))
    bias, gamma, beta = RNG.normal(size=4), RNG.normal(size=4), RNG.normal(size=4)
    mean, var, eps = RNG.normal(size=4), np.abs(RNG.normal(size=4)) + 0.1, 1e-3
    x = RNG.normal(size=(1, 5, 5, 2))
    f = fold_batchnorm(
        {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)},
        {"scale": jnp.asarray(gamma), "bias": jnp.asarray(beta)},
        BatchNormState(jnp.asarray(mean), jnp.asarray(var)),
        eps,
    )

    def conv(x, w, b):  # VALID 3x3 correlation in NumPy
        out = np.zeros((3, 3, w.shape[-1]))
        for i in range(3):
            for j in range(3):
                out[i, j] = np.einsum("hwc,hwco->o", x[0, i : i + 3, j : j + 3], w) + b
        return out

    want = (conv(x, kernel, bias) - mean) / np.sqrt(var + eps) * gamma + beta
    got = conv(x, np.asarray(f["kernel"], np.float64), np.asarray(f["bias"], np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def simple_groups():
    a = Group(
        "params/a",
        4,
        (Member(("params", "a"), 1, np.arange(4), np.arange(4), "out"),),
        ("params/a",),
        True,
    )
    b = Group(
        "params/b",
        10,
        (Member(("params", "b"), 1, np.arange(10), np.arange(10), "out"),),
        ("params/b",),
        True,
    )
    fixed = Group(
        "params/c",
        3,
        (Member(("params", "c"), 1, np.arange(3), np.arange(3), "out"),),
        ("params/c",),
        False,
        "reaches an output of fn",
    )
    return [a, b, fixed]


@pytest.mark.parametrize("size, ratio", [(64, 0.65), (64, 0.8), (16, 0.18), (10, 0.7), (3, 0.5)])
def test_keep_counts_follow_floor_of_c_times_one_minus_ratio(size, ratio):
    assert keep_count(size, ratio) == int(np.floor(size * (1 - ratio)))


def test_masks_keep_the_top_scores_with_ties_by_index():
    a, b, fixed = simple_groups()
    masks = masks_from_scores(
        [np.zeros(4), np.array([3, 1, 3, 0, 2, 2, 5, 1, 0, 3.0]), None], [a, b, fixed], ratio=0.5
    )
    assert masks[0].tolist() == [True, True, False, False]  # constant scores: by index
    assert np.flatnonzero(masks[1]).tolist() == [0, 2, 4, 6, 9]  # 5, 3, 3, 3, then 2 at 4
    assert masks[2].all()  # unprunable groups stay whole under a global ratio
    rounded = masks_from_scores(
        [np.zeros(4), np.arange(10.0), None], [a, b, fixed], ratio=0.65, round_to=4
    )
    assert [int(m.sum()) for m in rounded] == [4, 4, 3]  # floor: 1 -> 4, 3 -> 4
    by_name = masks_from_scores(
        {"params/b": np.arange(10.0)}, [a, b, fixed], n_keep={"params/b": 2}
    )
    assert np.flatnonzero(by_name[1]).tolist() == [8, 9] and by_name[0].all()


def test_selection_errors_name_the_argument():
    a, b, fixed = simple_groups()
    scores = [np.zeros(4), np.zeros(10), np.zeros(3)]
    for bad in (-0.1, 1.0, 1.5, "half"):
        with pytest.raises(ValueError, match="ratio"):
            masks_from_scores(scores, [a, b, fixed], ratio=bad)
    with pytest.raises(ValueError, match="ratio: expected one entry per group"):
        masks_from_scores(scores, [a, b, fixed], ratio=[0.5, 0.5])
    with pytest.raises(ValueError, match="keeps 0 of the 4 channels"):
        masks_from_scores(scores, [a, b, fixed], ratio=[0.8, 0.0, 0.0])
    with pytest.raises(ValueError, match="n_keep"):
        masks_from_scores(scores, [a, b, fixed], n_keep=[0, 1, 3])
    with pytest.raises(ValueError, match="cannot be pruned"):
        masks_from_scores(scores, [a, b, fixed], ratio={"params/c": 0.5})
    with pytest.raises(KeyError, match="ratio"):
        masks_from_scores(scores, [a, b, fixed], ratio={"params/zzz": 0.5})
    with pytest.raises(ValueError, match="scores"):
        masks_from_scores([np.zeros(4), np.zeros(9), None], [a, b, fixed], ratio=0.5)
    with pytest.raises(ValueError, match="masks"):
        shrink({"a": jnp.ones((2, 4))}, [a], [np.zeros(4, bool)])


def test_group_scores_aggregate_coupled_producers():
    group = Group(
        "params/p",
        3,
        (
            Member(("params", "p"), 3, np.arange(3), np.arange(3), "out"),
            Member(("params", "q"), 3, np.arange(2), np.array([2, 0]), "out"),
            Member(("params", "r"), 2, np.arange(3), np.arange(3), "in"),
        ),
        ("params/p", "params/q"),
        True,
    )
    layer = {"params/p": np.array([1.0, 2.0, 3.0]), "params/q": np.array([5.0, 7.0])}
    (mean,) = group_scores(layer, [group])
    (total,) = group_scores(layer, [group], reduce="sum")
    (top,) = group_scores(layer, [group], reduce="max")
    np.testing.assert_allclose(mean, [(1 + 7) / 2, 2, (3 + 5) / 2])
    np.testing.assert_allclose(total, [8, 2, 8])
    np.testing.assert_allclose(top, [7, 2, 5])
    assert group_scores({"params/q": np.array([5.0, 7.0])}, [group])[0][1] == np.inf
    assert group_scores({}, [group]) == [None]
    with pytest.raises(KeyError, match="layer_scores"):
        group_scores({"params/zzz": np.ones(3)}, [group])
