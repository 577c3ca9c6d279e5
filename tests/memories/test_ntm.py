"""The NTM memory and cell against a NumPy step-by-step reference of Graves et al. (2014) eqs. 2–9
(float64), location-addressing behaviour, and errors that name the bad argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import unroll
from memjax.core.testing import float64
from memjax.memories.ntm import NTMCell, NTMMemory
from tests.memories import numpy_controllers as npc

EPS = 1e-8


def np_address(head, w_prev, memory, R):
    """One head's weighting, eqs. 5–9, written out with loops."""
    N, W = memory.shape
    k, beta = head[:W], npc.oneplus(head[W])
    g, gamma = npc.sigmoid(head[W + 1]), npc.oneplus(head[W + 2])
    s = npc.softmax(head[W + 3 :])
    assert s.shape == (2 * R + 1,)
    K = npc.cosine(k, memory, EPS)
    w_c = np.exp(beta * K) / np.sum(np.exp(beta * K))  # eq. 5
    w_g = g * w_c + (1 - g) * w_prev  # eq. 7
    w_t = np.array(  # eq. 8: w̃(i) = Σ_o s(o) w_g(i − o mod N)
        [sum(s[o + R] * w_g[(i - o) % N] for o in range(-R, R + 1)) for i in range(N)]
    )
    return w_t**gamma / np.sum(w_t**gamma)  # eq. 9


def np_write(memory, w_prev, key, value, R):
    W = memory.shape[1]
    ws = np.stack([np_address(key[h], w_prev[h], memory, R) for h in range(len(key))])
    erased = memory.copy()
    for h, w in enumerate(ws):  # eq. 3, one head after another
        erased = erased * (1 - np.outer(w, npc.sigmoid(value[h, :W])))
    added = erased + sum(np.outer(w, value[h, W:]) for h, w in enumerate(ws))  # eq. 4
    return added, ws


def np_access(state, key, value, query, R, order):
    memory, w_read, w_write = state
    if order == "write_read":
        memory, w_write = np_write(memory, w_write, key, value, R)
    w_read = np.stack([np_address(query[h], w_read[h], memory, R) for h in range(len(query))])
    reads = w_read @ memory  # eq. 2
    if order == "read_write":
        memory, w_write = np_write(memory, w_write, key, value, R)
    return reads, (memory, w_read, w_write)


def np_initial_state(N, W, H_r, H_w):
    first = np.eye(N)[0]
    return np.full((N, W), 1e-6), np.tile(first, (H_r, 1)), np.tile(first, (H_w, 1))


def np_cell(cell, params, xs):
    """The NTM cell, one step at a time: controller on [x ‖ r], clip, interface, access."""
    p = npc.to_numpy(params)
    mem = cell.memory
    N, W, H_r, H_w, R = (
        cell.memory_size,
        cell.memory_width,
        cell.num_read_heads,
        cell.num_write_heads,
        cell.shift_range,
    )
    hw = mem.head_width
    step = npc.controller(cell.controller)
    c = npc.initial_controller_carry(cell.controller, cell.d_hidden)
    state, reads, ys = np_initial_state(N, W, H_r, H_w), np.zeros((H_r, W)), []
    for x in xs:
        h, c = step(p["controller"], c, np.concatenate([x, reads.reshape(-1)]))
        h = npc.clip(h)
        xi = npc.clip(npc.dense(p["interface"], h))
        query = xi[: H_r * hw].reshape(H_r, hw)
        write = xi[H_r * hw :].reshape(H_w, hw + 2 * W)
        reads, state = np_access(state, write[:, :hw], write[:, hw:], query, R, cell.order)
        ys.append(np.concatenate([h, reads.reshape(-1)]))
    return np.stack(ys), state


