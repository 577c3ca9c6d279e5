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
# # WGSEF: k-level structured sparsity with the weighted group sparse envelope
#
# Refael, Arbel & Huleihel (arXiv 2212.12921) regularise a network with the **weighted group
# sparse envelope** (WGSEF): the convex envelope of "½·weighted squared norm + at most k non-zero
# groups". Trained by proximal gradient it drives whole groups (filters, channels, …) to exactly
# zero, aiming at a pre-set number k of surviving groups. No authors' code is public; memjax is
# the first public implementation, and the weighted formulas are reconstructed from the SEF
# theory (Beck & Refael 2022) and checked numerically. Code: `memjax.sparsity`.

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from memjax import pruning
from memjax.models.cnn import LeNet5
from memjax.sparsity import (
    count_nonzero_groups,
    keep_zero_groups,
    lam_for_k,
    layer_masks,
    nonzero_groups_per_layer,
    prox_sgd,
    prox_to_k,
    prox_wgsef,
    sef_value,
    top_k_masks,
    tree_groups,
)
from memjax.train import enable_compilation_cache

enable_compilation_cache()  # compiled steps persist across runs ($MEMJAX_CACHE_DIR; 'off')

SMALL = os.environ.get("MEMJAX_SMALL", "0") not in ("", "0")  # MEMJAX_SMALL=0 means full size

# %% [markdown]
# ## 1. The SEF sits between ½‖x‖₁² and ½‖x‖²
# `S_k` is the largest convex function below ½‖x‖² + δ(‖x‖₀ ≤ k). For k = 1 it is ½‖x‖₁², for
# k = n it is ½‖x‖² (Beck & Refael 2022); in between it grows monotonically as k falls. Its unit
# ball {S_k ≤ ½} in R³, sliced at x₃ = 0.3, goes from the ℓ1 ball (k = 1) to the ℓ2 ball (k = 3).

# %%
x = np.random.default_rng(0).normal(size=8)
values = [float(sef_value(jnp.asarray(x), k)) for k in range(1, 9)]
print("½‖x‖₁² =", round(0.5 * np.abs(x).sum() ** 2, 3), " ½‖x‖² =", round(0.5 * (x**2).sum(), 3))
print("S_k(x), k = 1..8:", np.round(values, 3))

grid = np.linspace(-1.1, 1.1, 121 if SMALL else 241)
X1, X2 = np.meshgrid(grid, grid)
pts = jnp.asarray(np.stack([X1.ravel(), X2.ravel(), np.full(X1.size, 0.3)], 1))
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
colors = {1: "tab:red", 2: "tab:green", 3: "tab:blue"}
for k, color in colors.items():
    s = jax.vmap(lambda p, k=k: sef_value(p, k))(pts).reshape(X1.shape)
    axes[0].contour(X1, X2, s, levels=[0.5], colors=[color])
    axes[0].plot([], [], color=color, label=f"k = {k}")
