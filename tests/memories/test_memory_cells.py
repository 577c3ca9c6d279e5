"""What NTM, MANN and NMN cells share: no NaN over 10,000 steps forward and backward (LSTM and
feed-forward controllers), truncation windows that cut the write taps' gradients exactly, the taps
synthetic gradients attach to, and FD gradients of multi-head MANN. The cell contract over these
cells runs from tests/registry.py (tests/core/test_cell_contract.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import taps, unroll
from memjax.core.testing import cell_contract, float64
from memjax.memories.head_cell import FeedForwardController
from memjax.memories.mann import MANNCell
from memjax.memories.nmn import NMNCell
from memjax.memories.ntm import NTMCell
from tests.registry import CELL_FACTORIES

# The cell contract runs over tests/registry.py's CELL_FACTORIES (tests/core/test_cell_contract.py),
# which holds one cell per memory with both controllers between them (NTM-LSTM, MANN-LSTM,
# NMN-FF); here are the other controller of each too (all six passed the full contract when
# written; the suite's time budget runs three). MANN has one head: with n > 1 heads LRUA writes the
# same content into the n least-used slots, whose usages then differ by rounding only, so vmap and
# single calls may pick different slots in float32 (module doc of memjax.memories.mann);
# test_mann.py checks multi-head MANN against NumPy in float64.
FACTORIES = {
    **{name: CELL_FACTORIES[name] for name in ("ntm_lstm", "mann_lstm", "nmn_feedforward")},
    "ntm_feedforward": lambda dtype: NTMCell(
        3,
        4,
        memory_size=5,
        memory_width=3,
        controller="feedforward",
        order="write_read",
        dtype=dtype,
    ),
    "mann_feedforward": lambda dtype: MANNCell(
        3,
        4,
        memory_size=5,
        memory_width=3,
        num_heads=1,
        controller="feedforward",
        separate_add=True,
        order="read_write",
        dtype=dtype,
    ),
    "nmn_lstm": lambda dtype: NMNCell(3, 4, memory_size=5, memory_width=3, dtype=dtype),
}


def test_multi_head_mann_gradients_equal_finite_differences():
    """Two LRUA heads (n = 2 least-used slots): gradients through unroll vs finite differences."""
    cell_contract.check_cell_gradients(
        lambda dtype: MANNCell(3, 4, memory_size=6, memory_width=3, num_heads=2, dtype=dtype)
    )


NAN_STEPS = 10_000


def _long_inputs(d_input):
    """10,000 steps: random, then zeros, then inputs large enough to saturate every gate."""
    rng = np.random.default_rng(0)
    third = NAN_STEPS // 3
    return jnp.asarray(
        np.concatenate(
            [
                rng.standard_normal((third, d_input)),
                np.zeros((third, d_input)),
                1e4 * rng.standard_normal((NAN_STEPS - 2 * third, d_input)),
            ]
        ),
        jnp.float32,
    )


def _saturated(params):
    """Every bias at ±50: each LSTM gate, each interface logit (clipped at ±20) — g, e and α at
    0 or 1, one-hot shifts, β and γ at their ceiling oneplus(20) — sits at its saturation."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    rng = np.random.default_rng(1)
    leaves = [
        50.0 * np.sign(rng.standard_normal(a.shape)).astype(a.dtype)
        if jax.tree_util.keystr(path).endswith("['bias']")
        else a
        for path, a in paths
    ]
    return jax.tree_util.tree_unflatten(treedef, leaves)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_no_nan_over_10k_steps_forward_and_backward(name):
    """Random, zero and huge inputs, at the init and with saturated gates: outputs, carry and
    the gradient through all 10,000 steps stay finite. (Chaotic weights — e.g. all ×10 — make
    the *true* NTM gradient grow exponentially through sharpening, as BPTT of any chaotic
    recurrence does; truncation windows bound that, module doc of memjax.memories.ntm.)"""
    cell = FACTORIES[name]("float32")
    params = cell.init_params(jax.random.key(0))
    xs = _long_inputs(cell.d_input)

    @jax.jit
    def loss_and_grad(params, xs):
        def loss(p):
            ys, carry = unroll(cell, p, cell.init_carry(p), xs)
            leaves = jax.tree_util.tree_leaves(carry)
            return jnp.mean(jnp.sin(ys)) + sum(jnp.mean(jnp.cos(a)) for a in leaves), (ys, carry)

        return jax.value_and_grad(loss, has_aux=True)(params)

    for p in (params, _saturated(params)):
        (value, (ys, carry)), grads = loss_and_grad(p, xs)
        for what, tree in (("outputs", ys), ("carry", carry), ("gradients", grads)):
            finite = [bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(tree)]
            assert all(finite), f"{name}: non-finite {what}"
        assert bool(jnp.isfinite(value))
        assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree_util.tree_leaves(grads))


