r"""Normalisations over the last axis, as pure functions.

* :func:`rms_norm` — :math:`x / \sqrt{\mathrm{mean}(x^2) + \epsilon}\,\odot s` (RMSNorm);
* :func:`layer_norm` — :math:`(x - \mu) / \sqrt{\sigma^2 + \epsilon}\,\odot s + b` (LayerNorm);
* :func:`l2_normalize` — :math:`x / \sqrt{\lVert x\rVert^2 + \epsilon}`.

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.nn.norms import l2_normalize, rms_norm
    >>> float(jnp.linalg.norm(l2_normalize(jnp.array([3.0, 4.0]), eps=0.0)))
    1.0
    >>> rms_norm(jnp.array([2.0, -2.0]), eps=0.0)
    Array([ 1., -1.], dtype=float32)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["l2_normalize", "layer_norm", "rms_norm"]


def _rows(vector: jax.Array, like: jax.Array) -> jax.Array:
    """``vector`` reshaped to broadcast over the leading axes of ``like``."""
    return jnp.reshape(vector, (1,) * (like.ndim - vector.ndim) + vector.shape)


def rms_norm(x: jax.Array, scale: jax.Array | None = None, eps: float = 1e-6) -> jax.Array:
    """RMSNorm over the last axis, times ``scale`` (shape ``(d,)``) when given."""
    y = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)
    return y if scale is None else y * _rows(scale, x)


def layer_norm(
    x: jax.Array,
    scale: jax.Array | None = None,
    bias: jax.Array | None = None,
    eps: float = 1e-5,
) -> jax.Array:
    """LayerNorm over the last axis, affine when ``scale`` / ``bias`` (shape ``(d,)``) are given."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    y = (x - mean) * jax.lax.rsqrt(var + eps)
    if scale is not None:
        y = y * _rows(scale, x)
    if bias is not None:
        y = y + _rows(bias, x)
    return y


def l2_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """``x`` divided by its ℓ2 norm over the last axis (``eps`` inside the square root)."""
    return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + eps)
