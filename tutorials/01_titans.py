# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Titans: learning to memorize at test time
#
# Behrouz, Zhong & Mirrokni (2024), *Titans: Learning to Memorize at Test Time*, arXiv 2501.00663.
#
# Titans adds a **neural long-term memory** (LMM) to a sequence model: a small MLP $M$ whose
# *weights are the recurrent state*. Every token $x_t$ gives a key and a value,
# $k_t = x_t W_K$, $v_t = x_t W_V$ (eq. 11), and the memory takes a gradient step on the
# associative loss (eq. 12)
#
# $$\ell(M_{t-1}; x_t) = \lVert M_{t-1}(k_t) - v_t \rVert_2^2 .$$
#
# This notebook builds the idea up step by step with `memjax.memories.titans`.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from memjax.core import scan
from memjax.memories.linear import LinearMemory
from memjax.memories.titans import TitansMemory
from memjax.models.titans import TitansLMM
from memjax.train import enable_compilation_cache

enable_compilation_cache()  # compiled steps persist across runs ($MEMJAX_CACHE_DIR; 'off')

SMALL = os.environ.get("MEMJAX_SMALL") == "1"
key = jax.random.key(0)

# %% [markdown]
# ## 1. The memory is a test-time learner
#
# `TitansMemory` is one head's memory: `write` is one step of the update rule, `read` is a forward
# pass $M^*(q)$ with no update (eq. 15). Writing the same pair again and again drives the loss
# down, like an optimiser would — at *test* time, with no outer training.

# %%
d = 16
mem = TitansMemory(d_key=d, d_value=d, depth=2, theta=0.2, eta=0.0, alpha=0.0)
params = mem.init_params(key)
state = mem.init_state(params)
k = jax.random.normal(jax.random.key(1), (d,))
k = k / jnp.linalg.norm(k)
v = jax.random.normal(jax.random.key(2), (d,))

losses = []
for _ in range(20):
    losses.append(float(jnp.sum((mem.read(params, state, k) - v) ** 2)))
    state = mem.write(params, state, k, v)
plt.figure(figsize=(5, 2.5))
plt.semilogy(losses, marker="o")
plt.xlabel("writes of the same pair")
plt.ylabel("‖M(k) − v‖²")
plt.title("the memory learns at test time")
plt.show()

# %% [markdown]
# ## 2. Surprise and momentum
#
# The gradient $\nabla\ell(M_{t-1}; x_t)$ is the **momentary surprise**: large when the memory's
# prediction $M(k_t)$ is far from $v_t$. Titans adds **past surprise** through momentum (eqs. 9–10):
#
# $$S_t = \eta_t S_{t-1} - \theta_t \nabla\ell(M_{t-1}; x_t), \qquad M_t = M_{t-1} + S_t .$$
#
# Below, a stream repeats one association and, at $t = 20$, switches to a new one: the
# momentary surprise spikes at the switch, and with $\eta = 0.9$ the momentum keeps carrying
# the update for several tokens after it.

# %%
from optax.tree import norm as tree_l2_norm

from memjax.core.testing import random_sequence

length = 40
(k1, k2), (v1, v2) = (
    random_sequence(mem, 2, jax.random.key(3))[0],
    jax.random.normal(jax.random.key(4), (2, d)),
)
keys = jnp.where(jnp.arange(length)[:, None] < 20, k1, k2)
values = jnp.where(jnp.arange(length)[:, None] < 20, v1, v2)


def surprise_trace(eta):
    """Per token: the momentary surprise θ‖∇ℓ‖ = ‖S_t − ηS_{t−1}‖ and the update ‖S_t‖."""
    m = TitansMemory(d, d, depth=2, theta=0.05, eta=eta, alpha=0.0, max_grad_norm=None)
    p = m.init_params(key)

    def body(s, kv):
        new = m.write(p, s, *kv)
        momentary = jax.tree.map(lambda n, o: n - eta * o, new.momentum, s.momentum)
        return new, (tree_l2_norm(momentary), tree_l2_norm(new.momentum))

    _, traces = jax.lax.scan(body, m.init_state(p), (keys, values))
    return traces


fig, axes = plt.subplots(1, 2, figsize=(9, 2.8), sharex=True)
for eta in (0.0, 0.9):
    g, s = surprise_trace(eta)
    axes[0].plot(g, label=f"η = {eta}")
    axes[1].plot(s, label=f"η = {eta}")
axes[0].set(title="momentary surprise θ‖∇ℓ‖", xlabel="t")
axes[1].set(title="update ‖S_t‖ (past + momentary)", xlabel="t")
for ax in axes:
    ax.axvline(20, color="gray", ls=":")
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Forgetting
#
# A fixed-size memory must make room. Titans decays the weights with a data-dependent gate
# $\alpha_t \in [0, 1]$ (eqs. 13–14): $M_t = (1 - \alpha_t) M_{t-1} + S_t$. We write a stream of
# random pairs and track how well the *first* one is still recalled.

# %%
stream = 48 if SMALL else 96
ks, vs, _ = random_sequence(mem, stream, jax.random.key(5))
first_k = jnp.broadcast_to(ks[0], ks.shape)

