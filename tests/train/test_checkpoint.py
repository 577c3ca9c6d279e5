"""orbax checkpoints: exact round trips of dtypes, shapes, structure and typed PRNG keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memjax.train import Checkpointer, load_pytree, save_pytree


def _tree():
    params = {"w": jnp.arange(6, dtype=jnp.bfloat16).reshape(2, 3), "b": jnp.ones(3, jnp.int8)}
    return {
        "params": params,
        "opt_state": optax.adam(1e-3).init({"w": jnp.zeros((2, 3))}),
        "key": jax.random.key(7),
        "step": jnp.int32(5),
        "codes": np.array([[True, False]]),
    }


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and np.shape(x) == np.shape(y)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_save_load_pytree_round_trip(tmp_path):
    tree = _tree()
    save_pytree(tmp_path / "mem", tree)
    back = load_pytree(tmp_path / "mem", like=tree)
    _assert_same(back, tree)
    assert isinstance(back["opt_state"][0], optax.ScaleByAdamState)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)
    _assert_same(load_pytree(tmp_path / "mem", like=abstract), tree)
    raw = load_pytree(tmp_path / "mem")  # no target: key data as uint32
    assert raw["key"].dtype == np.uint32
    with pytest.raises(FileExistsError):
        save_pytree(tmp_path / "mem", tree, overwrite=False)
    with pytest.raises(FileNotFoundError):
        load_pytree(tmp_path / "missing", like=tree)


def test_checkpointer_keeps_latest(tmp_path):
    tree = _tree()
    with Checkpointer(tmp_path, max_to_keep=2) as ckpt:
        with pytest.raises(FileNotFoundError):
            ckpt.restore(like=tree)
        for step in (1, 2, 3):
            ckpt.save(step, {**tree, "step": jnp.int32(step)})
        ckpt.wait()
        assert ckpt.all_steps() == [2, 3] and ckpt.latest_step == 3
        back = ckpt.restore(like=tree)
        assert int(back["step"]) == 3
        _assert_same({**back, "step": tree["step"]}, tree)
        assert int(ckpt.restore(like=tree, step=2)["step"]) == 2
