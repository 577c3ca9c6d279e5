"""The width policy: ``min_width`` and ``round_to`` in keep counts and masks, and
``nested_mask`` per-stage widths of a ResNet's residual stream against a brute-force search."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.models.cnn import ResNet
from memjax.pruning import (
    Group,
    Member,
    keep_count,
    masks_from_scores,
    materialize,
    nested_mask,
    trace_groups,
)

NET = ResNet(1, (4, 8, 16), num_classes=3, in_channels=1)


@pytest.fixture(scope="module")
def traced():
    params = jax.jit(NET.init_params)(jax.random.key(0))
    state = NET.init_state()
    groups = trace_groups(
        lambda p, s, x: NET.apply(p, s, x, train=False)[0],
        params,
        jnp.zeros((1, 8, 8, 1)),
        model_state=state,
    )
    stream = next(g for g in groups if "params/stem/kernel" in g.producers)
    return params, state, groups, stream


def test_min_width_and_round_to():
    assert keep_count(16, 0.9) == 1 and keep_count(16, 0.9, min_width=4) == 4
    assert keep_count(3, 0.5, min_width=8) == 3  # never more than the group
    assert keep_count(20, 0.63, round_to=2) == 8 and keep_count(20, 0.72, round_to=2) == 6
    units = np.arange(10)
    g = Group("w", 10, (Member(("w",), 1, units, units, "out"),), ("w",), True)
    scores = [np.arange(10.0)]
    mask = masks_from_scores(scores, [g], ratio=0.9, min_width=3)[0]
    assert np.flatnonzero(mask).tolist() == [7, 8, 9]
    mask = masks_from_scores(scores, [g], n_keep=3, round_to=2, min_width=2)[0]
    assert int(mask.sum()) == 4
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="min_width"):
            masks_from_scores(scores, [g], ratio=0.5, min_width=bad)


def test_nested_mask_is_the_best_mask_with_those_stage_widths(traced):
    """Brute force: among all masks with the given kept count in each stage, the one with the
    largest total score (scores distinct, so it is unique)."""
    _, _, _, stream = traced
    stages = NET.stream_stages()
    unit_sets = [set(stream.member(*s).units.tolist()) for s in stages]
    assert [len(u) for u in unit_sets] == [4, 8, 16] and unit_sets[0] < unit_sets[1] < unit_sets[2]
    scores = np.random.default_rng(0).permutation(stream.size).astype(float)
    widths = (2, 4, 10)
    free = [sorted(unit_sets[0])] + [sorted(unit_sets[s] - unit_sets[s - 1]) for s in (1, 2)]
    need = (2, 2, 6)
    best, best_sum = None, -np.inf
    for picks in itertools.product(*(itertools.combinations(f, k) for f, k in zip(free, need))):
        chosen = [u for p in picks for u in p]
        if scores[chosen].sum() > best_sum:
            best, best_sum = sorted(chosen), scores[chosen].sum()
    mask = nested_mask(stream, scores, widths, stages=stages)
    assert np.flatnonzero(mask).tolist() == best
    assert [int(mask[sorted(u)].sum()) for u in unit_sets] == list(widths)


def test_nested_mask_gives_a_resnet_its_stage_widths(traced):
    params, state, groups, stream = traced
    i = groups.index(stream)
    masks = [np.ones(g.size, bool) for g in groups]
    masks[i] = nested_mask(
        stream, np.arange(stream.size, 0, -1.0), (2, 4, 8), stages=NET.stream_stages()
    )
    small, _, _ = materialize(NET, params, groups, masks, model_state=state)
    assert small.stem_width == 2
    assert [small.block_width(b) for b in range(3)] == [2, 4, 8]


def test_nested_mask_errors(traced):
    _, _, _, stream = traced
    stages, scores = NET.stream_stages(), np.zeros(stream.size)
    with pytest.raises(ValueError, match="widths: expected one per stage"):
        nested_mask(stream, scores, (2, 4), stages=stages)
    with pytest.raises(ValueError, match="widths"):
        nested_mask(stream, scores, (4, 2, 8), stages=stages)  # a stage cannot shrink
    with pytest.raises(ValueError, match="widths"):
        nested_mask(stream, scores, (5, 8, 16), stages=stages)  # the stem has 4
    with pytest.raises(ValueError, match="stages"):
        nested_mask(stream, scores, (8, 2, 16), stages=stages[::-1][:2] + stages[:1])
    with pytest.raises(ValueError, match="scores"):
        nested_mask(stream, np.zeros(3), (2, 4, 8), stages=stages)
