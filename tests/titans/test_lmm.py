"""TitansLMM: the chunked parallel (dual) form against the token-by-token recurrence, streaming,
decoding, outer gradients and long-stream stability (spec §6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.core import MultiHead, scan, tree_all_finite
from memjax.core.testing import assert_trees_allclose, directional_fd, float64
from memjax.memories.titans.parallel import segment_products
from memjax.models.titans import TitansLMM

D, H, T = 8, 2, 23


def _layer(**kw):
    base = dict(d_model=D, num_heads=H, expansion=2, num_persistent=3, dtype="float64")
    return TitansLMM(**{**base, **kw})


def _random_params(layer, seed=0):
    params = layer.init_params(jax.random.key(seed))
    return jax.tree_util.tree_map(
        lambda p: p + 0.1 * jax.random.normal(jax.random.key(seed + 1), p.shape, p.dtype), params
    )


def _gates(seed=2, length=T):
    r = np.random.default_rng(seed)
    return {
        "theta": jnp.asarray(r.uniform(0.0, 1.0, size=(length, H))),
        "eta": jnp.asarray(r.uniform(0.0, 1.0, size=(length, H))),
        "alpha": jnp.asarray(r.uniform(0.0, 0.5, size=(length, H))),
    }


def _xs(seed=3, length=T):
    return jax.random.normal(jax.random.key(seed), (length, D), jnp.float64)


CONFIGS = {
    "default": {},
    "linear_bias_noclip": dict(depth=1, bias=True, residual_norm=False, max_grad_norm=None),
    "port_options": dict(grad_point="initial", read_point="chunk", loss_reduction="mean"),
    "deep3_chunk_gates": dict(depth=3, bias=True, gate_granularity="chunk"),
}


@pytest.mark.parametrize(
    "config, chunk",
    [("default", 1), ("default", 4), ("default", 16)]
    + [(name, 4) for name in CONFIGS if name != "default"],
)
def test_chunked_equals_token_by_token(config, chunk):
    """Parallel form (closed form + dual reads) == the token loop, random per-token gates."""
    with float64():
        layer = _layer(chunk_size=chunk, **CONFIGS[config])
        params = _random_params(layer)
        state = layer.init_state(params)
        gates = {} if config == "deep3_chunk_gates" else _gates()
        both = jax.jit(
            lambda p, s, x, g: (layer.apply(p, s, x, **g), layer.reference_apply(p, s, x, **g))
        )
        fast, slow = both(params, state, _xs(), gates)
    assert_trees_allclose(fast, slow, rtol=1e-10, atol=1e-10, what=f"{config}, chunk {chunk}")


def test_chunk_one_is_the_exact_recurrence_of_titans_memory():
    """Chunk size 1: the layer's memory equals MultiHead(TitansMemory) written token by token."""
    with float64():
        layer = _layer(chunk_size=1, num_persistent=0)
        params = _random_params(layer)
        state = layer.init_state(params)
        gates = _gates(length=12)
        xs = _xs(length=12)
        reads, new = jax.jit(layer.memory_apply)(params, state, xs, **gates)
        k, v, q, _ = layer.project(params, state.conv_tail, xs)
        mh = MultiHead(layer.memory, H)
        mp = {"init": params["memory"]}
        want, ws = scan(mh, mp, mh.init_state(mp), k, v, q, chunk_size=5, **gates)
    np.testing.assert_allclose(reads, want, rtol=1e-11, atol=1e-11)
    assert_trees_allclose(new.weights, ws.weights, rtol=1e-11, atol=1e-11, what="weights")
    assert_trees_allclose(new.momentum, ws.momentum, rtol=1e-11, atol=1e-11, what="momentum")


