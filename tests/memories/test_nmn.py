"""The reconstructed NMN (Fast & Slow spec §1.1) against a NumPy step-by-step reference of its six
steps (float64), its memory verbs, and argument errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import unroll
from memjax.core.testing import float64
from memjax.memories.nmn import NMNCell, NMNMemory
from tests.memories import numpy_controllers as npc

EPS = 1e-8


def np_attention(memory, q, similarity):
    if similarity == "dot":
        return npc.softmax(memory @ q / np.sqrt(memory.shape[1]))  # step 2
    return npc.softmax(npc.cosine(q, memory, EPS))


def np_write(memory, z, u):
    """Step 6: M ⊙ (1 − ε z 1ᵀ) + z wᵀ with ε = σ(ε̂)."""
    w, eps_gate = u[:-1], npc.sigmoid(u[-1])
    return memory * (1 - eps_gate * np.outer(z, np.ones(memory.shape[1]))) + np.outer(z, w)


def np_cell(cell, params, xs):
    p = npc.to_numpy(params)
    step = npc.controller(cell.controller)
    carries = {
        name: npc.initial_controller_carry(cell.controller, cell.d_hidden)
        for name in ("read", "output", "write")
    }
    memory, ys = np.full((cell.memory_size, cell.memory_width), 1e-6), []
    for x in xs:
        h_r, carries["read"] = step(p["read_controller"], carries["read"], x)
        q = npc.clip(npc.dense(p["read_head"], npc.clip(h_r)))  # step 1
        z = np_attention(memory, q, cell.similarity)  # step 2
        m = z @ memory  # step 3
        o, carries["output"] = step(
            p["output_controller"], carries["output"], np.concatenate([q, m])
        )
        o = npc.clip(o)  # step 4
        write_in = o if cell.write_input == "output" else np.concatenate([q, m])
        h_w, carries["write"] = step(p["write_controller"], carries["write"], write_in)
        u = npc.clip(npc.dense(p["write_head"], npc.clip(h_w)))  # step 5
        memory = np_write(memory, z, u)  # step 6
        ys.append(o)
    return np.stack(ys), memory


CONFIGS = [
    dict(controller="lstm"),
    dict(controller="feedforward", write_input="read", similarity="cosine"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_nmn_cell_matches_numpy(config):
    with float64():
        cell = NMNCell(3, 5, memory_size=6, memory_width=4, dtype="float64", **config)
        params = npc.perturbed_params(cell, 6)
        xs = 2 * np.random.default_rng(7).standard_normal((12, 3))
        ys, carry = jax.jit(lambda p, x: unroll(cell, p, cell.init_carry(p), x))(params, xs)
    ref_ys, memory = np_cell(cell, params, xs)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(carry.memory.memory, memory, rtol=1e-10, atol=1e-12)
    assert np.ptp(ref_ys) > 0.1 and np.ptp(memory) > 0.1


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_nmn_memory_verbs_match_numpy(similarity):
    """write/read/access (the protocol's default, write then read) with key = write query."""
    mem = NMNMemory(5, 3, similarity=similarity, dtype="float64")
    rng = np.random.default_rng(8)
    with float64():
        state, ref = mem.init_state({}), np.full((5, 3), 1e-6)
        for t in range(5):
            key, value, query = (
                rng.standard_normal(3),
                rng.standard_normal(4),
                rng.standard_normal(3),
            )
            np.testing.assert_allclose(
                mem.read({}, state, query), np_attention(ref, query, similarity) @ ref, rtol=1e-10
            )
            order = ("write_read", "read_write")[t % 2]
            y, state = mem.access({}, state, key, value, query, order=order)
            written = np_write(ref, np_attention(ref, key, similarity), value)
            read_from = written if order == "write_read" else ref
            np.testing.assert_allclose(
                y, np_attention(read_from, query, similarity) @ read_from, rtol=1e-10
            )
            ref = written
            np.testing.assert_allclose(state.memory, ref, rtol=1e-10, atol=1e-14)


def test_full_erase_overwrites_the_attended_slot():
    """ε = 1 with a sharp attention on one slot replaces that slot by w (the group's overwrite)."""
    mem = NMNMemory(4, 2)
    state = mem.init_state({})._replace(memory=jnp.eye(4, 2) * 10.0)
    z = jnp.array([0.0, 1.0, 0.0, 0.0])
    new = mem.write_at(state, z, jnp.array([3.0, -4.0, 50.0]))
    np.testing.assert_allclose(new.memory[1], [3.0, -4.0], rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(new.memory)[[0, 2, 3]], np.asarray(state.memory)[[0, 2, 3]]
    )


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="memory_size"):
        NMNMemory(0, 3)
    with pytest.raises(ValueError, match="similarity"):
        NMNCell(2, 3, similarity="l1")
    with pytest.raises(ValueError, match="write_input"):
        NMNCell(2, 3, write_input="memory")
    with pytest.raises(ValueError, match="controller"):
        NMNCell(2, 3, controller="transformer")
    with pytest.raises(ValueError, match="d_hidden"):
        NMNCell(2, 0)
    mem = NMNMemory(4, 3)
    state = mem.init_state({})
    with pytest.raises(ValueError, match=r"state\.memory"):
        mem.read({}, state._replace(memory=jnp.zeros((4, 2))), jnp.zeros(3))
    with pytest.raises(ValueError, match="key"):
        mem.write({}, state, jnp.zeros(2), jnp.zeros(4))
    with pytest.raises(ValueError, match="value"):
        mem.write({}, state, jnp.zeros(3), jnp.zeros(3))
    with pytest.raises(ValueError, match="'thetta'"):
        mem.read({}, state, jnp.zeros(3), thetta=0.1)
    cell = NMNCell(2, 3, memory_size=4, memory_width=3)
    p = cell.init_params(jax.random.key(0))
    carry = cell.init_carry(p)
    with pytest.raises(ValueError, match=r"carry\.memory\.memory"):
        cell.step(p, carry._replace(memory=state._replace(memory=jnp.zeros((5, 3)))), jnp.ones(2))
    with pytest.raises(ValueError, match="x"):
        cell.step(p, carry, jnp.ones((1, 2)))
