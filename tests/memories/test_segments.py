"""``unroll(checkpoint_every=k)`` (segment checkpointing) == the plain ``unroll``, values and
gradients in float64, in the in-loop and the after-loop paths (with a shorter last segment);
its errors; and the circular shift's rolls (NTM eq. 8) against a brute-force NumPy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core.taps import collect_taps
from memjax.core.testing.memory_contract import float64
from memjax.core.unroll import unroll
from memjax.memories import addressing
from memjax.memories.mann import MANNCell
from memjax.memories.ntm import NTMCell
from memjax.nn.lstm import LSTMCell

SMALL = {"memory_size": 6, "memory_width": 2, "dtype": "float64"}
B, T = 2, 7  # T = 7: two segments of 3 and a last one of 1
# (cell, options of the segmented unroll, checkpoint_every); the reference is the same unroll
# without checkpoint_every
CASES = {
    "ntm_after_loop_dots": (
        lambda: NTMCell(3, 4, num_read_heads=2, **SMALL),
        {"precompute": True, "weight_grads": "after_loop", "batched": True, "remat": "dots"},
        3,
    ),
    "mann_in_loop": (
        lambda: MANNCell(3, 4, num_heads=2, controller="feedforward", **SMALL),
        {"precompute": False},
        2,
    ),
}


def _loss(ys, carry):
    return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(jnp.cos(a)) for a in jax.tree_util.tree_leaves(carry))


@pytest.fixture(scope="module", params=sorted(CASES))
def results(request):
    """``(value, grads)`` of the plain and the segmented unroll (params, carry and inputs)."""
    make, options, every = CASES[request.param]
    with float64():
        cell = make()
        rng = np.random.default_rng(0)
        shapes = jax.eval_shape(cell.init_params, jax.random.key(0))
        draw = lambda a, low, lead=(): jnp.asarray(
            rng.uniform(low, 0.5, (*lead, *a.shape)), a.dtype
        )
        theta = jax.tree_util.tree_map(lambda a: draw(a, -0.5), shapes)
        carry = jax.tree_util.tree_map(  # positive: the weightings enter a log (sharpening)
            lambda a: draw(a, 0.05, (B,)), jax.eval_shape(cell.init_carry, theta)
        )
        xs = jnp.asarray(rng.normal(size=(B, T, 3)), jnp.float64)

        def total(theta, carry, xs, segments):
            extra = {"checkpoint_every": every} if segments else {}
            if options.get("batched"):
                ys, out = unroll(cell, theta, carry, xs, **options, **extra)
                return _loss(ys, out)
            run = lambda c, x: _loss(*unroll(cell, theta, c, x, **options, **extra))
            return jnp.sum(jax.vmap(run)(carry, xs))

        grad = jax.value_and_grad(total, argnums=(0, 1, 2))
        both = jax.jit(lambda th, c, x: (grad(th, c, x, False), grad(th, c, x, True)))
        return both(theta, carry, xs)


def test_segments_equal_plain_unroll(results):
    with float64():
        (v_ref, g_ref), (v_seg, g_seg) = results
        assert abs(float(v_seg - v_ref)) <= 1e-10 * max(1.0, abs(float(v_ref)))
        for a, b in zip(jax.tree_util.tree_leaves(g_seg), jax.tree_util.tree_leaves(g_ref)):
            assert a.shape == b.shape
            scale = max(1.0, float(jnp.max(jnp.abs(b))))
            assert float(jnp.max(jnp.abs(a - b))) <= 1e-10 * scale
        assert any(float(jnp.max(jnp.abs(b))) > 0 for b in jax.tree_util.tree_leaves(g_ref))


def test_segment_errors():
    cell = LSTMCell(2, 3)
    theta = jax.eval_shape(cell.init_params, jax.random.key(0))
    carry = jax.eval_shape(cell.init_carry, theta)
    xs = jax.ShapeDtypeStruct((4, 2), jnp.float32)
    run = lambda **kw: jax.eval_shape(lambda p, c, x: unroll(cell, p, c, x, **kw), theta, carry, xs)
    for bad in (0, -1, 2.0, True):
        with pytest.raises((TypeError, ValueError), match="checkpoint_every"):
            run(checkpoint_every=bad)
    with pytest.raises(ValueError, match="checkpoint_every"):
        run(checkpoint_every=2, truncate=2)
    tapped = collect_taps(lambda p, c, x: unroll(cell, p, c, x, checkpoint_every=2), ("any",))
    with pytest.raises(ValueError, match="checkpoint_every"):
        jax.eval_shape(tapped, theta, carry, xs)


@pytest.mark.parametrize("n, radius", [(7, 0), (7, 1), (7, 3), (9, 4), (13, 5)])
def test_circular_shift_matches_loop(n, radius):
    """Rolls (R <= 4) and the gather (R > 4) == w~(i) = sum_o s(o) w((i - o) mod N) by loops."""
    rng = np.random.default_rng(n + radius)
    w, s = rng.random(n), rng.random(2 * radius + 1)
    want = np.array(
        [sum(s[o + radius] * w[(i - o) % n] for o in range(-radius, radius + 1)) for i in range(n)]
    )
    got = addressing.circular_shift(jnp.asarray(w, jnp.float32), jnp.asarray(s, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-7)
