"""The raw Titans entry points: ``parallel_memory`` (chunked dual form) against the token loop
``recurrent_memory``, a NumPy oracle, the layer with identity projections, streaming and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core.testing import assert_trees_allclose, float64
from memjax.memories.titans import (
    ChunkState,
    MemoryMLP,
    TitansMemory,
    TitansState,
    parallel_memory,
    recurrent_memory,
    token_update,
)
from memjax.memories.titans.parallel import chunk_coefficients, step_coefficients
from memjax.memories.titans.update import sequence_gates
from memjax.models.titans import TitansLMM

T, D = 13, 4


def _inputs(seed=0, length=T, d=D):
    r = np.random.default_rng(seed)
    k, v, q = (jnp.asarray(r.normal(size=(length, d))) for _ in range(3))
    gates = (
        jnp.asarray(r.uniform(0.0, 1.0, length)),
        jnp.asarray(r.uniform(0.0, 1.0, length)),
        jnp.asarray(r.uniform(0.0, 0.5, length)),
    )
    return k, v, q, gates


def _memory(**kw):
    return TitansMemory(**{"d_key": D, "d_value": D, "expansion": 2, "dtype": "float64", **kw})


def _weights(memory, seed=1):
    w = memory.init_params(jax.random.key(seed))["init"]
    return jax.tree_util.tree_map(
        lambda a: a + 0.3 * jax.random.normal(jax.random.key(seed + 1), a.shape, a.dtype), w
    )


CASES = {
    "exact": (dict(), dict(chunk_size=1)),
    "chunk4": (dict(), dict(chunk_size=4)),
    "chunk5_bias_clip": (dict(depth=3, bias=True, max_grad_norm=0.3), dict(chunk_size=5)),
    "wrapper_mean": (dict(residual_norm=True, loss="mean", activation="silu"), dict(chunk_size=4)),
    "initial_chunk_read": (dict(), dict(chunk_size=4, grad_point="initial", read_point="chunk")),
    "once_per_chunk": (dict(residual_norm=True), dict(chunk_size=3, update="chunk")),
    "once_per_chunk_initial": (
        dict(depth=1, max_grad_norm=None),
        dict(chunk_size=4, update="chunk", grad_point="initial"),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_parallel_memory_equals_the_token_loop(case):
    """parallel_memory (closed form + dual reads) == recurrent_memory (token_update per token)."""
    spec, options = CASES[case]
    with float64():
        memory = _memory(**spec)
        w0 = _weights(memory)
        k, v, q, gates = _inputs()
        if options.get("grad_point") == "initial":
            options = {**options, "initial_weights": w0}
        fast = jax.jit(lambda w, *a: parallel_memory(memory, w, *a, **options))(w0, k, v, q, *gates)
        slow = jax.jit(lambda w, *a: recurrent_memory(memory, w, *a, **options))(
            w0, k, v, q, *gates
        )
    assert isinstance(fast[1], ChunkState)
    assert_trees_allclose(fast, slow, rtol=1e-10, atol=1e-10, what=case)


def test_exact_recurrence_is_titans_memory_write_then_read():
    """chunk_size=1: recurrent_memory == a Python loop of TitansMemory.write + read."""
    with float64():
        memory = _memory(depth=2, max_grad_norm=0.5)
        w0 = _weights(memory)
        k, v, q, (theta, eta, alpha) = _inputs(3)
        reads, state = parallel_memory(memory, w0, k, v, q, theta, eta, alpha, chunk_size=1)
        params = {"init": w0}
        s, want = memory.init_state(params), []
        for t in range(T):
            s = memory.write(params, s, k[t], v[t], theta=theta[t], eta=eta[t], alpha=alpha[t])
            want.append(memory.read(params, s, q[t]))
    np.testing.assert_allclose(reads, np.stack(want), rtol=1e-10, atol=1e-10)
    assert_trees_allclose(
        (state.weights, state.momentum), tuple(s), rtol=1e-10, atol=1e-10, what="state"
    )


@pytest.mark.parametrize("update", ["token", "chunk"])
def test_linear_memory_numpy_oracle(update):
    """Depth 1, no clipping: momentum, decay and chunk-start gradients written out in NumPy.

    ``update="chunk"``: η read at a chunk's first token, α and the write at its last."""
    chunk = 3
    with float64():
        memory = _memory(depth=1, max_grad_norm=None, loss="half_sum")
        w0 = _weights(memory)
        k, v, q, gates = _inputs(5)
        reads, state = parallel_memory(memory, w0, k, v, q, *gates, chunk_size=chunk, update=update)
    k, v, q = (np.asarray(a) for a in (k, v, q))
    theta, eta, alpha = (np.asarray(g) for g in gates)
    W = np.asarray(w0["layers"][0]["w"])
    S = np.zeros_like(W)
    for t in range(T):
        if t % chunk == 0:
            anchor = W.copy()  # the gradient point of the chunk (eq. 16)
        u = np.outer(k[t], k[t] @ anchor - v[t])  # ∇ ½‖k W − v‖²
        first, last = t % chunk == 0, t % chunk == chunk - 1
        e = eta[t] if update == "token" or first else 1.0
        S = e * S - theta[t] * u
        if update == "token" or last:
            W = (1 - alpha[t]) * W + S
        np.testing.assert_allclose(reads[t], q[t] @ W, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(state.weights["layers"][0]["w"], W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state.momentum["layers"][0]["w"], S, rtol=1e-10, atol=1e-12)


def test_token_update_is_the_delta_rule_with_momentum():
    """One token_update: S = η S − θ ∇ℓ, M = (1 − α) M + S (eqs. 13–14) for ℓ = ‖k W − v‖²."""
    r = np.random.default_rng(0)
    W, S = r.normal(size=(3, 2)), r.normal(size=(3, 2))
    k, v = r.normal(size=3), r.normal(size=2)
    with float64():
        mlp = MemoryMLP(3, 2, depth=1)
        w, s = token_update(
            mlp,
            "sum",
            None,
            {"layers": ({"w": jnp.asarray(W)},)},
            {"layers": ({"w": jnp.asarray(S)},)},
            {"layers": ({"w": jnp.asarray(W)},)},
            jnp.asarray(k),
            jnp.asarray(v),
            0.3,
            0.8,
            0.1,
        )
    S_want = 0.8 * S - 0.3 * 2.0 * np.outer(k, k @ W - v)
    np.testing.assert_allclose(s["layers"][0]["w"], S_want, rtol=1e-12)
    np.testing.assert_allclose(w["layers"][0]["w"], 0.9 * W + S_want, rtol=1e-12)


@pytest.mark.parametrize("update", ["token", "chunk"])
def test_streaming_in_pieces_equals_whole(update):
    """A ChunkState carried across calls of any sizes (offset inside a chunk) == one call."""
    with float64():
        memory = _memory()
        w0 = _weights(memory)
        k, v, q, gates = _inputs(7)
        run = jax.jit(lambda s, *a: parallel_memory(memory, s, *a, chunk_size=4, update=update))
        whole = run(TitansState(w0, jax.tree_util.tree_map(jnp.zeros_like, w0)), k, v, q, *gates)
        # pieces of lengths 3, 3, 1, 6 (token): the last chunk of a call empty (offset 0, length
        # 3) and skipped, live with a nonzero offset (3..6, 7..13), a one-chunk call (6..7)
        pieces = [(0, 4), (4, 8), (8, T)] if update == "chunk" else [(0, 3), (3, 6), (6, 7), (7, T)]
        state, outs = w0, []
        for lo, hi in pieces:
            y, state = run(state, k[lo:hi], v[lo:hi], q[lo:hi], *(g[lo:hi] for g in gates))
            outs.append(y)
    assert_trees_allclose((jnp.concatenate(outs), state), whole, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("grad_point", ["initial", "chunk_start"])
def test_once_per_chunk_gradients_equal_the_token_loop(grad_point):
    """jax.grad through ``update="chunk"``'s one-step body (``backward="autodiff"``, remat that
    keeps the gradient factors' matmul outputs) == jax.grad through the token loop, w.r.t. the
    weights, keys, values, queries and gates, over a stream of two calls (the second ends in a
    partial chunk), float64, depth 2 with the residual wrapper and clipping."""
    with float64():
        memory = _memory(residual_norm=True, max_grad_norm=0.5)
        w0 = _weights(memory)
        k, v, q, gates = _inputs(11)

        def loss(entry, w, k, v, q, gates):
            opts = dict(chunk_size=4, update="chunk", grad_point=grad_point)
            if grad_point == "initial":
                opts["initial_weights"] = w
            y1, s = entry(memory, w, k[:4], v[:4], q[:4], *(g[:4] for g in gates), **opts)
            y2, s = entry(memory, s, k[4:], v[4:], q[4:], *(g[4:] for g in gates), **opts)
            tail = sum(jnp.sum(jnp.tanh(a)) for a in jax.tree_util.tree_leaves(s[:3]))
            return jnp.sum(jnp.sin(y1)) + jnp.sum(jnp.cos(y2)) + tail

        grad = jax.jit(jax.grad(loss, argnums=(1, 2, 3, 4, 5)), static_argnums=0)
        fast = grad(parallel_memory, w0, k, v, q, gates)
        slow = grad(recurrent_memory, w0, k, v, q, gates)
    assert_trees_allclose(fast, slow, rtol=1e-10, atol=1e-10, what=grad_point)


@pytest.mark.parametrize(
    "granularity, grad_point", [("token", "chunk_start"), ("chunk_step", "initial")]
)
def test_layer_with_identity_projections_is_the_entry_point(granularity, grad_point):
    """TitansLMM.memory_apply with W_qkv = I (no conv, SiLU, ℓ2, pre-norm) == parallel_memory
    (and reference=True == recurrent_memory) per head, with the layer's per-head gates given."""
    heads, d = 2, 3
    layer = TitansLMM(
        d_model=3 * heads * d,
        num_heads=heads,
        d_head=d,
        chunk_size=4,
        expansion=2,
        conv_width=0,
        qkv_silu=False,
        qk_l2norm=False,
        num_persistent=0,
        gate_granularity=granularity,
        grad_point=grad_point,
        dtype="float64",
    )
    with float64():
        params = layer.init_params(jax.random.key(0))
        params["qkv"]["w"] = jnp.eye(3 * heads * d)
        params["memory"] = jax.tree_util.tree_map(
            lambda a: a + 0.3 * jax.random.normal(jax.random.key(1), a.shape, a.dtype),
            params["memory"],
        )
        state = layer.init_state(params)
        xs = jax.random.normal(jax.random.key(2), (T, 3 * heads * d), jnp.float64)
        r = np.random.default_rng(3)
        gates = {
            "theta": jnp.asarray(r.uniform(0, 1, (T, heads))),
            "eta": jnp.asarray(r.uniform(0, 1, (T, heads))),
            "alpha": jnp.asarray(r.uniform(0, 0.5, (T, heads))),
        }
        k, v, q = (
            xs[:, i * heads * d : (i + 1) * heads * d].reshape(T, heads, d) for i in range(3)
        )
        options = dict(
            chunk_size=4,
            grad_point=grad_point,
            update="chunk" if granularity == "chunk_step" else "token",
        )
        for reference, entry in [(False, parallel_memory), (True, recurrent_memory)]:
            reads, new = jax.jit(
                lambda p, s, x, g, ref=reference: layer.memory_apply(p, s, x, reference=ref, **g)
            )(params, state, xs, gates)
            for h in range(heads):
                w0 = jax.tree_util.tree_map(lambda a, h=h: a[h], params["memory"])
                initial = w0 if grad_point == "initial" else None
                want, want_state = entry(
                    layer.memory,
                    w0,
                    k[:, h],
                    v[:, h],
                    q[:, h],
                    *(gates[n][:, h] for n in ("theta", "eta", "alpha")),
                    initial_weights=initial,
                    **options,
                )
                np.testing.assert_allclose(reads[:, h], want, rtol=1e-12, atol=1e-12)
                got_w = jax.tree_util.tree_map(lambda a, h=h: a[h], new.weights)
                assert_trees_allclose(got_w, want_state.weights, rtol=1e-12, atol=1e-12)
                assert int(new.offset) == int(want_state.offset) == T % 4


@pytest.mark.parametrize("offset", [0, 2])
def test_step_coefficients_are_the_last_row_of_the_closed_form(offset):
    """``update="chunk"``'s O(C) coefficients == the last row of the general C x C closed form
    (masked tokens before the offset and after the end, partial chunks included)."""
    size, length = 4, 9
    total = -(-(length + offset) // size) * size
    pos = np.arange(total)
    with float64():
        active = jnp.asarray((pos >= offset) & (pos < offset + length))
        _, _, _, raw = _inputs(seed=3, length=total)
        gates = sequence_gates(*raw, jnp.asarray(pos), active, chunk_size=size, update="chunk")
        chunked = [g.reshape(-1, size) for g in gates]
        for c in range(total // size):
            full = chunk_coefficients(*(g[c] for g in chunked))
            last = step_coefficients(*(g[c] for g in chunked))
            for name in ("m", "n", "beta", "f", "G"):
                np.testing.assert_allclose(
                    getattr(last, name)[-1], getattr(full, name)[-1], rtol=1e-13, atol=1e-15
                )


def test_bad_arguments_name_the_argument():
    memory = _memory(dtype="float32")
    w0 = memory.init_params(jax.random.key(0))["init"]
    k = jnp.ones((5, D))
    ok = dict(chunk_size=2)
    cases = [
        ("memory", lambda: parallel_memory(memory.mlp, w0, k, k, k, 0.1, 0.9, 0.0, **ok)),
        ("keys", lambda: parallel_memory(memory, w0, k[:, :3], k, k, 0.1, 0.9, 0.0, **ok)),
        ("keys", lambda: parallel_memory(memory, w0, k[:0], k[:0], k[:0], 0.1, 0.9, 0.0, **ok)),
        ("values", lambda: parallel_memory(memory, w0, k, k[:4], k, 0.1, 0.9, 0.0, **ok)),
        ("queries", lambda: recurrent_memory(memory, w0, k, k, k[:, :2], 0.1, 0.9, 0.0)),
        ("theta", lambda: parallel_memory(memory, w0, k, k, k, jnp.ones(4), 0.9, 0.0, **ok)),
        ("eta", lambda: parallel_memory(memory, w0, k, k, k, 0.1, 1.5, 0.0, **ok)),
        ("theta", lambda: recurrent_memory(memory, w0, k, k, k, -0.1, 0.9, 0.0)),
        ("alpha", lambda: recurrent_memory(memory, w0, k, k, k, 0.1, 0.9, jnp.full(5, 2.0))),
        ("chunk_size", lambda: parallel_memory(memory, w0, k, k, k, 0.1, 0.9, 0.0, chunk_size=0)),
        ("update", lambda: parallel_memory(memory, w0, k, k, k, 0.1, 0.9, 0.0, update="x", **ok)),
        (
            "grad_point",
            lambda: recurrent_memory(memory, w0, k, k, k, 0.1, 0.9, 0.0, grad_point="x"),
        ),
        (
            "initial_weights",
            lambda: parallel_memory(memory, w0, k, k, k, 0.1, 0.9, 0.0, grad_point="initial", **ok),
        ),
        ("state", lambda: parallel_memory(memory, {"w": k}, k, k, k, 0.1, 0.9, 0.0, **ok)),
        (
            "state",
            lambda: parallel_memory(
                memory,
                _memory(depth=1, dtype="float32").init_params(jax.random.key(0))["init"],
                k,
                k,
                k,
                0.1,
                0.9,
                0.0,
                **ok,
            ),
        ),
    ]
    for name, call in cases:
        with pytest.raises((TypeError, ValueError), match=name):
            call()