axes[0].set(title="unit balls {S_k ≤ ½} at x₃ = 0.3", xlabel="x₁", ylabel="x₂", aspect="equal")
axes[0].legend(loc="upper right", fontsize=8)
axes[1].plot(range(1, 9), values, "o-", color="tab:purple", label="S_k(x)")
axes[1].axhline(0.5 * np.abs(x).sum() ** 2, color="tab:red", ls="--", label="½‖x‖₁²")
axes[1].axhline(0.5 * (x**2).sum(), color="tab:blue", ls=":", label="½‖x‖²")
axes[1].set(title="S_k of one vector in R⁸", xlabel="k", ylabel="value")
axes[1].legend(loc="upper right", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The prox and its exact zeros
# `prox_wgsef(x, ids, m, k, λ)` = argmin_w λ·WGSEF(w) + ½‖w − x‖². Every group is scaled by
# u_j/(u_j + λ d_j) with u_j = clip(t·√(λ d_j)‖x_j‖ − λ d_j, 0, 1), Σ u_j = k: a group with
# u_j = 0 is **exactly** zero. Ten singleton groups x_j = 1/j, k = 3:

# %%
x = jnp.asarray(1.0 / np.arange(1, 11))
lams = np.logspace(-2, 2, 25 if SMALL else 61)
paths = np.stack([np.asarray(prox_wgsef(x, jnp.arange(10), 10, 3, lam)) for lam in lams])
counts = (paths != 0).sum(1)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
cmap = plt.get_cmap("viridis")
for j in range(10):
    axes[0].semilogx(
        lams, paths[:, j], color=cmap(j / 9), label=f"x_{j + 1}" if j in (0, 9) else None
    )
axes[0].set(title="prox of λ·S_3: the entries", xlabel="λ", ylabel="w_j")
axes[0].legend(loc="upper right", fontsize=8)
axes[1].semilogx(lams, counts, "s-", color="tab:orange")
axes[1].axhline(3, color="gray", ls="--", label="k = 3")
axes[1].set(title="non-zero groups after one prox", xlabel="λ", ylabel="count")
axes[1].legend(loc="upper right", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. One step is not k-level
# Σ u_j = k with u_j ≤ 1 needs at least k positive u_j: one prox step leaves **at least** k
# groups, never fewer (the cell below prints 10, 5, 3, 3 groups at λ = 0.1, 1, 10, 100). Group
# lasso has no such floor — it can remove too many.

# %%
for lam in (0.1, 1.0, 10.0, 100.0):
    w = prox_wgsef(x, jnp.arange(10), 10, 3, lam)
    print(f"λ = {lam:6}: {int((w != 0).sum())} non-zero groups")

# %% [markdown]
# ## 4. λ for k
# How should λ be chosen to reach k (a question the paper's ICLR 2024 reviewers asked)? Exactly
# k survive one step iff the survivors saturate (u_j = 1) and the rest switch off, which gives a
# closed form:
# λ* = max_{j∈S, i∉S} z_i/(d_i z_j − d_j z_i) over the top-k set S (uniform weights:
# z_(k+1)/(z_(k) − z_(k+1))). `lam_for_k` returns it (plus a small margin); `prox_to_k` takes
# that step.

# %%
params = {"w": x[None, :]}
from memjax.nn import ChannelAxes

groups = tree_groups(params, {"": {"w": ChannelAxes(out=1, in_=0)}})
for k in (1, 3, 7):
    lam = lam_for_k(params, groups, k)
    step, _ = prox_to_k(params, groups, k)
    print(f"k = {k}: λ = {lam:.4f} -> {int(count_nonzero_groups(step, groups))} groups")

# %% [markdown]
# ## 5. Train a small CNN to k filters and shrink it
# LeNet-5 on scikit-learn's digits (8×8, upsampled to 16×16), filter groups of `conv1` and
# `conv2` (bias coupled). ProxSGD with λ·WGSEF, one `prox_to_k` step to exactly k filters per
# layer, fine-tuning with `keep_zero_groups`, then `memjax.pruning.materialize` removes the zero
# filters for real. The masked and the shrunk network give the same logits.

# %%
from sklearn.datasets import load_digits

digits = load_digits()
images = np.kron(digits.images / 16.0, np.ones((2, 2)))[..., None].astype(np.float32)
labels = digits.target.astype(np.int32)
x_tr, y_tr, x_te, y_te = images[:1400], labels[:1400], images[1400:], labels[1400:]
net = LeNet5(image_size=16, channels=(6, 12), hidden=(32, 16))
params = net.init_params(jax.random.key(0))
layers = {n: spec for n, _, spec in net.conv_layers() if n.startswith("conv")}
groups = tree_groups(params, layers, "filter")
k = {"conv1": 3, "conv2": 4}


def loss_fn(p, xb, yb):
    logits = net.apply(p, {}, xb)[0]
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()


def fit(p, tx, steps, seed):
    @jax.jit
    def step(p, s, xb, yb):
        u, s = tx.update(jax.grad(loss_fn)(p, xb, yb), s, p)
        return optax.apply_updates(p, u), s

    s = tx.init(p)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.integers(0, len(y_tr), 64)
        p, s = step(p, s, x_tr[idx], y_tr[idx])
    return p


def accuracy(net, p):
    return float(np.mean(np.argmax(net.apply(p, {}, x_te)[0], -1) == y_te))


sparse_steps, tune_steps = (60, 30) if SMALL else (800, 300)
params = fit(params, prox_sgd(groups, k, lam=0.05), sparse_steps, 0)
print("after ProxSGD:", {n: int(c) for n, c in nonzero_groups_per_layer(params, groups).items()})
params, lam = prox_to_k(params, groups, k)
print("after prox_to_k:", {n: int(c) for n, c in nonzero_groups_per_layer(params, groups).items()})
params = fit(
    params, optax.chain(optax.sgd(0.05, momentum=0.9), keep_zero_groups(groups)), tune_steps, 1
)
print(
    "after fine-tuning:", {n: int(c) for n, c in nonzero_groups_per_layer(params, groups).items()}
)

fn = lambda p, xb: net.apply(p, {}, xb)[0]
traced = pruning.trace_groups(fn, params, x_te[:2])
per_layer = layer_masks(groups, top_k_masks(params, groups, k))
masks = [per_layer.get(g.name[7:-7], np.ones(g.size, bool)) for g in traced]  # "params/…/kernel"
small, small_params, _ = pruning.materialize(net, params, traced, masks)
diff = float(jnp.max(jnp.abs(small.apply(small_params, {}, x_te)[0] - fn(params, x_te))))
print(f"shrunk spec: channels {small.channels}; max |masked − shrunk| logits = {diff:.2e}")
print(
    f"params {pruning.count_params(params)} -> {pruning.count_params(small_params)}; "
    f"test accuracy {accuracy(net, params):.3f} (masked) = {accuracy(small, small_params):.3f}"
)

# %%
big, little = jax.jit(fn), jax.jit(lambda p, xb: small.apply(p, {}, xb)[0])
times = {"dense-shaped (masked)": [], "shrunk": []}
jax.block_until_ready((big(params, x_te), little(small_params, x_te)))
for _ in range(5 if SMALL else 50):
    for name, f, p in (("dense-shaped (masked)", big, params), ("shrunk", little, small_params)):
        t0 = time.perf_counter()
        jax.block_until_ready(f(p, x_te))
        times[name].append(time.perf_counter() - t0)
fig, ax = plt.subplots(figsize=(5, 3))
names = list(times)
ax.bar(names, [1e3 * min(times[n]) for n in names], color=["tab:gray", "tab:green"])
ax.set(ylabel="ms (fastest call)", title=f"CPU forward of {len(y_te)} digits")
plt.tight_layout()
plt.show()
