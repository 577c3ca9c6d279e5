"""Data parallelism over all devices through a ``jax.sharding.Mesh`` with one ``"data"`` axis.

Parameters and optimizer state are replicated on every device (``NamedSharding(mesh, P())``); each
batch is sharded along its leading axis (``NamedSharding(mesh, P("data"))``). ``jax.jit`` then
follows the shardings: every device computes the loss on its slice of the batch and XLA inserts
the gradient all-reduce, so a data-parallel step equals the single-device step up to float
summation order.

Multi-host (TPU slices): call :func:`initialize_distributed` first thing (``--distributed``), then
each process's ``get_batch`` returns its *process-local* part of the global batch, which
:func:`shard_batch` assembles with ``jax.make_array_from_process_local_data``.

Example:
    >>> import jax, numpy as np
    >>> from memjax.train import data_mesh, replicate, shard_batch
    >>> mesh = data_mesh()                       # all devices, axis "data"
    >>> n = mesh.devices.size
    >>> batch = shard_batch({"x": np.ones((2 * n, 3), np.float32)}, mesh)
    >>> params = replicate({"w": np.zeros(3, np.float32)}, mesh)
    >>> batch["x"].sharding.spec, params["w"].sharding.spec
    (P('data',), P())
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["DATA_AXIS", "data_mesh", "initialize_distributed", "replicate", "shard_batch"]

DATA_AXIS = "data"

_distributed_initialized = False


def initialize_distributed(**kwargs: Any) -> None:
    """Calls ``jax.distributed.initialize(**kwargs)`` once (multi-host runs only).

    On Cloud TPU slices and SLURM/Open MPI clusters the coordinator, process count and id are
    detected automatically; pass them explicitly elsewhere. Must run before any JAX computation.
    """
    global _distributed_initialized
    if _distributed_initialized:
        return
    jax.distributed.initialize(**kwargs)
    _distributed_initialized = True


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh: no devices given")
    return Mesh(np.array(devices), (DATA_AXIS,))


def _put(x: Any, sharding: NamedSharding, global_shape: tuple[int, ...] | None = None) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_process_local_data(sharding, np.asarray(x), global_shape)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf of ``tree`` on all devices of ``mesh`` (replicated)."""
    sharding = NamedSharding(mesh, P())

    def one(x):
        if jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
            data = jax.random.key_data(x)
            return jax.random.wrap_key_data(_put(data, sharding, data.shape),
                                            impl=jax.random.key_impl(x))
        return _put(x, sharding, np.shape(x))

    return jax.tree.map(one, tree)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Shards every leaf of ``batch`` along its leading axis over the mesh's ``"data"`` axis.

    In a single-process run ``batch`` is the global batch; in a multi-process run it is this
    process's part (leading size = global size / process count). Scalars are replicated.

    Raises:
        ValueError: a leaf's leading size is not divisible by the number of devices it is split
            over (naming the leaf and both numbers).
    """
    n_devices = mesh.shape[DATA_AXIS]
    n_local = n_devices // jax.process_count()
    sharded, replicated = NamedSharding(mesh, P(DATA_AXIS)), NamedSharding(mesh, P())

    def one(path, x):
        shape = np.shape(x)
        if len(shape) == 0:
            return _put(x, replicated, ())
        if shape[0] % n_local:
            where = jax.tree_util.keystr(path) or "batch"
            raise ValueError(
                f"data parallel: batch leaf {where} has leading size {shape[0]}, which is not "
                f"divisible by the {n_local} {'local ' if n_local != n_devices else ''}devices "
                f"of the mesh; choose a batch size that is a multiple of {n_local}"
            )
        return _put(x, sharded, (shape[0] * jax.process_count(), *shape[1:]))

    return jax.tree_util.tree_map_with_path(one, batch)
