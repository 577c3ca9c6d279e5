"""``unroll(precompute=True)`` (the controller's input projection hoisted out of the scan) ==
the plain step loop, values and gradients, in float64, for every cell and controller."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.controllers import CellLayer
from memjax.core.testing.memory_contract import float64
from memjax.core.unroll import unroll
from memjax.memories.mann import MANNCell
from memjax.memories.nmn import NMNCell
from memjax.memories.ntm import NTMCell
from memjax.nn.lstm import LSTMCell

SMALL = {"memory_size": 5, "memory_width": 2, "dtype": "float64"}
CELLS = {
    "lstm": lambda: LSTMCell(3, 4, dtype="float64"),
    "ntm_feedforward": lambda: NTMCell(3, 4, controller="feedforward", **SMALL),  # MANN's too
    "mann_lstm": lambda: MANNCell(3, 4, num_heads=2, **SMALL),  # the NTM's LSTM path too
    "nmn_lstm": lambda: NMNCell(3, 4, **SMALL),
    "nmn_feedforward": lambda: NMNCell(3, 4, controller="feedforward", **SMALL),
}


def _close(got, want):
    leaves = zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True)
    for a, b in leaves:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_step_projected_equals_step(name):
    """One step from a random carry: outputs, carry and the gradients w.r.t. params, carry and
    input of ``step_projected(project_inputs(xs)[t])`` == ``step(xs[t])``."""
    with float64():
        cell = CELLS[name]()
        theta = cell.init_params(jax.random.key(0))
        carry = cell.init_carry(theta)
        leaves, treedef = jax.tree_util.tree_flatten(carry)
        keys = jax.random.split(jax.random.key(1), len(leaves))
        carry = treedef.unflatten(
            [a + 0.3 * jax.random.normal(k, a.shape, a.dtype) for a, k in zip(leaves, keys)]
        )
        xs = jax.random.normal(jax.random.key(2), (2, 3), jnp.float64)

        @jax.jit
        def both(theta, carry, xs):
            def plain(theta, carry, xs):
                return cell.step(theta, carry, xs[1])

            def projected(theta, carry, xs):
                step_params, pre = cell.project_inputs(theta, xs)
                return cell.step_projected(step_params, carry, pre[1])

            out = []
            for fn in (plain, projected):
                value, vjp = jax.vjp(fn, theta, carry, xs)
                out.append((value, vjp(jax.tree_util.tree_map(jnp.sin, value))))
            return out

        (want, want_g), (got, got_g) = both(theta, carry, xs)
        _close((got, got_g), (want, want_g))


def test_unroll_and_cell_layer_precompute_equal_the_step_loop_with_windows():
    with float64():
        cell = NTMCell(3, 4, num_read_heads=2, **SMALL)
        layer = CellLayer(cell, truncate=3, precompute=True)
        theta = cell.init_params(jax.random.key(0))
        xs = jax.random.normal(jax.random.key(1), (5, 3), jnp.float64)

        @jax.jit
        def all_three(theta):
            def loss(theta, run):
                ys = run(theta)
                return jnp.sum(jnp.sin(ys)), ys

            runs = [
                lambda th, pc=pc: unroll(
                    cell, th, cell.init_carry(th), xs, truncate=3, precompute=pc
                )[0]
                for pc in (False, True)
            ] + [lambda th: layer.apply(th, layer.init_state(th), xs)[0]]
            return [jax.value_and_grad(loss, has_aux=True)(theta, run) for run in runs]

        want, got, got_layer = all_three(theta)
        _close(got, want)
        _close(got_layer, want)


def test_bad_precompute_values_are_named():
    cell = NTMCell(3, 4, memory_size=5, memory_width=2)
    theta = cell.init_params(jax.random.key(0))
    with pytest.raises(TypeError, match="precompute"):
        CellLayer(cell, precompute="yes")
    with pytest.raises(TypeError, match="precompute"):
        unroll(cell, theta, cell.init_carry(theta), jnp.ones((4, 3)), precompute=1)