CONFIGS = [
    dict(controller="lstm", num_read_heads=2, num_write_heads=2, shift_range=1),
    dict(
        controller="feedforward",
        num_read_heads=1,
        num_write_heads=3,
        shift_range=2,
        order="write_read",
    ),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_ntm_cell_matches_numpy(config):
    with float64():
        cell = NTMCell(3, 6, memory_size=7, memory_width=4, dtype="float64", **config)
        params = npc.perturbed_params(cell, 0)
        xs = np.random.default_rng(1).standard_normal((12, 3))
        ys, carry = jax.jit(lambda p, x: unroll(cell, p, cell.init_carry(p), x))(params, xs)
    ref_ys, (memory, w_read, w_write) = np_cell(cell, params, xs)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(carry.memory.memory, memory, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(carry.memory.read_weights, w_read, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(carry.memory.write_weights, w_write, rtol=1e-10, atol=1e-12)
    assert np.ptp(ref_ys) > 0.1  # the reference is not trivially constant


def test_ntm_memory_access_read_and_write_match_numpy():
    N, W, R = 8, 3, 1
    mem = NTMMemory(N, W, num_read_heads=2, num_write_heads=3, shift_range=R, dtype="float64")
    rng = np.random.default_rng(2)
    read, write = jax.jit(mem.read), jax.jit(mem.write)
    access = jax.jit(mem.access, static_argnames="order")
    with float64():
        state = mem.init_state({})
        ref = np_initial_state(N, W, 2, 3)
        for t in range(6):
            key = 2 * rng.standard_normal(mem.key_size)
            value = 2 * rng.standard_normal(mem.value_size)
            query = 2 * rng.standard_normal(mem.query_size)
            order = ("read_write", "write_read")[t % 2]
            peek = read({}, state, query)
            np.testing.assert_allclose(  # read is the access's read under read_write, no change
                peek,
                np.stack([np_address(q, w, ref[0], R) for q, w in zip(query, ref[1])]) @ ref[0],
                rtol=1e-10,
            )
            written = write({}, state, key, value)
            np.testing.assert_allclose(
                written.memory, np_write(ref[0], ref[2], key, value, R)[0], rtol=1e-10
            )
            np.testing.assert_array_equal(written.read_weights, state.read_weights)
            reads, state = access({}, state, key, value, query, order=order)
            ref_reads, ref = np_access(ref, key, value, query, R, order)
            np.testing.assert_allclose(reads, ref_reads, rtol=1e-10, atol=1e-14)
            for a, b in zip(state, ref):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(state.read_weights.sum(-1), 1.0, rtol=1e-12)


def _head(mem, key, g, shift, gamma):
    """Raw head parameters with chosen key, gate logit, shift logits and sharpening logit."""
    return jnp.concatenate([key, jnp.array([0.0, g, gamma]), shift])


def test_location_addressing_moves_one_slot_per_step():
    """g → 0 (keep the previous weighting), s = +1, sharp γ: the read head walks the memory
    one slot per step, as the NTM copy task needs (Graves et al. §3.3.2)."""
    N, W = 6, 2
    mem = NTMMemory(N, W, shift_range=1)
    state = mem.init_state({})
    query = _head(mem, jnp.zeros(W), -50.0, jnp.array([-50.0, -50.0, 50.0]), 20.0)[None]
    key = _head(mem, jnp.zeros(W), 50.0, jnp.zeros(3), 0.0)[None]
    seen, access = [], jax.jit(mem.access)
    for _ in range(N + 1):
        _, state = access({}, state, key, jnp.zeros((1, 2 * W)), query)
        seen.append(int(state.read_weights[0].argmax()))
        assert float(state.read_weights[0].max()) > 0.999
    assert seen == [1, 2, 3, 4, 5, 0, 1]


def test_content_addressing_finds_the_written_slot():
    """Write a vector through a sharp content key, then a content read (g = 1) retrieves it."""
    N, W = 8, 4
    mem = NTMMemory(N, W, shift_range=1)
    state = mem.init_state({})
    vector = jnp.array([1.0, -2.0, 0.5, 3.0])
    shift_stay = jnp.array([-50.0, 50.0, -50.0])
    # location-write at slot 0 (the initial weighting; g = 0): erase all, add the vector
    key = _head(mem, jnp.zeros(W), -50.0, shift_stay, 20.0)[None]
    value = jnp.concatenate([jnp.full(W, 50.0), vector])[None]
    state = mem.write({}, state, key, value)
    query = _head(mem, vector, 50.0, shift_stay, 20.0).at[W].set(50.0)[None]  # β = oneplus(50)
    np.testing.assert_allclose(mem.read({}, state, query)[0], vector, rtol=1e-4)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="shift_range"):
        NTMMemory(4, 3, shift_range=2)  # 2R + 1 = 5 > 4 slots
    with pytest.raises(ValueError, match="shift_range"):
        NTMCell(2, 3, memory_size=4, shift_range=2)
    with pytest.raises(ValueError, match="num_read_heads"):
        NTMMemory(4, 3, num_read_heads=0)
    with pytest.raises(ValueError, match="num_write_heads"):
        NTMCell(2, 3, memory_size=4, num_write_heads=0)
    with pytest.raises(ValueError, match="memory_size"):
        NTMMemory(0, 3)
    with pytest.raises(ValueError, match="memory_width"):
        NTMCell(2, 3, memory_width=0)
    with pytest.raises(ValueError, match="controller"):
        NTMCell(2, 3, controller="gru")
    with pytest.raises(ValueError, match="clip"):
        NTMCell(2, 3, clip=-1.0)
    with pytest.raises(ValueError, match="eps"):
        NTMMemory(4, 3, eps=0.0)
    mem = NTMMemory(5, 3, num_read_heads=2)
    state = mem.init_state({})
    key, value = jnp.zeros(mem.key_size), jnp.zeros(mem.value_size)
    query = jnp.zeros(mem.query_size)
    with pytest.raises(ValueError, match=r"state\.memory"):
        mem.access({}, state._replace(memory=jnp.zeros((5, 4))), key, value, query)
    with pytest.raises(ValueError, match=r"state\.read_weights"):
        mem.access({}, state._replace(read_weights=jnp.zeros((1, 5))), key, value, query)
    with pytest.raises(ValueError, match="key"):
        mem.access({}, state, key[:, :-1], value, query)
    with pytest.raises(ValueError, match="value"):
        mem.write({}, state, key, value[None])
    with pytest.raises(ValueError, match="query"):
        mem.read({}, state, query[:1])
    with pytest.raises(ValueError, match="order"):
        mem.access({}, state, key, value, query, order="sideways")
    with pytest.raises(ValueError, match="'thetta'"):
        mem.access({}, state, key, value, query, thetta=1.0)
    cell = NTMCell(2, 3, memory_size=5, memory_width=3)
    p = cell.init_params(jax.random.key(0))
    with pytest.raises(ValueError, match="x"):
        cell.step(p, cell.init_carry(p), jnp.zeros(3))
    carry = cell.init_carry(p)
    with pytest.raises(ValueError, match=r"state\.memory"):
        cell.step(
            p, carry._replace(memory=carry.memory._replace(memory=jnp.zeros((4, 3)))), jnp.zeros(2)
        )
