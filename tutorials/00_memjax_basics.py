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
# # memjax basics
#
# memjax turns memory mechanisms from papers into **pure functions over pytrees**. This notebook
# walks through the protocol every memory follows, using the simplest one: the linear
# associative memory trained by the **delta rule**.
#
# A memory is a frozen *spec* with four verbs:
#
# | verb | returns | role |
# |---|---|---|
# | `init_params(key)` | params | learnables of the outer (optax) loop |
# | `init_state(params)` | state | the test-time memory, a `NamedTuple` |
# | `write(params, state, k, v, **controls)` | state | store `k → v` |
# | `read(params, state, q, **controls)` | value | retrieve |
#
# The verbs are *unbatched* (one key, one value); heads, batches and time come from `vmap` and
# `scan` outside.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import memjax
from memjax.core import MultiHead, scan, step
from memjax.memories.linear import LinearMemory
from memjax.train import enable_compilation_cache

enable_compilation_cache()  # compiled steps persist across runs ($MEMJAX_CACHE_DIR; 'off')

SMALL = os.environ.get("MEMJAX_SMALL") == "1"
print("memjax", memjax.__version__, "| jax", jax.__version__, "| small mode:", SMALL)

# %% [markdown]
# ## Write and read
#
# Writing takes one gradient step on $\ell(M) = \tfrac12\lVert Mk - v\rVert^2$:
# $M \leftarrow M + \theta\,(v - Mk)\,k^\top$. With $\theta = 1$ and a unit-norm key, reading the
# same key returns the value exactly.

# %%
mem = LinearMemory(d_key=4, d_value=2, theta=1.0)
params = mem.init_params(jax.random.key(0))  # {} : the plain delta rule learns nothing outside
state = mem.init_state(params)
k = jnp.array([1.0, 0.0, 0.0, 0.0])
state = mem.write(params, state, k, jnp.array([3.0, -1.0]))
print("read(k) =", mem.read(params, state, k))

# %% [markdown]
# Specs are values: equal specs are equal and hash the same, so `jax.jit` never retraces for a
# new but equal spec. They are pytrees with no leaves, so they pass straight through `jit`.

# %%
print(LinearMemory(4, 2, theta=1.0) == mem, jax.tree_util.tree_leaves(mem))

# %% [markdown]
# ## Scan over a sequence
#
# `memjax.core.scan` runs write-then-read over a `(T, d)` sequence with `lax.scan`, a chunk at a
# time (each chunk is rematerialised under `jax.grad`). Per-token controls are arrays with a
# leading `T` axis. Here we store `T` random associations and, at every step, query the **first**
# key: the delta rule keeps it until interference from later keys erodes it.

# %%
d_key, length = 16, 48 if SMALL else 96
keys = jax.random.normal(jax.random.key(1), (length, d_key))
keys = keys / jnp.linalg.norm(keys, axis=-1, keepdims=True)
values = jax.random.normal(jax.random.key(2), (length, 4))
first_key = jnp.broadcast_to(keys[0], keys.shape)

errors = {}
for name, memory in {
    "delta rule (θ=1)": LinearMemory(d_key, 4, theta=1.0),
    "delta rule (θ=0.5)": LinearMemory(d_key, 4, theta=0.5),
    "with decay α=0.05": LinearMemory(d_key, 4, theta=1.0, alpha=0.05),
}.items():
    reads, final = scan(memory, {}, memory.init_state({}), keys, values, first_key, chunk_size=16)
    errors[name] = jnp.linalg.norm(reads - values[0], axis=-1)

fig, ax = plt.subplots(figsize=(6, 3))
for name, err in errors.items():
    ax.plot(err, label=name)
ax.axvline(d_key, color="gray", ls=":", label="T = d_key")
ax.set(xlabel="tokens written", ylabel="‖read(k₁) − v₁‖", title="recall of the first association")
ax.legend()
plt.show()

# %% [markdown]
# `scan` equals a Python loop of `step` for every chunk size (the contract tests check this for
# every memory in memjax):

# %%
mem = LinearMemory(d_key, 4, theta=0.7)
ys_scan, _ = scan(mem, {}, mem.init_state({}), keys[:10], values[:10], keys[:10], chunk_size=3)
state, ys_loop = mem.init_state({}), []
for t in range(10):
    y, state = step(mem, {}, state, keys[t], values[t], keys[t])
    ys_loop.append(y)
print("max |scan − loop| =", float(jnp.abs(ys_scan - jnp.stack(ys_loop)).max()))

# %% [markdown]
# ## Heads by `vmap`, batches by `vmap`, everything under `jit`
#
# `MultiHead(memory, H)` is itself a memory whose params, state, keys and values gain a head
# axis. A batch is one more `jax.vmap`.

# %%
heads = MultiHead(LinearMemory(d_key, 4, theta=0.5), num_heads=4)
p = heads.init_params(jax.random.key(3))
batch = jax.random.normal(jax.random.key(4), (8, 12, 4, d_key))  # (batch, T, heads, d_key)
vals = jax.random.normal(jax.random.key(5), (8, 12, 4, 4))


