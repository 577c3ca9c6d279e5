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
# # Sparsey: sparse distributed codes and the Code Selection Algorithm
#
# A Sparsey **mac** is Q competitive modules (CMs) of K binary cells; a **code** (SDR) is one
# winner per CM. The CSA stores an input in one trial, and its noise falls as the input's
# familiarity G rises, so similar inputs get similar codes and a stored input reactivates its
# code exactly. Model: Rinkus & Leveille 2017 (arXiv 1710.07829), the CSA of Rinkus 2010 and
# 2014; code: `memjax.memories.sparsey`.

# %%
import os

import jax
import matplotlib.pyplot as plt
import numpy as np

from memjax.memories.sparsey import SparseyMac, code_overlap, expansivity
from memjax.train import enable_compilation_cache

enable_compilation_cache()  # compiled steps persist across runs ($MEMJAX_CACHE_DIR; 'off')

SMALL = os.environ.get("MEMJAX_SMALL", "0") not in ("", "0")  # MEMJAX_SMALL=0 means full size
N, Q, K, ACTIVE = 400, 20, 20, 20
rng = np.random.default_rng(0)


def patterns(n):
    xs = np.zeros((n, N), np.uint8)
    for i in range(n):
        xs[i, rng.choice(N, ACTIVE, replace=False)] = 1
    return xs


# %% [markdown]
# ## 1. SDRs: a code is one winner per CM
# Code similarity is the intersection: the number of CMs with the same winner (chance Q/K = 1).

# %%
mac = SparseyMac(n_inputs=N, Q=Q, K=K, saturation=None)
stored = patterns(20)
state, learned = mac.learn(mac.init_state(), stored, key=jax.random.key(0))
print("code of item 0:", np.asarray(learned.code[0]))
print(
    "mean overlap between different stored codes:",
    float(
        np.mean(
            [
                code_overlap(learned.code[i], learned.code[j])
                for i in range(5)
                for j in range(i + 1, 5)
            ]
        )
    ),
)

# %% [markdown]
# ## 2. The CSA step by step: V, G, η and ρ
# For a stored item and a novel one: the local support V (steps 2–4), familiarity G (step 5),
# expansivity η (step 6) and the per-CM choice distribution ρ (steps 7–8).

# %%
fam = mac.recognize(state, stored[0])
nov = mac.recognize(state, patterns(1)[0])
fig, axes = plt.subplots(2, 2, figsize=(9, 6))
axes[0, 0].imshow(np.asarray(fam.support), vmin=0, vmax=1)
axes[0, 0].set_title(f"V, stored item (G={float(fam.familiarity):.2f})")
axes[0, 1].imshow(np.asarray(nov.support), vmin=0, vmax=1)
axes[0, 1].set_title(f"V, novel item (G={float(nov.familiarity):.2f})")
g = np.linspace(0, 1, 101)
axes[1, 0].semilogy(g, expansivity(g, g_minus=mac.g_minus, gamma=mac.gamma, chi=mac.chi, K=K))
axes[1, 0].set_xlabel("G")
axes[1, 0].set_title("η(G): 1 below G⁻, 1 + χK at G = 1")
axes[1, 1].plot(np.asarray(fam.rho[0]), "o-", label=f"stored (η={float(fam.expansivity):.0f})")
axes[1, 1].plot(np.asarray(nov.rho[0]), "s-", label=f"novel (η={float(nov.expansivity):.2f})")
axes[1, 1].set_title("ρ over the K cells of CM 0")
axes[1, 1].legend()
fig.tight_layout()

# %% [markdown]
# ## 3. Similar inputs get similar codes (SISC)
# Perturb stored items so a fraction s of their active bits is kept, and code them in learning
# mode with `propose` (sampled codes, nothing written): the expected code overlap rises with s.

# %%
levels = np.linspace(0, 1, 6 if SMALL else 11)
overlaps, gs = [], []
for s in levels:
    keep = round(s * ACTIVE)
    probes = []
    for x in stored:
        p = x.copy()
        p[rng.choice(np.flatnonzero(x), ACTIVE - keep, replace=False)] = 0
        p[rng.choice(np.flatnonzero(x == 0), ACTIVE - keep, replace=False)] = 1
        probes.append(p)
    out = mac.propose(state, np.array(probes), key=jax.random.key(1))
    overlaps.append(float(code_overlap(out.code, learned.code).mean()))
    gs.append(float(out.familiarity.mean()))