@pytest.mark.parametrize("name", ["nmn_feedforward"])
def test_write_tap_gradients_stop_at_the_window_start(name):
    """∂y_T/∂u_t for the write-controller output u_t (the tap ``"write"``): zero before the
    last window, non-zero inside it — what a synthetic gradient must supply at the cut."""
    window, length = 3, 8
    with float64():
        cell = FACTORIES[name]("float64")
        params = cell.init_params(jax.random.key(2))
        xs = jnp.asarray(np.random.default_rng(2).standard_normal((length, cell.d_input)))

        def last_output(xs, truncate):
            ys, _ = unroll(cell, params, cell.init_carry(params), xs, truncate=truncate)
            return jnp.sum(ys[-1])

        for truncate in (window, None):
            fn = functools.partial(last_output, truncate=truncate)
            _, found, grads = jax.jit(taps.tap_gradients(fn, ("write",)))(xs)
            g = np.abs(np.asarray(grads["write"])).reshape(length, -1).max(axis=1)
            assert found["write"].shape[0] == length
            start = (length - 1) // window * window
            if truncate:
                assert np.all(g[:start] == 0.0), g
            else:
                assert np.all(g[1:start] > 0.0), g  # the full backward pass reaches them
            assert np.all(g[start:-1] > 0.0), g  # the last write only affects later reads


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_tap_names_are_the_taps_of_a_step(name):
    cell = FACTORIES[name]("float32")
    params = cell.init_params(jax.random.key(0))
    xs = jnp.ones((4, cell.d_input))
    run = lambda xs: unroll(cell, params, cell.init_carry(params), xs)
    (ys, _), found = taps.collect_taps(run, cell.tap_names)(xs)
    assert set(found) == set(cell.tap_names)
    assert all(v.shape[0] == 4 for v in jax.tree_util.tree_leaves(found))
    assert ys.shape == (4, cell.d_output)
    y0, _ = cell.step(params, cell.init_carry(params), xs[0])
    np.testing.assert_allclose(ys[0], y0, rtol=1e-6, atol=1e-8)  # float32 rounding near 0


def test_feedforward_controller_matches_dense_tanh():
    ff = FeedForwardController(3, 4, depth=2)
    p = ff.init_params(jax.random.key(0))
    x = jnp.array([0.5, -1.0, 2.0])
    h, carry = ff.step(p, (), x)
    expected = jnp.tanh(jnp.tanh(x @ p[0]["kernel"] + p[0]["bias"]) @ p[1]["kernel"] + p[1]["bias"])
    np.testing.assert_allclose(h, expected, rtol=1e-6)
    assert carry == ()
    with pytest.raises(ValueError, match="depth"):
        FeedForwardController(3, 4, depth=0)
    with pytest.raises(ValueError, match="x"):
        ff.step(p, (), jnp.ones(4))
    with pytest.raises(ValueError, match="'thetta'"):
        ff.step(p, (), x, thetta=1.0)
