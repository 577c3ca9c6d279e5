"""Group specs over parameter pytrees: which scalars of which leaves form each group.

Arrays are grouped along the channel axes their layer declares (:class:`memjax.nn.ChannelAxes`:
``out`` = the layer's output channels, ``in_`` = its input channels). For a conv kernel in the
Flax / memjax layout ``(kh, kw, in, out)`` and the Equinox layout ``(out, in, kh, kw)`` the
groupings that arXiv 2212.12921 names (filters, channels, filter shapes, layers, single
parameters) are, in memjax's reading [I] ("group axes" index the groups, the others are summed
over in ``‖θ_{G_j}‖``):

=============== =================================== ============== ================
grouping        one group                           Flax reduce    Equinox reduce
=============== =================================== ============== ================
``filter``      all weights of one output channel   (0, 1, 2)      (1, 2, 3)
``channel``     all weights of one input channel    (0, 1, 3)      (0, 2, 3)
``filter_shape`` one (in, kh, kw) fibre over outputs (3,)          (0,)
``layer``       the whole layer                     all            all
``unstructured`` each scalar                        none           none
=============== =================================== ============== ================

For a dense kernel ``filter`` is one output unit (a neuron) and ``channel`` one input feature
(feature selection). **Coupled parameters** join the group of the channel they belong to, so
that a zero group can be removed physically: with ``filter`` grouping a layer's bias (``out``
axis) joins its filters, and the per-feature parameters of a layer named in ``couple`` (a
BatchNorm's scale and shift after a conv) join the filters of the layer it follows. Neither Flax
nor Equinox records which layer a BatchNorm follows, so ``couple`` says it
(``{"bn1": "conv1"}``); :func:`memjax.pruning.trace_groups` finds such couplings by tracing.
Leaves in no group are not penalised and pass through every operator unchanged.

Group weights ``d_j`` (:func:`group_weights`; the paper's choice is unknown [I]): ``"one"``
(``d_j = 1``, the unweighted GSEF), ``"size"`` (``d_j = |G_j|``, the usual √size scaling of the
group lasso, since ``z_j = √d_j‖θ_{G_j}‖``) and ``"flops"`` (``d_j`` = the multiply-adds the group
costs per example: ``|G_j ∩ kernel| × uses``, ``uses`` = the number of output positions of its
layer, e.g. ``H_out·W_out`` for a conv and 1 for a dense layer), so that expensive groups pay more.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from memjax.nn import Conv2D, Dense
    >>> from memjax.sparsity import tree_groups
    >>> layers = {"conv": Conv2D(3, 4, 3), "fc": Dense(4, 2)}
    >>> params = {n: jax.eval_shape(l.init_params, jax.random.key(0)) for n, l in layers.items()}
    >>> g = tree_groups(params, layers, "filter")                # shapes are all it needs
    >>> g.num_groups, g.layers, g.slices, g.sizes.tolist()[:2]     # 27 weights + 1 bias
    (6, ('conv', 'fc'), ((0, 4), (4, 6)), [28, 28])
    >>> tree_groups(params, layers, {"conv": "layer", "fc": "channel"}).sizes.tolist()
    [112, 2, 2, 2, 2]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import numpy as np

from memjax.core.checks import check_choice
from memjax.nn.channels import ChannelAxes

__all__ = ["GROUPINGS", "LeafGroup", "TreeGroups", "group_weights", "leaf_paths", "tree_groups"]

GROUPINGS = ("filter", "channel", "filter_shape", "layer", "unstructured")
WEIGHTS = ("one", "size", "flops")


def _key(entry):
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return str(entry)


def _name(path) -> str:
    """A key path as ``"a/b/c"``; the trailing ``.value`` of a Flax NNX variable is dropped."""
    if path and isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "value":
        path = path[:-1]
    return "/".join(str(_key(e)) for e in path)


def leaf_paths(tree) -> list[tuple[str, object]]:
    """``("a/b/c", leaf)`` for every leaf of ``tree`` (dict keys, indices, attributes).

    Example:
        >>> from memjax.sparsity import leaf_paths
        >>> [p for p, _ in leaf_paths({"conv": {"kernel": 1, "bias": 2}})]
        ['conv/bias', 'conv/kernel']
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(_name(path), leaf) for path, leaf in flat]