def test_ttt_linear_minibatch_numpy_oracle():
    """η = α = 0, linear memory, chunk b: TTT-Linear's mini-batch GD (spec §6 oracle 3) in NumPy."""
    chunk, length = 4, 10
    with float64():
        layer = _layer(
            chunk_size=chunk,
            depth=1,
            residual_norm=False,
            max_grad_norm=None,
            loss_reduction="half_sum",
            num_persistent=0,
        )
        params = _random_params(layer)
        state = layer.init_state(params)
        xs = _xs(length=length)
        theta = _gates(length=length)["theta"]
        reads, _ = jax.jit(layer.memory_apply)(params, state, xs, theta=theta, eta=0.0, alpha=0.0)
        k, v, q, _ = (np.asarray(a) for a in layer.project(params, state.conv_tail, xs))
    theta = np.asarray(theta)
    for h in range(H):
        W = np.asarray(params["memory"]["layers"][0]["w"][h])
        for start in range(0, length, chunk):
            W0 = W.copy()  # every gradient of the chunk at its start weights
            for t in range(start, min(start + chunk, length)):
                W = W - theta[t, h] * np.outer(k[t, h], k[t, h] @ W0 - v[t, h])
                np.testing.assert_allclose(reads[t, h], q[t, h] @ W, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("config", ["default", "port_options"])
def test_streaming_in_any_pieces_and_decoding_equal_whole(config):
    with float64():
        layer = _layer(chunk_size=4, **CONFIGS[config])
        params = _random_params(layer)
        state = layer.init_state(params)  # offset 3: persistent tokens fill part of a chunk
        gates = _gates()
        xs = _xs()
        apply = jax.jit(layer.apply)
        whole = apply(params, state, xs, **gates)
        outs, s = [], state
        for lo, hi in [(0, 5), (5, 6), (6, T)]:
            y, s = apply(params, s, xs[lo:hi], **{n: g[lo:hi] for n, g in gates.items()})
            outs.append(y)
        assert_trees_allclose(
            (jnp.concatenate(outs), s), whole, rtol=1e-11, atol=1e-11, what="streaming"
        )
        decode = jax.jit(layer.decode)
        outs, s = [], state
        for t in range(5):
            y, s = decode(params, s, xs[t], **{n: g[t] for n, g in gates.items()})
            outs.append(y)
        part = apply(params, state, xs[:5], **{n: g[:5] for n, g in gates.items()})
        assert_trees_allclose((jnp.stack(outs), s), part, rtol=1e-11, atol=1e-11, what="decode")


def test_chunk_gates_stream_in_chunk_multiples():
    with float64():
        layer = _layer(chunk_size=4, gate_granularity="chunk", num_persistent=0)
        params = _random_params(layer)
        state = layer.init_state(params)
        xs = _xs(length=24)
        apply = jax.jit(layer.apply)
        whole = apply(params, state, xs)
        y1, s = apply(params, state, xs[:8])
        y2, s = apply(params, s, xs[8:])
    assert_trees_allclose((jnp.concatenate([y1, y2]), s), whole, rtol=1e-11, atol=1e-11)


def test_outer_gradients_match_finite_differences():
    """d/d(params) of a loss through init_state (persistent tokens) and apply, float64."""
    with float64():
        layer = _layer(chunk_size=4, num_persistent=2)
        params = _random_params(layer)
        xs = _xs(length=9)

        @jax.jit
        def loss(p):
            ys, _ = layer.apply(p, layer.init_state(p), xs)
            return jnp.sum(jnp.sin(ys))

        grads = jax.grad(loss)(params)
        assert bool(tree_all_finite(grads))
        for i in range(2):
            leaves, treedef = jax.tree_util.tree_flatten(params)
            keys = jax.random.split(jax.random.key(50 + i), len(leaves))
            direction = jax.tree_util.tree_unflatten(
                treedef, [jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves)]
            )
            analytic = sum(
                jnp.vdot(g, d)
                for g, d in zip(
                    jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction)
                )
            )
            numeric = directional_fd(loss, params, direction, 1e-6)
            np.testing.assert_allclose(float(analytic), float(numeric), rtol=1e-6, atol=1e-8)


def test_long_stream_stays_finite():
    """64K tokens with the default settings (small dims) stay free of NaN/Inf."""
    layer = TitansLMM(d_model=32, num_heads=2, chunk_size=64)
    params = layer.init_params(jax.random.key(0))
    xs = 3.0 * jax.random.normal(jax.random.key(1), (65536, 32))

    @jax.jit
    def run(p, xs):
        return layer.apply(p, layer.init_state(p), xs)

    ys, state = run(params, xs)
    assert bool(jnp.all(jnp.isfinite(ys))) and bool(tree_all_finite(state))


