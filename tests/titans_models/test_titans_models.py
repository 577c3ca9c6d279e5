"""Titans LMs: shapes, causality, streaming, MAC order, NNX/Equinox wrappers, learning."""

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
from memjax.memories.titans import TitansState
from memjax.models.titans import KINDS, build_model
from memjax.models.titans.mac import memory_gate
from memjax.nn.attention import Attention

V, D, T = 11, 16, 12
SMALL = dict(window=4, segment_size=4, chunk_size=4, num_persistent=2, depth=1)
MIXERS = {kind: build_model(kind, V, D, 1, **SMALL).mixer for kind in KINDS}

# jitted with the spec static, so equal specs share one compile across tests
_apply = jax.jit(lambda layer, p, s, xs: layer.apply(p, s, xs), static_argnums=0)
_init = jax.jit(lambda layer, p: layer.init_state(p), static_argnums=0)


@functools.cache
def _params(layer):
    return layer.init_params(jax.random.key(0))


def _inputs(length=T, seed=1):
    return jax.random.normal(jax.random.key(seed), (length, D))


@pytest.mark.parametrize("kind", KINDS)
def test_model_shapes(kind):
    model = build_model(kind, V, D, 2, **SMALL)
    params = jax.eval_shape(model.init_params, jax.random.key(0))
    logits, state = jax.eval_shape(
        lambda p, toks: model.apply(p, model.init_state(p), toks), params, jnp.zeros(T, int)
    )
    assert logits.shape == (T, V) and logits.dtype == jnp.float32
    assert len(state) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_causality(kind):
    layer = MIXERS[kind]
    params = _params(layer)
    state = _init(layer, params)
    xs = _inputs()
    ys, _ = _apply(layer, params, state, xs)
    assert ys.shape == (T, D) and np.isfinite(ys).all()
    for t in (0, 5, T - 1):  # changing token t never changes an output before t
        changed, _ = _apply(layer, params, state, xs.at[t].add(1.0))
        np.testing.assert_array_equal(changed[:t], ys[:t])
        assert not np.allclose(changed[t], ys[t])


@pytest.mark.parametrize(
    "kind, sizes", [("swa", (5, 1, 6)), ("mag", (6, 6)), ("mal", (6, 6)), ("mac", (4, 4, 4))]
)
def test_streaming_equals_whole(kind, sizes):
    layer = MIXERS[kind]
    params, xs = _params(layer), _inputs()
    whole, _ = _apply(layer, params, _init(layer, params), xs)
    state, outs, start = _init(layer, params), [], 0
    for size in sizes:
        y, state = _apply(layer, params, state, xs[start : start + size])
        outs.append(y)
        start += size
    np.testing.assert_allclose(jnp.concatenate(outs), whole, rtol=2e-5, atol=2e-5)


