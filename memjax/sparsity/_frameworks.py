"""Channel axes of Flax NNX and Equinox layers, for :func:`~memjax.sparsity.tree_groups`.

* Flax NNX: ``nnx.Conv`` kernel ``(*kernel_size, in/groups, out)`` → ``out`` = last axis,
  ``in_`` = the one before (``None`` for a grouped conv); ``nnx.Linear`` kernel ``(in, out)``;
  biases ``out=0``. Paths are those of ``nnx.state(model, nnx.Param)`` (or ``nnx.split``),
  e.g. ``"conv1/kernel"``.
* Equinox: ``eqx.nn.Conv`` weight ``(out, in/groups, *kernel_size)`` → ``out=0``, ``in_=1``;
  bias ``(out, 1, …, 1)`` → ``out=0``; ``eqx.nn.Linear`` weight ``(out, in)``. Paths are those
  of ``eqx.filter(model, eqx.is_array)``, e.g. ``"layers/0/weight"``.

BatchNorm layers are not listed: pass them to ``tree_groups(..., couple={bn: conv})``.

Example:
    >>> import jax, equinox as eqx
    >>> from memjax.sparsity import equinox_layers, tree_groups
    >>> model = eqx.nn.Sequential([eqx.nn.Conv2d(3, 4, 3, key=jax.random.key(0)),
    ...                            eqx.nn.Lambda(jax.nn.relu)])
    >>> layers = equinox_layers(model)
    >>> list(layers), layers["layers/0"]["weight"]
    (['layers/0'], ChannelAxes(out=0, in_=1))
    >>> g = tree_groups(eqx.filter(model, eqx.is_array), layers, "filter_shape")
    >>> g.num_groups                                  # (in, kh, kw) fibres: 3 · 3 · 3
    27
"""

from __future__ import annotations

import jax

from memjax.nn.channels import ChannelAxes
from memjax.sparsity._groups import _name

__all__ = ["equinox_layers", "flax_layers"]


def flax_layers(module) -> dict[str, dict[str, ChannelAxes]]:
    """``{path: {param: ChannelAxes}}`` for every ``nnx.Conv`` and ``nnx.Linear`` of a Flax NNX
    module (module doc).

    Example:
        >>> from flax import nnx
        >>> from memjax.sparsity import flax_layers
        >>> class Net(nnx.Module):
        ...     def __init__(self, rngs):
        ...         self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        ...         self.fc = nnx.Linear(4, 2, use_bias=False, rngs=rngs)
        >>> flax_layers(Net(nnx.Rngs(0)))["fc"]
        {'kernel': ChannelAxes(out=1, in_=0)}
    """
    from flax import nnx

    if not isinstance(module, nnx.Module):
        raise TypeError(f"module: expected a Flax nnx.Module, got {type(module).__name__}")
    out = {}
    for path, node in nnx.iter_graph(module):
        if isinstance(node, nnx.Conv):
            nd = len(node.kernel_shape)
            grouped = getattr(node, "feature_group_count", 1) != 1
            axes = {"kernel": ChannelAxes(out=nd - 1, in_=None if grouped else nd - 2)}
        elif isinstance(node, nnx.Linear):
            axes = {"kernel": ChannelAxes(out=1, in_=0)}
        else:
            continue
        if getattr(node, "bias", None) is not None:
            axes["bias"] = ChannelAxes(out=0)
        out["/".join(str(p) for p in path)] = axes
    return out


def equinox_layers(module) -> dict[str, dict[str, ChannelAxes]]:
    """``{path: {param: ChannelAxes}}`` for every ``eqx.nn.Conv`` and ``eqx.nn.Linear`` of an
    Equinox module (module doc)."""
    import equinox as eqx

    if not isinstance(module, eqx.Module):
        raise TypeError(f"module: expected an Equinox Module, got {type(module).__name__}")
    kinds = (eqx.nn.Conv, eqx.nn.Linear)
    flat, _ = jax.tree_util.tree_flatten_with_path(module, is_leaf=lambda x: isinstance(x, kinds))
    out = {}
    for path, node in flat:
        if not isinstance(node, kinds):
            continue
        if isinstance(node, eqx.nn.Conv):
            axes = {"weight": ChannelAxes(out=0, in_=1 if node.groups == 1 else None)}
        else:
            if node.in_features == "scalar" or node.out_features == "scalar":
                continue
            axes = {"weight": ChannelAxes(out=0, in_=1)}
        if node.bias is not None:
            axes["bias"] = ChannelAxes(out=0)
        out[_name(path)] = axes
    return out
