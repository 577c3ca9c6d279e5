"""Sparsey (Rinkus): SDR macs with the Code Selection Algorithm, hierarchies and read-outs.

* :mod:`~memjax.memories.sparsey.mac` — :class:`SparseyMac`, one mac (learn / recognize);
* :mod:`~memjax.memories.sparsey.hierarchy` — :class:`SparseyLevel`, :class:`SparseyHierarchy`;
* :mod:`~memjax.memories.sparsey.readout` — read-outs from codes to labels.
"""

from memjax.memories.sparsey.hierarchy import (
    HierarchyCarry as HierarchyCarry,
)
from memjax.memories.sparsey.hierarchy import (
    SparseyHierarchy as SparseyHierarchy,
)
from memjax.memories.sparsey.hierarchy import (
    SparseyLevel as SparseyLevel,
)
from memjax.memories.sparsey.hierarchy import (
    grid_neighbours as grid_neighbours,
)
from memjax.memories.sparsey.hierarchy import (
    level_output as level_output,
)
from memjax.memories.sparsey.hierarchy import (
    mac_cells as mac_cells,
)
from memjax.memories.sparsey.hierarchy import (
    tile_receptive_fields as tile_receptive_fields,
)
from memjax.memories.sparsey.mac import (
    CSAResult as CSAResult,
)
from memjax.memories.sparsey.mac import (
    SparseyMac as SparseyMac,
)
from memjax.memories.sparsey.mac import (
    SparseyState as SparseyState,
)
from memjax.memories.sparsey.mac import (
    code_overlap as code_overlap,
)
from memjax.memories.sparsey.mac import (
    codes_to_binary as codes_to_binary,
)
from memjax.memories.sparsey.mac import (
    expansivity as expansivity,
)
from memjax.memories.sparsey.readout import (
    LinearReadout as LinearReadout,
)
from memjax.memories.sparsey.readout import (
    class_node_fit as class_node_fit,
)
from memjax.memories.sparsey.readout import (
    class_node_predict as class_node_predict,
)
from memjax.memories.sparsey.readout import (
    linear_readout_fit as linear_readout_fit,
)
from memjax.memories.sparsey.readout import (
    linear_readout_predict as linear_readout_predict,
)
from memjax.memories.sparsey.readout import (
    nearest_code_predict as nearest_code_predict,
)
from memjax.memories.sparsey.readout import (
    ridge_readout_fit as ridge_readout_fit,
)
from memjax.memories.sparsey.readout import (
    ridge_readout_predict as ridge_readout_predict,
)

__all__ = [
    "CSAResult",
    "HierarchyCarry",
    "LinearReadout",
    "SparseyHierarchy",
    "SparseyLevel",
    "SparseyMac",
    "SparseyState",
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
    "ridge_readout_fit",
    "ridge_readout_predict",
    "tile_receptive_fields",
]