def test_full_attention_is_independent_per_call():
    attn = Attention(D, 2, num_persistent=1)
    p = attn.init_params(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (5, D))
    y1, state = attn.apply(p, attn.init_state(p), xs)
    y2, _ = attn.apply(p, state, xs)
    np.testing.assert_allclose(y1, y2, rtol=1e-6, atol=1e-6)
    assert state.keys.shape == (0, 2, D // 2)


def test_sliding_window_sees_prefix_and_window_only():
    attn = Attention(D, 2, window=3, num_persistent=2, rope=False)
    p = attn.init_params(jax.random.key(0))
    xs = jax.random.normal(jax.random.key(1), (8, D))
    ys, _ = attn.apply(p, attn.init_state(p), xs)
    q, k, v = attn.project(p, xs)
    _, pk, pv = attn.project(p, p["persistent"])
    for i in range(8):
        lo = max(0, i - 2)
        keys = np.concatenate([pk, k[lo : i + 1]])
        vals = np.concatenate([pv, v[lo : i + 1]])
        s = np.einsum("hd,shd->hs", q[i], keys) / np.sqrt(D // 2)
        w = np.exp(s - s.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        want = np.einsum("hs,shd->hd", w, vals).reshape(-1) @ p["out"]
        np.testing.assert_allclose(ys[i], want, rtol=1e-4, atol=1e-5)


def _mac_slow(mac, params, xs, store_and_read):
    """MAC by hand: a Python loop over segments and tokens with the per-head TitansMemory read,
    an explicit softmax per token and the token-by-token LMM recurrence for the store."""
    lmm, lp, ap = mac.lmm, params["memory"], params["attention"]
    attn, memory = mac.attention, lmm.memory
    state = mac.init_state(params)
    mem_state, tail = state.memory, state.query_tail
    _, pk, pv = attn.project(ap, ap["persistent"])
    outs, traces = [], []
    for start in range(0, xs.shape[0], mac.segment_size):
        seg = xs[start : start + mac.segment_size]
        c = seg.shape[0]
        _, _, q, tail = lmm.project(lp, tail, seg)  # eq. 21 with the memory's W_Q
        reads = np.zeros(q.shape, np.float32)
        for hd in range(lmm.num_heads):  # eq. 22: M*_{t-1}(q), the weights before the segment
            w = jax.tree_util.tree_map(lambda a, hd=hd: a[hd], mem_state.weights)
            st = TitansState(w, w)
            for i in range(c):
                reads[i, hd] = memory.read({"init": w}, st, q[i, hd])
        h = lmm.output(lp, seg, jnp.asarray(reads))
        qs, ks, vs = attn.project(ap, seg)
        _, hk, hv = attn.project(ap, h)
        pos = jnp.arange(c)
        qs, ks, hk = attn.rotate(qs, pos), attn.rotate(ks, pos), attn.rotate(hk, pos)
        heads = np.zeros(qs.shape, np.float32)
        for i in range(c):  # eq. 23: [p] visible to all, h_j and S_j for j <= i
            keys = np.concatenate([pk, hk[: i + 1], ks[: i + 1]])
            vals = np.concatenate([pv, hv[: i + 1], vs[: i + 1]])
            s = np.einsum("hd,shd->hs", qs[i], keys) / np.sqrt(qs.shape[-1])
            wts = np.exp(s - s.max(-1, keepdims=True))
            heads[i] = np.einsum("hs,shd->hd", wts / wts.sum(-1, keepdims=True), vals)
        y = attn.output(ap, jnp.asarray(heads))
        m, mem_state = store_and_read(lp, mem_state, y)  # eq. 24 store y, eq. 25 read, by the
        # token-by-token recurrence
        outs.append(memory_gate(params["gate"], y, m))
        traces.append((h, y, m))
    return jnp.concatenate(outs), traces


def test_mac_follows_the_papers_order():
    mac = MIXERS["mac"]
    params, xs = _params(mac), _inputs()
    store_and_read = jax.jit(mac.lmm.reference_apply)
    ys, _ = _apply(mac, params, _init(mac, params), xs)
    want, traces = _mac_slow(mac, params, xs, store_and_read)
    np.testing.assert_allclose(ys, want, rtol=2e-4, atol=2e-5)
    # first segment: the retrieved tokens read the initial memory W0 (nothing stored yet)
    init = _init(mac, params)
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, init.memory.weights, params["memory"]["memory"]
    )
    _, state, trace = jax.jit(mac.segment)(params, init, xs[:4])
    for got, exp in zip(trace, traces[0], strict=True):
        np.testing.assert_allclose(got, exp, rtol=2e-4, atol=2e-5)
    # the store uses the attention output: storing the inputs instead gives another memory
    _, wrong = store_and_read(params["memory"], init.memory, xs[:4])
    assert not np.allclose(wrong.weights["layers"][0]["w"], state.memory.weights["layers"][0]["w"])


@pytest.mark.parametrize("kind", ["mag", "mal"])
def test_hybrid_init_state_takes_the_persistent_write_controls(kind):
    """MAG/MAL ``init_state(params, eta=0)`` writes ``[p]`` without momentum (MAL's attention
    cache holds the reads of that write); unknown control names raise."""
    layer = MIXERS[kind]
    params, xs = _params(layer), _inputs()
    base = _init(layer, params)
    got = jax.jit(lambda p: layer.init_state(p, eta=0.0))(params)
    lmm, mp = layer.lmm, params["memory"]
    jax.tree_util.tree_map(
        np.testing.assert_array_equal, got.memory, jax.jit(lmm.init_state)(mp, eta=0.0)
    )
    assert not np.allclose(
        got.memory.momentum["layers"][0]["w"], base.memory.momentum["layers"][0]["w"]
    )
    if kind == "mal":
        y_prefix, _ = lmm.prefix_apply(mp, eta=0.0)
        _, attention = layer.attention.attend(
            params["attention"], layer.attention.init_state(params["attention"]), y_prefix
        )
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            got.attention,
            attention,
        )
    with pytest.raises(ValueError, match="etaa"):
        layer.init_state(params, etaa=0.0)
    with pytest.raises(ValueError, match="thetta"):
        layer.apply(params, base, xs, thetta=0.1)


def test_mac_ignores_known_controls_and_rejects_unknown_names():
    mac = MIXERS["mac"]
    params, xs = _params(mac), _inputs()
    state = _init(mac, params)
    ys, _ = mac.apply(params, state, xs, eta=0.0, key=jax.random.key(0))
    np.testing.assert_allclose(ys, _apply(mac, params, state, xs)[0], rtol=1e-5, atol=1e-6)
    jax.tree_util.tree_map(np.testing.assert_array_equal, mac.init_state(params, eta=0.0), state)
    with pytest.raises(ValueError, match="thetta"):
        mac.apply(params, state, xs, thetta=0.1)
    with pytest.raises(ValueError, match="etaa"):
        mac.init_state(params, etaa=0.0)


@pytest.mark.parametrize("kind", ["mag"])
def test_nnx_and_equinox_wrappers_match_core(kind):
    layer, b = MIXERS[kind], 2
    nnx_layer = mnnx.MemoryLayer(layer, rngs=nnx.Rngs(0), batch_shape=(b,))
    params = nnx_layer.raw_params()
    eqx_layer, eqx_state = eqx.nn.make_with_state(meqx.MemoryLayer)(
        layer, key=jax.random.key(1), batch_shape=(b,)
    )
    eqx_layer = eqx.tree_at(lambda m: m.params, eqx_layer, params)
    nnx_call = nnx.jit(lambda m, x: m(x))
    eqx_call = eqx.filter_jit(lambda m, x, s: m(x, s))
    states = [_init(layer, params)] * b
    for seed in (0, 1):  # the second call continues from the carried state
        xs = jax.random.normal(jax.random.key(seed), (b, 6, D))
        outs = [_apply(layer, params, states[i], xs[i]) for i in range(b)]
        want, states = jnp.stack([o[0] for o in outs]), [o[1] for o in outs]
        np.testing.assert_allclose(nnx_call(nnx_layer, xs), want, rtol=1e-5, atol=1e-6)
        got, eqx_state = eqx_call(eqx_layer, xs, eqx_state)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_loss_falls_on_a_copy_task():
    """Copy a random 4-token pattern three more times: the repeats are predictable only by
    looking back 4 tokens, so the loss falls far below chance only if the model learns to copy."""
    vocab, n, batch = 8, 4, 16
    model = build_model("mag", vocab, D, 1, window=16, chunk_size=4, num_persistent=2, depth=1)
    params = model.init_params(jax.random.key(0))
    opt = optax.adam(2e-2)

    def loss_fn(p, toks):
        def one(t):
            logits, _ = model.apply(p, model.init_state(p), t[:-1])
            logp = jax.nn.log_softmax(logits[n - 1 :])
            return -jnp.mean(jnp.take_along_axis(logp, t[n:, None], axis=1))

        return jnp.mean(jax.vmap(one)(toks))

    @jax.jit
    def step(p, opt_state, key):
        toks = jnp.tile(jax.random.randint(key, (batch, n), 1, vocab), (1, 4))
        loss, g = jax.value_and_grad(loss_fn)(p, toks)
        updates, opt_state = opt.update(g, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    opt_state, losses = opt.init(params), []
    for i in range(50):
        params, opt_state, loss = step(params, opt_state, jax.random.key(i))
        losses.append(float(loss))
    chance = np.log(vocab - 1)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.3 * chance < np.mean(losses[:3]), losses


@pytest.mark.parametrize("kind", ["mac", "mag", "mal"])
def test_eager_apply_traces_once_per_spec_and_shapes(kind, monkeypatch):
    """Un-jitted MAC/MAG/MAL ``apply`` reuses one compiled program (no re-trace of the scan per
    call) and gives the jitted result."""
    layer = MIXERS[kind]
    traces = []
    body = type(layer)._apply

    def counting(self, *args):
        traces.append(1)  # a Python side effect: runs only while tracing
        return body(self, *args)

    monkeypatch.setattr(type(layer), "_apply", counting)
    params = _params(layer)
    state = _init(layer, params)
    xs = _inputs()
    first, _ = layer.apply(params, state, xs)
    traced = len(traces)  # 1, or 0 if an earlier eager call compiled these shapes
    second, _ = layer.apply(params, state, 2.0 * xs)
    assert traced <= 1 and len(traces) == traced
    assert not np.allclose(first, second)
    np.testing.assert_allclose(first, _apply(layer, params, state, xs)[0], rtol=1e-6, atol=1e-6)


# (persistent tokens, chunk size, gate granularity, grad point): the prefix fills exactly one
# chunk (the straight-line branch; a partial chunk is tests/titans' init_state vs token-loop
# test), and spans several chunks (the scan branch)
_PREFIXES = [(4, 4, "chunk_step", "chunk_start"), (5, 2, "chunk", "initial")]


@pytest.mark.parametrize("persistent,chunk,granularity,grad_point", _PREFIXES)
def test_init_state_writes_the_prefix_as_apply_does(persistent, chunk, granularity, grad_point):
    """``init_state``'s write-only prefix path == the state of ``apply`` over ``[p]`` from the
    empty state (the parallel form with reads, ``prefix_apply``), values and parameter
    gradients, float64."""
    from memjax.core.testing.memory_contract import float64
    from memjax.models.titans.lmm import TitansLMM

    with float64():
        layer = TitansLMM(
            d_model=8,
            num_heads=2,
            chunk_size=chunk,
            expansion=1,
            num_persistent=persistent,
            gate_granularity=granularity,
            grad_point=grad_point,
            dtype="float64",
        )
        params = layer.init_params(jax.random.key(3))
        params = jax.tree_util.tree_map(lambda p: p * 1.5, params)  # gates away from init

        def both(p):
            def loss(init):
                s = init(p)
                leaves = [s.weights, s.momentum, s.anchor, s.conv_tail]
                return sum(jnp.sum(jnp.sin(x)) for x in jax.tree_util.tree_leaves(leaves)), s

            fast = jax.grad(lambda p: loss(layer.init_state)[0])(p), layer.init_state(p)
            slow = jax.grad(lambda p: loss(lambda q: layer.prefix_apply(q)[1])[0])(p)
            return fast, (slow, layer.prefix_apply(p)[1])

        got, want = jax.jit(both)(params)
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), got, want
        )
        assert int(got[1].offset) == persistent % chunk


def test_init_params_one_program_same_values():
    """``TitansLMM.init_params`` (one jitted program when called eagerly) draws the same params
    as its body run op by op (``jax.disable_jit``, the former eager path)."""
    from memjax.models.titans.lmm import TitansLMM

    layer = TitansLMM(
        d_model=4, num_heads=1, depth=1, conv_width=0, num_persistent=1, output_gate=False
    )
    key = jax.random.key(5)
    eager = layer.init_params(key)
    with jax.disable_jit():
        op_by_op = layer.init_params(key)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), eager, op_by_op
    )
