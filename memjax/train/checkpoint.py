"""Checkpoints with orbax-checkpoint: a step-indexed manager for training, and standalone helpers.

Two levels:

* :class:`Checkpointer` wraps ``orbax.checkpoint.CheckpointManager`` for a training run: numbered
  checkpoints in one folder, the ``max_to_keep`` most recent kept, ``restore`` of the latest.
* :func:`save_pytree` / :func:`load_pytree` save and load one pytree at a path (e.g. a learned
  Sparsey memory), with the same exact round trip.

Restoring always goes through an abstract target built from ``like`` (a pytree of arrays or
``jax.ShapeDtypeStruct``), so dtypes, shapes, shardings and the tree structure (NamedTuple optimizer
states included) come back exactly as they were. Typed PRNG keys (``jax.random.key``) are stored as
their ``jax.random.key_data`` (uint32) and re-wrapped with the implementation found in ``like``.

Example:
    >>> import tempfile, jax, jax.numpy as jnp
    >>> from memjax.train import save_pytree, load_pytree
    >>> tree = {"w": jnp.arange(3.0), "key": jax.random.key(0), "step": jnp.int32(4)}
    >>> path = tempfile.mkdtemp() + "/memory"
    >>> save_pytree(path, tree)
    >>> back = load_pytree(path, like=tree)
    >>> bool((back["w"] == tree["w"]).all()), back["key"].dtype == tree["key"].dtype
    (True, True)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["Checkpointer", "abstract_like", "load_pytree", "save_pytree"]


def _is_typed_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _keys_to_data(tree: Any) -> Any:
    """Replaces typed PRNG key leaves by their uint32 key data."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_typed_key(x) else x, tree)


def _key_impl(ref: Any) -> Any:
    """The PRNG implementation of a typed key array or of its ``jax.ShapeDtypeStruct``."""
    if isinstance(ref, jax.Array):
        return jax.random.key_impl(ref)
    found = []

    def probe(k):
        found.append(jax.random.key_impl(k))
        return k

    jax.eval_shape(probe, ref)
    return found[0]


def _data_to_keys(tree: Any, like: Any) -> Any:
    """Re-wraps key data as typed keys wherever ``like`` holds a typed key."""

    def wrap(x, ref):
        if _is_typed_key(ref):
            return jax.random.wrap_key_data(x, impl=_key_impl(ref))
        return x

    return jax.tree.map(wrap, tree, like)


def abstract_like(like: Any) -> Any:
    """The abstract restore target for ``like``: ``jax.ShapeDtypeStruct`` leaves with shardings.

    jax arrays keep their sharding; typed keys become the struct of their key data; NumPy arrays
    and Python scalars stay concrete (orbax then restores them as NumPy arrays / scalars).
    """

    def one(x):
        if _is_typed_key(x):
            if isinstance(x, jax.Array):
                return ocp.utils.to_shape_dtype_struct(jax.random.key_data(x))
            return jax.eval_shape(jax.random.key_data, x)
        if isinstance(x, jax.Array):
            return ocp.utils.to_shape_dtype_struct(x)
        return x

    return jax.tree.map(one, like)


class Checkpointer:
    """Numbered checkpoints of one pytree in ``directory`` (an ``ocp.CheckpointManager``).

    Args:
        directory: folder holding one sub-folder per saved step (created if missing).
        max_to_keep: keep only this many most recent checkpoints (``None``: keep all).
        async_save: write in a background thread (``save`` returns once arrays are on the host).

    Example:
        >>> import tempfile, jax.numpy as jnp
        >>> from memjax.train import Checkpointer
        >>> with Checkpointer(tempfile.mkdtemp(), max_to_keep=2) as ckpt:
        ...     for step in (5, 10, 15):
        ...         ckpt.save(step, {"w": jnp.full(2, step, jnp.float32)})
        ...     ckpt.wait()
        ...     ckpt.all_steps(), ckpt.restore(like={"w": jnp.zeros(2)})["w"].tolist()
        ([10, 15], [15.0, 15.0])
    """

    def __init__(
        self, directory: str | Path, *, max_to_keep: int | None = 3, async_save: bool = True
    ):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=async_save,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    @property
    def latest_step(self) -> int | None:
        """The newest saved step, or ``None`` when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """All saved steps, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, tree: Any) -> None:
        """Saves ``tree`` as checkpoint ``step`` (always; the caller decides when)."""
        self._manager.save(int(step), args=ocp.args.StandardSave(_keys_to_data(tree)), force=True)

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restores checkpoint ``step`` (default: the latest) shaped, typed and sharded like
        ``like``.

        Raises:
            FileNotFoundError: there is no checkpoint (or no checkpoint ``step``) in the folder.
        """
        step = self.latest_step if step is None else int(step)
        if step is None or step not in self._manager.all_steps():
            raise FileNotFoundError(
                f"no checkpoint {'' if step is None else step} in {self.directory} "
                f"(saved steps: {self.all_steps()})"
            )
        self._manager.wait_until_finished()
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract_like(like)))
        return _data_to_keys(restored, like)

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def save_pytree(path: str | Path, tree: Any, *, overwrite: bool = True) -> None:
    """Saves one pytree (arrays, NumPy arrays, Python scalars, typed PRNG keys) at ``path``.

    ``path`` is a folder (orbax writes several files). With ``overwrite=False`` an existing
    ``path`` raises ``FileExistsError``. Blocks until the files are written.
    """
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(f"save_pytree: {path} exists (pass overwrite=True to replace it)")
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, _keys_to_data(tree), force=True)
        ckptr.wait_until_finished()


def load_pytree(path: str | Path, like: Any = None) -> Any:
    """Loads a pytree saved by :func:`save_pytree`.

    Args:
        path: the folder given to :func:`save_pytree`.
        like: a pytree with the same structure (arrays or ``jax.ShapeDtypeStruct`` leaves); the
            result has its structure, dtypes, shapes and shardings, and typed keys where it has
            them. Without it, orbax's stored metadata decides (containers come back as dicts/lists
            and typed keys as uint32 key data).
    """
    path = Path(path).absolute()
    if not path.exists():
        raise FileNotFoundError(f"load_pytree: no saved pytree at {path}")
    with ocp.StandardCheckpointer() as ckptr:
        if like is None:
            return ckptr.restore(path)
        restored = ckptr.restore(path, abstract_like(like))
    return _data_to_keys(restored, like)


def remove_checkpoints(directory: str | Path) -> None:
    """Deletes a checkpoint folder (used by ``train(..., overwrite=True)``)."""
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)


def tree_equal(a: Any, b: Any) -> bool:
    """Whether two pytrees have the same structure and bitwise-equal leaves (keys compared by
    their data)."""
    a, b = _keys_to_data(a), _keys_to_data(b)
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(
        np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
