"""SparseyMemory: the memory protocol over one mac equals SparseyMac.learn / recognize exactly.

The generic memory contract (tests/core) needs real-valued keys and gradients, which a binary CSA
does not have, so the adapter's contract is checked here on binary data: write/read against the
mac's own verbs, recall of stored patterns against a NumPy construction of the links, scan ==
loop of step, jit == eager, vmap == stacked calls, no retrace, lax.cond, and the errors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import scan, step
from memjax.memories.sparsey import SparseyMac, SparseyMemory, codes_to_binary

N, T = 48, 6


def patterns(seed, n=T, active=6):
    rng = np.random.default_rng(seed)
    xs = np.zeros((n, N), np.float32)
    for i in range(n):
        xs[i, rng.choice(N, active, replace=False)] = 1.0
    return xs


@pytest.fixture(scope="module")
def mac():
    return SparseyMac(n_inputs=N, Q=6, K=8, saturation=None)


def write_loop(mem, state, xs, values, key):
    """Python loop of ``write`` with the per-token keys that ``scan`` / ``learn`` split."""
    write = jax.jit(lambda s, x, v, k: mem.write({}, s, x, v, key=k))
    for x, v, k in zip(xs, values, jax.random.split(key, len(xs))):
        state = write(state, x, v, k)
    return state


def reads_of(mem, state, queries, keys=None):
    """A Python loop of ``read`` (one jitted call per query)."""
    if keys is None:
        read = jax.jit(lambda s, q: mem.read({}, s, q))
        return jnp.stack([read(state, q) for q in queries])
    read = jax.jit(lambda s, q, k: mem.read({}, s, q, key=k))
    return jnp.stack([read(state, q, k) for q, k in zip(queries, keys)])


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_write_equals_learn_and_read_equals_recognize(mac):
    mem = SparseyMemory(mac)
    xs, key = patterns(0), jax.random.key(3)
    state = write_loop(mem, mem.init_state({}), xs, np.zeros((T, 48), np.float32), key)
    want_state, learned = mac.learn(mac.init_state(), xs, key=key)
    assert_trees_equal(state.mac, want_state)
    assert state.links is None
    # reads with the per-item keys of recognize(ties="per_item") give its codes, as cells
    probes = np.concatenate([xs, patterns(1, 4)])
    rkey = jax.random.key(5)
    keys = jax.random.split(rkey, len(probes))
    reads = reads_of(mem, state, probes, keys)
    found = mac.recognize(want_state, probes, key=rkey, ties="per_item")
    np.testing.assert_array_equal(np.asarray(reads), np.asarray(codes_to_binary(found.code, 8)))
    assert reads.dtype == jnp.float32 and reads.shape == (len(probes), *mem.value_size)
    # key=None is recognize's fixed key (shared tie-break order)
    shared = mac.recognize(want_state, probes, ties="shared")
    np.testing.assert_array_equal(
        np.asarray(reads_of(mem, state, probes)),
        np.asarray(codes_to_binary(shared.code, 8)),
    )
    # the stored patterns come back with their learned codes, exactly
    np.testing.assert_array_equal(
        np.asarray(reads[:T]), np.asarray(codes_to_binary(learned.code, 8))
    )


def test_labels_are_recalled_from_the_links(mac):
    mem = SparseyMemory(mac, num_labels=3)
    xs, key = patterns(2), jax.random.key(7)
    labels = np.array([0, 1, 2, 0, 1, 2])
    values = np.eye(3, dtype=np.float32)[labels]
    state = write_loop(mem, mem.init_state({}), xs, values, key)
    _, learned = mac.learn(mac.init_state(), xs, key=key)
    codes = np.asarray(learned.code)
    # NumPy reference: L[q, c_q, j] = 1 for every stored (code, label); read = mean over CMs
    links = np.zeros((6, 8, 3), bool)
    for code, label in zip(codes, labels):
        links[np.arange(6), code, label] = True
    np.testing.assert_array_equal(np.asarray(state.links), links)
    reads = np.asarray(reads_of(mem, state, xs))
    want = links[np.arange(6)[None, :], codes].mean(axis=1)  # (T, 3)
    np.testing.assert_allclose(reads, want, rtol=0, atol=1e-7)
    assert (reads[np.arange(T), labels] == 1.0).all()
    np.testing.assert_array_equal(reads.argmax(-1), labels)


@pytest.mark.parametrize("num_labels", [0, 2])
def test_scan_equals_loop_of_step(mac, num_labels):
    mem = SparseyMemory(mac, num_labels=num_labels)
    xs, qs = patterns(3), patterns(4)
    vs = np.eye(2, dtype=np.float32)[np.arange(T) % 2] if num_labels else np.zeros((T, 48))
    vs = jnp.asarray(vs, jnp.float32)
    key = jax.random.key(11)
    state = mem.init_state({})
    one = jax.jit(lambda s, x, v, q, k: step(mem, {}, s, x, v, q, key=k))
    ref_ys, ref_state = [], state
    for x, v, q, k in zip(xs, vs, qs, jax.random.split(key, T)):
        y, ref_state = one(ref_state, x, v, q, k)
        ref_ys.append(y)
    for chunk_size, remat in ((1, False), (4, True), (None, False)):
        ys, st = scan(mem, {}, state, xs, vs, qs, key=key, chunk_size=chunk_size, remat=remat)
        assert_trees_equal((ys, st), (jnp.stack(ref_ys), ref_state))
    jitted = jax.jit(lambda s, k: scan(mem, {}, s, xs, vs, qs, key=k, chunk_size=4))(state, key)
    assert_trees_equal(jitted, (jnp.stack(ref_ys), ref_state))


def test_vmap_equals_stacked_calls_and_no_retrace(mac):
    mem = SparseyMemory(mac, num_labels=2)
    seqs = [jnp.asarray(patterns(10 + b)) for b in range(3)]
    vs = jnp.asarray(np.eye(2, dtype=np.float32)[np.arange(T) % 2])
    key = jax.random.key(0)
    traces = []

    @jax.jit
    def run(memory, xs, key):
        traces.append(1)
        return scan(memory, {}, memory.init_state({}), xs, vs, xs, key=key, chunk_size=2)

    singles = [run(mem, xs, key) for xs in seqs]
    run(SparseyMemory(SparseyMac(n_inputs=N, Q=6, K=8, saturation=None), 2), seqs[0], key)
    assert len(traces) == 1, "an equal spec or new inputs retraced"
    batched = jax.vmap(lambda xs: run(mem, xs, key))(jnp.stack(seqs))
    assert_trees_equal(batched, jax.tree.map(lambda *a: jnp.stack(a), *singles))


def test_state_structure_is_stable_under_cond(mac):
    mem = SparseyMemory(mac, num_labels=2)
    x, v, key = jnp.asarray(patterns(5)[0]), jnp.array([0.0, 1.0]), jax.random.key(1)
    state = mem.init_state({})

    @jax.jit
    def maybe(pred, s):
        return jax.lax.cond(pred, lambda s: mem.write({}, s, x, v, key=key), lambda s: s, s)

    assert_trees_equal(maybe(False, state), state)
    assert_trees_equal(maybe(True, state), mem.write({}, state, x, v, key=key))


def test_known_controls_are_ignored_and_unknown_ones_raise(mac):
    mem = SparseyMemory(mac)
    x, v, key = patterns(6)[0], np.zeros(48, np.float32), jax.random.key(2)
    state = mem.init_state({})
    plain = mem.write({}, state, x, v, key=key)
    assert_trees_equal(mem.write({}, state, x, v, key=key, theta=0.5, eta=0.9), plain)
    assert_trees_equal(mem.read({}, plain, x, alpha=0.1), mem.read({}, plain, x))
    with pytest.raises(ValueError, match=r"SparseyMemory\.write: unknown control 'keyy'"):
        mem.write({}, state, x, v, key=key, keyy=key)
    with pytest.raises(ValueError, match=r"SparseyMemory\.read: unknown control 'ties'"):
        mem.read({}, state, x, ties="shared")
    with pytest.raises(ValueError, match="unknown control 'thetta'"):
        scan(mem, {}, state, x[None], v[None], x[None], key=key, thetta=0.1)


def test_bad_inputs_name_the_argument(mac):
    mem = SparseyMemory(mac, num_labels=2)
    state, key = mem.init_state({}), jax.random.key(0)
    x, v = np.zeros(N, np.float32), np.array([1.0, 0.0], np.float32)
    cases = [
        ("key: expected shape", lambda: mem.write({}, state, x[:-1], v, key=key)),
        ("key: expected binary", lambda: mem.write({}, state, x + 0.5, v, key=key)),
        ("value: expected shape", lambda: mem.write({}, state, x, v[:1], key=key)),
        ("value: expected binary", lambda: mem.write({}, state, x, 2 * v + 1, key=key)),
        ("query: expected shape", lambda: mem.read({}, state, x[None])),
        ("key: SparseyMemory.write samples", lambda: mem.write({}, state, x, v)),
        ("key: expected a typed PRNG key", lambda: mem.write({}, state, x, v, key=0)),
        ("key: expected a typed PRNG key", lambda: mem.read({}, state, x, key=3)),
    ]
    for match, call in cases:
        with pytest.raises((ValueError, TypeError), match=match):
            call()
    with pytest.raises(ValueError, match="mac: SparseyMemory stores U patterns only"):
        SparseyMemory(SparseyMac(n_inputs=4, n_h=3))
    with pytest.raises(ValueError, match="num_labels: expected a non-negative integer"):
        SparseyMemory(mac, num_labels=-1)
    with pytest.raises(TypeError, match="mac: expected a SparseyMac"):
        SparseyMemory("mac")
    assert mem.key_size == (N,) and mem.value_size == (2,)
    assert SparseyMemory(mac).value_size == (6 * 8,)
    assert mem.init_params(jax.random.key(0)) == {}
