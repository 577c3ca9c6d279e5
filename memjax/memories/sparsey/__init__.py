"""Sparsey (Rinkus): SDR macs with the Code Selection Algorithm, hierarchies and read-outs.

* :mod:`~memjax.memories.sparsey.mac` — :class:`SparseyMac`, one mac (learn / propose /
  recognize); its kernel is :mod:`~memjax.memories.sparsey.csa` on the bit-packed weights of
  :mod:`~memjax.memories.sparsey.bits`;
* :mod:`~memjax.memories.sparsey.hierarchy` — :class:`SparseyLevel`, :class:`SparseyHierarchy`;
* :mod:`~memjax.memories.sparsey.readout` — read-outs from codes to labels;
* :mod:`~memjax.memories.sparsey.adapter` — :class:`SparseyMemory`, a mac as a
  :class:`memjax.core.Memory` (keys = binary patterns, values = codes or labels).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.memories.sparsey import SparseyMac
    >>> mac = SparseyMac(n_inputs=32, Q=4, K=8)
    >>> xs = (jax.random.uniform(jax.random.key(0), (3, 32)) < 0.2).astype(jnp.uint8)
    >>> state, learned = mac.learn(mac.init_state(), xs, key=jax.random.key(1))
    >>> bool((mac.recognize(state, xs).code == learned.code).all())
    True
"""

from memjax.memories.sparsey.adapter import (
    SparseyMemory as SparseyMemory,
    SparseyMemoryState as SparseyMemoryState,
)
from memjax.memories.sparsey.hierarchy import (
    HierarchyCarry as HierarchyCarry,
    SparseyHierarchy as SparseyHierarchy,
    SparseyLevel as SparseyLevel,
    grid_neighbours as grid_neighbours,
    level_output as level_output,
    mac_cells as mac_cells,
    tile_receptive_fields as tile_receptive_fields,
)
from memjax.memories.sparsey.mac import (
    CSAResult as CSAResult,
    SparseyMac as SparseyMac,
    SparseyState as SparseyState,
    as_prng_key as as_prng_key,
    code_overlap as code_overlap,
    codes_to_binary as codes_to_binary,
    expansivity as expansivity,
)
from memjax.memories.sparsey.readout import (
    L2_GRID as L2_GRID,
    LinearReadout as LinearReadout,
    SoftmaxRegression as SoftmaxRegression,
    class_node_fit as class_node_fit,
    class_node_predict as class_node_predict,
    linear_readout_fit as linear_readout_fit,
    linear_readout_predict as linear_readout_predict,
    nearest_code_predict as nearest_code_predict,
    one_hot_design as one_hot_design,
    ridge_readout_fit as ridge_readout_fit,
    ridge_readout_predict as ridge_readout_predict,
    softmax_regression_cv as softmax_regression_cv,
    softmax_regression_fit as softmax_regression_fit,
    softmax_regression_predict as softmax_regression_predict,
    stratified_folds as stratified_folds,
)

__all__ = [
    "L2_GRID",
    "CSAResult",
    "HierarchyCarry",
    "LinearReadout",
    "SoftmaxRegression",
    "SparseyHierarchy",
    "SparseyLevel",
    "SparseyMac",
    "SparseyMemory",
    "SparseyMemoryState",
    "SparseyState",
    "as_prng_key",
    "class_node_fit",
    "class_node_predict",
    "code_overlap",
    "codes_to_binary",
    "expansivity",
    "grid_neighbours",
    "level_output",
    "linear_readout_fit",
    "linear_readout_predict",
    "mac_cells",
    "nearest_code_predict",
    "one_hot_design",
    "ridge_readout_fit",
    "ridge_readout_predict",
    "softmax_regression_cv",
    "softmax_regression_fit",
    "softmax_regression_predict",
    "stratified_folds",
    "tile_receptive_fields",
]