def _layer_name(layer) -> str:
    if isinstance(layer, str):
        return layer.strip("/")
    if isinstance(layer, tuple):
        return "/".join(str(p) for p in layer)
    raise TypeError(f"layers: expected layer names as str or tuple, got {layer!r}")


@dataclasses.dataclass(frozen=True)
class LeafGroup:
    """Leaf ``path`` of ``shape`` holds groups ``offset .. offset + count − 1``, indexed by its
    ``group_axes`` in row-major order (the other axes are summed over in the group norm)."""

    path: str
    shape: tuple[int, ...]
    group_axes: tuple[int, ...]
    offset: int
    layer: int
    kernel: bool

    @property
    def group_shape(self) -> tuple[int, ...]:
        """The sizes of the group axes."""
        return tuple(self.shape[a] for a in self.group_axes)

    @property
    def count(self) -> int:
        """The number of groups the leaf touches."""
        return math.prod(self.group_shape)

    @property
    def reduce_axes(self) -> tuple[int, ...]:
        """The axes summed over in a group norm."""
        return tuple(a for a in range(len(self.shape)) if a not in self.group_axes)

    @property
    def per_group(self) -> int:
        """Scalars of this leaf in each of its groups."""
        return math.prod(self.shape) // max(self.count, 1)

    def broadcast_shape(self) -> tuple[int, ...]:
        """The shape a ``(count,)`` per-group vector takes to broadcast against the leaf."""
        return tuple(n if a in self.group_axes else 1 for a, n in enumerate(self.shape))


@dataclasses.dataclass(frozen=True, eq=False)
class TreeGroups:
    """The groups of a parameter pytree (module doc), from :func:`tree_groups`.

    Attributes:
        leaves: one :class:`LeafGroup` per grouped leaf.
        layers: the layer names, in order; layer ``l`` owns groups ``slices[l]``.
        slices: ``(start, stop)`` group range of each layer (a per-layer ``k`` acts on it).
        groupings: the grouping of each layer.
        num_groups: ``m``.
        sizes: ``(m,)`` int64, the scalars in each group (coupled parameters included).
        kernel_sizes: ``(m,)`` int64, the scalars of each group that sit in kernels (the
            parameters with both channel axes; the basis of the ``"flops"`` weights).
    """

    leaves: tuple[LeafGroup, ...]
    layers: tuple[str, ...]
    slices: tuple[tuple[int, int], ...]
    groupings: tuple[str, ...]
    num_groups: int
    sizes: np.ndarray
    kernel_sizes: np.ndarray

    def layer_of(self, name: str) -> int:
        """The index of layer ``name`` (``KeyError`` naming it if absent)."""
        try:
            return self.layers.index(_layer_name(name))
        except ValueError:
            raise KeyError(f"layer: {name!r} is not one of {self.layers}") from None

    def check(self, params, name: str = "params") -> dict:
        """``{path: leaf}`` of ``params`` after checking that it has every grouped leaf with the
        shape the groups were built for (``ValueError`` naming ``name`` otherwise)."""
        found = dict(leaf_paths(params))
        for e in self.leaves:
            if e.path not in found:
                raise ValueError(
                    f"{name}: the groups cover {e.path!r}, which {name} does not have "
                    f"(leaves: {sorted(found)[:8]}{' ...' if len(found) > 8 else ''})"
                )
            shape = tuple(np.shape(found[e.path]))
            if shape != e.shape:
                raise ValueError(
                    f"{name}: {e.path!r} has shape {shape}, the groups were built for {e.shape}"
                )
        return found


def _axes_of(layer) -> Mapping[str, ChannelAxes]:
    if hasattr(layer, "channel_axes"):
        layer = layer.channel_axes()
    if not isinstance(layer, Mapping) or not all(
        isinstance(v, ChannelAxes) for v in layer.values()
    ):
        raise TypeError(
            "layers: expected each value to be a {param: ChannelAxes} dict or a layer with "
            f"channel_axes(), got {type(layer).__name__}"
        )
    return layer


def _group_axes(grouping: str, axes: ChannelAxes, ndim: int, path: str):
    """The group axes of one parameter under ``grouping`` (``None``: not grouped)."""
    out, in_ = axes.out_axes, axes.in_axes
    if len(out) > 1 or len(in_) > 1:
        raise ValueError(
            f"layers: {path!r} has several channel axes ({axes}); tree groups support one"
        )
    if grouping == "filter":
        return out if out else None
    if grouping == "channel":
        return in_ if in_ else None
    if grouping == "filter_shape":
        return tuple(a for a in range(ndim) if a not in out) if (out and in_) else None
    if grouping == "layer":
        return ()
    return tuple(range(ndim))  # unstructured


