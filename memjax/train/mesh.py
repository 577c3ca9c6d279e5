"""Data parallelism and FSDP-style parameter sharding through a ``jax.sharding.Mesh``.

* **Data parallel** (:func:`data_mesh`, one ``"data"`` axis): parameters and optimizer state are
  replicated on every device (``NamedSharding(mesh, P())``); each batch is sharded along its
  leading axis (``NamedSharding(mesh, P("data"))``). ``jax.jit`` follows the shardings: every
  device computes the loss on its slice of the batch and XLA inserts the gradient all-reduce, so
  a data-parallel step equals the single-device step up to float summation order.
* **FSDP** (:func:`fsdp_mesh`, axes ``("data", "model")``): the batch is sharded over ``"data"``
  as above, and every array of the train state (parameters, optimizer moments, model state) is
  sharded over ``"model"`` along its largest axis divisible by the ``"model"`` size
  (:func:`fsdp_spec`); arrays without such an axis, scalars and PRNG keys are replicated. XLA
  all-gathers a parameter where the computation needs it whole and reduce-scatters its gradient,
  so each device holds ``1/model`` of the state (the gpu/tpu presets: ``--fsdp N``).

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
    >>> fsdp_spec((4, 16), 2), fsdp_spec((3,), 2), fsdp_spec((8, 8), 4)
    (P(None, 'model'), P(), P('model',))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = [
    "DATA_AXIS",
    "MODEL_AXIS",
    "data_mesh",
    "fsdp_mesh",
    "fsdp_spec",
    "initialize_distributed",
    "replicate",
    "shard_batch",
    "shard_state",
    "state_shardings",
]

DATA_AXIS = "data"
MODEL_AXIS = "model"

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


def fsdp_mesh(model: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 2-D mesh ``("data", "model")`` of shape ``(len(devices) // model, model)`` (default
    devices: all of them); the state is sharded over ``"model"``, the batch over ``"data"``.

    Raises:
        ValueError: ``model`` is not a positive divisor of the number of devices.
    """
    devices = list(jax.devices() if devices is None else devices)
    if not isinstance(model, int) or model < 1 or len(devices) % model:
        raise ValueError(
            f"fsdp_mesh: model={model!r} must be a positive divisor of the number "
            f"of devices ({len(devices)})"
        )
    return Mesh(np.array(devices).reshape(len(devices) // model, model), (DATA_AXIS, MODEL_AXIS))


def fsdp_spec(shape: Sequence[int], model_size: int) -> P:
    """The ``PartitionSpec`` of an array of ``shape`` under FSDP: its largest axis divisible by
    ``model_size`` (the first of equal ones) over ``"model"``, nothing else (trailing ``None``
    left out, as XLA reports it); ``P()`` when no axis divides (or ``model_size`` is 1)."""
    shape = tuple(int(d) for d in shape)
    fits = [i for i, d in enumerate(shape) if d >= model_size and d % model_size == 0]
    if model_size <= 1 or not fits:
        return P()
    axis = max(fits, key=lambda i: (shape[i], -i))
    return P(*(MODEL_AXIS if i == axis else None for i in range(axis + 1)))


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key)


def state_shardings(tree: Any, mesh: Mesh) -> Any:
    """The ``NamedSharding`` of every leaf of a train state on ``mesh``: :func:`fsdp_spec` over
    the ``"model"`` axis when the mesh has one, else replicated. Reads only shapes and dtypes, so
    it works on tracers and ``jax.ShapeDtypeStruct`` leaves."""
    model_size = dict(mesh.shape).get(MODEL_AXIS, 1)

    def one(x):
        if _is_key(x) or model_size == 1:
            return NamedSharding(mesh, P())
        return NamedSharding(mesh, fsdp_spec(np.shape(x), model_size))

    return jax.tree.map(one, tree)


def shard_state(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf of ``tree`` on ``mesh`` with :func:`state_shardings` (replicated on a
    data-only mesh, FSDP-sharded on a mesh with a ``"model"`` axis)."""
    return jax.tree.map(lambda x, s: _place(x, s), tree, state_shardings(tree, mesh))


def place_state(tree: Any, mesh: Mesh | None) -> Any:
    """:func:`shard_state` on ``mesh``; without a mesh, commits ``tree`` to the default device
    (so every step of a run sees the same input shardings and compiles once)."""
    if mesh is not None:
        return shard_state(tree, mesh)
    device = next(iter(jax.numpy.zeros(()).devices()))
    return jax.device_put(tree, jax.sharding.SingleDeviceSharding(device))


def _place(x: Any, sharding: NamedSharding) -> Any:
    if _is_key(x):
        data = jax.random.key_data(x)
        return jax.random.wrap_key_data(
            _put(data, sharding, data.shape), impl=jax.random.key_impl(x)
        )
    return _put(x, sharding, np.shape(x))


def _put(x: Any, sharding: NamedSharding, global_shape: tuple[int, ...] | None = None) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_process_local_data(sharding, np.asarray(x), global_shape)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf of ``tree`` on all devices of ``mesh`` (replicated)."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda x: _place(x, sharding), tree)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Shards every leaf of ``batch`` along its leading axis over the mesh's ``"data"`` axis
    (replicated over any other axis, e.g. ``"model"``).

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
