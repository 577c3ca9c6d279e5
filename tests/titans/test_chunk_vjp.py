"""The hand-written backward of the Titans chunk (``chunk_vjp.chunk_step``) against automatic
differentiation: of the same chunk written with ``gradient_factors`` + ``parallel_chunk``, and
of the token-by-token reference loop through the whole layer (float64)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.compat.titans_pytorch import titans_pytorch_lmm
from memjax.core.testing import assert_trees_allclose, directional_fd, float64
from memjax.memories.titans.chunk_vjp import chunk_step
from memjax.memories.titans.mlp import MemoryMLP, gradient_factors
from memjax.memories.titans.parallel import chunk_coefficients, parallel_chunk, parallel_memory
from memjax.memories.titans.update import ChunkCarry
from memjax.models.titans import TitansLMM


def _perturb(key, tree, scale):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef,
        [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)],
    )


def _autodiff_chunk(mlp, reduction, max_norm, read, carry, point, k, v, q, coef, done):
    factors = gradient_factors(mlp, reduction, max_norm, point, k, v)
    if read == "direct":
        ys, new = parallel_chunk(mlp, carry, q, coef, done, factors, read_point="chunk")
        return jnp.concatenate([ys[:-1], mlp(new.weights, q[-1:])]), new
    return parallel_chunk(mlp, carry, q, coef, done, factors, read_point=read)


CHUNK_CASES = {
    "depth1_bias": (dict(depth=1, bias=True), dict(max_norm=None, read="token")),
    "depth3_bias_clip_silu": (
        dict(depth=3, bias=True, activation="silu"),
        dict(max_norm=0.3, read="token"),
    ),
    "depth2_direct_wrapper": (
        dict(depth=2, residual_norm=True),
        dict(max_norm=None, read="direct"),
    ),
}


@pytest.mark.parametrize("case", CHUNK_CASES)
def test_chunk_backward_equals_autodiff(case):
    """Every cotangent (carry, gradient point, keys, values, queries, coefficients) of the
    hand-written backward == jax.vjp of the automatically differentiated chunk."""
    mlp_kw, opts = CHUNK_CASES[case]
    done = "bias" in case  # the anchor moves in some cases and stays in the others
    with float64():
        mlp = MemoryMLP(4, 4, expansion=2, **mlp_kw)
        w = _perturb(jax.random.key(1), mlp.init(jax.random.key(0), "float64"), 0.3)
        carry = ChunkCarry(
            w,
            _perturb(jax.random.key(2), jax.tree_util.tree_map(jnp.zeros_like, w), 0.1),
            _perturb(jax.random.key(3), w, 0.2),
        )
        point = _perturb(jax.random.key(4), w, 0.2)
        r = np.random.default_rng(0)
        k, v, q = (jnp.asarray(r.normal(size=(5, 4))) for _ in range(3))
        coef = chunk_coefficients(*(jnp.asarray(r.uniform(0.0, hi, 5)) for hi in (1.0, 1.0, 0.5)))
        args = (mlp, "sum", opts["max_norm"], opts["read"])

        def run(fn):
            f = lambda *a: fn(*args, *a, jnp.asarray(done))
            out, pull = jax.vjp(f, carry, point, k, v, q, coef)
            ct = _perturb(jax.random.key(9), jax.tree_util.tree_map(jnp.zeros_like, out), 1.0)
            return out, pull(ct)

        got = jax.jit(lambda: run(chunk_step))()
        want = jax.jit(lambda: run(_autodiff_chunk))()
    assert_trees_allclose(got, want, rtol=1e-10, atol=1e-10, what=case)


LAYER_CASES = {
    "depth1_token_gates": dict(depth=1, chunk_size=4),
    "depth3_chunk_gates_initial_chunk_reads": dict(
        depth=3, chunk_size=4, gate_granularity="chunk", grad_point="initial", read_point="chunk"
    ),
}


def _layer_grads(layer, params, xs, split):
    """Gradients of a loss over a stream cut at ``split`` (the second call starts at a nonzero
    chunk offset), through the parallel form and through the token loop."""

    def loss(p, reference):
        fn = layer.reference_apply if reference else layer.apply
        y1, s = fn(p, layer.init_state(p), xs[:split])
        y2, s = fn(p, s, xs[split:])
        return jnp.sum(jnp.sin(y1)) + jnp.sum(jnp.cos(y2)) + jnp.sum(s.weights["layers"][0]["w"])

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    return grad(params, False), grad(params, True)


@pytest.mark.parametrize("case", [*LAYER_CASES, "titans_pytorch_preset"])
def test_layer_gradients_equal_the_token_loop(case):
    """jax.grad through TitansLMM.apply (custom backward) == jax.grad through reference_apply
    (the token loop), streaming across a chunk boundary, for every gate granularity and the
    titans-pytorch preset (chunk_step gates, grad point at W0, wrapper, mean loss, pre-norm)."""
    with float64():
        if case == "titans_pytorch_preset":
            layer = titans_pytorch_lmm(8, num_heads=2, d_head=4, chunk_size=4, expansion=2)
            layer = dataclasses.replace(layer, dtype="float64", backward="manual")
            split = 8  # chunk_step gates stream in chunk multiples
        else:
            layer = TitansLMM(
                d_model=8,
                num_heads=2,
                expansion=2,
                num_persistent=0,
                dtype="float64",
                backward="manual",
                **LAYER_CASES[case],
            )
            split = 8 if layer.gate_granularity == "chunk" else 6
        params = _perturb(jax.random.key(5), layer.init_params(jax.random.key(0)), 0.1)
        xs = jax.random.normal(jax.random.key(6), (12, 8), jnp.float64)
        fast, slow = _layer_grads(layer, params, xs, split)
    assert_trees_allclose(fast, slow, rtol=1e-9, atol=1e-10, what=case)


def test_chunk_step_gradient_matches_finite_differences():
    """The custom backward's directional derivative == central finite differences."""
    with float64():
        mlp = MemoryMLP(4, 4, depth=2, expansion=2, residual_norm=True)
        w = _perturb(jax.random.key(1), mlp.init(jax.random.key(0), "float64"), 0.3)
        carry = ChunkCarry(w, jax.tree_util.tree_map(jnp.zeros_like, w), w)
        r = np.random.default_rng(1)
        k, v, q = (jnp.asarray(r.normal(size=(6, 4))) for _ in range(3))
        coef = chunk_coefficients(*(jnp.asarray(r.uniform(0.1, hi, 6)) for hi in (1, 1, 0.5)))

        def loss(inputs):
            carry, k, v, q = inputs
            ys, new = chunk_step(
                mlp, "sum", 0.5, "token", carry, carry.anchor, k, v, q, coef, jnp.asarray(True)
            )
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(new))

        inputs = (carry, k, v, q)
        grads = jax.jit(jax.grad(loss))(inputs)
        direction = _perturb(jax.random.key(7), jax.tree_util.tree_map(jnp.zeros_like, inputs), 1.0)
        analytic = sum(
            jnp.vdot(g, d)
            for g, d in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction))
        )
        numeric = directional_fd(jax.jit(loss), inputs, direction, 1e-6)
    np.testing.assert_allclose(float(analytic), float(numeric), rtol=1e-6, atol=1e-8)


def test_backward_option_is_checked():
    """A typo in ``backward`` is an error naming it, on the layer and on parallel_memory."""
    with pytest.raises(ValueError, match="backward"):
        TitansLMM(d_model=8, backward="manul")
    mlp_memory = TitansLMM(d_model=8, num_heads=2).memory
    state = mlp_memory.init_state(mlp_memory.init_params(jax.random.key(0)))
    x = jnp.zeros((4, 4))
    with pytest.raises(ValueError, match="backward"):
        parallel_memory(mlp_memory, state, x, x, x, 0.1, 0.9, 0.01, chunk_size=2, backward="x")
