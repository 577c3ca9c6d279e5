# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fast & slow learning: synthetic gradients in memory controllers
#
# Fernando, Denman, Sridharan & Fookes (2020, arXiv 2011.05438) decouple the learning of a
# memory network's controllers: a *feedback path* predicts the gradient of the loss with respect
# to a controller's output, the controller learns **fast** from the prediction, the feedback path
# learns **slowly** from true gradients, and one feedback path can be shared by several memory
# networks. Only the paper's abstract is confirmed **[C]**; the method here is a reconstruction
# from the DNI literature (Jaderberg et al. 2017) — tags: [C] confirmed, [L] literature,
# [I] inferred/reconstructed, [D] checked numerically. Nothing below is the paper's text or
# numbers. Code: `memjax.memories.{ntm,mann,nmn}`, `memjax.controllers`.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from memjax.controllers import SyntheticGradients, shared_feedback_gradients
from memjax.core.unroll import unroll
from memjax.memories import addressing
from memjax.nn.lstm import LSTMCell
from memjax.train import enable_compilation_cache

enable_compilation_cache()  # compiled steps persist across runs ($MEMJAX_CACHE_DIR; 'off')

SMALL = os.environ.get("MEMJAX_SMALL", "0") not in ("", "0")
STEPS = 25 if SMALL else 600

# %% [markdown]
# ## 1. The memory cells' addressing, drawn
# An NTM head (Graves et al. 2014, eqs. 5–9 [L]) turns a key into a weighting over slots in four
# moves: content (softmax of β·cosine), interpolation with the previous weighting (gate g),
# a circular shift s, and sharpening with γ ≥ 1. A MANN write (Santoro et al. 2016 [L]) blends
# the previous read weights with the least-used slots.

# %%
rng = np.random.default_rng(0)
n_slots, width = 16, 6
memory = jnp.asarray(rng.normal(size=(n_slots, width)), jnp.float32)
key = memory[5] + 0.3 * jnp.asarray(rng.normal(size=width), jnp.float32)
w_prev = jax.nn.one_hot(11, n_slots)
w_c = addressing.content_weights(key, memory, beta=3.0)
w_g = addressing.interpolate(w_c, w_prev, 0.7)
w_s = addressing.circular_shift(w_g, jnp.array([0.1, 0.2, 0.7]))  # mostly shift by +1
w_f = addressing.sharpen(w_s, 4.0)

usage = jnp.asarray(rng.uniform(size=n_slots), jnp.float32)
w_lu, slot = addressing.least_used(usage, 1)
w_write = 0.3 * w_prev + 0.7 * w_lu

fig, axes = plt.subplots(1, 5, figsize=(15, 2.8), sharey=True)
panels = [
    ("content w^c (β=3)", w_c, "tab:blue"),
    ("interpolated (g=0.7)", w_g, "tab:orange"),
    ("shifted (+1 mostly)", w_s, "tab:green"),
    ("sharpened (γ=4)", w_f, "tab:red"),
    (f"MANN write (least used: {int(slot)})", w_write, "tab:purple"),
]
for ax, (title, w, colour) in zip(axes, panels):
    ax.bar(np.arange(n_slots), np.asarray(w), color=colour)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("slot")
axes[0].set_ylabel("weight")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. What a synthetic gradient is
# For a target $u_t$ (a tapped controller output such as the write interface, or the carry at a
# truncation boundary) a small MLP predicts $\hat g_t = 0.1\cdot\mathrm{MLP}_\phi([u_t\|c_t])
# \approx \delta_t = \partial L/\partial u_t$ (DNI's conventions [C]: zero-initialised last
# layer, scale 0.1, context $c_t$ such as the label — cDNI). In reverse mode the cotangent sent
# *upstream* of $u_t$ becomes $\lambda\bar u_t + (1-\lambda)\hat g_t$: with $\lambda = 0$ the
# controller learns from $\langle \mathrm{sg}(\hat g_t), u_t\rangle$ alone (update unlocking),
# and the cotangent that reached $u_t$ is the SG's (bootstrapped) training target.
#
# ## 3. SG with the oracle equals BPTT
# If $\hat g_t$ *is* the true $\delta_t$, every adjoint in the backward pass is the true one, so
# the update is exactly BPTT — even across truncation windows. Below: an LSTM cut into windows
# of 4 steps, the carry SG replaced by the true carry gradient.

# %%
cell = LSTMCell(2, 8)
T, W, B = 12, 4, 4
theta = cell.init_params(jax.random.key(0))
xs = jax.random.normal(jax.random.key(1), (B, T, 2))
aux = jax.random.normal(jax.random.key(2), (B, T, 8))


def loss_fn(ys, aux):
    return jnp.sum((ys - aux) ** 2)


