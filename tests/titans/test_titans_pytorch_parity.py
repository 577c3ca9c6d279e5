"""TitansLMM's titans-pytorch mode against titans-pytorch 0.5.5 ``NeuralMemory`` (spec §6 test 4).

The fixtures (``tests/fixtures/titans_pytorch``, made by ``make_fixtures.py`` there with torch and
titans-pytorch; torch is not needed here) hold a ``NeuralMemory`` state dict, an input and the
port's output. memjax converts the weights, runs the layer (jit, vmap over the batch) and must
agree to 1e-5 in float32, for ``batch_size=None`` (``grad_point="initial"``) and ``batch_size =
chunk_size`` (``"chunk_start"``). Also: the option checks, the converter's refusals, and the
``"chunk_step"`` form's own invariants (parallel == token loop, streaming, chunk size 1).
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.compat.titans_pytorch import (
    convert_state_dict,
    from_state_dict,
    infer_config,
    titans_pytorch_lmm,
)
from memjax.core.testing import assert_trees_allclose, float64
from memjax.models.titans import TitansLMM

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "titans_pytorch"
CASES = sorted(p.stem[len("case_") :] for p in FIXTURES.glob("case_*.npz"))
TOL = 1e-5


def _case(name):
    case = np.load(FIXTURES / f"case_{name}.npz")
    sd = dict(np.load(FIXTURES / f"state_dict_{case['state_dict']}.npz"))
    batch_size = int(case["batch_size"])
    config = dict(
        chunk_size=int(case["chunk_size"]),
        batch_size=None if batch_size < 0 else batch_size,
        max_lr=float(case["max_lr"]),
    )
    return sd, config, case["x"], case["y"]


def _batched(layer, method="apply"):
    def run(params, xs):
        state = layer.init_state(params)
        fn = getattr(layer, method)
        return jax.vmap(lambda x: fn(params, state, x)[0])(xs)

    return jax.jit(run)


def test_fixtures_present():
    assert len(CASES) >= 4
    versions = json.loads((FIXTURES / "versions.json").read_text())
    assert versions["titans-pytorch"] == "0.5.5"
    assert sum(p.stat().st_size for p in FIXTURES.glob("*.npz")) < 200_000


@pytest.mark.parametrize("name", CASES)
def test_matches_titans_pytorch(name):
    sd, config, x, y = _case(name)
    layer, params = from_state_dict(sd, **config)
    assert layer.grad_point == ("initial" if config["batch_size"] is None else "chunk_start")
    got = np.asarray(_batched(layer)(params, jnp.asarray(x)))
    assert got.dtype == np.float32
    err = float(np.max(np.abs(got - y)))
    assert err <= TOL, f"{name}: max abs diff {err:.2e}"


def test_constructor_and_converter_by_hand_equal_from_state_dict():
    sd, config, x, y = _case("h2_c8_chunk_start")
    assert infer_config(sd) == dict(
        d_model=32, num_heads=2, d_head=16, depth=2, expansion=4, residual_norm=True
    )
    layer = titans_pytorch_lmm(32, 2, 16, chunk_size=8, batch_size=8)
    auto, _ = from_state_dict(sd, **config)
    assert layer == auto
    params = convert_state_dict(sd, layer)
    got = np.asarray(_batched(layer)(params, jnp.asarray(x)))
    assert np.max(np.abs(got - y)) <= TOL


def test_token_loop_matches_titans_pytorch():
    sd, config, x, y = _case("h2_c4_chunk_start")
    layer, params = from_state_dict(sd, **config)
    got = np.asarray(_batched(layer, "reference_apply")(params, jnp.asarray(x)))
    assert np.max(np.abs(got - y)) <= TOL


# -- the converter ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, shape, match",
    [
        ("not_a_port_key.weight", (3,), "not_a_port_key.weight"),
        ("q_norm.gamma", (2, 1, 16), "qk_rmsnorm"),
        ("multihead_rmsnorm.gamma", (2, 1, 16), "post_rmsnorm"),
        ("to_queries.0.weight", (32, 32), "activation"),
        ("transition_gate", (), "gated_transition"),
        ("to_layer_modulation.0.weight", (6, 32), "per_parameter_lr_modulation"),
    ],
)
def test_converter_rejects_unsupported_keys(key, shape, match):
    sd, config, _, _ = _case("h2_c4_initial")
    sd[key] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=match) as err:
        from_state_dict(sd, **config)
    assert "state_dict" in str(err.value)


def test_converter_rejects_unsupported_shapes_and_mismatched_layers():
    sd, config, _, _ = _case("h2_c4_initial")
    no_momentum = {k: v for k, v in sd.items() if not k.startswith("to_momentum")}
    with pytest.raises(ValueError, match="momentum=False"):
        from_state_dict(no_momentum, **config)
    order2 = dict(
        sd,
        **{
            "to_momentum.0.weight": np.zeros((4, 32), np.float32),
            "to_momentum.0.bias": np.zeros((4,), np.float32),
        },
    )
    with pytest.raises(ValueError, match="momentum_order"):
        from_state_dict(order2, **config)
    with pytest.raises(ValueError, match="pre_norm"):
        convert_state_dict(sd, titans_pytorch_lmm(32, 2, 16, chunk_size=4, pre_norm=False))
    with pytest.raises(ValueError, match="output_gate"):
        convert_state_dict(sd, titans_pytorch_lmm(32, 2, 16, chunk_size=4, output_gate=False))
    with pytest.raises(ValueError, match="shapes"):
        convert_state_dict(sd, titans_pytorch_lmm(32, 2, 16, chunk_size=4, expansion=2))


# -- the new options ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(gate_granularity="port"), "gate_granularity"),
        (dict(output_gate="heads"), "output_gate"),
        (dict(output_gate=1), "output_gate"),
        (dict(pre_norm="yes"), "pre_norm"),
        (dict(pre_norm_eps=0.0), "pre_norm_eps"),
        (dict(pre_norm_eps=True), "pre_norm_eps"),
    ],
)
def test_new_options_are_validated(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TitansLMM(d_model=8, num_heads=2, **kwargs)


def test_titans_pytorch_constructor_checks_and_settings():
    with pytest.raises(ValueError, match="batch_size"):
        titans_pytorch_lmm(16, 2, 8, chunk_size=4, batch_size=8)
    with pytest.raises(ValueError, match="chunk_size"):
        titans_pytorch_lmm(16, 2, 8, chunk_size=0)
    layer = titans_pytorch_lmm(16, 2, chunk_size=4, batch_size=4, max_lr=0.1)
    assert (layer.d_head, layer.grad_point, layer.gate_granularity) == (
        16,
        "chunk_start",
        "chunk_step",
    )
    assert (layer.read_point, layer.loss_reduction, layer.max_grad_norm) == ("token", "mean", None)
    assert (layer.conv_width, layer.num_persistent, layer.qkv_silu, layer.qk_l2norm) == (
        0,
        0,
        False,
        False,
    )
    assert layer.pre_norm and not layer.output_norm and layer.output_gate == "head"
    assert layer.theta_init == pytest.approx(0.05)
    assert titans_pytorch_lmm(16).output_gate is False
    params = layer.init_params(jax.random.key(0))
    assert params["out_gate"]["w"].shape == (16, 2)
    assert params["pre_norm"]["store"].shape == params["pre_norm"]["retrieve"].shape == (16,)


def _port_like(**kw):
    base = dict(num_heads=2, d_head=4, chunk_size=4, expansion=2, dtype="float64")
    return titans_pytorch_lmm(8, **{**base, **kw})


def _random_params(layer, seed=0):
    params = layer.init_params(jax.random.key(seed))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [p + 0.2 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)]
    )


def _xs(length, seed=3):
    return jax.random.normal(jax.random.key(seed), (length, 8), jnp.float64)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(grad_point="chunk_start", read_point="chunk"),
        dict(num_persistent=3, max_grad_norm=0.5, depth=1),
    ],
)
def test_chunk_step_parallel_equals_token_loop(kw):
    """The closed form with η on a chunk's first token and α + write on its last == the loop."""
    with float64():
        layer = _port_like(**kw)
        params = _random_params(layer)
        state = layer.init_state(params)
        xs = _xs(19)
        both = jax.jit(lambda p, s, x: (layer.apply(p, s, x), layer.reference_apply(p, s, x)))
        fast, slow = both(params, state, xs)
    assert_trees_allclose(fast, slow, rtol=1e-10, atol=1e-10, what=str(kw))


