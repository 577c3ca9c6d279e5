"""The MANN/LRUA memory and cell against a NumPy step-by-step reference of Santoro et al. (2016)
§3.1–3.2 (float64, snowkylin/ntm's tie order for the least-used slots), and argument errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import unroll
from memjax.core.testing import float64
from memjax.memories.addressing import least_used
from memjax.memories.mann import MANNCell, MANNMemory
from tests.memories import numpy_controllers as npc

EPS, GAMMA = 1e-8, 0.95


def np_least_used(usage, n):
    """tf.nn.top_k order: usage descending, equal values lower index first; the last n."""
    order = np.argsort(-usage, kind="stable")
    w_lu = np.zeros_like(usage)
    w_lu[order[-n:]] = 1.0
    return w_lu, order[-1]


def np_read_weights(memory, keys):
    return np.stack([npc.softmax(npc.cosine(k, memory, EPS)) for k in keys])


def np_access(state, alpha, content, keys, order):
    """One LRUA step: write weights from w^r_{t-1} and w^lu_{t-1}, zero the least-used slot,
    add, read with cosine-softmax weights, usage γ w^u + Σ w^r + Σ w^w."""
    memory, w_read_prev, usage = state
    w_lu, slot = np_least_used(usage, len(keys))
    w_write = np.stack(
        [npc.sigmoid(a) * w_read_prev[h] + (1 - npc.sigmoid(a)) * w_lu for h, a in enumerate(alpha)]
    )
    written = memory.copy()
    written[slot] = 0.0
    for h in range(len(keys)):
        written = written + np.outer(w_write[h], content[h])
    read_from = written if order == "write_read" else memory
    w_read = np_read_weights(read_from, keys)
    reads = w_read @ read_from
    usage = GAMMA * usage + w_read.sum(0) + w_write.sum(0)
    return reads, (written, w_read, usage)


def np_initial_state(N, W, n):
    first = np.eye(N)[0]
    return np.full((N, W), 1e-6), np.tile(first, (n, 1)), first.copy()


def np_cell(cell, params, xs):
    p = npc.to_numpy(params)
    N, W, n = cell.memory_size, cell.memory_width, cell.num_heads
    act = {"tanh": np.tanh, "identity": lambda a: a}[cell.key_activation]
    step = npc.controller(cell.controller)
    c = npc.initial_controller_carry(cell.controller, cell.d_hidden)
    state, reads, ys = np_initial_state(N, W, n), np.zeros((n, W)), []
    for x in xs:
        h, c = step(p["controller"], c, np.concatenate([x, reads.reshape(-1)]))
        h = npc.clip(h)
        heads = npc.clip(npc.dense(p["interface"], h)).reshape(n, -1)
        keys = act(heads[:, :W])
        content = act(heads[:, W : 2 * W]) if cell.separate_add else keys
        reads, state = np_access(state, heads[:, -1], content, keys, cell.order)
        ys.append(np.concatenate([h, reads.reshape(-1)]))
    return np.stack(ys), state


CONFIGS = [
    dict(controller="lstm", num_heads=3),
    dict(
        controller="feedforward",
        num_heads=2,
        separate_add=True,
        key_activation="identity",
        order="read_write",
    ),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_mann_cell_matches_numpy(config):
    with float64():
        cell = MANNCell(4, 6, memory_size=9, memory_width=3, dtype="float64", **config)
        params = npc.perturbed_params(cell, 3)
        xs = np.random.default_rng(4).standard_normal((14, 4))
        ys, carry = jax.jit(lambda p, x: unroll(cell, p, cell.init_carry(p), x))(params, xs)
    ref_ys, (memory, w_read, usage) = np_cell(cell, params, xs)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(carry.memory.memory, memory, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(carry.memory.read_weights, w_read, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(carry.memory.usage, usage, rtol=1e-10, atol=1e-12)
    assert np.ptp(ref_ys) > 0.1


def test_mann_memory_access_write_and_read_match_numpy():
    N, W, n = 7, 3, 2
    mem = MANNMemory(N, W, num_heads=n, key_activation="identity", dtype="float64")
    rng = np.random.default_rng(5)
    read, write = jax.jit(mem.read), jax.jit(mem.write)
    access = jax.jit(mem.access, static_argnames="order")
    with float64():
        state, ref = mem.init_state({}), np_initial_state(N, W, n)
        for t in range(8):
            alpha, content = rng.standard_normal(n), rng.standard_normal((n, W))
            keys = rng.standard_normal((n, W))
            order = ("write_read", "read_write")[t % 2]
            np.testing.assert_allclose(
                read({}, state, keys), np_read_weights(ref[0], keys) @ ref[0], rtol=1e-10
            )
            written = write({}, state, alpha, content)
            w_lu, slot = np_least_used(ref[2], n)
            assert (
                float(
                    jnp.abs(
                        written.memory[slot]
                        - content.T
                        @ (
                            (1 - npc.sigmoid(alpha)) * w_lu[slot]
                            + npc.sigmoid(alpha) * ref[1][:, slot]
                        )
                    ).max()
                )
                < 1e-12
            )  # the least-used slot was zeroed, then written
            reads, state = access({}, state, alpha, content, keys, order=order)
            ref_reads, ref = np_access(ref, alpha, content, keys, order)
            np.testing.assert_allclose(reads, ref_reads, rtol=1e-10, atol=1e-14)
            for a, b in zip(state, ref):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_least_used_follows_top_k_order_and_has_no_gradient():
    usage = jnp.array([0.3, 0.1, 0.1, 0.7, 0.1, 0.2])
    for n in (1, 2, 3, 4):
        w_lu, slot = least_used(usage, n)
        ref_lu, ref_slot = np_least_used(np.asarray(usage), n)
        np.testing.assert_array_equal(w_lu, ref_lu)
        assert int(slot) == ref_slot == 4  # three ties at 0.1: the highest index is least used
    grad = jax.grad(lambda u: jnp.sum(least_used(u, 2)[0] * jnp.arange(6.0)))(usage)
    np.testing.assert_array_equal(grad, 0.0)


def test_first_writes_fill_the_least_used_slots():
    """Write gates at σ(α) → 0: each write goes to the least-used slots and usage moves on, so
    consecutive writes fill fresh slots instead of overwriting one (LRUA)."""
    N, W = 6, 2
    mem = MANNMemory(N, W, num_heads=1, key_activation="identity")
    state = mem.init_state({})
    written = []
    for t in range(N - 1):
        value = jnp.full((1, W), float(t + 1))
        _, new = mem.access({}, state, jnp.array([-30.0]), value, value)
        written.append(int(jnp.argmax(jnp.abs(new.memory - state.memory).sum(-1))))
        state = new
    # usage starts one-hot on slot 0; the never-written slots tie, the highest index going first
    assert written == [5, 4, 3, 2, 1], written


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="num_heads"):
        MANNMemory(4, 3, num_heads=0)
    with pytest.raises(ValueError, match="num_heads"):
        MANNCell(2, 3, memory_size=4, num_heads=5)
    with pytest.raises(ValueError, match="usage_decay"):
        MANNMemory(4, 3, usage_decay=1.5)
    with pytest.raises(ValueError, match="key_activation"):
        MANNMemory(4, 3, key_activation="softsign")
    with pytest.raises(ValueError, match="memory_width"):
        MANNCell(2, 3, memory_width=-1)
    with pytest.raises(ValueError, match="order"):
        MANNCell(2, 3, order="both")
    mem = MANNMemory(5, 3, num_heads=2)
    state = mem.init_state({})
    key, value, query = jnp.zeros(2), jnp.zeros((2, 3)), jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"state\.memory"):
        mem.access({}, state._replace(memory=jnp.zeros((3, 5))), key, value, query)
    with pytest.raises(ValueError, match=r"state\.usage"):
        mem.access({}, state._replace(usage=jnp.zeros(4)), key, value, query)
    with pytest.raises(ValueError, match="key"):
        mem.write({}, state, jnp.zeros(3), value)
    with pytest.raises(ValueError, match="value"):
        mem.access({}, state, key, value[:, :2], query)
    with pytest.raises(ValueError, match="query"):
        mem.read({}, state, query[0])
    with pytest.raises(ValueError, match="'thetta'"):
        mem.access({}, state, key, value, query, thetta=0.1)