@jax.jit
def reference(theta):
    """BPTT and the true carry gradients at window starts (additive probes on the carry)."""
    probes = jax.tree_util.tree_map(
        lambda c: jnp.zeros((B, T // W - 1, *c.shape)), cell.init_carry(theta)
    )

    def total(theta, probes):
        def one(x, a, p):
            carry, out = cell.init_carry(theta), 0.0
            for j in range(T // W):
                if j:
                    carry = jax.tree_util.tree_map(lambda c, q, j=j: c + q[j - 1], carry, p)
                ys, carry = unroll(cell, theta, carry, x[j * W : (j + 1) * W])
                out = out + loss_fn(ys, a[j * W : (j + 1) * W])
            return out

        return jnp.mean(jax.vmap(one)(xs, aux, probes))

    g_theta, g_carry = jax.grad(total, argnums=(0, 1))(theta, probes)
    return g_theta, jax.tree_util.tree_map(lambda g: g * B, g_carry)


bptt, oracle = reference(theta)
sg = SyntheticGradients(cell, ("carry",), truncate=W, mix_lambda=0.0)
phi = sg.init_params(jax.random.key(3), theta)
grads = jax.jit(sg.gradients(loss_fn))
with_oracle = grads(theta, phi, xs, aux, predictions={"carry": oracle})
without = grads(theta, phi, xs, aux)  # the zero-initialised SG


def max_diff(a, b):
    return max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


print("SG with oracle vs BPTT, max |diff|:", max_diff(with_oracle.theta_grads, bptt))
print("zero SG (truncated BPTT) vs BPTT:  ", max_diff(without.theta_grads, bptt))

# %% [markdown]
# ## 4. Fast/slow learning on a small episode task, and the cosine diagnostic
# Episode: a random ±1 cue at step 0, then silence; at the last step the LSTM must output the
# cue. With truncation windows of 2 steps, plain truncated BPTT never sees the dependency; the
# carry SG at each boundary can carry it back (DNI's claim [L]). Each step logs
# $\cos(\hat g, \tilde\delta)$ between the SG and its bootstrapped target.

# %%
L, WIN = 8, 2
recall = LSTMCell(1, 16)


def recall_batch(seed, batch=32):
    r = np.random.default_rng(seed)
    cue = r.choice([-1.0, 1.0], size=(batch, 1)).astype(np.float32)
    x = np.zeros((batch, L, 1), np.float32)
    x[:, 0, 0] = cue[:, 0]
    return jnp.asarray(x), jnp.asarray(cue)


def recall_loss(ys, cue):
    return (ys[-1, 0] - cue[0]) ** 2


def train(method):
    sg = SyntheticGradients(
        recall, ("carry",), truncate=WIN, mix_lambda=1.0 if method == "BPTT" else 0.0, hidden=(32,)
    )
    th = recall.init_params(jax.random.key(0))
    ph = sg.init_params(jax.random.key(1), th)
    opt, opt_sg = optax.adam(1e-2), optax.adam(1e-3)
    st, sp = opt.init(th), opt_sg.init(ph)
    fn = sg.gradients(recall_loss)

    @jax.jit
    def step(th, ph, st, sp, x, cue):
        out = fn(th, ph, x, cue)
        u, st = opt.update(out.theta_grads, st)
        v, sp = opt_sg.update(out.phi_grads, sp)
        return optax.apply_updates(th, u), optax.apply_updates(ph, v), st, sp, out

    losses, cosines = [], []
    for i in range(STEPS):
        x, cue = recall_batch(i)
        th, ph, st, sp, out = step(th, ph, st, sp, x, cue)
        losses.append(float(out.loss))
        cosines.append(float(out.metrics["cosine/carry"]))
    return losses, cosines


curves = {m: train(m) for m in ("BPTT", "SG")}
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.5))
for (m, (loss, cos)), colour, marker in zip(curves.items(), ("tab:blue", "tab:red"), ("o", "s")):
    a1.plot(loss, color=colour, marker=marker, markevery=max(1, STEPS // 10), label=f"T={WIN} {m}")
    if m == "SG":
        a2.plot(cos, color=colour, marker=marker, markevery=max(1, STEPS // 10), label=m)
a1.set(xlabel="update", ylabel="squared error at the last step", title="delayed recall")
a2.set(xlabel="update", ylabel="cos(ĝ, target)", title="cosine diagnostic (carry SG)")
a1.legend(loc="upper right")
a2.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the cosine before trusting a fast update: near 0 the SG predicts nothing and a fast step
# is noise; the write SG of a memory network in particular sees only the present, while its
# true gradient depends on future reads (the spec's random-label toy [D]: no better than
# predicting zero). The repository's experiments measure where it helps and where it does not
# (`experiments/synthetic_gradients/README.md`).
#
# ## 5. A shared feedback path
# One $\phi$ can serve K networks [I: the abstract's "feedback path shared among multiple
# neural memory networks"]: each gets its $\hat g$ from the same $\phi$, and $\phi$'s gradient is
# the sum of theirs. Two LSTMs with different inputs but equal carries share one carry SG:

# %%
nets = [LSTMCell(1, 16), LSTMCell(3, 16)]
members = []
for k, net in enumerate(nets):
    x, cue = recall_batch(100 + k)
    x = jnp.concatenate([x, jnp.zeros((*x.shape[:2], net.d_input - 1))], -1)
    s = SyntheticGradients(net, ("carry",), truncate=WIN, mix_lambda=0.0, zero_init=False)
    members.append((s, recall_loss, net.init_params(jax.random.key(k)), x, cue))
shared_phi = members[0][0].init_params(jax.random.key(7), members[0][2])
outs, g_phi = shared_feedback_gradients(members, shared_phi)
norms = [float(optax.global_norm(o.phi_grads)) for o in outs]
print("|∂L_SG/∂φ| from each network:", norms, " shared total:", float(optax.global_norm(g_phi)))
