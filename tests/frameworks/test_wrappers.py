"""Flax NNX and Equinox wrappers: parity with the core, training, detach, reset, errors."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import memjax.eqx as meqx
import memjax.nnx as mnnx
from memjax.core.trees import tree_stop_gradient
from memjax.memories.linear import LinearMemory
from memjax.models.associative import AssociativeLayer

B, T, D = 2, 6, 8
SPEC = AssociativeLayer(
    D, 2, LinearMemory(4, 4, eta=0.5, alpha=0.1, gated=("theta", "eta", "alpha")), chunk_size=4
)


def _inputs(seed):
    return jax.random.normal(jax.random.key(seed), (B, T, D))


def _core_call(params, state, xs):
    return jax.vmap(lambda s, x: SPEC.apply(params, s, x))(state, xs)


def _core_fresh_state(params):
    return jax.tree_util.tree_map(
        lambda x: jnp.broadcast_to(x, (B, *x.shape)), SPEC.init_state(params)
    )


def _build():
    nnx_layer = mnnx.MemoryLayer(SPEC, rngs=nnx.Rngs(0), batch_shape=(B,))
    params = nnx_layer.raw_params()
    eqx_layer, eqx_state = eqx.nn.make_with_state(meqx.MemoryLayer)(
        SPEC, key=jax.random.key(1), batch_shape=(B,)
    )
    eqx_layer = eqx.tree_at(lambda m: m.params, eqx_layer, params)
    return params, nnx_layer, eqx_layer, eqx_state


def test_core_nnx_eqx_identical_across_streaming_calls():
    params, nnx_layer, eqx_layer, eqx_state = _build()
    core_state = _core_fresh_state(params)
    for seed in (0, 1, 2):  # each call continues from the state the last one left
        xs = _inputs(seed)
        core_y, core_state = _core_call(params, core_state, xs)
        nnx_y = nnx_layer(xs)
        eqx_y, eqx_state = eqx_layer(xs, eqx_state)
        np.testing.assert_array_equal(nnx_y, core_y)
        np.testing.assert_array_equal(eqx_y, core_y)
    np.testing.assert_array_equal(nnx_layer.raw_state().memory.weights, core_state.memory.weights)


def test_reset_starts_from_init_state():
    _, nnx_layer, eqx_layer, eqx_state = _build()
    first = nnx_layer(_inputs(0))
    nnx_layer(_inputs(1))
    nnx_layer.reset()
    np.testing.assert_array_equal(nnx_layer(_inputs(0)), first)
    e_first, eqx_state = eqx_layer(_inputs(0), eqx_state)
    _, eqx_state = eqx_layer(_inputs(1), eqx_state)
    e_again, _ = eqx_layer(_inputs(0), eqx_layer.reset(eqx_state))
    np.testing.assert_array_equal(e_again, e_first)


def _target(xs):
    return jnp.roll(xs, 1, axis=1)


def test_training_trajectories_agree_and_state_is_not_trained():
    params, nnx_layer, eqx_layer, eqx_state = _build()
    tx = optax.adam(1e-2)
    xs = _inputs(3)

    # core
    def core_loss(p):
        ys, _ = _core_call(p, _core_fresh_state(p), xs)
        return jnp.mean((ys - _target(xs)) ** 2)

    opt_state, core_losses = tx.init(params), []
    core_grad = jax.jit(jax.value_and_grad(core_loss))
    for _ in range(4):
        loss, g = core_grad(params)
        updates, opt_state = tx.update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
        core_losses.append(float(loss))
    assert core_losses[-1] < core_losses[0]

    # nnx: the optimizer only sees nnx.Param; the memory state is written by the forward pass
    optimizer = nnx.Optimizer(nnx_layer, tx, wrt=nnx.Param)
    assert not jax.tree_util.tree_leaves(nnx.state(optimizer, mnnx.MemoryState))

    @nnx.jit
    def nnx_step(layer, optimizer):
        def loss_fn(layer):
            layer.reset()
            return jnp.mean((layer(xs) - _target(xs)) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, nnx.Param))(layer)
        optimizer.update(layer, grads)
        return loss

    nnx_losses = [float(nnx_step(nnx_layer, optimizer)) for _ in range(4)]

    # equinox
    eqx_opt = tx.init(eqx.filter(eqx_layer, eqx.is_inexact_array))

    @eqx.filter_jit
    def eqx_step(layer, state, opt):
        def loss_fn(layer):
            ys, new_state = layer(xs, layer.reset(state))
            return jnp.mean((ys - _target(xs)) ** 2), new_state

        (loss, state), g = eqx.filter_value_and_grad(loss_fn, has_aux=True)(layer)
        updates, opt = tx.update(g, opt, eqx.filter(layer, eqx.is_inexact_array))
        return eqx.apply_updates(layer, updates), state, opt, loss

    eqx_losses = []
    for _ in range(4):
        eqx_layer, eqx_state, eqx_opt, loss = eqx_step(eqx_layer, eqx_state, eqx_opt)
        eqx_losses.append(float(loss))

    np.testing.assert_allclose(nnx_losses, core_losses, rtol=1e-5)
    np.testing.assert_allclose(eqx_losses, core_losses, rtol=1e-5)
    for a, b in zip(
        jax.tree_util.tree_leaves(nnx_layer.raw_params()), jax.tree_util.tree_leaves(params)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # the state holds exactly what the last forward pass wrote with the pre-update params
    assert float(jnp.abs(nnx_layer.raw_state().memory.weights).sum()) > 0


@functools.cache  # shared by the detach tests: one compile per policy
def _two_segment_grad(detach):
    """Gradient of a loss over two consecutive calls, inside one differentiated function."""
    layer = mnnx.MemoryLayer(SPEC, rngs=nnx.Rngs(0), batch_shape=(B,), detach=detach)

    def loss_fn(layer):
        layer.reset()
        layer(_inputs(0))
        return jnp.sum(layer(_inputs(1)) ** 2)

    grads = nnx.jit(nnx.grad(loss_fn, argnums=nnx.DiffState(0, nnx.Param)))(layer)
    is_var = lambda x: isinstance(x, nnx.Variable)
    return layer.raw_params(), jax.tree_util.tree_map(lambda v: v[...], grads, is_leaf=is_var)


@pytest.mark.parametrize("detach", [True, False])
def test_detach_policy_matches_core(detach):
    params, got = _two_segment_grad(detach)

    def core(p):
        s1 = _core_call(p, _core_fresh_state(p), _inputs(0))[1]
        s1 = tree_stop_gradient(s1) if detach else s1
        return jnp.sum(_core_call(p, s1, _inputs(1))[0] ** 2)

    want = jax.jit(jax.grad(core))(params)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_detach_changes_the_gradient():
    _, detached = _two_segment_grad(True)
    _, attached = _two_segment_grad(False)
    differ = [
        not np.allclose(a, b)
        for a, b in zip(jax.tree_util.tree_leaves(detached), jax.tree_util.tree_leaves(attached))
    ]
    assert any(differ)


def test_bad_batch_shape_names_the_argument():
    layer = mnnx.MemoryLayer(SPEC, rngs=nnx.Rngs(0), batch_shape=(B,))
    layer(_inputs(0))
    with pytest.raises(ValueError, match=r"inputs\[0\].*call reset\(\) first"):
        layer(jnp.ones((B + 1, T, D)))  # a carried memory cannot continue at another size
    with pytest.raises(ValueError, match="xs"):
        layer(jnp.ones((B, T, D + 1)))
