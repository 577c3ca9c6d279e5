r"""Pieces shared by the CNNs: tapped conv / dense calls, pooling, channel selection, widths.

Every conv and dense layer of a memjax CNN goes through :func:`tapped`, which exposes its input
and raw output as taps named ``"<layer>:in"`` and ``"<layer>:out"`` (:mod:`memjax.core.taps`;
free when nobody asks), and the models tap the activation after the following nonlinearity as
``"<layer>:act"`` (HRank's post-ReLU maps). ``<layer>`` is the layer's parameter path without
the leaf, e.g. ``"conv3"`` or ``"blocks/4/conv1"``.

:func:`select_channels` builds a channel-mapped copy of ``x`` — output channel :math:`j` is input
channel :math:`m_j`, or zero where :math:`m_j = -1` — from slices, zeros and one concatenation,
so that :func:`memjax.pruning.trace_groups` can follow it: the option-A (zero-padding) shortcut of
CIFAR ResNets is the map ``[-1]*lo + [0, ..., C_in - 1] + [-1]*hi``, and after pruning any
order-preserving map.

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.models.cnn.layers import select_channels
    >>> x = jnp.arange(3.0).reshape(1, 1, 1, 3)
    >>> select_channels(x, (-1, 0, 1, 2, -1)).ravel().tolist()
    [0.0, 0.0, 1.0, 2.0, 0.0]
    >>> select_channels(x, (2, -1, 0)).ravel().tolist()
    [2.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from memjax.core.checks import check_positive_int
from memjax.core.taps import tap

__all__ = [
    "check_width_multiplier",
    "check_widths",
    "fold_batchnorm",
    "global_avg_pool",
    "max_pool",
    "remap_channels",
    "scaled_width",
    "select_channels",
    "tapped",
    "width",
]


def tapped(layer_name: str, layer, params, x):
    """``layer(params, x)`` with taps ``"<layer_name>:in"`` and ``"<layer_name>:out"``."""
    x = tap(f"{layer_name}:in", x)
    return tap(f"{layer_name}:out", layer(params, x))


def max_pool(x, size: int = 2):
    """``size`` × ``size`` max pooling with stride ``size`` over NHWC ``x`` (VALID)."""
    window = (1, size, size, 1)
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, "VALID")


def global_avg_pool(x):
    """The mean over the spatial axes of NHWC ``x``: ``(N, H, W, C) -> (N, C)``."""
    return jnp.mean(x, axis=(1, 2))


def select_channels(x, channel_map) -> jax.Array:
    """``y[..., j] = x[..., m_j]``, zero where ``m_j = -1`` (module doc)."""
    pieces, start = [], 0
    channel_map = tuple(int(m) for m in channel_map)
    while start < len(channel_map):
        end = start + 1
        if channel_map[start] < 0:
            while end < len(channel_map) and channel_map[end] < 0:
                end += 1
            pieces.append(jnp.zeros((*x.shape[:-1], end - start), x.dtype))
        else:
            while end < len(channel_map) and channel_map[end] == channel_map[end - 1] + 1:
                end += 1
            first = channel_map[start]
            pieces.append(jax.lax.slice_in_dim(x, first, first + end - start, axis=x.ndim - 1))
        start = end
    return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=-1)


def fold_batchnorm(layer_params: Mapping, bn_params: Mapping, bn_state, eps: float) -> dict:
    r"""A conv or dense layer's params with the evaluation-mode BatchNorm after it folded in.

    BatchNorm in evaluation (Ioffe & Szegedy 2015, Alg. 2) maps a layer output :math:`z = x * W
    + b` to :math:`\gamma (z - \hat\mu)/\sqrt{\hat\sigma^2 + \epsilon} + \beta`; with
    :math:`g = \gamma / \sqrt{\hat\sigma^2 + \epsilon}` per output channel that is the layer
    with :math:`W' = W g` (the last, output axis scaled) and :math:`b' = (b - \hat\mu) g +
    \beta` (:math:`b = 0` for a layer without a bias). Exact in real arithmetic; in floating
    point it differs by rounding only. The returned dict has ``kernel`` and ``bias``.

    Example:
        >>> import jax.numpy as jnp
        >>> from memjax.nn import BatchNormState
        >>> out = fold_batchnorm({"kernel": jnp.ones((2, 2))},
        ...                      {"scale": jnp.array([2.0, 1.0]), "bias": jnp.array([0.0, 1.0])},
        ...                      BatchNormState(jnp.array([1.0, 0.0]), jnp.array([4.0, 1.0])), 0.0)
        >>> out["kernel"].tolist(), out["bias"].tolist()
        ([[1.0, 1.0], [1.0, 1.0]], [-1.0, 1.0])
    """
    kernel = jnp.asarray(layer_params["kernel"])
    g = bn_params["scale"] * jax.lax.rsqrt(bn_state.var + eps)
    bias = layer_params.get("bias", jnp.zeros(kernel.shape[-1], kernel.dtype))
    scaled = kernel * jnp.reshape(g, (1,) * (kernel.ndim - 1) + g.shape)
    return {"kernel": scaled, "bias": (bias - bn_state.mean) * g + bn_params["bias"]}


def scaled_width(c: int, alpha: float) -> int:
    """Width ``c`` under width multiplier ``alpha``: ``round(α c)``, at least 1."""
    return max(1, round(alpha * c))


def check_width_multiplier(alpha) -> None:
    """``width_multiplier`` must be a number > 0."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise ValueError(f"width_multiplier: expected a number > 0, got {alpha!r}")


def check_widths(name: str, value, n: int) -> None:
    """``value`` is ``None`` or a tuple of ``n`` positive ints (an error names ``name``)."""
    if value is None:
        return
    if not isinstance(value, tuple) or len(value) != n:
        raise ValueError(f"{name}: expected a tuple of {n} ints, got {value!r}")
    for v in value:
        check_positive_int(name, v)


def width(kept: Mapping, name: str, axis: int, default: int) -> int:
    """The new size of ``axis`` of variable ``name`` after surgery (``default`` if untouched).

    ``kept`` maps ``(name, axis)`` to the old positions kept (:func:`memjax.pruning.shrink`).
    """
    entry = kept.get((name, axis))
    return default if entry is None else len(entry)


def remap_channels(channel_map, kept_in, kept_out) -> tuple[int, ...]:
    """A channel map after surgery: new output ``j`` reads new input ``i`` where old output
    ``kept_out[j]`` read old input ``kept_in[i]`` (``-1``: zero, or an input that was pruned)."""
    position = {int(old): new for new, old in enumerate(np.asarray(kept_in).tolist())}
    return tuple(
        position.get(int(channel_map[o]), -1) if channel_map[o] >= 0 else -1
        for o in np.asarray(kept_out).tolist()
    )
