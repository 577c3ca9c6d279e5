r"""Normalisations over the last axis: pure functions and the specs that hold their params.

* :func:`rms_norm` — :math:`x / \sqrt{\mathrm{mean}(x^2) + \epsilon}\,\odot s` (RMSNorm, Zhang &
  Sennrich 2019); spec :class:`RMSNorm`;
* :func:`layer_norm` — :math:`(x - \mu) / \sqrt{\sigma^2 + \epsilon}\,\odot s + b` with the
  biased variance :math:`\sigma^2` (LayerNorm, Ba et al. 2016); spec :class:`LayerNorm`;
* :func:`l2_normalize` — :math:`x / \sqrt{\lVert x\rVert^2 + \epsilon}`.

**Rounding forms.** The same value can be computed in ways that round differently in the last
bit, and some models are pinned to the form they were trained with. ``rms_norm(...,
x_times_x=True)`` forms the mean square as ``mean(x * x)`` instead of ``mean(square(x))``: the
forward values are the same bits, but the gradient sums ``g·x + g·x`` where the default has
``g·(2x)``, which can differ by one ulp (``SequenceModel`` and the MAC gate use it).
``l2_normalize(..., divide=True)`` computes ``x / sqrt(sum(x * x) + eps)`` instead of
``x * rsqrt(sum(square(x)) + eps)``: one ulp apart in eager float32 (jit on CPU happens to fuse
both to the same bits) and in bfloat16 (the associative layer uses it).

**Channel axes** (:mod:`memjax.nn.channels`): a norm keeps its channels (input channel ``c`` is
output channel ``c``); ``scale`` and ``bias`` are per feature, ``out=0``.

Example:
    >>> import jax.numpy as jnp
    >>> from memjax.nn.norms import l2_normalize, rms_norm
    >>> float(jnp.linalg.norm(l2_normalize(jnp.array([3.0, 4.0]), eps=0.0)))
    1.0
    >>> rms_norm(jnp.array([2.0, -2.0]), eps=0.0)
    Array([ 1., -1.], dtype=float32)
    >>> import jax
    >>> from memjax.nn.norms import LayerNorm
    >>> norm = LayerNorm(3)
    >>> norm(norm.init_params(jax.random.key(0)), jnp.array([1.0, 2.0, 3.0])).round(3)
    Array([-1.225,  0.   ,  1.225], dtype=float32)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.core.checks import check_array, check_positive_int
from memjax.core.spec import spec
from memjax.nn.channels import ChannelAxes

__all__ = ["LayerNorm", "RMSNorm", "l2_normalize", "layer_norm", "rms_norm"]


def _rows(vector: jax.Array, like: jax.Array) -> jax.Array:
    """``vector`` reshaped to broadcast over the leading axes of ``like``."""
    return jnp.reshape(vector, (1,) * (like.ndim - vector.ndim) + vector.shape)


def rms_norm(
    x: jax.Array,
    scale: jax.Array | None = None,
    eps: float = 1e-6,
    *,
    x_times_x: bool = False,
) -> jax.Array:
    """RMSNorm over the last axis, times ``scale`` (shape ``(d,)``) when given.

    ``x_times_x=True`` forms the mean square as ``mean(x * x)`` (module doc, rounding forms).
    """
    square = x * x if x_times_x else jnp.square(x)
    y = x * jax.lax.rsqrt(jnp.mean(square, axis=-1, keepdims=True) + eps)
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


def l2_normalize(x: jax.Array, eps: float = 1e-6, *, divide: bool = False) -> jax.Array:
    """``x`` divided by its ℓ2 norm over the last axis (``eps`` inside the square root).

    ``divide=True`` computes ``x / sqrt(sum(x * x) + eps)`` (module doc, rounding forms).
    """
    if divide:
        return x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + eps)
    return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + eps)


def _check_features(name: str, num_features) -> None:
    check_positive_int(name, num_features)


def _check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {value!r}")


def _check_eps(eps) -> None:
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps >= 0:
        raise ValueError(f"eps: expected a non-negative number, got {eps!r}")


def _check_input(spec_, x) -> None:
    if not hasattr(x, "ndim") or x.ndim < 1:
        check_array("x", x, ndim=1)
    check_array("x", x, shape=(*([None] * (x.ndim - 1)), spec_.num_features), floating=True)


@spec
class RMSNorm:
    """RMSNorm over the last axis of ``x (..., num_features)`` (:func:`rms_norm`).

    Args:
        num_features: width of the normalised axis.
        eps: added to the mean square.
        use_scale: a learnt per-feature scale (initialised to ones).
        dtype: dtype of the params.
    """

    num_features: int
    eps: float = 1e-6
    use_scale: bool = True
    dtype: str = "float32"

    def __post_init__(self):
        _check_features("num_features", self.num_features)
        _check_eps(self.eps)
        _check_flag("use_scale", self.use_scale)

    def init_params(self, key: jax.Array) -> dict:
        """``{"scale": ones (num_features,)}`` (empty without ``use_scale``); ``key`` is unused."""
        return {"scale": jnp.ones((self.num_features,), self.dtype)} if self.use_scale else {}

    def channel_axes(self) -> dict[str, ChannelAxes]:
        """``scale``: the features, ``out=0``."""
        return {"scale": ChannelAxes(out=0)} if self.use_scale else {}

    def apply(self, params: dict, x) -> jax.Array:
        """``x (..., num_features)`` normalised over the last axis."""
        _check_input(self, x)
        return rms_norm(x, params.get("scale"), self.eps)

    __call__ = apply


@spec
class LayerNorm:
    """LayerNorm over the last axis of ``x (..., num_features)`` (:func:`layer_norm`).

    Args:
        num_features: width of the normalised axis.
        eps: added to the (biased) variance.
        use_scale: a learnt per-feature scale (initialised to ones).
        use_bias: a learnt per-feature bias (initialised to zeros).
        dtype: dtype of the params.
    """

    num_features: int
    eps: float = 1e-5
    use_scale: bool = True
    use_bias: bool = True
    dtype: str = "float32"

    def __post_init__(self):
        _check_features("num_features", self.num_features)
        _check_eps(self.eps)
        _check_flag("use_scale", self.use_scale)
        _check_flag("use_bias", self.use_bias)

    def init_params(self, key: jax.Array) -> dict:
        """``scale`` (ones) and ``bias`` (zeros), each ``(num_features,)``; ``key`` is unused."""
        params = {}
        if self.use_scale:
            params["scale"] = jnp.ones((self.num_features,), self.dtype)
        if self.use_bias:
            params["bias"] = jnp.zeros((self.num_features,), self.dtype)
        return params

    def channel_axes(self) -> dict[str, ChannelAxes]:
        """``scale`` and ``bias``: the features, ``out=0``."""
        names = [n for n, on in (("scale", self.use_scale), ("bias", self.use_bias)) if on]
        return {name: ChannelAxes(out=0) for name in names}

    def apply(self, params: dict, x) -> jax.Array:
        """``x (..., num_features)`` normalised over the last axis."""
        _check_input(self, x)
        return layer_norm(x, params.get("scale"), params.get("bias"), self.eps)

    __call__ = apply
