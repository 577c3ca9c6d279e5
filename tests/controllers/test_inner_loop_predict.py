"""Meta-test with the fast steps (``inner_loop_predict``) against explicit inner-loop SGD.

With a linear cell :math:`y_t = u_t = x_t W` (the tap ``"out"``) and the window loss
:math:`L_j = \\tfrac12 \\sum_{t \\in j} \\|y_t - a_t\\|^2`, the true gradient at the tap is
:math:`u_t - a_t`; a linear SG with context :math:`c_t = a_t` and kernel :math:`[I; -I]` predicts
exactly that, so the fast steps must be plain SGD on each window,
:math:`W_{j+1} = W_j - \\eta X_j^\\top (X_j W_j - A_j)`, from :math:`W_0` in every episode — written
here in NumPy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.controllers import SyntheticGradients, inner_loop_predict
from memjax.core import taps
from memjax.core.spec import spec
from memjax.core.testing.memory_contract import float64

B, T, W, D_IN, D_OUT, ETA = 3, 7, 3, 4, 2, 0.2


@spec
class TapLinear:
    """``y_t = x_t W``, tapped as ``"out"``; no carry."""

    d_input: int
    d_out: int
    tap_names = ("out",)

    def init_params(self, key):
        return {"w": jax.random.normal(key, (self.d_input, self.d_out), jnp.float64)}

    def init_carry(self, params):
        return ()

    def step(self, params, carry, x, /, **controls):
        return taps.tap("out", x @ params["w"]), carry


def _numpy_inner_sgd(w0, xs, aux):
    """Predictions and the summed window losses of explicit per-window SGD, reset per episode."""
    ys, losses = np.zeros((B, T, D_OUT)), np.zeros(B)
    for b in range(B):
        w = w0.copy()
        for start in range(0, T, W):
            x, a = xs[b, start : start + W], aux[b, start : start + W]
            y = x @ w
            ys[b, start : start + W] = y
            losses[b] += 0.5 * np.sum((y - a) ** 2)
            w = w - ETA * x.T @ (y - a)
    return ys, losses


def test_fast_steps_with_the_true_gradient_are_explicit_inner_loop_sgd():
    with float64():
        cell = TapLinear(D_IN, D_OUT)
        sg = SyntheticGradients(
            cell,
            sg_targets=("out",),
            d_context=D_OUT,
            hidden=(),
            scale=1.0,
            zero_init=False,
            mode="inner_loop",
            truncate=W,
            inner_lr=ETA,
            diagnose=False,
        )
        rng = np.random.default_rng(0)
        theta = {"w": jnp.asarray(rng.normal(size=(D_IN, D_OUT)))}  # as init_params, no compile
        eye = jnp.eye(D_OUT, dtype=jnp.float64)
        phi = {"out": ({"kernel": jnp.concatenate([eye, -eye]), "bias": jnp.zeros(D_OUT)},)}
        xs, aux = rng.normal(size=(B, T, D_IN)), rng.normal(size=(B, T, D_OUT))
        want_ys, want_losses = _numpy_inner_sgd(np.asarray(theta["w"]), xs, aux)
        predict = jax.jit(inner_loop_predict(sg))
        ys = predict(theta, phi, jnp.asarray(xs), jnp.asarray(aux))
        np.testing.assert_allclose(np.asarray(ys), want_ys, rtol=1e-12, atol=1e-12)
        # the fast steps act (later windows differ from θ0's predictions) ...
        assert np.max(np.abs(want_ys[:, W:] - xs[:, W:] @ np.asarray(theta["w"]))) > 1e-3
        # ... each episode starts again from θ0 (the episodes reversed: the same per episode) ...
        flipped = predict(theta, phi, jnp.asarray(xs[::-1]), jnp.asarray(aux[::-1]))
        np.testing.assert_allclose(np.asarray(flipped), want_ys[::-1], rtol=1e-12, atol=1e-12)
        # ... and training scores exactly these predictions
        loss = lambda ys, a: 0.5 * jnp.sum((ys - a) ** 2)
        xs, aux = jnp.asarray(xs), jnp.asarray(aux)
        out = jax.jit(sg.gradients(loss))(theta, phi, xs, aux, aux)
        np.testing.assert_allclose(float(out.loss), np.mean(want_losses), rtol=1e-12)


def test_inner_loop_predict_refuses_other_modes_and_carry_targets():
    cell = TapLinear(D_IN, D_OUT)
    with pytest.raises(ValueError, match="mode"):
        inner_loop_predict(SyntheticGradients(cell, sg_targets=("out",), truncate=W))
    sg = SyntheticGradients(cell, sg_targets=("out", "carry"), mode="inner_loop", truncate=W)
    with pytest.raises(ValueError, match="sg_targets"):
        inner_loop_predict(sg)
