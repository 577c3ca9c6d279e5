"""The jax.export cache of the train step: a step (and an initial state) read back from the
cache trains bit-for-bit like the traced one (Flax NNX state, optax state, typed PRNG key,
model state), a changed config, captured value or source misses, and an unreadable file falls
back to tracing."""

from __future__ import annotations

import contextlib
import io
import json
import threading

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from memjax.train import (
    TrainConfig,
    disable_compilation_cache,
    export_cache as ec,
    export_cache_dir,
    parse_args,
    train,
)

GRAPHDEF = nnx.graphdef(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
CONFIG = TrainConfig(steps=4, log_every=2, checkpoint_every=4)


def init(key):
    return nnx.state(nnx.Linear(3, 2, rngs=nnx.Rngs(params=key)))


def get_batch(step):
    x = np.random.default_rng(step).normal(size=(8, 3)).astype(np.float32)
    return {"x": x, "y": np.stack([x.sum(1), x[:, 0] - x[:, 2]], 1)}


def loss_fn(params, model_state, batch, key):
    noise = 1e-3 * jax.random.normal(key, batch["y"].shape)  # uses the per-step key
    pred = nnx.merge(GRAPHDEF, params)(batch["x"])
    loss = jnp.mean((pred - batch["y"] + noise) ** 2)
    return loss, ({"mae": jnp.mean(jnp.abs(pred - batch["y"]))}, model_state + 1)


def count(state):  # a hook: runs inside the exported step too
    return state._replace(model_state=state.model_state + 10)


def run(tmp_path, name, folder, *, lr=0.05, config=CONFIG, memo=True):
    if not memo:
        ec._MEMO.clear()  # as in a new process: read the file back
    return train(
        config,
        init_params=init,
        init_model_state=lambda key: jnp.int32(0),
        loss_fn=loss_fn,
        optimizer=optax.adam(lr),
        hooks=(count,),
        get_batch=get_batch,
        out_dir=tmp_path / name,
        progress=False,
        run_info={"experiment": "export-test", "variant": name[:1]},
        export_cache=folder,
    )


def leaves(result):
    return [np.asarray(x) for x in jax.tree.leaves((result.params, result.opt_state))]


def files(folder):
    return sorted(folder.glob("*.jaxexport"))


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    return run(tmp_path_factory.mktemp("traced"), "traced", None)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, traced):
    """A cold run through a new export cache folder: (folder, result, its log)."""
    tmp = tmp_path_factory.mktemp("exported")
    folder = tmp / "export"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        result = run(tmp, "a1", folder, memo=False)
    return folder, result, err.getvalue()


def check_same(got, traced):
    assert got.history == traced.history
    for a, b in zip(leaves(got), leaves(traced), strict=True):
        np.testing.assert_array_equal(a, b)
    assert got.state.key.dtype == traced.state.key.dtype
    np.testing.assert_array_equal(
        jax.random.key_data(got.state.key), jax.random.key_data(traced.state.key)
    )


def test_exported_step_trains_bit_for_bit(tmp_path, traced, exported, capsys):
    folder, cold, log = exported
    assert "traced, exported to the cache" in log and len(files(folder)) == 1
    warm = run(tmp_path, "a2", folder, memo=False)
    assert "(from the export cache)" in capsys.readouterr().err
    assert isinstance(warm.params, nnx.State) and int(warm.model_state) == 4 * 11
    check_same(cold, traced)
    check_same(warm, traced)
    assert len(files(folder)) == 1  # the warm run wrote nothing new
    assert len(list(folder.glob("*.init"))) == 1  # the initial state, read back by the warm run