@jax.jit
def run(p, ks, vs):
    return jax.vmap(lambda k, v: scan(heads, p, heads.init_state(p), k, v, k)[0])(ks, vs)


print("reads:", run(p, batch, vals).shape)

# %% [markdown]
# ## Gradients through the memory
#
# Make the gates data-dependent (`gated=...`): $\theta_t = \sigma(w_\theta^\top k_t + b_\theta)$,
# $\alpha_t = \sigma(w_\alpha^\top k_t + b_\alpha)$. These are outer-loop params, and
# `jax.grad` differentiates through the whole test-time recurrence. Here we *learn the gates* so
# that the memory best recalls the first association after a stream of distractors.

# %%
import optax

gated = LinearMemory(d_key, 4, theta=0.5, alpha=0.2, gated=("theta", "alpha"))
p = gated.init_params(jax.random.key(6))


def recall_loss(p):
    reads, _ = scan(gated, p, gated.init_state(p), keys[:32], values[:32], first_key[:32])
    return jnp.mean((reads[-1] - values[0]) ** 2)


tx = optax.adam(0.1)


@jax.jit
def train_step(p, opt):
    loss, g = jax.value_and_grad(recall_loss)(p)
    updates, opt = tx.update(g, opt, p)
    return optax.apply_updates(p, updates), opt, loss


opt, losses = tx.init(p), []
for _ in range(30 if SMALL else 100):
    p, opt, loss = train_step(p, opt)
    losses.append(float(loss))
print(f"recall loss {losses[0]:.3f} -> {losses[-1]:.3f}")
plt.figure(figsize=(5, 2.5))
plt.plot(losses)
plt.xlabel("optax step")
plt.ylabel("recall loss")
plt.show()

# %% [markdown]
# ## A layer, and the same layer in Flax NNX and Equinox
#
# `AssociativeLayer` adds projections ($k = \mathrm{SiLU}(xW_K)$, ℓ2-normalised q and k, as in
# Titans §4.4) around any memory — with a gated linear memory it is Gated DeltaNet. The NNX and
# Equinox wrappers hold params as learnables and the memory state separately, carried across
# calls; they compute exactly what the core computes.

# %%
import equinox as eqx
from flax import nnx

import memjax.eqx
import memjax.nnx
from memjax.models.associative import AssociativeLayer

spec = AssociativeLayer(
    d_model=32,
    num_heads=4,
    memory=LinearMemory(8, 8, alpha=0.1, gated=("theta", "alpha"), decay_form="gated_deltanet"),
)
nnx_layer = memjax.nnx.MemoryLayer(spec, rngs=nnx.Rngs(0))
eqx_layer, eqx_state = eqx.nn.make_with_state(memjax.eqx.MemoryLayer)(spec, key=jax.random.key(0))
eqx_layer = eqx.tree_at(lambda m: m.params, eqx_layer, nnx_layer.raw_params())

x = jax.random.normal(jax.random.key(7), (20, 32))
y_core, _ = spec.apply(nnx_layer.raw_params(), spec.init_state(nnx_layer.raw_params()), x)
y_eqx, eqx_state = eqx_layer(x, eqx_state)
y_nnx = nnx_layer(x)
print(
    "NNX == core:",
    bool(jnp.all(y_nnx == y_core)),
    "| Equinox == core:",
    bool(jnp.all(y_eqx == y_core)),
)
print(
    "trainable:",
    type(nnx.state(nnx_layer, nnx.Param)).__name__,
    "| memory state type:",
    memjax.nnx.MemoryState.__name__,
)

# %% [markdown]
# ### The state is carried across calls — by default
#
# Both wrappers **continue from the memory the previous call left** (streaming). That is what a
# long document split into segments wants, but in a training loop over *independent* batches it
# means the memory written by one batch is read by the next (and, without `detach=True`,
# gradients flow into it). Two ways to start every batch afresh: build the layer with
# `carry=False`, or call `reset()` at the start of each step. A fresh state also accepts a new
# batch size, e.g. a ragged last batch.

# %%
xb = jax.random.normal(jax.random.key(8), (3, 20, 32))
streaming = memjax.nnx.MemoryLayer(spec, rngs=nnx.Rngs(0), batch_shape=(3,))
iid = memjax.nnx.MemoryLayer(spec, rngs=nnx.Rngs(0), batch_shape=(3,), carry=False)
first, again = streaming(xb), streaming(xb)  # the second call reads the first call's memory
print("streaming: same batch twice gives the same output?", bool(jnp.allclose(first, again)))
print("carry=False: same output?", bool(jnp.allclose(iid(xb), iid(xb))))
streaming.reset()  # forget: the next call starts from init_state, at any batch size
print("after reset, a ragged batch of 2:", streaming(xb[:2]).shape)