def tree_groups(params, layers, grouping="filter", *, couple=None) -> TreeGroups:
    """The groups of ``params`` (module doc).

    Args:
        params: the parameter pytree (plain dicts, Flax NNX ``nnx.state(model, nnx.Param)`` or
            ``nnx.split`` state, an Equinox ``eqx.filter(model, eqx.is_array)``).
        layers: ``{layer name: channel axes}``, the name a ``"a/b"`` path (or tuple) to the
            layer's parameters and the value its ``{param: ChannelAxes}`` (or any object with
            ``channel_axes()``, such as a :mod:`memjax.nn` layer); :func:`flax_layers` and
            :func:`equinox_layers` build it for those frameworks. Order = group order.
        grouping: one of :data:`GROUPINGS` for every layer, or ``{layer name: grouping}``.
        couple: ``{layer name: target layer name}``: the coupled layer's per-feature
            parameters (``out`` axis) join the target's ``filter`` (or ``layer``) groups; the
            coupled layer must not be in ``layers``. A value ``(target, channel axes)`` (the
            axes as in ``layers``, e.g. a depthwise :class:`memjax.nn.Conv2D`, whose kernel
            maps channel ``c`` to channel ``c``) couples every parameter of the layer with an
            ``out`` axis along that axis instead: a depthwise conv after the target joins the
            target's filters.

    Raises ``ValueError`` naming ``layers``, ``grouping``, ``couple`` or ``params`` when a name
    is unknown, a layer's parameters are missing from ``params``, or sizes disagree.
    """
    if not isinstance(layers, Mapping) or not layers:
        raise TypeError("layers: expected a non-empty mapping {layer name: channel axes}")
    found = dict(leaf_paths(params))
    names = [_layer_name(n) for n in layers]
    axes_by_layer = {_layer_name(n): _axes_of(v) for n, v in layers.items()}
    if isinstance(grouping, Mapping):
        per = {_layer_name(n): g for n, g in grouping.items()}
        unknown = sorted(set(per) - set(names))
        if unknown:
            raise ValueError(f"grouping: names layers {unknown} that are not in layers")
        per = {n: per.get(n, "filter") for n in names}
    else:
        per = dict.fromkeys(names, grouping)
    for g in per.values():
        check_choice("grouping", g, GROUPINGS)
    coupled: dict[str, list[tuple[str, Mapping | None]]] = {}
    for src, dst in (couple or {}).items():
        src_axes = None
        if (
            isinstance(dst, tuple)
            and len(dst) == 2
            and (hasattr(dst[1], "channel_axes") or isinstance(dst[1], Mapping))
        ):
            dst, src_axes = dst[0], _axes_of(dst[1])
            if not any(a.out_axes for a in src_axes.values()):
                raise ValueError(f"couple: the channel axes of {src!r} have no out axis")
        src, dst = _layer_name(src), _layer_name(dst)
        if dst not in axes_by_layer:
            raise ValueError(f"couple: target layer {dst!r} is not in layers")
        if src in axes_by_layer:
            raise ValueError(f"couple: layer {src!r} is in layers; a coupled layer is not")
        if per[dst] not in ("filter", "layer"):
            raise ValueError(
                f"couple: {src!r} joins the output channels of {dst!r}, whose grouping "
                f"{per[dst]!r} is not 'filter' or 'layer'"
            )
        coupled.setdefault(dst, []).append((src, src_axes))

    def leaf(path):
        if path not in found:
            raise ValueError(f"params: has no leaf {path!r} (a parameter of layers/couple)")
        return tuple(np.shape(found[path]))

    entries: list[LeafGroup] = []
    slices, offset = [], 0
    sizes: list[np.ndarray] = []
    kernel_sizes: list[np.ndarray] = []
    for li, name in enumerate(names):
        g = per[name]
        members = [(name, p, a, False) for p, a in axes_by_layer[name].items()]
        for src, src_axes in coupled.get(name, ()):
            if src_axes is None:  # per-feature vectors (BatchNorm scale and shift)
                src_axes = {p: ChannelAxes(out=0) for p in layers_or_axes(src, params)}
            members += [
                (src, p, ChannelAxes(out=a.out_axes[0]), True)
                for p, a in src_axes.items()
                if a.out_axes
            ]
        count = None
        layer_entries = []
        for owner, pname, axes, is_coupled in sorted(members, key=lambda m: (m[0], m[1])):
            path = f"{owner}/{pname}" if owner else pname
            shape = leaf(path)
            ga = (axes.out_axes if g == "filter" else ()) if is_coupled else None
            if not is_coupled:
                ga = _group_axes(g, axes, len(shape), path)
            if ga is None:
                continue
            e = LeafGroup(path, shape, ga, offset, li, bool(axes.out_axes and axes.in_axes))
            if g == "unstructured" and layer_entries:  # each leaf its own scalars
                e = dataclasses.replace(
                    e, offset=layer_entries[-1].offset + layer_entries[-1].count
                )
            elif count is not None and e.count != count:
                raise ValueError(
                    f"params: {path!r} gives {e.count} groups of layer {name!r} under "
                    f"{g!r} grouping, another of its parameters gives {count}"
                )
            count = e.count if g != "unstructured" else None
            layer_entries.append(e)
        if not layer_entries:
            raise ValueError(f"grouping: {g!r} leaves layer {name!r} without any group")
        n_groups = (
            sum(e.count for e in layer_entries) if g == "unstructured" else layer_entries[0].count
        )
        size = np.zeros(n_groups, np.int64)
        ksize = np.zeros(n_groups, np.int64)
        for e in layer_entries:
            lo = e.offset - offset
            size[lo : lo + e.count] += e.per_group
            if e.kernel:
                ksize[lo : lo + e.count] += e.per_group
        entries += layer_entries
        slices.append((offset, offset + n_groups))
        sizes.append(size)
        kernel_sizes.append(ksize)
        offset += n_groups
    return TreeGroups(
        tuple(entries),
        tuple(names),
        tuple(slices),
        tuple(per[n] for n in names),
        offset,
        np.concatenate(sizes),
        np.concatenate(kernel_sizes),
    )