plt.figure(figsize=(5, 2.8))
for alpha in (0.0, 0.02, 0.1):
    m = TitansMemory(d, d, depth=2, theta=0.3, eta=0.5, alpha=alpha)
    p = m.init_params(key)
    reads, _ = scan(m, p, m.init_state(p), ks, vs, first_k, chunk_size=16)
    plt.plot(jnp.linalg.norm(reads - vs[0], axis=-1), label=f"α = {alpha}")
plt.xlabel("tokens written")
plt.ylabel("‖M(k₁) − v₁‖")
plt.title("recall of the first pair")
plt.legend()
plt.show()

# %% [markdown]
# With a **linear** memory, no momentum and no decay, Titans is the delta rule: memjax checks
# this identity numerically (with the paper's un-halved loss the step is $2\theta$).

# %%
lin_t = TitansMemory(
    d,
    d,
    depth=1,
    bias=False,
    residual_norm=False,
    theta=0.1,
    eta=0.0,
    alpha=0.0,
    max_grad_norm=None,
    loss="half_sum",
)
lin = LinearMemory(d, d, theta=0.1)
pt = lin_t.init_params(key)
ys_t, _ = scan(lin_t, pt, lin_t.init_state(pt), ks[:10], vs[:10], ks[:10])
w0 = jax.tree.leaves(pt["init"])[0]
ys_l, _ = scan(lin, {}, lin.init_state({})._replace(weights=w0.T), ks[:10], vs[:10], ks[:10])
print("max |Titans(L_M=1) − delta rule| =", float(jnp.abs(ys_t - ys_l).max()))

# %% [markdown]
# ## 4. The chunked parallel form
#
# Token by token, the recurrence is sequential. Titans trains with **chunks** of $b$ tokens
# (§3.2): inside a chunk every gradient is taken at the chunk-start weights $M_{t'}$ (eq. 16),
# so all $b$ gradients come at once; momentum and decay become cumulative products inside the
# chunk (eqs. 17–18), and each token reads its own $M_t(q_t)$ through the dual form, as TTT does.
#
# The raw form is `parallel_memory(memory, weights, k, v, q, theta, eta, alpha, chunk_size=b)`:
# one head, your own keys, values, queries and per-token gates, returning the reads and the new
# state (weights, momentum, the chunk-start weights and the position in the chunk).
# `recurrent_memory` takes the same arguments and runs the token-by-token loop.

# %%
from memjax.memories.titans import parallel_memory, recurrent_memory

m = TitansMemory(d, d, depth=2)
w0 = m.init_params(key)["init"]
theta_t = jnp.full(ks.shape[0], 0.2)  # per-token step sizes; eta and alpha shared here
gates = (theta_t, 0.9, 0.01)
fast_m, st = jax.jit(lambda w: parallel_memory(m, w, ks, vs, ks, *gates, chunk_size=8))(w0)
slow_m, _ = jax.jit(lambda w: recurrent_memory(m, w, ks, vs, ks, *gates, chunk_size=8))(w0)
print("parallel_memory vs its token loop, max abs diff:", float(jnp.abs(fast_m - slow_m).max()))

# %% [markdown]
# `TitansLMM` is the full layer (projections, causal convolution, SiLU, ℓ2-normalised q/k,
# per-token gates $\theta_t, \eta_t, \alpha_t$, heads, persistent tokens). Its `apply` runs the
# parallel form; `reference_apply` is a slow token-by-token loop of the same recurrence. They
# agree to float precision, and with `chunk_size=1` both equal the exact recurrence.

# %%
layer = TitansLMM(d_model=32, num_heads=2, chunk_size=8, depth=2)
lp = layer.init_params(key)
xs = jax.random.normal(jax.random.key(6), (64, 32))
fast, _ = jax.jit(layer.apply)(lp, layer.init_state(lp), xs)
slow, _ = jax.jit(layer.reference_apply)(lp, layer.init_state(lp), xs)
print("parallel vs token-by-token, max abs diff:", float(jnp.abs(fast - slow).max()))

# Streaming: the state carries everything, so pieces of any size equal the whole sequence.
a, s = layer.apply(lp, layer.init_state(lp), xs[:13])
b, s = layer.apply(lp, s, xs[13:])
print("streamed in pieces vs whole:", float(jnp.abs(jnp.concatenate([a, b]) - fast).max()))

# %% [markdown]
# ## 5. Deep against linear memory
#
# A linear memory $M(k) = kW$ can store at most $d$ independent associations without
# interference, and only linear maps. A deep memory ($L_M \ge 2$) is more expressive (§5.5).
# Here each memory reads a stream of pairs $v = \tanh(k A)\,B$ (a fixed non-linear map) many
# times over; we then measure the recall error on the stored keys.