def test_chunk_step_is_one_step_per_chunk():
    """Direct check of S_j = η_j S_{j-1} - Σ θ_t u_t, W_j = (1 - α_j) W_{j-1} + S_j, linear memory
    without wrapper, η/α/θ given as controls, and the port's reads y_t = W_{⌊(t+1)/C⌋} q_t."""
    chunk, n = 3, 4
    with float64():
        layer = _port_like(chunk_size=chunk, depth=1, residual_norm=False, batch_size=chunk)
        params = _random_params(layer)
        state = layer.init_state(params)
        xs = _xs(chunk * n)
        r = np.random.default_rng(0)
        theta = r.uniform(0, 1, (chunk * n, 2))
        eta = np.repeat(r.uniform(0, 1, (n, 2)), chunk, axis=0)
        alpha = np.repeat(r.uniform(0, 0.5, (n, 2)), chunk, axis=0)
        reads, _ = jax.jit(layer.memory_apply)(params, state, xs, theta=theta, eta=eta, alpha=alpha)
        k, v, q, _ = (np.asarray(a) for a in layer.project(params, state.conv_tail, xs))
    for h in range(2):
        W = np.asarray(params["memory"]["layers"][0]["w"][h])
        S = np.zeros_like(W)
        weights = [W]
        for j in range(n):
            tokens = range(j * chunk, (j + 1) * chunk)
            # mean loss: u_t = (2 / d) k_t^T (k_t W - v_t), gradients at the chunk start
            g = sum(theta[t, h] * 2 / 4 * np.outer(k[t, h], k[t, h] @ W - v[t, h]) for t in tokens)
            S = eta[j * chunk, h] * S - g
            W = (1 - alpha[j * chunk, h]) * W + S
            weights.append(W)
        for t in range(chunk * n):
            want = q[t, h] @ weights[(t + 1) // chunk]
            np.testing.assert_allclose(reads[t, h], want, rtol=1e-10, atol=1e-10)


def test_chunk_step_streams_in_chunk_multiples():
    with float64():
        layer = _port_like(batch_size=4)
        params = _random_params(layer)
        state = layer.init_state(params)
        xs = _xs(24)
        apply = jax.jit(layer.apply)
        whole = apply(params, state, xs)
        y1, s = apply(params, state, xs[:8])
        y2, s = apply(params, s, xs[8:])
    assert_trees_allclose((jnp.concatenate([y1, y2]), s), whole, rtol=1e-11, atol=1e-11)


def test_chunk_step_with_chunk_one_is_token_gates():
    with float64():
        port = _port_like(chunk_size=1, batch_size=1)
        token = TitansLMM(**{**port.__dict__, "gate_granularity": "token"})
        params = _random_params(port)
        state = port.init_state(params)
        xs = _xs(7)
        a = jax.jit(port.apply)(params, state, xs)
        b = jax.jit(token.apply)(params, state, xs)
    assert_trees_allclose(a, b, rtol=1e-12, atol=1e-12)