def test_changes_miss(monkeypatch):
    state = {"w": jnp.zeros(3), "key": jax.random.key(0)}
    args = (state, {"x": jnp.ones((4, 3))}, jnp.int32(-1))
    parts = {"config": {"lr": 0.1, "steps": 4}, "run_info": {"variant": "a"}}

    def key(fn=loss_fn, args=args, parts=parts):
        return ec.cache_key((fn, (count,)), args, parts)

    base = key()
    assert key() == base
    assert key(parts={**parts, "run_info": {"variant": "b"}}) != base
    assert key(parts={**parts, "config": {"lr": 0.2, "steps": 4}}) != base
    assert key(args=(state, {"x": jnp.ones((5, 3))}, jnp.int32(-1))) != base
    assert key(args=(state, {"x": jnp.ones((4, 3), jnp.bfloat16)}, jnp.int32(-1))) != base
    assert ec.cache_key(optax.adam(0.1), args) != ec.cache_key(optax.adam(0.2), args)
    real = ec._package_hash

    def edited(name):  # the memjax sources changed
        digest = real(name)
        return None if digest is None else digest[::-1]

    monkeypatch.setattr(ec, "_package_hash", edited)
    assert key() != base


def test_unreadable_file_falls_back(tmp_path, traced, exported, capsys):
    (good,) = files(exported[0])
    folder = tmp_path / "export"
    folder.mkdir()
    path = folder / good.name
    path.write_bytes(good.read_bytes()[:3000] + b"garbage")
    result = run(tmp_path, "a2", folder, memo=False)
    err = capsys.readouterr().err
    assert "export cache: could not read" in err and "tracing the step instead" in err
    check_same(result, traced)
    key = json.loads(path.read_bytes().split(b"\n")[1])["key"]
    header, _ = ec._read(path, key)  # rewritten, readable again
    assert header["metrics"] == ["loss", "mae"]


def test_unkeyable_step_is_traced(tmp_path, capsys):
    lock = threading.Lock()  # no fields, no stable repr: nothing can key it

    def step_fn(state, batch):
        with lock:
            pass
        return state._replace(params=state.params + batch), {"loss": jnp.sum(state.params)}

    result = train(
        TrainConfig(steps=2, log_every=1),
        init_params=lambda key: jnp.zeros(2),
        step_fn=step_fn,
        get_batch=lambda s: jnp.ones(2),
        out_dir=tmp_path / "run",
        progress=False,
        export_cache=tmp_path / "export",
    )
    assert "so it is not cached" in capsys.readouterr().err
    assert result.params.tolist() == [2.0, 2.0] and not files(tmp_path / "export")


def test_fingerprint_and_folder(monkeypatch, tmp_path):
    def make(scale):
        return lambda x: x * scale

    assert ec.fingerprint(make(2.0)) == ec.fingerprint(make(2.0))
    assert ec.fingerprint(make(2.0)) != ec.fingerprint(make(3.0))
    assert ec.fingerprint(np.arange(3)) != ec.fingerprint(np.arange(3) + 1)
    with pytest.raises(ec.Unkeyable, match="lock"):
        ec.fingerprint({"a": threading.Lock()})
    monkeypatch.delenv(ec.EXPORT_ENV, raising=False)
    assert export_cache_dir(tmp_path) == tmp_path / "memjax-export"
    assert export_cache_dir(None) is None
    monkeypatch.setenv(ec.EXPORT_ENV, "off")
    assert export_cache_dir(tmp_path) is None
    monkeypatch.setenv(ec.EXPORT_ENV, str(tmp_path / "x"))
    assert export_cache_dir(None) == tmp_path / "x"


def test_command_line_switch(tmp_path, monkeypatch):
    monkeypatch.delenv(ec.EXPORT_ENV, raising=False)
    presets = {"cpu": {}, "gpu": {}, "tpu": {}}
    try:
        run = parse_args(TrainConfig, presets, ["--cache-dir", str(tmp_path / "c")])
        assert run.export_cache == tmp_path / "c" / "memjax-export"
        assert run.train_kwargs()["export_cache"] == run.export_cache
        argv = ["--cache-dir", str(tmp_path / "c"), "--no-export-cache"]
        assert parse_args(TrainConfig, presets, argv).export_cache is None
        assert parse_args(TrainConfig, presets, ["--no-cache"]).export_cache is None
    finally:
        disable_compilation_cache()