# %%
n_pairs = 24 if SMALL else 48
A = jax.random.normal(jax.random.key(7), (d, d)) * 1.5
B = jax.random.normal(jax.random.key(8), (d, d)) / np.sqrt(d)
ks_nl = jax.random.normal(jax.random.key(9), (n_pairs, d))
ks_nl = ks_nl / jnp.linalg.norm(ks_nl, axis=-1, keepdims=True)
vs_nl = jnp.tanh(ks_nl @ A) @ B
epochs = 10 if SMALL else 30
rep_k, rep_v = jnp.tile(ks_nl, (epochs, 1)), jnp.tile(vs_nl, (epochs, 1))

results = {}
for depth in (1, 2, 3):
    m = TitansMemory(d, d, depth=depth, expansion=4, theta=0.05, eta=0.5, alpha=0.0)
    p = m.init_params(key)
    _, final = scan(m, p, m.init_state(p), rep_k, rep_v, rep_k, chunk_size=64)
    recalled = jax.vmap(lambda q, st=final, mm=m, pp=p: mm.read(pp, st, q))(ks_nl)
    results[depth] = float(jnp.mean(jnp.sum((recalled - vs_nl) ** 2, -1)))
plt.figure(figsize=(4, 2.6))
plt.bar([f"L_M = {k}" for k in results], list(results.values()))
plt.ylabel("recall error")
plt.title(f"{n_pairs} non-linear associations")
plt.show()
print(results)

# %% [markdown]
# ## 6. Three ways to add memory to attention: MAC, MAG, MAL
#
# `memjax.models.titans` wraps the LMM with attention three ways (§4), each a mixer for
# `SequenceModel` (embedding → pre-norm blocks → read-out):
#
# * **MAC** (memory as context, eqs. 21–25): per segment, *retrieve* $h = M^*_{t-1}(q)$,
#   attend over $[p \,\|\, h \,\|\, S]$, *store* the attention output $y$ in the memory, read
#   again and gate: $o = y \otimes M^*_t(y)$ — the paper's order (titans-pytorch updates the
#   memory before attending).
# * **MAG** (memory as gate, eqs. 26–28): sliding-window attention whose window always includes
#   the persistent tokens, gated with the memory branch,
#   $o = \mathrm{norm}(y) \odot \sigma(\mathrm{norm}(M(\tilde x)))$.
# * **MAL** (memory as layer, eqs. 29–31): the memory layer, then sliding-window attention.
#
# Every one is causal: changing a future token never changes a past output.

# %%
from memjax.models.titans import build_model

tokens = jax.random.randint(jax.random.key(10), (48,), 0, 32)
changed = tokens.at[30].set((tokens[30] + 1) % 32)
for kind in ("mac", "mag", "mal"):
    model = build_model(
        kind, vocab_size=32, d_model=32, num_layers=1, window=16, segment_size=16, chunk_size=8
    )
    p = model.init_params(key)
    a, _ = model.apply(p, model.init_state(p), tokens)
    b, _ = model.apply(p, model.init_state(p), changed)
    print(
        f"{kind}: logits {a.shape}, outputs before t=30 unchanged: "
        f"{bool(jnp.all(a[:30] == b[:30]))}, at t=30 changed: {bool(jnp.any(a[30] != b[30]))}"
    )

# %% [markdown]
# ## 7. A small haystack run
#
# A passkey hidden at a random depth of a noise haystack, asked for at the end
# (`memjax.data.needle_haystack`). We train a one-layer LMM model and a same-size sliding-window
# attention model whose window is too short to see the needle from the question, and compare the
# loss on the answer digits. The full comparison over lengths and architectures (the paper's
# Table 2) is `python -m experiments.titans.niah`.

# %%
import optax

from memjax.data import NIAH_VOCAB, needle_haystack

seq_len, steps = (128, 25) if SMALL else (256, 300)
vocab = len(NIAH_VOCAB) + 1  # id 0 is padding


def answer_loss(model, p, tokens, targets):
    """Cross-entropy on the scored positions (the answer digits; targets are -100 elsewhere)."""
    logits = jax.vmap(lambda t: model.apply(p, model.init_state(p), t)[0])(tokens)
    mask = targets >= 0
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(mask, targets, 0))
    return jnp.sum(nll * mask) / jnp.sum(mask)


curves = {}
for kind in ("lmm", "swa"):
    model = build_model(kind, vocab_size=vocab, d_model=32, num_layers=1, window=16, chunk_size=16)
    p = model.init_params(key)
    tx = optax.adam(3e-3)
    opt = tx.init(p)

    @jax.jit
    def update(p, opt, tokens, targets, model=model, tx=tx):
        loss, g = jax.value_and_grad(lambda q: answer_loss(model, q, tokens, targets))(p)
        u, opt = tx.update(g, opt, p)
        return optax.apply_updates(p, u), opt, loss

    losses = []
    for s in range(steps):
        b = needle_haystack(s, 8, seq_len, "passkey", num_digits=2)
        p, opt, loss = update(p, opt, b.tokens, b.targets)
        losses.append(float(loss))
    curves[kind] = losses

plt.figure(figsize=(5, 2.8))
for kind, losses in curves.items():
    plt.plot(losses, label=kind)
plt.xlabel("step")
plt.ylabel("loss on the answer digits")
plt.legend()
plt.show()
