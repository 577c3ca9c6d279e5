"""``unroll(weight_grads="after_loop")`` (the weights' gradients formed after the loop, one
matmul) == a token-by-token Python loop of ``cell.step``, values and gradients in float64, for
the LSTM, NTM, MANN and NMN cells, unbatched under ``jax.vmap`` and with ``batched=True``, with
and without truncation windows."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core.linear import linear, linear_calls
from memjax.core.taps import collect_taps
from memjax.core.testing.memory_contract import float64
from memjax.core.unroll import unroll
from memjax.memories.mann import MANNCell
from memjax.memories.nmn import NMNCell
from memjax.memories.ntm import NTMCell
from memjax.nn.lstm import LSTMCell

SMALL = {"memory_size": 5, "memory_width": 2, "dtype": "float64"}
# (cell, options of the unroll): the deferred weights are the LSTM's w_x, w_h (w_rh with
# precompute), the interface kernel and the NMN's heads
CASES = {
    "lstm_windows_remat": (
        lambda: LSTMCell(3, 4, dtype="float64"),
        {"precompute": False, "truncate": 2, "remat": True},
    ),
    "ntm_lstm": (lambda: NTMCell(3, 4, num_read_heads=2, **SMALL), {"precompute": True}),
    "mann_feedforward": (
        lambda: MANNCell(3, 4, num_heads=2, controller="feedforward", **SMALL),
        {"precompute": True, "remat": "dots"},
    ),
    "nmn_lstm": (lambda: NMNCell(3, 4, **SMALL), {"precompute": False}),
}
DEFERRED = {"lstm_windows_remat": 2, "ntm_lstm": 2, "mann_feedforward": 2, "nmn_lstm": 8}
VMAPPED = ("lstm_windows_remat",)  # after_loop under an outer vmap too (fewer: compile time)
B, T = 2, 3


def _reference(cell, theta, carry, xs, truncate):
    """A Python loop over ``cell.step``; the carry detached at every window boundary."""
    ys = []
    for t in range(xs.shape[0]):
        if truncate is not None and t > 0 and t % truncate == 0:
            carry = jax.lax.stop_gradient(carry)
        y, carry = cell.step(theta, carry, xs[t])
        ys.append(y)
    return jnp.stack(ys), carry


def _loss(ys, carry):
    return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(jnp.cos(a)) for a in jax.tree_util.tree_leaves(carry))


def _random_like(tree, rng, batch=()):
    """NumPy draws shaped like ``tree``'s leaves (no JAX random: its draws compile slowly)."""
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(rng.uniform(-0.5, 0.5, (*batch, *a.shape)), a.dtype), tree
    )


def _inputs(cell, seed=0):
    """Random params, a batch of random carries and inputs ``(B, T, 3)``, float64."""
    rng = np.random.default_rng(seed)
    theta = _random_like(jax.eval_shape(cell.init_params, jax.random.key(0)), rng)
    carry = _random_like(jax.eval_shape(cell.init_carry, theta), rng, (B,))
    xs = jnp.asarray(rng.normal(size=(B, T, 3)), jnp.float64)
    return theta, carry, xs


@pytest.fixture(scope="module", params=sorted(CASES))
def results(request):
    """Value and gradients (params, carry, xs) of the reference, of ``after_loop`` under vmap
    and of ``after_loop`` with ``batched=True``, from one jitted call per case."""
    make, options = CASES[request.param]
    with float64():
        cell = make()
        theta, carry, xs = _inputs(cell)
        truncate = options.get("truncate")

        def reference(theta, carry, xs):
            run = functools.partial(_reference, cell, theta, truncate=truncate)
            return _loss(*jax.vmap(run)(carry, xs))

        def vmapped(theta, carry, xs):
            run = lambda c, x: unroll(cell, theta, c, x, weight_grads="after_loop", **options)
            return _loss(*jax.vmap(run)(carry, xs))

        def in_loop_dots(theta, carry, xs):
            run = lambda c, x: unroll(cell, theta, c, x, **{**options, "remat": "dots"})
            return _loss(*jax.vmap(run)(carry, xs))

        def batched(theta, carry, xs):
            out = unroll(cell, theta, carry, xs, weight_grads="after_loop", batched=True, **options)
            return _loss(*out)

        def all_runs(theta, carry, xs):
            grad = lambda f: jax.value_and_grad(f, argnums=(0, 1, 2))(theta, carry, xs)
            runs = (reference, batched)
            if request.param in VMAPPED:  # + the default in-loop gradients with remat="dots"
                runs = (*runs, vmapped, in_loop_dots)
            return [grad(f) for f in runs]

        compiled = jax.jit(all_runs)
        out = jax.device_get(compiled(theta, carry, xs))
        found = []

        def deferred(theta, carry, xs):  # the leaf indices of the step's linear calls
            step, step_params, pre = cell.step, theta, xs[0]
            if options["precompute"]:
                step, (step_params, pre) = cell.step_projected, cell.project_inputs(theta, xs[0])
            example = jax.tree_util.tree_map(lambda a: a[0], carry)
            found.extend(linear_calls(step, step_params, example, pre, {}, {})[0])

        jax.eval_shape(deferred, theta, carry, xs)
        return request.param, out, found


def _close(got, want):
    leaves = zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True)
    for a, b in leaves:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


def test_after_loop_equals_the_step_loop(results):
    _, (want, *got), _ = results
    for value_and_grads in got:  # batched=True; under vmap and in-loop "dots" where VMAPPED
        _close(value_and_grads, want)
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree_util.tree_leaves(want[1][0]))


def test_the_weights_are_deferred(results):
    """The check above is not vacuous: the step's ``linear`` calls hit leaves of its params."""
    name, _, found = results
    assert len(found) == DEFERRED[name]


def test_batched_in_loop_equals_vmap():
    with float64():
        cell = LSTMCell(3, 4, dtype="float64")
        theta, carry, xs = _inputs(cell)
        want = jax.vmap(lambda c, x: unroll(cell, theta, c, x))(carry, xs)
        _close(unroll(cell, theta, carry, xs, batched=True), want)


def test_linear_is_the_product_outside_unroll():
    x, w = jnp.arange(3.0), jnp.arange(24.0).reshape(3, 2, 4)
    np.testing.assert_array_equal(linear(x, w), np.asarray(x) @ np.asarray(w).reshape(3, 8))


def test_bad_weight_grads_options_are_named():
    cell = LSTMCell(3, 4)
    theta = _random_like(
        jax.eval_shape(cell.init_params, jax.random.key(0)), np.random.default_rng(0)
    )
    carry, xs = cell.init_carry(theta), jnp.ones((4, 3))
    with pytest.raises(ValueError, match="weight_grads"):
        unroll(cell, theta, carry, xs, weight_grads="later")
    with pytest.raises(ValueError, match="weight_grads"):
        unroll(cell, theta, carry, xs, truncate=2, boundary_tap="b", weight_grads="after_loop")
    with pytest.raises(ValueError, match="weight_grads"):
        collect_taps(lambda: unroll(cell, theta, carry, xs, weight_grads="after_loop"), ())()
    with pytest.raises(ValueError, match="remat"):
        unroll(cell, theta, carry, xs, remat="all")
    with pytest.raises(TypeError, match="batched"):
        unroll(cell, theta, carry, xs, batched=1)
    with pytest.raises(ValueError, match="xs"):
        unroll(cell, theta, carry, jnp.ones(4), batched=True)
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), carry)
    with pytest.raises(ValueError, match="carry"):
        unroll(cell, theta, batch, jnp.ones((3, 4, 3)), batched=True)
