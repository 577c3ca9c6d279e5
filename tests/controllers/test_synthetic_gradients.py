"""Synthetic gradients: oracle == BPTT (float64), truncation, shared φ, inner loop, errors.

References are independent of the SG code: ``jax.grad`` of the plain loss (BPTT), a Python loop
over windows with ``stop_gradient`` between them (truncated BPTT), a Python loop with additive
carry perturbations (the true carry gradients at window starts), and central finite differences.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax.controllers import CellLayer, SyntheticGradients, mix, shared_feedback_gradients
from memjax.core.testing.memory_contract import float64
from memjax.core.unroll import unroll
from memjax.memories.nmn import NMNCell
from memjax.nn.lstm import LSTMCell

B, T, W = 2, 6, 3


def _cell(dtype="float64"):
    return NMNCell(3, 4, memory_size=4, memory_width=3, controller="feedforward", dtype=dtype)


def loss_fn(ys, aux):
    return jnp.sum((ys - aux) ** 2)


def _draw(shapes, seed):
    """Arrays of the given shapes drawn with NumPy, kernels scaled by ``1/sqrt(fan_in)`` (an
    eager ``jax.random`` init compiles one program per shape: seconds for a test)."""
    rng = np.random.default_rng(seed)

    def one(s):
        scale = 0.5 / np.sqrt(s.shape[0]) if len(s.shape) > 1 else 0.5
        return jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype)

    return jax.tree_util.tree_map(one, shapes)


def _theta(cell, seed=0):
    return _draw(jax.eval_shape(cell.init_params, jax.random.key(0)), seed)


def _phi(sg, theta, seed=1):
    return _draw(jax.eval_shape(sg.init_params, jax.random.key(0), theta), seed)


def _data(dtype):
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(B, T, 3)), dtype)
    aux = jnp.asarray(rng.normal(size=(B, T, 4)), dtype)
    return xs, aux


def _windows_loss(cell, theta, x, a, perts, detach):
    """One sequence, window by window; the carry entering window j gets ``perts[j-1]`` added
    (``detach = 1``: after a ``stop_gradient``, i.e. truncated BPTT; a number, one compile)."""
    carry, total = cell.init_carry(theta), 0.0
    for j, start in enumerate(range(0, T, W)):
        if j:
            carry = jax.tree_util.tree_map(
                lambda c: detach * jax.lax.stop_gradient(c) + (1 - detach) * c, carry
            )
            carry = jax.tree_util.tree_map(lambda c, p, j=j: c + p[j - 1], carry, perts)
        ys, carry = unroll(cell, theta, carry, x[start : start + W])
        total = total + loss_fn(ys, a[start : start + W])
    return total


@functools.partial(jax.jit, static_argnums=0)
def _reference(cell, theta, xs, aux, detach):
    """Mean loss, its θ gradient and the carry gradients at window starts, by Python windows."""
    carry = cell.init_carry(theta)
    zeros = jax.tree_util.tree_map(lambda c: jnp.zeros((B, T // W - 1, *c.shape), c.dtype), carry)

    def total(theta, perts):
        per = jax.vmap(lambda x, a, p: _windows_loss(cell, theta, x, a, p, detach))(xs, aux, perts)
        return jnp.sum(per) / B

    loss, (g_theta, g_carry) = jax.value_and_grad(total, argnums=(0, 1))(theta, zeros)
    return loss, g_theta, jax.tree_util.tree_map(lambda g: g * B, g_carry)


def _assert_close(a, b, rtol=1e-10, atol=1e-12):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _max_diff(a, b) -> float:
    diff = jax.tree_util.tree_map(lambda x, y: float(np.max(np.abs(np.asarray(x - y)))), a, b)
    return max(jax.tree_util.tree_leaves(diff))


@pytest.fixture(scope="module")
def nmn64():
    """float64 NMN cell, params, data and the Python-window references (BPTT: ``detach=0``,
    truncated BPTT: ``detach=1``; one compile), shared by the float64 tests."""
    with float64():
        cell = _cell()
        theta = _theta(cell)
        xs, aux = _data("float64")
        refs = {d: _reference(cell, theta, xs, aux, d) for d in (0.0, 1.0)}
    return cell, theta, xs, aux, refs


def test_oracle_sg_equals_bptt_and_truncation_cuts_exactly(nmn64):
    """float64. One compiled SG step serves both: step 0 is warm-up (λ = 1: truncated BPTT,
    nothing injected), step 1 has λ = 0 with the oracle injected (full BPTT)."""
    cell, theta, xs, aux, refs = nmn64
    with float64():
        sg = SyntheticGradients(
            cell,
            ("write", "carry"),
            mix_lambda=0.0,
            warmup_steps=1,
            truncate=W,
            hidden=(5,),
            diagnose=False,
        )
        phi = _phi(sg, theta)
        fn = jax.jit(sg.gradients(loss_fn))
        loss, want, oracle_carry = refs[0.0]
        oracle_write = jax.jit(lambda t: sg.true_targets(loss_fn, t, xs, aux))(theta)["write"]
        oracle = {"write": oracle_write, "carry": oracle_carry}

        out = fn(theta, phi, xs, aux, step=1, predictions=oracle)
        np.testing.assert_allclose(float(out.loss), float(loss), rtol=1e-12)
        _assert_close(out.theta_grads, want)
        # the targets the SG pass reached are the true gradients: cosine 1 wherever δ ≠ 0
        live = jnp.any(oracle_write.reshape(B, T, -1) != 0, -1)
        expect = float(np.mean(np.asarray(live)))
        assert float(out.metrics["cosine/write"]) == pytest.approx(expect, abs=1e-9)
        # cosine 1 up to the metric's eps: |g|² / sqrt(|g|⁴ + 1e-12) per (sequence, window)
        sq = sum(
            np.sum(np.asarray(g).reshape(B, T // W - 1, -1) ** 2, -1)
            for g in jax.tree_util.tree_leaves(oracle_carry)
        )
        expect_carry = float(np.mean(sq / np.sqrt(sq**2 + 1e-12)))
        assert float(out.metrics["cosine/carry"]) == pytest.approx(expect_carry, abs=1e-12)

        # warm-up: λ = 1 is truncated BPTT exactly, whatever the predictions
        noise = jax.tree_util.tree_map(lambda a: a + 1.0, oracle)
        warm = fn(theta, phi, xs, aux, step=0, predictions=noise)
        _, want_truncated, _ = refs[1.0]
        _assert_close(warm.theta_grads, want_truncated)
        assert float(warm.metrics["lambda"]) == 1.0
        assert _max_diff(want_truncated, want) > 1e-6  # the cut matters here

        # the zero-initialised SG (no oracle) gives other gradients: the test can fail
        plain = fn(
            theta, phi, xs, aux, step=1, predictions=jax.tree_util.tree_map(jnp.zeros_like, oracle)
        )
        assert _max_diff(plain.theta_grads, want) > 1e-6


def test_sg_predicted_at_the_tap_equals_a_separate_forward_pass(monkeypatch, nmn64):
    """float64. Without a context the SG of a tap target is predicted inside the injecting pass;
    a separate forward pass first (the general path) gives the same update to rounding."""
    from memjax.controllers import synthetic_gradients as module

    cell, theta, xs, aux, _ = nmn64
    with float64():
        sg = SyntheticGradients(
            cell,
            ("write", "carry"),
            mix_lambda=0.3,
            truncate=W,
            zero_init=False,
            hidden=(5,),
            diagnose=False,
        )
        phi = _phi(sg, theta)
        assert sg._inline_targets(theta, {}, jax.eval_shape(cell.init_carry, theta)) == ("write",)
        inline = jax.jit(sg.gradients(loss_fn))(theta, phi, xs, aux)
        monkeypatch.setattr(module, "_INLINE", False)
        separate = jax.jit(sg.gradients(loss_fn))(theta, phi, xs, aux)
        _assert_close(inline, separate, rtol=1e-12, atol=1e-14)
        assert abs(float(inline.metrics["cosine/write"])) > 1e-3  # a live, non-zero SG


def test_mix_matches_finite_differences():
    with float64():
        x, g = jnp.array([0.3, -1.2]), jnp.array([2.0, -0.5])

        def f(x, lam):
            return jnp.sum(jnp.sin(mix(x**2, g, lam)))

        for lam in (0.0, 0.3, 1.0):
            got = jax.grad(f)(x, lam)
            ct = jnp.cos(x**2)
            want = 2 * x * (lam * ct + (1 - lam) * g)
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_shared_phi_gets_gradients_from_every_network():
    """Two different LSTMs (inputs 3 and 5, carry 2 x 4) share one carry SG."""
    rng = np.random.default_rng(1)
    sgs, members = [], []
    for k, d_in in enumerate((3, 5)):
        cell = LSTMCell(d_in, 4)
        sg = SyntheticGradients(
            cell, ("carry",), truncate=W, zero_init=False, mix_lambda=0.0, hidden=(5,)
        )
        xs = jnp.asarray(rng.normal(size=(B, T, d_in)), jnp.float32)
        aux = jnp.asarray(rng.normal(size=(B, T, 4)), jnp.float32)
        members.append((sg, loss_fn, _theta(cell, k), xs, aux))
        sgs.append(sg)
    phi = _phi(sgs[0], members[0][2], 5)
    outs, g_phi = shared_feedback_gradients(members, phi)
    for out in outs:
        leaves = jax.tree_util.tree_leaves(out.phi_grads)
        assert all(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)
    assert _max_diff(outs[0].phi_grads, outs[1].phi_grads) > 1e-6
    summed = jax.tree_util.tree_map(lambda a, b: a + b, outs[0].phi_grads, outs[1].phi_grads)
    _assert_close(g_phi, summed, rtol=1e-6, atol=1e-7)
    bad = SyntheticGradients(LSTMCell(3, 6), ("carry",), truncate=W, hidden=(5,))
    with pytest.raises(ValueError, match="members"):
        shared_feedback_gradients([(bad, loss_fn, _theta(bad.cell), *members[0][3:])], phi)


def test_inner_loop_without_fast_steps_is_bptt_and_phi_is_meta_learned(nmn64):
    """float64. Step 0 is warm-up (η = 0: plain BPTT); step 1 takes fast steps, and the φ
    gradient through them matches central finite differences."""
    cell, theta, xs, aux, refs = nmn64
    with float64():
        _, want, _ = refs[0.0]
        sg = SyntheticGradients(
            cell,
            mode="inner_loop",
            truncate=W,
            inner_lr=0.5,
            warmup_steps=1,
            fast_params=("write_head",),
            zero_init=False,
            hidden=(5,),
            diagnose=False,
        )
        phi = _phi(sg, theta)
        fn = jax.jit(sg.gradients(loss_fn))
        warm = fn(theta, phi, xs, aux, step=0)
        _assert_close(warm.theta_grads, want)
        out = fn(theta, phi, xs, aux, step=1)
        assert abs(float(out.loss) - float(warm.loss)) > 1e-8  # the fast steps act
        direction = jax.tree_util.tree_map(lambda a: jnp.full_like(a, 0.01), phi)
        eps = 1e-5

        def at(s):
            p = jax.tree_util.tree_map(lambda a, d: a + s * d, phi, direction)
            return float(fn(theta, p, xs, aux, step=1).loss)

        fd = (at(eps) - at(-eps)) / (2 * eps)
        got = sum(
            float(jnp.sum(g * d))
            for g, d in zip(
                jax.tree_util.tree_leaves(out.phi_grads), jax.tree_util.tree_leaves(direction)
            )
        )
        assert abs(got) > 1e-8
        np.testing.assert_allclose(got, fd, rtol=1e-5)


def test_plain_lstm_through_the_wrappers():
    """A plain LSTM (no taps) with the carry target, its params taken from the NNX and Equinox
    wrappers of :class:`CellLayer`, the NNX update written back."""
    cell = LSTMCell(3, 4)
    layer = CellLayer(cell)
    xs, aux = _data("float32")
    sg = SyntheticGradients(
        cell, ("carry",), truncate=W, zero_init=False, mix_lambda=0.0, hidden=(5,)
    )
    nnx_layer = nnx_memory(layer)
    eqx_layer, _ = eqx.nn.make_with_state(eqx_memory())(layer, key=jax.random.key(0))
    fn = jax.jit(sg.gradients(loss_fn))
    for theta in (nnx_layer.raw_params(), eqx_layer.params):
        phi = _phi(sg, theta)
        out = fn(theta, phi, xs, aux)
        assert 0.0 < abs(float(out.metrics["cosine/carry"])) <= 1.0
        assert all(
            bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(out.theta_grads)
        )
    theta = nnx_layer.raw_params()
    out = fn(theta, _phi(sg, theta), xs, aux)
    new = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, theta, out.theta_grads)
    nnx.update(nnx_layer, nnx.State({"params": jax.tree_util.tree_map(nnx.Param, new)}))
    _assert_close(nnx_layer.raw_params(), new, rtol=0, atol=0)
    np.testing.assert_allclose(
        np.asarray(nnx_layer(xs[0])),
        np.asarray(unroll(cell, new, cell.init_carry(new), xs[0])[0]),
        rtol=1e-6,
    )


def nnx_memory(layer):
    from memjax.nnx import MemoryLayer

    return MemoryLayer(layer, rngs=nnx.Rngs(0))


def eqx_memory():
    from memjax.eqx import MemoryLayer

    return MemoryLayer


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sg_targets": ("nope",)}, "sg_targets"),
        ({"sg_targets": ()}, "sg_targets"),
        ({"sg_targets": "write"}, "sg_targets"),
        ({"context_taps": ("nope",)}, "context_taps"),
        ({"mix_lambda": 1.5}, "mix_lambda"),
        ({"mix_lambda": -0.1}, "mix_lambda"),
        ({"sg_targets": ("carry",)}, "truncate"),
        ({"mode": "fast"}, "mode"),
        ({"mode": "inner_loop"}, "truncate"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"scale": 0.0}, "scale"),
        ({"d_context": -2}, "d_context"),
        ({"hidden": (0,)}, "hidden"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SyntheticGradients(_cell("float32"), **kwargs)


def test_bad_call_arguments():
    with pytest.raises(ValueError, match="sg_targets"):
        SyntheticGradients(LSTMCell(3, 4))  # a plain LSTM has no "write" tap
    with pytest.raises(TypeError, match="cell"):
        SyntheticGradients(object())
    # every check below fails before any array work: nothing compiles
    cell = _cell("float32")
    sg = SyntheticGradients(cell, d_context=2, hidden=(5,), diagnose=False)
    theta = _theta(cell)
    phi = _phi(sg, theta)
    xs, aux = _data("float32")
    fn = sg.gradients(loss_fn)
    with pytest.raises(ValueError, match="context"):
        fn(theta, phi, xs, aux)
    with pytest.raises(ValueError, match="context"):
        fn(theta, phi, xs, aux, jnp.zeros((B, T, 3)))
    with pytest.raises(ValueError, match="predictions"):
        fn(theta, phi, xs, aux, jnp.zeros((B, T, 2)), predictions={"read": xs})
    with pytest.raises(ValueError, match="xs"):
        fn(theta, phi, xs[0], aux, jnp.zeros((B, T, 2)))
    inner = SyntheticGradients(
        cell, mode="inner_loop", truncate=2, fast_params=("nope",), hidden=(5,)
    )
    with pytest.raises(ValueError, match="fast_params"):
        inner.gradients(loss_fn)(theta, _phi(inner, theta), xs, aux)
