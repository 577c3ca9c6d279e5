"""unroll's cut and synthetic-gradient hook, and the protocols' access verb and Cell."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import Cell, Memory, MultiHead, cut, scan, spec, step, taps, unroll
from memjax.core.testing import float64, loop_of_cell_steps
from memjax.memories.linear import LinearMemory
from memjax.models.memory_cell import ControllerMemoryCell
from memjax.nn.lstm import LSTMCell

CELL = LSTMCell(2, 3)
P = CELL.init_params(jax.random.key(0))
XS = jnp.asarray(np.random.default_rng(0).standard_normal((7, 2)), jnp.float32)


def test_cut_forward_identity_backward_injected():
    x = jnp.array([1.0, -2.0])
    g = jnp.array([0.5, 3.0])
    np.testing.assert_array_equal(cut(x, g), x)
    np.testing.assert_array_equal(jax.grad(lambda x: jnp.sum(cut(x * 2.0, g) ** 2))(x), 2.0 * g)
    np.testing.assert_array_equal(jax.grad(lambda x: jnp.sum(cut(x) ** 2) + x[0])(x), [1.0, 0.0])


def test_cut_passes_integer_leaves_and_checks_shapes():
    tree = {"h": jnp.ones(2), "count": jnp.array(3)}
    out = cut(tree, {"h": jnp.ones(2), "count": jnp.zeros(())})
    assert out["count"].dtype == jnp.int32 and int(out["count"]) == 3
    with pytest.raises(ValueError, match="gradient: leaf"):
        cut({"h": jnp.ones(2)}, {"h": jnp.ones(3)})


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"truncate": 0}, ValueError, "truncate"),
        ({"boundary": lambda c, i: None}, ValueError, "truncate"),
        ({"truncate": 2, "boundary": 3}, TypeError, "boundary"),
        ({"truncate": 2, "boundary_tap": 5}, TypeError, "boundary_tap"),
    ],
)
def test_unroll_bad_arguments_name_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        unroll(CELL, P, CELL.init_carry(P), XS, **kwargs)


def test_unroll_bad_inputs_name_xs():
    with pytest.raises(ValueError, match="xs"):
        unroll(CELL, P, CELL.init_carry(P), (XS, XS[:3]))
    with pytest.raises(ValueError, match="xs"):
        unroll(CELL, P, CELL.init_carry(P), XS[:0])


def test_unroll_per_step_controls_reach_each_step():
    """A per-step theta goes to step t of a controller over a memory, like the loop."""
    cell = ControllerMemoryCell.build(
        LSTMCell, LinearMemory(4, 3), d_input=2, d_hidden=5, emit_theta=False
    )
    p = cell.init_params(jax.random.key(1))
    theta = jnp.linspace(0.1, 0.9, 7)
    ys, _ = unroll(cell, p, cell.init_carry(p), XS, truncate=3, theta=theta)
    ref, _ = loop_of_cell_steps(cell, p, cell.init_carry(p), XS, theta=theta)
    np.testing.assert_allclose(ys, ref, rtol=1e-6, atol=1e-6)
    plain, _ = unroll(cell, p, cell.init_carry(p), XS)
    assert not np.allclose(ys, plain)


def test_boundary_tap_gradient_is_the_bootstrapped_dni_target():
    """``boundary_tap`` exposes each cut window's start carry; its tap gradient equals, in a
    hand-written window loop with an explicit probe on each start carry, d(window loss + the
    synthetic gradient injected at the window's end)/d(probe)."""
    with float64():
        cell = LSTMCell(2, 3, dtype="float64")
        p = cell.init_params(jax.random.key(2))
        xs = jnp.asarray(np.random.default_rng(3).standard_normal((8, 2)))
        window = 3  # windows [0,3) [3,6) [6,8): cuts before 3 and 6

        def hook(c, index):
            return jax.tree_util.tree_map(lambda a: 0.3 * index * jnp.cos(a), c)

        def loss(xs):
            ys, _ = unroll(
                cell, p, cell.init_carry(p), xs, truncate=window, boundary=hook, boundary_tap="c0"
            )
            return jnp.sum(jnp.sin(ys))

        _, found, grads = taps.tap_gradients(loss, ("c0",))(xs)
        assert found["c0"].h.shape == (2, 3)

        def reference(probes):
            c, total = cell.init_carry(p), 0.0
            for j, start in enumerate(range(0, 8, window)):
                if start:
                    ghat = jax.lax.stop_gradient(hook(c, j))
                    total += sum(
                        jnp.vdot(g, a)
                        for g, a in zip(
                            jax.tree_util.tree_leaves(ghat), jax.tree_util.tree_leaves(c)
                        )
                    )
                    c = jax.tree_util.tree_map(
                        lambda a, d, j=j: jax.lax.stop_gradient(a) + d[j - 1], c, probes
                    )
                ys, c = loop_of_cell_steps(cell, p, c, xs[start : start + window])
                total += jnp.sum(jnp.sin(ys))
            return total

        zeros = jax.tree_util.tree_map(jnp.zeros_like, found["c0"])
        expected = jax.grad(reference)(zeros)
        for a, b in zip(
            jax.tree_util.tree_leaves(grads["c0"]), jax.tree_util.tree_leaves(expected)
        ):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        ref_starts = [loop_of_cell_steps(cell, p, cell.init_carry(p), xs[:s])[1] for s in (3, 6)]
        np.testing.assert_allclose(found["c0"].h, jnp.stack([c.h for c in ref_starts]), rtol=1e-10)


class Usage(NamedTuple):
    weights: jax.Array
    reads: jax.Array  # how many times the memory was read: a read changes the state


@spec
class CountingMemory(Memory):
    """A memory whose reads change its state (like MANN usage), through ``access``."""

    d: int = 2

    @property
    def key_size(self):
        return (self.d,)

    @property
    def value_size(self):
        return (self.d,)

    def init_params(self, key):
        return {}

    def init_state(self, params, /, **controls):
        return Usage(jnp.zeros((self.d, self.d)), jnp.zeros(()))

    def write(self, params, state, key, value, /, **controls):
        return state._replace(weights=state.weights + jnp.outer(value, key))

    def read(self, params, state, query, /, **controls):
        return state.weights @ query  # a peek: no state change

    def access(self, params, state, key, value, query, /, *, order="write_read", **controls):
        state = self.write(params, state, key, value)
        y = self.read(params, state, query) / (1.0 + state.reads)
        return y, state._replace(reads=state.reads + 1.0)


def test_step_and_scan_dispatch_to_access():
    mem = CountingMemory()
    ks = jnp.eye(2)[jnp.array([0, 1, 0])]
    ys, state = scan(mem, {}, mem.init_state({}), ks, ks, ks, chunk_size=2)
    assert float(state.reads) == 3.0
    np.testing.assert_allclose(ys, [[1.0, 0.0], [0.0, 0.5], [2.0 / 3.0, 0.0]])
    _, s = step(mem, {}, mem.init_state({}), ks[0], ks[0], ks[0])
    assert float(s.reads) == 1.0


def test_multi_head_vmaps_an_overridden_access():
    mh = MultiHead(CountingMemory(), num_heads=2)
    ks = jnp.stack([jnp.eye(2), jnp.eye(2)[::-1]], axis=1)  # (T=2, H=2, d)
    ys, state = scan(mh, {}, mh.init_state({}), ks, ks, ks)
    np.testing.assert_array_equal(state.reads, [2.0, 2.0])
    np.testing.assert_allclose(ys[1], [[0.0, 0.5], [0.5, 0.0]])


def test_default_access_is_exactly_write_then_read():
    mem = LinearMemory(3, 2, eta=0.5, alpha=0.1)
    p = mem.init_params(jax.random.key(0))
    s = mem.init_state(p)
    k, v, q = jnp.array([0.6, 0.8, 0.0]), jnp.array([1.0, -2.0]), jnp.array([0.0, 1.0, 0.0])
    y, s1 = mem.access(p, s, k, v, q)
    by_hand = mem.write(p, s, k, v)
    np.testing.assert_array_equal(y, mem.read(p, by_hand, q))
    np.testing.assert_array_equal(s1.weights, by_hand.weights)
    y_rw, _ = step(mem, p, s1, k, v, q, order="read_write")
    np.testing.assert_array_equal(y_rw, mem.read(p, s1, q))


def test_cells_satisfy_the_protocol():
    cell = ControllerMemoryCell.build(LSTMCell, LinearMemory(4, 3), d_input=2, d_hidden=5)
    assert isinstance(cell, Cell) and isinstance(CELL, Cell)
    assert not isinstance(LinearMemory(4, 3), Cell)


def test_controller_memory_cell_rejects_mismatched_parts():
    with pytest.raises(ValueError, match="controller"):
        ControllerMemoryCell(LSTMCell(2, 5), LinearMemory(4, 3), d_input=2, d_hidden=5)
    with pytest.raises(TypeError, match="controller"):
        ControllerMemoryCell(LinearMemory(4, 3), LinearMemory(4, 3), d_input=2, d_hidden=5)
    cell = ControllerMemoryCell.build(LSTMCell, LinearMemory(4, 3), d_input=2, d_hidden=5)
    p = cell.init_params(jax.random.key(0))
    with pytest.raises(ValueError, match="x"):
        cell.step(p, cell.init_carry(p), jnp.ones(3))