def layers_or_axes(name: str, params) -> dict[str, ChannelAxes]:
    """The per-feature parameters of coupled layer ``name``: every leaf ``name/<p>`` of
    ``params`` that is a vector (BatchNorm scale and shift; running statistics are not params).
    """
    prefix = name + "/"
    out = {
        p[len(prefix) :]: ChannelAxes(out=0)
        for p, leaf in leaf_paths(params)
        if p.startswith(prefix) and "/" not in p[len(prefix) :] and np.ndim(leaf) == 1
    }
    if not out:
        raise ValueError(f"couple: layer {name!r} has no per-feature vector in params")
    return out


def group_weights(groups: TreeGroups, kind="one", *, uses=None) -> np.ndarray:
    """The group weights ``d_j`` (module doc): ``"one"``, ``"size"`` or ``"flops"``.

    ``uses`` (``"flops"`` only): ``{layer name: output positions per example}`` (``H_out·W_out``
    for a conv; layers not named count 1). Returns ``(m,)`` float64, every entry > 0.

    Example:
        >>> import jax
        >>> from memjax.nn import Conv2D
        >>> from memjax.sparsity import group_weights, tree_groups
        >>> layers = {"c": Conv2D(2, 3, 3)}
        >>> shapes = {"c": jax.eval_shape(layers["c"].init_params, jax.random.key(0))}
        >>> g = tree_groups(shapes, layers)
        >>> group_weights(g, "size").tolist(), group_weights(g, "flops", uses={"c": 10}).tolist()
        ([19.0, 19.0, 19.0], [180.0, 180.0, 180.0])
    """
    check_choice("weights", kind, WEIGHTS)
    if kind == "one":
        return np.ones(groups.num_groups)
    if kind == "size":
        return groups.sizes.astype(np.float64)
    uses = dict(uses or {})
    unknown = sorted(set(_layer_name(n) for n in uses) - set(groups.layers))
    if unknown:
        raise ValueError(f"uses: names layers {unknown} that are not in the groups")
    d = groups.kernel_sizes.astype(np.float64).copy()
    for name, n in uses.items():
        if not n > 0:
            raise ValueError(f"uses: expected a positive count for {name!r}, got {n!r}")
        lo, hi = groups.slices[groups.layer_of(name)]
        d[lo:hi] *= float(n)
    d = np.where(d > 0, d, groups.sizes)  # a group without kernel weights: its size
    return d