plt.figure(figsize=(5, 3.5))
plt.plot(levels, overlaps, "o-", label="code overlap (of Q)")
plt.plot(levels, np.array(gs) * Q, "s--", label="G × Q")
plt.xlabel("input overlap s")
plt.legend()
print(dict(zip(np.round(levels, 2).tolist(), np.round(overlaps, 2).tolist())))

# %% [markdown]
# ## 4. Superposition: every stored item is recalled exactly from the same weights
# Recognition (max-V, random tie-break) of each stored item gives G = 1 and its own code.

# %%
found = mac.recognize(state, stored)
print(
    "G of stored items:",
    np.asarray(found.familiarity).min(),
    "codes recalled exactly:",
    int((found.code == learned.code).all(axis=1).sum()),
    "/",
    20,
)
print("fraction of weights set:", float(np.asarray(state.w_u).mean()))

# %% [markdown]
# ## 5. Sparsey as a memjax `Memory`
# `SparseyMemory` gives a mac the memory protocol (keys = binary input patterns, values = codes or
# labels), so the generic drivers run it: `write` is one learning frame of the CSA, `read` is
# recognition. With `num_labels=C` each code's cells are linked to the label's node, and a read
# returns, per label, the fraction of the code's Q winners linked to it: 1 for a stored item's
# label. `memjax.core.scan` splits `key=` into one key per token, as `SparseyMac.learn` does.

# %%
import jax.numpy as jnp

from memjax.core import scan
from memjax.memories.sparsey import SparseyMemory

memory = SparseyMemory(SparseyMac(n_inputs=N, Q=Q, K=K), num_labels=4)
items = patterns(8).astype(np.float32)
labels = jnp.eye(4)[np.arange(8) % 4]
params = memory.init_params(jax.random.key(0))
_, mstate = scan(
    memory, params, memory.init_state(params), items, labels, items, key=jax.random.key(1)
)
reads = jax.vmap(lambda x: memory.read(params, mstate, x))(items)
print("label read at each item's own label:", np.asarray(reads)[np.arange(8), np.arange(8) % 4])
print("recalled labels:", np.asarray(reads.argmax(-1)).tolist())

# %% [markdown]
# ## 6. MNIST
# A level of macs tiled over the image learns codes in one pass; a linear read-out on the codes
# classifies. Two settings matter (chosen on a validation split, see
# `experiments/sparsey/README.md`): a high familiarity floor and a late, steep sigmoid
# (G⁻ = 0.7, θ = 0.9, λ = 20) so that only near-copies reuse a code, and early freezing
# (saturation 0.15) so cells do not become promiscuous; recognition uses one shared tie-break
# order (the default) so the same patch always gets the same code. In the experiments the
# setting is the config value `experiments.sparsey.pipeline.MNIST`, and
# `experiments.sparsey.pipeline.run_pipeline` takes any binary image set.
# The full experiment is `python -m experiments.sparsey.mnist` (≈ 91% with 200 digits per
# class); here a small run.

# %%
from memjax.data import binarize, load_mnist, split_per_class
from memjax.memories.sparsey.hierarchy import SparseyLevel, tile_receptive_fields
from memjax.memories.sparsey.readout import linear_readout_fit, linear_readout_predict

X, y = load_mnist()
split = split_per_class(binarize(X), y, 20 if SMALL else 200, seed=0)
x_test, y_test = split.x_test[:: 10 if SMALL else 1], split.y_test[:: 10 if SMALL else 1]
level = SparseyLevel(
    SparseyMac(
        n_inputs=49, Q=8, K=16, gate_min=3, saturation=0.15, g_minus=0.7, inflection=0.9, slope=20.0
    ),
    tile_receptive_fields((28, 28), 7, 3),
)
lstate, learned = level.learn(level.init_state(), split.x_train, key=jax.random.key(0))
tr_codes = level.recognize(lstate, split.x_train).code
te_codes = level.recognize(lstate, x_test).code
readout = linear_readout_fit(tr_codes, split.y_train, K=16, num_classes=10)
acc = float((np.asarray(linear_readout_predict(readout, te_codes)) == y_test).mean())
print(
    f"{level.n_macs} macs, {len(split.y_train)} train, {len(y_test)} test: "
    f"accuracy {100 * acc:.1f}%"
)
# The honest flags: a frozen mac stops storing, and `stored` says which items each mac refused.
stored, active = np.asarray(learned.stored), np.asarray(learned.active)
print(
    f"frozen macs: {int(np.asarray(lstate.frozen).sum())} of {level.n_macs}; "
    f"a mac stored {stored.sum() / max(active.sum(), 1):.1%} of the items it was active for"
)
