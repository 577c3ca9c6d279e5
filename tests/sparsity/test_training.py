"""Proximal training: the optax transforms against NumPy loops (inside optax.chain with a
schedule, masked to kernels), ProxSGD and HSPG's half-space step against NumPy, the k-level
tools (top-k ties, λ for k, k schedule), and a fine-tune phase resumed in its middle."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memjax.nn import ChannelAxes
from memjax.sparsity import (
    count_nonzero_groups,
    half_space,
    keep_zero_groups,
    lam_for_k,
    linear_k_schedule,
    project_top_k,
    prox_sgd,
    prox_wgsef_linear_time,
    prox_wgsef_tree,
    top_k_masks,
    top_k_transition,
    tree_groups,
    wgsef_proximal,
)
from memjax.train import Phase, TrainConfig, train

DENSE = {"kernel": ChannelAxes(out=1, in_=0), "bias": ChannelAxes(out=0)}
KERNEL_ONLY = {"kernel": ChannelAxes(out=1, in_=0)}


def make_params(seed=0, d_in=3, d_out=6):
    rng = np.random.default_rng(seed)
    return {
        "fc": {
            "kernel": jnp.asarray(rng.normal(size=(d_in, d_out)), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=d_out), jnp.float32),
        }
    }


def column_prox(w, k, lam, weights=None):
    """NumPy reference: the WGSEF prox with the columns of ``w`` as groups."""
    ids = np.broadcast_to(np.arange(w.shape[1]), w.shape)
    return prox_wgsef_linear_time(np.asarray(w, np.float64), ids, w.shape[1], k, lam, weights)


def test_proximal_transform_in_chain_with_schedule_masked_to_kernels():
    params = make_params()
    target = make_params(1)
    groups = tree_groups(params, {"fc": KERNEL_ONLY})
    lr = optax.linear_schedule(0.4, 0.1, 3)
    mask = {"fc": {"kernel": True, "bias": False}}
    tx = optax.chain(
        optax.sgd(lr), optax.masked(wgsef_proximal(groups, 2, 1.5, learning_rate=lr), mask)
    )
    grad = lambda p: jax.tree_util.tree_map(lambda a, b: a - b, p, target)  # ½‖p − target‖²

    @jax.jit
    def step(p, s):
        u, s = tx.update(grad(p), s, p)
        return optax.apply_updates(p, u), s

    p, s = params, tx.init(params)
    w, b = (np.asarray(params["fc"][n], np.float64) for n in ("kernel", "bias"))
    tw, tb = (np.asarray(target["fc"][n], np.float64) for n in ("kernel", "bias"))
    for t in range(4):
        p, s = step(p, s)
        a = float(lr(t))
        w = column_prox(w - a * (w - tw), 2, a * 1.5)
        b = b - a * (b - tb)  # the bias is masked out: plain SGD
        np.testing.assert_allclose(p["fc"]["kernel"], w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(p["fc"]["bias"], b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"^params:"):
        wgsef_proximal(groups, 2, 1.5, 0.1).update(params, tx.init(params)[1])


def test_k_schedule_inside_the_transform_lowers_the_survivors():
    params = make_params(2, 4, 10)
    groups = tree_groups(params, {"fc": DENSE})
    sched = linear_k_schedule(10, 3, 4)
    assert [int(sched(t)) for t in range(6)] == [10, 9, 7, 5, 3, 3]
    tx = wgsef_proximal(groups, sched, 50.0, learning_rate=1.0)
    state = tx.init(params)
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    counts = []
    for _ in range(5):
        u, state = tx.update(zero, state, params)
        params = optax.apply_updates(params, u)
        counts.append(int(count_nonzero_groups(params, groups)))
    assert counts[0] == 10 and counts[-1] == 3 and counts == sorted(counts, reverse=True)


def numpy_prox_sgd(x, grads, k, lam, steps):
    """ProxSGD (Yang et al. 2020, Algorithm 1) in float64 with one metric per column group."""
    eps, eps_decay, rho, rho_decay, beta, gamma, delta = 0.06, 0.5, 0.9, 0.5, 0.999, 4.0, 1e-8
    v, s = np.zeros_like(x), np.zeros_like(x)
    for t in range(steps):
        g = grads(x)
        rho_t, eps_t = rho / (t + gamma) ** rho_decay, eps / (t + gamma) ** eps_decay
        v = (1 - rho_t) * v + rho_t * g
        s = beta * s + (1 - beta) * g * g
        tau = np.sqrt(s / (1 - beta ** (t + 1))) + delta
        y = x - v / tau
        tau_bar = tau.mean(axis=0)  # one metric per group (column)
        w = column_prox(np.sqrt(tau_bar) * y, k, lam, 1.0 / tau_bar) / np.sqrt(tau_bar)
        x = x + eps_t * (w - x)
    return x


def test_prox_sgd_equals_numpy():
    params = {"fc": {"kernel": make_params(3, 4, 5)["fc"]["kernel"]}}
    target = np.asarray(make_params(4, 4, 5)["fc"]["kernel"], np.float64)
    groups = tree_groups(params, {"fc": KERNEL_ONLY})
    tx = prox_sgd(groups, k=2, lam=0.3)

    @jax.jit
    def step(p, s):
        g = jax.tree_util.tree_map(lambda a: a - target.astype(np.float32), p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    p, s = params, tx.init(params)
    for _ in range(5):
        p, s = step(p, s)
    x0 = np.asarray(params["fc"]["kernel"], np.float64)
    ref = numpy_prox_sgd(x0, lambda x: x - target, 2, 0.3, 5)
    np.testing.assert_allclose(p["fc"]["kernel"], ref, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"^penalty:"):
        prox_sgd(groups, 2, 0.3, penalty="l1")
    with pytest.raises(ValueError, match=r"^k:"):
        prox_sgd(groups, lam=0.3)


def test_half_space_step_equals_numpy():
    params = make_params(5, 3, 6)
    w = np.asarray(params["fc"]["kernel"], np.float64)
    w[:, 1] = 0.0  # a zero group stays zero
    params = {"fc": {**params["fc"], "kernel": jnp.asarray(w, jnp.float32)}}
    groups = tree_groups(params, {"fc": KERNEL_ONLY})
    rng = np.random.default_rng(6)
    g = rng.normal(size=w.shape) * 2.0
    lr, lam, eps = 0.3, 0.5, 0.2
    tx = optax.chain(optax.sgd(lr), half_space(groups, lr, lam=lam, epsilon=eps))
    grads = {"fc": {"kernel": jnp.asarray(g, jnp.float32), "bias": jnp.zeros(6)}}
    u, _ = tx.update(grads, tx.init(params), params)
    got = optax.apply_updates(params, u)["fc"]["kernel"]
    norms = np.linalg.norm(w, axis=0)
    alive = norms > 0
    trial = w - lr * g - lr * lam * np.where(alive, w / np.where(alive, norms, 1), 0)
    keep = alive & ((trial * w).sum(axis=0) >= eps * norms**2)
    ref = np.where(keep, trial, 0.0)
    assert 0 < keep.sum() < 6  # the case projects some groups and keeps others
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_top_k_ties_by_index_and_projection():
    w = np.array([[1.0, 2.0, 2.0, 0.5, 2.0]])
    params = {"fc": {"kernel": jnp.asarray(w, jnp.float32)}}
    groups = tree_groups(params, {"fc": KERNEL_ONLY})
    assert top_k_masks(params, groups, 2).tolist() == [False, True, True, False, False]
    out, mask = project_top_k(params, groups, 4)
    assert mask.tolist() == [True, True, True, False, True]
    np.testing.assert_array_equal(out["fc"]["kernel"], w * mask)
    with pytest.raises(ValueError, match=r"^k:.*tie"):
        lam_for_k(params, groups, 2)  # 2.0, 2.0, 2.0 at places 2-3: no λ separates them


@pytest.mark.parametrize("weighted", [False, True])
def test_lam_for_k_leaves_exactly_k_after_one_step(weighted):
    rng = np.random.default_rng(7)
    params = {"fc": {"kernel": jnp.asarray(rng.normal(size=(3, 12)), jnp.float32)}}
    groups = tree_groups(params, {"fc": KERNEL_ONLY})
    d = rng.uniform(0.5, 2.0, 12) if weighted else None
    step = 0.5
    for k in (1, 4, 11):
        lam = lam_for_k(params, groups, k, d, step=step)
        assert (
            int(count_nonzero_groups(prox_wgsef_tree(params, step, groups, k, lam, d), groups)) == k
        )
        below = lam / 1.001 * 0.99  # 1 % under λ*: more than k survive
        n_below = count_nonzero_groups(prox_wgsef_tree(params, step, groups, k, below, d), groups)
        assert int(n_below) > k
    if not weighted:  # the closed form z_(k+1) / (z_(k) − z_(k+1)) for uniform weights
        z = np.sort(np.linalg.norm(np.asarray(params["fc"]["kernel"], np.float64), axis=0))[::-1]
        want = 1.001 * z[4] / (z[3] - z[4]) / step
        np.testing.assert_allclose(lam_for_k(params, groups, 4, step=step), want, rtol=1e-5)


def test_lam_for_k_errors():
    params = {"fc": {"kernel": jnp.asarray([[1.0, 0.0, 2.0]])}}
    groups = tree_groups(params, {"fc": KERNEL_ONLY})
    with pytest.raises(ValueError, match=r"^k:.*only 2"):
        lam_for_k(params, groups, 3)
    with pytest.raises(ValueError, match=r"^step:"):
        lam_for_k(params, groups, 1, step=0.0)
    assert lam_for_k(params, groups, 2) == 0.0


def loss_fn(params, batch, key):
    pred = batch["x"] @ params["fc"]["kernel"] + params["fc"]["bias"][None]
    return jnp.mean((pred - batch["y"]) ** 2)


def get_batch(step):
    rng = np.random.default_rng([11, step])
    x = rng.normal(size=(16, 3)).astype(np.float32)
    return {"x": x, "y": (x @ np.ones((3, 6))).astype(np.float32)}


GROUPS = tree_groups(make_params(), {"fc": DENSE})


def run_phases(out_dir, batches=get_batch, **kwargs):
    lr = 0.05
    sparse = optax.chain(optax.sgd(lr), wgsef_proximal(GROUPS, 2, 2.0, learning_rate=lr))
    finetune = optax.chain(optax.sgd(lr, momentum=0.9), keep_zero_groups(GROUPS))
    return train(
        TrainConfig(seed=0, steps=8, log_every=1, eval_every=0, checkpoint_every=2, max_to_keep=5),
        init_params=lambda key: make_params(),
        get_batch=batches,
        out_dir=out_dir,
        loss_fn=loss_fn,
        progress=False,
        metrics_fn=lambda s: {"nonzero_groups": count_nonzero_groups(s.params, GROUPS)},
        phases=[
            Phase("sparse", 4, optimizer=sparse),
            Phase("finetune", 4, transition=top_k_transition(GROUPS, 2), optimizer=finetune),
        ],
        **kwargs,
    )


def test_finetune_phase_keeps_exactly_k_and_resumes_mid_phase(tmp_path):
    full = run_phases(tmp_path / "full")
    tuned = [r for r in full.history if r.get("phase") == "finetune" and r["split"] == "train"]
    assert [r["nonzero_groups"] for r in tuned] == [2, 2, 2, 2]  # logged every step
    sparse = [r["nonzero_groups"] for r in full.history if r.get("phase") == "sparse"]
    assert len(sparse) == 4 and all(n >= 2 for n in sparse)

    def crashing(step):
        if step == 7:  # "finetune" checkpoints at step 6
            raise RuntimeError("simulated preemption")
        return get_batch(step)

    with pytest.raises(RuntimeError, match="preemption"):
        run_phases(tmp_path / "crash", batches=crashing)
    resumed = run_phases(tmp_path / "crash", resume=True)
    for a, b in zip(
        jax.tree_util.tree_leaves(resumed.params),
        jax.tree_util.tree_leaves(full.params),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert resumed.history == full.history
