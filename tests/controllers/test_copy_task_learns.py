"""A copy task learns within the test budget: an NTM's bit errors fall well below chance.

The copy task of Graves et al. 2014 (§4.1), shrunk: 3-bit vectors, sequences of 1–3 vectors, a
delimiter channel, then the recall phase; an NTM (LSTM controller, 8 × 6 memory) with a linear
read-out to one logit per bit, BPTT, Adam, all updates in one compiled ``lax.scan``. Errors are
counted on a fixed held-out batch with NumPy, before and after training, against chance
(half the recalled bits).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.core.unroll import unroll
from memjax.data import copy_task
from memjax.memories.ntm import NTMCell

BITS, MAX_LEN, BATCH, STEPS = 3, 3, 16, 300
CELL = NTMCell(BITS + 1, 32, memory_size=8, memory_width=6, num_read_heads=1)


def copy_batch(key, batch):
    """``memjax.data.copy_task`` with lengths 1..MAX_LEN, as float32 arrays."""
    b = copy_task(key, batch, max_len=MAX_LEN, width=BITS, min_len=1)
    return tuple(jnp.asarray(a, jnp.float32) for a in (b.inputs, b.targets, b.mask))


def setup():
    """Params (the cell's init, a random linear read-out), training and held-out batches."""
    theta = CELL.init_params(jax.random.key(0))
    readout = {
        "kernel": 0.1 * jax.random.normal(jax.random.key(1), (CELL.d_output, BITS)),
        "bias": jnp.zeros(BITS),
    }
    train = tuple(
        a.reshape(STEPS, BATCH, *a.shape[1:]) for a in copy_batch(jax.random.key(2), STEPS * BATCH)
    )
    return (theta, readout), train, copy_batch(jax.random.key(3), 64)


def logits(params, xs):
    """The cell's outputs through the linear read-out, ``(B, T, BITS)``."""
    theta, readout = params
    ys = jax.vmap(lambda x: unroll(CELL, theta, CELL.init_carry(theta), x)[0])(xs)
    return ys @ readout["kernel"] + readout["bias"][None, None, :]


def loss(params, xs, target, mask):
    """Sigmoid cross-entropy on the recall steps, summed per sequence, mean over the batch."""
    z = logits(params, xs)
    bce = jnp.maximum(z, 0) - z * target + jnp.log1p(jnp.exp(-jnp.abs(z)))
    return jnp.sum(bce * mask[..., None]) / xs.shape[0]


def bit_errors(out, target, mask):
    """Mean wrong bits per sequence (NumPy): a logit > 0 reads as 1."""
    wrong = (np.asarray(out) > 0) != (target > 0.5)
    return float(np.mean(np.sum(wrong * mask[..., None], axis=(1, 2))))


def test_ntm_copy_bit_errors_fall():
    params, train, (ev_x, ev_y, ev_m) = jax.jit(setup)()
    ev_x, ev_y, ev_m = np.asarray(ev_x), np.asarray(ev_y), np.asarray(ev_m)
    opt = optax.adam(1e-2)

    def fit(params):
        def update(state, batch):
            params, opt_state = state
            value, grads = jax.value_and_grad(loss)(params, *batch)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, _), losses = jax.lax.scan(update, (params, opt.init(params)), train)
        return params, losses

    ev_xs = jnp.asarray(ev_x)
    evaluate = jax.jit(logits)
    before = bit_errors(evaluate(params, ev_xs), ev_y, ev_m)
    trained, losses = jax.jit(fit)(params)
    after = bit_errors(evaluate(trained, ev_xs), ev_y, ev_m)
    chance = BITS * float(np.mean(np.sum(ev_m, 1))) / 2
    assert np.all(np.isfinite(np.asarray(losses)))
    assert before > 0.5 * chance, (before, chance)
    assert after < 0.25 * chance, (before, after, chance)