def test_bad_inputs_name_the_argument():
    layer = TitansLMM(d_model=D, num_heads=H, chunk_size=4, expansion=2, num_persistent=0)
    params = layer.init_params(jax.random.key(0))
    state = layer.init_state(params)
    xs = jnp.ones((5, D))
    cases = [
        ("xs", lambda: layer.apply(params, state, jnp.ones((5, D + 1))), ValueError),
        ("xs", lambda: layer.apply(params, state, jnp.ones((5, D), jnp.int32)), TypeError),
        ("xs", lambda: layer.apply(params, state, jnp.ones((0, D))), ValueError),
        ("theta", lambda: layer.apply(params, state, xs, theta=jnp.ones((4, H))), ValueError),
        ("x", lambda: layer.decode(params, state, xs), ValueError),
    ]
    for name, call, error in cases:
        with pytest.raises(error, match=name):
            call()
    # a known control the layer does not use is ignored; an unknown name or a value outside the
    # maths' range raises, naming it
    np.testing.assert_array_equal(
        layer.apply(params, state, xs, key=jax.random.key(0))[0], layer.apply(params, state, xs)[0]
    )
    for call, match in [
        (lambda: layer.apply(params, state, xs, thetta=0.5), "unknown control 'thetta'"),
        (lambda: layer.reference_apply(params, state, xs, not_a_control=1.0), "not_a_control"),
        (lambda: layer.init_state(params, etta=0.0), "etta"),
        (lambda: layer.decode(params, state, xs[0], alfa=0.0), "alfa"),
        (lambda: layer.apply(params, state, xs, eta=5.0), "eta: expected values in"),
        (lambda: layer.apply(params, state, xs, theta=-1.0), "theta: expected values >= 0"),
        (lambda: layer.init_state(params, alpha=jnp.full(3, 1.5)), "alpha"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()


def test_segment_products_equal_brute_force_with_exact_zeros():
    """``P[i, j] = prod(a[j+1 : i+1])`` (log-space with zero counting) == NumPy products."""
    a = np.array([0.5, 0.0, 0.9, 1.0, 0.3, 0.0, 0.0, 0.7, 1e-3, 0.99])
    with float64():
        got = np.asarray(segment_products(jnp.asarray(a)))
    n = len(a)
    prod = lambda i, j: np.prod(a[j + 1 : i + 1]) if i >= j else 0.0
    want = np.array([[prod(i, j) for j in range(n)] for i in range(n)])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    assert np.all(got[want == 0] == 0)


def test_conv_init_options():
    """``conv_init``: U(±1/√W) plus an identity tap (default), the uniform draw alone, or the
    identity plus small noise; the other params do not depend on it."""
    layers = {
        init: TitansLMM(d_model=D, num_heads=H, conv_width=4, conv_init=init)
        for init in ("uniform_identity", "uniform", "identity")
    }
    assert TitansLMM(d_model=D, num_heads=H).conv_init == "uniform_identity"
    params = {init: m.init_params(jax.random.key(0)) for init, m in layers.items()}
    u = params["uniform"]["conv"]["w"]
    assert float(jnp.max(jnp.abs(u))) <= 0.5 and float(jnp.std(u)) > 0.2  # U(±1/2): std 0.29
    ui = params["uniform_identity"]["conv"]["w"]
    np.testing.assert_allclose(ui, u.at[-1].add(1.0), rtol=1e-6)
    w = params["identity"]["conv"]["w"]
    # noise std 0.1 / sqrt(W) = 0.05: 10 sigma bounds
    assert float(jnp.max(jnp.abs(w[-1] - 1.0))) < 0.5 and float(jnp.max(jnp.abs(w[:-1]))) < 0.5
    assert 0.02 < float(jnp.std(w[:-1])) < 0.08
    for name in params["uniform"]:
        if name != "conv":
            for other in ("uniform_identity", "identity"):
                jax.tree.map(
                    np.testing.assert_array_equal, params["uniform"][name], params[other][name]
                )
    with pytest.raises(ValueError, match="conv_init"):
        TitansLMM(d_model=D, num_heads=H, conv_init="zeros")


def test_eager_memory_apply_traces_once_per_spec_and_shapes(monkeypatch):
    """Un-jitted calls reuse one compiled program: the trace (which calls the raw entry point
    once) runs on the first call only, until the input shapes change."""
    import memjax.models.titans.lmm as lmm_module

    traces = []
    entry = lmm_module.parallel_memory

    def counting(*args, **kwargs):
        traces.append(1)  # a Python side effect: runs only while tracing
        return entry(*args, **kwargs)

    monkeypatch.setattr(lmm_module, "parallel_memory", counting)
    layer = TitansLMM(d_model=12, num_heads=3, chunk_size=3, expansion=1, num_persistent=0)
    params = layer.init_params(jax.random.key(0))
    state = layer.init_state(params)
    cache = lmm_module._memory_apply._cache_size()
    xs = jax.random.normal(jax.random.key(1), (7, 12))
    first, s1 = layer.memory_apply(params, state, xs)
    second, _ = layer.memory_apply(params, s1, 2.0 * xs, eta=0.5)
    third, _ = layer.memory_apply(params, s1, 3.0 * xs, eta=0.25)
    assert len(traces) == 2  # the second call added a control (a new pytree structure)
    assert lmm_module._memory_apply._cache_size() == cache + 2
    assert not np.allclose(second, third)
    layer.apply(params, state, xs)  # apply goes through the same compiled memory
    assert len(traces) == 2
    layer.memory_apply(params, state, xs[:5])  # new shapes: one more trace
    assert len(traces) == 3
    # the eager result is the jitted one
    np.testing.assert_array_equal(first, jax.jit(layer.memory_apply)(params, state, xs)[0])


def test_init_state_controls_override_the_persistent_write():
    """``init_state(params, **controls)`` == the persistent tokens written with those controls."""
    with float64():
        layer = _layer(chunk_size=4, num_persistent=3)
        params = _random_params(layer)
        gates = _gates(length=3)
        for controls in ({"eta": 0.0}, {"alpha": 0.0, "eta": 0.0}, gates):
            got = layer.init_state(params, **controls)
            _, want = layer.reference_apply(
                params, layer.empty_state(params), params["persistent"], **controls
            )
            assert_trees_allclose(got, want, rtol=1e-11, atol=1e-11, what=str(list(controls)))
            diff = jax.tree_util.tree_map(
                lambda a, b: float(jnp.max(jnp.abs(a - b))),
                got.momentum,
                layer.init_state(params).momentum,
            )
            assert max(jax.tree_util.tree_leaves(diff)) > 1e-6
        with pytest.raises(ValueError, match="theta"):
            layer.init_state(params, theta=jnp.ones((4, H)))  # 3 persistent tokens


def test_prefix_apply_and_memory_read():
    """prefix_apply = apply over [p] from the empty state (its state is init_state's);
    memory_read = every head's MLP at the state's weights, no update."""
    layer = TitansLMM(d_model=D, num_heads=H, chunk_size=2, expansion=2, num_persistent=3)
    params = layer.init_params(jax.random.key(0))
    ys, state = jax.jit(layer.prefix_apply)(params)
    want, _ = jax.jit(layer.apply)(params, layer.empty_state(params), params["persistent"])
    # two separately compiled float32 programs: equal to rounding, not bit for bit
    np.testing.assert_allclose(ys, want, rtol=1e-5, atol=1e-6)
    assert_trees_allclose(state, jax.jit(layer.init_state)(params), rtol=1e-6, atol=1e-6)
    assert layer.persistent_tokens(params) is params["persistent"]
    q = jax.random.normal(jax.random.key(1), (5, H, D // H))
    reads = layer.memory_read(state, q)
    for h in range(H):
        w = jax.tree_util.tree_map(lambda a, h=h: a[h], state.weights)
        np.testing.assert_allclose(reads[:, h], layer.mlp(w, q[:, h]), rtol=1e-6, atol=1e-6)
    bare = TitansLMM(d_model=D, num_heads=H, num_persistent=0)
    bp = bare.init_params(jax.random.key(0))
    assert bare.prefix_apply(bp)[0] is None and bare.persistent_tokens(bp) is None
