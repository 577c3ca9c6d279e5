"""Pluggable steps, hooks, metrics from the state, model state and the compile message."""

from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memjax.train import (
    Checkpointer,
    Progress,
    TrainConfig,
    TrainState,
    load_pytree,
    make_supervised_step,
    read_jsonl,
    save_pytree,
    step_key,
    train,
)

W_TRUE = np.array([1.0, -2.0, 0.5, 0.0, 3.0, -1.0], np.float32)


def linear_batch(step, n=16):
    x = np.random.default_rng([7, step]).normal(size=(n, 6)).astype(np.float32)
    return {"x": x, "y": (x @ W_TRUE + 0.3).astype(np.float32)}


def init_linear(key):
    return {"w": jax.random.normal(key, (6,)) * 0.1, "b": jnp.zeros(())}


def mse(params, batch):
    return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


# ----------------------------------------------------------------------------- custom step

LR = 0.05


def sgd_step(state, batch):
    loss, grads = jax.value_and_grad(mse)(state.params, batch)
    params = jax.tree.map(lambda p, g: p - LR * g, state.params, grads)
    return state._replace(params=params), {"loss": loss}


def test_custom_step_is_hand_written_sgd(tmp_path):
    steps = 25
    result = train(
        TrainConfig(steps=steps, log_every=1, checkpoint_every=10),
        init_params=init_linear,
        step_fn=sgd_step,
        get_batch=linear_batch,
        out_dir=tmp_path,
        progress=False,
    )
    # the same SGD in NumPy (float64) from the same initial parameters
    init_key = jax.random.split(jax.random.key(0))[0]
    p0 = init_linear(init_key)
    w, b = np.asarray(p0["w"], np.float64), float(p0["b"])
    ref_losses = []
    for s in range(steps):
        batch = linear_batch(s)
        x, y = batch["x"].astype(np.float64), batch["y"].astype(np.float64)
        err = x @ w + b - y
        ref_losses.append(np.mean(err**2))
        w, b = w - LR * 2 * x.T @ err / len(y), b - LR * 2 * err.mean()
    losses = [r["loss"] for r in result.history]
    assert len(losses) == steps and result.step == steps
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5)
    np.testing.assert_allclose(result.params["w"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.params["b"], b, rtol=1e-5, atol=1e-6)
    assert result.opt_state is None and int(result.state.step) == steps
    assert losses[-1] < 0.1 * losses[0]


def test_custom_step_check_and_layout_errors(tmp_path):
    def checked_step(state, batch):
        new, metrics = sgd_step(state, batch)
        return new, {**metrics, "_ok": state.step != 3}  # the 4th update fails its check

    with pytest.raises(FloatingPointError, match=r"at step 4\b"):
        train(
            TrainConfig(steps=8, log_every=2, checkpoint_every=4),
            init_params=init_linear,
            step_fn=checked_step,
            get_batch=linear_batch,
            out_dir=tmp_path / "a",
            progress=False,
        )
    records = read_jsonl(tmp_path / "a" / "metrics.jsonl")
    assert [r["step"] for r in records] == [2] and set(records[0]) == {"step", "split", "loss"}

    def reshaping_step(state, batch):
        return state._replace(params={**state.params, "w": state.params["w"][:3]}), {}

    with pytest.raises(TypeError, match=r"\['w'\].*float32\[6\] to float32\[3\]"):
        train(
            TrainConfig(steps=2),
            init_params=init_linear,
            step_fn=reshaping_step,
            get_batch=linear_batch,
            out_dir=tmp_path / "b",
            progress=False,
        )
    with pytest.raises(TypeError, match="needs loss_fn"):
        train(
            TrainConfig(steps=2),
            init_params=init_linear,
            optimizer=optax.sgd(0.1),
            get_batch=linear_batch,
            out_dir=tmp_path / "c",
        )


# ----------------------------------------------------------------------------- hooks

MASK = np.array([1, 0, 1, 0, 1, 1], bool)
ADAM = optax.adam(0.1)


def loss_with_state(params, model_state, batch, key):
    return mse(params, batch), (None, model_state)  # the state is the hooks' business


def apply_mask(state):
    return state._replace(params={**state.params, "w": jnp.where(MASK, state.params["w"], 0.0)})


def count(state):
    ms = state.model_state
    return state._replace(model_state={"count": ms["count"] + 1, "seen_step": state.step})


def hook_metrics(state):
    return {
        "count": state.model_state["count"],
        "masked_abs": jnp.sum(jnp.abs(jnp.where(MASK, 0.0, state.params["w"]))),
    }


def counters(key):
    return {"count": jnp.int32(0), "seen_step": jnp.int32(-1)}


def test_hooks_keep_mask_and_count(tmp_path):
    kw = {
        "init_params": init_linear,
        "init_model_state": counters,
        "loss_fn": loss_with_state,
        "optimizer": ADAM,
        "get_batch": linear_batch,
        "progress": False,
        "metrics_fn": hook_metrics,
    }
    cfg = TrainConfig(steps=12, log_every=3, checkpoint_every=6)
    result = train(cfg, hooks=(apply_mask, count), out_dir=tmp_path / "hooks", **kw)
    w = np.asarray(result.params["w"])
    assert np.all(w[~MASK] == 0.0) and np.all(w[MASK] != 0.0)
    assert int(result.model_state["count"]) == 12
    assert int(result.model_state["seen_step"]) == 12  # hooks see the advanced step
    assert [r["count"] for r in result.history] == [3.0, 6.0, 9.0, 12.0]
    assert all(r["masked_abs"] == 0.0 for r in result.history)
    # Adam moves the masked weights without the mask hook, so the test is not vacuous
    free = train(cfg, hooks=(count,), out_dir=tmp_path / "free", **kw)
    assert np.all(np.asarray(free.params["w"])[~MASK] != 0.0)
    assert all(r["masked_abs"] > 0.0 for r in free.history)
    # the hooks' state is checkpointed and restored
    with Checkpointer(tmp_path / "hooks" / "checkpoints") as ckpt:
        back = ckpt.restore(
            like={
                "params": result.params,
                "opt_state": result.opt_state,
                "step": result.state.step,
                "key": result.state.key,
                "model_state": result.model_state,
            },
            step=6,
        )
    assert int(back["model_state"]["count"]) == 6 and int(back["step"]) == 6


# ----------------------------------------------------------------------------- model state

MOMENTUM, EPS = 0.9, 1e-5


def bn_loss(params, stats, batch, key):
    x = batch["x"]
    mean, var = jnp.mean(x, 0), jnp.var(x, 0)
    xn = (x - mean[None, :]) / jnp.sqrt(var[None, :] + EPS)
    loss = jnp.mean((xn @ params["w"] + params["b"] - batch["y"]) ** 2)
    new = {
        "mean": MOMENTUM * stats["mean"] + (1 - MOMENTUM) * mean,
        "var": MOMENTUM * stats["var"] + (1 - MOMENTUM) * var,
    }
    return loss, ({"batch_mean0": mean[0]}, new)


def bn_eval(params, stats):
    batch = linear_batch(10_000, n=64)
    xn = (batch["x"] - stats["mean"][None, :]) / jnp.sqrt(stats["var"][None, :] + EPS)
    return {"mse": jnp.mean((xn @ params["w"] + params["b"] - batch["y"]) ** 2)}


def init_stats(key):
    return {"mean": jnp.zeros(6), "var": jnp.ones(6)}


def reference_stats(steps):
    mean, var = np.zeros(6, np.float32), np.ones(6, np.float32)
    for s in range(steps):
        x = linear_batch(s)["x"]
        mean = MOMENTUM * mean + (1 - MOMENTUM) * x.mean(0)
        var = MOMENTUM * var + (1 - MOMENTUM) * x.var(0)
    return mean, var


BN_OPT = optax.adam(0.05)


def test_model_state_checkpointed_and_restored_exactly(tmp_path):
    cfg = TrainConfig(steps=10, log_every=2, eval_every=5, checkpoint_every=4)
    kw = {
        "init_params": init_linear,
        "init_model_state": init_stats,
        "loss_fn": bn_loss,
        "optimizer": BN_OPT,
        "eval_fn": bn_eval,
        "progress": False,
    }
    full = train(cfg, get_batch=linear_batch, out_dir=tmp_path / "full", **kw)
    mean, var = reference_stats(10)
    np.testing.assert_allclose(full.model_state["mean"], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full.model_state["var"], var, rtol=1e-5, atol=1e-6)
    assert full.history[0]["batch_mean0"] == pytest.approx(float(linear_batch(1)["x"][:, 0].mean()))
    final_eval = [r for r in full.history if r["split"] == "eval"][-1]
    assert final_eval["mse"] == pytest.approx(float(bn_eval(full.params, full.model_state)["mse"]))

    def crashing(step):
        if step == 6:
            raise RuntimeError("simulated preemption")
        return linear_batch(step)

    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="preemption"):
        train(cfg, get_batch=crashing, out_dir=out, **kw)
    with Checkpointer(out / "checkpoints") as ckpt:
        assert ckpt.all_steps() == [4]
        back = ckpt.restore(
            like={
                "params": full.params,
                "opt_state": full.opt_state,
                "step": full.state.step,
                "key": full.state.key,
                "model_state": full.model_state,
            }
        )
    mean4, var4 = reference_stats(4)
    np.testing.assert_allclose(back["model_state"]["mean"], mean4, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(back["model_state"]["var"], var4, rtol=1e-5, atol=1e-6)
    calls = []
    resumed = train(
        cfg, get_batch=lambda s: calls.append(s) or linear_batch(s), out_dir=out, resume=True, **kw
    )
    assert calls == list(range(4, 10))  # from the step-4 checkpoint
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(full.state), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    expected = (tmp_path / "full" / "metrics.jsonl").read_bytes()
    assert (out / "metrics.jsonl").read_bytes() == expected


def test_supervised_step_with_model_state_by_hand():
    step = make_supervised_step(bn_loss, optax.sgd(0.1), has_model_state=True)
    params = {"w": jnp.ones(6), "b": jnp.zeros(())}
    state = TrainState.create(
        params, optax.sgd(0.1), key=jax.random.key(0), model_state=init_stats(None)
    )
    batch = linear_batch(0)
    new, metrics = jax.jit(step)(state, batch)
    loss, grads = jax.jit(
        jax.value_and_grad(lambda p: bn_loss(p, state.model_state, batch, None)[0])
    )(params)
    np.testing.assert_allclose(new.params["w"], params["w"] - 0.1 * grads["w"], rtol=1e-6)
    assert float(metrics["loss"]) == pytest.approx(float(loss)) and bool(metrics["_finite"])
    mean, _ = reference_stats(1)
    np.testing.assert_allclose(new.model_state["mean"], mean, rtol=1e-5, atol=1e-7)
    assert step_key(state).dtype == state.key.dtype
    with pytest.raises(TypeError, match=r"\(loss, \(aux_metrics_dict, new_model_state\)\)"):
        make_supervised_step(lambda p, s, b, k: mse(p, b), optax.sgd(0.1), has_model_state=True)(
            state, batch
        )


def test_train_state_round_trips_through_orbax(tmp_path):
    params = {"w": jnp.arange(6.0), "b": jnp.zeros(())}
    state = TrainState.create(params, optax.adam(0.1), key=jax.random.key(3), step=7)
    save_pytree(tmp_path / "state", state)
    back = load_pytree(tmp_path / "state", like=state)
    assert isinstance(back, TrainState) and back.model_state is None
    assert isinstance(back.opt_state[0], optax.ScaleByAdamState)
    assert int(back.step) == 7 and back.step.dtype == jnp.int32
    np.testing.assert_array_equal(back.params["w"], np.arange(6.0))
    np.testing.assert_array_equal(
        jax.random.key_data(back.key), jax.random.key_data(jax.random.key(3))
    )


# ----------------------------------------------------------------------------- compile message


def test_compiling_message_and_rate_without_compile(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CI", "1")
    train(
        TrainConfig(steps=4, log_every=2, checkpoint_every=4),
        init_params=init_linear,
        loss_fn=lambda p, b, k: mse(p, b),
        optimizer=optax.sgd(0.01),
        get_batch=linear_batch,
        out_dir=tmp_path,
        run_info={"experiment": "demo"},
    )
    lines = capsys.readouterr().err.splitlines()
    compiling = next(i for i, line in enumerate(lines) if "compiling the train step" in line)
    compiled = next(i for i, line in enumerate(lines) if "compiled in" in line)
    first_step = next(i for i, line in enumerate(lines) if line.startswith("[demo] step 2/4"))
    assert compiling < compiled < first_step
    assert float(lines[compiled].split("compiled in ")[1].split(" s")[0]) >= 0.0

    clock = iter([0.0, 0.0, 100.0, 101.0])  # start; paused for 100 s; then 2 steps in 1 s
    monkeypatch.setattr("memjax.train.progress.time.perf_counter", lambda: next(clock))
    stream = io.StringIO()
    bar = Progress(2, enabled=False, stream=stream, desc="fake")
    with bar.paused():
        pass
    bar.update(2, {"loss": 0.5})
    assert stream.getvalue().strip() == "[fake] step 2/2  loss 0.5  2 it/s"
