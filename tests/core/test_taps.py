"""Taps: free when not asked for, collected under jit/vmap/scan, and differentiable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import MultiHead, scan, spec, taps, unroll
from memjax.core.testing import directional_fd, float64
from memjax.memories.linear import LinearMemory
from memjax.models.memory_cell import ControllerMemoryCell
from memjax.nn.lstm import LSTMCell


def tapped(x):
    h = taps.tap("h", jnp.tanh(x))
    z = taps.tap("z", h * 2.0 + 1.0)
    return jnp.sum(z**2)


def untapped(x):
    h = jnp.tanh(x)
    z = h * 2.0 + 1.0
    return jnp.sum(z**2)


def only_h(x):
    h = jnp.tanh(x)
    return jnp.sum((h * 2.0 + 1.0) ** 2), h


X = jnp.array([0.3, -0.7, 1.1])


def test_untapped_costs_nothing_same_jaxpr():
    assert str(jax.make_jaxpr(tapped)(X)) == str(jax.make_jaxpr(untapped)(X))
    grad_jaxpr = str(jax.make_jaxpr(jax.grad(tapped))(X))
    assert grad_jaxpr == str(jax.make_jaxpr(jax.grad(untapped))(X))


def test_an_unrequested_tap_costs_nothing_inside_a_collection():
    collected = jax.make_jaxpr(taps.collect_taps(tapped, ("h",)))(X)
    assert str(collected) == str(jax.make_jaxpr(only_h)(X))


def test_collect_eager_and_under_jit():
    y, found = taps.collect_taps(tapped, ("h", "z"))(X)
    np.testing.assert_allclose(found["h"], jnp.tanh(X))
    np.testing.assert_allclose(found["z"], 2 * jnp.tanh(X) + 1)
    np.testing.assert_allclose(y, untapped(X))
    _, found_j = jax.jit(taps.collect_taps(tapped, ("z",)))(X)
    np.testing.assert_allclose(found_j["z"], found["z"])
    assert list(found_j) == ["z"]


def test_vmap_outside_the_collection():
    xs = jnp.stack([X, -X])
    _, found = jax.vmap(taps.collect_taps(tapped, ("h",)))(xs)
    np.testing.assert_allclose(found["h"], jnp.tanh(xs))


def test_requested_name_never_tapped_is_an_error_listing_the_taps():
    with pytest.raises(ValueError, match=r"names: 'hidden' not tapped by tapped; its taps: h, z"):
        taps.collect_taps(tapped, ("hidden",))(X)


def test_a_name_recorded_twice_is_an_error():
    def twice(x):
        return taps.tap("h", x) + taps.tap("h", x)

    with pytest.raises(ValueError, match="tap 'h': recorded twice"):
        taps.collect_taps(twice, ("h",))(X)


def test_tap_inside_a_plain_transformation_raises_instead_of_leaking():
    def in_scan(x):
        return jax.lax.scan(lambda c, xi: (c, taps.tap("h", xi)), 0.0, x)[1]

    with pytest.raises(RuntimeError, match="tap 'h': requested inside a JAX transformation"):
        taps.collect_taps(in_scan, ("h",))(X)

    def fresh(x):  # never traced before, so jit traces it under the collection
        return taps.tap("h", x) * 2.0

    with pytest.raises(RuntimeError, match="call collect_taps inside the jitted function"):
        taps.collect_taps(jax.jit(fresh), ("h",))(X)
    # unrequested, the same function runs unchanged
    _, found = taps.collect_taps(lambda x: (in_scan(x), taps.tap("z", x)), ("z",))(X)
    np.testing.assert_array_equal(found["z"], X)


def test_tap_aware_scan_vmap_checkpoint_stack_the_values():
    def body(c, x):
        h = taps.tap("h", jnp.sin(x) + c)
        return c + 1.0, h

    def f(xs):
        inner = taps.checkpoint(lambda x: taps.tap("v", x * 3.0))
        w = taps.vmap(inner)(xs)
        return taps.scan(body, 0.0, w)

    xs = jnp.arange(4.0)
    (_, ys), found = taps.collect_taps(f, ("h", "v"))(xs)
    np.testing.assert_allclose(found["v"], 3.0 * xs)
    np.testing.assert_allclose(found["h"], ys)
    np.testing.assert_allclose(ys, jnp.sin(3.0 * xs) + jnp.arange(4.0))

    def plain_body(c, x):
        h = jnp.sin(x) + c
        return c + 1.0, h

    def plain(xs):
        return jax.lax.scan(plain_body, 0.0, jax.vmap(jax.checkpoint(lambda x: x * 3.0))(xs))

    assert str(jax.make_jaxpr(f)(xs)) == str(jax.make_jaxpr(plain)(xs))


def test_tap_gradient_equals_finite_differences():
    """∂L/∂u for a tapped u: perturb u by δ and difference L in δ (float64)."""
    with float64():
        x = jnp.array([0.3, -0.7, 1.1], jnp.float64)
        value, found, grads = taps.tap_gradients(tapped, ("h",))(x)
        h = found["h"]

        def from_h(delta):  # L as a function of a perturbation of h, by hand
            z = (h + delta) * 2.0 + 1.0
            return jnp.sum(z**2)

        for i in range(3):
            d = jnp.asarray(np.random.default_rng(i).standard_normal(3))
            numeric = directional_fd(from_h, jnp.zeros(3), d, 1e-6)
            np.testing.assert_allclose(jnp.vdot(grads["h"], d), numeric, rtol=1e-8)
        np.testing.assert_allclose(grads["h"], 4.0 * (2.0 * h + 1.0), rtol=1e-12)
        np.testing.assert_allclose(value, untapped(x), rtol=1e-12)


@spec
class ReadTapMemory(LinearMemory):
    """The linear memory with its read tapped."""

    def read(self, params, state, query, /, **controls):
        return taps.tap("read", super().read(params, state, query, **controls))


@pytest.mark.parametrize("chunk_size", [1, 3, 7, None])
@pytest.mark.parametrize("remat", [False, True])
def test_taps_inside_scan_come_out_per_token(chunk_size, remat):
    with float64():
        mem = ReadTapMemory(d_key=3, d_value=2, eta=0.5, dtype="float64")
        ks = jnp.asarray(np.random.default_rng(0).standard_normal((7, 3)))
        vs = jnp.asarray(np.random.default_rng(1).standard_normal((7, 2)))

        def loss(ks):
            ys, _ = scan(
                mem, {}, mem.init_state({}), ks, vs, ks, chunk_size=chunk_size, remat=remat
            )
            return jnp.sum(jnp.sin(ys))

        _, found, grads = taps.tap_gradients(loss, ("read",))(ks)
        ys, _ = scan(mem, {}, mem.init_state({}), ks, vs, ks, chunk_size=chunk_size)
        np.testing.assert_allclose(found["read"], ys, rtol=1e-12)
        np.testing.assert_allclose(grads["read"], jnp.cos(ys), rtol=1e-12)


def test_taps_inside_multi_head_scan_are_token_major():
    with float64():
        mh = MultiHead(ReadTapMemory(d_key=3, d_value=2, dtype="float64"), num_heads=2)
        p = mh.init_params(jax.random.key(0))
        ks = jnp.asarray(np.random.default_rng(0).standard_normal((5, 2, 3)))
        vs = jnp.asarray(np.random.default_rng(1).standard_normal((5, 2, 2)))

        def loss(ks):
            ys, _ = scan(mh, p, mh.init_state(p), ks, vs, ks, chunk_size=2)
            return jnp.sum(jnp.sin(ys) * jnp.arange(2.0)[None, :, None])

        _, found, grads = taps.tap_gradients(loss, ("read",))(ks)
        ys, _ = scan(mh, p, mh.init_state(p), ks, vs, ks, chunk_size=2)
        assert found["read"].shape == (5, 2, 2)
        np.testing.assert_allclose(found["read"], ys, rtol=1e-12)
        np.testing.assert_allclose(grads["read"], jnp.cos(ys) * jnp.arange(2.0)[None, :, None])


def _cell(dtype="float64"):
    return ControllerMemoryCell.build(
        LSTMCell, LinearMemory(4, 3, dtype=dtype), d_input=2, d_hidden=5
    )


@pytest.mark.parametrize("truncate", [None, 3])
def test_controller_output_tap_through_unroll(truncate):
    """``controller_out`` comes out of unroll as (T, d_hidden), and its gradient ∂L/∂h_t equals
    a finite difference of L in a perturbation of h_t alone (float64). With truncation windows
    the gradient stops at the cut, so it is the difference of the outputs of h_t's own window."""
    with float64():
        cell = _cell()
        p = cell.init_params(jax.random.key(0))
        xs = jnp.asarray(np.random.default_rng(2).standard_normal((7, 2)))

        def loss(xs, lo=0, hi=7, truncate=truncate):
            # the outputs of steps lo..hi-1 (a traced mask: one compile serves every window)
            ys, _ = unroll(cell, p, cell.init_carry(p), xs, truncate=truncate, remat=True)
            steps = jnp.arange(ys.shape[0])[:, None]
            return jnp.sum(jnp.where((steps >= lo) & (steps < hi), jnp.sin(ys), 0.0))

        _, found, grads = jax.jit(taps.tap_gradients(loss, ("controller_out",)))(xs)
        ys, _ = jax.jit(lambda xs: unroll(cell, p, cell.init_carry(p), xs))(xs)
        assert found["controller_out"].shape == (7, 5)
        np.testing.assert_allclose(found["controller_out"], ys[:, :5], rtol=1e-12)
        perturbed = taps.collect_taps(loss, ("controller_out",), perturb=True)
        window_loss = jax.jit(
            lambda delta, lo, hi: perturbed({"controller_out": delta}, xs, lo, hi, None)[0]
        )
        for t in (0, 3, 4, 6):
            lo, hi = (0, 7) if truncate is None else (t - t % truncate, t - t % truncate + truncate)
            d = jnp.zeros((7, 5)).at[t].set(jnp.linspace(-1.0, 1.0, 5))
            numeric = directional_fd(
                lambda z, lo=lo, hi=hi: window_loss(z, lo, hi), jnp.zeros((7, 5)), d, 1e-6
            )
            np.testing.assert_allclose(jnp.vdot(grads["controller_out"], d), numeric, rtol=1e-7)


def test_perturbation_shape_mismatch_names_the_tap():
    f = taps.collect_taps(tapped, ("h",), perturb=True)
    with pytest.raises(ValueError, match=r"perturbations\['h'\]"):
        f({"h": jnp.zeros(2)}, X)
    with pytest.raises(ValueError, match="perturbations"):
        f({"q": jnp.zeros(3)}, X)
