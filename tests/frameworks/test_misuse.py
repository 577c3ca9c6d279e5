"""Wrappers and layers on a new user's path: any batch size, i.i.d. mode, vmap, clear errors.

Each output is compared with the functional core on the same params (the reference); each
misuse must raise an error naming the argument and the fix.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import memjax.eqx as meqx
import memjax.nnx as mnnx
from memjax.core.checks import jit_checks
from memjax.memories.linear import LinearMemory
from memjax.models.associative import AssociativeLayer

T, D = 4, 8
SPEC = AssociativeLayer(D, 2, LinearMemory(4, 4, alpha=0.1, gated=("theta",)), chunk_size=4)


def _xs(seed, b):
    return jax.random.normal(jax.random.key(seed), (b, T, D))


@jax.jit
def _core(params, xs, state=None):
    """Reference: vmap of the core over examples, from init_state unless ``state`` is given."""
    if state is None:
        state = jax.vmap(lambda _: SPEC.init_state(params))(jnp.arange(xs.shape[0]))
    return jax.vmap(lambda s, x: SPEC.apply(params, s, x))(state, xs)


@pytest.fixture(scope="module")
def params():
    return SPEC.init_params(jax.random.key(0))


def test_nnx_ragged_last_batch_after_reset_and_in_iid_mode():
    layer = mnnx.MemoryLayer(SPEC, rngs=nnx.Rngs(0), batch_shape=(3,))
    params = layer.raw_params()
    step = nnx.jit(lambda m, x: (m.reset(), m(x))[1])  # the i.i.d. pattern: reset in the step
    for b in (3, 2):  # a full batch, then a ragged last one
        np.testing.assert_allclose(step(layer, _xs(b, b)), _core(params, _xs(b, b))[0], atol=1e-6)
    assert layer.raw_state().memory.weights.shape[0] == 2  # the state took the new size
    iid = mnnx.MemoryLayer(SPEC, rngs=nnx.Rngs(0), batch_shape=(3,), carry=False)
    before, call = iid.raw_state(), nnx.jit(lambda m, x: m(x))
    for b in (3, 2, 3):  # carry=False: every call starts from init_state, any batch size
        np.testing.assert_allclose(call(iid, _xs(b, b)), _core(params, _xs(b, b))[0], atol=1e-6)
    jax.tree_util.tree_map(np.testing.assert_array_equal, iid.raw_state(), before)


def test_nnx_carried_state_refuses_another_batch_size_under_jit():
    layer = mnnx.MemoryLayer(SPEC, rngs=nnx.Rngs(0), batch_shape=(3,))
    call = nnx.jit(lambda m, x: m(x))
    call(layer, _xs(0, 3))
    with pytest.raises(Exception, match=r"inputs\[0\]: batch shape \(2,\) differs"):
        jax.block_until_ready(call(layer, _xs(1, 2)))  # fresh is traced: a run-time error


def test_eqx_vmap_patterns(params):
    """``in_axes=(0, None), out_axes=(0, None)`` with carry=False; a mapped state to carry."""
    make = eqx.nn.make_with_state(meqx.MemoryLayer)
    iid, state = make(SPEC, key=jax.random.key(0), carry=False)
    batched = eqx.filter_jit(
        lambda m, x, s: jax.vmap(m, in_axes=(0, None), out_axes=(0, None))(x, s)
    )
    for b in (3, 2):
        ys, state = batched(iid, _xs(b, b), state)
        np.testing.assert_allclose(ys, _core(params, _xs(b, b))[0], atol=1e-6)
    streaming, state = make(SPEC, key=jax.random.key(0))
    state = jax.vmap(lambda _: state)(jnp.arange(3))  # one memory per example
    mapped = eqx.filter_jit(lambda m, x, s: jax.vmap(m, in_axes=(0, 0), out_axes=(0, 0))(x, s))
    want, core_state = _core(params, _xs(0, 3))
    ys, state = mapped(streaming, _xs(0, 3), state)
    np.testing.assert_allclose(ys, want, atol=1e-6)
    ys, state = mapped(streaming, _xs(1, 3), state)  # continues from the carried memory
    np.testing.assert_allclose(ys, _core(params, _xs(1, 3), core_state)[0], atol=1e-6)
    fixed, state = make(SPEC, key=jax.random.key(0), batch_shape=(3,))
    with pytest.raises(ValueError, match=r"inputs\[0\].*carry=False"):
        fixed(_xs(0, 2), state)


@pytest.mark.parametrize("framework", ["nnx", "eqx"])
def test_a_bare_memory_says_wrap_it_in_associative_layer(framework):
    with pytest.raises(TypeError, match=r"layer: got a bare memory.*wrap it in AssociativeLayer"):
        if framework == "nnx":
            mnnx.MemoryLayer(LinearMemory(4, 4), rngs=nnx.Rngs(0))
        else:
            eqx.nn.make_with_state(meqx.MemoryLayer)(LinearMemory(4, 4), key=jax.random.key(0))


def test_non_finite_input_names_the_argument(params):
    bad = jnp.ones((T, D)).at[1, 2].set(jnp.nan)
    with pytest.raises(ValueError, match=r"xs: 1 of 32 entries are NaN or Inf .*\(1, 2\)"):
        SPEC.apply(params, SPEC.init_state(params), bad)
    layer = mnnx.MemoryLayer(SPEC, rngs=nnx.Rngs(0), batch_shape=(1,))
    with pytest.raises(ValueError, match=r"inputs\[0\]: 1 of 32 entries"):
        layer(bad.at[0, 0].set(jnp.inf)[None].at[0, 1, 2].set(1.0))
    apply = jax.jit(lambda p, s, x: SPEC.apply(p, s, x)[0])
    assert bool(jnp.isnan(apply(params, SPEC.init_state(params), bad)).any())  # off: silent
    with jit_checks():
        checked = jax.jit(lambda p, s, x: SPEC.apply(p, s, x)[0])
        checked(params, SPEC.init_state(params), jnp.ones((T, D))).block_until_ready()
        with pytest.raises(Exception, match=r"xs: 1 of 32 entries are NaN or Inf"):
            checked(params, SPEC.init_state(params), bad).block_until_ready()


def test_float64_without_x64_is_one_clear_error():
    spec = AssociativeLayer(D, 2, LinearMemory(4, 4, dtype="float64"))
    with pytest.raises(ValueError, match=r"memory\.dtype: float64 needs 64-bit JAX.*x64"):
        spec.init_params(jax.random.key(0))
    with pytest.raises(ValueError, match=r"layer\.memory\.dtype.*JAX_ENABLE_X64=1"):
        mnnx.MemoryLayer(spec, rngs=nnx.Rngs(0))
    with jax.enable_x64(True):  # with x64 on it runs, in float64
        assert spec.init_params(jax.random.key(0))["wq"].dtype == jnp.float64


def test_state_of_another_spec_and_swapped_arguments(params):
    other = AssociativeLayer(D, 2, LinearMemory(8, 4), chunk_size=4)
    foreign = other.init_state(other.init_params(jax.random.key(0)))
    xs = jnp.ones((T, D))
    with pytest.raises(ValueError, match=r"state: at \.memory\.weights expected shape \(2, 4, 4\)"):
        SPEC.apply(params, foreign, xs)
    with pytest.raises(ValueError, match="look swapped"):
        SPEC.apply(SPEC.init_state(params), params, xs)
    mem = LinearMemory(4, 4, gated=("theta",))
    p = mem.init_params(jax.random.key(0))
    with pytest.raises(ValueError, match="look swapped"):
        mem.apply(mem.init_state(p), p, jnp.ones((T, 4)), jnp.ones((T, 4)), jnp.ones((T, 4)))
