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
# # Beta-Rank: filter scores, coupled channel groups, and pruning that really shrinks the network
#
# Beta-Rank (Homayounfar et al. 2023, arXiv 2304.07461) ranks conv filters by
# `mean|W_k| · β_k`, with β a ratio of activation spreads measured on calibration images. This
# tutorial scores a small CIFAR-style ResNet trained on procedural "lesion" images (imbalanced,
# three classes), shows the two readings of the score (`mode="paper"` and the released code's
# `mode="code_compat"`), draws the coupled channel groups that tracing finds in a ResNet, and
# removes channels for real: smaller arrays, a new spec, lower measured latency.
# Code: `memjax.pruning`, `memjax.models.cnn`, `memjax.data.lesion_split`.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from memjax import pruning
from memjax.data import LESION_CLASSES, lesion_split
from memjax.models.cnn import ResNet
from memjax.train import enable_compilation_cache

enable_compilation_cache()  # compiled steps persist across runs ($MEMJAX_CACHE_DIR; 'off')

SMALL = os.environ.get("MEMJAX_SMALL", "0") not in ("", "0")  # MEMJAX_SMALL=0 means full size
SIZE = 16
STEPS = 0 if SMALL else 400  # small mode (the test suite) skips training: untrained weights
CALIB = 128 if SMALL else 512
split = lesion_split((60, 40, 200) if SMALL else (190, 130, 690), (20, 13, 69), size=SIZE, seed=0)
print(
    "train counts:",
    np.bincount(split.y_train).tolist(),
    "test:",
    np.bincount(split.y_test).tolist(),
)

fig, axes = plt.subplots(3, 6, figsize=(7, 3.8))
for c, row in enumerate(axes):
    for ax, i in zip(row, np.flatnonzero(split.y_train == c)[:6]):
        ax.imshow(split.x_train[i])
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(LESION_CLASSES[c], rotation=0, ha="right", va="center")
fig.suptitle("procedural lesions (seeded): nevus, melanoma (minority), keratosis")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 1. A small ResNet, trained briefly
# `ResNet` has option-A (zero-padding) shortcuts, as the paper's code. Plain SGD with momentum.

# %%
net = ResNet(blocks_per_stage=1 if SMALL else 2, widths=(8, 16, 32), num_classes=3)
params, state = jax.jit(net.init_params)(jax.random.key(0)), net.init_state()
opt = optax.sgd(0.05, momentum=0.9)
opt_state = opt.init(params)


@jax.jit
def step(params, state, opt_state, x, y):
    def loss(p):
        logits, new_state = net.apply(p, state, x, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_state

    (value, state), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), state, opt_state, value


rng = np.random.default_rng(0)
for _ in range(STEPS):
    idx = rng.integers(0, len(split.y_train), 64)
    params, state, opt_state, value = step(
        params, state, opt_state, split.x_train[idx], split.y_train[idx]
    )
forward = jax.jit(lambda p, s, x: net.apply(p, s, x, train=False)[0])
pred = np.asarray(forward(params, state, split.x_test)).argmax(1)
recall = [float((pred[split.y_test == c] == c).mean()) for c in range(3)]
print("test recall per class:", [round(r, 2) for r in recall])

# %% [markdown]
# ## 2. The score and its two readings
# `score_layers` taps each conv's input and raw output (`"<layer>:in"`, `":out"`) over a
# calibration batch. `mode="paper"` is the formula as written: β = σ_in/σ_out, σ_in over the
# true receptive field with padding. `mode="code_compat"` is what the released code computes:
# σ_out/σ_in over a mis-sliced window (the row window slices the *channel* axis), skipping empty
# slices — for a first conv with C_in = 3 only output rows 0–2 count. The two readings rank
# filters differently.

# %%
calib = jnp.asarray(split.x_train[:CALIB])
fn = lambda p, x: net.apply(p, state, x, train=False)[0]
layers = [layer for layer in net.conv_layers() if layer[0] != "fc"]
paper = pruning.score_layers("beta_rank", fn, params, calib, layers, min_batch=CALIB)
code = pruning.score_layers("beta_rank", fn, params, calib, layers, mode="code_compat")
l1 = pruning.score_layers("l1", fn, params, calib, layers)

name = "params/blocks/0/conv1/kernel"
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
axes[0].scatter(paper[name], code[name], c="tab:blue", marker="o", label="blocks/0/conv1")
axes[0].scatter(
    paper["params/stem/kernel"], code["params/stem/kernel"], c="tab:red", marker="^", label="stem"
)
axes[0].set_xlabel("paper score (σ_in/σ_out)")
axes[0].set_ylabel("code_compat score (σ_out/σ_in)")
axes[0].legend(loc="best", fontsize=8)
ranks = [np.argsort(np.argsort(-np.asarray(s[name]))) for s in (paper, code, l1)]
axes[1].plot(ranks[0], "o-", c="tab:blue", label="paper")
axes[1].plot(ranks[1], "s--", c="tab:orange", label="code_compat")
axes[1].plot(ranks[2], "^:", c="tab:green", label="L1")
axes[1].set_xlabel("filter of blocks/0/conv1")
axes[1].set_ylabel("rank (0 = kept first)")
axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Coupled channel groups, found by tracing
# `trace_groups` follows the channel axis through the jaxpr of the pure apply function. A
# block's `conv1` output is a group of its own (conv1 filters, bn1, conv2's input slice). The
# residual stream is one big group: with option-A shortcuts, stem channel *c* is summed into
# stage-2 channel *c + lo* and on into stage 3, so the stem, every `conv2`, every `bn2` and the
# `fc` rows move together. The picture shows which units (columns) each array (rows) of the
# stream group touches.

