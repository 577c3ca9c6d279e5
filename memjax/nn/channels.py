"""Channel axes: which axis of each parameter holds a layer's output and input channels.

Pruning (removing a filter or a hidden unit) and group sparsity (a group = one channel's weights)
need to know, for every parameter of a layer, which axis is indexed by the layer's **output
channels** and which by its **input channels**. Every :mod:`memjax.nn` layer declares it through
``channel_axes() -> dict[param_name, ChannelAxes]`` with these conventions:

* ``out`` is the axis of the parameter indexed by the layer's output channels (Dense units, conv
  filters, norm features, LSTM hidden units); ``in_`` the axis indexed by its input channels
  (the previous layer's outputs). ``None`` means the parameter has no such axis.
* Axes are non-negative and refer to the parameter exactly as ``init_params`` returns it.
* An axis entry is an ``int``, ``None``, or a tuple of ints when the parameter is indexed by
  the same channels on several axes: an LSTM's recurrent kernel ``(d_hidden, 4, d_hidden)`` maps
  the layer's own hidden units to its hidden units, so it has ``out=(0, 2)`` and ``in_=None``
  (removing hidden unit ``j`` removes index ``j`` on both axes). ``in_`` always means the
  *previous* layer's channels.
* Per-feature vectors (biases, norm scales, BatchNorm running statistics) have ``out=0``: they
  are coupled to the output channels, so pruning a channel drops their entry too.
* A parameter that is absent (``use_bias=False``) is absent from the dict as well.

Example:
    >>> from memjax.nn.channels import ChannelAxes, check_channel_axes
    >>> axes = {"kernel": ChannelAxes(out=1, in_=0), "bias": ChannelAxes(out=0)}
    >>> import jax.numpy as jnp
    >>> check_channel_axes(axes, {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)})
    >>> check_channel_axes(axes, {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(3)})
    Traceback (most recent call last):
    ...
    ValueError: kernel: output-channel axis 1 has size 2, but bias gives 3
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["ChannelAxes", "check_channel_axes"]


class ChannelAxes(NamedTuple):
    """Axis (or axes) of a parameter that hold output channels (``out``) and input channels
    (``in_``); ``None`` when it has none."""

    out: int | tuple[int, ...] | None = None
    in_: int | tuple[int, ...] | None = None

    @property
    def out_axes(self) -> tuple[int, ...]:
        """``out`` as a tuple (empty when ``None``)."""
        return _as_tuple(self.out)

    @property
    def in_axes(self) -> tuple[int, ...]:
        """``in_`` as a tuple (empty when ``None``)."""
        return _as_tuple(self.in_)


def _as_tuple(axis) -> tuple[int, ...]:
    if axis is None:
        return ()
    return tuple(axis) if isinstance(axis, tuple) else (axis,)


def check_channel_axes(axes: Mapping[str, ChannelAxes], params: Mapping) -> None:
    """Raise ``ValueError`` naming the parameter unless ``axes`` fits ``params``.

    Checks that ``axes`` names exactly the parameters, that each axis exists, and that all
    ``out`` axes share one size and all ``in_`` axes share one size.
    """
    if set(axes) != set(params):
        raise ValueError(
            f"channel_axes: declares {sorted(axes)}, but the params are {sorted(params)}"
        )
    sizes: dict[str, tuple[str, int]] = {}
    for name in sorted(axes):
        shape = params[name].shape
        entry = axes[name]
        for kind, axis in [("out", a) for a in entry.out_axes] + [
            ("in_", a) for a in entry.in_axes
        ]:
            if not 0 <= axis < len(shape):
                raise ValueError(f"{name}: {kind} axis {axis} is not an axis of shape {shape}")
            size = shape[axis]
            if kind in sizes and sizes[kind][1] != size:
                label = "output" if kind == "out" else "input"
                raise ValueError(
                    f"{name}: {label}-channel axis {axis} has size {size}, "
                    f"but {sizes[kind][0]} gives {sizes[kind][1]}"
                )
            sizes.setdefault(kind, (name, size))