# %%
apply3 = lambda p, s, x: net.apply(p, s, x, train=False)[0]
groups = pruning.trace_groups(apply3, params, calib[:1], model_state=state)
for g in groups:
    print(f"{g.name:32s} size {g.size:3d} prunable {g.prunable}  members {len(g.members)}")
stream = max(groups, key=lambda g: g.size if g.prunable else -1)
rows = sorted(
    (m for m in stream.members if m.role in ("out", "in")), key=lambda m: "stem" not in m.name
)
grid = np.zeros((len(rows), stream.size))
for i, m in enumerate(rows):
    grid[i, m.units] = 1 if m.role == "out" else 0.5
fig, ax = plt.subplots(figsize=(8, 0.25 * len(rows) + 1.2))
ax.imshow(grid, aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
ax.set_yticks(range(len(rows)))
ax.set_yticklabels([f"{m.name.removeprefix('params/')} [{m.role}]" for m in rows], fontsize=7)
ax.set_xlabel(f"unit of the residual-stream group ({stream.size} units)")
ax.set_title("dark: produces the unit (filters); light: reads it (input slice)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Surgery: masks → smaller arrays → a new network
# Group scores aggregate the member layers' scores (mean by default). Keep `floor(C·(1 − c))`
# units per group (ties by index), then `materialize` drops every member slice — BatchNorm
# running statistics included — and asks the spec for its pruned version. The masked network
# (pruned slices zeroed) and the materialised one give the same logits.

# %%
table = pruning.group_scores(paper, groups)
masks = pruning.masks_from_scores(table, groups, ratio=0.5)
small, p_small, s_small = pruning.materialize(net, params, groups, masks, model_state=state)
masked = pruning.apply_masks(params, groups, masks)
x = jnp.asarray(split.x_test)
small_forward = jax.jit(lambda p, s, x: small.apply(p, s, x, train=False)[0])
same = jnp.allclose(forward(masked, state, x), small_forward(p_small, s_small, x), atol=1e-4)
print("widths:", small.stem_width, small.block_widths, small.mid_widths)
print("params:", pruning.count_params(params), "->", pruning.count_params(p_small))
print("masked logits == materialised logits:", bool(same))

# %% [markdown]
# ## 5. The cost a user pays: FLOPs from XLA, measured latency
# FLOPs come from XLA's cost analysis of the compiled forward; latency is the median of
# interleaved runs at batch 64 (this machine, shared: read the ratio, not the absolute time).

# %%
xb = jnp.asarray(np.random.default_rng(1).normal(size=(64, SIZE, SIZE, 3)), jnp.float32)
dense_fn = lambda p, x: net.apply(p, state, x, train=False)[0]
small_fn = lambda p, x: small.apply(p, s_small, x, train=False)[0]
flops = [pruning.xla_flops(dense_fn, params, xb[:1]), pruning.xla_flops(small_fn, p_small, xb[:1])]
lat = pruning.measure_latencies(
    {"dense": (dense_fn, (params, xb)), "pruned": (small_fn, (p_small, xb))},
    repeats=3 if SMALL else 30,
)
ms = [lat["dense"].median_s * 1e3, lat["pruned"].median_s * 1e3]
print(
    f"FLOPs {flops[0] / 1e6:.1f}M -> {flops[1] / 1e6:.1f}M; latency {ms[0]:.1f} -> {ms[1]:.1f} ms"
)
fig, ax = plt.subplots(figsize=(6, 3))
pos = np.arange(2)
ax.bar(pos - 0.2, [1, flops[1] / flops[0]], 0.4, color="tab:blue", label="FLOPs (XLA)")
ax.bar(
    pos + 0.2, [1, ms[1] / ms[0]], 0.4, color="tab:orange", hatch="//", label="latency, batch 64"
)
ax.set_xticks(pos, ["dense", "pruned (ratio 0.5)"])
ax.set_ylabel("fraction of dense")
ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
plt.tight_layout()
plt.show()

# %% [markdown]
# Masks alone would have left both bars at 1. On small CPU networks latency falls by less than
# the FLOPs (memory traffic and per-op overhead do not shrink with channel counts); see
# `experiments/benchmarks/pruning.md` for ResNet-56 over ratios 0–0.8, and
# `experiments/beta_rank/README.md` for accuracy and minority recall after fine-tuning.
